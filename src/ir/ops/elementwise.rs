//! Elementwise binary and unary ops.

use super::broadcast::broadcast_shapes;
use super::{InferArgs, OpDef, Param, ParamType};
use crate::interp::kernels::elementwise as k;
use crate::ir::{Target, TensorType};

const BINARY: &[Param] = &[Param::new("x", ParamType::TOrInt), Param::new("y", ParamType::TOrInt)];

/// Output type of a broadcasting binary op: the broadcast shape, `x`'s dtype.
pub fn infer_binary(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let (x, y) = (a.ty("x")?, a.ty("y")?);
    Ok(vec![TensorType { dtype: x.dtype, shape: broadcast_shapes(&x.shape, &y.shape)? }])
}

/// The definitions of this family.
pub const DEFS: &[OpDef] =
    &[OpDef { name: "add", since: Target::IOS15, params: BINARY, infer: infer_binary, kernel: k::add }];
