//! Conv + BatchNorm: `batch_norm(conv(x, W, b))` with constant parameters → `conv(x, W', b')`,
//! the normalization folded into the weights: with `s = gamma / sqrt(variance + epsilon)` per
//! output channel, `W' = W · s` and `b' = (b − mean) · s + beta` (as coremltools'
//! `fuse_conv_batchnorm`). Only fp32 weights are folded (fusion runs before the fp16 pass), in
//! f64 arithmetic rounded once to fp32.

use super::graph::{arg, new_const, out, replace, Graph};
use crate::ir::{Argument, DType, Function, NameTable, Operation, Target, Tensor};

/// MIL `batch_norm`'s default epsilon.
const DEFAULT_EPSILON: f64 = 1e-5;

/// The folded constant parameters of one conv + batch_norm pair.
struct Folded {
    weight: Tensor,
    bias: Tensor,
}

/// The `channels` values of the per-channel constant `param` of `op` (`default` everywhere
/// when absent; a one-element constant is broadcast).
fn per_channel(
    g: &Graph,
    op: &Operation,
    param: &str,
    default: f64,
    channels: usize,
) -> Option<Vec<f64>> {
    if op.input(param).is_none() {
        return Some(vec![default; channels]);
    }
    let t = g.const_value(arg(op, param)?)?;
    if !t.dtype().is_float() {
        return None;
    }
    let values = t.to_f64_vec();
    match values.len() {
        1 => Some(vec![values[0]; channels]),
        n if n == channels => Some(values),
        _ => None,
    }
}

/// Folds batch_norm `bn` into the constant fp32 weight (and bias) of `conv`.
fn fold(g: &Graph, conv: &Operation, bn: &Operation) -> Option<Folded> {
    let weight = g.const_value(arg(conv, "weight")?)?;
    if weight.dtype() != DType::F32 || weight.shape().len() < 3 || weight.is_empty() {
        return None;
    }
    let channels = weight.shape()[0];
    let mean = per_channel(g, bn, "mean", 0.0, channels)?;
    let variance = per_channel(g, bn, "variance", 1.0, channels)?;
    let gamma = per_channel(g, bn, "gamma", 1.0, channels)?;
    let beta = per_channel(g, bn, "beta", 0.0, channels)?;
    let bias = per_channel(g, conv, "bias", 0.0, channels)?;
    let epsilon = match bn.input("epsilon") {
        Some(_) => g.scalar(arg(bn, "epsilon")?)?,
        None => DEFAULT_EPSILON,
    };
    let scale: Vec<f64> = (0..channels)
        .map(|c| gamma[c] / (variance[c] + epsilon).sqrt())
        .collect();
    if scale.iter().any(|s| !s.is_finite()) {
        return None;
    }
    let per_out = weight.len() / channels;
    let scaled: Vec<f32> = weight
        .to_f32_vec()
        .chunks_exact(per_out)
        .zip(&scale)
        .flat_map(|(row, &s)| row.iter().map(move |&w| (w as f64 * s) as f32))
        .collect();
    let folded_bias: Vec<f32> = (0..channels)
        .map(|c| ((bias[c] - mean[c]) * scale[c] + beta[c]) as f32)
        .collect();
    Some(Folded {
        weight: Tensor::from_f32(weight.shape(), &scaled),
        bias: Tensor::from_f32(&[channels], &folded_bias),
    })
}

