//! The conversion driver: graph inputs, the per-node conversion context, graph outputs.

use super::node::Node;
use super::reader::ExternalData;
use super::tensor::{elem_type_name, ir_dtype, to_ir_tensor};
use super::{ops, OnnxOptions};
use crate::frontend::emitter::{Emit, Emitter};
use crate::frontend::{input_shapes, BOOL_FEATURE};
use crate::ir::{
    element_count, sanitize_name, Builder, DType, Dim, Function, NameTable, Program, ShapeSet,
    Target, Tensor, TensorType, Var,
};
use crate::proto::onnx::{
    tensor_proto::DataType, tensor_shape_proto::dimension, type_proto, GraphProto, ModelProto,
    NodeProto, TensorProto, ValueInfoProto,
};
use crate::Error;
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// Oldest default-domain opset the converters handle (opset 6 differs from 7 only in the
/// legacy `broadcast`/`axis` attributes of binary ops, which are checked per node).
pub const MIN_OPSET: i64 = 6;

/// Newest default-domain opset whose operator definitions the converters follow; a model
/// importing a newer one is converted with a warning (see [`opset_warning`]).
pub const MAX_OPSET: i64 = 23;

/// The warning for a model at `path` importing default-domain opset `opset` when that is newer
/// than [`MAX_OPSET`]: its operators may have changed meaning since.
pub fn opset_warning(opset: i64, path: &Path) -> Option<String> {
    (opset > MAX_OPSET).then(|| {
        format!(
            "{}: ai.onnx opset {opset} is newer than the newest supported ({MAX_OPSET}); \
             converted with the opset-{MAX_OPSET} operator definitions, check the result \
             (verification runs the same definitions)",
            path.display()
        )
    })
}

/// What a node converter works with: the builder, the ONNX → IR name map and the model's
/// initializers, plus helpers that turn problems into errors naming the current node.
pub struct Ctx<'m> {
    /// The builder, the model path and the current node (the shared helpers).
    pub e: Emitter,
    /// The model's default-domain opset version.
    pub opset: i64,
    initializers: HashMap<&'m str, &'m TensorProto>,
    data: ExternalData,
    /// ONNX tensor name → IR variable name.
    values: HashMap<String, String>,
    /// ONNX tensor names read by some node or returned by the graph.
    consumed: HashSet<&'m str>,
    /// Largest size each symbolic dimension can take, with the node that limits it.
    limits: BTreeMap<String, (usize, String)>,
    /// Graph inputs and initializers declared BFLOAT16 (the IR holds them as fp32).
    bfloat16: HashSet<&'m str>,
    /// Deployment target of the program being built.
    pub target: Target,
    /// The graph being converted.
    graph: &'m GraphProto,
    /// What the conversion went on despite, with how many nodes each applies to.
    warnings: BTreeMap<String, usize>,
}

impl Emit for Ctx<'_> {
    fn emitter(&self) -> &Emitter {
        &self.e
    }

    fn emitter_mut(&mut self) -> &mut Emitter {
        &mut self.e
    }
}

impl<'m> Ctx<'m> {
    /// The IR variable holding ONNX tensor `name`, materialising an initializer as a `const`
    /// on first use.
    fn resolve(&mut self, name: &str) -> Result<String, Error> {
        if let Some(var) = self.values.get(name) {
            return Ok(var.clone());
        }
        let Some(&init) = self.initializers.get(name) else {
            return Err(self.invalid(format!(
                "input '{name}' is not produced by any earlier node"
            )));
        };
        let tensor = to_ir_tensor(init, &self.e.path, &mut self.data)?;
        let var = self.e.b.constant(name, tensor);
        self.values.insert(name.to_string(), var.clone());
        Ok(var)
    }

    /// The variable bound to required input `i` of `node`.
    pub fn input(&mut self, node: &Node, i: usize) -> Result<String, Error> {
        match node.input_name(i) {
            Some(name) => self.resolve(name),
            None => Err(self.invalid(format!("required input #{i} is missing"))),
        }
    }

    /// The variable bound to optional input `i`, None when it is omitted.
    pub fn opt_input(&mut self, node: &Node, i: usize) -> Result<Option<String>, Error> {
        node.input_name(i)
            .map(|name| self.resolve(name))
            .transpose()
    }

    /// The constant value of input `i` when it is present and constant (an initializer is read
    /// without emitting a `const` op); None when omitted or computed at run time.
    pub fn try_const_input(&mut self, node: &Node, i: usize) -> Result<Option<Tensor>, Error> {
        let Some(name) = node.input_name(i) else {
            return Ok(None);
        };
        if let Some(var) = self.values.get(name) {
            return Ok(self.e.b.const_value(var).cloned());
        }
        match self.initializers.get(name) {
            Some(&init) => to_ir_tensor(init, &self.e.path, &mut self.data).map(Some),
            None => Err(self.invalid(format!(
                "input '{name}' is not produced by any earlier node"
            ))),
        }
    }

