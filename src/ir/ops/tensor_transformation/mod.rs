//! Tensor transformations (MIL's `tensor_transformation`): `reshape`, `transpose`, `squeeze`,
//! `expand_dims`, slicing, `reverse` and the depth/space rearrangements.

pub mod kernels;

use self::kernels as k;
use super::axis::norm_axis;
use super::{op, InferArgs, OpArgs, OpDef, Param, ParamType};
use crate::ir::{DType, Dim, TensorType};

const X: Param = Param::new("x", ParamType::Any);
const fn ints(name: &'static str) -> Param {
    Param::new(name, ParamType::Int)
}
const fn int_const(name: &'static str) -> Param {
    Param::new(name, ParamType::Int).constant()
}
const fn bools(name: &'static str) -> Param {
    Param::new(name, ParamType::Bool).optional()
}

const RESHAPE: &[Param] = &[X, ints("shape")];
const TRANSPOSE: &[Param] = &[X, int_const("perm")];
const SQUEEZE: &[Param] = &[X, int_const("axes").optional()];
const EXPAND_DIMS: &[Param] = &[X, int_const("axes")];
const SLICE_BY_INDEX: &[Param] = &[
    X,
    ints("begin"),
    ints("end"),
    ints("stride").optional(),
    bools("begin_mask").constant(),
    bools("end_mask").constant(),
    bools("squeeze_mask").constant(),
];
const SLICE_BY_SIZE: &[Param] = &[X, ints("begin"), ints("size")];
const REVERSE: &[Param] = &[X, int_const("axes").optional()];
const BLOCK: &[Param] = &[Param::new("x", ParamType::T), int_const("block_size")];
const PIXEL_SHUFFLE: &[Param] = &[Param::new("x", ParamType::T), int_const("upscale_factor")];

fn fixed(d: usize) -> Dim {
    Dim::Fixed(d)
}

fn shape_str(shape: &[Dim]) -> String {
    TensorType {
        dtype: DType::F32,
        shape: shape.to_vec(),
    }
    .to_string()
}

/// Resolves a MIL reshape target against the input shape (0 copies the input dim when the
/// ranks agree; one -1 takes the remaining volume). Unknown sizes become symbols.
pub fn reshape_target(a: &InferArgs, from: &[Dim], to: &[i64]) -> Result<Vec<Dim>, String> {
    if to.iter().filter(|&&d| d == -1).count() > 1 {
        return Err(format!("shape {to:?} has more than one -1"));
    }
    if to.contains(&0) && to.len() != from.len() {
        return Err(format!(
            "shape {to:?} contains 0 but its length differs from the input rank {}",
            from.len()
        ));
    }
    let mut out = Vec::with_capacity(to.len());
    for (i, &d) in to.iter().enumerate() {
        out.push(match d {
            0 => Some(from[i].clone()),
            -1 => None,
            d if d > 0 => Some(fixed(d as usize)),
            d => return Err(format!("shape {to:?} has invalid size {d}")),
        });
    }
    // Symbolic dims copied through (by 0 or by name) cancel out: the fixed parts of the two
    // volumes are comparable when both sides hold the same symbols.
    let symbols = |dims: &mut dyn Iterator<Item = &Dim>| {
        let mut names: Vec<String> = dims
            .filter(|d| d.fixed().is_none())
            .map(|d| d.to_string())
            .collect();
        names.sort();
        names
    };
    let comparable = symbols(&mut from.iter()) == symbols(&mut out.iter().flatten());
    let volume: usize = from.iter().filter_map(Dim::fixed).product();
    let known: usize = out.iter().flatten().filter_map(Dim::fixed).product();
    if let Some(pos) = out.iter().position(Option::is_none) {
        out[pos] = Some(match comparable {
            true if known > 0 && volume % known == 0 => fixed(volume / known),
            true => return Err(format!("cannot reshape {} to {to:?}", shape_str(from))),
            false => a.symbol(pos),
        });
    } else if comparable && volume != known {
        return Err(format!(
            "cannot reshape {} ({volume} elements) to {to:?} ({known} elements)",
            shape_str(from)
        ));
    }
    Ok(out.into_iter().flatten().collect())
}

fn infer_reshape(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    let shape = a.ty("shape")?;
    let shape = match a.known_ints("shape") {
        Some(to) => reshape_target(a, &x.shape, &to)?,
        None => match shape.shape.as_slice() {
            [Dim::Fixed(n)] => (0..*n).map(|i| a.symbol(i)).collect(),
            _ => {
                return Err(format!(
                    "shape must be a rank-1 tensor of known length, got {shape}"
                ))
            }
        },
    };
    Ok(vec![TensorType {
        dtype: x.dtype,
        shape,
    }])
}

