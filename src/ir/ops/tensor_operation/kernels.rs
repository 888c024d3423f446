//! Kernels of tensor operations.

use super::{pad_pairs, PadAttrs, PadMode};
use crate::interp::per_kind;
use crate::interp::{KernelArgs, Value};
use crate::ir::ops::axis::norm_axis;
use crate::ir::ops::scatter_gather::kernels::take;
use crate::ir::ops::tensor_operation::{range_len, split_sizes};
use crate::ir::ops::tensor_transformation::kernels::reshaped;
use crate::ir::ops::OpArgs;
use ndarray::{concatenate, stack as nd_stack, ArrayD, ArrayViewD, Axis, Dimension, IxDyn, Slice};
use std::cmp::Ordering;

/// `cumsum` along `axis` (default 0), optionally exclusive and/or from the end.
pub fn cumsum(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?;
    let axis = norm_axis(args.int("axis")?, x.shape().len())?;
    let exclusive = args.bool("exclusive")?;
    let reverse = args.bool("reverse")?;
    fn scan<T: Copy + std::ops::Add<Output = T> + Default>(
        a: &ArrayD<T>,
        axis: usize,
        exclusive: bool,
        reverse: bool,
    ) -> ArrayD<T> {
        let mut out = a.clone();
        for mut lane in out.lanes_mut(Axis(axis)) {
            let n = lane.len();
            let mut acc = T::default();
            for step in 0..n {
                let i = if reverse { n - 1 - step } else { step };
                let v = lane[i];
                lane[i] = if exclusive { acc } else { acc + v };
                acc = acc + v;
            }
        }
        out
    }
    let out = match x {
        Value::Int(a) => {
            Value::Int(scan(&a.mapv(std::num::Wrapping), axis, exclusive, reverse).mapv(|v| v.0))
        }
        other => Value::Float(scan(&other.to_f32_array()?, axis, exclusive, reverse)),
    };
    Ok(vec![out])
}

/// Orders positions of one lane: descending by default, ties keep the lower index first.
fn order(lane: &[f32], ascending: bool) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..lane.len()).collect();
    idx.sort_by(|&i, &j| {
        let ord = lane[i].partial_cmp(&lane[j]).unwrap_or(Ordering::Equal);
        if ascending {
            ord
        } else {
            ord.reverse()
        }
    });
    idx
}

/// Sorts every lane along `axis`, keeping the first `k`; returns (values, indices).
fn sorted(x: &ArrayD<f32>, axis: usize, k: usize, ascending: bool) -> (ArrayD<f32>, ArrayD<i32>) {
    let mut shape = x.shape().to_vec();
    shape[axis] = k;
    let mut values = ArrayD::zeros(IxDyn(&shape));
    let mut indices = ArrayD::zeros(IxDyn(&shape));
    for ((src, mut dv), mut di) in x
        .lanes(Axis(axis))
        .into_iter()
        .zip(values.lanes_mut(Axis(axis)))
        .zip(indices.lanes_mut(Axis(axis)))
    {
        let lane: Vec<f32> = src.iter().copied().collect();
        for (slot, &i) in order(&lane, ascending).iter().take(k).enumerate() {
            dv[slot] = lane[i];
            di[slot] = i as i32;
        }
    }
    (values, indices)
}

/// `topk`: the `k` largest (or smallest, with `ascending`) values along `axis` and their
/// indices.
pub fn topk(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?;
    let xf = x.to_f32_array()?;
    let axis = norm_axis(args.int("axis")?, xf.ndim())?;
    let k = args.int("k")?;
    if k < 1 || k as usize > xf.shape()[axis] {
        return Err(format!("k = {k} must be in [1, {}]", xf.shape()[axis]));
    }
    let (values, indices) = sorted(&xf, axis, k as usize, args.bool("ascending")?);
    Ok(vec![Value::Float(values), Value::Int(indices)])
}

/// `argsort`: indices that sort each lane along `axis` (descending unless `ascending`).
pub fn argsort(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?.to_f32_array()?;
    let axis = norm_axis(args.int("axis")?, x.ndim())?;
    let n = x.shape()[axis];
    let (_, indices) = sorted(&x, axis, n, args.bool("ascending")?);
    Ok(vec![Value::Int(indices)])
}

