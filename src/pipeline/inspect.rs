//! `inspect`: describe an ONNX model or a package.

use super::chain::{is_chain, Chain};
use super::describe::{description_info, DescriptionInfo};
use super::load_model;
use super::ModelKind;
use crate::backend::mlpackage::weight_file;
use crate::backend::{read_package, stored_in_blob};
use crate::frontend::onnx::{self, OnnxSummary};
use crate::frontend::torch::{self, Pt2Summary};
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

/// One function of a multifunction package.
#[derive(Clone, Debug, Serialize)]
pub struct FunctionInfo {
    /// Function name.
    pub name: String,
    /// Inputs.
    pub inputs: Vec<IoInfo>,
    /// Outputs.
    pub outputs: Vec<IoInfo>,
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
    /// A multifunction package's functions, the default first (empty for single-function
    /// packages). The rest of the summary describes [`PackageSummary::function`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<FunctionInfo>,
    /// The function described, in a multifunction package.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
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
    /// Image inputs, classifier outputs and metadata.
    pub description: DescriptionInfo,
}

/// One package of a chain.
#[derive(Clone, Debug, Serialize)]
pub struct ChunkSummary {
    /// The package's name inside the chain directory.
    pub package: String,
    /// Size of its weight.bin in bytes.
    pub weight_bytes: u64,
    /// Non-constant ops.
    pub ops: usize,
    /// Inputs: model inputs or earlier packages' outputs.
    pub inputs: Vec<IoInfo>,
    /// Outputs.
    pub outputs: Vec<IoInfo>,
}

/// What a chain directory written by `split` holds.
#[derive(Clone, Debug, Serialize)]
pub struct ChainSummary {
    /// The chain directory.
    pub path: PathBuf,
    /// The package the chain was cut from.
    pub source: String,
    /// Deployment target.
    pub target: String,
    /// The weight.bin size limit it was cut for, in bytes.
    pub max_weight_size: u64,
    /// Model inputs.
    pub inputs: Vec<IoInfo>,
    /// Model outputs.
    pub outputs: Vec<IoInfo>,
    /// Packages in run order.
    pub chunks: Vec<ChunkSummary>,
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
    /// A torch.export archive: what it holds, and the program it converts to (fp32, the
    /// default target) described like a package.
    Pt2 {
        /// The archive's container and program facts.
        archive: Pt2Summary,
        /// The converted program.
        program: PackageSummary,
    },
    /// A package.
    Package(PackageSummary),
    /// A chain of packages.
    Chain(ChainSummary),
}

/// Describes `path`. With `mil`, the report also carries the program as text (for ONNX, the
/// fp32 program as converted for the default target); with `ops`, a package's report lists
/// every op with its compute precision.
pub fn inspect(path: &Path, mil: bool, ops: bool) -> Result<InspectReport, Error> {
    inspect_function(path, None, mil, ops)
}

/// Which nodes of the ONNX model at `path` convert for the default target (iOS17), and why
/// the others do not (see [`onnx::coverage`]); a usage error for any other kind of file.
pub fn coverage(path: &Path) -> Result<onnx::Coverage, Error> {
    if ModelKind::of(path)? != ModelKind::Onnx {
        return Err(Error::Usage(format!(
            "--coverage: {} is not an .onnx model (coverage is reported for ONNX models)",
            path.display()
        )));
    }
    onnx::coverage(path, Target::IOS17)
}

