//! Activations MIL has no single exact op for, composed from several MIL ops: `Selu`, `Celu`,
//! `ThresholdedRelu`, `Shrink`, `Mish`, `Hardmax`.

use super::activation::normalize;
use super::elementwise::scalar_like;
use super::{ConvertFn, Ctx, Emit, Node};
use crate::ir::ops::axis::norm_axis;
use crate::Error;

/// `Selu(x) = gamma * elu(x, alpha)` (defaults are the ONNX constants).
fn selu(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let alpha = ctx.attr(node.float_or("alpha", 1.673_263_2))?;
    let gamma = ctx.attr(node.float_or("gamma", 1.050_701))?;
    let alpha = ctx.float(&format!("{out}_alpha"), alpha);
    let gamma = ctx.float(&format!("{out}_gamma"), gamma);
    let elu = ctx.op1(
        "elu",
        &format!("{out}_elu"),
        &[("x", &x), ("alpha", &alpha)],
    )?;
    let y = ctx.op1("mul", &out, &[("x", &elu), ("y", &gamma)])?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `Celu(x) = max(0, x) + min(0, alpha * (exp(x / alpha) - 1))`, emitted as
/// `alpha * elu(x / alpha, 1)` (the same function: `x` where positive).
fn celu(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let alpha = ctx.attr(node.float_or("alpha", 1.0))?;
    if alpha == 0.0 {
        return Err(ctx.invalid("alpha must not be 0"));
    }
    let alpha_c = ctx.float(&format!("{out}_alpha"), alpha);
    let one = ctx.float(&format!("{out}_one"), 1.0);
    let scaled = ctx.op1(
        "real_div",
        &format!("{out}_scaled"),
        &[("x", &x), ("y", &alpha_c)],
    )?;
    let elu = ctx.op1(
        "elu",
        &format!("{out}_elu"),
        &[("x", &scaled), ("alpha", &one)],
    )?;
    let y = ctx.op1("mul", &out, &[("x", &elu), ("y", &alpha_c)])?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `ThresholdedRelu(x) = x if x > alpha else 0`. MIL `thresholded_relu` keeps `x == alpha`,
/// so the strict comparison is emitted with `greater` and `select`.
fn thresholded_relu(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let dtype = ctx.ty(&x)?.dtype;
    let alpha = ctx.attr(node.float_or("alpha", 1.0))?;
    let alpha = scalar_like(ctx, &format!("{out}_alpha"), dtype, alpha);
    let zero = scalar_like(ctx, &format!("{out}_zero"), dtype, 0.0);
    let keep = ctx.op1(
        "greater",
        &format!("{out}_keep"),
        &[("x", &x), ("y", &alpha)],
    )?;
    let y = ctx.op1("select", &out, &[("cond", &keep), ("a", &x), ("b", &zero)])?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `Shrink(x) = x - bias if x > lambd, x + bias if x < -lambd, else 0`.
fn shrink(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let dtype = ctx.ty(&x)?.dtype;
    let lambd = ctx.attr(node.float_or("lambd", 0.5))?;
    let bias = ctx.attr(node.float_or("bias", 0.0))?;
    let hi = scalar_like(ctx, &format!("{out}_lambd"), dtype, lambd);
    let lo = scalar_like(ctx, &format!("{out}_neg_lambd"), dtype, -lambd);
    let bias = scalar_like(ctx, &format!("{out}_bias"), dtype, bias);
    let zero = scalar_like(ctx, &format!("{out}_zero"), dtype, 0.0);
    let above = ctx.op1("greater", &format!("{out}_above"), &[("x", &x), ("y", &hi)])?;
    let below = ctx.op1("less", &format!("{out}_below"), &[("x", &x), ("y", &lo)])?;
    let minus = ctx.op1("sub", &format!("{out}_minus"), &[("x", &x), ("y", &bias)])?;
    let plus = ctx.op1("add", &format!("{out}_plus"), &[("x", &x), ("y", &bias)])?;
    let low_part = ctx.op1(
        "select",
        &format!("{out}_low"),
        &[("cond", &below), ("a", &plus), ("b", &zero)],
    )?;
    let y = ctx.op1(
        "select",
        &out,
        &[("cond", &above), ("a", &minus), ("b", &low_part)],
    )?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `Mish(x) = x * tanh(softplus(x))`.
fn mish(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let sp = ctx.op1("softplus", &format!("{out}_softplus"), &[("x", &x)])?;
    let t = ctx.op1("tanh", &format!("{out}_tanh"), &[("x", &sp)])?;
    let y = ctx.op1("mul", &out, &[("x", &x), ("y", &t)])?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// One-hot of the first maximum along `axis`: `one_hot(reduce_argmax(x), size of axis)`.
fn hardmax_along(ctx: &mut Ctx, x: &str, axis: i64, hint: &str) -> Result<String, Error> {
    let ty = ctx.ty(x)?;
    let (a, depth) = norm_axis(axis, ty.rank())
        .ok()
        .and_then(|a| Some((a, ty.shape.get(a)?.fixed()?)))
        .ok_or_else(|| ctx.unsupported(format!("needs a static size along axis {axis}")))?;
    let axis_c = ctx.int(&format!("{hint}_axis"), a as i64);
    let arg = ctx.op1(
        "reduce_argmax",
        &format!("{hint}_argmax"),
        &[("x", x), ("axis", &axis_c)],
    )?;
    let depth = ctx.int(&format!("{hint}_depth"), depth as i64);
    let on = scalar_like(ctx, &format!("{hint}_on"), ty.dtype, 1.0);
    let off = scalar_like(ctx, &format!("{hint}_off"), ty.dtype, 0.0);
    ctx.op1(
        "one_hot",
        hint,
        &[
            ("indices", &arg),
            ("one_hot_vector_size", &depth),
            ("axis", &axis_c),
            ("on_value", &on),
            ("off_value", &off),
        ],
    )
}

/// `Hardmax`: like `Softmax`, one axis from opset 13 and the 2-D view before.
fn hardmax(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    normalize(ctx, node, hardmax_along)
}

/// This family's converters.
pub const CONVERTERS: &[(&str, ConvertFn)] = &[
    ("Celu", celu),
    ("Hardmax", hardmax),
    ("Mish", mish),
    ("Selu", selu),
    ("Shrink", shrink),
    ("ThresholdedRelu", thresholded_relu),
];
