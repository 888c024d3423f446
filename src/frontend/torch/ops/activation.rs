//! Activations: `relu`, `relu6`/`hardtanh`, `gelu`, `silu`, `sigmoid`, `tanh`,
//! `hardswish`, `hardsigmoid`, `leaky_relu`, `elu`, `softmax`, `log_softmax` (and their
//! in-place forms).

use super::ArgDefault::{Float, None as NoDefault, Str};
use super::{bind_in_place, op, Call, Ctx, Emit, OpEntry};
use crate::ir::DType;
use crate::Error;

/// A one-input MIL op on `self`.
fn simple(ctx: &mut Ctx, call: &Call, mil: &str) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.operand(call, "self", DType::F32)?;
    let y = ctx.op1(mil, &out, &[("x", &x)])?;
    bind_in_place(ctx, call, y);
    Ok(())
}

fn relu(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    simple(ctx, call, "relu")
}

fn sigmoid(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    simple(ctx, call, "sigmoid")
}

fn tanh(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    simple(ctx, call, "tanh")
}

/// `silu(x)` = `x · sigmoid(x)` (the form the SiLU fusion recognises).
fn silu(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.operand(call, "self", DType::F32)?;
    let gate = ctx.op1("sigmoid", &format!("{out}_gate"), &[("x", &x)])?;
    let y = ctx.op1("mul", &out, &[("x", &x), ("y", &gate)])?;
    bind_in_place(ctx, call, y);
    Ok(())
}

/// `clip(x, lo, hi)` named after output 0.
fn clip(ctx: &mut Ctx, call: &Call, lo: f64, hi: f64) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.operand(call, "self", DType::F32)?;
    let a = ctx.float(&format!("{out}_alpha"), lo as f32);
    let b = ctx.float(&format!("{out}_beta"), hi as f32);
    let y = ctx.op1("clip", &out, &[("x", &x), ("alpha", &a), ("beta", &b)])?;
    bind_in_place(ctx, call, y);
    Ok(())
}

fn relu6(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    clip(ctx, call, 0.0, 6.0)
}

/// `hardtanh(self, min_val=-1, max_val=1)`.
fn hardtanh(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let lo = ctx.float_arg(call, "min_val")?;
    let hi = ctx.float_arg(call, "max_val")?;
    clip(ctx, call, lo, hi)
}

/// `sigmoid_hard(x, 1/6, 1/2)`, the gate of hardsigmoid and hardswish.
fn hard_gate(ctx: &mut Ctx, x: &str, hint: &str) -> Result<String, Error> {
    let alpha = ctx.float(&format!("{hint}_alpha"), 1.0 / 6.0);
    let beta = ctx.float(&format!("{hint}_beta"), 0.5);
    ctx.op1(
        "sigmoid_hard",
        hint,
        &[("x", x), ("alpha", &alpha), ("beta", &beta)],
    )
}

fn hardsigmoid(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.operand(call, "self", DType::F32)?;
    let y = hard_gate(ctx, &x, &out)?;
    bind_in_place(ctx, call, y);
    Ok(())
}

fn hardswish(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.operand(call, "self", DType::F32)?;
    let gate = hard_gate(ctx, &x, &format!("{out}_gate"))?;
    let y = ctx.op1("mul", &out, &[("x", &x), ("y", &gate)])?;
    bind_in_place(ctx, call, y);
    Ok(())
}

/// `gelu(self, approximate='none')`.
fn gelu(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.operand(call, "self", DType::F32)?;
    let mode = match ctx.opt_string(call, "approximate")?.as_deref() {
        Some("none") | None => "EXACT",
        Some("tanh") => "TANH_APPROXIMATION",
        Some(other) => {
            return Err(ctx.unsupported(format!("approximate='{other}' is not supported")))
        }
    };
    let mode = ctx.string(&format!("{out}_mode"), mode);
    let y = ctx.op1("gelu", &out, &[("x", &x), ("mode", &mode)])?;
    bind_in_place(ctx, call, y);
    Ok(())
}

