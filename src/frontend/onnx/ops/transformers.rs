//! Transformer building blocks of opset 23: `Attention` and `RotaryEmbedding`, composed from
//! MIL matmul/softmax/elementwise ops. Both need static shapes.

use super::{ConvertFn, Ctx, Emit, Node};
use crate::ir::{DType, Tensor};
use crate::Error;

/// The static shape of `var`, or an unsupported-error naming what needs it.
fn static_shape(ctx: &Ctx, var: &str, what: &str) -> Result<Vec<usize>, Error> {
    ctx.ty(var)?
        .static_shape()
        .ok_or_else(|| ctx.unsupported(format!("{what} needs static input shapes")))
}

/// `x[..., begin..end:stride]` along the last axis of a rank-`rank` tensor.
fn last_axis_slice(
    ctx: &mut Ctx,
    x: &str,
    shape: &[usize],
    range: (usize, usize, usize),
    name: &str,
) -> Result<String, Error> {
    let rank = shape.len();
    let (begin, end, stride) = range;
    let mut b = vec![0i64; rank];
    let mut e: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    let mut s = vec![1i64; rank];
    b[rank - 1] = begin as i64;
    e[rank - 1] = end as i64;
    s[rank - 1] = stride as i64;
    let b = ctx.ints(&format!("{name}_begin"), &b);
    let e = ctx.ints(&format!("{name}_end"), &e);
    let s = ctx.ints(&format!("{name}_stride"), &s);
    ctx.op1(
        "slice_by_index",
        name,
        &[("x", x), ("begin", &b), ("end", &e), ("stride", &s)],
    )
}

/// `concat(values, axis)`.
fn concat(ctx: &mut Ctx, values: &[&str], axis: i64, name: &str) -> Result<String, Error> {
    let axis = ctx.int(&format!("{name}_axis"), axis);
    let mut outs = ctx.op_lists(
        "concat",
        name,
        &[("values", values.to_vec()), ("axis", vec![axis.as_str()])],
    )?;
    Ok(outs.remove(0))
}

/// `reshape(x, shape)`.
fn reshape(ctx: &mut Ctx, x: &str, shape: &[usize], name: &str) -> Result<String, Error> {
    let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    let shape = ctx.ints(&format!("{name}_shape"), &dims);
    ctx.op1("reshape", name, &[("x", x), ("shape", &shape)])
}

/// `transpose(x, perm)`.
fn transpose(ctx: &mut Ctx, x: &str, perm: &[i64], name: &str) -> Result<String, Error> {
    let perm = ctx.ints(&format!("{name}_perm"), perm);
    ctx.op1("transpose", name, &[("x", x), ("perm", &perm)])
}

/// A 3-D `[batch, seq, heads·size]` operand of `Attention` as `[batch, heads, seq, size]`;
/// a 4-D one as it is.
fn heads_first(
    ctx: &mut Ctx,
    x: &str,
    heads: Option<usize>,
    name: &str,
) -> Result<(String, Vec<usize>), Error> {
    let shape = static_shape(ctx, x, "Attention")?;
    match (shape.len(), heads) {
        (4, _) => Ok((x.to_string(), shape)),
        (3, Some(h)) if h > 0 && shape[2] % h == 0 => {
            let split = [shape[0], shape[1], h, shape[2] / h];
            let y = reshape(ctx, x, &split, &format!("{name}_heads"))?;
            let y = transpose(ctx, &y, &[0, 2, 1, 3], &format!("{name}_heads_first"))?;
            Ok((y, vec![shape[0], h, shape[1], shape[2] / h]))
        }
        (3, _) => Err(ctx.invalid(format!(
            "3-D input {shape:?} needs q_num_heads and kv_num_heads dividing its last dimension"
        ))),
        (r, _) => Err(ctx.invalid(format!("inputs must be 3-D or 4-D, not rank {r}"))),
    }
}