    /// The constant value of input `i` (None when omitted); an error naming the input when it
    /// is computed at run time (see [`Ctx::needs_constant`]).
    pub fn const_input(&mut self, node: &Node, i: usize) -> Result<Option<Tensor>, Error> {
        match self.try_const_input(node, i)? {
            Some(t) => Ok(Some(t)),
            None if node.input_name(i).is_none() => Ok(None),
            None => Err(self.needs_constant(node, i, "")),
        }
    }

    /// The error for input `i` of `node` computed at run time where it must be a constant
    /// (`detail` says what else would do, e.g. " (or computed from input dimensions only)"):
    /// [`Error::NeedsConstant`] with the graph inputs it is computed from, which `--freeze`
    /// can bind; plain Unsupported when it comes from no graph input.
    pub fn needs_constant(&self, node: &Node, i: usize, detail: &str) -> Error {
        let name = node.input_name(i).unwrap_or_default();
        let inputs = self.graph_inputs_feeding(name);
        if inputs.is_empty() {
            return self.unsupported(format!("input '{name}' must be a constant{detail}"));
        }
        let quoted: Vec<String> = inputs.iter().map(|n| format!("'{n}'")).collect();
        Error::NeedsConstant {
            path: self.e.path.clone(),
            message: format!(
                "{}: input '{name}' must be a constant{detail}; it is computed from graph input {}, \
                 which --freeze NAME=FILE.npy binds to a value",
                self.e.current,
                quoted.join(", ")
            ),
            inputs,
        }
    }

    /// The graph inputs (not initializers, not frozen) ONNX tensor `name` is computed from, in
    /// graph input order.
    fn graph_inputs_feeding(&self, name: &str) -> Vec<String> {
        let producers: HashMap<&str, &NodeProto> = self
            .graph
            .node
            .iter()
            .flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n)))
            .collect();
        let mut seen: HashSet<&str> = HashSet::new();
        let mut stack = vec![name];
        while let Some(t) = stack.pop() {
            if t.is_empty() || !seen.insert(t) {
                continue;
            }
            // Shape and Size read their input's dimensions, which --freeze does not fix.
            if let Some(n) = producers
                .get(t)
                .filter(|n| !matches!(n.op_type.as_str(), "Shape" | "Size"))
            {
                stack.extend(n.input.iter().map(String::as_str));
            }
        }
        self.graph
            .input
            .iter()
            .map(|v| v.name.as_str())
            .filter(|n| seen.contains(n) && !self.initializers.contains_key(n))
            .filter(|n| {
                self.values
                    .get(*n)
                    .is_some_and(|v| self.e.b.const_value(v).is_none())
            })
            .map(str::to_string)
            .collect()
    }

    /// Records that symbolic dimension `dim` can be at most `max` for the model to compute
    /// (e.g. it slices a table of `max` rows): the flexible sizes are narrowed to it.
    pub fn limit_dim(&mut self, dim: &str, max: usize) {
        let current = &self.e.current;
        self.limits
            .entry(dim.to_string())
            .and_modify(|l| {
                if max < l.0 {
                    *l = (max, current.clone());
                }
            })
            .or_insert_with(|| (max, current.clone()));
    }

    /// Converts a tensor stored in the model (e.g. a `Constant` attribute) to an IR tensor.
    pub fn tensor(&mut self, t: &TensorProto) -> Result<Tensor, Error> {
        to_ir_tensor(t, &self.e.path, &mut self.data)
    }

    /// The ONNX element type of input `i` of `node` as the model declares it: an initializer's or
    /// `Constant`'s data type, or a graph input's, output's or `value_info`'s declared type.
    pub fn elem_type(&self, node: &Node, i: usize) -> Option<DataType> {
        let name = node.input_name(i)?;
        let declared = |v: &ValueInfoProto| match v.r#type.as_ref()?.value.as_ref()? {
            type_proto::Value::TensorType(t) => Some(t.elem_type),
            _ => None,
        };
        let g = self.graph;
        let elem = if let Some(t) = self.initializers.get(name) {
            Some(t.data_type)
        } else if let Some(v) = g
            .input
            .iter()
            .chain(&g.value_info)
            .chain(&g.output)
            .find(|v| v.name == name)
        {
            declared(v)
        } else {
            g.node
                .iter()
                .find(|n| n.op_type == "Constant" && n.output.first().is_some_and(|o| o == name))
                .and_then(|n| n.attribute.iter().find(|a| a.name == "value"))
                .and_then(|a| a.t.as_ref())
                .map(|t| t.data_type)
        };
        elem.and_then(|e| DataType::try_from(e).ok())
    }

    /// The nodes reading ONNX tensor `name`, and whether the graph returns it.
    pub fn consumers(&self, name: &str) -> (Vec<&'m NodeProto>, bool) {
        let nodes = self
            .graph
            .node
            .iter()
            .filter(|n| n.input.iter().any(|i| i == name))
            .collect();
        (nodes, self.graph.output.iter().any(|o| o.name == name))
    }

    /// Records a warning about the conversion (the same text from several nodes is counted).
    pub fn warn(&mut self, message: impl Into<String>) {
        *self.warnings.entry(message.into()).or_default() += 1;
    }

    /// True when input `i` of `node` is a graph input or initializer declared BFLOAT16.
    pub fn is_bfloat16(&self, node: &Node, i: usize) -> bool {
        node.input_name(i)
            .is_some_and(|name| self.bfloat16.contains(name))
    }

    /// The dimensions of `ty`; Unsupported when one is symbolic.
    pub fn shape_of(&self, ty: &TensorType) -> Result<Vec<usize>, Error> {
        ty.static_shape()
            .ok_or_else(|| self.unsupported(format!("needs a static shape, got {ty}")))
    }

    /// The name for the op producing output `i` of `node`: the ONNX tensor name.
    pub fn out_name(&self, node: &Node, i: usize) -> String {
        node.output_name(i)
            .map_or_else(|| format!("{}_out{i}", node.label), str::to_string)
    }

    /// Binds output `i` of `node` to variable `var`.
    pub fn set_output(&mut self, node: &Node, i: usize, var: String) {
        if let Some(name) = node.output_name(i) {
            self.values.insert(name.to_string(), var);
        }
    }

    /// True when output `i` of `node` exists and is read by a node or returned by the graph.
    pub fn output_used(&self, node: &Node, i: usize) -> bool {
        node.output_name(i)
            .is_some_and(|n| self.consumed.contains(n))
    }

    /// Fails unless every output from `first` on is unused, naming what it is.
    pub fn require_unused_outputs(
        &self,
        node: &Node,
        first: usize,
        what: &str,
    ) -> Result<(), Error> {
        for i in first..node.proto.output.len() {
            if self.output_used(node, i) {
                return Err(self.unsupported(format!(
                    "output #{i} ({what}) is used, which mlpack cannot convert"
                )));
            }
        }
        Ok(())
    }

    /// Converts an attribute-access problem into an error naming the node.
    pub fn attr<T>(&self, r: Result<T, String>) -> Result<T, Error> {
        r.map_err(|m| self.invalid(m))
    }
}

