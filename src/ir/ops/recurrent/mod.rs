//! Recurrent ops: `lstm`, `gru`, `rnn` (coremltools' `recurrent.py`, iOS15).
//!
//! Facts from coremltools' definitions and the numpy references of its tests
//! (`ops/tests/iOS14/test_recurrent.py`), which the kernels follow:
//! - `x` is `[seq, batch, input]`; states are `[batch, directions·H]`;
//! - `lstm` gates are ordered `[input, forget, output, cell]` (`ifoz`), its peephole
//!   `[input, forget, output]`; `clip` bounds the cell state after each update; the output gate
//!   reads the new cell state through its peephole;
//! - `gru` gates are ordered `[reset, output (candidate), update]` and the candidate is
//!   `activation(W_o·x + R_o·(r ⊙ h) + b_o)`: the reset gate applies to the hidden state before
//!   the recurrent product (ONNX's `linear_before_reset = 0`), with one bias per gate;
//! - with `direction = "reverse"` the output sequence is in processing order (its first step
//!   reads the last input); with `"bidirectional"` (`lstm` only) the backward half of each
//!   step is aligned with the input step it read;
//! - the weights, biases and peepholes are constants, and the ops compute in fp32 only before
//!   iOS17, so mlpack keeps them in fp32.

pub mod kernels;

use self::kernels as k;
use super::{op, InferArgs, OpArgs, OpDef, Param, ParamType, Precision, StrEnum};
use crate::ir::{Dim, TensorType};

/// A recurrent op's direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Steps 0, 1, …, seq−1.
    Forward,
    /// Steps seq−1, …, 0; outputs in processing order.
    Reverse,
    /// Both, concatenated on the hidden axis (`lstm` only).
    Bidirectional,
}

impl StrEnum for Direction {
    const WHAT: &'static str = "direction";
    const VALUES: &'static [(&'static str, Self)] = &[
        ("forward", Direction::Forward),
        ("reverse", Direction::Reverse),
        ("bidirectional", Direction::Bidirectional),
    ];
}

/// An activation a recurrent op applies (those of the Core ML recurrent layers that take no
/// parameters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// `max(x, 0)`.
    Relu,
    /// `x`.
    Linear,
}

impl StrEnum for Activation {
    const WHAT: &'static str = "recurrent activation";
    const VALUES: &'static [(&'static str, Self)] = &[
        ("sigmoid", Activation::Sigmoid),
        ("tanh", Activation::Tanh),
        ("relu", Activation::Relu),
        ("linear", Activation::Linear),
    ];
}

impl Activation {
    /// The activation applied to `v`.
    pub fn apply(self, v: f32) -> f32 {
        match self {
            Activation::Sigmoid => 1.0 / (1.0 + (-v).exp()),
            Activation::Tanh => v.tanh(),
            Activation::Relu => v.max(0.0),
            Activation::Linear => v,
        }
    }
}

const fn weight(name: &'static str) -> Param {
    Param::new(name, ParamType::T).constant()
}
const fn opt_weight(name: &'static str) -> Param {
    weight(name).optional()
}
const fn activation(name: &'static str, default: &'static str) -> Param {
    Param::new(name, ParamType::Str)
        .constant()
        .default_str(default)
}
const X: Param = Param::new("x", ParamType::T);
const INITIAL_H: Param = Param::new("initial_h", ParamType::T);
const DIRECTION: Param = Param::new("direction", ParamType::Str)
    .constant()
    .default_str("forward");
const OUTPUT_SEQUENCE: Param = Param::new("output_sequence", ParamType::Bool)
    .constant()
    .default_bool(false);

const LSTM: &[Param] = &[
    X,
    INITIAL_H,
    Param::new("initial_c", ParamType::T),
    weight("weight_ih"),
    weight("weight_hh"),
    opt_weight("bias"),
    opt_weight("peephole"),
    opt_weight("weight_ih_back"),
    opt_weight("weight_hh_back"),
    opt_weight("bias_back"),
    opt_weight("peephole_back"),
    DIRECTION,
    OUTPUT_SEQUENCE,
    activation("recurrent_activation", "sigmoid"),
    activation("cell_activation", "tanh"),
    activation("activation", "tanh"),
    opt_weight("clip"),
];
const GRU: &[Param] = &[
    X,
    INITIAL_H,
    weight("weight_ih"),
    weight("weight_hh"),
    opt_weight("bias"),
    DIRECTION,
    OUTPUT_SEQUENCE,
    activation("recurrent_activation", "sigmoid"),
    activation("activation", "tanh"),
];
const RNN: &[Param] = &[
    X,
    INITIAL_H,
    weight("weight_ih"),
    weight("weight_hh"),
    opt_weight("bias"),
    DIRECTION,
    OUTPUT_SEQUENCE,
    activation("activation", "tanh"),
];

