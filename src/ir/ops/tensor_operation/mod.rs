//! Tensor operations (MIL's `tensor_operation`): joining and splitting (`concat`, `stack`,
//! `split`), `shape`, `tile`, `pad`, generators (`fill`, `range_1d`), `flatten2d`,
//! `band_part`, `non_zero`, `identity`, and ops along an axis (`cumsum`, `topk`, `argsort`,
//! `one_hot`).

pub mod kernels;

use self::kernels as k;
use super::axis::norm_axis;
use super::elementwise_unary::infer_same;
use super::{op, InferArgs, OpArgs, OpDef, Param, ParamType, Precision, StrEnum};
use crate::ir::{DType, Dim, TensorType};

const X: Param = Param::new("x", ParamType::Any);
/// An integer parameter whose argument may be computed at run time.
const fn ints(name: &'static str) -> Param {
    Param::new(name, ParamType::Int)
}
/// A constant integer parameter.
const fn int_const(name: &'static str) -> Param {
    Param::new(name, ParamType::Int).constant()
}
/// A constant bool parameter defaulting to false.
const fn flag(name: &'static str) -> Param {
    Param::new(name, ParamType::Bool)
        .constant()
        .default_bool(false)
}

const CUMSUM: &[Param] = &[
    Param::new("x", ParamType::TOrInt),
    int_const("axis").default_int(0),
    flag("exclusive"),
    flag("reverse"),
];
const TOPK: &[Param] = &[
    Param::new("x", ParamType::TOrInt),
    int_const("k").default_int(1),
    int_const("axis").default_int(-1),
    flag("ascending"),
];
const ARGSORT: &[Param] = &[
    Param::new("x", ParamType::TOrInt),
    int_const("axis").default_int(-1),
    flag("ascending"),
];
const ONE_HOT: &[Param] = &[
    Param::new("indices", ParamType::Int),
    Param::new("one_hot_vector_size", ParamType::Int),
    int_const("axis").default_int(-1),
    Param::new("on_value", ParamType::Any).optional().constant(),
    Param::new("off_value", ParamType::Any)
        .optional()
        .constant(),
];

fn infer_cumsum(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    norm_axis(a.int("axis")?, x.rank())?;
    Ok(vec![x.clone()])
}

fn infer_topk(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    let axis = norm_axis(a.int("axis")?, x.rank())?;
    let k = a.int("k")?;
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
    norm_axis(a.int("axis")?, x.rank())?;
    Ok(vec![x.with_dtype(DType::I32)])
}

fn infer_one_hot(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let idx = a.ty("indices")?;
    let axis = norm_axis(a.int("axis")?, idx.rank() + 1)?;
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

const CONCAT: &[Param] = &[
    Param::new("values", ParamType::Any).variadic(),
    int_const("axis"),
    flag("interleave"),
];

const STACK: &[Param] = &[
    Param::new("values", ParamType::Any).variadic(),
    int_const("axis"),
];

const SPLIT: &[Param] = &[
    X,
    int_const("num_splits").optional(),
    int_const("split_sizes").optional(),
    int_const("axis"),
];

const SHAPE: &[Param] = &[X];

const TILE: &[Param] = &[X, ints("reps")];

const PAD: &[Param] = &[
    Param::new("x", ParamType::T),
    ints("pad"),
    Param::new("mode", ParamType::Str)
        .constant()
        .default_str("constant"),
    Param::new("constant_val", ParamType::T)
        .constant()
        .default_float(0.0),
];

/// How `pad` fills the padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PadMode {
    /// With `constant_val`.
    Constant,
    /// Mirrored about the edge element (the edge not repeated).
    Reflect,
    /// Repeating the edge element.
    Replicate,
}

impl StrEnum for PadMode {
    const WHAT: &'static str = "pad mode";
    const VALUES: &'static [(&'static str, Self)] = &[
        ("constant", PadMode::Constant),
        ("reflect", PadMode::Reflect),
        ("replicate", PadMode::Replicate),
    ];
}

