//! State ops (MIL's iOS18 `states` opset file): `read_state` and `write_state`.
//!
//! A state is a function input of `StateType` (see [`Function::states`](crate::ir::Function)):
//! an fp16 tensor of static shape that the runtime keeps between predictions. `read_state`
//! copies its content into a new tensor; `write_state` stores a tensor of the wrapped type in
//! it and has no outputs (coremltools writes its `coreml_update_state` as `write_state`
//! followed by `read_state` when the updated value is read again).

pub mod kernels;

use self::kernels as k;
use super::{op, InferArgs, OpDef, Param, ParamType, Precision};
use crate::ir::{Target, TensorType};

const READ: &[Param] = &[Param::new("input", ParamType::State)];

const WRITE: &[Param] = &[
    Param::new("input", ParamType::State),
    Param::new("data", ParamType::Setting),
];

/// The wrapped tensor type.
fn infer_read(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    Ok(vec![a.ty("input")?.clone()])
}

/// No outputs; `data` must have exactly the state's wrapped type.
fn infer_write(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let (state, data) = (a.ty("input")?, a.ty("data")?);
    if data != state {
        return Err(format!(
            "data {data} does not match the state's type {state}"
        ));
    }
    Ok(Vec::new())
}

/// The state ops.
pub const DEFS: &[OpDef] = &[
    op("read_state", READ, infer_read, k::read_state)
        .since(Target::IOS18)
        .precision(Precision::Kept),
    op("write_state", WRITE, infer_write, k::write_state)
        .since(Target::IOS18)
        .precision(Precision::Kept),
];
