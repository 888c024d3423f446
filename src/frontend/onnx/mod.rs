//! The ONNX frontend: reads an `.onnx` file (memory-mapped, external data supported) and
//! converts its graph into an fp32 IR [`Program`] whose function is `main`.
//!
//! Integer tensors become int32 and every float tensor fp32 (see [`tensor`]); ops whose
//! inputs are all constant are folded while building, so shape computations resolve.

mod convert;
mod coverage;
mod node;
mod ops;
mod reader;
mod summary;
pub mod tensor;

#[cfg(test)]
mod tests;

pub use crate::frontend::input_shapes::{DimSize, InputShape, NamedDim, ShapeSpec};
pub use convert::{
    opset_warning, FROZEN_METADATA_KEY, LIMITS_METADATA_KEY, MAX_OPSET, OPSET_METADATA_KEY,
    WARNINGS_METADATA_KEY,
};
pub use coverage::{coverage, Coverage, NodeCoverage, Refusal};
pub use reader::external_locations;
pub use summary::{
    summarize, DimSummary, InitializerSummary, OnnxSummary, OpsetImport, Storage, Totals,
    ValueSummary,
};

use crate::ir::{Program, Target, Tensor};
use crate::Error;
use std::path::Path;

/// Conversion settings.
#[derive(Clone, Debug)]
pub struct OnnxOptions {
    /// Shapes of graph inputs (`--input-shape`), by ONNX name or its sanitised form.
    pub input_shapes: Vec<InputShape>,
    /// Sizes of named dynamic dimensions (`--dim`), by ONNX `dim_param`.
    pub dims: Vec<NamedDim>,
    /// Graph inputs bound to constants before conversion (`--freeze`); they are no inputs of
    /// the program.
    pub frozen: Vec<FrozenInput>,
    /// Deployment target recorded in the program.
    pub target: Target,
}

/// A graph input bound to a constant (`--freeze NAME=FILE.npy`), so that what it feeds folds
/// like an initializer would: shape inputs such as axes, pads, shapes, scales or `k`.
#[derive(Clone, Debug, PartialEq)]
pub struct FrozenInput {
    /// The ONNX input name, or its sanitised form.
    pub name: String,
    /// Its value: fp32, int32 or bool (the IR types of ONNX floats, integers and bools).
    pub value: Tensor,
}

impl Default for OnnxOptions {
    fn default() -> OnnxOptions {
        OnnxOptions {
            input_shapes: Vec::new(),
            dims: Vec::new(),
            frozen: Vec::new(),
            target: Target::IOS15,
        }
    }
}

/// Loads and converts the ONNX model at `path`.
pub fn load(path: &Path, options: &OnnxOptions) -> Result<Program, Error> {
    let (model, map) = reader::map_model(path)?;
    convert::convert(&model, map, path, options)
}

/// The ONNX op types (default domain) mlpack converts, sorted.
pub fn supported_op_types() -> Vec<&'static str> {
    ops::op_types()
}
