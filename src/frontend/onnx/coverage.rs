//! `mlpack inspect model.onnx --coverage`: which nodes convert and why the others do not,
//! found by the converters themselves run node by node on the memory-mapped model, before
//! any program is finished, optimised or written.

use super::convert::{
    begin, check_single_producers, declared_input, default_opset, function_inputs,
    missing_converter, not_for_inference,
};
use super::node::Node;
use super::tensor::{elem_type_name, ir_dtype};
use super::{ops, reader, DimSize, InputShape, OnnxOptions, ShapeSpec};
use crate::ir::Target;
use crate::Error;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Why a node does not convert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// No converter for its op type in its domain.
    UnsupportedOp,
    /// A training op or loss: no inference op.
    NotForInference,
    /// The model imports an ai.onnx opset older than the oldest supported.
    Opset,
    /// It reads a graph input of an element type Core ML lacks (or that is no tensor).
    ElementType,
    /// An input it needs constant is computed at run time (`--freeze` can bind the graph
    /// inputs it comes from).
    NeedsConstant,
    /// It reads the output of a node that does not convert.
    Upstream,
    /// Its converter refuses it for another reason (an attribute, a shape, a mode…).
    Converter,
}

/// One node's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct NodeCoverage {
    /// The node's name, or `Op -> first output` when it has none.
    pub name: String,
    /// Its op type.
    pub op_type: String,
    /// Its domain (empty: ai.onnx).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// True when its converter accepts it.
    pub convertible: bool,
    /// Why not, as a class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<Refusal>,
    /// Why not, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For [`Refusal::NeedsConstant`]: the graph inputs `--freeze` would bind.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub freeze: Vec<String>,
}

/// Which nodes of a model convert.
#[derive(Clone, Debug, Serialize)]
pub struct Coverage {
    /// The model.
    pub path: PathBuf,
    /// The deployment target the converters were asked for.
    pub target: String,
    /// Node count.
    pub total: usize,
    /// Nodes that convert.
    pub convertible: usize,
    /// Every node, in graph order.
    pub nodes: Vec<NodeCoverage>,
}

/// The coverage of the ONNX model at `path` for `target`: every node's converter is run in
/// graph order on the model as declared (dynamic input dimensions taken as flexible, `1..`);
/// a node that does not convert is recorded with the reason and what reads its outputs is
/// refused as [`Refusal::Upstream`]. Nothing is optimised or written. Errors only for a model
/// that cannot be read or is malformed.
pub fn coverage(path: &Path, target: Target) -> Result<Coverage, Error> {
    let (model, map) = reader::map_model(path)?;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| Error::invalid(path, "the model has no graph"))?;
    check_single_producers(graph, path)?;
    let opset = match default_opset(&model, path) {
        Ok(opset) => Ok(opset),
        Err(Error::Unsupported { message, .. }) => Err(message),
        Err(e) => return Err(e),
    };
    // Values no converter can read, with the class and reason of the refusal.
    let mut unreadable: HashMap<String, (Refusal, String)> = HashMap::new();
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let mut input_shapes = Vec::new();
    for v in graph
        .input
        .iter()
        .filter(|v| !initializers.contains(v.name.as_str()))
    {
        let why = match declared_input(v, path) {
            Err(Error::Unsupported { message, .. }) => message,
            Err(e) => return Err(e),
            Ok((elem_type, _)) if ir_dtype(elem_type).is_none() => format!(
                "input '{}' has element type {}, which Core ML lacks",
                v.name,
                elem_type_name(elem_type)
            ),
            Ok((_, None)) => {
                unreadable.insert(
                    v.name.clone(),
                    (
                        Refusal::Converter,
                        format!("input '{}' has no declared shape", v.name),
                    ),
                );
                continue;
            }
            Ok((_, Some(dims))) => {
                if dims.iter().any(Result::is_err) {
                    let sizes = dims
                        .iter()
                        .map(|d| {
                            d.as_ref()
                                .map_or(DimSize::Range(1, None), |&n| DimSize::Fixed(n))
                        })
                        .collect();
                    input_shapes.push(InputShape {
                        name: v.name.clone(),
                        shape: ShapeSpec::Dims(sizes),
                    });
                }
                continue;
            }
        };
        unreadable.insert(v.name.clone(), (Refusal::ElementType, why));
    }
    let options = OnnxOptions {
        input_shapes,
        target,
        ..Default::default()
    };
    let skip: HashSet<&str> = unreadable.keys().map(String::as_str).collect();
    let mut ctx = match &opset {
        Ok(opset) => {
            let (inputs, _) = function_inputs(graph, &options, &skip, path)?;
            Some(begin(
                graph,
                map,
                path,
                *opset,
                target,
                &inputs,
                Vec::new(),
            )?)
        }
        Err(_) => None,
    };
    let mut nodes = Vec::with_capacity(graph.node.len());
    for proto in &graph.node {
        let node = Node::new(proto);
        let read = proto
            .input
            .iter()
            .find_map(|i| unreadable.get(i).map(|why| (i, why)));
        let refused: Option<(Refusal, String, Vec<String>)> = if let Some(key) =
            missing_converter(proto)
        {
            let class = match not_for_inference(&proto.domain, &proto.op_type) {
                Some(_) => Refusal::NotForInference,
                None => Refusal::UnsupportedOp,
            };
            Some((class, format!("no converter for {key}"), Vec::new()))
        } else if let Err(message) = &opset {
            Some((Refusal::Opset, message.clone(), Vec::new()))
        } else if let Some((name, (class, why))) = read {
            let class = match class {
                Refusal::ElementType => Refusal::ElementType,
                _ => Refusal::Upstream,
            };
            Some((class, format!("reads '{name}': {why}"), Vec::new()))
        } else if let Some(ctx) = ctx.as_mut() {
            ctx.e.current = format!("node '{}' ({})", node.label, node.op_type());
            ctx.e.b.origin = Some(node.label.clone());
            let prefix = format!("{}: ", ctx.e.current);
            let convert = ops::converter_in(&proto.domain, node.op_type())
                .ok_or_else(|| Error::Internal(format!("no converter for {}", node.op_type())))?;
            convert(ctx, &node).err().map(|e| {
                let (class, message, freeze) = match e {
                    Error::NeedsConstant {
                        message, inputs, ..
                    } => (Refusal::NeedsConstant, message, inputs),
                    Error::Unsupported { message, .. } | Error::Invalid { message, .. } => {
                        (Refusal::Converter, message, Vec::new())
                    }
                    other => (Refusal::Converter, other.to_string(), Vec::new()),
                };
                let message = message
                    .strip_prefix(&prefix)
                    .map_or_else(|| message.clone(), str::to_string);
                (class, message, freeze)
            })
        } else {
            None
        };
        let convertible = refused.is_none();
        let (refusal, reason, freeze) = match refused {
            Some((class, why, freeze)) => {
                let upstream =
                    format!("node '{}' ({}) does not convert", node.label, proto.op_type);
                for out in proto.output.iter().filter(|o| !o.is_empty()) {
                    unreadable.insert(out.clone(), (Refusal::Upstream, upstream.clone()));
                }
                (Some(class), Some(why), freeze)
            }
            None => (None, None, Vec::new()),
        };
        nodes.push(NodeCoverage {
            name: node.label.clone(),
            op_type: proto.op_type.clone(),
            domain: proto.domain.clone(),
            convertible,
            refusal,
            reason,
            freeze,
        });
    }
    Ok(Coverage {
        path: path.to_path_buf(),
        target: target.to_string(),
        total: nodes.len(),
        convertible: nodes.iter().filter(|n| n.convertible).count(),
        nodes,
    })
}