/// The default-domain opset the model imports.
pub fn default_opset(model: &ModelProto, path: &Path) -> Result<i64, Error> {
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| Error::invalid(path, "the model imports no ai.onnx opset"))?;
    if opset < MIN_OPSET {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            message: format!(
                "ai.onnx opset {opset} is older than the oldest supported ({MIN_OPSET})"
            ),
        });
    }
    Ok(opset)
}

/// Refuses a graph in which two nodes write the same value name (ONNX graphs are in SSA
/// form), naming both nodes.
pub(super) fn check_single_producers(graph: &GraphProto, path: &Path) -> Result<(), Error> {
    let mut producers: HashMap<&str, String> = HashMap::new();
    for proto in &graph.node {
        for output in proto.output.iter().filter(|o| !o.is_empty()) {
            let label = Node::new(proto).label;
            if let Some(first) = producers.insert(output, label.clone()) {
                return Err(Error::invalid(
                    path,
                    format!("nodes '{first}' and '{label}' both write '{output}'"),
                ));
            }
        }
    }
    Ok(())
}

/// Why node `proto` has no converter, as its operator key: `Op`, `Op [domain]`, with the
/// reason when it is no inference op (`Op (a training loss, not an inference op)`); None when
/// it has one.
pub(super) fn missing_converter(proto: &NodeProto) -> Option<String> {
    if ops::converter_in(&proto.domain, &proto.op_type).is_some() {
        return None;
    }
    let default_domain = proto.domain.is_empty() || proto.domain == "ai.onnx";
    let key = if default_domain {
        proto.op_type.clone()
    } else {
        format!("{} [{}]", proto.op_type, proto.domain)
    };
    Some(match not_for_inference(&proto.domain, &proto.op_type) {
        Some(reason) => format!("{key} ({reason})"),
        None => key,
    })
}

/// One `Unsupported` error listing every node without a converter, grouped by op type.
fn check_supported(graph: &GraphProto, path: &Path) -> Result<(), Error> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for proto in &graph.node {
        let Some(key) = missing_converter(proto) else {
            continue;
        };
        let label = Node::new(proto).label;
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, names)) => names.push(label),
            None => groups.push((key, vec![label])),
        }
    }
    if groups.is_empty() {
        return Ok(());
    }
    Err(Error::Unsupported {
        path: path.to_path_buf(),
        message: crate::frontend::unsupported_listing(&groups),
    })
}

