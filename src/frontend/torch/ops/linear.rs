//! Matrix products: `linear` (training IR), `addmm`/`mm`/`bmm` (core ATen), `matmul`.
//! A constant right-hand matrix becomes MIL `linear` (weight `[N, K]`), as in the ONNX
//! frontend, so the linear fusions see the same ops; anything else is `matmul`.

use super::ArgDefault::{Int, None as NoDefault};
use super::{op, Call, Ctx, Emit, OpEntry};
use crate::ir::{DType, Tensor};
use crate::Error;

/// MIL `linear` takes inputs of rank 1 to 3.
const LINEAR_MAX_RANK: usize = 3;

/// `x @ wᵀ + bias` for a weight `w` of shape `[N, K]`, as `linear` when `w` (and the bias)
/// are constant and `x` has rank ≤ 3, as `matmul(transpose_y)` + `add` otherwise.
fn linear_to(
    ctx: &mut Ctx,
    out: &str,
    x: &str,
    w: &str,
    bias: Option<&str>,
) -> Result<String, Error> {
    let rank = ctx.rank(x)?;
    let constant =
        ctx.const_value(w).is_some() && bias.is_none_or(|b| ctx.const_value(b).is_some());
    if constant && (1..=LINEAR_MAX_RANK).contains(&rank) && ctx.rank(w)? == 2 {
        let mut params = vec![("x", x), ("weight", w)];
        if let Some(b) = bias {
            params.push(("bias", b));
        }
        return ctx.op1("linear", out, &params);
    }
    let ty = ctx.boolean(&format!("{out}_transpose_y"), true);
    let hint = if bias.is_some() {
        format!("{out}_product")
    } else {
        out.to_string()
    };
    let y = ctx.op1("matmul", &hint, &[("x", x), ("y", w), ("transpose_y", &ty)])?;
    match bias {
        Some(b) => ctx.op1("add", out, &[("x", &y), ("y", b)]),
        None => Ok(y),
    }
}

/// `linear(input, weight, bias=None)`.
fn linear(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.tensor(call, "input")?;
    let w = ctx.tensor(call, "weight")?;
    let bias = ctx.opt_tensor(call, "bias")?;
    let y = linear_to(ctx, &out, &x, &w, bias.as_deref())?;
    ctx.bind(call, 0, y);
    Ok(())
}

/// The constant `[K, N]` matrix `var` as a `[N, K]` weight constant, if it is one.
fn transposed_weight(ctx: &mut Ctx, var: &str, out: &str) -> Option<String> {
    let t = ctx.const_value(var)?;
    if t.shape().len() != 2 || !t.dtype().is_float() {
        return None;
    }
    let w = t.cast(DType::F32).transposed_matrix();
    Some(ctx.constant(&format!("{out}_weight"), w))
}

/// `addmm(self, mat1, mat2, beta=1, alpha=1)` = `beta·self + alpha·(mat1 @ mat2)`.
fn addmm(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let bias = ctx.tensor(call, "self")?;
    let a = ctx.tensor(call, "mat1")?;
    let b = ctx.tensor(call, "mat2")?;
    let beta = ctx.float_arg(call, "beta")?;
    let alpha = ctx.float_arg(call, "alpha")?;
    if alpha == 1.0 {
        if let Some(w) = transposed_weight(ctx, &b, &out) {
            let n = ctx.shape(&w)?[0];
            let bias_value = ctx
                .const_value(&bias)
                .filter(|t| t.len() == n && t.shape().last() == Some(&n))
                .map(|t| t.to_f32_vec());
            if let Some(v) = bias_value {
                let scaled: Vec<f32> = v.iter().map(|x| x * beta as f32).collect();
                let bias = ctx.constant(&format!("{out}_bias"), Tensor::from_f32(&[n], &scaled));
                let y = linear_to(ctx, &out, &a, &w, Some(&bias))?;
                ctx.bind(call, 0, y);
                return Ok(());
            }
        }
    }
    let mut y = ctx.op1("matmul", &format!("{out}_product"), &[("x", &a), ("y", &b)])?;
    if alpha != 1.0 {
        let c = ctx.float(&format!("{out}_alpha"), alpha as f32);
        y = ctx.op1("mul", &format!("{out}_scaled"), &[("x", &y), ("y", &c)])?;
    }
    let bias = if beta != 1.0 {
        let c = ctx.float(&format!("{out}_beta"), beta as f32);
        ctx.op1(
            "mul",
            &format!("{out}_scaled_bias"),
            &[("x", &bias), ("y", &c)],
        )?
    } else {
        bias
    };
    let y = ctx.op1("add", &out, &[("x", &y), ("y", &bias)])?;
    ctx.bind(call, 0, y);
    Ok(())
}

/// `mm(self, mat2)`, `bmm(self, mat2)`, `matmul(self, other)`.
fn matmul(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let a = ctx.tensor(call, "self")?;
    let other = if call.node.inputs.iter().any(|i| i.name == "mat2") {
        "mat2"
    } else {
        "other"
    };
    let b = ctx.tensor(call, other)?;
    if let Some(w) = transposed_weight(ctx, &b, &out) {
        let y = linear_to(ctx, &out, &a, &w, None)?;
        ctx.bind(call, 0, y);
        return Ok(());
    }
    let y = ctx.op1("matmul", &out, &[("x", &a), ("y", &b)])?;
    ctx.bind(call, 0, y);
    Ok(())
}

/// This family's ops.
pub const OPS: &[OpEntry] = &[
    op("aten.linear.default", linear, &[("bias", NoDefault)]),
    op(
        "aten.addmm.default",
        addmm,
        &[("beta", Int(1)), ("alpha", Int(1))],
    ),
    op("aten.mm.default", matmul, &[]),
    op("aten.bmm.default", matmul, &[]),
    op("aten.matmul.default", matmul, &[]),
];
