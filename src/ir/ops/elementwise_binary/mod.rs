//! Elementwise ops: broadcasting binary arithmetic, comparisons and logic, unary math,
//! `select`, `identity` and `cast`.

pub mod kernels;

use self::kernels as k;
use super::broadcast::broadcast_shapes;
use super::{op, InferArgs, OpDef, Param, ParamType};
use crate::ir::{DType, TensorType};

const BINARY: &[Param] = &[
    Param::new("x", ParamType::TOrInt),
    Param::new("y", ParamType::TOrInt),
];
const COMPARE: &[Param] = &[
    Param::new("x", ParamType::Any),
    Param::new("y", ParamType::Any),
];
const LOGICAL: &[Param] = &[
    Param::new("x", ParamType::Bool),
    Param::new("y", ParamType::Bool),
];

/// Output type of a broadcasting binary op: the broadcast shape, `x`'s dtype.
pub fn infer_binary(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let (x, y) = (a.ty("x")?, a.ty("y")?);
    Ok(vec![TensorType {
        dtype: x.dtype,
        shape: broadcast_shapes(&x.shape, &y.shape)?,
    }])
}

/// Output type of a comparison: the broadcast shape, bool.
fn infer_compare(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let (x, y) = (a.ty("x")?, a.ty("y")?);
    if x.dtype != y.dtype {
        return Err(format!("x is {} but y is {}", x.dtype, y.dtype));
    }
    if x.dtype == DType::String {
        return Err("cannot compare strings".into());
    }
    Ok(vec![TensorType {
        dtype: DType::Bool,
        shape: broadcast_shapes(&x.shape, &y.shape)?,
    }])
}

/// The definitions of this family.
pub const DEFS: &[OpDef] = &[
    op("add", BINARY, infer_binary, k::add),
    op("sub", BINARY, infer_binary, k::sub),
    op("mul", BINARY, infer_binary, k::mul),
    op("real_div", BINARY, infer_binary, k::real_div),
    op("pow", BINARY, infer_binary, k::pow),
    op("maximum", BINARY, infer_binary, k::maximum),
    op("minimum", BINARY, infer_binary, k::minimum),
    op("floor_div", BINARY, infer_binary, k::floor_div),
    op("mod", BINARY, infer_binary, k::modulo),
    op("equal", COMPARE, infer_compare, k::equal),
    op("not_equal", COMPARE, infer_compare, k::not_equal),
    op("less", COMPARE, infer_compare, k::less),
    op("less_equal", COMPARE, infer_compare, k::less_equal),
    op("greater", COMPARE, infer_compare, k::greater),
    op("greater_equal", COMPARE, infer_compare, k::greater_equal),
    op("logical_and", LOGICAL, infer_binary, k::logical_and),
    op("logical_or", LOGICAL, infer_binary, k::logical_or),
    op("logical_xor", LOGICAL, infer_binary, k::logical_xor),
];
