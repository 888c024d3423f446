//! `MatMul` and `Gemm`: `linear` when the right operand is a constant matrix (or, for `Gemm`
//! with `transB`, a constexpr-rebuilt one), `matmul` otherwise.

use super::{ConvertFn, Ctx, Emit, Node};
use crate::ir::{DType, Tensor};
use crate::Error;

/// MIL `linear` takes inputs of rank 1 to 3.
const LINEAR_MAX_RANK: usize = 3;

/// `MatMul(A, B)`: a constant fp32 matrix `B` [K, N] becomes `linear` with weight `Bᵀ`
/// [N, K]; otherwise `matmul` with NumPy semantics.
fn matmul(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let a = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let a_ty = ctx.ty(&a)?;
    let b_const = ctx.try_const_input(node, 1)?;
    let y = match b_const {
        Some(b)
            if b.shape().len() == 2
                && a_ty.dtype == DType::F32
                && (1..=LINEAR_MAX_RANK).contains(&a_ty.rank()) =>
        {
            let weight = ctx.constant(
                &format!("{out}_weight"),
                b.cast(DType::F32).transposed_matrix(),
            );
            ctx.op1("linear", &out, &[("x", &a), ("weight", &weight)])?
        }
        _ => {
            let b = ctx.input(node, 1)?;
            ctx.op1("matmul", &out, &[("x", &a), ("y", &b)])?
        }
    };
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `Gemm`: `alpha * op(A) @ op(B) + beta * C`. With `transA=0`, `alpha=1`, a constant `B`
/// and a constant `C` that is one value per output column, it is `linear` (weight `[N, K]`,
/// bias `beta * C`); otherwise `matmul` followed by `mul`/`add`.
fn gemm(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let a = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let alpha = ctx.attr(node.float_or("alpha", 1.0))?;
    let beta = ctx.attr(node.float_or("beta", 1.0))?;
    let trans_a = ctx.attr(node.int_or("transA", 0))? != 0;
    let trans_b = ctx.attr(node.int_or("transB", 0))? != 0;
    if ctx.rank(&a)? != 2 {
        return Err(ctx.invalid(format!(
            "input A must be a matrix, has type {}",
            ctx.ty(&a)?
        )));
    }
    let b_const = ctx
        .try_const_input(node, 1)?
        .filter(|b| b.shape().len() == 2);
    let c_const = ctx.try_const_input(node, 2)?;
    let c_given = node.input_name(2).is_some();
    let weight = match (trans_a, alpha == 1.0, &b_const) {
        (false, true, Some(b)) => {
            let b = b.cast(DType::F32);
            let weight = if trans_b { b } else { b.transposed_matrix() };
            Some(ctx.constant(&format!("{out}_weight"), weight))
        }
        // A weight rebuilt at load time (a pre-quantized model's) already laid out [N, K].
        (false, true, None) if trans_b => {
            let b = ctx.input(node, 1)?;
            let decompressed = ctx
                .e
                .b
                .producer_type(&b)
                .is_some_and(|t| t.starts_with("constexpr_"));
            (decompressed && ctx.rank(&b)? == 2).then_some(b)
        }
        _ => None,
    };
    if let Some(weight) = weight {
        let n = ctx.shape(&weight)?[0];
        let bias = match &c_const {
            Some(c) if c.len() == n && c.shape().iter().rev().skip(1).all(|&d| d == 1) => {
                Some(c.to_f32_vec().iter().map(|v| v * beta).collect::<Vec<_>>())
            }
            Some(c) if c.len() == 1 => Some(vec![c.to_f32_vec()[0] * beta; n]),
            None if !c_given => None,
            _ => return gemm_general(ctx, node, &out, alpha, beta, trans_a, trans_b),
        };
        let y = match bias {
            Some(bias) => {
                let bias = ctx.constant(&format!("{out}_bias"), Tensor::from_f32(&[n], &bias));
                ctx.op1(
                    "linear",
                    &out,
                    &[("x", &a), ("weight", &weight), ("bias", &bias)],
                )?
            }
            None => ctx.op1("linear", &out, &[("x", &a), ("weight", &weight)])?,
        };
        ctx.set_output(node, 0, y);
        return Ok(());
    }
    gemm_general(ctx, node, &out, alpha, beta, trans_a, trans_b)
}

fn gemm_general(
    ctx: &mut Ctx,
    node: &Node,
    out: &str,
    alpha: f32,
    beta: f32,
    trans_a: bool,
    trans_b: bool,
) -> Result<(), Error> {
    let (a, b) = (ctx.input(node, 0)?, ctx.input(node, 1)?);
    let c = ctx.opt_input(node, 2)?;
    let tx = ctx.boolean(&format!("{out}_transpose_x"), trans_a);
    let ty = ctx.boolean(&format!("{out}_transpose_y"), trans_b);
    let mut steps: Vec<(&str, Option<String>)> = Vec::new();
    if alpha != 1.0 {
        steps.push(("mul", Some(ctx.float(&format!("{out}_alpha"), alpha))));
    }
    let c = match c {
        Some(c) if beta != 1.0 => {
            let beta_c = ctx.float(&format!("{out}_beta"), beta);
            Some(ctx.op1(
                "mul",
                &format!("{out}_scaled_c"),
                &[("x", &c), ("y", &beta_c)],
            )?)
        }
        c => c,
    };
    if let Some(c) = c {
        steps.push(("add", Some(c)));
    }
    let hint = |i: usize| {
        if i == steps.len() {
            out.to_string()
        } else {
            format!("{out}_step{i}")
        }
    };
    let mut acc = ctx.op1(
        "matmul",
        &hint(0),
        &[
            ("x", &a),
            ("y", &b),
            ("transpose_x", &tx),
            ("transpose_y", &ty),
        ],
    )?;
    for (i, (mil, operand)) in steps.iter().enumerate() {
        let operand = operand.as_deref().unwrap_or_default();
        acc = ctx.op1(mil, &hint(i + 1), &[("x", &acc), ("y", operand)])?;
    }
    ctx.set_output(node, 0, acc);
    Ok(())
}

/// This family's converters.
pub const CONVERTERS: &[(&str, ConvertFn)] = &[("Gemm", gemm), ("MatMul", matmul)];