/// Checks that `perm` is a permutation of `0..rank` (negative entries count from the end).
pub fn permutation(perm: &[i64], rank: usize) -> Result<Vec<usize>, String> {
    if perm.len() != rank {
        return Err(format!(
            "perm {perm:?} has {} entries for rank {rank}",
            perm.len()
        ));
    }
    let perm = perm
        .iter()
        .map(|&p| norm_axis(p, rank))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = vec![false; rank];
    for &p in &perm {
        if std::mem::replace(&mut seen[p], true) {
            return Err(format!("perm {perm:?} repeats axis {p}"));
        }
    }
    Ok(perm)
}

fn infer_transpose(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    let perm = permutation(&a.ints("perm")?, x.rank())?;
    Ok(vec![TensorType {
        dtype: x.dtype,
        shape: perm.iter().map(|&p| x.shape[p].clone()).collect(),
    }])
}

fn infer_squeeze(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    let shape = match a.opt_ints("axes")? {
        Some(axes) => {
            let axes = axes
                .iter()
                .map(|&ax| norm_axis(ax, x.rank()))
                .collect::<Result<Vec<_>, _>>()?;
            for &ax in &axes {
                if x.shape[ax].fixed().is_some_and(|d| d != 1) {
                    return Err(format!(
                        "cannot squeeze axis {ax} of {x}: its size is not 1"
                    ));
                }
            }
            x.shape
                .iter()
                .enumerate()
                .filter(|(i, _)| !axes.contains(i))
                .map(|(_, d)| d.clone())
                .collect()
        }
        None => x
            .shape
            .iter()
            .filter(|d| **d != fixed(1))
            .cloned()
            .collect(),
    };
    Ok(vec![TensorType {
        dtype: x.dtype,
        shape,
    }])
}

/// The positions (in the output) at which `expand_dims` inserts size-1 dims.
pub fn expand_positions(axes: &[i64], rank: usize) -> Result<Vec<usize>, String> {
    let out_rank = rank + axes.len();
    let mut pos = axes
        .iter()
        .map(|&ax| norm_axis(ax, out_rank))
        .collect::<Result<Vec<_>, _>>()?;
    pos.sort_unstable();
    if pos.windows(2).any(|w| w[0] == w[1]) {
        return Err(format!("axes {axes:?} repeat an axis"));
    }
    Ok(pos)
}

fn infer_expand_dims(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    let mut shape = x.shape.clone();
    for p in expand_positions(&a.ints("axes")?, x.rank())? {
        shape.insert(p, fixed(1));
    }
    Ok(vec![TensorType {
        dtype: x.dtype,
        shape,
    }])
}

/// One dimension of a NumPy-style slice: start, stride and element count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceDim {
    /// Index of the first element taken.
    pub start: i64,
    /// Step between taken elements (never 0).
    pub stride: i64,
    /// Number of elements taken.
    pub len: usize,
}

/// Resolves `begin:end:stride` on a dimension of size `n` as NumPy does (negative indices
/// count from the end, out-of-range bounds clamp; masks replace the bound by the full extent).
pub fn slice_dim(
    n: usize,
    begin: i64,
    end: i64,
    stride: i64,
    begin_mask: bool,
    end_mask: bool,
) -> Result<SliceDim, String> {
    if stride == 0 {
        return Err("slice stride must not be 0".into());
    }
    let n = n as i64;
    let wrap = |v: i64| if v < 0 { v + n } else { v };
    let (start, stop) = if stride > 0 {
        let b = if begin_mask {
            0
        } else {
            wrap(begin).clamp(0, n)
        };
        let e = if end_mask { n } else { wrap(end).clamp(0, n) };
        (b, e)
    } else {
        let b = if begin_mask {
            n - 1
        } else {
            wrap(begin).clamp(-1, n - 1)
        };
        let e = if end_mask {
            -1
        } else {
            wrap(end).clamp(-1, n - 1)
        };
        (b, e)
    };
    let span = if stride > 0 {
        stop - start
    } else {
        start - stop
    };
    let len = if span <= 0 {
        0
    } else {
        (span + stride.abs() - 1) / stride.abs()
    };
    Ok(SliceDim {
        start,
        stride,
        len: len as usize,
    })
}

