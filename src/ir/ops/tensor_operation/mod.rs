//! Tensor operations on values along an axis: `cumsum`, `topk`, `argsort`, `one_hot`.

pub mod kernels;

use self::kernels as k;
use super::{op, InferArgs, OpDef, Param, ParamType};
use crate::ir::{DType, Dim, TensorType};

const CUMSUM: &[Param] = &[
    Param::new("x", ParamType::TOrInt),
    Param::new("axis", ParamType::Int).optional().constant(),
    Param::new("exclusive", ParamType::Bool)
        .optional()
        .constant(),
    Param::new("reverse", ParamType::Bool).optional().constant(),
];
const TOPK: &[Param] = &[
    Param::new("x", ParamType::TOrInt),
    Param::new("k", ParamType::Int).optional().constant(),
    Param::new("axis", ParamType::Int).optional().constant(),
    Param::new("ascending", ParamType::Bool)
        .optional()
        .constant(),
];
const ARGSORT: &[Param] = &[
    Param::new("x", ParamType::TOrInt),
    Param::new("axis", ParamType::Int).optional().constant(),
    Param::new("ascending", ParamType::Bool)
        .optional()
        .constant(),
];
const ONE_HOT: &[Param] = &[
    Param::new("indices", ParamType::Int),
    Param::new("one_hot_vector_size", ParamType::Int),
    Param::new("axis", ParamType::Int).optional().constant(),
    Param::new("on_value", ParamType::Any).optional().constant(),
    Param::new("off_value", ParamType::Any)
        .optional()
        .constant(),
];

fn infer_cumsum(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    InferArgs::axis(a.int_or("axis", 0)?, x.rank())?;
    Ok(vec![x.clone()])
}

fn infer_topk(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    let axis = InferArgs::axis(a.int_or("axis", -1)?, x.rank())?;
    let k = a.int_or("k", 1)?;
    if k < 1 || x.shape[axis].fixed().is_some_and(|n| k as usize > n) {
        return Err(format!("k = {k} must be in [1, {}]", x.shape[axis]));
    }
    let mut shape = x.shape.clone();
    shape[axis] = Dim::Fixed(k as usize);
    Ok(vec![
        TensorType {
            dtype: x.dtype,
            shape: shape.clone(),
        },
        TensorType {
            dtype: DType::I32,
            shape,
        },
    ])
}

fn infer_argsort(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    InferArgs::axis(a.int_or("axis", -1)?, x.rank())?;
    Ok(vec![x.with_dtype(DType::I32)])
}

fn infer_one_hot(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let idx = a.ty("indices")?;
    let axis = InferArgs::axis(a.int_or("axis", -1)?, idx.rank() + 1)?;
    let depth = match a.value("one_hot_vector_size").and_then(|t| t.scalar_i64()) {
        Some(d) if d >= 0 => Dim::Fixed(d as usize),
        Some(d) => return Err(format!("one_hot_vector_size {d} is negative")),
        None => a.symbol(axis),
    };
    let (on, off) = (a.opt_ty("on_value"), a.opt_ty("off_value"));
    let dtype = on.or(off).map(|t| t.dtype).unwrap_or(DType::I32);
    if on.zip(off).is_some_and(|(p, q)| p.dtype != q.dtype) {
        return Err("on_value and off_value must have the same dtype".into());
    }
    let mut shape = idx.shape.clone();
    shape.insert(axis, depth);
    Ok(vec![TensorType { dtype, shape }])
}

/// The definitions of this family.
pub const DEFS: &[OpDef] = &[
    op("cumsum", CUMSUM, infer_cumsum, k::cumsum),
    op("topk", TOPK, infer_topk, k::topk),
    op("argsort", ARGSORT, infer_argsort, k::argsort),
    op("one_hot", ONE_HOT, infer_one_hot, k::one_hot),
];