/// Repeats each of the `kv` heads of `[b, kv, s, d]` `reps` times in place (`h0 h0 h1 h1 …`),
/// as grouped-query attention shares a key/value head among `reps` query heads.
fn repeat_heads(
    ctx: &mut Ctx,
    x: &str,
    shape: &[usize],
    reps: usize,
    name: &str,
) -> Result<String, Error> {
    let [b, kv, s, d] = [shape[0], shape[1], shape[2], shape[3]];
    let grown = reshape(ctx, x, &[b, kv, 1, s, d], &format!("{name}_grouped"))?;
    let reps_c = ctx.ints(&format!("{name}_reps"), &[1, 1, reps as i64, 1, 1]);
    let tiled = ctx.op1(
        "tile",
        &format!("{name}_tiled"),
        &[("x", &grown), ("reps", &reps_c)],
    )?;
    reshape(
        ctx,
        &tiled,
        &[b, kv * reps, s, d],
        &format!("{name}_repeated"),
    )
}

/// The additive bias of `Attention`'s mask: a bool mask becomes 0 where true and −∞ where
/// false; a float mask is used as is. A mask shorter than the key sequence is padded with −∞
/// (masked) on the right.
fn mask_bias(ctx: &mut Ctx, mask: &str, kv_len: usize, name: &str) -> Result<String, Error> {
    let ty = ctx.ty(mask)?;
    let shape = static_shape(ctx, mask, "Attention")?;
    let mut bias = if ty.dtype == DType::Bool {
        let zero = ctx.float(&format!("{name}_zero"), 0.0);
        let neg = ctx.float(&format!("{name}_neg_inf"), f32::NEG_INFINITY);
        ctx.op1(
            "select",
            &format!("{name}_bias"),
            &[("cond", mask), ("a", &zero), ("b", &neg)],
        )?
    } else {
        mask.to_string()
    };
    let last = *shape.last().unwrap_or(&kv_len);
    if last < kv_len {
        let mut pad_shape = shape.clone();
        *pad_shape.last_mut().expect("a mask has a rank") = kv_len - last;
        let fill = vec![f32::NEG_INFINITY; pad_shape.iter().product()];
        let pad = ctx.constant(&format!("{name}_pad"), Tensor::from_f32(&pad_shape, &fill));
        bias = concat(ctx, &[&bias, &pad], -1, &format!("{name}_padded"))?;
    } else if last > kv_len {
        return Err(ctx.invalid(format!(
            "attn_mask {shape:?} is longer than the {kv_len} keys"
        )));
    }
    Ok(bias)
}

