//! Transformer ops (MIL's iOS18 `transformers` opset file): `scaled_dot_product_attention`.

pub mod kernels;

use self::kernels as k;
use super::broadcast::broadcast_shapes;
use super::{op, InferArgs, OpDef, Param, ParamType};
use crate::ir::{DType, Dim, Target, TensorType};

const SDPA: &[Param] = &[
    Param::new("query", ParamType::T),
    Param::new("key", ParamType::T),
    Param::new("value", ParamType::T),
    // bool (true = attend) or fp16/fp32 (added to the scores), independently of `T`.
    Param::new("attn_mask", ParamType::Any).optional(),
];

/// True when two dims may be equal (either is symbolic, or both are the same size).
fn compatible(a: &Dim, b: &Dim) -> bool {
    a.fixed().zip(b.fixed()).is_none_or(|(p, q)| p == q)
}

/// `softmax(query · keyᵀ / √E + mask) · value` over the last two axes; batch dims of the
/// three operands must agree (no broadcasting), the mask broadcasts to `[…, L, S]`.
fn infer_sdpa(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let (q, k, v) = (a.ty("query")?, a.ty("key")?, a.ty("value")?);
    if q.rank() != k.rank() || q.rank() != v.rank() {
        return Err(format!(
            "query {q}, key {k} and value {v} must have the same rank"
        ));
    }
    let r = q.rank();
    if r < 3 {
        return Err(format!("query {q} must have rank ≥ 3 ([batch…, L, E])"));
    }
    for (name, t) in [("key", k), ("value", v)] {
        if !q.shape[..r - 2]
            .iter()
            .zip(&t.shape[..r - 2])
            .all(|(x, y)| compatible(x, y))
        {
            return Err(format!(
                "query {q} and {name} {t} must have the same batch dims"
            ));
        }
    }
    if !compatible(&q.shape[r - 1], &k.shape[r - 1]) {
        return Err(format!(
            "query {q} and key {k} must have the same embedding size"
        ));
    }
    if !compatible(&k.shape[r - 2], &v.shape[r - 2]) {
        return Err(format!(
            "key {k} and value {v} must have the same sequence length"
        ));
    }
    if let Some(m) = a.opt_ty("attn_mask") {
        if !matches!(m.dtype, DType::Bool | DType::F16 | DType::F32) {
            return Err(format!("attn_mask {m} must be bool, fp16 or fp32"));
        }
        let Some((s_mask, rest)) = m.shape.split_last() else {
            return Err(format!("attn_mask {m} must have rank ≥ 1"));
        };
        if !compatible(s_mask, &k.shape[r - 2]) {
            return Err(format!(
                "attn_mask {m} must end in the key sequence length {}",
                k.shape[r - 2]
            ));
        }
        let target = &q.shape[..r - 1];
        if rest.len() > target.len() || broadcast_shapes(target, rest)?.as_slice() != target {
            return Err(format!("attn_mask {m} does not broadcast to query {q}"));
        }
    }
    let mut shape = q.shape[..r - 1].to_vec();
    shape.push(v.shape[r - 1].clone());
    Ok(vec![TensorType {
        dtype: q.dtype,
        shape,
    }])
}

/// The definitions of this family.
pub const DEFS: &[OpDef] = &[op(
    "scaled_dot_product_attention",
    SDPA,
    infer_sdpa,
    k::scaled_dot_product_attention,
)
.since(Target::IOS18)];
