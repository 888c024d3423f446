//! Activation ops (MIL's `activation`).

pub mod kernels;

use self::kernels as k;
use super::axis::norm_axis;
use super::elementwise_unary::infer_same;
use super::{op, InferArgs, OpArgs, OpDef, Param, ParamType, StrEnum};
use crate::ir::{Dim, TensorType};

const X: Param = Param::new("x", ParamType::T);
const UNARY: &[Param] = &[X];
const fn scalar(name: &'static str) -> Param {
    Param::new(name, ParamType::T).constant()
}
const ELU: &[Param] = &[X, scalar("alpha").default_float(1.0)];
const LEAKY_RELU: &[Param] = &[X, scalar("alpha").default_float(0.01)];
const THRESHOLDED_RELU: &[Param] = &[X, scalar("alpha").default_float(1.0)];
const SIGMOID_HARD: &[Param] = &[
    X,
    scalar("alpha").default_float(0.2),
    scalar("beta").default_float(0.5),
];
const SCALED_TANH: &[Param] = &[
    X,
    scalar("alpha").default_float(1.0),
    scalar("beta").default_float(1.0),
];
const ALPHA_BETA: &[Param] = &[X, scalar("alpha"), scalar("beta")];
const LINEAR_ACTIVATION: &[Param] = &[X, scalar("alpha"), scalar("beta").default_float(0.0)];
const PER_CHANNEL_ALPHA: &[Param] = &[X, scalar("alpha")];
const PER_CHANNEL_ALPHA_BETA: &[Param] = &[X, scalar("alpha"), scalar("beta")];
const GELU: &[Param] = &[
    X,
    Param::new("mode", ParamType::Str)
        .constant()
        .default_str("EXACT"),
];
const SOFTMAX: &[Param] = &[
    X,
    Param::new("axis", ParamType::Int)
        .constant()
        .default_int(-1),
];

/// How `gelu` computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeluMode {
    /// `0.5 x (1 + erf(x / sqrt 2))`.
    Exact,
    /// `0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))`.
    TanhApproximation,
    /// `x sigmoid(1.702 x)`.
    SigmoidApproximation,
}

impl StrEnum for GeluMode {
    const WHAT: &'static str = "gelu mode";
    const VALUES: &'static [(&'static str, Self)] = &[
        ("EXACT", GeluMode::Exact),
        ("TANH_APPROXIMATION", GeluMode::TanhApproximation),
        ("SIGMOID_APPROXIMATION", GeluMode::SigmoidApproximation),
    ];
}

impl GeluMode {
    /// The `mode` of a `gelu` op.
    pub fn of<'a>(a: &impl OpArgs<'a>) -> Result<GeluMode, String> {
        GeluMode::parse(a.str("mode")?)
    }
}

/// The softmax axis of a `softmax` op on a tensor of `rank`.
pub fn softmax_axis<'a>(a: &impl OpArgs<'a>, rank: usize) -> Result<usize, String> {
    norm_axis(a.int("axis")?, rank)
}

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
    GeluMode::of(a)?;
    infer_same(a)
}

fn infer_softmax(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    softmax_axis(a, x.rank())?;
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
    op("elu", ELU, infer_same, k::elu),
    op("leaky_relu", LEAKY_RELU, infer_same, k::leaky_relu),
    op(
        "thresholded_relu",
        THRESHOLDED_RELU,
        infer_same,
        k::thresholded_relu,
    ),
    op("sigmoid_hard", SIGMOID_HARD, infer_same, k::sigmoid_hard),
    op("scaled_tanh", SCALED_TANH, infer_same, k::scaled_tanh),
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
