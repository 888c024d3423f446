//! Kernels of gathers and scatters. Scatters apply updates in index order, so with repeated
//! indices `update` keeps the last one.

use super::ScatterMode;
use crate::interp::per_kind;
use crate::interp::{KernelArgs, Value};
use crate::ir::ops::axis::norm_axis;
use crate::ir::ops::OpArgs;
use ndarray::{ArrayD, Axis, Dimension, IxDyn};

/// Resolves a possibly negative index into a dimension of size `n`.
fn index(i: i64, n: usize) -> Result<usize, String> {
    let j = if i < 0 { i + n as i64 } else { i };
    usize::try_from(j)
        .ok()
        .filter(|&j| j < n)
        .ok_or_else(|| format!("index {i} is out of range for a dimension of size {n}"))
}

/// Combines an existing value with an update.
fn combine(mode: ScatterMode) -> fn(f32, f32) -> f32 {
    match mode {
        ScatterMode::Update => |_, u| u,
        ScatterMode::Add => |d, u| d + u,
        ScatterMode::Sub => |d, u| d - u,
        ScatterMode::Mul => |d, u| d * u,
        ScatterMode::Div => |d, u| d / u,
        ScatterMode::Max => f32::max,
        ScatterMode::Min => f32::min,
    }
}

/// Row-major strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// The flat offset of the leading `K` coordinates given by an index row.
fn nd_offset(row: &[i32], shape: &[usize], strides: &[usize]) -> Result<usize, String> {
    row.iter().enumerate().try_fold(0, |acc, (d, &i)| {
        Ok(acc + index(i as i64, shape[d])? * strides[d])
    })
}

fn gather_nd_array<T: Clone>(x: &ArrayD<T>, idx: &ArrayD<i32>) -> Result<ArrayD<T>, String> {
    let k = *idx.shape().last().ok_or("indices must have rank ≥ 1")?;
    if k > x.ndim() {
        return Err(format!("index depth {k} exceeds rank {}", x.ndim()));
    }
    let xs = x.shape().to_vec();
    let st = strides(&xs);
    let inner: usize = xs[k..].iter().product();
    let xv = x.as_standard_layout();
    let xf = xv.as_slice().ok_or("x is not contiguous")?;
    let iv = idx.as_standard_layout();
    let rows = iv.as_slice().ok_or("indices are not contiguous")?;
    let count: usize = idx.shape()[..idx.ndim() - 1].iter().product();
    let mut out = Vec::with_capacity(count * inner);
    for r in 0..count {
        let base = nd_offset(&rows[r * k..(r + 1) * k], &xs, &st)?;
        out.extend_from_slice(&xf[base..base + inner]);
    }
    let mut shape = idx.shape()[..idx.ndim() - 1].to_vec();
    shape.extend_from_slice(&xs[k..]);
    ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| e.to_string())
}

/// `gather_nd`: `out[i…] = x[indices[i…, :], …]`.
pub fn gather_nd(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?;
    let idx = args.get("indices")?.int()?;
    Ok(vec![per_kind!(x, a => gather_nd_array(a, idx)?)])
}

/// The operands of a scatter: data and updates as floats, indices, and the combining rule.
type ScatterInputs<'a> = (
    ArrayD<f32>,
    &'a ArrayD<i32>,
    ArrayD<f32>,
    fn(f32, f32) -> f32,
);

fn scatter_inputs<'a>(args: &'a KernelArgs) -> Result<ScatterInputs<'a>, String> {
    Ok((
        args.get("data")?.to_f32_array()?,
        args.get("indices")?.int()?,
        args.get("updates")?.to_f32_array()?,
        combine(ScatterMode::of(args)?),
    ))
}

/// The error for indices and updates whose shapes do not fit the data.
fn misfit(indices: &ArrayD<i32>, updates: &ArrayD<f32>, data: &ArrayD<f32>) -> String {
    format!(
        "indices {:?} and updates {:?} do not fit data {:?}",
        indices.shape(),
        updates.shape(),
        data.shape()
    )
}

/// `scatter`: `data[…, indices[i], …] ⊕= updates[…, i, …]` along `axis`.
pub fn scatter(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let (mut data, idx, upd, f) = scatter_inputs(args)?;
    let axis = norm_axis(args.int("axis")?, data.ndim())?;
    if idx.ndim() != 1 || upd.ndim() != data.ndim() || upd.shape()[axis] != idx.len() {
        return Err(misfit(idx, &upd, &data));
    }
    let n = data.shape()[axis];
    for (i, &j) in idx.iter().enumerate() {
        let j = index(j as i64, n)?;
        let src = upd.index_axis(Axis(axis), i);
        let mut dst = data.index_axis_mut(Axis(axis), j);
        if dst.shape() != src.shape() {
            return Err(format!(
                "updates {:?} do not fit data {:?}",
                upd.shape(),
                dst.shape()
            ));
        }
        dst.zip_mut_with(&src, |d, &u| *d = f(*d, u));
    }
    Ok(vec![Value::Float(data)])
}

/// `scatter_along_axis`: `data[…, indices[p], …] ⊕= updates[p]` for every position `p`.
pub fn scatter_along_axis(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let (mut data, idx, upd, f) = scatter_inputs(args)?;
    let axis = norm_axis(args.int("axis")?, data.ndim())?;
    if idx.shape() != upd.shape() || idx.ndim() != data.ndim() {
        return Err(misfit(idx, &upd, &data));
    }
    let n = data.shape()[axis];
    for ((pos, &i), &u) in idx.indexed_iter().zip(upd.iter()) {
        let mut target = pos.slice().to_vec();
        target[axis] = index(i as i64, n)?;
        let cell = data
            .get_mut(IxDyn(&target))
            .ok_or_else(|| format!("position {target:?} is outside data"))?;
        *cell = f(*cell, u);
    }
    Ok(vec![Value::Float(data)])
}

