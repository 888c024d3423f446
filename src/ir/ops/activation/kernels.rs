//! Kernels of activation ops.

use super::{softmax_axis, GeluMode};
use crate::interp::{KernelArgs, Value};
use crate::ir::ops::elementwise_unary::kernels::{erf_f64, unary};
use crate::ir::ops::OpArgs;
use ndarray::{ArrayD, Axis};
use rayon::prelude::*;

fn sigmoid_f(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

/// `log(1 + exp(v))` without overflow.
fn softplus_f(v: f32) -> f32 {
    v.max(0.0) + (-v.abs()).exp().ln_1p()
}

/// Softmax of one contiguous lane, in place (the maximum subtracted first).
fn softmax_lane(lane: &mut [f32]) {
    let max = lane.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sum = 0f32;
    for v in lane.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    lane.iter_mut().for_each(|v| *v /= sum);
}

/// `relu`.
pub fn relu(args: &KernelArgs) -> Result<Vec<Value>, String> {
    unary(args, |v| if v > 0.0 { v } else { 0.0 })
}

/// `relu6`.
pub fn relu6(args: &KernelArgs) -> Result<Vec<Value>, String> {
    unary(args, |v| v.clamp(0.0, 6.0))
}

/// `sigmoid`.
pub fn sigmoid(args: &KernelArgs) -> Result<Vec<Value>, String> {
    unary(args, sigmoid_f)
}

/// `silu`: `x * sigmoid(x)`.
pub fn silu(args: &KernelArgs) -> Result<Vec<Value>, String> {
    unary(args, |v| v * sigmoid_f(v))
}

/// `softplus`.
pub fn softplus(args: &KernelArgs) -> Result<Vec<Value>, String> {
    unary(args, softplus_f)
}

/// `softsign`: `x / (1 + |x|)`.
pub fn softsign(args: &KernelArgs) -> Result<Vec<Value>, String> {
    unary(args, |v| v / (1.0 + v.abs()))
}

/// `elu`: `x` if positive, else `alpha * (exp(x) - 1)`; alpha 1 by default.
pub fn elu(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let alpha = args.float("alpha")? as f32;
    unary(args, |v| if v > 0.0 { v } else { alpha * v.exp_m1() })
}

/// `leaky_relu`: `x` if positive, else `alpha * x`; alpha 0.01 by default.
pub fn leaky_relu(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let alpha = args.float("alpha")? as f32;
    unary(args, |v| if v >= 0.0 { v } else { alpha * v })
}

/// `thresholded_relu`: `x` if `x >= alpha`, else 0; alpha 1 by default.
pub fn thresholded_relu(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let alpha = args.float("alpha")? as f32;
    unary(args, |v| if v >= alpha { v } else { 0.0 })
}

/// `sigmoid_hard`: `clip(alpha * x + beta, 0, 1)`; alpha 0.2 and beta 0.5 by default.
pub fn sigmoid_hard(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let (alpha, beta) = (args.float("alpha")? as f32, args.float("beta")? as f32);
    unary(args, |v| (alpha * v + beta).clamp(0.0, 1.0))
}

/// `scaled_tanh`: `alpha * tanh(beta * x)`; both 1 by default.
pub fn scaled_tanh(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let (alpha, beta) = (args.float("alpha")? as f32, args.float("beta")? as f32);
    unary(args, |v| alpha * (beta * v).tanh())
}

/// `clamped_relu`: `min(x, beta)` for `x >= 0`, else `min(alpha * x, beta)`.
pub fn clamped_relu(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let (alpha, beta) = (args.float("alpha")? as f32, args.float("beta")? as f32);
    unary(args, |v| {
        if v >= 0.0 {
            v.min(beta)
        } else {
            (alpha * v).min(beta)
        }
    })
}

/// `linear_activation`: `alpha * x + beta`; beta 0 by default.
pub fn linear_activation(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let (alpha, beta) = (args.float("alpha")? as f32, args.float("beta")? as f32);
    unary(args, |v| alpha * v + beta)
}

/// Per-channel parameter `name` (one value, or one per channel along axis 1) broadcast to
/// `channels` values.
fn per_channel(args: &KernelArgs, name: &str, channels: usize) -> Result<Vec<f32>, String> {
    let v: Vec<f32> = args.get(name)?.to_f32_array()?.iter().copied().collect();
    match v.len() {
        1 => Ok(vec![v[0]; channels]),
        n if n == channels => Ok(v),
        n => Err(format!(
            "{name} has {n} values but x has {channels} channels"
        )),
    }
}

/// Applies `f(value, channel)` to every element of `x` (rank ≥ 2), by channel (axis 1).
fn map_channels(x: &ArrayD<f32>, f: impl Fn(f32, usize) -> f32) -> Result<ArrayD<f32>, String> {
    if x.ndim() < 2 {
        return Err(format!("x must have rank 2 or more, got {}", x.ndim()));
    }
    let mut out = x.clone();
    for (c, mut lane) in out.axis_iter_mut(Axis(1)).enumerate() {
        lane.mapv_inplace(|v| f(v, c));
    }
    Ok(out)
}

/// `prelu`: `x` if positive, else `alpha[c] * x`.
pub fn prelu(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?.to_f32_array()?;
    let channels = *x.shape().get(1).ok_or("x must have rank 2 or more")?;
    let alpha = per_channel(args, "alpha", channels)?;
    Ok(vec![Value::Float(map_channels(&x, |v, c| {
        if v > 0.0 {
            v
        } else {
            alpha[c] * v
        }
    })?)])
}

/// `softplus_parametric`: `alpha[c] * log(1 + exp(beta[c] * x))`.
pub fn softplus_parametric(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?.to_f32_array()?;
    let channels = *x.shape().get(1).ok_or("x must have rank 2 or more")?;
    let alpha = per_channel(args, "alpha", channels)?;
    let beta = per_channel(args, "beta", channels)?;
    Ok(vec![Value::Float(map_channels(&x, |v, c| {
        alpha[c] * softplus_f(beta[c] * v)
    })?)])
}

/// `gelu` in its three modes.
pub fn gelu(args: &KernelArgs) -> Result<Vec<Value>, String> {
    match GeluMode::of(args)? {
        GeluMode::Exact => unary(args, |v| {
            (0.5 * v as f64 * (1.0 + erf_f64(v as f64 / std::f64::consts::SQRT_2))) as f32
        }),
        GeluMode::TanhApproximation => unary(args, |v| {
            let c = (2.0 / std::f32::consts::PI).sqrt();
            0.5 * v * (1.0 + (c * (v + 0.044715 * v * v * v)).tanh())
        }),
        GeluMode::SigmoidApproximation => unary(args, |v| v * sigmoid_f(1.702 * v)),
    }
}

/// `softmax` along `axis` (default -1), subtracting the maximum for stability.
pub fn softmax(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let mut x = args.get("x")?.to_f32_array()?;
    let axis = softmax_axis(args, x.ndim())?;
    let n = x.shape()[axis];
    let last = axis + 1 == x.ndim();
    match x.as_slice_mut() {
        // Rows of the last axis are contiguous: normalise them in parallel.
        Some(data) if last && n > 0 => {
            data.par_chunks_exact_mut(n).for_each(softmax_lane);
        }
        _ => x.lanes_mut(Axis(axis)).into_iter().for_each(|mut lane| {
            let max = lane.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            lane.mapv_inplace(|v| (v - max).exp());
            let sum: f32 = lane.sum();
            lane.mapv_inplace(|v| v / sum);
        }),
    }
    Ok(vec![Value::Float(x)])
}

#[cfg(test)]
mod tests {
    use crate::ir::ops::testing::{assert_close, floats, infer, run};
    use crate::ir::Tensor;

    #[test]
    fn softmax_along_axis() {
        let x = Tensor::from_f32(&[2, 2], &[0.0, (3.0f32).ln(), 1.0, 1.0]);
        let out = run(
            "softmax",
            &[("x", x.clone()), ("axis", Tensor::scalar_i32(-1))],
            &[x.ty()],
        );
        assert_close(&floats(&out[0]), &[0.25, 0.75, 0.5, 0.5], 1e-6);
        let out = run(
            "softmax",
            &[("x", x.clone()), ("axis", Tensor::scalar_i32(0))],
            &[x.ty()],
        );
        let e = std::f32::consts::E;
        assert_close(
            &floats(&out[0]),
            &[
                1.0 / (1.0 + e),
                3.0 / (3.0 + e),
                e / (1.0 + e),
                e / (3.0 + e),
            ],
            1e-6,
        );
    }

    #[test]
    fn gelu_modes_and_simple_activations() {
        let x = Tensor::from_f32(&[3], &[-1.0, 0.0, 1.0]);
        let t = [x.ty()];
        // 0.5 * x * (1 + erf(x / sqrt 2)): erf(1/sqrt 2) = 0.682689492.
        assert_close(
            &floats(&run("gelu", &[("x", x.clone())], &t)[0]),
            &[-0.158_655_25, 0.0, 0.841_344_7],
            1e-6,
        );
        let tanh = run(
            "gelu",
            &[
                ("x", x.clone()),
                ("mode", Tensor::scalar_string("TANH_APPROXIMATION")),
            ],
            &t,
        );
        assert_close(&floats(&tanh[0]), &[-0.158808, 0.0, 0.841192], 1e-5);
        assert_close(
            &floats(&run("relu6", &[("x", x.clone())], &t)[0]),
            &[0.0, 0.0, 1.0],
            0.0,
        );
        let hs = run("sigmoid_hard", &[("x", x.clone())], &t);
        assert_close(&floats(&hs[0]), &[0.3, 0.5, 0.7], 1e-6);
        let lr = run(
            "leaky_relu",
            &[("x", x), ("alpha", Tensor::scalar_f32(0.1))],
            &t,
        );
        assert_close(&floats(&lr[0]), &[-0.1, 0.0, 1.0], 1e-7);
    }

    #[test]
    fn prelu_is_per_channel() {
        let x = Tensor::from_f32(&[1, 2, 2], &[-1.0, 2.0, -3.0, 4.0]);
        let alpha = Tensor::from_f32(&[2], &[0.5, 0.25]);
        let out = run(
            "prelu",
            &[("x", x.clone()), ("alpha", alpha.clone())],
            &[x.ty()],
        );
        assert_eq!(floats(&out[0]), vec![-0.5, 2.0, -0.75, 4.0]);
        let bad = Tensor::from_f32(&[3], &[0.5, 0.25, 1.0]);
        assert!(infer("prelu", &[("x", x), ("alpha", bad)]).is_err());
    }
}
