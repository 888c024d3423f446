//! The torch.export frontend: reads a `.pt2` archive (any container torch 2.5 and later
//! writes) without torch, and converts its exported program into an fp32 IR [`Program`]
//! whose function is `main`.
//!
//! Both IR levels torch writes are handled: the training IR `torch.export.export` saves by
//! default (`linear`, `conv2d`, `scaled_dot_product_attention`, in-place ops, asserts) and
//! the core ATen IR of `run_decompositions()`. Nodes lower onto the same MIL ops the ONNX
//! frontend emits, so the same fusion passes apply. Symbolic sizes become flexible input
//! dimensions (ranges from `range_constraints`, overridable with `--dim`); buffers the
//! program mutates become an input `NAME` and an output `NAME_out`, which the states pass
//! pairs into iOS18 states. Integer tensors become int32, float tensors fp32.

pub mod archive;
mod convert;
mod ops;
mod pickle;
pub mod schema;
mod storage;
mod torch_save;
mod zip_view;

#[cfg(test)]
mod tests;

pub use convert::convert as convert_program;

use crate::frontend::input_shapes::{InputShape, NamedDim};
use crate::ir::{Program, Target};
use crate::Error;
use std::path::Path;

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

/// Loads and converts the `.pt2` archive at `path`.
pub fn load(path: &Path, options: &TorchOptions) -> Result<Program, Error> {
    let archive = archive::open(path)?;
    convert_program(&archive.program, &archive.tensors, path, options)
}

/// The ATen (and Python operator) targets mlpack converts, as `aten.conv2d.default`, sorted.
pub fn supported_targets() -> Vec<&'static str> {
    ops::keys()
}
