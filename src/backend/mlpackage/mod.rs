//! The Core ML `.mlpackage` format: a directory holding `Manifest.json`, the
//! `model.mlmodel` protobuf and the `weights/weight.bin` blob file.
//!
//! [`write_package`] maps an [`ir::Program`](crate::ir::Program) to those files and
//! [`read_package`] maps them back. Nothing outside this module knows the protobuf messages.

pub mod blob;
mod description;
mod manifest;
mod model_info;
mod output;
mod read;
mod value;
mod write;

pub use read::read_package;
pub use value::stored_in_blob;
pub use write::write_package;

use crate::Error;
use std::path::Path;

/// Directory under `Data/` that holds the model and its weights (`<author>`).
const AUTHOR: &str = "com.apple.CoreML";
/// File name of the model specification.
const MODEL_FILE: &str = "model.mlmodel";
/// Directory name of the weights, next to the model specification.
const WEIGHTS_DIR: &str = "weights";
/// File name of the blob file inside the weights directory.
const WEIGHT_FILE: &str = "weight.bin";
/// Prefix of blob file names in the protobuf, resolved to the model's directory.
const MODEL_PATH_PREFIX: &str = "@model_path/";

/// The weight file inside a package `write_package` wrote at `package` (absent when the program
/// has no blob constants).
pub fn weight_file(package: &Path) -> std::path::PathBuf {
    package
        .join("Data")
        .join(AUTHOR)
        .join(WEIGHTS_DIR)
        .join(WEIGHT_FILE)
}

/// A problem found while decoding a piece of the protobuf, before the file it concerns and
/// the op it belongs to are attached.
#[derive(Debug)]
enum Problem {
    /// The data is malformed.
    Invalid(String),
    /// The data is well-formed but uses something mlpack does not support.
    Unsupported(String),
}

impl Problem {
    /// The crate error for this problem in file `path`, prefixed with `context`.
    fn at(self, path: &Path, context: &str) -> Error {
        let join = |m: String| {
            if context.is_empty() {
                m
            } else {
                format!("{context}: {m}")
            }
        };
        match self {
            Problem::Invalid(m) => Error::invalid(path, join(m)),
            Problem::Unsupported(m) => Error::Unsupported {
                path: path.to_path_buf(),
                message: join(m),
            },
        }
    }
}
