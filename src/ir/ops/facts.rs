//! Per-op facts the passes read from an op's [`OpDef`](super::OpDef): how its weights lay
//! out channels (compression), how the fp16 pass treats it (precision) and the part it can
//! play in a LayerNorm/RMSNorm written out op by op (mixed precision's `layer-norm` pattern).

/// Output- and input-channel axes of a weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelAxes {
    /// Output-channel axis.
    pub output: usize,
    /// Input-channel axis.
    pub input: usize,
}

/// Channel axes of a weight of `rank` bound to parameter `param` of an op; `flag` reads a
/// constant bool parameter of that op (false when absent or not constant). Follows
/// coremltools' `select_input_output_channel_axis` (docs/format.md §5).
pub type WeightAxesFn = fn(param: &str, rank: usize, flag: &dyn Fn(&str) -> bool) -> ChannelAxes;

/// The usual layout: output channels on axis 0, input channels on axis 1 (`conv`, `linear`, …).
pub fn output_then_input(_param: &str, _rank: usize, _flag: &dyn Fn(&str) -> bool) -> ChannelAxes {
    ChannelAxes {
        output: 0,
        input: 1,
    }
}

/// How the fp16 pass treats an op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// The pass chooses its compute precision (when it reads or produces floats).
    Chosen,
    /// Never changed: the op moves between dtypes itself or does no float arithmetic of its
    /// own (`cast`, `shape`, state ops).
    Kept,
    /// Always computes in fp32, for the reason given.
    Fp32(&'static str),
}

/// How an op can square its input `x`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Square {
    /// It always does (`square`).
    Always,
    /// When its `y` is the constant 2 (`pow`).
    ByTwo,
    /// When its `x` and `y` are the same variable (`mul`).
    BySelf,
}

/// The parts an op can play in a LayerNorm/RMSNorm: a fused norm, or one step of a decomposed
/// one (square → reduce → elementwise steps with a constant → root).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NormRole {
    /// The fused norm op itself (`layer_norm`).
    pub fused: bool,
    /// How it squares its input, if it can.
    pub square: Option<Square>,
    /// A reduction giving a mean or sum (the mean, the variance).
    pub reduce: bool,
    /// An elementwise step with a constant operand between the variance and its root
    /// (adding epsilon, scaling).
    pub step: bool,
    /// The square root or reciprocal square root ending the chain.
    pub root: bool,
}

impl NormRole {
    /// No part in a norm.
    pub const NONE: NormRole = NormRole {
        fused: false,
        square: None,
        reduce: false,
        step: false,
        root: false,
    };
}
