//! The torch.export frontend: converts an `ExportedProgram` (the JSON of a `.pt2` archive,
//! with its weights read by the archive reader) into an fp32 IR [`Program`] whose function
//! is `main`, without torch.
//!
//! Both IR levels torch writes are handled: the training IR `torch.export.export` saves by
//! default (`linear`, `conv2d`, `scaled_dot_product_attention`, in-place ops, asserts) and
//! the core ATen IR of `run_decompositions()`. Nodes lower onto the same MIL ops the ONNX
//! frontend emits, so the same fusion passes apply. Symbolic sizes become flexible input
//! dimensions (ranges from `range_constraints`, overridable with `--dim`); buffers the
//! program mutates become an input `NAME` and an output `NAME_out`, which the states pass
//! pairs into iOS18 states. Integer tensors become int32, float tensors fp32.

mod convert;
mod ops;
pub mod schema;

#[cfg(test)]
mod tests;

pub use convert::convert as convert_program;

use crate::frontend::input_shapes::{InputShape, NamedDim};
use crate::ir::Target;

/// Conversion settings.
#[derive(Clone, Debug)]
pub struct TorchOptions {
    /// Shapes of user inputs (`--input-shape`), by torch name or its sanitised form.
    pub input_shapes: Vec<InputShape>,
    /// Sizes of symbols (`--dim s0=…`); they override `range_constraints`.
    pub dims: Vec<NamedDim>,
    /// Deployment target recorded in the program.
    pub target: Target,
}

impl Default for TorchOptions {
    fn default() -> TorchOptions {
        TorchOptions {
            input_shapes: Vec::new(),
            dims: Vec::new(),
            target: Target::IOS15,
        }
    }
}

/// The ATen (and Python operator) targets mlpack converts, as `aten.conv2d.default`, sorted.
pub fn supported_targets() -> Vec<&'static str> {
    ops::keys()
}
