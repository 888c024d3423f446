//! Library entry points for each command. The CLI parses flags and calls these; tests call
//! them directly.

pub mod batch;
mod chain;
mod compress;
mod convert;
mod describe;
mod diff;
mod inspect;
mod lint;
mod multifunction;
mod paths;
mod precision;
mod recipe;
mod run;
mod split;
mod verify;

pub use chain::{is_chain, Chain, ChainManifest, ChunkEntry, CHAIN_FILE};
pub use compress::{compress, CompressCommandReport, CompressOptions};
pub use convert::{convert, load_model, ConvertOptions, ConvertReport, ConvertVerify, InputShapes};
pub use describe::{
    read_labels, ClassifierInfo, DescribeOptions, DescriptionInfo, ImageInfo, ImageInput,
};
pub use diff::{
    diff, DiffOptions, DiffReport, DiffSide, IoDesc, Numerics, OpDelta, SignatureChange,
    WeightDesc, WeightRow, WeightTotals, WeightsDiff,
};
pub use inspect::{
    coverage, inspect, inspect_function, ChainSummary, ChunkSummary, FunctionInfo, InspectReport,
    IoInfo, OpInfo, PackageSummary, WeightInfo,
};
pub use lint::{
    lint, lint_subject, Finding, Hit, LintOptions, LintReport, Rule, Severity, Subject, RULES,
};
pub use multifunction::{convert_functions, FunctionReport, FunctionSpec, MultifunctionReport};
pub use paths::{check_outputs, check_report_path, write_atomically};
pub use precision::{Calibration, MixedPrecision, Precision, PrecisionReport};
pub use recipe::Recipe;
pub use run::{run_package, run_package_function, run_package_outputs, RunInputs, RunOutputs};
pub use split::{split, SplitOptions, SplitReport, CHUNK_METADATA_KEY};
pub use verify::{verify, verify_error, verify_function};

use crate::backend::read_package;
use crate::ir::Program;
use crate::Error;
use std::path::Path;

/// The kind of model file a path names, by extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// An ONNX model (`.onnx`).
    Onnx,
    /// A torch.export archive (`.pt2`).
    Pt2,
    /// A Core ML ML Program package (`.mlpackage`).
    Package,
}

impl ModelKind {
    /// True for the source formats mlpack converts (ONNX and torch.export), as opposed to a
    /// package.
    pub fn is_source(self) -> bool {
        matches!(self, ModelKind::Onnx | ModelKind::Pt2)
    }

    /// The kind's name in reports: `onnx`, `pt2` or `package`.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Onnx => "onnx",
            ModelKind::Pt2 => "pt2",
            ModelKind::Package => "package",
        }
    }

    /// Classifies `path`; an unknown extension is a usage error naming the file.
    pub fn of(path: &Path) -> Result<ModelKind, Error> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("onnx") => Ok(ModelKind::Onnx),
            Some("pt2") => Ok(ModelKind::Pt2),
            Some("mlpackage") => Ok(ModelKind::Package),
            _ => Err(Error::Usage(format!(
                "{}: unknown model format (expected a .onnx or .pt2 file, or a .mlpackage directory)",
                path.display()
            ))),
        }
    }
}

/// Reads the package at `path` reduced to its function `function` (its default function when
/// `None`); an unknown name is a usage error listing the package's functions.
pub fn read_package_function(path: &Path, function: Option<&str>) -> Result<Program, Error> {
    read_package(path)?
        .select_function(function)
        .map_err(|m| Error::Usage(format!("{}: {m}", path.display())))
}

/// Reads the package at `path` for a command that rewrites it (`convert`, compression), which
/// handles single-function packages only: a multifunction package is unsupported.
pub(crate) fn read_single_function_package(path: &Path) -> Result<Program, Error> {
    let program = read_package(path)?;
    if program.functions.len() > 1 {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            message: format!(
                "a multifunction package ({}); only single-function packages can be re-written \
                 or compressed",
                program.function_names().join(", ")
            ),
        });
    }
    Ok(program)
}
