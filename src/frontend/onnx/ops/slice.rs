//! `Slice`: constant bounds become a `slice_by_index` with concrete begin/end/stride; an end
//! computed from a symbolic input dimension (BERT's `position_ids[:, :seq]`, with `seq` read
//! by `Shape` → `Gather`) becomes a begin/end vector computed at run time. `CenterCropPad`
//! is a slice and a pad.

use super::shape::trailing_pad;
use super::{axes, ConvertFn, Ctx, Emit, Node};
use crate::ir::{DType, Dim, SymInt, Tensor, TensorType};
use crate::Error;

/// One axis of a slice, normalised against its dimension `dim` the way ONNX clamps:
/// returns (begin, end, end_mask) for `slice_by_index`.
pub fn slice_axis(start: i64, end: i64, step: i64, dim: usize) -> (i64, i64, bool) {
    let d = dim as i64;
    if d == 0 {
        return (0, 0, false);
    }
    let norm = |v: i64| if v < 0 { v + d } else { v };
    if step > 0 {
        (norm(start).clamp(0, d), norm(end).clamp(0, d), false)
    } else {
        let begin = norm(start).clamp(0, d - 1);
        let end = norm(end).clamp(-1, d - 1);
        // An end before index 0 cannot be written as an index (-1 means the last element).
        if end < 0 {
            (begin, 0, true)
        } else {
            (begin, end, false)
        }
    }
}

/// A slice bound: known at conversion time, or element `index` of the run-time vector `var`,
/// whose value is the size of symbolic dimension `dim`.
#[derive(Clone, Debug)]
enum Bound {
    Known(i64),
    Runtime {
        var: String,
        index: usize,
        dim: String,
    },
}

impl Bound {
    fn known(&self) -> Option<i64> {
        match self {
            Bound::Known(v) => Some(*v),
            Bound::Runtime { .. } => None,
        }
    }
}

/// The bounds listed by input `i` (opset 10 on), None when it is omitted: a constant, or a
/// vector computed from input dimensions only (its symbolic value is known); anything else is
/// an error naming the input.
fn bounds_input(ctx: &mut Ctx, node: &Node, i: usize) -> Result<Option<Vec<Bound>>, Error> {
    if let Some(t) = ctx.try_const_input(node, i)? {
        return Ok(Some(t.to_i64_vec().into_iter().map(Bound::Known).collect()));
    }
    if node.input_name(i).is_none() {
        return Ok(None);
    }
    let var = ctx.input(node, i)?;
    let Some(elems) = ctx.e.b.symbolic_value(&var).map(<[_]>::to_vec) else {
        return Err(ctx.needs_constant(node, i, " (or computed from input dimensions only)"));
    };
    Ok(Some(
        elems
            .into_iter()
            .enumerate()
            .map(|(index, e)| match e {
                SymInt::Known(v) => Bound::Known(v),
                SymInt::Dim(dim) => Bound::Runtime {
                    var: var.clone(),
                    index,
                    dim,
                },
            })
            .collect(),
    ))
}

