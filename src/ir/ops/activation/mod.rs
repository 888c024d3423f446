//! Activation ops (MIL's `activation`).

pub mod kernels;

use self::kernels as k;
use super::elementwise_unary::infer_same;
use super::{op, InferArgs, OpDef, Param, ParamType};
use crate::ir::{Dim, TensorType};

const X: Param = Param::new("x", ParamType::T);
const UNARY: &[Param] = &[X];
const fn scalar(name: &'static str) -> Param {
    Param::new(name, ParamType::T).constant()
}
const ALPHA_OPT: &[Param] = &[X, scalar("alpha").optional()];
const ALPHA_BETA: &[Param] = &[X, scalar("alpha"), scalar("beta")];
const ALPHA_BETA_OPT: &[Param] = &[X, scalar("alpha").optional(), scalar("beta").optional()];
const LINEAR_ACTIVATION: &[Param] = &[X, scalar("alpha"), scalar("beta").optional()];
const PER_CHANNEL_ALPHA: &[Param] = &[X, scalar("alpha")];
const PER_CHANNEL_ALPHA_BETA: &[Param] = &[X, scalar("alpha"), scalar("beta")];
const GELU: &[Param] = &[X, Param::new("mode", ParamType::Str).optional().constant()];
const SOFTMAX: &[Param] = &[X, Param::new("axis", ParamType::Int).optional().constant()];

/// Checks that per-channel parameters have one value per channel (dim 1) of `x`.
fn infer_per_channel(a: &InferArgs, params: &[&str]) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    if x.rank() < 3 {
        return Err(format!("x must have rank 3 or more, got {}", x.rank()));
    }
    for p in params {
        let t = a.ty(p)?;
        let ok = t.rank() == 1
            && (t.shape[0] == Dim::Fixed(1)
                || t.shape[0] == x.shape[1]
                || x.shape[1].fixed().is_none());
        if !ok {
            return Err(format!(
                "{p} has shape {t}, expected [{}] (one value per channel)",
                x.shape[1]
            ));
        }
    }
    Ok(vec![x.clone()])
}

fn infer_prelu(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    infer_per_channel(a, &["alpha"])
}

fn infer_softplus_parametric(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    infer_per_channel(a, &["alpha", "beta"])
}

fn infer_gelu(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let mode = a.str_or("mode", "EXACT")?;
    if !matches!(
        mode,
        "EXACT" | "TANH_APPROXIMATION" | "SIGMOID_APPROXIMATION"
    ) {
        return Err(format!("unknown gelu mode '{mode}'"));
    }
    infer_same(a)
}

fn infer_softmax(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    InferArgs::axis(a.int_or("axis", -1)?, x.rank())?;
    Ok(vec![x.clone()])
}

/// The definitions of this family.
pub const DEFS: &[OpDef] = &[
    op("relu", UNARY, infer_same, k::relu),
    op("relu6", UNARY, infer_same, k::relu6),
    op("sigmoid", UNARY, infer_same, k::sigmoid),
    op("silu", UNARY, infer_same, k::silu),
    op("softplus", UNARY, infer_same, k::softplus),
    op("softsign", UNARY, infer_same, k::softsign),
    op("elu", ALPHA_OPT, infer_same, k::elu),
    op("leaky_relu", ALPHA_OPT, infer_same, k::leaky_relu),
    op(
        "thresholded_relu",
        ALPHA_OPT,
        infer_same,
        k::thresholded_relu,
    ),
    op("sigmoid_hard", ALPHA_BETA_OPT, infer_same, k::sigmoid_hard),
    op("scaled_tanh", ALPHA_BETA_OPT, infer_same, k::scaled_tanh),
    op("clamped_relu", ALPHA_BETA, infer_same, k::clamped_relu),
    op(
        "linear_activation",
        LINEAR_ACTIVATION,
        infer_same,
        k::linear_activation,
    ),
    op("prelu", PER_CHANNEL_ALPHA, infer_prelu, k::prelu),
    op(
        "softplus_parametric",
        PER_CHANNEL_ALPHA_BETA,
        infer_softplus_parametric,
        k::softplus_parametric,
    ),
    op("gelu", GELU, infer_gelu, k::gelu),
    op("softmax", SOFTMAX, infer_softmax, k::softmax),
];
