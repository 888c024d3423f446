//! Kernels of tensor manipulation ops.

use crate::interp::per_kind;
use crate::interp::{KernelArgs, Value};
use crate::ir::ops::axis::{norm_axes, norm_axis};
use crate::ir::ops::tensor_transformation::{
    expand_positions, permutation, range_len, split_sizes, SliceSpec,
};
use ndarray::{concatenate, stack as nd_stack, ArrayD, ArrayViewD, Axis, IxDyn, Slice};

/// `x` with its elements laid out again in row-major order under `shape`.
fn reshaped<T: Clone>(a: &ArrayD<T>, shape: &[usize]) -> Result<ArrayD<T>, String> {
    a.as_standard_layout()
        .into_owned()
        .into_shape_with_order(IxDyn(shape))
        .map_err(|_| format!("cannot reshape {:?} to {shape:?}", a.shape()))
}

/// Resolves a reshape target (0 copies, -1 infers) against a concrete input shape.
fn concrete_target(from: &[usize], to: &[i64]) -> Result<Vec<usize>, String> {
    if to.contains(&0) && to.len() != from.len() {
        return Err(format!(
            "shape {to:?} contains 0 but the input has rank {}",
            from.len()
        ));
    }
    let mut out: Vec<Option<usize>> = Vec::with_capacity(to.len());
    for (i, &d) in to.iter().enumerate() {
        out.push(match d {
            0 => Some(from[i]),
            -1 => None,
            d if d > 0 => Some(d as usize),
            d => return Err(format!("shape {to:?} has invalid size {d}")),
        });
    }
    let volume: usize = from.iter().product();
    let known: usize = out.iter().flatten().product();
    match out.iter().filter(|d| d.is_none()).count() {
        0 => {}
        1 if known > 0 && volume % known == 0 => {
            let pos = out.iter().position(Option::is_none).unwrap_or(0);
            out[pos] = Some(volume / known);
        }
        _ => return Err(format!("cannot reshape {from:?} to {to:?}")),
    }
    Ok(out.into_iter().flatten().collect())
}

/// `reshape`.
pub fn reshape(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?;
    let target = concrete_target(x.shape(), &args.ints("shape")?)?;
    Ok(vec![per_kind!(x, a => reshaped(a, &target)?)])
}

/// `transpose`: output dim `i` is input dim `perm[i]`.
pub fn transpose(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?;
    let perm = permutation(&args.ints("perm")?, x.shape().len())?;
    Ok(vec![
        per_kind!(x, a => a.view().permuted_axes(IxDyn(&perm)).as_standard_layout().into_owned()),
    ])
}

/// Collects the arrays of one kind from a list of values.
fn same_kind<'a, T>(
    values: &[&'a Value],
    pick: impl Fn(&'a Value) -> Option<&'a ArrayD<T>>,
) -> Result<Vec<ArrayViewD<'a, T>>, String> {
    values
        .iter()
        .map(|v| {
            pick(v)
                .map(ArrayD::view)
                .ok_or_else(|| "values have different kinds".to_string())
        })
        .collect()
}

/// Applies a generic function over a list of same-kind values.
macro_rules! per_kind_list {
    ($values:expr, $views:ident => $body:expr) => {{
        let values = $values;
        match values.first().ok_or("no values")? {
            Value::Float(_) => {
                let $views = same_kind(&values, |v| {
                    if let Value::Float(a) = v {
                        Some(a)
                    } else {
                        None
                    }
                })?;
                Value::Float($body)
            }
            Value::Int(_) => {
                let $views =
                    same_kind(
                        &values,
                        |v| if let Value::Int(a) = v { Some(a) } else { None },
                    )?;
                Value::Int($body)
            }
            Value::Bool(_) => {
                let $views = same_kind(&values, |v| {
                    if let Value::Bool(a) = v {
                        Some(a)
                    } else {
                        None
                    }
                })?;
                Value::Bool($body)
            }
            Value::Str(_) => {
                let $views =
                    same_kind(
                        &values,
                        |v| if let Value::Str(a) = v { Some(a) } else { None },
                    )?;
                Value::Str($body)
            }
        }
    }};
}

fn concat_views<T: Clone>(
    views: &[ArrayViewD<T>],
    axis: usize,
    interleave: bool,
) -> Result<ArrayD<T>, String> {
    if !interleave {
        return concatenate(Axis(axis), views).map_err(|e| format!("cannot concatenate: {e}"));
    }
    // Interleaving: stack on a new axis after `axis`, then merge the two.
    let stacked = nd_stack(Axis(axis + 1), views).map_err(|e| format!("cannot interleave: {e}"))?;
    let mut shape = views[0].shape().to_vec();
    shape[axis] *= views.len();
    reshaped(&stacked, &shape)
}