/// The attributes of a `pad` op (its `pad` amounts are data, read separately).
#[derive(Clone, Copy, Debug)]
pub struct PadAttrs {
    /// Padding mode.
    pub mode: PadMode,
    /// Value of constant padding.
    pub constant_val: f64,
}

impl PadAttrs {
    /// Reads the attributes of a `pad` op.
    pub fn parse<'a>(a: &impl OpArgs<'a>) -> Result<PadAttrs, String> {
        Ok(PadAttrs {
            mode: PadMode::parse(a.str("mode")?)?,
            constant_val: a.float("constant_val")?,
        })
    }
}

/// The (begin, end) padding of each of `rank` dims from `pad`, which holds pairs for the last
/// `len(pad) / 2` dims.
pub fn pad_pairs(pad: &[i64], rank: usize) -> Result<Vec<(usize, usize)>, String> {
    if pad.len() % 2 != 0
        || pad.len() / 2 > rank
        || pad.iter().any(|&p| !(0..=i32::MAX as i64).contains(&p))
    {
        return Err(format!(
            "pad {pad:?} must hold non-negative (begin, end) pairs for some of the last of {rank} dims"
        ));
    }
    let first = rank - pad.len() / 2;
    Ok((0..rank)
        .map(|i| {
            if i < first {
                (0, 0)
            } else {
                (
                    pad[2 * (i - first)] as usize,
                    pad[2 * (i - first) + 1] as usize,
                )
            }
        })
        .collect())
}

const FILL: &[Param] = &[
    ints("shape"),
    Param::new("value", ParamType::Any).optional(),
];

const RANGE_1D: &[Param] = &[
    Param::new("end", ParamType::TOrInt),
    Param::new("start", ParamType::TOrInt),
    Param::new("step", ParamType::TOrInt),
];

const FLATTEN2D: &[Param] = &[X, int_const("axis").default_int(1)];
const BAND_PART: &[Param] = &[
    Param::new("x", ParamType::Any),
    int_const("lower").default_int(-1),
    int_const("upper").default_int(-1),
];

const NON_ZERO: &[Param] = &[Param::new("x", ParamType::Any)];
const IDENTITY: &[Param] = &[Param::new("x", ParamType::Any)];

/// Sums dims along a joined axis (symbolic when any part is).
fn sum_dims<'d>(a: &InferArgs, dims: impl Iterator<Item = &'d Dim>, index: usize) -> Dim {
    let total: Option<usize> = dims.map(Dim::fixed).sum();
    total.map(Dim::Fixed).unwrap_or_else(|| a.symbol(index))
}

/// Checks that every input has the dtype and shape of the first, except along `skip`.
fn check_same_shapes(values: &[&TensorType], skip: Option<usize>) -> Result<(), String> {
    let first = values.first().ok_or("values is empty")?;
    for v in values {
        if v.dtype != first.dtype || v.rank() != first.rank() {
            return Err(format!("values {first} and {v} differ in dtype or rank"));
        }
        for (i, (p, q)) in first.shape.iter().zip(&v.shape).enumerate() {
            if Some(i) != skip && p.fixed().is_some() && q.fixed().is_some() && p != q {
                return Err(format!("values {first} and {v} differ in dimension {i}"));
            }
        }
    }
    Ok(())
}

fn infer_concat(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let values = a.tys("values");
    let first = *values.first().ok_or("concat needs at least one value")?;
    let axis = norm_axis(a.int("axis")?, first.rank())?;
    let interleave = a.bool("interleave")?;
    check_same_shapes(&values, if interleave { None } else { Some(axis) })?;
    let mut shape = first.shape.clone();
    shape[axis] = sum_dims(a, values.iter().map(|v| &v.shape[axis]), axis);
    Ok(vec![TensorType {
        dtype: first.dtype,
        shape,
    }])
}