/// The causal bias `[q, kv]`: −∞ where key `j` lies after query `i`'s position
/// (`j > i + past`), else 0 (upper-left aligned after the past keys).
fn causal_bias(ctx: &mut Ctx, q: usize, kv: usize, past: usize, name: &str) -> String {
    let values: Vec<f32> = (0..q * kv)
        .map(|k| {
            let (i, j) = (k / kv, k % kv);
            if j > i + past {
                f32::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    ctx.constant(name, Tensor::from_f32(&[q, kv], &values))
}

/// The bias `[batch, 1, 1, kv]` of `nonpad_kv_seqlen` (opset 24): −∞ for the keys at or past
/// each batch entry's length, else 0.
fn padding_bias(ctx: &mut Ctx, lengths: &str, kv: usize, name: &str) -> Result<String, Error> {
    let batch = static_shape(ctx, lengths, "Attention")?;
    let positions: Vec<i32> = (0..kv as i32).collect();
    let positions = ctx.constant(
        &format!("{name}_positions"),
        Tensor::from_i32(&[kv], &positions),
    );
    let column = reshape(ctx, lengths, &[batch[0], 1], &format!("{name}_lengths"))?;
    let kept = ctx.op1(
        "less",
        &format!("{name}_kept"),
        &[("x", &positions), ("y", &column)],
    )?;
    let zero = ctx.float(&format!("{name}_zero"), 0.0);
    let neg = ctx.float(&format!("{name}_neg_inf"), f32::NEG_INFINITY);
    let bias = ctx.op1(
        "select",
        &format!("{name}_bias"),
        &[("cond", &kept), ("a", &zero), ("b", &neg)],
    )?;
    reshape(
        ctx,
        &bias,
        &[batch[0], 1, 1, kv],
        &format!("{name}_per_batch"),
    )
}

/// `Attention` (opset 23): `softmax(softcap(Q·Kᵀ·scale + bias))·V` over
/// `[batch, heads, seq, size]` operands (3-D `[batch, seq, hidden]` ones are split into heads
/// by `q_num_heads`/`kv_num_heads` and merged back), with past keys/values concatenated
/// before the new ones (outputs `present_key`/`present_value`), grouped-query heads repeated,
/// a bool or additive mask, the causal mask, softcap, and the `qk_matmul_output` of each
/// `qk_matmul_output_mode`, and (opset 24) keys past each entry's `nonpad_kv_seqlen` masked.
fn attention(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let out = ctx.out_name(node, 0);
    let q_heads = ctx.attr(node.int("q_num_heads"))?.map(|h| h as usize);
    let kv_heads = ctx.attr(node.int("kv_num_heads"))?.map(|h| h as usize);
    let is_causal = ctx.attr(node.int_or("is_causal", 0))? != 0;
    let mode = ctx.attr(node.int_or("qk_matmul_output_mode", 0))?;
    if !(0..=3).contains(&mode) {
        return Err(ctx.invalid(format!("qk_matmul_output_mode {mode} is not 0 to 3")));
    }
    let softcap = ctx.attr(node.float_or("softcap", 0.0))?;
    let q_in = ctx.input(node, 0)?;
    let three_d = ctx.rank(&q_in)? == 3;
    let (q, q_shape) = heads_first(ctx, &q_in, q_heads, &format!("{out}_q"))?;
    let k_in = ctx.input(node, 1)?;
    let (mut k, _) = heads_first(ctx, &k_in, kv_heads, &format!("{out}_k"))?;
    let v_in = ctx.input(node, 2)?;
    let (mut v, _) = heads_first(ctx, &v_in, kv_heads, &format!("{out}_v"))?;
    let mut past = 0;
    if let Some(past_key) = ctx.opt_input(node, 4)? {
        past = static_shape(ctx, &past_key, "Attention")?
            .get(2)
            .copied()
            .unwrap_or(0);
        k = concat(ctx, &[&past_key, &k], 2, &format!("{out}_present_key"))?;
    }
    if let Some(past_value) = ctx.opt_input(node, 5)? {
        v = concat(ctx, &[&past_value, &v], 2, &format!("{out}_present_value"))?;
    }
    ctx.set_output(node, 1, k.clone());
    ctx.set_output(node, 2, v.clone());
    let k_shape = static_shape(ctx, &k, "Attention")?;
    let v_shape = static_shape(ctx, &v, "Attention")?;
    let [_, qh, q_len, head] = [q_shape[0], q_shape[1], q_shape[2], q_shape[3]];
    let (kh, kv_len) = (k_shape[1], k_shape[2]);
    if kh != v_shape[1] || kh == 0 || qh % kh != 0 {
        return Err(ctx.invalid(format!(
            "{qh} query heads cannot share {kh} key and {} value heads",
            v_shape[1]
        )));
    }
    if qh != kh {
        k = repeat_heads(ctx, &k, &k_shape, qh / kh, &format!("{out}_k"))?;
        v = repeat_heads(ctx, &v, &v_shape, qh / kh, &format!("{out}_v"))?;
    }
    let scale = match ctx.attr(node.float("scale"))? {
        Some(s) => s,
        None => 1.0 / (head as f32).sqrt(),
    };
    let scale_c = ctx.float(&format!("{out}_scale"), scale);
    let q_scaled = ctx.op1(
        "mul",
        &format!("{out}_q_scaled"),
        &[("x", &q), ("y", &scale_c)],
    )?;
    let no = ctx.boolean(&format!("{out}_no"), false);
    let yes = ctx.boolean(&format!("{out}_yes"), true);
    let scores = ctx.op1(
        "matmul",
        &format!("{out}_scores"),
        &[
            ("x", &q_scaled),
            ("y", &k),
            ("transpose_x", &no),
            ("transpose_y", &yes),
        ],
    )?;
    let mut stages = vec![scores.clone()];
    let mut biased = scores;
    let mask = match ctx.opt_input(node, 3)? {
        Some(m) => Some(mask_bias(ctx, &m, kv_len, &format!("{out}_mask"))?),
        None => None,
    };
    let causal = is_causal.then(|| causal_bias(ctx, q_len, kv_len, past, &format!("{out}_causal")));
    let padding = match ctx.opt_input(node, 6)? {
        Some(lengths) => Some(padding_bias(
            ctx,
            &lengths,
            kv_len,
            &format!("{out}_padding"),
        )?),
        None => None,
    };
    let biases = mask.iter().chain(causal.iter()).chain(padding.iter());
    for (i, bias) in biases.enumerate() {
        biased = ctx.op1(
            "add",
            &format!("{out}_biased_{i}"),
            &[("x", &biased), ("y", bias)],
        )?;
    }
    stages.push(biased.clone());
    let mut capped = biased;
    if softcap > 0.0 {
        let cap = ctx.float(&format!("{out}_softcap"), softcap);
        let shrunk = ctx.op1(
            "real_div",
            &format!("{out}_capped_in"),
            &[("x", &capped), ("y", &cap)],
        )?;
        let t = ctx.op1("tanh", &format!("{out}_capped_tanh"), &[("x", &shrunk)])?;
        capped = ctx.op1("mul", &format!("{out}_capped"), &[("x", &t), ("y", &cap)])?;
    }
    stages.push(capped.clone());
    let axis = ctx.int(&format!("{out}_softmax_axis"), -1);
    let probs = ctx.op1(
        "softmax",
        &format!("{out}_probs"),
        &[("x", &capped), ("axis", &axis)],
    )?;
    stages.push(probs.clone());
    ctx.set_output(node, 3, stages[mode as usize].clone());
    let context_name = if three_d {
        format!("{out}_context")
    } else {
        out.clone()
    };
    let mut y = ctx.op1(
        "matmul",
        &context_name,
        &[
            ("x", &probs),
            ("y", &v),
            ("transpose_x", &no),
            ("transpose_y", &no),
        ],
    )?;
    if three_d {
        let dv = static_shape(ctx, &y, "Attention")?[3];
        y = transpose(ctx, &y, &[0, 2, 1, 3], &format!("{out}_seq_first"))?;
        y = reshape(ctx, &y, &[q_shape[0], q_len, qh * dv], &out)?;
    }
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `RotaryEmbedding` (opset 23): rotates the first `rotary_embedding_dim` features of each
/// head by the cached angles, `(x1, x2) → (x1·cos − x2·sin, x1·sin + x2·cos)`, with `x1`/`x2`
/// the two halves (or, `interleaved`, the even and odd features); caches are gathered by
/// `position_ids` when given. Input `[batch, heads, seq, size]`, or `[batch, seq, hidden]`
/// split into `num_heads`.
fn rotary_embedding(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let out = ctx.out_name(node, 0);
    let x_in = ctx.input(node, 0)?;
    let in_shape = static_shape(ctx, &x_in, "RotaryEmbedding")?;
    let interleaved = ctx.attr(node.int_or("interleaved", 0))? != 0;
    let heads = ctx.attr(node.int_or("num_heads", 0))?;
    // Work on [b, h, s, d] (4-D input) or [b, s, h, d] (3-D input split into heads); the
    // caches [b, s, r/2] gain the head axis: 1 or 2.
    let (x, shape, head_axis) = match in_shape.len() {
        4 => (x_in.clone(), in_shape.clone(), 1),
        3 if heads > 0 && in_shape[2] % heads as usize == 0 => {
            let h = heads as usize;
            let shape = vec![in_shape[0], in_shape[1], h, in_shape[2] / h];
            (
                reshape(ctx, &x_in, &shape, &format!("{out}_heads"))?,
                shape,
                2,
            )
        }
        3 => {
            return Err(ctx.invalid(format!(
                "3-D input {in_shape:?} needs num_heads dividing its last dimension"
            )))
        }
        r => return Err(ctx.invalid(format!("input must be 3-D or 4-D, not rank {r}"))),
    };
    let size = shape[3];
    let rotated = match ctx.attr(node.int_or("rotary_embedding_dim", 0))? {
        0 => size,
        r if r > 0 && r as usize <= size && r % 2 == 0 => r as usize,
        r => {
            return Err(ctx.invalid(format!(
                "rotary_embedding_dim {r} must be even and at most the head size {size}"
            )))
        }
    };
    let half = rotated / 2;
    let mut caches = Vec::new();
    for (i, what) in [(1, "cos"), (2, "sin")] {
        let mut c = ctx.input(node, i)?;
        if let Some(ids) = ctx.opt_input(node, 3)? {
            let axis = ctx.int(&format!("{out}_{what}_axis"), 0);
            c = ctx.op1(
                "gather",
                &format!("{out}_{what}_at_positions"),
                &[("x", &c), ("indices", &ids), ("axis", &axis)],
            )?;
        }
        let cache_shape = static_shape(ctx, &c, "RotaryEmbedding")?;
        if cache_shape.last() != Some(&half) {
            return Err(ctx.invalid(format!(
                "{what}_cache {cache_shape:?} must end in rotary_embedding_dim/2 = {half}"
            )));
        }
        let axes = ctx.ints(&format!("{out}_{what}_head_axis"), &[head_axis]);
        c = ctx.op1(
            "expand_dims",
            &format!("{out}_{what}_per_head"),
            &[("x", &c), ("axes", &axes)],
        )?;
        caches.push(c);
    }
    let (cos, sin) = (&caches[0], &caches[1]);
    let (first, second) = if interleaved {
        (
            last_axis_slice(ctx, &x, &shape, (0, rotated, 2), &format!("{out}_x1"))?,
            last_axis_slice(ctx, &x, &shape, (1, rotated, 2), &format!("{out}_x2"))?,
        )
    } else {
        (
            last_axis_slice(ctx, &x, &shape, (0, half, 1), &format!("{out}_x1"))?,
            last_axis_slice(ctx, &x, &shape, (half, rotated, 1), &format!("{out}_x2"))?,
        )
    };
    let mut product = |a: &str, b: &str, name: &str| -> Result<String, Error> {
        ctx.op1("mul", &format!("{out}_{name}"), &[("x", a), ("y", b)])
    };
    let x1_cos = product(&first, cos, "x1_cos")?;
    let x2_sin = product(&second, sin, "x2_sin")?;
    let x1_sin = product(&first, sin, "x1_sin")?;
    let x2_cos = product(&second, cos, "x2_cos")?;
    let real = ctx.op1(
        "sub",
        &format!("{out}_real"),
        &[("x", &x1_cos), ("y", &x2_sin)],
    )?;
    let imag = ctx.op1(
        "add",
        &format!("{out}_imag"),
        &[("x", &x1_sin), ("y", &x2_cos)],
    )?;
    // The last op of the chain is named after the output.
    let three_d = in_shape.len() == 3;
    let whole = rotated == size;
    let rotated_name = if whole && !three_d {
        out.clone()
    } else {
        format!("{out}_rotated")
    };
    let mut y = if interleaved {
        let axes = ctx.ints(&format!("{out}_pair_axis"), &[-1]);
        let re = ctx.op1(
            "expand_dims",
            &format!("{out}_real_pair"),
            &[("x", &real), ("axes", &axes)],
        )?;
        let im = ctx.op1(
            "expand_dims",
            &format!("{out}_imag_pair"),
            &[("x", &imag), ("axes", &axes)],
        )?;
        let pairs = concat(ctx, &[&re, &im], -1, &format!("{out}_pairs"))?;
        let mut rot_shape = shape.clone();
        rot_shape[3] = rotated;
        reshape(ctx, &pairs, &rot_shape, &rotated_name)?
    } else {
        concat(ctx, &[&real, &imag], -1, &rotated_name)?
    };
    if !whole {
        let rest = last_axis_slice(ctx, &x, &shape, (rotated, size, 1), &format!("{out}_rest"))?;
        let joined_name = if three_d {
            format!("{out}_joined")
        } else {
            out.clone()
        };
        y = concat(ctx, &[&y, &rest], -1, &joined_name)?;
    }
    if three_d {
        y = reshape(ctx, &y, &in_shape, &out)?;
    }
    ctx.set_output(node, 0, y);
    Ok(())
}

/// This family's converters.
pub const CONVERTERS: &[(&str, ConvertFn)] = &[
    ("Attention", attention),
    ("RotaryEmbedding", rotary_embedding),
];