/// `concat` (with `interleave`, the inputs' slices along `axis` alternate).
pub fn concat(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let values = args.list("values");
    let rank = values
        .first()
        .ok_or("concat needs at least one value")?
        .shape()
        .len();
    let axis = norm_axis(args.int_or("axis", 0)?, rank)?;
    let interleave = args.bool_or("interleave", false)?;
    Ok(vec![
        per_kind_list!(values, views => concat_views(&views, axis, interleave)?),
    ])
}

/// `stack`: joins equal-shaped values along a new axis.
pub fn stack(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let values = args.list("values");
    let rank = values
        .first()
        .ok_or("stack needs at least one value")?
        .shape()
        .len();
    let axis = norm_axis(args.int_or("axis", 0)?, rank + 1)?;
    Ok(vec![
        per_kind_list!(values, views => nd_stack(Axis(axis), &views).map_err(|e| format!("cannot stack: {e}"))?),
    ])
}

/// `split`.
pub fn split(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?;
    let axis = norm_axis(args.int_or("axis", 0)?, x.shape().len())?;
    let num = args.opt_ints("num_splits").and_then(|v| v.first().copied());
    let sizes = split_sizes(
        x.shape()[axis],
        num,
        args.opt_ints("split_sizes").as_deref(),
    )?;
    let mut start = 0;
    let mut outs = Vec::with_capacity(sizes.len());
    for s in sizes {
        let range = Slice::from(start..start + s);
        outs.push(per_kind!(x, a => a.slice_axis(Axis(axis), range).to_owned()));
        start += s;
    }
    Ok(outs)
}

/// `squeeze`: removes the listed size-1 axes, or every size-1 axis.
pub fn squeeze(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?;
    let shape = x.shape();
    let axes = match args.opt_ints("axes") {
        Some(axes) => norm_axes(&axes, shape.len())?,
        None => (0..shape.len()).filter(|&i| shape[i] == 1).collect(),
    };
    if let Some(&bad) = axes.iter().find(|&&i| shape[i] != 1) {
        return Err(format!("cannot squeeze axis {bad} of size {}", shape[bad]));
    }
    let out: Vec<usize> = (0..shape.len())
        .filter(|i| !axes.contains(i))
        .map(|i| shape[i])
        .collect();
    Ok(vec![per_kind!(x, a => reshaped(a, &out)?)])
}

/// `expand_dims`.
pub fn expand_dims(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?;
    let mut shape = x.shape().to_vec();
    for p in expand_positions(&args.ints("axes")?, shape.len())? {
        shape.insert(p, 1);
    }
    Ok(vec![per_kind!(x, a => reshaped(a, &shape)?)])
}

/// `shape`: the input's shape as int32.
pub fn shape(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let dims: Vec<i32> = args.get("x")?.shape().iter().map(|&d| d as i32).collect();
    let n = dims.len();
    Ok(vec![Value::Int(
        ArrayD::from_shape_vec(IxDyn(&[n]), dims).map_err(|e| e.to_string())?,
    )])
}

/// Resolves a possibly negative index into a dimension of size `n`.
fn index(i: i64, n: usize) -> Result<usize, String> {
    let j = if i < 0 { i + n as i64 } else { i };
    if j < 0 || j >= n as i64 {
        return Err(format!(
            "index {i} is out of range for a dimension of size {n}"
        ));
    }
    Ok(j as usize)
}

fn gather_array<T: Clone>(
    x: &ArrayD<T>,
    idx: &ArrayD<i32>,
    axis: usize,
    batch: usize,
) -> Result<ArrayD<T>, String> {
    let xs = x.shape();
    let is = idx.shape();
    if batch > axis || batch > is.len() || xs[..batch] != is[..batch] {
        return Err(format!(
            "batch_dims {batch} do not match x {xs:?} and indices {is:?}"
        ));
    }
    let b: usize = xs[..batch].iter().product();
    let pre: usize = xs[batch..axis].iter().product();
    let n = xs[axis];
    let post: usize = xs[axis + 1..].iter().product();
    let per_batch: usize = is[batch..].iter().product();
    let xv = x.as_standard_layout();
    let xflat = xv.as_slice().ok_or("x is not contiguous")?;
    let iv = idx.as_standard_layout();
    let iflat = iv.as_slice().ok_or("indices are not contiguous")?;
    let mut out = Vec::with_capacity(b * pre * per_batch * post);
    for bi in 0..b {
        for p in 0..pre {
            for k in 0..per_batch {
                let j = index(iflat[bi * per_batch + k] as i64, n)?;
                let base = ((bi * pre + p) * n + j) * post;
                out.extend_from_slice(&xflat[base..base + post]);
            }
        }
    }
    let mut shape = xs[..axis].to_vec();
    shape.extend_from_slice(&is[batch..]);
    shape.extend_from_slice(&xs[axis + 1..]);
    ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| e.to_string())
}