/// `one_hot`: a new axis of `one_hot_vector_size` holding `on_value` at each index and
/// `off_value` elsewhere (indices outside the range give all `off_value`; negative indices
/// count from the end).
pub fn one_hot(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let idx = args.get("indices")?.int()?;
    let depth = args.int("one_hot_vector_size")?;
    let depth =
        usize::try_from(depth).map_err(|_| format!("one_hot_vector_size {depth} is negative"))?;
    let axis = norm_axis(args.int("axis")?, idx.ndim() + 1)?;
    let on = args
        .opt("on_value")
        .cloned()
        .unwrap_or(Value::Int(ArrayD::from_elem(IxDyn(&[]), 1)));
    let off = args
        .opt("off_value")
        .cloned()
        .unwrap_or(Value::Int(ArrayD::from_elem(IxDyn(&[]), 0)));
    let mut shape = idx.shape().to_vec();
    shape.insert(axis, depth);
    let hot = |ix: &IxDyn| {
        let pos = ix[axis] as i64;
        let mut src: Vec<usize> = ix.slice().to_vec();
        src.remove(axis);
        let i = idx[IxDyn(&src)] as i64;
        let i = if i < 0 { i + depth as i64 } else { i };
        i == pos
    };
    let first = |v: &Value| {
        v.to_f32_array()
            .ok()
            .and_then(|a| a.iter().next().copied())
            .ok_or("on/off value is empty")
    };
    let out = match (&on, &off) {
        (Value::Int(_), Value::Int(_)) => {
            let (p, q) = (first(&on)? as i32, first(&off)? as i32);
            Value::Int(ArrayD::from_shape_fn(IxDyn(&shape), |ix| {
                if hot(&ix) {
                    p
                } else {
                    q
                }
            }))
        }
        (Value::Bool(_), Value::Bool(_)) => {
            let (p, q) = (first(&on)? != 0.0, first(&off)? != 0.0);
            Value::Bool(ArrayD::from_shape_fn(IxDyn(&shape), |ix| {
                if hot(&ix) {
                    p
                } else {
                    q
                }
            }))
        }
        _ => {
            let (p, q) = (first(&on)?, first(&off)?);
            Value::Float(ArrayD::from_shape_fn(IxDyn(&shape), |ix| {
                if hot(&ix) {
                    p
                } else {
                    q
                }
            }))
        }
    };
    Ok(vec![out])
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
    let axis = norm_axis(args.int("axis")?, rank)?;
    let interleave = args.bool("interleave")?;
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
    let axis = norm_axis(args.int("axis")?, rank + 1)?;
    Ok(vec![
        per_kind_list!(values, views => nd_stack(Axis(axis), &views).map_err(|e| format!("cannot stack: {e}"))?),
    ])
}

