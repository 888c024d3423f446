//! `scaled_dot_product_attention` (training IR) and its CPU flash variant, emitted in the
//! decomposed form the attention fusion recognises — `matmul(q, k, transpose_y)`, a scale
//! `mul`, the mask (`select` for bool masks, `add` for float ones), `softmax`, `matmul` —
//! so that it becomes one `scaled_dot_product_attention` op at iOS18 like ONNX attention.

use super::ArgDefault::{Bool, Float, None as NoDefault};
use super::{op, ArgDefault, Call, Ctx, Emit, OpEntry};
use crate::ir::{DType, Tensor};
use crate::Error;

fn sdpa(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let q = ctx.tensor(call, "query")?;
    let mut k = ctx.tensor(call, "key")?;
    let mut v = ctx.tensor(call, "value")?;
    let mask = ctx.opt_tensor(call, "attn_mask")?;
    let causal = ctx.flag(call, "is_causal")?;
    let gqa =
        call.node.inputs.iter().any(|a| a.name == "enable_gqa") && ctx.flag(call, "enable_gqa")?;
    let q_ty = ctx.ty(&q)?;
    let rank = q_ty.rank();
    if rank < 3 {
        return Err(ctx.invalid(format!("query has type {q_ty}, expected rank ≥ 3")));
    }
    let e = q_ty.shape[rank - 1]
        .fixed()
        .ok_or_else(|| ctx.unsupported("the head size of the query must be static"))?;
    if gqa {
        let heads = q_ty.shape[rank - 3].fixed();
        let kv_heads = ctx.ty(&k)?.shape[rank - 3].fixed();
        let (Some(h), Some(kvh)) = (heads, kv_heads) else {
            return Err(ctx.unsupported("grouped-query attention needs static head counts"));
        };
        if kvh == 0 || h % kvh != 0 {
            return Err(ctx.invalid(format!("{h} query heads do not group over {kvh} key heads")));
        }
        if h != kvh {
            // Repeat each key/value head h/kvh times: [B, kvh, S, E] → [B, kvh, r, S, E] →
            // [B, h, S, E], as `repeat_interleave` does.
            let r = (h / kvh) as i64;
            for (i, t) in [&mut k, &mut v].into_iter().enumerate() {
                let ty = ctx.ty(t)?;
                let axes = ctx.ints(&format!("{out}_kv{i}_axes"), &[(rank - 2) as i64]);
                let ex = ctx.op1(
                    "expand_dims",
                    &format!("{out}_kv{i}_grouped"),
                    &[("x", t), ("axes", &axes)],
                )?;
                let mut reps = vec![1i64; rank + 1];
                reps[rank - 2] = r;
                let reps = ctx.ints(&format!("{out}_kv{i}_reps"), &reps);
                let tiled = ctx.op1(
                    "tile",
                    &format!("{out}_kv{i}_tiled"),
                    &[("x", &ex), ("reps", &reps)],
                )?;
                let mut shape: Vec<i64> = ty
                    .shape
                    .iter()
                    .map(|d| d.fixed().map_or(-1, |n| n as i64))
                    .collect();
                shape[rank - 3] = h as i64;
                if shape.iter().filter(|&&d| d == -1).count() > 1 {
                    return Err(ctx.unsupported(
                        "grouped-query attention with several symbolic dims is not supported",
                    ));
                }
                let shape = ctx.ints(&format!("{out}_kv{i}_shape"), &shape);
                *t = ctx.op1(
                    "reshape",
                    &format!("{out}_kv{i}_repeated"),
                    &[("x", &tiled), ("shape", &shape)],
                )?;
            }
        }
    }
    let scale = ctx
        .opt_float(call, "scale")?
        .unwrap_or(1.0 / (e as f64).sqrt());
    let ty = ctx.boolean(&format!("{out}_transpose_y"), true);
    let scores = ctx.op1(
        "matmul",
        &format!("{out}_scores"),
        &[("x", &q), ("y", &k), ("transpose_y", &ty)],
    )?;
    let scale_c = ctx.float(&format!("{out}_scale"), scale as f32);
    let mut scores = ctx.op1(
        "mul",
        &format!("{out}_scaled_scores"),
        &[("x", &scores), ("y", &scale_c)],
    )?;
    let neg_inf = ctx.float(&format!("{out}_mask_fill"), f32::NEG_INFINITY);
    if causal {
        let s_ty = ctx.ty(&scores)?;
        let n = s_ty.rank();
        let (Some(l), Some(s)) = (s_ty.shape[n - 2].fixed(), s_ty.shape[n - 1].fixed()) else {
            return Err(ctx.unsupported(
                "is_causal=True needs static sequence lengths; pass an explicit mask",
            ));
        };
        let keep: Vec<bool> = (0..l).flat_map(|i| (0..s).map(move |j| j <= i)).collect();
        let m = ctx.constant(
            &format!("{out}_causal_mask"),
            Tensor::from_bool(&[l, s], &keep),
        );
        scores = ctx.op1(
            "select",
            &format!("{out}_causal_scores"),
            &[("cond", &m), ("a", &scores), ("b", &neg_inf)],
        )?;
    }
    if let Some(m) = mask {
        scores = if ctx.ty(&m)?.dtype == DType::Bool {
            ctx.op1(
                "select",
                &format!("{out}_masked_scores"),
                &[("cond", &m), ("a", &scores), ("b", &neg_inf)],
            )?
        } else {
            let m = ctx.coerce(&m, DType::F32, &format!("{out}_mask"))?;
            ctx.op1(
                "add",
                &format!("{out}_masked_scores"),
                &[("x", &scores), ("y", &m)],
            )?
        };
    }
    let axis = ctx.int(&format!("{out}_softmax_axis"), -1);
    let weights = ctx.op1(
        "softmax",
        &format!("{out}_weights"),
        &[("x", &scores), ("axis", &axis)],
    )?;
    let y = ctx.op1("matmul", &out, &[("x", &weights), ("y", &v)])?;
    ctx.bind(call, 0, y);
    Ok(())
}

const SDPA: &[(&str, ArgDefault)] = &[
    ("attn_mask", NoDefault),
    ("dropout_p", Float(0.0)),
    ("is_causal", Bool(false)),
    ("scale", NoDefault),
    ("enable_gqa", Bool(false)),
];

/// This family's ops.
pub const OPS: &[OpEntry] = &[
    op("aten.scaled_dot_product_attention.default", sdpa, SDPA),
    op(
        "aten._scaled_dot_product_flash_attention_for_cpu.default",
        sdpa,
        SDPA,
    ),
];