/// Checks that `name` (if present) has the fixed shape `want`.
fn check_shape(a: &InferArgs, name: &str, want: &[usize]) -> Result<(), String> {
    match a.opt_ty(name) {
        Some(t) if t.static_shape().as_deref() != Some(want) => {
            Err(format!("{name} {t} must have shape {want:?}"))
        }
        _ => Ok(()),
    }
}

/// Checks one direction's weights for `gates` gates on input `x` and returns the hidden size.
fn check_weights(
    a: &InferArgs,
    x: &TensorType,
    gates: usize,
    suffix: &str,
) -> Result<usize, String> {
    let hh = a.ty(&format!("weight_hh{suffix}"))?;
    let hidden = match hh.static_shape().as_deref() {
        Some(&[rows, h]) if h > 0 && rows == gates * h => h,
        _ => {
            return Err(format!(
                "weight_hh{suffix} {hh} must have shape [{gates}·H, H]"
            ))
        }
    };
    let input = x.shape[2].fixed().ok_or("x's input size must be fixed")?;
    check_shape(a, &format!("weight_ih{suffix}"), &[gates * hidden, input])?;
    check_shape(a, &format!("bias{suffix}"), &[gates * hidden])?;
    Ok(hidden)
}

/// The common type rule: `x` `[s, b, I]`, weights of `gates` gates, states `[b, D·H]`
/// (`states` of them); outputs the sequence and the final states.
fn infer_recurrent(
    a: &InferArgs,
    gates: usize,
    states: &[&str],
) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    if x.rank() != 3 {
        return Err(format!("x {x} must have rank 3 ([seq, batch, input])"));
    }
    let direction = Direction::parse(a.str("direction")?)?;
    let hidden = check_weights(a, x, gates, "")?;
    let directions = if direction == Direction::Bidirectional {
        if a.def.name != "lstm" {
            return Err(format!("{} has no bidirectional direction", a.def.name));
        }
        if check_weights(a, x, gates, "_back")? != hidden {
            return Err("the backward weights have another hidden size".into());
        }
        2
    } else {
        1
    };
    for p in ["recurrent_activation", "cell_activation", "activation"] {
        if a.def.param(p).is_some() {
            Activation::parse(a.str(p)?)?;
        }
    }
    check_shape(a, "peephole", &[3 * hidden])?;
    check_shape(a, "peephole_back", &[3 * hidden])?;
    let width = Dim::Fixed(directions * hidden);
    let state = TensorType {
        dtype: x.dtype,
        shape: vec![x.shape[1].clone(), width.clone()],
    };
    for s in states {
        let t = a.ty(s)?;
        let ok = t.rank() == 2
            && t.shape[1] == width
            && t.shape[0]
                .fixed()
                .zip(x.shape[1].fixed())
                .is_none_or(|(p, q)| p == q);
        if !ok {
            return Err(format!("{s} {t} must have shape {}", state));
        }
    }
    let steps = if a.bool("output_sequence")? {
        x.shape[0].clone()
    } else {
        Dim::Fixed(1)
    };
    let sequence = TensorType {
        dtype: x.dtype,
        shape: vec![steps, x.shape[1].clone(), width],
    };
    let mut out = vec![sequence];
    out.extend(states.iter().map(|_| state.clone()));
    Ok(out)
}

fn infer_lstm(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    infer_recurrent(a, 4, &["initial_h", "initial_c"])
}

fn infer_gru(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    infer_recurrent(a, 3, &["initial_h"])
}

fn infer_rnn(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    infer_recurrent(a, 1, &["initial_h"])
}

/// Why these ops stay in fp32.
const FP32: Precision = Precision::Fp32("MIL's recurrent ops compute in fp32 before iOS17");

/// The definitions of this family.
pub const DEFS: &[OpDef] = &[
    op("lstm", LSTM, infer_lstm, k::lstm).precision(FP32),
    op("gru", GRU, infer_gru, k::gru).precision(FP32),
    op("rnn", RNN, infer_rnn, k::rnn).precision(FP32),
];