/// Fuses the first `batch_norm` reading the output of a `conv` that only it reads.
pub fn fuse_one(function: &mut Function, _target: Target) -> bool {
    let g = Graph::new(function);
    let found = g.first(|g, c| {
        let conv = g.op(c);
        if conv.op_type != "conv" {
            return None;
        }
        let b = g.sole_reader_of(c, "batch_norm")?;
        let folded = fold(g, conv, g.op(b))?;
        Some((c, b, folded))
    });
    let Some((c, b, folded)) = found else {
        return false;
    };
    let (conv, bn) = (g.op(c), g.op(b));
    debug_assert_eq!(arg(bn, "x"), Some(out(conv)));
    let mut names = NameTable::of_function(function);
    let origin = conv.origin.clone();
    let (weight_op, weight) = new_const(
        &mut names,
        &format!("{}_weight", bn.name),
        folded.weight,
        origin.clone(),
    );
    let (bias_op, bias) = new_const(
        &mut names,
        &format!("{}_bias", bn.name),
        folded.bias,
        origin,
    );
    let mut fused = conv.clone();
    fused.name = bn.name.clone();
    fused.outputs = bn.outputs.clone();
    fused.inputs.retain(|(p, _)| p != "weight" && p != "bias");
    fused
        .inputs
        .push(("weight".into(), vec![Argument::Var(weight)]));
    fused
        .inputs
        .push(("bias".into(), vec![Argument::Var(bias)]));
    replace(function, b, vec![weight_op, bias_op, fused]);
    true
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fuse_checked, op_types};
    use crate::ir::{Builder, DType, Function, Target, Tensor, TensorType, Var};

    fn values(n: usize, scale: f32, offset: f32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7 % 11) as f32 / 11.0 - 0.5) * scale + offset)
            .collect()
    }

    /// `batch_norm(x)` with per-channel statistics for 2 channels (epsilon given or default).
    fn batch_norm(b: &mut Builder, x: &str, name: &str, epsilon: bool) -> String {
        let mean = b.constant("mean", Tensor::from_f32(&[2], &[0.1, -0.4]));
        let var = b.constant("var", Tensor::from_f32(&[2], &[0.5, 2.0]));
        let gamma = b.constant("gamma", Tensor::from_f32(&[2], &[1.5, 0.7]));
        let beta = b.constant("beta", Tensor::from_f32(&[2], &[-0.3, 0.2]));
        let eps = b.constant("eps", Tensor::scalar_f32(1e-3));
        let params = [
            ("x", [x]),
            ("mean", [mean.as_str()]),
            ("variance", [var.as_str()]),
            ("gamma", [gamma.as_str()]),
            ("beta", [beta.as_str()]),
            ("epsilon", [eps.as_str()]),
        ];
        let used = if epsilon { 6 } else { 5 };
        let inputs: Vec<(&str, &[&str])> = params[..used]
            .iter()
            .map(|(p, v)| (*p, v.as_slice()))
            .collect();
        b.op1("batch_norm", name, &inputs).unwrap()
    }

    /// Two conv + batch_norm pairs: with a bias and `same` padding, then depthwise without
    /// a bias.
    fn two_pairs() -> Function {
        let x = Var::new("x", TensorType::fixed(DType::F32, &[1, 2, 5, 5]));
        let mut b = Builder::new("main", vec![x]);
        let w = b.constant("w", Tensor::from_f32(&[2, 2, 3, 3], &values(36, 1.0, 0.0)));
        let bias = b.constant("bias", Tensor::from_f32(&[2], &[0.3, -0.2]));
        let same = b.constant("same", Tensor::scalar_string("same"));
        let conv = b
            .op1(
                "conv",
                "conv0",
                &[
                    ("x", &["x"]),
                    ("weight", &[&w]),
                    ("bias", &[&bias]),
                    ("pad_type", &[&same]),
                ],
            )
            .unwrap();
        let bn = batch_norm(&mut b, &conv, "bn0", true);
        let dw = b.constant("dw", Tensor::from_f32(&[2, 1, 3, 3], &values(18, 2.0, 0.1)));
        let groups = b.constant("groups", Tensor::scalar_i32(2));
        let conv = b
            .op1(
                "conv",
                "conv1",
                &[("x", &[&bn]), ("weight", &[&dw]), ("groups", &[&groups])],
            )
            .unwrap();
        let bn = batch_norm(&mut b, &conv, "bn1", false);
        b.finish(vec![bn])
    }

    #[test]
    fn folds_batch_norm_into_convs_with_and_without_bias() {
        let p = fuse_checked(two_pairs(), Target::IOS15, &[("conv_batch_norm", 2)]);
        assert_eq!(op_types(&p), ["conv", "conv"]);
        let last = p.main().block.operations.last().unwrap();
        assert_eq!(
            (last.name.as_str(), last.outputs[0].name.as_str()),
            ("bn1", "bn1")
        );
        assert!(last.input("bias").is_some());
    }

    #[test]
    fn leaves_a_conv_whose_output_is_read_elsewhere() {
        let x = Var::new("x", TensorType::fixed(DType::F32, &[1, 2, 4, 4]));
        let mut b = Builder::new("main", vec![x]);
        let w = b.constant("w", Tensor::from_f32(&[2, 2, 1, 1], &values(4, 1.0, 0.0)));
        let conv = b
            .op1("conv", "conv", &[("x", &["x"]), ("weight", &[&w])])
            .unwrap();
        let bn = batch_norm(&mut b, &conv, "bn", true);
        let sum = b
            .op1("add", "sum", &[("x", &[&bn]), ("y", &[&conv])])
            .unwrap();
        let p = fuse_checked(b.finish(vec![sum]), Target::IOS15, &[]);
        assert_eq!(op_types(&p), ["conv", "batch_norm", "add"]);
    }

    #[test]
    fn leaves_a_batch_norm_after_another_op() {
        let x = Var::new("x", TensorType::fixed(DType::F32, &[1, 2, 4, 4]));
        let mut b = Builder::new("main", vec![x]);
        let r = b.op1("relu", "r", &[("x", &["x"])]).unwrap();
        let bn = batch_norm(&mut b, &r, "bn", true);
        let p = fuse_checked(b.finish(vec![bn]), Target::IOS15, &[]);
        assert_eq!(op_types(&p), ["relu", "batch_norm"]);
    }
}