/// Why an op has no Core ML conversion by design: training ops and losses compute gradients,
/// optimizer steps or losses, not a model's inference outputs.
pub(super) fn not_for_inference(domain: &str, op_type: &str) -> Option<&'static str> {
    const LOSSES: &[&str] = &["NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss"];
    if domain == "ai.onnx.preview.training" {
        Some("a training op, not an inference op")
    } else if (domain.is_empty() || domain == "ai.onnx") && LOSSES.contains(&op_type) {
        Some("a training loss, not an inference op")
    } else {
        None
    }
}

/// The declared element type and dims of a graph input (None: no declared shape).
pub(super) fn declared_input(
    v: &ValueInfoProto,
    path: &Path,
) -> Result<(i32, Option<Vec<input_shapes::Declared>>), Error> {
    let unsupported = |m: String| Error::Unsupported {
        path: path.to_path_buf(),
        message: format!("input '{}': {m}", v.name),
    };
    match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => {
            let dims = t.shape.as_ref().map(|s| {
                s.dim
                    .iter()
                    .map(|d| match &d.value {
                        Some(dimension::Value::DimValue(n)) if *n > 0 => Ok(*n as usize),
                        Some(dimension::Value::DimParam(p)) if !p.is_empty() => {
                            Err(Some(p.clone()))
                        }
                        _ => Err(None),
                    })
                    .collect()
            });
            Ok((t.elem_type, dims))
        }
        Some(_) => Err(unsupported(
            "only tensor inputs are supported (this one is a sequence, map or optional)".into(),
        )),
        None => Err(unsupported("its type is not declared".into())),
    }
}

/// The declared dims of an input as shown in errors: `[1,seq]`.
fn shown_shape(dims: &[input_shapes::Declared]) -> String {
    let shown: Vec<String> = dims
        .iter()
        .map(|d| match d {
            Ok(n) => n.to_string(),
            Err(Some(label)) => label.clone(),
            Err(None) => "?".into(),
        })
        .collect();
    format!("[{}]", shown.join(","))
}

/// How to fix or free an unnamed dynamic dim of input `v`, with `--input-shape`.
fn unnamed_dynamic_hint(v: &ValueInfoProto, dims: &[input_shapes::Declared]) -> String {
    let fixed: Vec<String> = dims
        .iter()
        .map(|d| d.as_ref().map_or(1, |n| *n).to_string())
        .collect();
    let ranged: Vec<String> = dims
        .iter()
        .map(|d| d.as_ref().map_or("1..512".to_string(), |n| n.to_string()))
        .collect();
    format!(
        "input '{}' has an unnamed dynamic dimension (shape {}); fix it with --input-shape {}={}, or make it flexible with --input-shape {}={}",
        v.name,
        shown_shape(dims),
        v.name,
        fixed.join(","),
        v.name,
        ranged.join(",")
    )
}

/// How to fix or free named dynamic dimension `label`, shared by `inputs` (name, shape).
fn named_dynamic_hint(label: &str, inputs: &[(String, String)]) -> String {
    let example = if label.to_ascii_lowercase().contains("batch") {
        1
    } else {
        128
    };
    let fix = format!(
        "fix it with --dim {label}={example}, or make it flexible with --dim {label}=1..512"
    );
    match inputs {
        [(name, shape)] => {
            format!("input '{name}' has dynamic dimension '{label}' (shape {shape}); {fix}")
        }
        _ => {
            let names: Vec<String> = inputs.iter().map(|(n, _)| format!("'{n}'")).collect();
            let shapes: Vec<&str> = inputs.iter().map(|(_, s)| s.as_str()).collect();
            format!(
                "inputs {} have dynamic dimension '{label}' (shapes {}); {fix}",
                names.join(", "),
                shapes.join(", ")
            )
        }
    }
}

/// Refuses input `name` when a shape it takes holds more than [`crate::ir::MAX_ELEMENTS`] elements,
/// before anything is allocated for it: an invalid model when its declared sizes alone do, a
/// usage error naming the flags when `--input-shape`/`--dim` sizes do.
fn check_input_size(
    name: &str,
    declared: &[input_shapes::Declared],
    dims: &[Dim],
    set: Option<&ShapeSet>,
    path: &Path,
) -> Result<(), Error> {
    let fixed: Vec<usize> = declared.iter().map(|d| *d.as_ref().unwrap_or(&1)).collect();
    if let Err(m) = element_count(&fixed) {
        return Err(Error::invalid(
            path,
            format!(
                "input '{name}' declares shape {}: {m}",
                shown_shape(declared)
            ),
        ));
    }
    let shapes: Vec<Vec<usize>> = match set {
        Some(ShapeSet::Enumerated(shapes)) => shapes.clone(),
        Some(ShapeSet::Ranges(r)) => vec![r.iter().map(|&(lo, hi)| hi.unwrap_or(lo)).collect()],
        None => vec![dims.iter().map(|d| d.fixed().unwrap_or(1)).collect()],
    };
    for shape in shapes {
        if let Err(m) = element_count(&shape) {
            return Err(Error::Usage(format!(
                "--input-shape/--dim: input '{name}' would take shape {shape:?}: {m}"
            )));
        }
    }
    Ok(())
}

