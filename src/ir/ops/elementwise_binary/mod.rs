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
const UNARY: &[Param] = &[Param::new("x", ParamType::T)];
const UNARY_EPS: &[Param] = &[
    Param::new("x", ParamType::T),
    Param::new("epsilon", ParamType::T).optional().constant(),
];
const LOGICAL_NOT: &[Param] = &[Param::new("x", ParamType::Bool)];
const UNARY_WITH_INT: &[Param] = &[Param::new("x", ParamType::TOrInt)];
const THRESHOLD: &[Param] = &[
    Param::new("x", ParamType::TOrInt),
    Param::new("alpha", ParamType::TOrInt).constant(),
];
const SELECT: &[Param] = &[
    Param::new("cond", ParamType::Bool),
    Param::new("a", ParamType::Any),
    Param::new("b", ParamType::Any),
];
const IDENTITY: &[Param] = &[Param::new("x", ParamType::Any)];
const CAST: &[Param] = &[
    Param::new("x", ParamType::Any),
    Param::new("dtype", ParamType::Str).constant(),
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

/// Output type of a unary op: the input type.
pub fn infer_same(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    Ok(vec![a.ty("x")?.clone()])
}

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

/// The dtype a `cast` to MIL dtype name `name` produces: fp16, fp32, int32 or bool (iOS15),
/// or int8, uint8, int16, uint16 (iOS17).
pub fn cast_target(name: &str) -> Result<DType, String> {
    match name {
        "fp16" | "fp32" | "int32" | "bool" | "int8" | "uint8" | "int16" | "uint16" => {
            DType::from_name(name).ok_or_else(|| format!("unknown dtype '{name}'"))
        }
        other => Err(format!(
            "cast to '{other}' is not supported (expected fp16, fp32, int32 or bool)"
        )),
    }
}

fn infer_cast(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    if x.dtype == DType::String {
        return Err("cannot cast a string tensor".into());
    }
    let dtype = cast_target(a.str_or("dtype", "")?)?;
    Ok(vec![x.with_dtype(dtype)])
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
    op("logical_not", LOGICAL_NOT, infer_same, k::logical_not),
    op("abs", UNARY_WITH_INT, infer_same, k::abs),
    op("ceil", UNARY, infer_same, k::ceil),
    op("floor", UNARY, infer_same, k::floor),
    op("round", UNARY, infer_same, k::round),
    op("sign", UNARY_WITH_INT, infer_same, k::sign),
    op("sqrt", UNARY, infer_same, k::sqrt),
    op("rsqrt", UNARY_EPS, infer_same, k::rsqrt),
    op("exp", UNARY, infer_same, k::exp),
    op("exp2", UNARY_WITH_INT, infer_same, k::exp2),
    op("log", UNARY_EPS, infer_same, k::log),
    op("sin", UNARY, infer_same, k::sin),
    op("cos", UNARY, infer_same, k::cos),
    op("tan", UNARY, infer_same, k::tan),
    op("asin", UNARY, infer_same, k::asin),
    op("acos", UNARY, infer_same, k::acos),
    op("atan", UNARY, infer_same, k::atan),
    op("sinh", UNARY, infer_same, k::sinh),
    op("cosh", UNARY, infer_same, k::cosh),
    op("atanh", UNARY, infer_same, k::atanh),
    op("tanh", UNARY, infer_same, k::tanh),
    op("erf", UNARY, infer_same, k::erf),
    op("inverse", UNARY_EPS, infer_same, k::inverse),
    op("square", UNARY_WITH_INT, infer_same, k::square),
    op("threshold", THRESHOLD, infer_same, k::threshold),
    op("select", SELECT, infer_select, k::select),
    op("identity", IDENTITY, infer_same, k::identity),
    op("cast", CAST, infer_cast, k::cast),
];