/// `Slice`: attributes before opset 10, inputs from it; emitted as a full-rank
/// `slice_by_index`, or an empty constant when the slice selects nothing. Starts, axes and
/// steps must be constants; an end may be a symbolic dimension `s` (`x[0:s]` along a fixed
/// dimension, which limits `s` to that size, or along `s` itself).
fn slice(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let dims = ctx.ty(&x)?.shape;
    let rank = dims.len();
    let (starts, ends, listed_axes, steps) = if ctx.opset < 10 {
        let list = |v: Vec<i64>| v.into_iter().map(Bound::Known).collect::<Vec<_>>();
        let starts = ctx
            .attr(node.ints("starts"))?
            .ok_or_else(|| ctx.invalid("attribute 'starts' is missing"))?;
        let ends = ctx
            .attr(node.ints("ends"))?
            .ok_or_else(|| ctx.invalid("attribute 'ends' is missing"))?;
        (list(starts), list(ends), ctx.attr(node.ints("axes"))?, None)
    } else {
        let starts = bounds_input(ctx, node, 1)?.unwrap_or_default();
        let ends = bounds_input(ctx, node, 2)?.unwrap_or_default();
        let mut get = |i: usize| ctx.const_input(node, i).map(|t| t.map(|t| t.to_i64_vec()));
        (starts, ends, get(3)?, get(4)?)
    };
    let listed_axes = listed_axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len()
        || listed_axes.len() != starts.len()
        || steps.len() != starts.len()
    {
        return Err(ctx.invalid("starts, ends, axes and steps must have the same length"));
    }
    let sliced = axes(ctx, &listed_axes, rank)?;
    let mut begin: Vec<i64> = vec![0; rank];
    // A symbolic dimension left whole is sliced with its end masked.
    let mut end: Vec<Bound> = dims
        .iter()
        .map(|d| Bound::Known(d.fixed().unwrap_or(0) as i64))
        .collect();
    let mut stride = vec![1i64; rank];
    let mut end_mask: Vec<bool> = dims.iter().map(|d| d.fixed().is_none()).collect();
    // Symbolic dimensions are never sliced (below), so 1 stands for them in the emptiness test.
    let mut out_shape: Vec<usize> = dims.iter().map(|d| d.fixed().unwrap_or(1)).collect();
    let mut out_dims = dims.clone();
    for (k, &a) in sliced.iter().enumerate() {
        if steps[k] == 0 {
            return Err(ctx.invalid("a slice step is 0"));
        }
        let Some(start) = starts[k].known() else {
            return Err(ctx.unsupported(format!(
                "a start computed at run time (axis {a}) is not supported; fix the dynamic dimensions with --dim"
            )));
        };
        let stop = match &ends[k] {
            Bound::Known(e) => *e,
            Bound::Runtime { dim, .. } => {
                if start != 0 || steps[k] != 1 {
                    return Err(ctx.unsupported(format!(
                        "only [0:{dim}] slices up to a symbolic dimension are supported, this one starts at {start} with step {}; fix the dynamic dimensions with --dim",
                        steps[k]
                    )));
                }
                match &dims[a] {
                    // x[0:s] along s itself keeps the whole axis.
                    Dim::Symbol(s) if s == dim => continue,
                    Dim::Symbol(s) => {
                        return Err(ctx.unsupported(format!(
                            "slicing symbolic dimension '{s}' (axis {a}) up to '{dim}' is not supported; fix the dynamic dimensions with --dim"
                        )))
                    }
                    &Dim::Fixed(n) => {
                        ctx.limit_dim(dim, n);
                        (end[a], end_mask[a]) = (ends[k].clone(), false);
                        out_dims[a] = Dim::Symbol(dim.clone());
                        continue;
                    }
                }
            }
        };
        let Some(dim) = dims[a].fixed() else {
            if start == 0 && stop >= i32::MAX as i64 && steps[k] == 1 {
                continue;
            }
            return Err(ctx.unsupported(format!(
                "slicing symbolic dimension '{}' (axis {a}) is not supported; fix it with --dim",
                dims[a]
            )));
        };
        let (b, e, m) = slice_axis(start, stop, steps[k], dim);
        (begin[a], end[a], stride[a], end_mask[a]) = (b, Bound::Known(e), steps[k], m);
        let span = if steps[k] > 0 {
            e - b
        } else if m {
            b + 1
        } else {
            b - e
        };
        let step = steps[k].unsigned_abs();
        out_shape[a] = (span.max(0) as u64).div_ceil(step) as usize;
        out_dims[a] = Dim::Fixed(out_shape[a]);
    }
    if out_shape.contains(&0) {
        // An empty result has no data to compute: it is the same constant whatever `x` holds.
        let dtype = ctx.ty(&x)?.dtype;
        let y = ctx.empty(&out, dtype, &out_shape)?;
        ctx.set_output(node, 0, y);
        return Ok(());
    }
    let known_end: Option<Vec<i64>> = end.iter().map(Bound::known).collect();
    let Some(known_end) = known_end else {
        let y = runtime_slice(ctx, &x, &begin, &end, &stride, &out)?;
        let dtype = ctx.ty(&y)?.dtype;
        ctx.e.b.refine_type(
            &y,
            TensorType {
                dtype,
                shape: out_dims,
            },
        );
        ctx.set_output(node, 0, y);
        return Ok(());
    };
    let whole = |(i, d): (usize, &Dim)| d.fixed().is_none_or(|d| known_end[i] == d as i64);
    if begin.iter().all(|&b| b == 0)
        && stride.iter().all(|&s| s == 1)
        && dims.iter().enumerate().all(whole)
    {
        ctx.set_output(node, 0, x);
        return Ok(());
    }
    let begin_c = ctx.ints(&format!("{out}_begin"), &begin);
    let end_c = ctx.ints(&format!("{out}_end"), &known_end);
    let stride_c = ctx.ints(&format!("{out}_stride"), &stride);
    let mut params = vec![
        ("x", x),
        ("begin", begin_c),
        ("end", end_c),
        ("stride", stride_c),
    ];
    if end_mask.iter().any(|&m| m) {
        params.push((
            "end_mask",
            ctx.constant(
                &format!("{out}_end_mask"),
                Tensor::from_bool(&[rank], &end_mask),
            ),
        ));
    }
    let refs: Vec<(&str, &str)> = params.iter().map(|(p, v)| (*p, v.as_str())).collect();
    let y = ctx.op1("slice_by_index", &out, &refs)?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `slice_by_index(x, begin, end, stride)` whose `end` is computed at run time: the known
/// entries and the run-time elements are concatenated into one int32 vector. Axes whose end is
/// known and whose begin is 0 with stride 1 are taken whole through the masks, so that the
/// type rule keeps their size.
fn runtime_slice(
    ctx: &mut Ctx,
    x: &str,
    begin: &[i64],
    end: &[Bound],
    stride: &[i64],
    out: &str,
) -> Result<String, Error> {
    let rank = end.len();
    let dims = ctx.ty(x)?.shape;
    let whole: Vec<bool> = (0..rank)
        .map(|i| {
            begin[i] == 0
                && stride[i] == 1
                && match (&end[i], &dims[i]) {
                    (Bound::Known(e), Dim::Fixed(n)) => *e == *n as i64,
                    (Bound::Known(_), Dim::Symbol(_)) => true,
                    (Bound::Runtime { .. }, _) => false,
                }
        })
        .collect();
    let mut pieces: Vec<String> = Vec::new();
    let mut known_run: Vec<i64> = Vec::new();
    for (i, bound) in end.iter().enumerate() {
        match bound {
            Bound::Known(e) => known_run.push(*e),
            Bound::Runtime { var, index, .. } => {
                if !known_run.is_empty() {
                    pieces.push(ctx.ints(&format!("{out}_end_{i}"), &known_run));
                    known_run.clear();
                }
                pieces.push(runtime_element(
                    ctx,
                    var,
                    *index,
                    &format!("{out}_end_{i}"),
                )?);
            }
        }
    }
    if !known_run.is_empty() {
        pieces.push(ctx.ints(&format!("{out}_end_{rank}"), &known_run));
    }
    let end_v = if pieces.len() == 1 {
        pieces.remove(0)
    } else {
        let axis = ctx.int(&format!("{out}_end_axis"), 0);
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        ctx.op_lists(
            "concat",
            &format!("{out}_end"),
            &[("values", refs), ("axis", vec![axis.as_str()])],
        )?
        .remove(0)
    };
    let begin_c = ctx.ints(&format!("{out}_begin"), begin);
    let stride_c = ctx.ints(&format!("{out}_stride"), stride);
    let mask = |ctx: &mut Ctx, name: &str| {
        ctx.constant(&format!("{out}_{name}"), Tensor::from_bool(&[rank], &whole))
    };
    let begin_mask = mask(ctx, "begin_mask");
    let end_mask = mask(ctx, "end_mask");
    ctx.op1(
        "slice_by_index",
        out,
        &[
            ("x", x),
            ("begin", &begin_c),
            ("end", &end_v),
            ("stride", &stride_c),
            ("begin_mask", &begin_mask),
            ("end_mask", &end_mask),
        ],
    )
}

/// Element `index` of run-time vector `var` as a rank-1 int32 vector of one element.
fn runtime_element(ctx: &mut Ctx, var: &str, index: usize, hint: &str) -> Result<String, Error> {
    let ty = ctx.ty(var)?;
    let mut v = var.to_string();
    if ty.shape != [Dim::Fixed(1)] {
        let (b, e) = (
            ctx.ints(&format!("{hint}_begin"), &[index as i64]),
            ctx.ints(&format!("{hint}_end"), &[index as i64 + 1]),
        );
        v = ctx.op1(
            "slice_by_index",
            hint,
            &[("x", &v), ("begin", &b), ("end", &e)],
        )?;
    }
    if ty.dtype != DType::I32 {
        v = ctx.cast(&v, DType::I32, &format!("{hint}_i32"))?;
    }
    Ok(v)
}

/// This family's converters.
pub const CONVERTERS: &[(&str, ConvertFn)] =
    &[("CenterCropPad", center_crop_pad), ("Slice", slice)];

/// `CenterCropPad(x, shape, axes)`: each listed axis (all, by default) is cropped or
/// zero-padded to its size in the constant `shape`, centred, the odd element going to the end
/// (as ONNX's reference does): a `slice_by_index` for the cropped axes, then a `pad`.
fn center_crop_pad(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let dims = ctx.shape(&x)?;
    let rank = dims.len();
    let sizes = ctx
        .const_input(node, 1)?
        .ok_or_else(|| ctx.invalid("input 'shape' is missing"))?
        .to_i64_vec();
    let listed = match ctx.attr(node.ints("axes"))? {
        Some(a) => axes(ctx, &a, rank)?,
        None => (0..rank).collect(),
    };
    if sizes.len() != listed.len() || sizes.iter().any(|&s| s < 1) {
        return Err(ctx.invalid(format!(
            "shape {sizes:?} does not give a positive size for each of the {} axes",
            listed.len()
        )));
    }
    let mut begin = vec![0i64; rank];
    let mut end: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    let mut pads = vec![(0i64, 0i64); rank];
    for (&a, &size) in listed.iter().zip(&sizes) {
        let dim = dims[a] as i64;
        if size < dim {
            begin[a] = (dim - size) / 2;
            end[a] = begin[a] + size;
        } else if size > dim {
            let extra = size - dim;
            pads[a] = (extra / 2, extra - extra / 2);
        }
    }
    let cropped =
        begin.iter().any(|&b| b != 0) || end.iter().zip(&dims).any(|(&e, &d)| e != d as i64);
    let pad = trailing_pad(&pads);
    let mut y = x;
    if cropped {
        let name = if pad.is_some() {
            format!("{out}_cropped")
        } else {
            out.clone()
        };
        let begin_c = ctx.ints(&format!("{out}_begin"), &begin);
        let end_c = ctx.ints(&format!("{out}_end"), &end);
        y = ctx.op1(
            "slice_by_index",
            &name,
            &[("x", &y), ("begin", &begin_c), ("end", &end_c)],
        )?;
    }
    if let Some(pad) = pad {
        let pad_c = ctx.ints(&format!("{out}_pad"), &pad);
        let zero = super::elementwise::scalar_like(
            ctx,
            &format!("{out}_constant_val"),
            ctx.ty(&y)?.dtype,
            0.0,
        );
        y = ctx.op1(
            "pad",
            &out,
            &[("x", &y), ("pad", &pad_c), ("constant_val", &zero)],
        )?;
    }
    ctx.set_output(node, 0, y);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_ends_clamp_like_onnx() {
        // x[1:INT64_MAX] on a dimension of 5.
        assert_eq!(slice_axis(1, i64::MAX, 1, 5), (1, 5, false));
        // x[-2:] → begin 3.
        assert_eq!(slice_axis(-2, i32::MAX as i64, 1, 5), (3, 5, false));
        // x[::-1]: start INT_MAX clamps to 4, end INT_MIN runs past the front.
        assert_eq!(
            slice_axis(i32::MAX as i64, i32::MIN as i64, -1, 5),
            (4, 0, true)
        );
        // x[3:0:-1] stops before index 0.
        assert_eq!(slice_axis(3, 0, -1, 5), (3, 0, false));
    }
}
