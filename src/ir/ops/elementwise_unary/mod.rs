//! Elementwise unary ops (MIL's `elementwise_unary`): math functions, rounding,
//! `logical_not`, `threshold`, `clip` and `cast`.

pub mod kernels;

use self::kernels as k;
use super::{op, InferArgs, NormRole, OpArgs, OpDef, Param, ParamType, Precision, Square};
use crate::ir::{DType, TensorType};

const UNARY: &[Param] = &[Param::new("x", ParamType::T)];

/// A unary op with an `epsilon` added to its input first, defaulting to `default`.
const fn with_epsilon(default: f64) -> [Param; 2] {
    [
        Param::new("x", ParamType::T),
        Param::new("epsilon", ParamType::T)
            .constant()
            .default_float(default),
    ]
}
const RSQRT: &[Param] = &with_epsilon(1e-12);
const LOG: &[Param] = &with_epsilon(1e-45);
const INVERSE: &[Param] = &with_epsilon(1e-4);

const LOGICAL_NOT: &[Param] = &[Param::new("x", ParamType::Bool)];

const UNARY_WITH_INT: &[Param] = &[Param::new("x", ParamType::TOrInt)];

const THRESHOLD: &[Param] = &[
    Param::new("x", ParamType::TOrInt),
    Param::new("alpha", ParamType::TOrInt).constant(),
];

const CAST: &[Param] = &[
    Param::new("x", ParamType::Any),
    Param::new("dtype", ParamType::Str).constant(),
];
const CLIP: &[Param] = &[
    Param::new("x", ParamType::T),
    Param::new("alpha", ParamType::T).constant(),
    Param::new("beta", ParamType::T).constant(),
];

/// Output type of a unary op: the input type.
pub fn infer_same(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    Ok(vec![a.ty("x")?.clone()])
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
    let dtype = cast_target(a.str("dtype")?)?;
    Ok(vec![x.with_dtype(dtype)])
}

/// The norm part of `sqrt` and `rsqrt`: the root ending a variance chain.
const ROOT: NormRole = NormRole {
    root: true,
    ..NormRole::NONE
};

/// The definitions of this family.
pub const DEFS: &[OpDef] = &[
    op("logical_not", LOGICAL_NOT, infer_same, k::logical_not),
    op("abs", UNARY_WITH_INT, infer_same, k::abs),
    op("ceil", UNARY, infer_same, k::ceil),
    op("floor", UNARY, infer_same, k::floor),
    op("round", UNARY, infer_same, k::round),
    op("sign", UNARY_WITH_INT, infer_same, k::sign),
    op("sqrt", UNARY, infer_same, k::sqrt).norm(ROOT),
    op("rsqrt", RSQRT, infer_same, k::rsqrt).norm(ROOT),
    op("exp", UNARY, infer_same, k::exp),
    op("exp2", UNARY_WITH_INT, infer_same, k::exp2),
    op("log", LOG, infer_same, k::log),
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
    op("inverse", INVERSE, infer_same, k::inverse),
    op("square", UNARY_WITH_INT, infer_same, k::square).norm(NormRole {
        square: Some(Square::Always),
        ..NormRole::NONE
    }),
    op("threshold", THRESHOLD, infer_same, k::threshold),
    op("clip", CLIP, infer_same, k::clip),
    op("cast", CAST, infer_cast, k::cast).precision(Precision::Kept),
];
