//! Control-flow ops (MIL's `control_flow`); mlpack has `select` of that file.

pub mod kernels;

use self::kernels as k;
use super::broadcast::broadcast_shapes;
use super::{op, InferArgs, OpDef, Param, ParamType};
use crate::ir::TensorType;

const SELECT: &[Param] = &[
    Param::new("cond", ParamType::Bool),
    Param::new("a", ParamType::Any),
    Param::new("b", ParamType::Any),
];

fn infer_select(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let (c, x, y) = (a.ty("cond")?, a.ty("a")?, a.ty("b")?);
    if x.dtype != y.dtype {
        return Err(format!("a is {} but b is {}", x.dtype, y.dtype));
    }
    let shape = broadcast_shapes(&broadcast_shapes(&c.shape, &x.shape)?, &y.shape)?;
    Ok(vec![TensorType {
        dtype: x.dtype,
        shape,
    }])
}

/// The definitions of this family.
pub const DEFS: &[OpDef] = &[op("select", SELECT, infer_select, k::select)];