/// `scatter_nd`: `data[indices[i…, :], …] ⊕= updates[i…, …]`.
pub fn scatter_nd(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let (data, idx, upd, f) = scatter_inputs(args)?;
    let k = *idx.shape().last().ok_or("indices must have rank ≥ 1")?;
    let ds = data.shape().to_vec();
    if k == 0 || k > ds.len() {
        return Err(format!("index depth {k} must be in [1, {}]", ds.len()));
    }
    let st = strides(&ds);
    let inner: usize = ds[k..].iter().product();
    let mut flat: Vec<f32> = data.as_standard_layout().iter().copied().collect();
    let uf: Vec<f32> = upd.as_standard_layout().iter().copied().collect();
    let iv = idx.as_standard_layout();
    let rows = iv.as_slice().ok_or("indices are not contiguous")?;
    if uf.len() != rows.len() / k * inner {
        return Err(format!(
            "updates {:?} do not fit indices {:?} and data {ds:?}",
            upd.shape(),
            idx.shape()
        ));
    }
    for (r, row) in rows.chunks_exact(k).enumerate() {
        let base = nd_offset(row, &ds, &st)?;
        for (d, &u) in flat[base..base + inner]
            .iter_mut()
            .zip(&uf[r * inner..(r + 1) * inner])
        {
            *d = f(*d, u);
        }
    }
    Ok(vec![Value::Float(
        ArrayD::from_shape_vec(IxDyn(&ds), flat).map_err(|e| e.to_string())?,
    )])
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
    let axis = norm_axis(args.int("axis")?, x.shape().len())?;
    let batch = args.int("batch_dims")?;
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
    let axis = norm_axis(args.int("axis")?, x.shape().len())?;
    Ok(vec![per_kind!(x, a => gather_along(a, idx, axis)?)])
}

/// Takes, along each axis, the listed indices.
pub(crate) fn take<T: Clone>(a: &ArrayD<T>, picks: &[Vec<usize>]) -> ArrayD<T> {
    let mut out = a.clone();
    for (axis, idx) in picks.iter().enumerate() {
        if idx.len() != out.shape()[axis] || idx.iter().enumerate().any(|(i, &j)| i != j) {
            out = out.select(Axis(axis), idx);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::ir::ops::testing::{check, floats, infer, iota, run, try_run};
    use crate::ir::{DType, Tensor, TensorType};

    #[test]
    fn gather_nd_and_scatter_nd() {
        let x = iota(&[2, 2, 2]);
        let idx = Tensor::from_i32(&[2, 2], &[0, 1, -1, 0]);
        let whole = [
            ("x", x.clone()),
            ("indices", Tensor::from_i32(&[2, 0], &[])),
        ];
        let ty = infer("gather_nd", &whole).unwrap();
        assert_eq!(ty[0], TensorType::fixed(DType::F32, &[2, 2, 2, 2]));
        assert_eq!(floats(&run("gather_nd", &whole, &ty)[0]).len(), 16);
        let inputs = [("x", x.clone()), ("indices", idx.clone())];
        let ty = infer("gather_nd", &inputs).unwrap();
        assert_eq!(ty[0], TensorType::fixed(DType::F32, &[2, 2]));
        assert_eq!(
            floats(&run("gather_nd", &inputs, &ty)[0]),
            vec![2.0, 3.0, 4.0, 5.0]
        );
        let upd = Tensor::from_f32(&[2, 2], &[10.0, 20.0, 30.0, 40.0]);
        let inputs = [
            ("data", x),
            ("indices", idx),
            ("updates", upd),
            ("mode", Tensor::scalar_string("update")),
        ];
        let ty = infer("scatter_nd", &inputs).unwrap();
        assert_eq!(
            floats(&run("scatter_nd", &inputs, &ty)[0]),
            vec![0.0, 1.0, 10.0, 20.0, 30.0, 40.0, 6.0, 7.0]
        );
    }

    #[test]
    fn scatter_modes_along_axes() {
        let data = Tensor::from_f32(&[2, 3], &[0.0; 6]);
        let inputs = [
            ("data", data.clone()),
            ("indices", Tensor::from_i32(&[2], &[2, 2])),
            ("updates", Tensor::from_f32(&[2, 2], &[1.0, 2.0, 3.0, 4.0])),
            ("axis", Tensor::scalar_i32(1)),
        ];
        let ty = infer("scatter", &inputs).unwrap();
        // Default mode "add": column 2 gets 1+2 and 3+4.
        assert_eq!(
            floats(&run("scatter", &inputs, &ty)[0]),
            vec![0.0, 0.0, 3.0, 0.0, 0.0, 7.0]
        );
        let inputs = [
            ("data", data),
            ("indices", Tensor::from_i32(&[1, 3], &[1, 0, 1])),
            ("updates", Tensor::from_f32(&[1, 3], &[5.0, 6.0, 7.0])),
            ("mode", Tensor::scalar_string("update")),
        ];
        let ty = infer("scatter_along_axis", &inputs).unwrap();
        assert_eq!(
            floats(&run("scatter_along_axis", &inputs, &ty)[0]),
            vec![0.0, 6.0, 0.0, 5.0, 0.0, 7.0]
        );
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
}
