//! The classifier op (MIL's iOS15 `classify`): the last op of a classifier model, mapping a
//! probability tensor to the predicted class label and the class → probability dictionary.
//!
//! MIL types its second output `dict<ClassT, fp64>`. The IR holds it as `tensor<fp64, [N]>`,
//! the probability of each class in the order of `classes` (the dictionary's keys are the
//! constant classes, so the vector determines it); the backend writes and reads that output
//! as the `dictionaryType` coremltools writes.

pub mod kernels;

use self::kernels as k;
use super::{op, InferArgs, OpDef, Param, ParamType, Precision};
use crate::ir::{DType, TensorType};

const PARAMS: &[Param] = &[
    Param::new("probabilities", ParamType::T),
    Param::new("classes", ParamType::Setting).constant(),
];

/// The label (a scalar of the classes' type) and the probabilities (`fp64 [N]`);
/// `probabilities` must be fp32 (as coremltools requires) with `N` elements when its shape is
/// known, and `classes` a constant list of strings or int64s.
fn infer(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let probabilities = a.ty("probabilities")?;
    if probabilities.dtype != DType::F32 {
        return Err(format!(
            "probabilities are {probabilities}; classify takes fp32 probabilities"
        ));
    }
    let classes = a.const_value("classes")?;
    if classes.shape().len() != 1 || !matches!(classes.dtype(), DType::String | DType::I64) {
        return Err(format!(
            "classes are {}; classify takes a list of strings or int64s",
            classes.ty()
        ));
    }
    let n = classes.shape()[0];
    if let Some(shape) = probabilities.static_shape() {
        if shape.iter().product::<usize>() != n {
            return Err(format!(
                "{n} classes for probabilities of shape {shape:?} (the counts must match)"
            ));
        }
    }
    Ok(vec![
        TensorType::scalar(classes.dtype()),
        TensorType::fixed(DType::F64, &[n]),
    ])
}

/// The classifier op.
pub const DEFS: &[OpDef] = &[op("classify", PARAMS, infer, k::classify)
    .precision(Precision::Fp32("classify takes fp32 probabilities"))];