/// `gather` (negative indices count from the end of the axis).
pub fn gather(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?;
    let idx = args.get("indices")?.int()?;
    let axis = norm_axis(args.int_or("axis", 0)?, x.shape().len())?;
    let batch = args.int_or("batch_dims", 0)?;
    let batch = usize::try_from(batch).map_err(|_| format!("batch_dims {batch} is negative"))?;
    Ok(vec![per_kind!(x, a => gather_array(a, idx, axis, batch)?)])
}

fn gather_along<T: Clone>(
    x: &ArrayD<T>,
    idx: &ArrayD<i32>,
    axis: usize,
) -> Result<ArrayD<T>, String> {
    let n = x.shape()[axis];
    let mut pos = vec![0usize; x.ndim()];
    let mut out = Vec::with_capacity(idx.len());
    for (ix, &i) in idx.indexed_iter() {
        for (d, p) in pos.iter_mut().enumerate() {
            *p = if d == axis {
                index(i as i64, n)?
            } else {
                ix[d]
            };
        }
        out.push(
            x.get(IxDyn(&pos))
                .ok_or_else(|| format!("index {pos:?} is outside x {:?}", x.shape()))?
                .clone(),
        );
    }
    ArrayD::from_shape_vec(IxDyn(idx.shape()), out).map_err(|e| e.to_string())
}

/// `gather_along_axis`: `out[..., i, ...] = x[..., indices[..., i, ...], ...]`.
pub fn gather_along_axis(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?;
    let idx = args.get("indices")?.int()?;
    if idx.ndim() != x.shape().len() {
        return Err(format!(
            "indices {:?} must have the rank of x {:?}",
            idx.shape(),
            x.shape()
        ));
    }
    let axis = norm_axis(args.int_or("axis", 0)?, x.shape().len())?;
    Ok(vec![per_kind!(x, a => gather_along(a, idx, axis)?)])
}

/// Takes, along each axis, the listed indices.
fn take<T: Clone>(a: &ArrayD<T>, picks: &[Vec<usize>]) -> ArrayD<T> {
    let mut out = a.clone();
    for (axis, idx) in picks.iter().enumerate() {
        if idx.len() != out.shape()[axis] || idx.iter().enumerate().any(|(i, &j)| i != j) {
            out = out.select(Axis(axis), idx);
        }
    }
    out
}

/// `slice_by_index`: NumPy `x[begin:end:stride, …]` with masks.
pub fn slice_by_index(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?;
    let shape = x.shape().to_vec();
    let masks = ["begin_mask", "end_mask", "squeeze_mask"].map(|m| args.opt_ints(m));
    let spec = SliceSpec::new(
        shape.len(),
        args.ints("begin")?,
        args.ints("end")?,
        args.opt_ints("stride"),
        masks,
    )?;
    let mut picks = Vec::with_capacity(shape.len());
    let mut out_shape = Vec::new();
    for (i, &n) in shape.iter().enumerate() {
        let d = spec.dim(i, n)?;
        picks.push(
            (0..d.len as i64)
                .map(|k| (d.start + k * d.stride) as usize)
                .collect::<Vec<_>>(),
        );
        if !spec.squeeze_mask[i] {
            out_shape.push(d.len);
        }
    }
    Ok(vec![
        per_kind!(x, a => reshaped(&take(a, &picks), &out_shape)?),
    ])
}

/// `slice_by_size`: `size[i]` elements from `begin[i]` (-1 takes the rest).
pub fn slice_by_size(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?;
    let (begin, size) = (args.ints("begin")?, args.ints("size")?);
    let shape = x.shape();
    if begin.len() != shape.len() || size.len() != shape.len() {
        return Err(format!(
            "begin {begin:?} and size {size:?} must have rank(x) = {} entries",
            shape.len()
        ));
    }
    let mut picks = Vec::with_capacity(shape.len());
    for (i, &n) in shape.iter().enumerate() {
        let b = if begin[i] < 0 {
            begin[i] + n as i64
        } else {
            begin[i]
        };
        let len = if size[i] == -1 { n as i64 - b } else { size[i] };
        if b < 0 || len < 0 || b + len > n as i64 {
            return Err(format!(
                "slice of {len} from {} is outside dimension {i} of size {n}",
                begin[i]
            ));
        }
        picks.push((b as usize..(b + len) as usize).collect::<Vec<_>>());
    }
    Ok(vec![per_kind!(x, a => take(a, &picks))])
}