fn infer_stack(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let values = a.tys("values");
    let first = *values.first().ok_or("stack needs at least one value")?;
    check_same_shapes(&values, None)?;
    let axis = norm_axis(a.int("axis")?, first.rank() + 1)?;
    let mut shape = first.shape.clone();
    shape.insert(axis, Dim::Fixed(values.len()));
    Ok(vec![TensorType {
        dtype: first.dtype,
        shape,
    }])
}

/// The sizes `split` cuts a dimension of size `dim` into.
pub fn split_sizes(
    dim: usize,
    num_splits: Option<i64>,
    sizes: Option<&[i64]>,
) -> Result<Vec<usize>, String> {
    match (num_splits, sizes) {
        (_, Some(sizes)) => {
            if sizes.iter().any(|&s| s < 0) || sizes.iter().sum::<i64>() != dim as i64 {
                return Err(format!(
                    "split_sizes {sizes:?} do not add up to the split dimension {dim}"
                ));
            }
            Ok(sizes.iter().map(|&s| s as usize).collect())
        }
        (Some(n), None) => {
            if n <= 0 || dim % n as usize != 0 {
                return Err(format!(
                    "num_splits {n} does not divide the split dimension {dim}"
                ));
            }
            Ok(vec![dim / n as usize; n as usize])
        }
        (None, None) => Err("split needs num_splits or split_sizes".into()),
    }
}

fn infer_split(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    let axis = norm_axis(a.int("axis")?, x.rank())?;
    let num = a.opt_ints("num_splits")?.and_then(|v| v.first().copied());
    let sizes = a.opt_ints("split_sizes")?;
    let dims: Vec<Dim> = match x.shape[axis].fixed() {
        Some(d) => split_sizes(d, num, sizes.as_deref())?
            .into_iter()
            .map(Dim::Fixed)
            .collect(),
        None => match (&sizes, num) {
            (Some(s), _) => s.iter().map(|&v| Dim::Fixed(v.max(0) as usize)).collect(),
            (None, Some(n)) if n > 0 => (0..n as usize).map(|i| a.symbol(i)).collect(),
            _ => return Err("split needs a positive num_splits or split_sizes".into()),
        },
    };
    Ok(dims
        .into_iter()
        .map(|d| {
            let mut shape = x.shape.clone();
            shape[axis] = d;
            TensorType {
                dtype: x.dtype,
                shape,
            }
        })
        .collect())
}

fn infer_shape(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    Ok(vec![TensorType::fixed(DType::I32, &[a.ty("x")?.rank()])])
}

fn infer_tile(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    let per_dim = match a.known_ints("reps") {
        Some(reps) => {
            if reps.len() != x.rank() || reps.iter().any(|&r| !(0..=i32::MAX as i64).contains(&r)) {
                return Err(format!(
                    "reps {reps:?} must have one non-negative entry per dim of {x}"
                ));
            }
            Some(reps.iter().map(|&r| (r as usize, 0)).collect())
        }
        None => None,
    };
    Ok(vec![scaled_and_grown(a, x, per_dim)])
}

fn infer_pad(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    PadAttrs::parse(a)?;
    let per_dim = match a.known_ints("pad") {
        Some(pad) => Some(
            pad_pairs(&pad, x.rank())?
                .into_iter()
                .map(|(b, e)| (1, b + e))
                .collect(),
        ),
        None => None,
    };
    Ok(vec![scaled_and_grown(a, x, per_dim)])
}

/// `x`'s type with each dim `d` becoming `d · m + k` for its `(m, k)` in `per_dim`; a
/// symbolic dim stays itself when `(m, k)` is `(1, 0)` and becomes a fresh symbol otherwise,
/// and every dim is a fresh symbol when `per_dim` is unknown.
fn scaled_and_grown(
    a: &InferArgs,
    x: &TensorType,
    per_dim: Option<Vec<(usize, usize)>>,
) -> TensorType {
    let shape = match per_dim {
        Some(per_dim) => x
            .shape
            .iter()
            .zip(per_dim)
            .enumerate()
            .map(|(i, (d, (m, k)))| match d.fixed() {
                Some(n) => Dim::Fixed(n * m + k),
                None if (m, k) == (1, 0) => d.clone(),
                None => a.symbol(i),
            })
            .collect(),
        None => (0..x.rank()).map(|i| a.symbol(i)).collect(),
    };
    TensorType {
        dtype: x.dtype,
        shape,
    }
}