/// The values of the graph inputs bound to constants (`--freeze`) by ONNX name, each checked
/// against its input: named once, of the declared element kind and shape. Usage errors name
/// the flag and the input.
fn frozen_inputs(
    graph: &GraphProto,
    options: &OnnxOptions,
    path: &Path,
) -> Result<Vec<(String, Tensor)>, Error> {
    let init_names: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&ValueInfoProto> = graph
        .input
        .iter()
        .filter(|v| !init_names.contains(v.name.as_str()))
        .collect();
    let mut frozen: Vec<(String, Tensor)> = Vec::with_capacity(options.frozen.len());
    for f in &options.frozen {
        let usage = |m: String| Error::Usage(format!("--freeze {}: {m}", f.name));
        let Some(v) = inputs
            .iter()
            .find(|v| v.name == f.name || sanitize_name(&v.name) == f.name)
        else {
            let known: Vec<&str> = inputs.iter().map(|v| v.name.as_str()).collect();
            return Err(usage(format!(
                "not an input of the model (inputs: {})",
                known.join(", ")
            )));
        };
        if frozen.iter().any(|(name, _)| *name == v.name) {
            return Err(usage(format!("input '{}' is frozen twice", v.name)));
        }
        if options
            .input_shapes
            .iter()
            .any(|s| s.name == v.name || s.name == sanitize_name(&v.name))
        {
            return Err(usage(format!(
                "input '{}' also has an --input-shape (a frozen input takes its value's shape)",
                v.name
            )));
        }
        let (elem_type, declared) = declared_input(v, path)?;
        let kind = |d: DType| match d {
            DType::Bool => "bool",
            d if d.is_float() => "float",
            _ => "integer",
        };
        match ir_dtype(elem_type) {
            Some(d) if d == f.value.dtype() => {}
            _ => {
                return Err(usage(format!(
                    "the value is {} but input '{}' is declared {}",
                    kind(f.value.dtype()),
                    v.name,
                    elem_type_name(elem_type)
                )))
            }
        }
        if let Some(dims) = declared {
            let shape = f.value.shape();
            let fits = dims.len() == shape.len()
                && dims
                    .iter()
                    .zip(shape)
                    .all(|(d, &n)| !matches!(d, Ok(d) if *d != n));
            if !fits {
                return Err(usage(format!(
                    "the value has shape {shape:?} but input '{}' is declared {}",
                    v.name,
                    shown_shape(&dims)
                )));
            }
        }
        frozen.push((v.name.clone(), f.value.clone()));
    }
    Ok(frozen)
}

/// (ONNX name, function input) pairs, and the accepted shapes of flexible inputs by name.
type FunctionInputs = (Vec<(String, Var)>, BTreeMap<String, ShapeSet>);

