//! The torch.export frontend: reads a `.pt2` archive (any container torch 2.5 and later
//! writes) without torch, and converts its exported program into an fp32 IR program.

pub mod archive;
mod storage;
mod torch_save;
mod zip_view;

use crate::frontend::onnx::{InputShape, NamedDim};
use crate::ir::{Program, Target};
use crate::Error;
use std::path::Path;

/// Conversion settings.
#[derive(Clone, Debug)]
pub struct TorchOptions {
    /// Shapes of user inputs (`--input-shape`), by name.
    pub input_shapes: Vec<InputShape>,
    /// Sizes of symbolic dimensions (`--dim`), by symbol name.
    pub dims: Vec<NamedDim>,
    /// Deployment target recorded in the program.
    pub target: Target,
}

/// Loads and converts the `.pt2` archive at `path`.
pub fn load(path: &Path, _options: &TorchOptions) -> Result<Program, Error> {
    let _archive = archive::open(path)?;
    Err(Error::Unsupported {
        path: path.to_path_buf(),
        message: "converting torch.export programs is not merged yet".into(),
    })
}