/// The begin/end/stride/mask lists of a `slice_by_index`, padded with defaults.
pub struct SliceSpec {
    /// Begin per dim.
    pub begin: Vec<i64>,
    /// End per dim.
    pub end: Vec<i64>,
    /// Stride per dim.
    pub stride: Vec<i64>,
    /// Begin mask per dim.
    pub begin_mask: Vec<bool>,
    /// End mask per dim.
    pub end_mask: Vec<bool>,
    /// Squeeze mask per dim.
    pub squeeze_mask: Vec<bool>,
}

impl SliceSpec {
    /// Checks list lengths against `rank` and fills in the defaults of absent lists.
    pub fn new(
        rank: usize,
        begin: Vec<i64>,
        end: Vec<i64>,
        stride: Option<Vec<i64>>,
        masks: [Option<Vec<i64>>; 3],
    ) -> Result<SliceSpec, String> {
        let check = |what: &str, len: usize| {
            if len != rank {
                Err(format!(
                    "{what} has {len} entries, expected rank(x) = {rank}"
                ))
            } else {
                Ok(())
            }
        };
        check("begin", begin.len())?;
        check("end", end.len())?;
        let stride = stride.unwrap_or_else(|| vec![1; rank]);
        check("stride", stride.len())?;
        let [bm, em, sm] =
            masks.map(|m| m.map(|v| v.into_iter().map(|b| b != 0).collect::<Vec<_>>()));
        let mask = |what: &str, m: Option<Vec<bool>>| -> Result<Vec<bool>, String> {
            let m = m.unwrap_or_else(|| vec![false; rank]);
            check(what, m.len())?;
            Ok(m)
        };
        Ok(SliceSpec {
            begin,
            end,
            stride,
            begin_mask: mask("begin_mask", bm)?,
            end_mask: mask("end_mask", em)?,
            squeeze_mask: mask("squeeze_mask", sm)?,
        })
    }

    /// The resolved slice of dimension `i` of size `n` (a squeezed dim takes one element at
    /// `begin`).
    pub fn dim(&self, i: usize, n: usize) -> Result<SliceDim, String> {
        if self.squeeze_mask[i] {
            let b = if self.begin[i] < 0 {
                self.begin[i] + n as i64
            } else {
                self.begin[i]
            };
            if b < 0 || b >= n as i64 {
                return Err(format!(
                    "index {} is out of range for dimension {i} of size {n}",
                    self.begin[i]
                ));
            }
            return Ok(SliceDim {
                start: b,
                stride: 1,
                len: 1,
            });
        }
        slice_dim(
            n,
            self.begin[i],
            self.end[i],
            self.stride[i],
            self.begin_mask[i],
            self.end_mask[i],
        )
    }
}

fn infer_slice_by_index(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    let masks = [
        a.opt_ints("begin_mask")?,
        a.opt_ints("end_mask")?,
        a.opt_ints("squeeze_mask")?,
    ];
    let squeeze: Vec<bool> = match &masks[2] {
        Some(m) => m.iter().map(|&v| v != 0).collect(),
        None => vec![false; x.rank()],
    };
    if squeeze.len() != x.rank() {
        return Err(format!(
            "squeeze_mask has {} entries, expected rank(x) = {}",
            squeeze.len(),
            x.rank()
        ));
    }
    let spec = match (a.known_ints("begin"), a.known_ints("end")) {
        (Some(b), Some(e)) => {
            let stride = match a.opt_ty("stride") {
                Some(_) => Some(
                    a.known_ints("stride")
                        .ok_or("stride must be constant when begin and end are")?,
                ),
                None => None,
            };
            Some(SliceSpec::new(x.rank(), b, e, stride, masks.clone())?)
        }
        _ => None,
    };
    // With begin or end computed at run time, a dimension taken whole (both masks) keeps its
    // size, as in coremltools.
    let mask = |m: &Option<Vec<i64>>, i: usize| {
        m.as_ref()
            .is_some_and(|m| m.get(i).is_some_and(|&v| v != 0))
    };
    let stride = match a.opt_ty("stride") {
        Some(_) => a.known_ints("stride"),
        None => Some(vec![1; x.rank()]),
    };
    let mut shape = Vec::new();
    for (i, d) in x.shape.iter().enumerate() {
        if squeeze[i] {
            continue;
        }
        let whole_stride = (mask(&masks[0], i) && mask(&masks[1], i))
            .then(|| stride.as_ref().and_then(|s| s.get(i).copied()))
            .flatten();
        shape.push(match (&spec, d.fixed(), whole_stride) {
            (Some(spec), Some(n), _) => fixed(spec.dim(i, n)?.len),
            (Some(spec), None, _)
                if spec.begin_mask[i] && spec.end_mask[i] && spec.stride[i] == 1 =>
            {
                d.clone()
            }
            (None, Some(n), Some(s)) if s != 0 => fixed(n.div_ceil(s.unsigned_abs() as usize)),
            (None, None, Some(1 | -1)) => d.clone(),
            _ => a.symbol(i),
        });
    }
    Ok(vec![TensorType {
        dtype: x.dtype,
        shape,
    }])
}