/// `tile`: repeats `x` `reps[i]` times along each axis.
pub fn tile(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?;
    let reps = args.ints("reps")?;
    let shape = x.shape();
    if reps.len() != shape.len() || reps.iter().any(|&r| !(0..=i32::MAX as i64).contains(&r)) {
        return Err(format!(
            "reps {reps:?} must have one non-negative entry per dim of {shape:?}"
        ));
    }
    let picks: Vec<Vec<usize>> = shape
        .iter()
        .zip(&reps)
        .map(|(&n, &r)| (0..n * r as usize).map(|i| i % n.max(1)).collect())
        .collect();
    Ok(vec![per_kind!(x, a => take(a, &picks))])
}

/// Source index of padded position `i` in a dimension of size `n` with begin padding `b`;
/// `None` for constant padding.
fn pad_source(i: usize, b: usize, n: usize, mode: &str) -> Option<usize> {
    let j = i as i64 - b as i64;
    let n = n as i64;
    if (0..n).contains(&j) {
        return Some(j as usize);
    }
    match mode {
        "replicate" => Some(j.clamp(0, n - 1) as usize),
        "reflect" if n > 1 => {
            let period = 2 * (n - 1);
            let m = j.rem_euclid(period);
            Some(if m < n { m } else { period - m } as usize)
        }
        "reflect" => Some(0),
        _ => None,
    }
}

/// `pad` in `constant`, `reflect` or `replicate` mode; `pad` holds (begin, end) pairs for the
/// last `len(pad) / 2` dims.
pub fn pad(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?.to_f32_array()?;
    let pad = args.ints("pad")?;
    let mode = args.str_or("mode", "constant")?;
    let value = args.float_or("constant_val", 0.0)?;
    let rank = x.ndim();
    if pad.len() % 2 != 0
        || pad.len() / 2 > rank
        || pad.iter().any(|&p| !(0..=i32::MAX as i64).contains(&p))
    {
        return Err(format!("pad {pad:?} does not fit rank {rank}"));
    }
    let first = rank - pad.len() / 2;
    let pads: Vec<(usize, usize)> = (0..rank)
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
        .collect();
    // Reflect needs more source elements than padding; replicate and reflect need a source.
    let unpaddable = |n: usize, (b, e): (usize, usize)| {
        (b, e) != (0, 0) && (n == 0 || (mode == "reflect" && (b >= n || e >= n)))
    };
    if mode != "constant" && x.shape().iter().zip(&pads).any(|(&n, &p)| unpaddable(n, p)) {
        return Err(format!(
            "{mode} padding {pad:?} does not fit the dims of {:?}",
            x.shape()
        ));
    }
    let out_shape: Vec<usize> = x
        .shape()
        .iter()
        .zip(&pads)
        .map(|(&n, &(b, e))| n + b + e)
        .collect();
    let mut src = vec![0usize; rank];
    let out = ArrayD::from_shape_fn(IxDyn(&out_shape), |ix| {
        for d in 0..rank {
            match pad_source(ix[d], pads[d].0, x.shape()[d], mode) {
                Some(s) => src[d] = s,
                None => return value,
            }
        }
        x[IxDyn(&src)]
    });
    Ok(vec![Value::Float(out)])
}

/// `fill`: a tensor of `shape` filled with `value` (0.0 by default).
pub fn fill(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let shape = args.ints("shape")?;
    if shape.iter().any(|&d| d < 0) {
        return Err(format!("shape {shape:?} has negative sizes"));
    }
    let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    let value = match args.opt("value") {
        None => Value::Float(ArrayD::zeros(IxDyn(&[]))),
        Some(v) => v.clone(),
    };
    Ok(vec![
        per_kind!(&value, a => ArrayD::from_elem(IxDyn(&shape), a.iter().next().cloned().ok_or("value is empty")?)),
    ])
}

