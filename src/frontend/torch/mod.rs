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

/// What a `.pt2` file holds, for `inspect`: the container and program facts that the
/// converted program does not show.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Pt2Summary {
    /// The container torch wrote (and so which torch versions write it).
    pub container: String,
    /// Export schema version, `major.minor`.
    pub schema_version: String,
    /// IR level of the graph: `TRAINING` (torch.export.export) or `ATEN` (after
    /// `run_decompositions`).
    pub ir: String,
    /// Symbolic sizes with their ranges (`s70: 2..64`), the names `--dim` takes.
    pub symbols: Vec<String>,
    /// Lifted tensors read (parameters, buffers, constants).
    pub tensors: usize,
    /// The user inputs' names, in order.
    pub inputs: Vec<String>,
}

/// Reads the archive at `path` and describes it (without converting).
pub fn summarize(path: &Path) -> Result<Pt2Summary, Error> {
    let archive = archive::open(path)?;
    let program = schema::parse(&archive.program, path)?;
    let bound = |v: &Option<serde_json::Value>| match v.as_ref().and_then(|v| v.as_i64()) {
        Some(n) if n < i32::MAX as i64 => n.to_string(),
        _ => String::new(),
    };
    let mut symbols: Vec<String> = program
        .range_constraints
        .iter()
        .map(|(name, r)| format!("{name}: {}..{}", bound(&r.min_val), bound(&r.max_val)))
        .collect();
    symbols.sort();
    Ok(Pt2Summary {
        container: archive.container.to_string(),
        schema_version: format!(
            "{}.{}",
            program.schema_version.major, program.schema_version.minor
        ),
        ir: program.verifiers.join(","),
        symbols,
        tensors: archive.tensors.len(),
        inputs: program
            .graph_module
            .signature
            .input_specs
            .iter()
            .filter_map(|spec| match spec {
                schema::InputSpec::UserInput {
                    arg: schema::Argument::AsTensor(t),
                } => Some(t.name.clone()),
                _ => None,
            })
            .collect(),
    })
}
