//! Activations: ReLU family, sigmoids, `Clip`, `Softmax`, `Gelu`.

use super::elementwise::scalar_like;
use super::{axis, ConvertFn, Ctx, Emit, Node};
use crate::Error;

unary! { relu => "relu", sigmoid => "sigmoid", softplus => "softplus", softsign => "softsign" }

/// Defines a converter for an activation with one float attribute that becomes MIL `alpha`.
macro_rules! with_alpha {
    ($($fn_name:ident => $mil:literal, default $default:expr),* $(,)?) => {$(
        fn $fn_name(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
            let x = ctx.input(node, 0)?;
            let out = ctx.out_name(node, 0);
            let alpha = ctx.attr(node.float_or("alpha", $default))?;
            let alpha = ctx.float(&format!("{out}_alpha"), alpha);
            let y = ctx.op1($mil, &out, &[("x", &x), ("alpha", &alpha)])?;
            ctx.set_output(node, 0, y);
            Ok(())
        }
    )*};
}

with_alpha! { leaky_relu => "leaky_relu", default 0.01, elu => "elu", default 1.0 }

/// `HardSigmoid(alpha=0.2, beta=0.5)` → `sigmoid_hard`.
fn hard_sigmoid(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let alpha = ctx.attr(node.float_or("alpha", 0.2))?;
    let beta = ctx.attr(node.float_or("beta", 0.5))?;
    let (alpha, beta) = (
        ctx.float(&format!("{out}_alpha"), alpha),
        ctx.float(&format!("{out}_beta"), beta),
    );
    let y = ctx.op1(
        "sigmoid_hard",
        &out,
        &[("x", &x), ("alpha", &alpha), ("beta", &beta)],
    )?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `HardSwish(x) = x * sigmoid_hard(x, 1/6, 0.5)`.
fn hard_swish(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let alpha = ctx.float(&format!("{out}_alpha"), 1.0 / 6.0);
    let beta = ctx.float(&format!("{out}_beta"), 0.5);
    let gate = ctx.op1(
        "sigmoid_hard",
        &format!("{out}_gate"),
        &[("x", &x), ("alpha", &alpha), ("beta", &beta)],
    )?;
    let y = ctx.op1("mul", &out, &[("x", &x), ("y", &gate)])?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `PRelu(x, slope) = max(x, 0) + slope * min(x, 0)` (exact for any broadcastable slope).
fn prelu(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let (x, slope) = (ctx.input(node, 0)?, ctx.input(node, 1)?);
    let out = ctx.out_name(node, 0);
    let zero = scalar_like(ctx, &format!("{out}_zero"), ctx.ty(&x)?.dtype, 0.0);
    let pos = ctx.op1("maximum", &format!("{out}_pos"), &[("x", &x), ("y", &zero)])?;
    let neg = ctx.op1("minimum", &format!("{out}_neg"), &[("x", &x), ("y", &zero)])?;
    let scaled = ctx.op1(
        "mul",
        &format!("{out}_scaled"),
        &[("x", &neg), ("y", &slope)],
    )?;
    let y = ctx.op1("add", &out, &[("x", &pos), ("y", &scaled)])?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// A `Clip` bound: its constant value, or the variable when computed at run time.
enum Bound {
    Const(f32),
    Var(String),
}

/// `Clip`: bounds are attributes before opset 11 and optional inputs from it. Both constant
/// bounds on a float tensor → `clip`; otherwise `maximum`/`minimum` per given bound.
fn clip(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let dtype = ctx.ty(&x)?.dtype;
    let (lo, hi) = if ctx.opset < 11 {
        let lo = ctx
            .attr(node.float("min"))?
            .filter(|v| *v > f32::MIN)
            .map(Bound::Const);
        let hi = ctx
            .attr(node.float("max"))?
            .filter(|v| *v < f32::MAX)
            .map(Bound::Const);
        (lo, hi)
    } else {
        let mut bound = |i: usize| -> Result<Option<Bound>, Error> {
            if let Some(t) = ctx.try_const_input(node, i)? {
                return match t.scalar_f64() {
                    Some(v) => Ok(Some(Bound::Const(v as f32))),
                    None => Err(ctx.invalid(format!("bound #{i} must be a scalar"))),
                };
            }
            Ok(ctx.opt_input(node, i)?.map(Bound::Var))
        };
        (bound(1)?, bound(2)?)
    };
    let y = match (lo, hi) {
        (None, None) => x,
        (Some(Bound::Const(a)), Some(Bound::Const(b))) if dtype.is_float() => {
            let (alpha, beta) = (
                ctx.float(&format!("{out}_alpha"), a),
                ctx.float(&format!("{out}_beta"), b),
            );
            ctx.op1(
                "clip",
                &out,
                &[("x", &x), ("alpha", &alpha), ("beta", &beta)],
            )?
        }
        (lo, hi) => {
            let mut acc = x;
            let has_hi = hi.is_some();
            for (bound, mil, tag) in [(lo, "maximum", "min"), (hi, "minimum", "max")] {
                let Some(bound) = bound else { continue };
                let value = match bound {
                    Bound::Const(v) => scalar_like(ctx, &format!("{out}_{tag}"), dtype, v),
                    Bound::Var(v) => v,
                };
                let hint = if mil == "maximum" && has_hi {
                    format!("{out}_lower")
                } else {
                    out.clone()
                };
                acc = ctx.op1(mil, &hint, &[("x", &acc), ("y", &value)])?;
            }
            acc
        }
    };
    ctx.set_output(node, 0, y);
    Ok(())
}

/// Emits a softmax-like normalisation of `x` along `axis`, named `hint`.
pub type AlongAxis = fn(&mut Ctx, &str, i64, &str) -> Result<String, Error>;

/// `Softmax`/`LogSoftmax`. From opset 13 they normalise along `axis` (default -1). Before,
/// the input is seen as a 2-D matrix split at `axis` (default 1) and normalised along its
/// rows, which differs from normalising one axis unless `axis` is the last dimension.
pub fn normalize(ctx: &mut Ctx, node: &Node, along: AlongAxis) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let rank = ctx.rank(&x)?;
    let default_axis = if ctx.opset < 13 { 1 } else { -1 };
    let a = axis(
        ctx,
        ctx.attr(node.int_or("axis", default_axis))?,
        rank.max(1),
    )?;
    let y = if ctx.opset >= 13 || a + 1 >= rank {
        along(ctx, &x, a as i64, &out)?
    } else {
        let shape = ctx.shape(&x)?;
        let rows: usize = shape[..a].iter().product();
        let cols: usize = shape[a..].iter().product();
        let flat_shape = ctx.ints(&format!("{out}_flat_shape"), &[rows as i64, cols as i64]);
        let flat = ctx.op1(
            "reshape",
            &format!("{out}_flat"),
            &[("x", &x), ("shape", &flat_shape)],
        )?;
        let normalized = along(ctx, &flat, -1, &format!("{out}_rows"))?;
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let back = ctx.ints(&format!("{out}_shape"), &dims);
        ctx.op1("reshape", &out, &[("x", &normalized), ("shape", &back)])?
    };
    ctx.set_output(node, 0, y);
    Ok(())
}

/// MIL `softmax` along `axis`.
fn softmax_along(ctx: &mut Ctx, x: &str, axis: i64, hint: &str) -> Result<String, Error> {
    let axis_c = ctx.int(&format!("{hint}_axis"), axis);
    ctx.op1("softmax", hint, &[("x", x), ("axis", &axis_c)])
}

/// `x - log(sum(exp(x)))` along `axis`, with `reduce_log_sum_exp` (stable, unlike
/// `log(softmax(x))`, which underflows to -inf).
fn log_softmax_along(ctx: &mut Ctx, x: &str, axis: i64, hint: &str) -> Result<String, Error> {
    let axes = ctx.ints(&format!("{hint}_axes"), &[axis]);
    let keep = ctx.boolean(&format!("{hint}_keep_dims"), true);
    let lse = ctx.op1(
        "reduce_log_sum_exp",
        &format!("{hint}_lse"),
        &[("x", x), ("axes", &axes), ("keep_dims", &keep)],
    )?;
    ctx.op1("sub", hint, &[("x", x), ("y", &lse)])
}

fn softmax(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    normalize(ctx, node, softmax_along)
}

fn log_softmax(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    normalize(ctx, node, log_softmax_along)
}

/// `Gelu` (opset 20): `approximate="none"` → EXACT, `"tanh"` → TANH_APPROXIMATION.
fn gelu(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let mode = match ctx
        .attr(node.string("approximate"))?
        .as_deref()
        .unwrap_or("none")
    {
        "none" => "EXACT",
        "tanh" => "TANH_APPROXIMATION",
        other => return Err(ctx.unsupported(format!("approximate='{other}' is not supported"))),
    };
    let mode = ctx.string(&format!("{out}_mode"), mode);
    let y = ctx.op1("gelu", &out, &[("x", &x), ("mode", &mode)])?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// This family's converters.
pub const CONVERTERS: &[(&str, ConvertFn)] = &[
    ("Clip", clip),
    ("Elu", elu),
    ("Gelu", gelu),
    ("HardSigmoid", hard_sigmoid),
    ("HardSwish", hard_swish),
    ("LeakyRelu", leaky_relu),
    ("LogSoftmax", log_softmax),
    ("PRelu", prelu),
    ("Relu", relu),
    ("Sigmoid", sigmoid),
    ("Softmax", softmax),
    ("Softplus", softplus),
    ("Softsign", softsign),
];
