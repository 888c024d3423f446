//! Reductions: `reduce_*` over a set of axes, `reduce_argmax`/`reduce_argmin` along one axis.

pub mod kernels;

use self::kernels as k;
use super::axis::norm_axis;
use super::{op, InferArgs, NormRole, OpArgs, OpDef, Param, ParamType};
use crate::ir::{DType, Dim, TensorType};

const KEEP_DIMS: Param = Param::new("keep_dims", ParamType::Bool)
    .constant()
    .default_bool(false);
const REDUCE: &[Param] = &[
    Param::new("x", ParamType::TOrInt),
    Param::new("axes", ParamType::Int).optional().constant(),
    KEEP_DIMS,
];
const ARG_REDUCE: &[Param] = &[
    Param::new("x", ParamType::TOrInt),
    Param::new("axis", ParamType::Int)
        .constant()
        .default_int(-1),
    KEEP_DIMS,
];

/// The shape left after reducing `axes` of `shape` (all axes when `axes` is None).
pub fn reduced_shape(
    shape: &[Dim],
    axes: Option<&[i64]>,
    keep_dims: bool,
) -> Result<Vec<Dim>, String> {
    let axes: Vec<usize> = match axes {
        Some(axes) => axes
            .iter()
            .map(|&a| norm_axis(a, shape.len()))
            .collect::<Result<_, _>>()?,
        None => (0..shape.len()).collect(),
    };
    Ok(shape
        .iter()
        .enumerate()
        .filter_map(|(i, d)| match (axes.contains(&i), keep_dims) {
            (false, _) => Some(d.clone()),
            (true, true) => Some(Dim::Fixed(1)),
            (true, false) => None,
        })
        .collect())
}

fn infer_reduce(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    let shape = reduced_shape(
        &x.shape,
        a.opt_ints("axes")?.as_deref(),
        a.bool("keep_dims")?,
    )?;
    Ok(vec![TensorType {
        dtype: x.dtype,
        shape,
    }])
}

fn infer_arg_reduce(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    let axis = a.int("axis")?;
    let shape = reduced_shape(&x.shape, Some(&[axis]), a.bool("keep_dims")?)?;
    Ok(vec![TensorType {
        dtype: DType::I32,
        shape,
    }])
}

/// The norm part of `reduce_mean` and `reduce_sum`: a norm's mean or variance.
const MEAN_OR_SUM: NormRole = NormRole {
    reduce: true,
    ..NormRole::NONE
};

/// The definitions of this family.
pub const DEFS: &[OpDef] = &[
    op("reduce_mean", REDUCE, infer_reduce, k::reduce_mean).norm(MEAN_OR_SUM),
    op("reduce_sum", REDUCE, infer_reduce, k::reduce_sum).norm(MEAN_OR_SUM),
    op("reduce_max", REDUCE, infer_reduce, k::reduce_max),
    op("reduce_min", REDUCE, infer_reduce, k::reduce_min),
    op("reduce_prod", REDUCE, infer_reduce, k::reduce_prod),
    op("reduce_l1_norm", REDUCE, infer_reduce, k::reduce_l1_norm),
    op("reduce_l2_norm", REDUCE, infer_reduce, k::reduce_l2_norm),
    op(
        "reduce_sum_square",
        REDUCE,
        infer_reduce,
        k::reduce_sum_square,
    ),
    op("reduce_log_sum", REDUCE, infer_reduce, k::reduce_log_sum),
    op(
        "reduce_log_sum_exp",
        REDUCE,
        infer_reduce,
        k::reduce_log_sum_exp,
    ),
    op(
        "reduce_argmax",
        ARG_REDUCE,
        infer_arg_reduce,
        k::reduce_argmax,
    ),
    op(
        "reduce_argmin",
        ARG_REDUCE,
        infer_arg_reduce,
        k::reduce_argmin,
    ),
];