/// `range_1d`: `start, start + step, …` up to (excluding) `end`.
pub fn range_1d(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let (start, end, step) = (args.get("start")?, args.get("end")?, args.get("step")?);
    let scalar = |v: &Value| {
        v.to_f32_array()
            .ok()
            .and_then(|a| a.iter().next().copied().map(f64::from))
    };
    let out = match (start, end, step) {
        (Value::Int(s), Value::Int(e), Value::Int(st)) => {
            let get = |a: &ArrayD<i32>| {
                a.iter()
                    .next()
                    .copied()
                    .map(i64::from)
                    .ok_or("empty range bound")
            };
            let (s, e, st) = (get(s)?, get(e)?, get(st)?);
            let n = range_len(s as f64, e as f64, st as f64)?;
            Value::Int(ArrayD::from_shape_fn(IxDyn(&[n]), |ix| {
                (s + ix[0] as i64 * st) as i32
            }))
        }
        _ => {
            let (s, e, st) = (scalar(start), scalar(end), scalar(step));
            let (s, e, st) = (
                s.ok_or("empty start")?,
                e.ok_or("empty end")?,
                st.ok_or("empty step")?,
            );
            let n = range_len(s, e, st)?;
            Value::Float(ArrayD::from_shape_fn(IxDyn(&[n]), |ix| {
                (s + ix[0] as f64 * st) as f32
            }))
        }
    };
    Ok(vec![out])
}

/// `flatten2d`: `[prod(shape[:axis]), prod(shape[axis:])]`.
pub fn flatten2d(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?;
    let shape = x.shape();
    let axis = args.int_or("axis", 1)?;
    let r = shape.len() as i64;
    if axis < -r || axis > r {
        return Err(format!("axis {axis} out of range for rank {r}"));
    }
    let axis = if axis < 0 { axis + r } else { axis } as usize;
    let out = [
        shape[..axis].iter().product(),
        shape[axis..].iter().product(),
    ];
    Ok(vec![per_kind!(x, a => reshaped(a, &out)?)])
}

/// `reverse` along the listed axes (all by default).
pub fn reverse(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?;
    let rank = x.shape().len();
    let axes = match args.opt_ints("axes") {
        Some(axes) => norm_axes(&axes, rank)?,
        None => (0..rank).collect(),
    };
    let picks: Vec<Vec<usize>> = x
        .shape()
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            if axes.contains(&i) {
                (0..n).rev().collect()
            } else {
                (0..n).collect()
            }
        })
        .collect();
    Ok(vec![per_kind!(x, a => take(a, &picks))])
}

/// Rearranges a rank-4 float tensor: `out[n, c, h, w] = x[n, src(c, h, w)]` where `src` maps
/// output coordinates to input (channel, row, column).
fn rearrange(
    x: &ArrayD<f32>,
    out_shape: [usize; 4],
    src: impl Fn(usize, usize, usize) -> (usize, usize, usize),
) -> Result<ArrayD<f32>, String> {
    let x = x
        .view()
        .into_dimensionality::<ndarray::Ix4>()
        .map_err(|_| "x must have rank 4".to_string())?;
    Ok(ArrayD::from_shape_fn(IxDyn(&out_shape), |ix| {
        let (c, h, w) = src(ix[1], ix[2], ix[3]);
        x[[ix[0], c, h, w]]
    }))
}

fn block_arg(
    args: &KernelArgs,
    name: &str,
    x: &ArrayD<f32>,
) -> Result<(usize, [usize; 4]), String> {
    let b = args.int_or(name, 0)?;
    if b < 1 || x.ndim() != 4 {
        return Err(format!(
            "{name} must be positive and x of rank 4, got {b} and {:?}",
            x.shape()
        ));
    }
    let s = x.shape();
    Ok((b as usize, [s[0], s[1], s[2], s[3]]))
}

/// `depth_to_space` (DCR order): `out[n, c, h*b+i, w*b+j] = x[n, (i*b+j)*C' + c, h, w]`.
pub fn depth_to_space(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?.float()?;
    let (b, [n, c, h, w]) = block_arg(args, "block_size", x)?;
    if c % (b * b) != 0 {
        return Err(format!(
            "channels {c} are not divisible by block_size² = {}",
            b * b
        ));
    }
    let co = c / (b * b);
    let out = rearrange(x, [n, co, h * b, w * b], |oc, oh, ow| {
        (((oh % b) * b + ow % b) * co + oc, oh / b, ow / b)
    })?;
    Ok(vec![Value::Float(out)])
}

/// `space_to_depth`: the inverse of `depth_to_space`.
pub fn space_to_depth(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?.float()?;
    let (b, [n, c, h, w]) = block_arg(args, "block_size", x)?;
    if h % b != 0 || w % b != 0 {
        return Err(format!(
            "spatial dims {h}×{w} are not divisible by block_size {b}"
        ));
    }
    let out = rearrange(x, [n, c * b * b, h / b, w / b], |oc, oh, ow| {
        let (block, ic) = (oc / c, oc % c);
        (ic, oh * b + block / b, ow * b + block % b)
    })?;
    Ok(vec![Value::Float(out)])
}