/// The function inputs: graph inputs that are neither initializers nor in `skip`, with
/// `--input-shape` and `--dim` applied; every dynamic dimension must be fixed or made
/// flexible, and the accepted shapes of flexible inputs are returned by function input name.
pub(super) fn function_inputs(
    graph: &GraphProto,
    options: &OnnxOptions,
    skip: &HashSet<&str>,
    path: &Path,
) -> Result<FunctionInputs, Error> {
    let init_names: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&ValueInfoProto> = graph
        .input
        .iter()
        .filter(|v| !init_names.contains(v.name.as_str()))
        .filter(|v| !skip.contains(v.name.as_str()))
        .collect();
    for shape in &options.input_shapes {
        let name = &shape.name;
        if !inputs
            .iter()
            .any(|v| v.name == *name || sanitize_name(&v.name) == *name)
        {
            let known: Vec<&str> = inputs.iter().map(|v| v.name.as_str()).collect();
            return Err(Error::Usage(format!(
                "--input-shape names '{name}', which is not an input of the model (inputs: {})",
                known.join(", ")
            )));
        }
    }
    let mut names = NameTable::default();
    let mut result = Vec::with_capacity(inputs.len());
    let mut flexible = BTreeMap::new();
    let mut dynamic = Vec::new();
    // Named dynamic dimensions, in order of first use, with the inputs (name, shape) using them.
    let mut named: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let mut params: Vec<String> = Vec::new();
    for v in inputs {
        let (elem_type, declared) = declared_input(v, path)?;
        let dtype = ir_dtype(elem_type).ok_or_else(|| Error::Unsupported {
            path: path.to_path_buf(),
            message: format!(
                "input '{}' has element type {}, which is not supported",
                v.name,
                elem_type_name(elem_type)
            ),
        })?;
        let given = options
            .input_shapes
            .iter()
            .find(|s| s.name == v.name || s.name == sanitize_name(&v.name))
            .map(|s| &s.shape);
        let declared_dims = declared.clone().unwrap_or_default();
        params.extend(
            declared_dims
                .iter()
                .filter_map(|d| d.clone().err().flatten()),
        );
        if declared.is_none() && given.is_none() {
            dynamic.push(format!(
                "input '{}' has no declared shape; give it with --input-shape {}=d0,d1,...",
                v.name, v.name
            ));
            continue;
        }
        let Some((dims, set)) =
            input_shapes::resolve(&v.name, &declared_dims, given, &options.dims)
                .map_err(Error::Usage)?
        else {
            let labels: Vec<&String> = declared_dims
                .iter()
                .filter_map(|d| d.as_ref().err().and_then(Option::as_ref))
                .collect();
            if labels.len() < declared_dims.iter().filter(|d| d.is_err()).count() {
                dynamic.push(unnamed_dynamic_hint(v, &declared_dims));
            }
            for label in labels {
                let users = match named.iter_mut().find(|(l, _)| l == label) {
                    Some((_, users)) => users,
                    None => {
                        named.push((label.clone(), Vec::new()));
                        &mut named.last_mut().expect("just pushed").1
                    }
                };
                if !users.iter().any(|(n, _)| *n == v.name) {
                    users.push((v.name.clone(), shown_shape(&declared_dims)));
                }
            }
            continue;
        };
        check_input_size(&v.name, &declared_dims, &dims, set.as_ref(), path)?;
        let var_name = names.fresh(&v.name);
        if let Some(set) = set {
            flexible.insert(var_name.clone(), set);
        }
        result.push((
            v.name.clone(),
            Var::new(var_name, TensorType { dtype, shape: dims }),
        ));
    }
    if let Some(unknown) = options.dims.iter().find(|d| !params.contains(&d.name)) {
        params.sort();
        params.dedup();
        return Err(Error::Usage(format!(
            "--dim names '{}', which is no input dimension of the model (named dimensions: {})",
            unknown.name,
            if params.is_empty() {
                "none".to_string()
            } else {
                params.join(", ")
            }
        )));
    }
    dynamic.extend(
        named
            .iter()
            .map(|(label, users)| named_dynamic_hint(label, users)),
    );
    if !dynamic.is_empty() {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            message: dynamic.join("; "),
        });
    }
    Ok((result, flexible))
}

/// The conversion context of `graph`: a builder over the function `inputs` (bool ones typed
/// as int32 features and cast to bool right after), with the `frozen` inputs bound to constants.
pub(super) fn begin<'m>(
    graph: &'m GraphProto,
    model_map: Bytes,
    path: &Path,
    opset: i64,
    target: Target,
    inputs: &[(String, Var)],
    frozen: Vec<(String, Tensor)>,
) -> Result<Ctx<'m>, Error> {
    let mut inputs = inputs.to_vec();
    // Bool inputs and outputs are int32 features, cast at both ends (see `BOOL_FEATURE`).
    let bool_inputs: Vec<String> = inputs
        .iter_mut()
        .filter(|(_, v)| v.ty.dtype == DType::Bool)
        .map(|(onnx, v)| {
            v.ty = v.ty.with_dtype(BOOL_FEATURE);
            onnx.clone()
        })
        .collect();
    let mut consumed: HashSet<&str> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter().map(String::as_str))
        .collect();
    consumed.extend(graph.output.iter().map(|o| o.name.as_str()));
    let mut ctx = Ctx {
        e: Emitter::new(
            Builder::new("main", inputs.iter().map(|(_, v)| v.clone()).collect()),
            path.to_path_buf(),
        ),
        opset,
        initializers: graph
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect(),
        data: ExternalData::new(path, model_map),
        values: inputs
            .iter()
            .map(|(onnx, v)| (onnx.clone(), v.name.clone()))
            .collect(),
        consumed,
        limits: BTreeMap::new(),
        bfloat16: graph
            .input
            .iter()
            .filter(
                |v| matches!(declared_input(v, path), Ok((t, _)) if t == DataType::Bfloat16 as i32),
            )
            .map(|v| v.name.as_str())
            .chain(
                graph
                    .initializer
                    .iter()
                    .filter(|t| t.data_type == DataType::Bfloat16 as i32)
                    .map(|t| t.name.as_str()),
            )
            .collect(),
        target,
        graph,
        warnings: BTreeMap::new(),
    };
    for (name, value) in frozen {
        let var = ctx.e.b.constant(&name, value);
        ctx.values.insert(name, var);
    }
    for name in &bool_inputs {
        let var = ctx.values[name].clone();
        let cast = ctx.cast(&var, DType::Bool, &format!("{var}_bool"))?;
        ctx.values.insert(name.clone(), cast);
    }
    Ok(ctx)
}

