//! Index-driven ops: `gather_nd`, `scatter`, `scatter_along_axis`, `scatter_nd`,
//! `band_part`, `non_zero`.

pub mod kernels;

use self::kernels as k;
use super::{op, InferArgs, OpDef, Param, ParamType};
use crate::ir::{DType, Dim, TensorType};

const MODE: Param = Param::new("mode", ParamType::Str).optional().constant();
const GATHER_ND: &[Param] = &[
    Param::new("x", ParamType::Any),
    Param::new("indices", ParamType::Int),
];
const SCATTER: &[Param] = &[
    Param::new("data", ParamType::TOrInt),
    Param::new("indices", ParamType::Int),
    Param::new("updates", ParamType::TOrInt),
    Param::new("axis", ParamType::Int).optional().constant(),
    MODE,
];
const SCATTER_ND: &[Param] = &[
    Param::new("data", ParamType::TOrInt),
    Param::new("indices", ParamType::Int),
    Param::new("updates", ParamType::TOrInt),
    MODE,
];
const BAND_PART: &[Param] = &[
    Param::new("x", ParamType::Any),
    Param::new("lower", ParamType::Int).optional().constant(),
    Param::new("upper", ParamType::Int).optional().constant(),
];
const NON_ZERO: &[Param] = &[Param::new("x", ParamType::Any)];

/// The scatter modes MIL defines.
pub const SCATTER_MODES: [&str; 7] = ["update", "add", "sub", "mul", "div", "max", "min"];

fn compatible(a: &[Dim], b: &[Dim]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(p, q)| p.fixed().zip(q.fixed()).is_none_or(|(u, v)| u == v))
}

fn check_mode(a: &InferArgs) -> Result<(), String> {
    let mode = a.str_or("mode", "add")?;
    if !SCATTER_MODES.contains(&mode) {
        return Err(format!(
            "unknown scatter mode '{mode}' (expected one of {SCATTER_MODES:?})"
        ));
    }
    Ok(())
}

/// The depth `K` of an N-d index tensor (its last dim), which must be known and ≤ `rank`.
fn index_depth(indices: &TensorType, rank: usize) -> Result<usize, String> {
    match indices.shape.last().and_then(Dim::fixed) {
        Some(k) if k <= rank => Ok(k),
        _ => Err(format!(
            "indices {indices} must end in a known index depth ≤ {rank}"
        )),
    }
}

fn infer_gather_nd(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let (x, idx) = (a.ty("x")?, a.ty("indices")?);
    let depth = index_depth(idx, x.rank())?;
    let mut shape = idx.shape[..idx.rank() - 1].to_vec();
    shape.extend(x.shape[depth..].iter().cloned());
    Ok(vec![TensorType {
        dtype: x.dtype,
        shape,
    }])
}

fn infer_scatter(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    check_mode(a)?;
    let (data, idx, upd) = (a.ty("data")?, a.ty("indices")?, a.ty("updates")?);
    let axis = InferArgs::axis(a.int_or("axis", 0)?, data.rank())?;
    if idx.rank() != 1 {
        return Err(format!("indices {idx} must have rank 1"));
    }
    let mut want = data.shape.clone();
    want[axis] = idx.shape[0].clone();
    if !compatible(&upd.shape, &want) {
        return Err(format!(
            "updates {upd} must have shape {}",
            TensorType {
                dtype: upd.dtype,
                shape: want
            }
        ));
    }
    Ok(vec![data.clone()])
}

fn infer_scatter_along_axis(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    check_mode(a)?;
    let (data, idx, upd) = (a.ty("data")?, a.ty("indices")?, a.ty("updates")?);
    InferArgs::axis(a.int_or("axis", 0)?, data.rank())?;
    if idx.rank() != data.rank() || !compatible(&idx.shape, &upd.shape) {
        return Err(format!(
            "indices {idx} and updates {upd} must have the same shape and the rank of data {data}"
        ));
    }
    Ok(vec![data.clone()])
}

fn infer_scatter_nd(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    check_mode(a)?;
    let (data, idx, upd) = (a.ty("data")?, a.ty("indices")?, a.ty("updates")?);
    let depth = index_depth(idx, data.rank())?;
    let mut want = idx.shape[..idx.rank() - 1].to_vec();
    want.extend(data.shape[depth..].iter().cloned());
    if !compatible(&upd.shape, &want) {
        return Err(format!(
            "updates {upd} must have shape {}",
            TensorType {
                dtype: upd.dtype,
                shape: want
            }
        ));
    }
    Ok(vec![data.clone()])
}

fn infer_band_part(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    if x.rank() < 2 {
        return Err(format!("x {x} must have rank 2 or more"));
    }
    Ok(vec![x.clone()])
}

fn infer_non_zero(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    Ok(vec![TensorType {
        dtype: DType::I32,
        shape: vec![a.symbol(0), Dim::Fixed(x.rank())],
    }])
}

/// The definitions of this family.
pub const DEFS: &[OpDef] = &[
    op("gather_nd", GATHER_ND, infer_gather_nd, k::gather_nd),
    op("scatter", SCATTER, infer_scatter, k::scatter),
    op(
        "scatter_along_axis",
        SCATTER,
        infer_scatter_along_axis,
        k::scatter_along_axis,
    ),
    op("scatter_nd", SCATTER_ND, infer_scatter_nd, k::scatter_nd),
    op("band_part", BAND_PART, infer_band_part, k::band_part),
    op("non_zero", NON_ZERO, infer_non_zero, k::non_zero),
];
