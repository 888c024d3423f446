//! `inspect`: describe an ONNX model or a package.

use super::load_model;
use super::ModelKind;
use crate::backend::{read_package, stored_in_blob};
use crate::frontend::onnx::{self, OnnxSummary};
use crate::ir::{print_program, DType, Program, Target};
use crate::passes::compress::{compressed_weights, CompressedWeight};
use crate::Error;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A model input or output.
#[derive(Clone, Debug, Serialize)]
pub struct IoInfo {
    /// Name.
    pub name: String,
    /// MIL dtype name.
    pub dtype: String,
    /// Dimensions (symbols as strings).
    pub shape: Vec<String>,
}

/// One stored weight of a package.
#[derive(Clone, Debug, Serialize)]
pub struct WeightInfo {
    /// Variable name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: String,
    /// Bytes it takes.
    pub bytes: usize,
    /// How it is stored: `blob` (weight.bin) or `immediate` (inside model.mlmodel).
    pub storage: String,
}

/// What a package holds.
#[derive(Clone, Debug, Serialize)]
pub struct PackageSummary {
    /// Package path.
    pub path: PathBuf,
    /// Deployment target.
    pub target: String,
    /// Specification version.
    pub specification_version: i32,
    /// Inputs.
    pub inputs: Vec<IoInfo>,
    /// Outputs.
    pub outputs: Vec<IoInfo>,
    /// Op count by type.
    pub ops: BTreeMap<String, usize>,
    /// Constants of at least 10 elements.
    pub weights: Vec<WeightInfo>,
    /// Compressed weights: constexpr chains with their scheme.
    pub compressed_weights: Vec<CompressedWeight>,
    /// Elements over all weights.
    pub total_parameters: usize,
    /// Bytes over all weights.
    pub total_weight_bytes: usize,
    /// The program as text, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mil: Option<String>,
}

/// The result of `inspect`.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum InspectReport {
    /// An ONNX model.
    Onnx {
        /// What the file holds.
        #[serde(flatten)]
        summary: OnnxSummary,
        /// The converted fp32 program as text, when asked for.
        #[serde(skip_serializing_if = "Option::is_none")]
        mil: Option<String>,
    },
    /// A package.
    Package(PackageSummary),
}

/// Describes `path`. With `mil`, the report also carries the program as text (for ONNX, the
/// fp32 program as converted for the default target).
pub fn inspect(path: &Path, mil: bool) -> Result<InspectReport, Error> {
    match ModelKind::of(path)? {
        ModelKind::Onnx => {
            let summary = onnx::summarize(path)?;
            let mil = match mil {
                true => Some(print_program(&load_model(path, Target::IOS17, &[])?)),
                false => None,
            };
            Ok(InspectReport::Onnx { summary, mil })
        }
        ModelKind::Package => {
            let program = read_package(path)?;
            let mut summary = summarize_program(path, &program);
            summary.mil = mil.then(|| print_program(&program));
            Ok(InspectReport::Package(summary))
        }
    }
}

/// The summary of an in-memory program as it would be stored at `path`.
pub fn summarize_program(path: &Path, program: &Program) -> PackageSummary {
    let main = program.main();
    let io = |name: &str, ty: &crate::ir::TensorType| IoInfo {
        name: name.to_string(),
        dtype: ty.dtype.name().to_string(),
        shape: ty.shape.iter().map(|d| d.to_string()).collect(),
    };
    let mut ops = BTreeMap::new();
    let mut weights = Vec::new();
    for op in &main.block.operations {
        *ops.entry(op.op_type.clone()).or_insert(0) += 1;
        if let Some(v) = op.const_value() {
            if v.dtype() != DType::String && v.len() >= 10 {
                weights.push(WeightInfo {
                    name: op.outputs[0].name.clone(),
                    shape: v.shape().to_vec(),
                    dtype: v.dtype().name().to_string(),
                    bytes: v.bytes().len(),
                    storage: if stored_in_blob(v, program.target) {
                        "blob"
                    } else {
                        "immediate"
                    }
                    .to_string(),
                });
            }
        }
    }
    PackageSummary {
        path: path.to_path_buf(),
        target: program.target.to_string(),
        specification_version: program.target.spec_version(),
        inputs: main.inputs.iter().map(|v| io(&v.name, &v.ty)).collect(),
        outputs: main.outputs().iter().map(|v| io(&v.name, &v.ty)).collect(),
        ops,
        total_parameters: weights
            .iter()
            .map(|w| w.shape.iter().product::<usize>())
            .sum(),
        total_weight_bytes: weights.iter().map(|w| w.bytes).sum(),
        weights,
        compressed_weights: compressed_weights(main),
        mil: None,
    }
}
