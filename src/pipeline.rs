//! Library entry points for each command. The CLI parses flags and calls these; tests call
//! them directly.

mod compress;
mod convert;
mod inspect;
mod precision;
mod recipe;
mod run;
mod verify;

pub use compress::{compress, CompressCommandReport, CompressOptions};
pub use convert::{convert, load_model, ConvertOptions, ConvertReport, ConvertVerify, InputShapes};
pub use inspect::{inspect, InspectReport, IoInfo, OpInfo, PackageSummary, WeightInfo};
pub use precision::{Calibration, MixedPrecision, Precision, PrecisionReport};
pub use recipe::Recipe;
pub use run::{run_package, run_package_with_states, RunInputs};
pub use verify::{verify, verify_error};

use crate::Error;
use std::path::Path;

/// The kind of model file a path names, by extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// An ONNX model (`.onnx`).
    Onnx,
    /// A Core ML ML Program package (`.mlpackage`).
    Package,
}

impl ModelKind {
    /// Classifies `path`; an unknown extension is a usage error naming the file.
    pub fn of(path: &Path) -> Result<ModelKind, Error> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("onnx") => Ok(ModelKind::Onnx),
            Some("mlpackage") => Ok(ModelKind::Package),
            _ => Err(Error::Usage(format!(
                "{}: unknown model format (expected a .onnx file or a .mlpackage directory)",
                path.display()
            ))),
        }
    }
}
