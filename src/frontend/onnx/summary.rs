//! `mlpack inspect model.onnx`: what a model contains, without converting it.

use super::reader::{external_ref, read_model};
use super::tensor::{elem_size, elem_type_name};
use crate::proto::onnx::{type_proto, ValueInfoProto};
use crate::Error;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Overview of an ONNX model.
#[derive(Clone, Debug, Serialize)]
pub struct OnnxSummary {
    /// ONNX IR version.
    pub ir_version: i64,
    /// Producer name and version, e.g. `pytorch 2.3.0`.
    pub producer: String,
    /// Operator sets the model imports.
    pub opset_imports: Vec<OpsetImport>,
    /// Graph inputs that are not initializers.
    pub inputs: Vec<ValueSummary>,
    /// Graph outputs.
    pub outputs: Vec<ValueSummary>,
    /// Node count per op type (`domain:op_type` outside the default domain).
    pub op_histogram: BTreeMap<String, usize>,
    /// Every initializer.
    pub initializers: Vec<InitializerSummary>,
    /// Totals over the graph.
    pub totals: Totals,
}

/// One imported operator set.
#[derive(Clone, Debug, Serialize)]
pub struct OpsetImport {
    /// Domain (`""` is the default `ai.onnx` domain).
    pub domain: String,
    /// Opset version.
    pub version: i64,
}

/// One graph input or output.
#[derive(Clone, Debug, Serialize)]
pub struct ValueSummary {
    /// ONNX name.
    pub name: String,
    /// Element type (`FLOAT`, `INT64`, …), or the kind of a non-tensor value.
    pub elem_type: String,
    /// Dimensions; None when the shape is not declared at all.
    pub dims: Option<Vec<DimSummary>>,
}

/// One dimension of a declared shape.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum DimSummary {
    /// A fixed size.
    Fixed(i64),
    /// A named dynamic size (`dim_param`).
    Param(String),
    /// A dynamic size without a name (serialised as null).
    Unknown,
}

/// One initializer.
#[derive(Clone, Debug, Serialize)]
pub struct InitializerSummary {
    /// ONNX name.
    pub name: String,
    /// Dimensions.
    pub dims: Vec<i64>,
    /// Element type (`FLOAT`, …).
    pub dtype: String,
    /// Size of its data in bytes.
    pub bytes: u64,
    /// Where the data is stored.
    pub storage: Storage,
}

/// Where an initializer's data is stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Storage {
    /// Inside the model file.
    Embedded,
    /// In another file next to the model.
    External {
        /// Path relative to the model's directory.
        file: String,
        /// Byte offset in that file.
        offset: u64,
    },
}

/// Totals over the graph.
#[derive(Clone, Debug, Serialize)]
pub struct Totals {
    /// Number of nodes.
    pub nodes: usize,
    /// Number of initializers.
    pub initializers: usize,
    /// Elements over every initializer.
    pub parameters: u64,
    /// Bytes over every initializer.
    pub initializer_bytes: u64,
}

fn value_summary(v: &ValueInfoProto) -> ValueSummary {
    let (elem_type, dims) = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => {
            let dims = t.shape.as_ref().map(|s| {
                s.dim
                    .iter()
                    .map(|d| match &d.value {
                        Some(
                            crate::proto::onnx::tensor_shape_proto::dimension::Value::DimValue(n),
                        ) => DimSummary::Fixed(*n),
                        Some(
                            crate::proto::onnx::tensor_shape_proto::dimension::Value::DimParam(p),
                        ) if !p.is_empty() => DimSummary::Param(p.clone()),
                        _ => DimSummary::Unknown,
                    })
                    .collect()
            });
            (elem_type_name(t.elem_type), dims)
        }
        Some(type_proto::Value::SequenceType(_)) => ("sequence".into(), None),
        Some(type_proto::Value::MapType(_)) => ("map".into(), None),
        Some(type_proto::Value::OptionalType(_)) => ("optional".into(), None),
        Some(type_proto::Value::SparseTensorType(t)) => {
            (format!("sparse {}", elem_type_name(t.elem_type)), None)
        }
        None => ("undeclared".into(), None),
    };
    ValueSummary {
        name: v.name.clone(),
        elem_type,
        dims,
    }
}

/// Summarises the model at `path` (external data files are not read).
pub fn summarize(path: &Path) -> Result<OnnxSummary, Error> {
    let model = read_model(path)?;
    let graph = model.graph.unwrap_or_default();
    let mut op_histogram = BTreeMap::new();
    for node in &graph.node {
        let key = match node.domain.as_str() {
            "" | "ai.onnx" => node.op_type.clone(),
            domain => format!("{domain}:{}", node.op_type),
        };
        *op_histogram.entry(key).or_insert(0) += 1;
    }
    let mut initializers = Vec::with_capacity(graph.initializer.len());
    let (mut parameters, mut initializer_bytes) = (0u64, 0u64);
    for t in &graph.initializer {
        let elements = t
            .dims
            .iter()
            .fold(1u64, |acc, &d| acc.saturating_mul(d.max(0) as u64));
        let computed = elem_size(t.data_type).map_or(0, |s| elements.saturating_mul(s as u64));
        let (bytes, storage) = match external_ref(t, path)? {
            Some(r) => (
                r.length.unwrap_or(computed),
                Storage::External {
                    file: r.location,
                    offset: r.offset,
                },
            ),
            None if !t.raw_data.is_empty() => (t.raw_data.len() as u64, Storage::Embedded),
            None => (computed, Storage::Embedded),
        };
        parameters = parameters.saturating_add(elements);
        initializer_bytes = initializer_bytes.saturating_add(bytes);
        initializers.push(InitializerSummary {
            name: t.name.clone(),
            dims: t.dims.clone(),
            dtype: elem_type_name(t.data_type),
            bytes,
            storage,
        });
    }
    let init_names: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    Ok(OnnxSummary {
        ir_version: model.ir_version,
        producer: format!("{} {}", model.producer_name, model.producer_version)
            .trim()
            .to_string(),
        opset_imports: model
            .opset_import
            .iter()
            .map(|o| OpsetImport {
                domain: o.domain.clone(),
                version: o.version,
            })
            .collect(),
        inputs: graph
            .input
            .iter()
            .filter(|v| !init_names.contains(v.name.as_str()))
            .map(value_summary)
            .collect(),
        outputs: graph.output.iter().map(value_summary).collect(),
        op_histogram,
        totals: Totals {
            nodes: graph.node.len(),
            initializers: initializers.len(),
            parameters,
            initializer_bytes,
        },
        initializers,
    })
}