/// `pixel_shuffle` (CRD order): `out[n, c, h*r+i, w*r+j] = x[n, c*r*r + i*r + j, h, w]`.
pub fn pixel_shuffle(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?.float()?;
    let (r, [n, c, h, w]) = block_arg(args, "upscale_factor", x)?;
    if c % (r * r) != 0 {
        return Err(format!(
            "channels {c} are not divisible by upscale_factor² = {}",
            r * r
        ));
    }
    let out = rearrange(x, [n, c / (r * r), h * r, w * r], |oc, oh, ow| {
        (oc * r * r + (oh % r) * r + ow % r, oh / r, ow / r)
    })?;
    Ok(vec![Value::Float(out)])
}

#[cfg(test)]
mod tests {
    use crate::ir::ops::testing::{floats, infer, ints, run, try_run};
    use crate::ir::{DType, Dim, Tensor, TensorType};

    fn iota(shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::from_f32(shape, &(0..n).map(|v| v as f32).collect::<Vec<_>>())
    }

    fn check(op: &str, inputs: &[(&str, Tensor)], shape: &[usize], values: &[f32]) {
        let ty = infer(op, inputs).unwrap();
        assert_eq!(ty[0], TensorType::fixed(DType::F32, shape), "{op} type");
        assert_eq!(floats(&run(op, inputs, &ty)[0]), values, "{op} values");
    }

    #[test]
    fn reshape_infers_minus_one_and_copies_zero() {
        let x = iota(&[2, 3, 4]);
        let ty = infer(
            "reshape",
            &[("x", x.clone()), ("shape", Tensor::vec_i32(&[0, -1]))],
        );
        assert!(ty.is_err(), "0 needs len(shape) == rank(x)");
        let inputs = [("x", x.clone()), ("shape", Tensor::vec_i32(&[0, -1, 2]))];
        let ty = infer("reshape", &inputs).unwrap();
        assert_eq!(ty[0], TensorType::fixed(DType::F32, &[2, 6, 2]));
        assert_eq!(
            floats(&run("reshape", &inputs, &ty)[0]),
            (0..24).map(|v| v as f32).collect::<Vec<_>>()
        );
        assert!(infer("reshape", &[("x", x), ("shape", Tensor::vec_i32(&[5, -1]))]).is_err());
    }

    #[test]
    fn reshape_of_symbolic_batch_keeps_unknowns_symbolic() {
        let ty = TensorType {
            dtype: DType::F32,
            shape: vec![Dim::Symbol("n".into()), Dim::Fixed(3), Dim::Fixed(4)],
        };
        let x = crate::ir::Var::new("x", ty);
        let mut b = crate::ir::Builder::new("main", vec![x]);
        let shape = b.constant("shape", Tensor::vec_i32(&[0, -1]));
        let err = b.op1("reshape", "r", &[("x", &["x"]), ("shape", &[&shape])]);
        assert!(err.is_err());
        // 0 copies the batch symbol, so -1 is known: 3 * 4 / 2.
        let shape = b.constant("shape", Tensor::vec_i32(&[0, 2, -1]));
        let out = b
            .op1("reshape", "r", &[("x", &["x"]), ("shape", &[&shape])])
            .unwrap();
        assert_eq!(b.ty(&out).unwrap().shape[2], Dim::Fixed(6));
        assert_eq!(b.ty(&out).unwrap().shape[0], Dim::Symbol("n".into()));
        let shape = b.constant("shape", Tensor::vec_i32(&[-1, 12]));
        let out = b
            .op1("reshape", "r", &[("x", &["x"]), ("shape", &[&shape])])
            .unwrap();
        let t = b.ty(&out).unwrap();
        assert!(matches!(t.shape[0], Dim::Symbol(_)));
        assert_eq!(t.shape[1], Dim::Fixed(12));
    }

    #[test]
    fn transpose_concat_split() {
        let x = iota(&[2, 3]);
        check(
            "transpose",
            &[("x", x.clone()), ("perm", Tensor::vec_i32(&[1, 0]))],
            &[3, 2],
            &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0],
        );
        let y = Tensor::from_f32(&[2, 1], &[10.0, 20.0]);
        let op = crate::ir::Operation {
            op_type: "concat".into(),
            name: "c".into(),
            inputs: vec![
                (
                    "values".into(),
                    vec![
                        crate::ir::Argument::Value(x.clone()),
                        crate::ir::Argument::Value(y),
                    ],
                ),
                (
                    "axis".into(),
                    vec![crate::ir::Argument::Value(Tensor::scalar_i32(-1))],
                ),
            ],
            outputs: vec![],
            attributes: Default::default(),
            origin: None,
        };
        let ty = crate::ir::infer_op(&op, &|_| None).unwrap();
        assert_eq!(ty[0], TensorType::fixed(DType::F32, &[2, 4]));
        let out = crate::interp::eval_op(&op, &|_| None, &ty).unwrap();
        assert_eq!(
            floats(&out[0]),
            vec![0.0, 1.0, 2.0, 10.0, 3.0, 4.0, 5.0, 20.0]
        );

