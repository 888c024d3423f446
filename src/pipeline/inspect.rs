//! `inspect`: describe an ONNX model or a package.

use super::load_model;
use super::ModelKind;
use crate::backend::{read_package, stored_in_blob};
use crate::frontend::onnx::{self, OnnxSummary};
use crate::ir::{print_program, DType, Function, Program, Target};
use crate::passes::compress::{compressed_weights, CompressedWeight};
use crate::passes::mixed_precision::{dtypes, op_precision};
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

/// One op of a package's main function, with its compute precision.
#[derive(Clone, Debug, Serialize)]
pub struct OpInfo {
    /// Position in the op list.
    pub index: usize,
    /// Op name.
    pub name: String,
    /// MIL op type.
    pub op_type: String,
    /// `fp16` or `fp32` for float compute, `fp32→fp16` (etc.) for casts, `-` otherwise.
    pub precision: String,
    /// Source (ONNX) node, when recorded.
    pub origin: Option<String>,
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
    /// States (iOS18), with the wrapped tensor type.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub states: Vec<IoInfo>,
    /// Op count by type.
    pub ops: BTreeMap<String, usize>,
    /// What conversion fused (`4 gelu, 5 layer_norm`), as recorded in the package metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fused: Option<String>,
    /// Count of float-computing ops by precision (`fp16`, `fp32`); casts not counted.
    pub precision: BTreeMap<String, usize>,
    /// Every non-constant op with its precision, when asked for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub op_list: Vec<OpInfo>,
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
/// fp32 program as converted for the default target); with `ops`, a package's report lists
/// every op with its compute precision.
pub fn inspect(path: &Path, mil: bool, ops: bool) -> Result<InspectReport, Error> {
    match ModelKind::of(path)? {
        ModelKind::Onnx => {
            let summary = onnx::summarize(path)?;
            let mil = match mil {
                true => Some(print_program(&load_model(
                    path,
                    Target::IOS17,
                    &Default::default(),
                )?)),
                false => None,
            };
            Ok(InspectReport::Onnx { summary, mil })
        }
        ModelKind::Package => {
            let program = read_package(path)?;
            let mut summary = summarize_program(path, &program);
            summary.mil = mil.then(|| print_program(&program));
            if !ops {
                summary.op_list.clear();
            }
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
    let op_list = op_precisions(main);
    let mut precision = BTreeMap::new();
    for op in &op_list {
        if op.precision == "fp16" || op.precision == "fp32" {
            *precision.entry(op.precision.clone()).or_insert(0) += 1;
        }
    }
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
        states: main.states.iter().map(|v| io(&v.name, &v.ty)).collect(),
        ops,
        fused: program
            .metadata
            .get(crate::passes::FUSED_METADATA_KEY)
            .cloned(),
        precision,
        op_list,
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

/// Every non-constant op of `function` with its compute precision.
fn op_precisions(function: &Function) -> Vec<OpInfo> {
    let types = dtypes(function);
    function
        .block
        .operations
        .iter()
        .enumerate()
        .filter(|(_, op)| op.op_type != "const")
        .map(|(index, op)| {
            let precision = if op.op_type == "cast" {
                let from = op
                    .input("x")
                    .and_then(|a| a.first())
                    .and_then(|a| a.var())
                    .and_then(|x| types.get(x));
                match (from, op.outputs.first()) {
                    (Some(from), Some(to)) => format!("{}→{}", from.name(), to.ty.dtype.name()),
                    _ => "-".to_string(),
                }
            } else {
                op_precision(op, &types).map_or("-".to_string(), |d| d.name().to_string())
            };
            OpInfo {
                index,
                name: op.name.clone(),
                op_type: op.op_type.clone(),
                precision,
                origin: op.origin.clone(),
            }
        })
        .collect()
}