fn infer_slice_by_size(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    let begin = a.known_ints("begin");
    let size = a.known_ints("size");
    let mut shape = Vec::with_capacity(x.rank());
    for (i, d) in x.shape.iter().enumerate() {
        let s = size
            .as_ref()
            .map(|s| s.get(i).copied().ok_or("size is shorter than rank(x)"))
            .transpose()?;
        shape.push(
            match (s, begin.as_ref().and_then(|b| b.get(i)), d.fixed()) {
                (Some(-1), Some(&b), Some(n)) => fixed((n as i64 - b).max(0) as usize),
                (Some(s), _, _) if s >= 0 => fixed(s as usize),
                _ => a.symbol(i),
            },
        );
    }
    Ok(vec![TensorType {
        dtype: x.dtype,
        shape,
    }])
}

fn infer_reverse(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    if let Some(axes) = a.opt_ints("axes")? {
        for ax in axes {
            norm_axis(ax, x.rank())?;
        }
    }
    Ok(vec![x.clone()])
}

/// Output type of a rank-4 block rearrangement: channels scaled by `c_num / c_den`, spatial
/// dims by `s_num / s_den`.
fn infer_block(a: &InferArgs, param: &str, to_depth: bool) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    let b = a.int(param)?;
    if x.rank() != 4 || b < 1 {
        return Err(format!(
            "x must have rank 4 and {param} must be positive, got {x} and {b}"
        ));
    }
    let b = b as usize;
    let mut shape = x.shape.clone();
    let scale = |i: usize, d: &Dim, mul: usize, div: usize| -> Result<Dim, String> {
        match d.fixed() {
            Some(n) if n % div == 0 => Ok(fixed(n / div * mul)),
            Some(n) => Err(format!(
                "dimension {i} of size {n} is not divisible by {div}"
            )),
            None => Ok(a.symbol(i)),
        }
    };
    let (c_mul, c_div, s_mul, s_div) = if to_depth {
        (b * b, 1, 1, b)
    } else {
        (1, b * b, b, 1)
    };
    shape[1] = scale(1, &x.shape[1], c_mul, c_div)?;
    shape[2] = scale(2, &x.shape[2], s_mul, s_div)?;
    shape[3] = scale(3, &x.shape[3], s_mul, s_div)?;
    Ok(vec![TensorType {
        dtype: x.dtype,
        shape,
    }])
}

fn infer_depth_to_space(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    infer_block(a, "block_size", false)
}

fn infer_space_to_depth(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    infer_block(a, "block_size", true)
}

fn infer_pixel_shuffle(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    infer_block(a, "upscale_factor", false)
}

/// The definitions of this family.
pub const DEFS: &[OpDef] = &[
    op("reshape", RESHAPE, infer_reshape, k::reshape),
    op("transpose", TRANSPOSE, infer_transpose, k::transpose),
    op("squeeze", SQUEEZE, infer_squeeze, k::squeeze),
    op(
        "expand_dims",
        EXPAND_DIMS,
        infer_expand_dims,
        k::expand_dims,
    ),
    op(
        "slice_by_index",
        SLICE_BY_INDEX,
        infer_slice_by_index,
        k::slice_by_index,
    ),
    op(
        "slice_by_size",
        SLICE_BY_SIZE,
        infer_slice_by_size,
        k::slice_by_size,
    ),
    op("reverse", REVERSE, infer_reverse, k::reverse),
    op(
        "depth_to_space",
        BLOCK,
        infer_depth_to_space,
        k::depth_to_space,
    ),
    op(
        "space_to_depth",
        BLOCK,
        infer_space_to_depth,
        k::space_to_depth,
    ),
    op(
        "pixel_shuffle",
        PIXEL_SHUFFLE,
        infer_pixel_shuffle,
        k::pixel_shuffle,
    ),
];