        let inputs = [
            ("x", x),
            ("split_sizes", Tensor::vec_i32(&[1, 2])),
            ("axis", Tensor::scalar_i32(1)),
        ];
        let ty = infer("split", &inputs).unwrap();
        assert_eq!(
            ty,
            vec![
                TensorType::fixed(DType::F32, &[2, 1]),
                TensorType::fixed(DType::F32, &[2, 2])
            ]
        );
        let out = run("split", &inputs, &ty);
        assert_eq!(floats(&out[0]), vec![0.0, 3.0]);
        assert_eq!(floats(&out[1]), vec![1.0, 2.0, 4.0, 5.0]);
    }

    #[test]
    fn gather_with_negative_indices_and_batch_dims() {
        let x = iota(&[3, 2]);
        let idx = Tensor::from_i32(&[2], &[-1, 0]);
        check(
            "gather",
            &[("x", x.clone()), ("indices", idx.clone())],
            &[2, 2],
            &[4.0, 5.0, 0.0, 1.0],
        );
        let idx2 = Tensor::from_i32(&[2, 1], &[1, -2]);
        check(
            "gather",
            &[
                ("x", x.clone()),
                ("indices", idx2),
                ("axis", Tensor::scalar_i32(1)),
            ],
            &[3, 2, 1],
            &[1.0, 0.0, 3.0, 2.0, 5.0, 4.0],
        );
        // batch_dims 1: row i takes x[i, idx[i]].
        let idx3 = Tensor::from_i32(&[3, 1], &[1, 0, 1]);
        check(
            "gather",
            &[
                ("x", x.clone()),
                ("indices", idx3),
                ("axis", Tensor::scalar_i32(1)),
                ("batch_dims", Tensor::scalar_i32(1)),
            ],
            &[3, 1],
            &[1.0, 2.0, 5.0],
        );
        let bad = [("x", x), ("indices", Tensor::from_i32(&[1], &[3]))];
        assert!(try_run("gather", &bad, &[TensorType::fixed(DType::F32, &[1, 2])]).is_err());
    }

    #[test]
    fn gather_along_axis_picks_per_position() {
        let x = iota(&[2, 3]);
        let idx = Tensor::from_i32(&[2, 2], &[2, 0, -1, 1]);
        check(
            "gather_along_axis",
            &[("x", x), ("indices", idx), ("axis", Tensor::scalar_i32(1))],
            &[2, 2],
            &[2.0, 0.0, 5.0, 4.0],
        );
    }

    #[test]
    fn slice_by_index_with_masks_and_negative_stride() {
        let x = iota(&[3, 4]);
        let b = |v: &[bool]| Tensor::from_bool(&[v.len()], v);
        // x[1:, ::-2] → rows 1..3, cols 3, 1.
        let inputs = [
            ("x", x.clone()),
            ("begin", Tensor::vec_i32(&[1, 0])),
            ("end", Tensor::vec_i32(&[0, 0])),
            ("stride", Tensor::vec_i32(&[1, -2])),
            ("begin_mask", b(&[false, true])),
            ("end_mask", b(&[true, true])),
        ];
        check("slice_by_index", &inputs, &[2, 2], &[7.0, 5.0, 11.0, 9.0]);
        // x[-1, 1:-1] with squeeze on axis 0.
        let inputs = [
            ("x", x.clone()),
            ("begin", Tensor::vec_i32(&[-1, 1])),
            ("end", Tensor::vec_i32(&[0, -1])),
            ("squeeze_mask", b(&[true, false])),
        ];
        check("slice_by_index", &inputs, &[2], &[9.0, 10.0]);
        // Out-of-range bounds clamp: x[0:100, -100:2].
        let inputs = [
            ("x", x),
            ("begin", Tensor::vec_i32(&[0, -100])),
            ("end", Tensor::vec_i32(&[100, 2])),
        ];
        check(
            "slice_by_index",
            &inputs,
            &[3, 2],
            &[0.0, 1.0, 4.0, 5.0, 8.0, 9.0],
        );
    }

    #[test]
    fn squeeze_expand_flatten_tile_reverse() {
        let x = iota(&[1, 2, 1]);
        check("squeeze", &[("x", x.clone())], &[2], &[0.0, 1.0]);
        check(
            "squeeze",
            &[("x", x.clone()), ("axes", Tensor::vec_i32(&[-1]))],
            &[1, 2],
            &[0.0, 1.0],
        );
        check(
            "expand_dims",
            &[("x", x.clone()), ("axes", Tensor::vec_i32(&[0, -1]))],
            &[1, 1, 2, 1, 1],
            &[0.0, 1.0],
        );
        check(
            "flatten2d",
            &[("x", iota(&[2, 3, 2])), ("axis", Tensor::scalar_i32(-1))],
            &[6, 2],
            &(0..12).map(|v| v as f32).collect::<Vec<_>>(),
        );
        check(
            "tile",
            &[("x", iota(&[2])), ("reps", Tensor::vec_i32(&[3]))],
            &[6],
            &[0.0, 1.0, 0.0, 1.0, 0.0, 1.0],
        );
        check(
            "reverse",
            &[("x", iota(&[2, 2])), ("axes", Tensor::vec_i32(&[1]))],
            &[2, 2],
            &[1.0, 0.0, 3.0, 2.0],
        );
    }

    #[test]
    fn shape_fill_range() {
        let ty = infer("shape", &[("x", iota(&[2, 5]))]).unwrap();
        assert_eq!(ty[0], TensorType::fixed(DType::I32, &[2]));
        assert_eq!(
            ints(&run("shape", &[("x", iota(&[2, 5]))], &ty)[0]),
            vec![2, 5]
        );
        check(
            "fill",
            &[
                ("shape", Tensor::vec_i32(&[2])),
                ("value", Tensor::scalar_f32(1.5)),
            ],
            &[2],
            &[1.5, 1.5],
        );
        let inputs = [
            ("end", Tensor::scalar_i32(-5)),
            ("start", Tensor::scalar_i32(4)),
            ("step", Tensor::scalar_i32(-3)),
        ];
        let ty = infer("range_1d", &inputs).unwrap();
        assert_eq!(ty[0], TensorType::fixed(DType::I32, &[3]));
        assert_eq!(ints(&run("range_1d", &inputs, &ty)[0]), vec![4, 1, -2]);
        let inputs = [
            ("end", Tensor::scalar_f32(1.0)),
            ("start", Tensor::scalar_f32(0.0)),
            ("step", Tensor::scalar_f32(0.3)),
        ];
        let ty = infer("range_1d", &inputs).unwrap();
        assert_eq!(ty[0], TensorType::fixed(DType::F32, &[4]));
    }

    #[test]
    fn pad_modes() {
        let x = Tensor::from_f32(&[1, 3], &[1.0, 2.0, 3.0]);
        let pad = Tensor::vec_i32(&[2, 1]);
        check(
            "pad",
            &[
                ("x", x.clone()),
                ("pad", pad.clone()),
                ("constant_val", Tensor::scalar_f32(9.0)),
            ],
            &[1, 6],
            &[9.0, 9.0, 1.0, 2.0, 3.0, 9.0],
        );
        let mode = |m: &str| Tensor::scalar_string(m);
        check(
            "pad",
            &[
                ("x", x.clone()),
                ("pad", pad.clone()),
                ("mode", mode("reflect")),
            ],
            &[1, 6],
            &[3.0, 2.0, 1.0, 2.0, 3.0, 2.0],
        );
        check(
            "pad",
            &[("x", x), ("pad", pad), ("mode", mode("replicate"))],
            &[1, 6],
            &[1.0, 1.0, 1.0, 2.0, 3.0, 3.0],
        );
    }

    #[test]
    fn depth_space_round_trip() {
        // ONNX DepthToSpace (DCR) example: x [1, 8, 1, 1] = 0..8, block 2 → [1, 2, 2, 2].
        let x = iota(&[1, 8, 1, 1]);
        let b = Tensor::scalar_i32(2);
        check(
            "depth_to_space",
            &[("x", x.clone()), ("block_size", b.clone())],
            &[1, 2, 2, 2],
            &[0.0, 2.0, 4.0, 6.0, 1.0, 3.0, 5.0, 7.0],
        );
        check(
            "pixel_shuffle",
            &[("x", x), ("upscale_factor", b.clone())],
            &[1, 2, 2, 2],
            &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
        );
        let y = Tensor::from_f32(&[1, 2, 2, 2], &[0.0, 2.0, 4.0, 6.0, 1.0, 3.0, 5.0, 7.0]);
        check(
            "space_to_depth",
            &[("x", y), ("block_size", b)],
            &[1, 8, 1, 1],
            &(0..8).map(|v| v as f32).collect::<Vec<_>>(),
        );
    }
}