/// `split`.
pub fn split(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?;
    let axis = norm_axis(args.int("axis")?, x.shape().len())?;
    let num = args
        .opt_ints("num_splits")?
        .and_then(|v| v.first().copied());
    let sizes = split_sizes(
        x.shape()[axis],
        num,
        args.opt_ints("split_sizes")?.as_deref(),
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

/// `shape`: the input's shape as int32.
pub fn shape(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let dims: Vec<i32> = args.get("x")?.shape().iter().map(|&d| d as i32).collect();
    let n = dims.len();
    Ok(vec![Value::Int(
        ArrayD::from_shape_vec(IxDyn(&[n]), dims).map_err(|e| e.to_string())?,
    )])
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
fn pad_source(i: usize, b: usize, n: usize, mode: PadMode) -> Option<usize> {
    let j = i as i64 - b as i64;
    let n = n as i64;
    if (0..n).contains(&j) {
        return Some(j as usize);
    }
    match mode {
        PadMode::Replicate => Some(j.clamp(0, n - 1) as usize),
        PadMode::Reflect if n > 1 => {
            let period = 2 * (n - 1);
            let m = j.rem_euclid(period);
            Some(if m < n { m } else { period - m } as usize)
        }
        PadMode::Reflect => Some(0),
        PadMode::Constant => None,
    }
}

/// `pad` in `constant`, `reflect` or `replicate` mode; `pad` holds (begin, end) pairs for the
/// last `len(pad) / 2` dims.
pub fn pad(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?.to_f32_array()?;
    let pad = args.ints("pad")?;
    let attrs = PadAttrs::parse(args)?;
    let (mode, value) = (attrs.mode, attrs.constant_val as f32);
    let rank = x.ndim();
    let pads = pad_pairs(&pad, rank)?;
    // Reflect needs more source elements than padding; replicate and reflect need a source.
    let unpaddable = |n: usize, (b, e): (usize, usize)| {
        (b, e) != (0, 0) && (n == 0 || (mode == PadMode::Reflect && (b >= n || e >= n)))
    };
    if mode != PadMode::Constant && x.shape().iter().zip(&pads).any(|(&n, &p)| unpaddable(n, p)) {
        return Err(format!(
            "{} padding {pad:?} does not fit the dims of {:?}",
            args.str("mode")?,
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
    let axis = args.int("axis")?;
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

/// `band_part`: keeps the band of the last two dims with `lower` sub- and `upper`
/// super-diagonals (negative keeps the whole triangle); zeroes the rest.
pub fn band_part(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?;
    let (lower, upper) = (args.int("lower")?, args.int("upper")?);
    let r = x.shape().len();
    if r < 2 {
        return Err(format!("x {:?} must have rank 2 or more", x.shape()));
    }
    let keep = |ix: &IxDyn| {
        let (i, j) = (ix[r - 2] as i64, ix[r - 1] as i64);
        (lower < 0 || i - j <= lower) && (upper < 0 || j - i <= upper)
    };
    fn mask<T: Clone + Default>(a: &ArrayD<T>, keep: impl Fn(&IxDyn) -> bool) -> ArrayD<T> {
        let mut out = a.clone();
        for (ix, v) in out.indexed_iter_mut() {
            if !keep(&ix) {
                *v = T::default();
            }
        }
        out
    }
    Ok(vec![per_kind!(x, a => mask(a, keep))])
}

/// `non_zero`: the coordinates of the non-zero elements, one row each, in row-major order.
pub fn non_zero(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?.to_f32_array()?;
    let rank = x.ndim();
    let mut coords = Vec::new();
    let mut count = 0;
    for (ix, &v) in x.indexed_iter() {
        if v != 0.0 {
            coords.extend(ix.slice().iter().map(|&c| c as i32));
            count += 1;
        }
    }
    Ok(vec![Value::Int(
        ArrayD::from_shape_vec(IxDyn(&[count, rank]), coords).map_err(|e| e.to_string())?,
    )])
}

/// `identity`.
pub fn identity(args: &KernelArgs) -> Result<Vec<Value>, String> {
    Ok(vec![args.get("x")?.clone()])
}

#[cfg(test)]
mod tests {
    use crate::ir::ops::testing::{check, floats, infer, ints, iota, run};
    use crate::ir::{DType, Tensor, TensorType};

    #[test]
    fn cumsum_exclusive_and_reverse() {
        let x = Tensor::from_f32(&[4], &[1.0, 2.0, 3.0, 4.0]);
        let t = [x.ty()];
        assert_eq!(
            floats(&run("cumsum", &[("x", x.clone())], &t)[0]),
            vec![1.0, 3.0, 6.0, 10.0]
        );
        let opts = [
            ("x", x),
            ("exclusive", Tensor::scalar_bool(true)),
            ("reverse", Tensor::scalar_bool(true)),
        ];
        assert_eq!(
            floats(&run("cumsum", &opts, &t)[0]),
            vec![9.0, 7.0, 4.0, 0.0]
        );
    }

    #[test]
    fn topk_and_argsort() {
        let x = Tensor::from_f32(&[2, 3], &[1.0, 3.0, 2.0, 5.0, 5.0, 4.0]);
        let inputs = [("x", x.clone()), ("k", Tensor::scalar_i32(2))];
        let ty = infer("topk", &inputs).unwrap();
        assert_eq!(ty[1], TensorType::fixed(DType::I32, &[2, 2]));
        let out = run("topk", &inputs, &ty);
        assert_eq!(floats(&out[0]), vec![3.0, 2.0, 5.0, 5.0]);
        assert_eq!(ints(&out[1]), vec![1, 2, 0, 1]);
        let inputs = [
            ("x", x),
            ("axis", Tensor::scalar_i32(0)),
            ("ascending", Tensor::scalar_bool(true)),
        ];
        let ty = infer("argsort", &inputs).unwrap();
        assert_eq!(
            ints(&run("argsort", &inputs, &ty)[0]),
            vec![0, 0, 0, 1, 1, 1]
        );
    }

    #[test]
    fn one_hot_inserts_axis() {
        let inputs = [
            ("indices", Tensor::from_i32(&[3], &[0, -1, 5])),
            ("one_hot_vector_size", Tensor::scalar_i32(3)),
            ("axis", Tensor::scalar_i32(0)),
            ("on_value", Tensor::scalar_f32(2.0)),
            ("off_value", Tensor::scalar_f32(0.5)),
        ];
        let ty = infer("one_hot", &inputs).unwrap();
        assert_eq!(ty[0], TensorType::fixed(DType::F32, &[3, 3]));
        // Column j is the one-hot of indices[j]: 0 → row 0, -1 → row 2, 5 → none.
        assert_eq!(
            floats(&run("one_hot", &inputs, &ty)[0]),
            vec![2.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 2.0, 0.5]
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
    fn band_part_and_non_zero() {
        let x = Tensor::from_f32(&[3, 3], &[1.0; 9]);
        let inputs = [
            ("x", x),
            ("lower", Tensor::scalar_i32(-1)),
            ("upper", Tensor::scalar_i32(0)),
        ];
        let ty = infer("band_part", &inputs).unwrap();
        assert_eq!(
            floats(&run("band_part", &inputs, &ty)[0]),
            vec![1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0]
        );
        let x = Tensor::from_f32(&[2, 2], &[0.0, 3.0, 4.0, 0.0]);
        let ty = infer("non_zero", &[("x", x.clone())]).unwrap();
        let out = crate::ir::ops::testing::try_run("non_zero", &[("x", x)], &ty).unwrap();
        assert_eq!(ints(&out[0]), vec![0, 1, 1, 0]);
    }

    #[test]
    fn concat_and_split() {
        let x = iota(&[2, 3]);
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
    fn flatten2d_and_tile() {
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
    }
}
