//! Normalisation: `BatchNormalization` (inference), `InstanceNormalization`,
//! `LayerNormalization`, `RMSNormalization`, `LpNormalization`, `LRN`.

use super::{axis, ConvertFn, Ctx, Emit, Node};
use crate::frontend::lowering::{self, BatchNormParams};
use crate::Error;

/// `BatchNormalization(X, scale, B, mean, var)` in inference mode → `batch_norm`.
fn batch_norm(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    if ctx.attr(node.int_or("training_mode", 0))? != 0 {
        return Err(ctx.unsupported("training_mode=1 is not supported"));
    }
    if ctx.attr(node.int_or("spatial", 1))? == 0 {
        return Err(ctx.unsupported("spatial=0 (per-element statistics) is not supported"));
    }
    ctx.require_unused_outputs(node, 1, "training statistics")?;
    let x = ctx.input(node, 0)?;
    let (gamma, beta) = (ctx.input(node, 1)?, ctx.input(node, 2)?);
    let (mean, var) = (ctx.input(node, 3)?, ctx.input(node, 4)?);
    let out = ctx.out_name(node, 0);
    let eps = ctx.attr(node.float_or("epsilon", 1e-5))?;
    let all_constant = [&gamma, &beta, &mean, &var]
        .iter()
        .all(|v| ctx.const_value(v).is_some());
    if !all_constant {
        // MIL batch_norm takes constant statistics only: spell it out elementwise.
        let rank = ctx.rank(&x)?;
        let [gamma, beta, mean, var] = [
            (&gamma, "gamma"),
            (&beta, "beta"),
            (&mean, "mean"),
            (&var, "variance"),
        ]
        .map(|(v, what)| per_channel(ctx, &out, v, what, rank));
        let y = normalize(ctx, &out, &x, &mean?, &var?, eps, &gamma?, &beta?)?;
        ctx.set_output(node, 0, y);
        return Ok(());
    }
    let params = BatchNormParams {
        mean: &mean,
        variance: &var,
        gamma: Some(&gamma),
        beta: Some(&beta),
        epsilon: eps,
    };
    let y = lowering::batch_norm(ctx, &out, &x, &params)?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// A per-channel `[C]` vector `v` reshaped to `[C, 1, …]` so it broadcasts against a
/// rank-`rank` `[N, C, …]` input.
fn per_channel(
    ctx: &mut Ctx,
    out: &str,
    v: &str,
    what: &str,
    rank: usize,
) -> Result<String, Error> {
    if rank <= 2 {
        return Ok(v.to_string());
    }
    let axes: Vec<i64> = (1..rank as i64 - 1).collect();
    let axes = ctx.ints(&format!("{out}_{what}_axes"), &axes);
    ctx.op1(
        "expand_dims",
        &format!("{out}_{what}_per_channel"),
        &[("x", v), ("axes", &axes)],
    )
}

/// `(x - mean) * rsqrt(var + eps) * gamma + beta`, the last op named `out`.
#[allow(clippy::too_many_arguments)]
fn normalize(
    ctx: &mut Ctx,
    out: &str,
    x: &str,
    mean: &str,
    var: &str,
    eps: f32,
    gamma: &str,
    beta: &str,
) -> Result<String, Error> {
    let centered = ctx.op1("sub", &format!("{out}_centered"), &[("x", x), ("y", mean)])?;
    let eps = ctx.float(&format!("{out}_epsilon"), eps);
    let inv = ctx.op1(
        "rsqrt",
        &format!("{out}_inv_std"),
        &[("x", var), ("epsilon", &eps)],
    )?;
    let scaled = ctx.op1(
        "mul",
        &format!("{out}_standardized"),
        &[("x", &centered), ("y", &inv)],
    )?;
    let scaled = ctx.op1(
        "mul",
        &format!("{out}_scaled"),
        &[("x", &scaled), ("y", gamma)],
    )?;
    ctx.op1("add", out, &[("x", &scaled), ("y", beta)])
}

/// `InstanceNormalization(X, scale, B)` → `instance_norm`; with a non-constant scale or bias
/// (MIL wants constants) the statistics over the spatial axes are spelled out elementwise.
fn instance_norm(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let (gamma, beta) = (ctx.input(node, 1)?, ctx.input(node, 2)?);
    let out = ctx.out_name(node, 0);
    let eps = ctx.attr(node.float_or("epsilon", 1e-5))?;
    if ctx.const_value(&gamma).is_none() || ctx.const_value(&beta).is_none() {
        let rank = ctx.rank(&x)?;
        if rank < 3 {
            return Err(ctx.invalid(format!("input of rank {rank} has no spatial axes")));
        }
        let axes: Vec<i64> = (2..rank as i64).collect();
        let axes = ctx.ints(&format!("{out}_spatial_axes"), &axes);
        let keep = ctx.boolean(&format!("{out}_keep_dims"), true);
        let mean = ctx.op1(
            "reduce_mean",
            &format!("{out}_mean"),
            &[("x", &x), ("axes", &axes), ("keep_dims", &keep)],
        )?;
        let centered = ctx.op1(
            "sub",
            &format!("{out}_deviation"),
            &[("x", &x), ("y", &mean)],
        )?;
        let squared = ctx.op1(
            "mul",
            &format!("{out}_squared"),
            &[("x", &centered), ("y", &centered)],
        )?;
        let var = ctx.op1(
            "reduce_mean",
            &format!("{out}_variance"),
            &[("x", &squared), ("axes", &axes), ("keep_dims", &keep)],
        )?;
        let gamma = per_channel(ctx, &out, &gamma, "gamma", rank)?;
        let beta = per_channel(ctx, &out, &beta, "beta", rank)?;
        let y = normalize(ctx, &out, &x, &mean, &var, eps, &gamma, &beta)?;
        ctx.set_output(node, 0, y);
        return Ok(());
    }
    let eps = ctx.float(&format!("{out}_epsilon"), eps);
    let y = ctx.op1(
        "instance_norm",
        &out,
        &[
            ("x", &x),
            ("gamma", &gamma),
            ("beta", &beta),
            ("epsilon", &eps),
        ],
    )?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `LayerNormalization(X, scale, B?)` (opset 17) → `layer_norm` over the axes from `axis` on;
/// a scale or bias that is not a constant of exactly the normalised shape follows it as
/// broadcasting `mul`/`add`. The optional `Mean` and `InvStdDev`
/// outputs are computed beside it (see [`layer_norm_statistics`]).
fn layer_norm(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let rank = ctx.rank(&x)?;
    let first = axis(ctx, ctx.attr(node.int_or("axis", -1))?, rank)?;
    // The normalised dimensions' sizes, when they are all known (the leading ones may be
    // symbolic).
    let normalized: Option<Vec<usize>> = ctx.ty(&x)?.shape[first..]
        .iter()
        .map(|d| d.fixed())
        .collect();
    let mut affine = Vec::new();
    for (i, param) in [(1, "gamma"), (2, "beta")] {
        if let Some(v) = ctx.opt_input(node, i)? {
            affine.push((param, v));
        }
    }
    // MIL layer_norm takes constant gamma/beta of exactly the normalised shape; otherwise
    // they are applied after it with broadcasting mul/add.
    let fused = affine.iter().all(|(_, v)| {
        ctx.const_value(v).is_some()
            && normalized.is_some()
            && ctx.ty(v).ok().and_then(|t| t.static_shape()) == normalized
    });
    let mut params = vec![("x", x)];
    let axes: Vec<i64> = (first as i64..rank as i64).collect();
    params.push(("axes", ctx.ints(&format!("{out}_axes"), &axes)));
    if fused {
        params.extend(affine.iter().cloned());
    }
    let eps = ctx.attr(node.float_or("epsilon", 1e-5))?;
    params.push(("epsilon", ctx.float(&format!("{out}_epsilon"), eps)));
    let refs: Vec<(&str, &str)> = params.iter().map(|(p, v)| (*p, v.as_str())).collect();
    let mut y = if fused || affine.is_empty() {
        ctx.op1("layer_norm", &out, &refs)?
    } else {
        ctx.op1("layer_norm", &format!("{out}_normalized"), &refs)?
    };
    if !fused {
        for (i, (param, v)) in affine.iter().enumerate() {
            let name = if i + 1 == affine.len() {
                out.clone()
            } else {
                format!("{out}_scaled")
            };
            let op = if *param == "gamma" { "mul" } else { "add" };
            y = ctx.op1(op, &name, &[("x", &y), ("y", v)])?;
        }
    }
    ctx.set_output(node, 0, y);
    if ctx.output_used(node, 1) || ctx.output_used(node, 2) {
        layer_norm_statistics(ctx, node, &params[0].1, &params[1].1, eps)?;
    }
    Ok(())
}

/// `LayerNormalization`'s `Mean` (output 1) and `InvStdDev` (output 2), both keeping the
/// normalised axes as size 1: `mean = reduce_mean(x)` and
/// `inv_std_dev = rsqrt(reduce_mean((x - mean)²) + epsilon)`.
fn layer_norm_statistics(
    ctx: &mut Ctx,
    node: &Node,
    x: &str,
    axes: &str,
    eps: f32,
) -> Result<(), Error> {
    let names = [ctx.out_name(node, 1), ctx.out_name(node, 2)];
    let base = ctx.out_name(node, 0);
    let keep = ctx.boolean(&format!("{base}_stats_keep_dims"), true);
    let mean_name = if ctx.output_used(node, 1) {
        names[0].clone()
    } else {
        format!("{base}_mean")
    };
    let mean = ctx.op1(
        "reduce_mean",
        &mean_name,
        &[("x", x), ("axes", axes), ("keep_dims", &keep)],
    )?;
    if ctx.output_used(node, 2) {
        let centered = ctx.op1(
            "sub",
            &format!("{base}_centered"),
            &[("x", x), ("y", &mean)],
        )?;
        let squared = ctx.op1(
            "mul",
            &format!("{base}_squared"),
            &[("x", &centered), ("y", &centered)],
        )?;
        let var = ctx.op1(
            "reduce_mean",
            &format!("{base}_variance"),
            &[("x", &squared), ("axes", axes), ("keep_dims", &keep)],
        )?;
        let eps_c = ctx.float(&format!("{base}_stats_epsilon"), eps);
        let inv = ctx.op1("rsqrt", &names[1], &[("x", &var), ("epsilon", &eps_c)])?;
        ctx.set_output(node, 2, inv);
    }
    if ctx.output_used(node, 1) {
        ctx.set_output(node, 1, mean);
    }
    Ok(())
}

/// `RMSNormalization` (opset 23): `y = x · rsqrt(mean(x², axes axis…rank−1) + epsilon) · scale`,
/// computed in fp32 (the spec's default `stash_type`), as `mul`, `reduce_mean`, `rsqrt` and two
/// `mul`s (MIL has no RMS norm op).
fn rms_norm(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let scale = ctx.input(node, 1)?;
    let out = ctx.out_name(node, 0);
    let rank = ctx.rank(&x)?;
    let first = axis(ctx, ctx.attr(node.int_or("axis", -1))?, rank)?;
    let eps = ctx.attr(node.float_or("epsilon", 1e-5))?;
    let axes: Vec<i64> = (first as i64..rank as i64).collect();
    let axes = ctx.ints(&format!("{out}_axes"), &axes);
    let keep = ctx.boolean(&format!("{out}_keep_dims"), true);
    let squared = ctx.op1("mul", &format!("{out}_squared"), &[("x", &x), ("y", &x)])?;
    let mean = ctx.op1(
        "reduce_mean",
        &format!("{out}_mean_square"),
        &[("x", &squared), ("axes", &axes), ("keep_dims", &keep)],
    )?;
    let eps = ctx.float(&format!("{out}_epsilon"), eps);
    let inv = ctx.op1(
        "rsqrt",
        &format!("{out}_inv_rms"),
        &[("x", &mean), ("epsilon", &eps)],
    )?;
    let normed = ctx.op1(
        "mul",
        &format!("{out}_normalized"),
        &[("x", &x), ("y", &inv)],
    )?;
    let y = ctx.op1("mul", &out, &[("x", &normed), ("y", &scale)])?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `LpNormalization(axis = -1, p = 2)`: `x / ‖x‖_p` along the axis, the norm from
/// `reduce_l1_norm`/`reduce_l2_norm` (MIL `l2_norm` would add an epsilon ONNX does not have,
/// so a zero vector gives NaN as in ONNX).
fn lp_normalization(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let a = axis(ctx, ctx.attr(node.int_or("axis", -1))?, ctx.rank(&x)?)?;
    let reduce = match ctx.attr(node.int_or("p", 2))? {
        1 => "reduce_l1_norm",
        2 => "reduce_l2_norm",
        p => return Err(ctx.invalid(format!("p must be 1 or 2, not {p}"))),
    };
    let axes = ctx.ints(&format!("{out}_axes"), &[a as i64]);
    let keep = ctx.boolean(&format!("{out}_keep_dims"), true);
    let norm = ctx.op1(
        reduce,
        &format!("{out}_norm"),
        &[("x", &x), ("axes", &axes), ("keep_dims", &keep)],
    )?;
    let y = ctx.op1("real_div", &out, &[("x", &x), ("y", &norm)])?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `LRN(size, alpha, beta, bias)` → `local_response_norm` (`bias` is MIL `k`), for an odd
/// `size`. An even window is not centred: ONNX puts its extra channel after the centre, PyTorch
/// before it, and Core ML does not say which it does, so an even size is unsupported.
fn lrn(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let rank = ctx.rank(&x)?;
    if !(3..=5).contains(&rank) {
        return Err(ctx.unsupported(format!(
            "Core ML's local_response_norm takes inputs of rank 3 to 5, not {rank}"
        )));
    }
    let size = ctx
        .attr(node.int("size"))?
        .ok_or_else(|| ctx.invalid("attribute 'size' is missing"))?;
    if size < 1 {
        return Err(ctx.invalid(format!("size {size} is not positive")));
    }
    if size % 2 == 0 {
        return Err(ctx.unsupported(format!(
            "an even size ({size}) is not supported: Core ML does not say on which side of the centre an even window's extra channel goes"
        )));
    }
    let size_c = ctx.int(&format!("{out}_size"), size);
    let alpha = ctx.float(
        &format!("{out}_alpha"),
        ctx.attr(node.float_or("alpha", 1e-4))?,
    );
    let beta = ctx.float(
        &format!("{out}_beta"),
        ctx.attr(node.float_or("beta", 0.75))?,
    );
    let k = ctx.float(&format!("{out}_k"), ctx.attr(node.float_or("bias", 1.0))?);
    let y = ctx.op1(
        "local_response_norm",
        &out,
        &[
            ("x", &x),
            ("size", &size_c),
            ("alpha", &alpha),
            ("beta", &beta),
            ("k", &k),
        ],
    )?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// This family's converters.
pub const CONVERTERS: &[(&str, ConvertFn)] = &[
    ("BatchNormalization", batch_norm),
    ("InstanceNormalization", instance_norm),
    ("LayerNormalization", layer_norm),
    ("RMSNormalization", rms_norm),
    ("LpNormalization", lp_normalization),
    ("LRN", lrn),
];
