//! `MatMul` and `Gemm`: `linear` when the right operand is a constant matrix (or, for `Gemm`
//! with `transB`, a constexpr-rebuilt one), `matmul` otherwise. `Det` of small matrices.

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

/// `Det(x)` of `[*, M, M]` matrices with M ≤ 3, by the cofactor formula (Core ML has no
/// determinant): each entry is gathered from the matrices flattened to `[*, M·M]`, then
/// `a`, `ad − bc`, or `a(ei − fh) − b(di − fg) + c(dh − eg)`. Larger matrices are unsupported.
fn det(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let shape = ctx.shape(&x)?;
    let rank = shape.len();
    if rank < 2 || shape[rank - 1] != shape[rank - 2] || !ctx.ty(&x)?.dtype.is_float() {
        return Err(ctx.invalid(format!(
            "input must be float square matrices [*, M, M], got shape {shape:?}"
        )));
    }
    let m = shape[rank - 1];
    if !(1..=3).contains(&m) {
        return Err(ctx.unsupported(format!(
            "only 1×1 to 3×3 matrices are supported, got {m}×{m}"
        )));
    }
    let mut flat: Vec<i64> = shape[..rank - 2].iter().map(|&d| d as i64).collect();
    flat.push((m * m) as i64);
    let flat = ctx.ints(&format!("{out}_flat_shape"), &flat);
    let entries = ctx.op1(
        "reshape",
        &format!("{out}_entries"),
        &[("x", &x), ("shape", &flat)],
    )?;
    let last = ctx.int(&format!("{out}_axis"), rank as i64 - 2);
    let mut e = Vec::with_capacity(m * m);
    for i in 0..m * m {
        let at = ctx.int(&format!("{out}_at{i}"), i as i64);
        e.push(ctx.op1(
            "gather",
            &format!("{out}_e{i}"),
            &[("x", &entries), ("indices", &at), ("axis", &last)],
        )?);
    }
    let y = match m {
        1 => e[0].clone(),
        2 => minor(ctx, [&e[0], &e[3], &e[1], &e[2]], &out)?,
        _ => {
            let cofactors = [
                minor(ctx, [&e[4], &e[8], &e[5], &e[7]], &format!("{out}_minor0"))?,
                minor(ctx, [&e[3], &e[8], &e[5], &e[6]], &format!("{out}_minor1"))?,
                minor(ctx, [&e[3], &e[7], &e[4], &e[6]], &format!("{out}_minor2"))?,
            ];
            let mut terms = Vec::with_capacity(3);
            for (i, cofactor) in cofactors.iter().enumerate() {
                terms.push(ctx.op1(
                    "mul",
                    &format!("{out}_term{i}"),
                    &[("x", &e[i]), ("y", cofactor)],
                )?);
            }
            let partial = ctx.op1(
                "sub",
                &format!("{out}_partial"),
                &[("x", &terms[0]), ("y", &terms[1])],
            )?;
            ctx.op1("add", &out, &[("x", &partial), ("y", &terms[2])])?
        }
    };
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `p·q − r·s` for `[p, q, r, s]`.
fn minor(ctx: &mut Ctx, [p, q, r, s]: [&String; 4], hint: &str) -> Result<String, Error> {
    let pq = ctx.op1("mul", &format!("{hint}_pq"), &[("x", p), ("y", q)])?;
    let rs = ctx.op1("mul", &format!("{hint}_rs"), &[("x", r), ("y", s)])?;
    ctx.op1("sub", hint, &[("x", &pq), ("y", &rs)])
}

/// This family's converters.
pub const CONVERTERS: &[(&str, ConvertFn)] = &[("Det", det), ("Gemm", gemm), ("MatMul", matmul)];