fn infer_fill(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let dtype = a.opt_ty("value").map(|t| t.dtype).unwrap_or(DType::F32);
    let shape = match a.known_ints("shape") {
        Some(s) if s.iter().all(|&d| d >= 0) => s.iter().map(|&d| Dim::Fixed(d as usize)).collect(),
        Some(s) => return Err(format!("shape {s:?} has negative sizes")),
        None => match a.ty("shape")?.shape.as_slice() {
            [Dim::Fixed(n)] => (0..*n).map(|i| a.symbol(i)).collect(),
            _ => return Err("shape must be a rank-1 tensor of known length".into()),
        },
    };
    Ok(vec![TensorType { dtype, shape }])
}

/// Number of elements of `range_1d(end, start, step)`.
pub fn range_len(start: f64, end: f64, step: f64) -> Result<usize, String> {
    if step == 0.0 {
        return Err("range step must not be 0".into());
    }
    let len = ((end - start) / step).ceil().max(0.0);
    if !len.is_finite() || len > i32::MAX as f64 {
        return Err(format!("range from {start} to {end} by {step} is too long"));
    }
    Ok(len as usize)
}

fn infer_range_1d(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let dtype = a.ty("start")?.dtype;
    let scalar = |name: &str| a.value(name).and_then(|t| t.scalar_f64());
    let len = match (scalar("start"), scalar("end"), scalar("step")) {
        (Some(s), Some(e), Some(st)) => Dim::Fixed(range_len(s, e, st)?),
        _ => a.symbol(0),
    };
    Ok(vec![TensorType {
        dtype,
        shape: vec![len],
    }])
}

fn product(a: &InferArgs, dims: &[Dim], index: usize) -> Dim {
    dims.iter()
        .map(Dim::fixed)
        .product::<Option<usize>>()
        .map(Dim::Fixed)
        .unwrap_or_else(|| a.symbol(index))
}

fn infer_flatten2d(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    let axis = a.int("axis")?;
    let r = x.rank() as i64;
    if axis < -r || axis > r {
        return Err(format!("axis {axis} out of range for rank {r}"));
    }
    let axis = if axis < 0 { axis + r } else { axis } as usize;
    let shape = vec![
        product(a, &x.shape[..axis], 0),
        product(a, &x.shape[axis..], 1),
    ];
    Ok(vec![TensorType {
        dtype: x.dtype,
        shape,
    }])
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
    op("concat", CONCAT, infer_concat, k::concat),
    op("stack", STACK, infer_stack, k::stack),
    op("split", SPLIT, infer_split, k::split),
    op("shape", SHAPE, infer_shape, k::shape).precision(Precision::Kept),
    op("tile", TILE, infer_tile, k::tile),
    op("pad", PAD, infer_pad, k::pad),
    op("fill", FILL, infer_fill, k::fill),
    op("range_1d", RANGE_1D, infer_range_1d, k::range_1d),
    op("flatten2d", FLATTEN2D, infer_flatten2d, k::flatten2d),
    op("band_part", BAND_PART, infer_band_part, k::band_part),
    op("non_zero", NON_ZERO, infer_non_zero, k::non_zero),
    op("identity", IDENTITY, infer_same, k::identity),
    op("cumsum", CUMSUM, infer_cumsum, k::cumsum),
    op("topk", TOPK, infer_topk, k::topk),
    op("argsort", ARGSORT, infer_argsort, k::argsort),
    op("one_hot", ONE_HOT, infer_one_hot, k::one_hot),
];
