//! Normalisation: `BatchNormalization` (inference), `InstanceNormalization`,
//! `LayerNormalization`.

use super::{axis, ConvertFn, Ctx, Node};
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
    let eps = ctx.float(&format!("{out}_epsilon"), eps);
    // MIL batch_norm needs spatial dimensions: [N, C] runs as [N, C, 1].
    let flat = ctx.rank(&x)? == 2;
    let x = if flat {
        let axes = ctx.ints(&format!("{out}_spatial_axis"), &[2]);
        ctx.op1(
            "expand_dims",
            &format!("{out}_spatial"),
            &[("x", &x), ("axes", &axes)],
        )?
    } else {
        x
    };
    let bn_name = if flat {
        format!("{out}_normalized")
    } else {
        out.clone()
    };
    let params = [
        ("x", &x),
        ("mean", &mean),
        ("variance", &var),
        ("gamma", &gamma),
        ("beta", &beta),
        ("epsilon", &eps),
    ];
    let refs: Vec<(&str, &str)> = params.iter().map(|(p, v)| (*p, v.as_str())).collect();
    let mut y = ctx.op1("batch_norm", &bn_name, &refs)?;
    if flat {
        let axes = ctx.ints(&format!("{out}_squeeze_axis"), &[2]);
        y = ctx.op1("squeeze", &out, &[("x", &y), ("axes", &axes)])?;
    }
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `InstanceNormalization(X, scale, B)` → `instance_norm`.
fn instance_norm(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let (gamma, beta) = (ctx.input(node, 1)?, ctx.input(node, 2)?);
    let out = ctx.out_name(node, 0);
    let eps = ctx.attr(node.float_or("epsilon", 1e-5))?;
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
/// scale and bias must have exactly the normalised shape, and the `Mean`/`InvStdDev`
/// outputs must be unused.
fn layer_norm(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    ctx.require_unused_outputs(node, 1, "Mean/InvStdDev")?;
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let shape = ctx.shape(&x)?;
    let first = axis(ctx, ctx.attr(node.int_or("axis", -1))?, shape.len())?;
    let normalized = &shape[first..];
    let mut params = vec![("x", x)];
    for (i, param) in [(1, "gamma"), (2, "beta")] {
        if let Some(v) = ctx.opt_input(node, i)? {
            if ctx.shape(&v)? != normalized {
                return Err(ctx.unsupported(format!(
                    "{param} of shape {:?} must match the normalised shape {normalized:?}",
                    ctx.shape(&v)?
                )));
            }
            params.push((param, v));
        }
    }
    let axes: Vec<i64> = (first as i64..shape.len() as i64).collect();
    params.insert(1, ("axes", ctx.ints(&format!("{out}_axes"), &axes)));
    let eps = ctx.attr(node.float_or("epsilon", 1e-5))?;
    params.push(("epsilon", ctx.float(&format!("{out}_epsilon"), eps)));
    let refs: Vec<(&str, &str)> = params.iter().map(|(p, v)| (*p, v.as_str())).collect();
    let y = ctx.op1("layer_norm", &out, &refs)?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// This family's converters.
pub const CONVERTERS: &[(&str, ConvertFn)] = &[
    ("BatchNormalization", batch_norm),
    ("InstanceNormalization", instance_norm),
    ("LayerNormalization", layer_norm),
];
