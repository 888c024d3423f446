//! Normalisation: `batch_norm` (inference), `_native_batch_norm_legit_no_training`,
//! `layer_norm`, `native_layer_norm` (their statistics outputs are not converted).

use super::ArgDefault::{Bool, Float, None as NoDefault};
use super::{op, Call, Ctx, Emit, OpEntry};
use crate::frontend::lowering::{self, BatchNormParams};
use crate::Error;

/// Inference batch norm with constant statistics → MIL `batch_norm` (`[N, C]` runs as
/// `[N, C, 1]`).
fn batch_norm_core(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.tensor(call, "input")?;
    let gamma = ctx.opt_tensor(call, "weight")?;
    let beta = ctx.opt_tensor(call, "bias")?;
    let mean = ctx.tensor(call, "running_mean")?;
    let var = ctx.tensor(call, "running_var")?;
    let eps = ctx.float_arg(call, "eps")?;
    let constant = [Some(&mean), Some(&var), gamma.as_ref(), beta.as_ref()]
        .into_iter()
        .flatten()
        .all(|v| ctx.const_value(v).is_some());
    if !constant {
        return Err(
            ctx.unsupported("batch norm with statistics computed at run time is not supported")
        );
    }
    let params = BatchNormParams {
        mean: &mean,
        variance: &var,
        gamma: gamma.as_deref(),
        beta: beta.as_deref(),
        epsilon: eps as f32,
    };
    let y = lowering::batch_norm(ctx, &out, &x, &params)?;
    ctx.bind(call, 0, y);
    Ok(())
}

/// `batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps,
/// cudnn_enabled)`; training mode is unsupported.
fn batch_norm(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    if ctx.flag(call, "training")? {
        return Err(ctx.unsupported(
            "batch norm in training mode is not supported; export the model in eval() mode",
        ));
    }
    batch_norm_core(ctx, call)
}

/// `layer_norm(input, normalized_shape, weight, bias, eps)` → MIL `layer_norm` over the
/// trailing axes; a non-constant affine is applied after it.
fn layer_norm(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.tensor(call, "input")?;
    let normalized = ctx.ints_arg(call, "normalized_shape")?;
    let gamma = ctx.opt_tensor(call, "weight")?;
    let beta = ctx.opt_tensor(call, "bias")?;
    let eps = ctx.float_arg(call, "eps")?;
    let rank = ctx.rank(&x)?;
    if normalized.is_empty() || normalized.len() > rank {
        return Err(ctx.invalid(format!(
            "normalized_shape {normalized:?} does not fit rank {rank}"
        )));
    }
    let axes: Vec<i64> = ((rank - normalized.len()) as i64..rank as i64).collect();
    let expected: Vec<usize> = normalized.iter().map(|&d| d as usize).collect();
    let affine: Vec<(&str, String)> = [("gamma", gamma), ("beta", beta)]
        .into_iter()
        .filter_map(|(p, v)| v.map(|v| (p, v)))
        .collect();
    let fused = affine.iter().all(|(_, v)| {
        ctx.const_value(v).is_some()
            && ctx.ty(v).ok().and_then(|t| t.static_shape()).as_deref() == Some(&expected[..])
    });
    let axes = ctx.ints(&format!("{out}_axes"), &axes);
    let eps = ctx.float(&format!("{out}_epsilon"), eps as f32);
    let mut params: Vec<(&str, &str)> = vec![("x", &x), ("axes", &axes)];
    if fused {
        params.extend(affine.iter().map(|(p, v)| (*p, v.as_str())));
    }
    params.push(("epsilon", &eps));
    let name = if fused || affine.is_empty() {
        out.clone()
    } else {
        format!("{out}_normalized")
    };
    let mut y = ctx.op1("layer_norm", &name, &params)?;
    if !fused {
        for (i, (param, v)) in affine.iter().enumerate() {
            let hint = if i + 1 == affine.len() {
                out.clone()
            } else {
                format!("{out}_scaled")
            };
            let mil = if *param == "gamma" { "mul" } else { "add" };
            y = ctx.op1(mil, &hint, &[("x", &y), ("y", v)])?;
        }
    }
    ctx.bind(call, 0, y);
    Ok(())
}

/// This family's ops.
pub const OPS: &[OpEntry] = &[
    op("aten.batch_norm.default", batch_norm, &[]),
    op(
        "aten._native_batch_norm_legit_no_training.default",
        batch_norm_core,
        &[],
    ),
    op(
        "aten.layer_norm.default",
        layer_norm,
        &[
            ("weight", NoDefault),
            ("bias", NoDefault),
            ("eps", Float(1e-5)),
            ("cudnn_enable", Bool(true)),
        ],
    ),
    op("aten.native_layer_norm.default", layer_norm, &[]),
];
