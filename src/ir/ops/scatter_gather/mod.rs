//! Gathers and scatters (MIL's `scatter_gather`): `gather`, `gather_along_axis`, `gather_nd`,
//! `scatter`, `scatter_along_axis`, `scatter_nd`.

pub mod kernels;

use self::kernels as k;
use super::axis::norm_axis;
use super::{op, InferArgs, OpArgs, OpDef, Param, ParamType, StrEnum};
use crate::ir::{Dim, Target, TensorType};

const X: Param = Param::new("x", ParamType::Any);
const MODE: Param = Param::new("mode", ParamType::Str)
    .constant()
    .default_str("add");
const AXIS: Param = Param::new("axis", ParamType::Int).constant().default_int(0);
const GATHER_ND: &[Param] = &[
    Param::new("x", ParamType::Any),
    Param::new("indices", ParamType::Int),
];
const SCATTER: &[Param] = &[
    Param::new("data", ParamType::TOrInt),
    Param::new("indices", ParamType::Int),
    Param::new("updates", ParamType::TOrInt),
    AXIS,
    MODE,
];
const SCATTER_ND: &[Param] = &[
    Param::new("data", ParamType::TOrInt),
    Param::new("indices", ParamType::Int),
    Param::new("updates", ParamType::TOrInt),
    MODE,
];

/// How a scatter op combines an existing value with an update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScatterMode {
    /// The update replaces the value.
    Update,
    /// Value + update.
    Add,
    /// Value - update.
    Sub,
    /// Value * update.
    Mul,
    /// Value / update.
    Div,
    /// The larger of the two.
    Max,
    /// The smaller of the two.
    Min,
}

impl StrEnum for ScatterMode {
    const WHAT: &'static str = "scatter mode";
    const VALUES: &'static [(&'static str, Self)] = &[
        ("update", ScatterMode::Update),
        ("add", ScatterMode::Add),
        ("sub", ScatterMode::Sub),
        ("mul", ScatterMode::Mul),
        ("div", ScatterMode::Div),
        ("max", ScatterMode::Max),
        ("min", ScatterMode::Min),
    ];
}

impl ScatterMode {
    /// The `mode` of a scatter op.
    pub fn of<'a>(a: &impl OpArgs<'a>) -> Result<ScatterMode, String> {
        ScatterMode::parse(a.str("mode")?)
    }
}

fn compatible(a: &[Dim], b: &[Dim]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(p, q)| p.fixed().zip(q.fixed()).is_none_or(|(u, v)| u == v))
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

/// Fails unless the updates `upd` have shape `want` (symbolic dims match anything).
fn check_updates(upd: &TensorType, want: Vec<Dim>) -> Result<(), String> {
    if compatible(&upd.shape, &want) {
        return Ok(());
    }
    let want = TensorType {
        dtype: upd.dtype,
        shape: want,
    };
    Err(format!("updates {upd} must have shape {want}"))
}

fn infer_scatter(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    ScatterMode::of(a)?;
    let (data, idx, upd) = (a.ty("data")?, a.ty("indices")?, a.ty("updates")?);
    let axis = norm_axis(a.int("axis")?, data.rank())?;
    if idx.rank() != 1 {
        return Err(format!("indices {idx} must have rank 1"));
    }
    let mut want = data.shape.clone();
    want[axis] = idx.shape[0].clone();
    check_updates(upd, want)?;
    Ok(vec![data.clone()])
}

fn infer_scatter_along_axis(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    ScatterMode::of(a)?;
    let (data, idx, upd) = (a.ty("data")?, a.ty("indices")?, a.ty("updates")?);
    norm_axis(a.int("axis")?, data.rank())?;
    if idx.rank() != data.rank() || !compatible(&idx.shape, &upd.shape) {
        return Err(format!(
            "indices {idx} and updates {upd} must have the same shape and the rank of data {data}"
        ));
    }
    Ok(vec![data.clone()])
}

fn infer_scatter_nd(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    ScatterMode::of(a)?;
    let (data, idx, upd) = (a.ty("data")?, a.ty("indices")?, a.ty("updates")?);
    let depth = index_depth(idx, data.rank())?;
    let mut want = idx.shape[..idx.rank() - 1].to_vec();
    want.extend(data.shape[depth..].iter().cloned());
    check_updates(upd, want)?;
    Ok(vec![data.clone()])
}

const GATHER: &[Param] = &[
    X,
    Param::new("indices", ParamType::Int),
    AXIS,
    Param::new("batch_dims", ParamType::Int)
        .constant()
        .default_int(0)
        .since(Target::IOS16),
];

const GATHER_ALONG_AXIS: &[Param] = &[X, Param::new("indices", ParamType::Int), AXIS];

fn infer_gather(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let (x, idx) = (a.ty("x")?, a.ty("indices")?);
    let axis = norm_axis(a.int("axis")?, x.rank())?;
    let batch = a.int("batch_dims")?;
    if batch < 0 || batch as usize > axis || batch as usize > idx.rank() {
        return Err(format!(
            "batch_dims {batch} must be in [0, min(axis {axis}, rank(indices) {})]",
            idx.rank()
        ));
    }
    let batch = batch as usize;
    let mut shape = x.shape[..axis].to_vec();
    shape.extend(idx.shape[batch..].iter().cloned());
    shape.extend(x.shape[axis + 1..].iter().cloned());
    Ok(vec![TensorType {
        dtype: x.dtype,
        shape,
    }])
}

fn infer_gather_along_axis(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let (x, idx) = (a.ty("x")?, a.ty("indices")?);
    let axis = norm_axis(a.int("axis")?, x.rank())?;
    if idx.rank() != x.rank() {
        return Err(format!("indices {idx} must have the rank of x {x}"));
    }
    for (i, (p, q)) in x.shape.iter().zip(&idx.shape).enumerate() {
        if i != axis && p.fixed().is_some() && q.fixed().is_some() && p != q {
            return Err(format!("indices {idx} and x {x} differ in dimension {i}"));
        }
    }
    Ok(vec![idx.with_dtype(x.dtype)])
}

/// The definitions of this family.
pub const DEFS: &[OpDef] = &[
    op("gather", GATHER, infer_gather, k::gather),
    op(
        "gather_along_axis",
        GATHER_ALONG_AXIS,
        infer_gather_along_axis,
        k::gather_along_axis,
    ),
    op("gather_nd", GATHER_ND, infer_gather_nd, k::gather_nd),
    op("scatter", SCATTER, infer_scatter, k::scatter),
    op(
        "scatter_along_axis",
        SCATTER,
        infer_scatter_along_axis,
        k::scatter_along_axis,
    ),
    op("scatter_nd", SCATTER_ND, infer_scatter_nd, k::scatter_nd),
];