/// A MIL op with an `alpha` parameter read from argument `arg`.
fn with_alpha(ctx: &mut Ctx, call: &Call, mil: &str, arg: &str) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.operand(call, "self", DType::F32)?;
    let alpha = ctx.float_arg(call, arg)?;
    let alpha = ctx.float(&format!("{out}_alpha"), alpha as f32);
    let y = ctx.op1(mil, &out, &[("x", &x), ("alpha", &alpha)])?;
    bind_in_place(ctx, call, y);
    Ok(())
}

fn leaky_relu(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    with_alpha(ctx, call, "leaky_relu", "negative_slope")
}

/// `elu(self, alpha=1, scale=1, input_scale=1)`; only the plain form.
fn elu(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    if ctx.float_arg(call, "scale")? != 1.0 || ctx.float_arg(call, "input_scale")? != 1.0 {
        return Err(ctx.unsupported("elu with scale or input_scale other than 1 is not supported"));
    }
    with_alpha(ctx, call, "elu", "alpha")
}

/// `softmax(self, dim)`; a given `dtype` only changes the precision torch computes in.
fn softmax(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.operand(call, "self", DType::F32)?;
    let axis = ctx.int_arg(call, "dim")?;
    let axis = ctx.int(&format!("{out}_axis"), axis);
    let y = ctx.op1("softmax", &out, &[("x", &x), ("axis", &axis)])?;
    ctx.bind(call, 0, y);
    Ok(())
}

/// `log_softmax(self, dim)` = `x - reduce_log_sum_exp(x)` (stable).
fn log_softmax(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.operand(call, "self", DType::F32)?;
    let axis = ctx.int_arg(call, "dim")?;
    let axes = ctx.ints(&format!("{out}_axes"), &[axis]);
    let keep = ctx.boolean(&format!("{out}_keep_dims"), true);
    let lse = ctx.op1(
        "reduce_log_sum_exp",
        &format!("{out}_lse"),
        &[("x", &x), ("axes", &axes), ("keep_dims", &keep)],
    )?;
    let y = ctx.op1("sub", &out, &[("x", &x), ("y", &lse)])?;
    ctx.bind(call, 0, y);
    Ok(())
}

/// This family's ops.
pub const OPS: &[OpEntry] = &[
    op("aten.relu.default", relu, &[]),
    op("aten.relu_.default", relu, &[]),
    op("aten.relu6.default", relu6, &[]),
    op("aten.relu6_.default", relu6, &[]),
    op("aten.hardtanh.default", hardtanh, HARDTANH),
    op("aten.hardtanh_.default", hardtanh, HARDTANH),
    op("aten.sigmoid.default", sigmoid, &[]),
    op("aten.sigmoid_.default", sigmoid, &[]),
    op("aten.tanh.default", tanh, &[]),
    op("aten.tanh_.default", tanh, &[]),
    op("aten.silu.default", silu, &[]),
    op("aten.silu_.default", silu, &[]),
    op("aten.hardsigmoid.default", hardsigmoid, &[]),
    op("aten.hardsigmoid_.default", hardsigmoid, &[]),
    op("aten.hardswish.default", hardswish, &[]),
    op("aten.hardswish_.default", hardswish, &[]),
    op("aten.gelu.default", gelu, &[("approximate", Str("none"))]),
    op("aten.gelu_.default", gelu, &[("approximate", Str("none"))]),
    op(
        "aten.leaky_relu.default",
        leaky_relu,
        &[("negative_slope", Float(0.01))],
    ),
    op(
        "aten.leaky_relu_.default",
        leaky_relu,
        &[("negative_slope", Float(0.01))],
    ),
    op("aten.elu.default", elu, ELU),
    op("aten.elu_.default", elu, ELU),
    op("aten.softmax.int", softmax, &[("dtype", NoDefault)]),
    op("aten._softmax.default", softmax, &[]),
    op("aten.log_softmax.int", log_softmax, &[("dtype", NoDefault)]),
    op("aten._log_softmax.default", log_softmax, &[]),
];

const HARDTANH: &[(&str, super::ArgDefault)] = &[("min_val", Float(-1.0)), ("max_val", Float(1.0))];
const ELU: &[(&str, super::ArgDefault)] = &[
    ("alpha", Float(1.0)),
    ("scale", Float(1.0)),
    ("input_scale", Float(1.0)),
];