/// Converts a decoded model into an IR program (function `main`); `model_map` is the map of the
/// model file that its payloads are slices of (see [`super::reader::map_model`]).
pub fn convert(
    model: &ModelProto,
    model_map: Bytes,
    path: &Path,
    options: &OnnxOptions,
) -> Result<Program, Error> {
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| Error::invalid(path, "the model has no graph"))?;
    check_supported(graph, path)?;
    let opset = default_opset(model, path)?;
    check_single_producers(graph, path)?;
    let frozen = frozen_inputs(graph, options, path)?;
    let frozen_names: Vec<String> = frozen.iter().map(|(name, _)| name.clone()).collect();
    let skip: HashSet<&str> = frozen_names.iter().map(String::as_str).collect();
    let (inputs, input_shapes) = function_inputs(graph, options, &skip, path)?;
    let mut ctx = begin(
        graph,
        model_map,
        path,
        opset,
        options.target,
        &inputs,
        frozen,
    )?;
    for proto in &graph.node {
        let node = Node::new(proto);
        ctx.e.current = format!("node '{}' ({})", node.label, node.op_type());
        ctx.e.b.origin = Some(node.label.clone());
        let convert = ops::converter_in(&proto.domain, node.op_type())
            .ok_or_else(|| Error::Internal(format!("no converter for {}", node.op_type())))?;
        convert(&mut ctx, &node)?;
    }
    ctx.e.b.origin = None;
    ctx.e.current = "graph outputs".into();
    let input_vars: HashSet<String> = inputs.iter().map(|(_, v)| v.name.clone()).collect();
    let mut outputs: Vec<(String, String)> = Vec::with_capacity(graph.output.len());
    for out in &graph.output {
        let desired = sanitize_name(&out.name);
        if !ctx.values.contains_key(&out.name) && !ctx.initializers.contains_key(out.name.as_str())
        {
            return Err(Error::invalid(
                path,
                format!("graph output '{}' is not produced by any node", out.name),
            ));
        }
        let mut var = ctx.resolve(&out.name)?;
        if ctx.ty(&var)?.dtype == DType::Bool {
            var = ctx.cast(&var, BOOL_FEATURE, &desired)?;
        }
        let reused = outputs.iter().any(|(_, v)| *v == var);
        if input_vars.contains(&var) || ctx.const_value(&var).is_some() || reused {
            ctx.e.b.fold_constants = false;
            var = ctx.op1("identity", &desired, &[("x", &var)])?;
            ctx.e.b.fold_constants = true;
        }
        outputs.push((desired, var));
    }
    let mut function = ctx
        .e
        .b
        .finish(outputs.iter().map(|(_, v)| v.clone()).collect());
    let limited = apply_limits(&inputs, input_shapes, &ctx.limits)?;
    function.input_shapes = limited.0;
    name_outputs_after_graph(&mut function, &outputs);
    remove_dead_ops(&mut function);
    reject_empty_tensors(&function, path)?;
    let mut metadata = BTreeMap::new();
    let file_name = path.file_name().map_or_else(
        || path.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    );
    metadata.insert("mlpack.source".to_string(), file_name);
    metadata.insert(OPSET_METADATA_KEY.to_string(), opset.to_string());
    if !frozen_names.is_empty() {
        metadata.insert(FROZEN_METADATA_KEY.to_string(), frozen_names.join(","));
    }
    if !limited.1.is_empty() {
        metadata.insert(LIMITS_METADATA_KEY.to_string(), limited.1.join("; "));
    }
    if !ctx.warnings.is_empty() {
        let notes: Vec<String> = ctx
            .warnings
            .iter()
            .map(|(w, n)| format!("{w} ({n} node{})", if *n == 1 { "" } else { "s" }))
            .collect();
        metadata.insert(WARNINGS_METADATA_KEY.to_string(), notes.join("; "));
    }
    Ok(Program {
        target: options.target,
        functions: vec![function],
        metadata,
        description: Default::default(),
    })
}

/// Metadata key of the default-domain opset the source model imports.
pub const OPSET_METADATA_KEY: &str = "mlpack.onnx_opset";

/// Metadata key of the graph inputs bound to constants (`--freeze`), joined with `,`.
pub const FROZEN_METADATA_KEY: &str = "mlpack.onnx_frozen_inputs";

/// Metadata key of the warnings the conversion went on despite (see [`Ctx::warn`]), joined
/// with `"; "`.
pub const WARNINGS_METADATA_KEY: &str = "mlpack.onnx_warnings";

/// Metadata key of the notes on flexible sizes the model limits (see [`Ctx::limit_dim`]).
pub const LIMITS_METADATA_KEY: &str = "mlpack.flexible_limits";