/// Describes `path` as [`inspect`] does; for a package, its function `function` (its default
/// function when `None`), listing every function of a multifunction package. A chain
/// directory's packages have one function each.
pub fn inspect_function(
    path: &Path,
    function: Option<&str>,
    mil: bool,
    ops: bool,
) -> Result<InspectReport, Error> {
    if is_chain(path) {
        if let Some(name) = function {
            return Err(Error::Usage(format!(
                "--function {name}: {} is a chain of single-function packages",
                path.display()
            )));
        }
        return summarize_chain(path).map(InspectReport::Chain);
    }
    match ModelKind::of(path)? {
        ModelKind::Onnx if function.is_some() => Err(Error::Usage(format!(
            "--function {}: {} is an ONNX model, which has no functions (a package has)",
            function.unwrap_or_default(),
            path.display()
        ))),
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
        ModelKind::Pt2 if function.is_some() => Err(Error::Usage(format!(
            "--function {}: {} is a torch.export archive, which has no functions (a package has)",
            function.unwrap_or_default(),
            path.display()
        ))),
        ModelKind::Pt2 => {
            let archive = torch::summarize(path)?;
            let program = load_model(path, Target::IOS17, &Default::default())?;
            let mut summary = summarize_program(path, &program);
            summary.mil = mil.then(|| print_program(&program));
            if !ops {
                summary.op_list.clear();
            }
            Ok(InspectReport::Pt2 {
                archive,
                program: summary,
            })
        }
        ModelKind::Package => {
            let whole = read_package(path)?;
            let functions = match whole.is_multifunction() {
                true => whole.functions.iter().map(function_info).collect(),
                false => Vec::new(),
            };
            let program = whole
                .select_function(function)
                .map_err(|m| Error::Usage(format!("{}: {m}", path.display())))?;
            let mut summary = summarize_program(path, &program);
            if !functions.is_empty() {
                summary.function = Some(program.main().name.clone());
            }
            summary.functions = functions;
            summary.mil = mil.then(|| print_program(&program));
            if !ops {
                summary.op_list.clear();
            }
            Ok(InspectReport::Package(summary))
        }
    }
}

/// The summary of the chain directory at `path`: its packages with their weight sizes, inputs
/// and outputs.
fn summarize_chain(path: &Path) -> Result<ChainSummary, Error> {
    let chain = Chain::read(path)?;
    let joined = chain.join()?.main().clone();
    let chunks = chain
        .manifest
        .chunks
        .iter()
        .zip(&chain.programs)
        .map(|(entry, program)| {
            let main = program.main();
            let weights = weight_file(&path.join(&entry.package));
            let weight_bytes = match std::fs::metadata(&weights) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                Err(e) => return Err(Error::io(&weights, e)),
            };
            Ok(ChunkSummary {
                package: entry.package.clone(),
                weight_bytes,
                ops: entry.ops,
                inputs: main
                    .inputs
                    .iter()
                    .map(|v| io_info(&v.name, &v.ty))
                    .collect(),
                outputs: main
                    .outputs()
                    .iter()
                    .map(|v| io_info(&v.name, &v.ty))
                    .collect(),
            })
        })
        .collect::<Result<_, Error>>()?;
    Ok(ChainSummary {
        path: path.to_path_buf(),
        source: chain.manifest.source.clone(),
        target: chain.manifest.target.clone(),
        max_weight_size: chain.manifest.max_weight_size,
        inputs: joined
            .inputs
            .iter()
            .map(|v| io_info(&v.name, &v.ty))
            .collect(),
        outputs: joined
            .outputs()
            .iter()
            .map(|v| io_info(&v.name, &v.ty))
            .collect(),
        chunks,
    })
}

/// The report form of a typed value.
fn io_info(name: &str, ty: &crate::ir::TensorType) -> IoInfo {
    IoInfo {
        name: name.to_string(),
        dtype: ty.dtype.name().to_string(),
        shape: ty.shape.iter().map(|d| d.to_string()).collect(),
    }
}

/// The name, inputs and outputs of `function`.
fn function_info(function: &Function) -> FunctionInfo {
    FunctionInfo {
        name: function.name.clone(),
        inputs: function
            .inputs
            .iter()
            .map(|v| io_info(&v.name, &v.ty))
            .collect(),
        outputs: function
            .outputs()
            .iter()
            .map(|v| io_info(&v.name, &v.ty))
            .collect(),
    }
}

/// The summary of an in-memory program's main function as it would be stored at `path`.
pub fn summarize_program(path: &Path, program: &Program) -> PackageSummary {
    let main = program.main();
    let io = io_info;
    let mut weights = Vec::new();
    let op_list = op_precisions(main);
    let mut precision = BTreeMap::new();
    for op in &op_list {
        if op.precision == "fp16" || op.precision == "fp32" {
            *precision.entry(op.precision.clone()).or_insert(0) += 1;
        }
    }
    for op in &main.block.operations {
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
        functions: Vec::new(),
        function: None,
        inputs: main.inputs.iter().map(|v| io(&v.name, &v.ty)).collect(),
        outputs: main.outputs().iter().map(|v| io(&v.name, &v.ty)).collect(),
        states: main.states.iter().map(|v| io(&v.name, &v.ty)).collect(),
        ops: main.op_counts(),
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
        description: description_info(program),
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
