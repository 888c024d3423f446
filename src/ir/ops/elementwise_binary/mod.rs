//! Elementwise binary ops (MIL's `elementwise_binary`): broadcasting arithmetic, comparisons
//! and logic.

pub mod kernels;

use self::kernels as k;
use super::broadcast::broadcast_shapes;
use super::{op, InferArgs, NormRole, OpDef, Param, ParamType, Square};
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

/// The norm part of `add`, `sub`, `real_div` and `maximum`: a step with a constant between a
/// variance and its root (adding epsilon, scaling).
const STEP: NormRole = NormRole {
    step: true,
    ..NormRole::NONE
};

/// The definitions of this family.
pub const DEFS: &[OpDef] = &[
    op("add", BINARY, infer_binary, k::add).norm(STEP),
    op("sub", BINARY, infer_binary, k::sub).norm(STEP),
    op("mul", BINARY, infer_binary, k::mul).norm(NormRole {
        square: Some(Square::BySelf),
        step: true,
        ..NormRole::NONE
    }),
    op("real_div", BINARY, infer_binary, k::real_div).norm(STEP),
    op("pow", BINARY, infer_binary, k::pow).norm(NormRole {
        square: Some(Square::ByTwo),
        ..NormRole::NONE
    }),
    op("maximum", BINARY, infer_binary, k::maximum).norm(STEP),
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