/// The accepted shapes of flexible inputs narrowed to the limits the conversion found on
/// their symbolic dimensions, with a note per narrowed dimension. A limit below every
/// requested size is a usage error naming the node.
fn apply_limits(
    inputs: &[(String, Var)],
    mut sets: BTreeMap<String, ShapeSet>,
    limits: &BTreeMap<String, (usize, String)>,
) -> Result<(BTreeMap<String, ShapeSet>, Vec<String>), Error> {
    let mut notes: Vec<String> = Vec::new();
    for (_, var) in inputs {
        let Some(set) = sets.get_mut(&var.name) else {
            continue;
        };
        for (i, d) in var.ty.shape.iter().enumerate() {
            let Dim::Symbol(s) = d else { continue };
            let Some((max, node)) = limits.get(s) else {
                continue;
            };
            let narrowed = match set.limit(i, *max) {
                Some(n) => n,
                None => {
                    return Err(Error::Usage(format!(
                        "--dim {s}: {node} takes {s} up to {max}, every requested size of input '{}' is larger ({set})",
                        var.name
                    )))
                }
            };
            if narrowed != *set {
                let note =
                    format!("{s} at most {max}: {node} slices an axis of size {max} up to {s}");
                if !notes.contains(&note) {
                    notes.push(note);
                }
                *set = narrowed;
            }
        }
    }
    Ok((sets, notes))
}

/// Renames each output variable to its graph output's sanitised name when an intermediate
/// variable took that name first (the intermediate gets a fresh one).
fn name_outputs_after_graph(function: &mut Function, outputs: &[(String, String)]) {
    let mut names = NameTable::default();
    for v in &function.inputs {
        names.reserve(&v.name);
    }
    for op in &function.block.operations {
        names.reserve(&op.name);
        op.outputs.iter().for_each(|o| names.reserve(&o.name));
    }
    let inputs: HashSet<String> = function.inputs.iter().map(|v| v.name.clone()).collect();
    for (desired, var) in outputs {
        if desired == var || inputs.contains(desired) || function.block.outputs.contains(desired) {
            continue;
        }
        if names.contains(desired) {
            let displaced = names.fresh(desired);
            rename_var(function, desired, &displaced);
        }
        names.reserve(desired);
        rename_var(function, var, desired);
    }
}

/// Renames variable `from` (its definition, its op's name and every use) to `to`.
fn rename_var(function: &mut Function, from: &str, to: &str) {
    for op in &mut function.block.operations {
        if op.name == from {
            op.name = to.to_string();
        }
        for out in &mut op.outputs {
            if out.name == from {
                out.name = to.to_string();
            }
        }
    }
    function.block.rename_uses(from, to);
}

/// Fails, naming the source node, when an op computes from or produces a value with no
/// elements once dead ops are gone: Core ML has no empty tensors. Empty constants that only
/// fed folded shape computations have been removed by then; one returned as it is (a graph
/// output, through its `identity`) is written as before.
fn reject_empty_tensors(function: &Function, path: &Path) -> Result<(), Error> {
    let empty = |ty: &TensorType| ty.shape.iter().any(|d| d.fixed() == Some(0));
    let mut types: HashMap<&str, &TensorType> = function
        .inputs
        .iter()
        .map(|v| (v.name.as_str(), &v.ty))
        .collect();
    for op in &function.block.operations {
        let returned = op.op_type == "identity"
            && op
                .outputs
                .iter()
                .all(|o| function.block.outputs.contains(&o.name));
        if op.op_type != "const" && !returned {
            let read = op
                .input_vars()
                .find(|v| types.get(v).is_some_and(|t| empty(t)));
            let made = op.outputs.iter().find(|o| empty(&o.ty));
            let problem = match (read, made) {
                (Some(v), _) => Some(format!("reads '{v}' of type {}", types[v])),
                (None, Some(o)) => Some(format!("makes '{}' of type {}", o.name, o.ty)),
                (None, None) => None,
            };
            if let Some(problem) = problem {
                let node = op.origin.as_deref().map_or_else(
                    || "the graph outputs".to_string(),
                    |n| format!("node '{n}'"),
                );
                return Err(Error::Unsupported {
                    path: path.to_path_buf(),
                    message: format!(
                        "{node}: op '{}' ({}) {problem}, which has no elements (Core ML has no empty tensors)",
                        op.name, op.op_type
                    ),
                });
            }
        }
        types.extend(op.outputs.iter().map(|o| (o.name.as_str(), &o.ty)));
    }
    Ok(())
}

/// Drops ops none of whose outputs is read (folded shape computations leave such constants).
fn remove_dead_ops(function: &mut Function) {
    let mut live: HashSet<String> = function.block.outputs.iter().cloned().collect();
    let mut keep = vec![false; function.block.operations.len()];
    for (i, op) in function.block.operations.iter().enumerate().rev() {
        if op.outputs.iter().any(|o| live.contains(&o.name)) {
            keep[i] = true;
            live.extend(op.input_vars().map(str::to_string));
        }
    }
    let mut flags = keep.into_iter();
    function
        .block
        .operations
        .retain(|_| flags.next().unwrap_or(true));
}
