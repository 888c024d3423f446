//! Kernels of normalization ops.

use crate::interp::{KernelArgs, Value};
use crate::ir::ops::axis::norm_axes;
use crate::ir::ops::OpArgs;
use ndarray::{ArrayD, Axis, IxDyn};

/// Per-channel parameter `name` as `channels` values, or `default` everywhere when absent.
fn channel_param(
    args: &KernelArgs,
    name: &str,
    channels: usize,
    default: f32,
) -> Result<Vec<f32>, String> {
    match args.opt(name) {
        None => Ok(vec![default; channels]),
        Some(v) => {
            let v: Vec<f32> = v.to_f32_array()?.iter().copied().collect();
            if v.len() != channels {
                return Err(format!(
                    "{name} has {} values, expected {channels}",
                    v.len()
                ));
            }
            Ok(v)
        }
    }
}

/// Applies `f(value, channel)` over axis 1.
fn per_channel(mut x: ArrayD<f32>, f: impl Fn(f32, usize) -> f32) -> Result<ArrayD<f32>, String> {
    if x.ndim() < 2 {
        return Err(format!("x {:?} has no channel axis", x.shape()));
    }
    for (c, mut lane) in x.axis_iter_mut(Axis(1)).enumerate() {
        lane.mapv_inplace(|v| f(v, c));
    }
    Ok(x)
}

/// `batch_norm`: `gamma * (x - mean) / sqrt(variance + epsilon) + beta` per channel.
pub fn batch_norm(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?.to_f32_array()?;
    let c = *x.shape().get(1).ok_or("x has no channel axis")?;
    let eps = args.float("epsilon")? as f32;
    let mean = channel_param(args, "mean", c, 0.0)?;
    let var = channel_param(args, "variance", c, 1.0)?;
    let gamma = channel_param(args, "gamma", c, 1.0)?;
    let beta = channel_param(args, "beta", c, 0.0)?;
    let scale: Vec<f32> = (0..c).map(|i| gamma[i] / (var[i] + eps).sqrt()).collect();
    Ok(vec![Value::Float(per_channel(x, |v, i| {
        (v - mean[i]) * scale[i] + beta[i]
    })?)])
}

/// Normalizes each row of a [rows, n] matrix to zero mean and unit (population) variance.
fn normalize_rows(data: &mut [f32], n: usize, eps: f32) {
    use rayon::prelude::*;
    data.par_chunks_exact_mut(n.max(1)).for_each(|row| {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        let inv = 1.0 / (var + eps as f64).sqrt();
        row.iter_mut()
            .for_each(|v| *v = ((*v as f64 - mean) * inv) as f32);
    });
}

/// `instance_norm`: normalizes each (batch, channel) plane over its spatial dims.
pub fn instance_norm(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?.to_f32_array()?;
    let shape = x.shape().to_vec();
    let c = *shape.get(1).ok_or("x has no channel axis")?;
    let eps = args.float("epsilon")? as f32;
    let gamma = channel_param(args, "gamma", c, 1.0)?;
    let beta = channel_param(args, "beta", c, 0.0)?;
    let plane: usize = shape[2..].iter().product();
    let mut data: Vec<f32> = x.as_standard_layout().iter().copied().collect();
    normalize_rows(&mut data, plane, eps);
    let x = ArrayD::from_shape_vec(IxDyn(&shape), data).map_err(|e| e.to_string())?;
    Ok(vec![Value::Float(per_channel(x, |v, i| {
        v * gamma[i] + beta[i]
    })?)])
}

/// `layer_norm` over `axes` (all by default); gamma/beta have the shape of the normalized dims
/// in ascending axis order.
pub fn layer_norm(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?.floats()?;
    let shape = x.shape().to_vec();
    let rank = shape.len();
    let mut axes = match args.opt_ints("axes")? {
        Some(a) => norm_axes(&a, rank)?,
        None => (0..rank).collect(),
    };
    axes.sort_unstable();
    let eps = args.float("epsilon")? as f32;
    // Move the normalized axes last, normalize rows, move them back.
    let kept: Vec<usize> = (0..rank).filter(|i| !axes.contains(i)).collect();
    let perm: Vec<usize> = kept.iter().chain(&axes).copied().collect();
    let n: usize = axes.iter().map(|&i| shape[i]).product();
    let mut data: Vec<f32> = x
        .view()
        .permuted_axes(IxDyn(&perm))
        .iter()
        .copied()
        .collect();
    normalize_rows(&mut data, n, eps);
    let gamma = channel_param(args, "gamma", n, 1.0)?;
    let beta = channel_param(args, "beta", n, 0.0)?;
    for row in data.chunks_exact_mut(n.max(1)) {
        for (j, v) in row.iter_mut().enumerate() {
            *v = *v * gamma[j] + beta[j];
        }
    }
    let permuted_shape: Vec<usize> = perm.iter().map(|&i| shape[i]).collect();
    let y = ArrayD::from_shape_vec(IxDyn(&permuted_shape), data).map_err(|e| e.to_string())?;
    let mut inverse = vec![0; rank];
    for (i, &p) in perm.iter().enumerate() {
        inverse[p] = i;
    }
    Ok(vec![Value::Float(
        y.permuted_axes(IxDyn(&inverse))
            .as_standard_layout()
            .into_owned(),
    )])
}

