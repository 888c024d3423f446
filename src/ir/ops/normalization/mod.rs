//! Normalization ops: `batch_norm`, `instance_norm`, `layer_norm`, `l2_norm`,
//! `local_response_norm`.

pub mod kernels;

use self::kernels as k;
use super::axis::norm_axis;
use super::{op, InferArgs, NormRole, OpArgs, OpDef, Param, ParamType};
use crate::ir::{Dim, TensorType};

const X: Param = Param::new("x", ParamType::T);
/// `epsilon`, defaulting to `default`.
const fn epsilon(default: f64) -> Param {
    Param::new("epsilon", ParamType::T)
        .constant()
        .default_float(default)
}
const BATCH_NORM: &[Param] = &[
    X,
    Param::new("mean", ParamType::T).constant(),
    Param::new("variance", ParamType::T).constant(),
    Param::new("gamma", ParamType::T).optional().constant(),
    Param::new("beta", ParamType::T).optional().constant(),
    epsilon(1e-5),
];
const INSTANCE_NORM: &[Param] = &[
    X,
    Param::new("gamma", ParamType::T).optional().constant(),
    Param::new("beta", ParamType::T).optional().constant(),
    epsilon(1e-5),
];
const LAYER_NORM: &[Param] = &[
    X,
    Param::new("axes", ParamType::Int).optional().constant(),
    Param::new("gamma", ParamType::T).optional().constant(),
    Param::new("beta", ParamType::T).optional().constant(),
    epsilon(1e-5),
];
const L2_NORM: &[Param] = &[X, epsilon(1e-6)];
const LRN: &[Param] = &[
    X,
    Param::new("size", ParamType::Int).constant(),
    Param::new("alpha", ParamType::T)
        .constant()
        .default_float(1e-4),
    Param::new("beta", ParamType::T)
        .constant()
        .default_float(0.75),
    Param::new("k", ParamType::T).constant().default_float(1.0),
];

/// Checks that per-channel parameter `name` (if present) is `[channels]`.
fn check_channels(a: &InferArgs, name: &str, channels: &Dim) -> Result<(), String> {
    let Some(t) = a.opt_ty(name) else {
        return Ok(());
    };
    let ok = t.rank() == 1
        && t.shape[0]
            .fixed()
            .zip(channels.fixed())
            .is_none_or(|(p, q)| p == q);
    if !ok {
        return Err(format!(
            "{name} {t} must have shape [{channels}] (one value per channel)"
        ));
    }
    Ok(())
}

fn infer_batch_norm(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    if !(3..=5).contains(&x.rank()) {
        return Err(format!("x {x} must have rank 3 to 5 ([N, C, spatial…])"));
    }
    for p in ["mean", "variance", "gamma", "beta"] {
        check_channels(a, p, &x.shape[1])?;
    }
    Ok(vec![x.clone()])
}

fn infer_instance_norm(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    if !(3..=4).contains(&x.rank()) {
        return Err(format!("x {x} must have rank 3 or 4 ([N, C, spatial…])"));
    }
    for p in ["gamma", "beta"] {
        check_channels(a, p, &x.shape[1])?;
    }
    Ok(vec![x.clone()])
}

fn infer_layer_norm(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    let axes = a
        .opt_ints("axes")?
        .unwrap_or_else(|| (0..x.rank() as i64).collect());
    let axes = axes
        .iter()
        .map(|&ax| norm_axis(ax, x.rank()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut sorted = axes.clone();
    sorted.sort_unstable();
    let normalized: Vec<Dim> = sorted.iter().map(|&i| x.shape[i].clone()).collect();
    for p in ["gamma", "beta"] {
        if let Some(t) = a.opt_ty(p) {
            let ok = t.rank() == normalized.len()
                && t.shape
                    .iter()
                    .zip(&normalized)
                    .all(|(g, d)| g.fixed().zip(d.fixed()).is_none_or(|(u, v)| u == v));
            if !ok {
                let want = TensorType {
                    dtype: x.dtype,
                    shape: normalized,
                };
                return Err(format!(
                    "{p} {t} must have the shape of the normalized dims {want}"
                ));
            }
        }
    }
    Ok(vec![x.clone()])
}

fn infer_l2_norm(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    if x.rank() < 3 {
        return Err(format!(
            "x {x} must have rank 3 or more (the last 3 dims are normalized)"
        ));
    }
    Ok(vec![x.clone()])
}

fn infer_lrn(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    if !(3..=4).contains(&x.rank()) || a.int("size")? < 1 {
        return Err(format!(
            "x {x} must have rank 3 or 4 and size must be positive"
        ));
    }
    Ok(vec![x.clone()])
}

/// The definitions of this family.
pub const DEFS: &[OpDef] = &[
    op("batch_norm", BATCH_NORM, infer_batch_norm, k::batch_norm),
    op(
        "instance_norm",
        INSTANCE_NORM,
        infer_instance_norm,
        k::instance_norm,
    ),
    op("layer_norm", LAYER_NORM, infer_layer_norm, k::layer_norm).norm(NormRole {
        fused: true,
        ..NormRole::NONE
    }),
    op("l2_norm", L2_NORM, infer_l2_norm, k::l2_norm),
    op(
        "local_response_norm",
        LRN,
        infer_lrn,
        k::local_response_norm,
    ),
];