/// `l2_norm`: divides each batch entry (the last 3 dims) by `sqrt(sum(x²) + epsilon)`.
pub fn l2_norm(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?.to_f32_array()?;
    let shape = x.shape().to_vec();
    if shape.len() < 3 {
        return Err(format!("x {shape:?} must have rank 3 or more"));
    }
    let eps = args.float("epsilon")? as f32;
    let n: usize = shape[shape.len() - 3..].iter().product();
    let mut data: Vec<f32> = x.as_standard_layout().iter().copied().collect();
    for row in data.chunks_exact_mut(n.max(1)) {
        let norm = (row.iter().map(|&v| v * v).sum::<f32>() + eps).sqrt();
        row.iter_mut().for_each(|v| *v /= norm);
    }
    Ok(vec![Value::Float(
        ArrayD::from_shape_vec(IxDyn(&shape), data).map_err(|e| e.to_string())?,
    )])
}

/// `local_response_norm`: `x / (k + alpha/size · Σ x²)^beta` over a window of `size`
/// neighbouring channels (`(size-1)/2` before, the rest after).
pub fn local_response_norm(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?.to_f32_array()?;
    let size = args.int("size")?;
    if size < 1 || x.ndim() < 2 {
        return Err(format!(
            "size {size} must be positive and x {:?} must have a channel axis",
            x.shape()
        ));
    }
    let (alpha, beta, k) = (
        args.float("alpha")? as f32,
        args.float("beta")? as f32,
        args.float("k")? as f32,
    );
    let size = size as usize;
    let c = x.shape()[1];
    let (before, after) = ((size - 1) / 2, size - 1 - (size - 1) / 2);
    let sq = x.mapv(|v| v * v);
    let mut out = x.clone();
    for ch in 0..c {
        let lo = ch.saturating_sub(before);
        let hi = (ch + after).min(c - 1);
        let mut sum = sq.index_axis(Axis(1), lo).to_owned();
        for j in lo + 1..=hi {
            sum += &sq.index_axis(Axis(1), j);
        }
        let mut dst = out.index_axis_mut(Axis(1), ch);
        dst.zip_mut_with(&sum, |v, &s| *v /= (k + alpha / size as f32 * s).powf(beta));
    }
    Ok(vec![Value::Float(out)])
}

#[cfg(test)]
mod tests {
    use crate::ir::ops::testing::{assert_close, floats, infer, run};
    use crate::ir::Tensor;

    #[test]
    fn batch_norm_per_channel() {
        let x = Tensor::from_f32(&[1, 2, 1, 2], &[1.0, 3.0, 10.0, 20.0]);
        let inputs = [
            ("x", x),
            ("mean", Tensor::from_f32(&[2], &[2.0, 10.0])),
            ("variance", Tensor::from_f32(&[2], &[4.0, 25.0])),
            ("gamma", Tensor::from_f32(&[2], &[2.0, 1.0])),
            ("beta", Tensor::from_f32(&[2], &[0.0, 1.0])),
            ("epsilon", Tensor::scalar_f32(0.0)),
        ];
        let ty = infer("batch_norm", &inputs).unwrap();
        // ch0: 2 * (x - 2) / 2 = x - 2; ch1: (x - 10) / 5 + 1.
        assert_close(
            &floats(&run("batch_norm", &inputs, &ty)[0]),
            &[-1.0, 1.0, 1.0, 3.0],
            1e-6,
        );
    }

    #[test]
    fn layer_norm_over_last_axis_and_instance_norm() {
        let x = Tensor::from_f32(&[2, 2], &[1.0, 3.0, 0.0, 10.0]);
        let inputs = [
            ("x", x),
            ("axes", Tensor::vec_i32(&[-1])),
            ("gamma", Tensor::from_f32(&[2], &[1.0, 2.0])),
            ("beta", Tensor::from_f32(&[2], &[0.5, 0.0])),
            ("epsilon", Tensor::scalar_f32(0.0)),
        ];
        let ty = infer("layer_norm", &inputs).unwrap();
        assert_close(
            &floats(&run("layer_norm", &inputs, &ty)[0]),
            &[-0.5, 2.0, -0.5, 2.0],
            1e-6,
        );
        let x = Tensor::from_f32(&[1, 1, 4], &[1.0, 2.0, 3.0, 4.0]);
        let inputs = [("x", x), ("epsilon", Tensor::scalar_f32(0.0))];
        let ty = infer("instance_norm", &inputs).unwrap();
        // mean 2.5, population variance 1.25.
        let s = 1.25f32.sqrt();
        assert_close(
            &floats(&run("instance_norm", &inputs, &ty)[0]),
            &[-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s],
            1e-6,
        );
    }

    #[test]
    fn l2_norm_over_last_three_dims() {
        let x = Tensor::from_f32(&[2, 1, 1, 2], &[3.0, 4.0, 0.0, 2.0]);
        let inputs = [("x", x), ("epsilon", Tensor::scalar_f32(0.0))];
        let ty = infer("l2_norm", &inputs).unwrap();
        assert_close(
            &floats(&run("l2_norm", &inputs, &ty)[0]),
            &[0.6, 0.8, 0.0, 1.0],
            1e-6,
        );
    }
}
