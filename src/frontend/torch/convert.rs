//! The conversion driver: the graph signature (user inputs, lifted weights, mutated
//! buffers), the per-node conversion context with typed argument access, the outputs.

use super::ops::{self, ArgDefault, OpEntry};
use super::schema::{
    self, Argument, ConstantValue, ExportedProgram, InputSpec, OptionalTensor, OutputSpec,
    ScalarType, SymIntArg, TensorMeta,
};
use super::TorchOptions;
use crate::frontend::emitter::{Emit, Emitter};
use crate::frontend::input_shapes::{self, Declared, DimSize, NamedDim};
use crate::frontend::BOOL_FEATURE;
use crate::ir::ops::axis::norm_axis;
use crate::ir::{sanitize_name, Builder, DType, Dim, Program, ShapeSet, Tensor, TensorType, Var};
use crate::Error;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// Largest flexible size written for a symbol whose range is larger or unbounded in torch
/// (Core ML sizes are 32-bit); beyond it the range is left open.
const MAX_RANGE_BOUND: i64 = i32::MAX as i64;

/// One node being converted: its arguments by schema name (defaults filled from the op's
/// table entry) and its outputs.
pub struct Call<'n> {
    /// The node.
    pub node: &'n schema::Node,
    /// The op's table entry.
    entry: &'static OpEntry,
    /// The node's name, or its first output's.
    pub label: String,
}

/// An argument as the node gives it, or its schema default.
#[derive(Clone, Copy)]
enum Arg<'n> {
    Given(&'n Argument),
    Default(&'static ArgDefault),
    Missing,
}

/// A symbolic or known integer argument.
#[derive(Clone, Debug)]
pub enum SymVal {
    /// Known at conversion time.
    Known(i64),
    /// A rank-0 int32 variable computed at run time.
    Var(String),
}

impl<'n> Call<'n> {
    /// The torch name of argument `name` when it is a tensor.
    pub fn tensor_name(&self, name: &str) -> Option<String> {
        let arg = self.node.inputs.iter().find(|a| a.name == name)?;
        match &arg.arg {
            Argument::AsTensor(t) => Some(t.name.clone()),
            _ => None,
        }
    }

    fn arg(&self, name: &str) -> Arg<'n> {
        if let Some(a) = self.node.inputs.iter().find(|a| a.name == name) {
            return Arg::Given(&a.arg);
        }
        match self.entry.defaults.iter().find(|(n, _)| *n == name) {
            Some((_, d)) => Arg::Default(d),
            None => Arg::Missing,
        }
    }

    /// Number of outputs the node lists.
    pub fn num_outputs(&self) -> usize {
        self.node.outputs.len()
    }

    /// The name of output `i` (a tensor, or a symbolic int), if it has one.
    pub fn output_name(&self, i: usize) -> Option<&'n str> {
        match self.node.outputs.get(i)? {
            Argument::AsTensor(t) => Some(&t.name),
            Argument::AsSymInt(SymIntArg::AsName(n)) => Some(n),
            Argument::AsTensors(ts) if i == 0 && ts.len() == 1 => Some(&ts[0].name),
            _ => None,
        }
    }

    /// The names of the tensors of a tensor-list output (e.g. `split`).
    pub fn list_output_names(&self) -> Vec<Option<&'n str>> {
        match self.node.outputs.first() {
            Some(Argument::AsTensors(ts)) => ts.iter().map(|t| Some(t.name.as_str())).collect(),
            _ => self
                .node
                .outputs
                .iter()
                .map(|o| match o {
                    Argument::AsTensor(t) => Some(t.name.as_str()),
                    _ => None,
                })
                .collect(),
        }
    }
}

/// What a node converter works with: the builder, the torch-name → IR-variable map, the
/// graph's tensor types, and helpers that read a node's arguments and name it in errors.
pub struct Ctx<'p> {
    /// The builder, the archive path and the current node (the shared helpers).
    pub e: Emitter,
    /// Torch value name → IR variable.
    values: HashMap<String, String>,
    /// Lifted weights not read yet: placeholder name → (state-dict name, tensor).
    weights: HashMap<&'p str, (&'p str, &'p Tensor)>,
    metas: &'p HashMap<String, TensorMeta>,
    /// Slices taken by `slice.Tensor`, by the torch name of the slice: what an in-place
    /// write into the slice writes into.
    views: HashMap<String, SliceView>,
}

/// `base[start:end]` along `axis` (step 1), as `slice.Tensor` took it.
#[derive(Clone, Debug)]
pub struct SliceView {
    /// Torch name of the sliced value.
    pub base: String,
    /// The sliced axis.
    pub axis: usize,
    /// First index (normalised, non-negative).
    pub start: usize,
    /// One past the last index (normalised).
    pub end: usize,
}

impl Emit for Ctx<'_> {
    fn emitter(&self) -> &Emitter {
        &self.e
    }

    fn emitter_mut(&mut self) -> &mut Emitter {
        &mut self.e
    }
}

impl<'p> Ctx<'p> {
    /// The IR variable of torch value `name`, materialising a lifted weight on first use.
    pub fn value(&mut self, name: &str) -> Result<String, Error> {
        if let Some(v) = self.values.get(name) {
            return Ok(v.clone());
        }
        let Some((state_name, tensor)) = self.weights.remove(name) else {
            return Err(self.invalid(format!(
                "value '{name}' is not produced by any earlier node"
            )));
        };
        let var = self
            .e
            .b
            .constant(&sanitize_name(state_name), ir_tensor(tensor));
        self.values.insert(name.to_string(), var.clone());
        Ok(var)
    }

    /// Records that torch value `name` is the slice `view` of another value.
    pub fn record_view(&mut self, name: &str, view: SliceView) {
        self.views.insert(name.to_string(), view);
    }

    /// The slice torch value `name` is, if `slice.Tensor` took it.
    pub fn view(&self, name: &str) -> Option<SliceView> {
        self.views.get(name).cloned()
    }

    /// Binds torch value `name` to variable `var`.
    pub fn bind_name(&mut self, name: &str, var: String) {
        self.values.insert(name.to_string(), var);
    }

    /// Binds output `i` of `call` to `var` (nothing when the output is unnamed).
    pub fn bind(&mut self, call: &Call, i: usize, var: String) {
        if let Some(name) = call.output_name(i) {
            self.values.insert(name.to_string(), var);
        }
    }

    /// The name hint for output `i` of `call`: its torch name.
    pub fn out(&self, call: &Call, i: usize) -> String {
        call.output_name(i)
            .map_or_else(|| format!("{}_out{i}", call.label), str::to_string)
    }

    /// Required tensor argument `name`.
    pub fn tensor(&mut self, call: &Call, name: &str) -> Result<String, Error> {
        match self.opt_tensor(call, name)? {
            Some(v) => Ok(v),
            None => Err(self.invalid(format!("argument '{name}' is missing"))),
        }
    }

    /// Optional tensor argument `name` (None when omitted or None).
    pub fn opt_tensor(&mut self, call: &Call, name: &str) -> Result<Option<String>, Error> {
        match call.arg(name) {
            Arg::Given(Argument::AsTensor(t))
            | Arg::Given(Argument::AsOptionalTensor(OptionalTensor::AsTensor(t))) => {
                self.value(&t.name).map(Some)
            }
            Arg::Given(Argument::AsNone(_))
            | Arg::Given(Argument::AsOptionalTensor(OptionalTensor::AsNone(_)))
            | Arg::Default(ArgDefault::None)
            | Arg::Missing => Ok(None),
            Arg::Given(other) => Err(self.kind_error(name, "a tensor", other)),
            Arg::Default(_) => Err(Error::Internal(format!(
                "{}: the default of '{name}' is not a tensor",
                self.e.current
            ))),
        }
    }

    /// Tensor-list argument `name`.
    pub fn tensors(&mut self, call: &Call, name: &str) -> Result<Vec<String>, Error> {
        match call.arg(name) {
            Arg::Given(Argument::AsTensors(ts)) => ts.iter().map(|t| self.value(&t.name)).collect(),
            Arg::Given(other) => Err(self.kind_error(name, "a tensor list", other)),
            _ => Err(self.invalid(format!("argument '{name}' is missing"))),
        }
    }

    /// Optional-tensor-list argument `name` (`Tensor?[]`).
    pub fn opt_tensors(&mut self, call: &Call, name: &str) -> Result<Vec<Option<String>>, Error> {
        match call.arg(name) {
            Arg::Given(Argument::AsOptionalTensors(ts)) => ts
                .iter()
                .map(|t| match t {
                    OptionalTensor::AsTensor(t) => self.value(&t.name).map(Some),
                    OptionalTensor::AsNone(_) => Ok(None),
                })
                .collect(),
            Arg::Given(Argument::AsTensors(ts)) => {
                ts.iter().map(|t| self.value(&t.name).map(Some)).collect()
            }
            Arg::Given(other) => Err(self.kind_error(name, "a tensor list", other)),
            _ => Err(self.invalid(format!("argument '{name}' is missing"))),
        }
    }

    /// Integer argument `name`, None when it is None (or defaults to None).
    pub fn opt_int(&mut self, call: &Call, name: &str) -> Result<Option<i64>, Error> {
        match self.opt_sym_int(call, name)? {
            None => Ok(None),
            Some(SymVal::Known(n)) => Ok(Some(n)),
            Some(SymVal::Var(v)) => Err(self.unsupported(format!(
                "argument '{name}' is a size computed at run time ('{v}'); fix the dynamic dimensions with --dim"
            ))),
        }
    }

    /// Required integer argument `name`.
    pub fn int_arg(&mut self, call: &Call, name: &str) -> Result<i64, Error> {
        self.opt_int(call, name)?
            .ok_or_else(|| self.invalid(format!("argument '{name}' is missing")))
    }

    /// Integer (possibly symbolic) argument `name`; None when it is None.
    pub fn opt_sym_int(&mut self, call: &Call, name: &str) -> Result<Option<SymVal>, Error> {
        Ok(match call.arg(name) {
            Arg::Given(Argument::AsInt(n)) => Some(SymVal::Known(*n)),
            Arg::Given(Argument::AsBool(b)) => Some(SymVal::Known(*b as i64)),
            Arg::Given(Argument::AsSymInt(s)) => Some(self.sym_val(s)?),
            Arg::Given(Argument::AsNone(_)) | Arg::Default(ArgDefault::None) | Arg::Missing => None,
            Arg::Default(ArgDefault::Int(n)) => Some(SymVal::Known(*n)),
            Arg::Given(other) => return Err(self.kind_error(name, "an integer", other)),
            Arg::Default(_) => {
                return Err(Error::Internal(format!(
                    "{}: the default of '{name}' is not an integer",
                    self.e.current
                )))
            }
        })
    }

    fn sym_val(&mut self, s: &SymIntArg) -> Result<SymVal, Error> {
        match s {
            SymIntArg::AsInt(n) => Ok(SymVal::Known(*n)),
            SymIntArg::AsName(n) => {
                let var = self.value(n)?;
                Ok(match self.e.b.const_value(&var) {
                    Some(t) => SymVal::Known(t.to_i64_vec().first().copied().unwrap_or(0)),
                    None => SymVal::Var(var),
                })
            }
        }
    }

    /// Integer-list argument `name` (a single int stands for a list of it, as in torch's
    /// `int[2]` arguments); every element must be known.
    pub fn ints_arg(&mut self, call: &Call, name: &str) -> Result<Vec<i64>, Error> {
        self.sym_ints(call, name)?
            .into_iter()
            .map(|s| match s {
                SymVal::Known(n) => Ok(n),
                SymVal::Var(v) => Err(self.unsupported(format!(
                    "argument '{name}' holds a size computed at run time ('{v}'); fix the dynamic dimensions with --dim"
                ))),
            })
            .collect()
    }

    /// Integer-list argument `name`, elements possibly symbolic.
    pub fn sym_ints(&mut self, call: &Call, name: &str) -> Result<Vec<SymVal>, Error> {
        match call.arg(name) {
            Arg::Given(Argument::AsInts(v)) => Ok(v.iter().map(|&n| SymVal::Known(n)).collect()),
            Arg::Given(Argument::AsInt(n)) => Ok(vec![SymVal::Known(*n)]),
            Arg::Given(Argument::AsSymInts(v)) => v.iter().map(|s| self.sym_val(s)).collect(),
            Arg::Given(Argument::AsSymInt(s)) => Ok(vec![self.sym_val(s)?]),
            Arg::Default(ArgDefault::Ints(v)) => Ok(v.iter().map(|&n| SymVal::Known(n)).collect()),
            Arg::Default(ArgDefault::None) | Arg::Given(Argument::AsNone(_)) => Ok(Vec::new()),
            Arg::Given(other) => Err(self.kind_error(name, "an integer list", other)),
            _ => Err(self.invalid(format!("argument '{name}' is missing"))),
        }
    }

    /// Float argument `name` (ints accepted), None when None.
    pub fn opt_float(&mut self, call: &Call, name: &str) -> Result<Option<f64>, Error> {
        Ok(match call.arg(name) {
            Arg::Given(Argument::AsFloat(f)) => Some(f.0),
            Arg::Given(Argument::AsInt(n)) => Some(*n as f64),
            Arg::Given(Argument::AsBool(b)) => Some(*b as i64 as f64),
            Arg::Given(Argument::AsNone(_)) | Arg::Default(ArgDefault::None) | Arg::Missing => None,
            Arg::Default(ArgDefault::Float(f)) => Some(*f),
            Arg::Default(ArgDefault::Int(n)) => Some(*n as f64),
            Arg::Given(other) => return Err(self.kind_error(name, "a number", other)),
            Arg::Default(_) => {
                return Err(Error::Internal(format!(
                    "{}: the default of '{name}' is not a number",
                    self.e.current
                )))
            }
        })
    }

    /// Required float argument `name`.
    pub fn float_arg(&mut self, call: &Call, name: &str) -> Result<f64, Error> {
        self.opt_float(call, name)?
            .ok_or_else(|| self.invalid(format!("argument '{name}' is missing")))
    }

    /// Bool argument `name`.
    pub fn flag(&mut self, call: &Call, name: &str) -> Result<bool, Error> {
        match call.arg(name) {
            Arg::Given(Argument::AsBool(b)) => Ok(*b),
            Arg::Given(Argument::AsInt(n)) => Ok(*n != 0),
            Arg::Default(ArgDefault::Bool(b)) => Ok(*b),
            Arg::Given(other) => Err(self.kind_error(name, "a bool", other)),
            _ => Err(self.invalid(format!("argument '{name}' is missing"))),
        }
    }

    /// String argument `name`, None when None.
    pub fn opt_string(&mut self, call: &Call, name: &str) -> Result<Option<String>, Error> {
        match call.arg(name) {
            Arg::Given(Argument::AsString(s)) => Ok(Some(s.clone())),
            Arg::Default(ArgDefault::Str(s)) => Ok(Some(s.to_string())),
            Arg::Given(Argument::AsNone(_)) | Arg::Default(ArgDefault::None) | Arg::Missing => {
                Ok(None)
            }
            Arg::Given(other) => Err(self.kind_error(name, "a string", other)),
            Arg::Default(_) => Err(Error::Internal(format!(
                "{}: the default of '{name}' is not a string",
                self.e.current
            ))),
        }
    }

    /// A tensor or scalar argument as a variable of `dtype`: a number becomes a rank-0
    /// constant, a tensor of another dtype is cast.
    pub fn operand(&mut self, call: &Call, name: &str, dtype: DType) -> Result<String, Error> {
        let hint = format!("{}_{name}", call.label);
        let var = match call.arg(name) {
            Arg::Given(Argument::AsTensor(_)) => self.tensor(call, name)?,
            Arg::Given(Argument::AsSymInt(s)) => match self.sym_val(s)? {
                SymVal::Known(n) => self.scalar_const(&hint, n as f64, dtype),
                SymVal::Var(v) => v,
            },
            _ => match self.opt_float(call, name)? {
                Some(v) => self.scalar_const(&hint, v, dtype),
                None => return Err(self.invalid(format!("argument '{name}' is missing"))),
            },
        };
        self.coerce(&var, dtype, &hint)
    }

    /// A rank-0 constant of `dtype` holding `value`.
    pub fn scalar_const(&mut self, hint: &str, value: f64, dtype: DType) -> String {
        let t = match dtype {
            DType::Bool => Tensor::scalar_bool(value != 0.0),
            d if d.is_float() => Tensor::scalar_f32(value as f32),
            _ => Tensor::scalar_i32(value.clamp(i32::MIN as f64, i32::MAX as f64) as i32),
        };
        self.e.b.constant(hint, t)
    }

    fn kind_error(&self, name: &str, expected: &str, got: &Argument) -> Error {
        self.invalid(format!(
            "argument '{name}' should be {expected}, is {got:?}"
        ))
    }

    /// The type torch records for value `name` (dtype converted, sizes as dims).
    pub fn meta(&self, name: &str) -> Option<TensorType> {
        meta_type(self.metas.get(name)?)
    }

    /// The type torch records for output `i` of `call`.
    pub fn out_meta(&self, call: &Call, i: usize) -> Option<TensorType> {
        self.meta(call.output_name(i)?)
    }

    /// The IR dtype of output `i` of `call` as torch records it.
    pub fn out_dtype(&self, call: &Call, i: usize) -> Result<DType, Error> {
        self.out_meta(call, i)
            .map(|t| t.dtype)
            .ok_or_else(|| self.invalid(format!("output #{i} has no recorded type")))
    }

    /// Normalises a possibly negative axis for a tensor of `rank`.
    pub fn axis(&self, axis: i64, rank: usize) -> Result<usize, Error> {
        norm_axis(axis, rank.max(1))
            .map_err(|_| self.invalid(format!("dim {axis} is out of range for rank {rank}")))
    }

    /// Checks the type the builder gave output `i` against the one torch recorded, and
    /// names symbolic dimensions after torch's symbols. A conflict is invalid input: the
    /// archive's metadata disagrees with its graph (as in a corrupted archive).
    fn check_output(&mut self, call: &Call, i: usize) -> Result<(), Error> {
        let Some(name) = call.output_name(i) else {
            return Ok(());
        };
        let (Some(var), Some(meta)) = (self.values.get(name).cloned(), self.meta(name)) else {
            return Ok(());
        };
        let ty = self.ty(&var)?;
        if ty.rank() != meta.rank() {
            return Err(self.invalid(format!(
                "output '{name}' has type {ty}, but the archive records {meta}"
            )));
        }
        let conflict = ty
            .shape
            .iter()
            .zip(&meta.shape)
            .any(|(a, b)| matches!((a.fixed(), b.fixed()), (Some(x), Some(y)) if x != y));
        if conflict {
            return Err(self.invalid(format!(
                "output '{name}' has type {ty}, but the archive records {meta}"
            )));
        }
        if ty.shape != meta.shape && ty.shape.iter().any(|d| d.fixed().is_none()) {
            let refined = TensorType {
                dtype: ty.dtype,
                shape: meta.shape,
            };
            self.e.b.refine_type(&var, refined);
        }
        Ok(())
    }
}

/// The IR dtype a torch scalar type converts to: floats fp32, integers int32, bool.
pub fn ir_dtype(t: ScalarType) -> Option<DType> {
    if t.is_float() {
        Some(DType::F32)
    } else if t.is_int() {
        Some(DType::I32)
    } else if t.is_bool() {
        Some(DType::Bool)
    } else {
        None
    }
}

/// A weight as the IR holds it: float tensors fp32, integer tensors int32.
fn ir_tensor(t: &Tensor) -> Tensor {
    match t.dtype() {
        DType::F32 | DType::I32 | DType::Bool => t.clone(),
        d if d.is_float() => t.cast(DType::F32),
        _ => t.cast(DType::I32),
    }
}

/// The symbol name of a sympy size expression: the symbol itself (`s0`, or the `srepr`
/// form `Symbol('s0', …)`), a sanitised form of a compound expression otherwise.
fn symbol_name(expr: &str) -> String {
    let e = expr.trim();
    if let Some(rest) = e.strip_prefix("Symbol('") {
        if let Some(end) = rest.find('\'') {
            return rest[..end].to_string();
        }
    }
    sanitize_name(e)
}

/// A torch size as an IR dim.
fn dim(s: &schema::SymInt) -> Dim {
    match s {
        schema::SymInt::AsInt(n) => Dim::Fixed((*n).max(0) as usize),
        schema::SymInt::AsExpr(e) => match e.expr_str.trim().parse::<usize>() {
            Ok(n) => Dim::Fixed(n),
            Err(_) => Dim::Symbol(symbol_name(&e.expr_str)),
        },
    }
}

/// The IR type of a torch tensor meta (None for dtypes mlpack does not convert).
fn meta_type(m: &TensorMeta) -> Option<TensorType> {
    Some(TensorType {
        dtype: ir_dtype(m.dtype)?,
        shape: m.sizes.iter().map(dim).collect(),
    })
}

/// The op-table key of a node target: `torch.ops.aten.add.Tensor` → `aten.add.Tensor`.
pub fn op_key(target: &str) -> &str {
    target.strip_prefix("torch.ops.").unwrap_or(target)
}

/// The label of a node in messages: its name, or its first output's.
fn node_label(node: &schema::Node) -> String {
    if let Some(n) = &node.name {
        return n.clone();
    }
    match node.outputs.first() {
        Some(Argument::AsTensor(t)) => t.name.clone(),
        Some(Argument::AsTensors(ts)) if !ts.is_empty() => ts[0].name.clone(),
        Some(Argument::AsSymInt(SymIntArg::AsName(n))) => n.clone(),
        _ => op_key(&node.target).to_string(),
    }
}

/// One `Unsupported` error listing every node whose target has no converter, grouped by
/// target.
fn check_supported(ep: &ExportedProgram, path: &Path) -> Result<(), Error> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for node in &ep.graph_module.graph.nodes {
        let key = op_key(&node.target);
        if ops::entry(key).is_some() {
            continue;
        }
        let label = node_label(node);
        match groups.iter_mut().find(|(k, _)| k == key) {
            Some((_, names)) => names.push(label),
            None => groups.push((key.to_string(), vec![label])),
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

/// A range constraint bound as a size (None: unbounded or beyond Core ML's sizes).
fn bound(v: &Option<serde_json::Value>) -> Option<i64> {
    v.as_ref()?.as_i64()
}

/// The `--dim`-like sizes the program's range constraints give its symbols, for symbols
/// the user did not size: `min..max` with the lower bound at least 1 and an upper bound
/// beyond 32 bits left open.
fn constraint_dims(ep: &ExportedProgram, given: &[NamedDim]) -> Vec<NamedDim> {
    let mut dims: Vec<NamedDim> = given.to_vec();
    let mut symbols: Vec<(&String, &schema::RangeConstraint)> =
        ep.range_constraints.iter().collect();
    symbols.sort_by(|a, b| a.0.cmp(b.0));
    for (symbol, range) in symbols {
        if dims.iter().any(|d| d.name == *symbol) {
            continue;
        }
        let lo = bound(&range.min_val).unwrap_or(1).max(1) as usize;
        let hi = bound(&range.max_val)
            .filter(|&h| h <= MAX_RANGE_BOUND)
            .map(|h| (h.max(lo as i64)) as usize);
        let size = if hi == Some(lo) {
            DimSize::Fixed(lo)
        } else {
            DimSize::Range(lo, hi)
        };
        dims.push(NamedDim {
            name: symbol.clone(),
            size,
        });
    }
    dims
}

/// A user input: its torch name, function input and accepted shapes when flexible.
struct UserInput {
    torch_name: String,
    var: Var,
    shapes: Option<ShapeSet>,
}

/// The function inputs for the user inputs, with `--input-shape`, `--dim` and the range
/// constraints applied.
fn user_inputs(
    ep: &ExportedProgram,
    options: &TorchOptions,
    path: &Path,
) -> Result<Vec<UserInput>, Error> {
    let graph = &ep.graph_module.graph;
    let mut names: Vec<&str> = Vec::new();
    for spec in &ep.graph_module.signature.input_specs {
        match spec {
            InputSpec::UserInput {
                arg: Argument::AsTensor(t),
            } => names.push(&t.name),
            InputSpec::UserInput { arg } => {
                return Err(Error::Unsupported {
                    path: path.to_path_buf(),
                    message: format!(
                        "a user input is not a tensor ({arg:?}); only tensor inputs are supported"
                    ),
                })
            }
            _ => {}
        }
    }
    for shape in &options.input_shapes {
        if !names
            .iter()
            .any(|n| *n == shape.name || sanitize_name(n) == shape.name)
        {
            return Err(Error::Usage(format!(
                "--input-shape names '{}', which is not an input of the model (inputs: {})",
                shape.name,
                names.join(", ")
            )));
        }
    }
    let symbols: HashSet<String> = names
        .iter()
        .filter_map(|n| graph.tensor_values.get(*n))
        .flat_map(|m| m.sizes.iter().map(dim))
        .filter_map(|d| match d {
            Dim::Symbol(s) => Some(s),
            Dim::Fixed(_) => None,
        })
        .collect();
    if let Some(unknown) = options.dims.iter().find(|d| !symbols.contains(&d.name)) {
        let mut known: Vec<&String> = symbols.iter().collect();
        known.sort();
        let known: Vec<&str> = known.iter().map(|s| s.as_str()).collect();
        return Err(Error::Usage(format!(
            "--dim names '{}', which is no input dimension of the model (symbols: {})",
            unknown.name,
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    }
    let dims = constraint_dims(ep, &options.dims);
    let mut result = Vec::with_capacity(names.len());
    let mut dynamic = Vec::new();
    for name in names {
        let meta = graph
            .tensor_values
            .get(name)
            .ok_or_else(|| Error::invalid(path, format!("input '{name}' has no recorded type")))?;
        let dtype = ir_dtype(meta.dtype).ok_or_else(|| Error::Unsupported {
            path: path.to_path_buf(),
            message: format!(
                "input '{name}' has dtype code {}, which is not supported",
                meta.dtype.0
            ),
        })?;
        let declared: Vec<Declared> = meta
            .sizes
            .iter()
            .map(|s| match dim(s) {
                Dim::Fixed(n) => Ok(n),
                Dim::Symbol(s) => Err(Some(s)),
            })
            .collect();
        let given = options
            .input_shapes
            .iter()
            .find(|s| s.name == name || s.name == sanitize_name(name))
            .map(|s| &s.shape);
        match input_shapes::resolve(name, &declared, given, &dims).map_err(Error::Usage)? {
            Some((shape, shapes)) => result.push(UserInput {
                torch_name: name.to_string(),
                var: Var::new(sanitize_name(name), TensorType { dtype, shape }),
                shapes,
            }),
            None => {
                let labels: Vec<String> = declared
                    .iter()
                    .filter_map(|d| d.clone().err().flatten())
                    .collect();
                dynamic.push(format!(
                    "input '{name}' has symbolic size(s) {} with no range; fix them with --dim {}=128, or make them flexible with --dim {}=1..512",
                    labels.join(", "),
                    labels[0],
                    labels[0]
                ));
            }
        }
    }
    if !dynamic.is_empty() {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            message: dynamic.join("; "),
        });
    }
    Ok(result)
}

/// The buffers the program mutates: state-dict name → the value holding the new contents.
fn mutated_buffers(ep: &ExportedProgram, path: &Path) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    for spec in &ep.graph_module.signature.output_specs {
        let refuse = |what: &str| Error::Unsupported {
            path: path.to_path_buf(),
            message: format!("the program has {what} outputs, which mlpack cannot convert"),
        };
        match spec {
            OutputSpec::UserOutput { .. } => {}
            OutputSpec::BufferMutation { arg, buffer_name } => {
                out.push((buffer_name.clone(), arg.name.clone()))
            }
            OutputSpec::UserInputMutation { user_input_name, .. } => {
                return Err(Error::Unsupported {
                    path: path.to_path_buf(),
                    message: format!(
                        "the program mutates user input '{user_input_name}' in place, which a Core ML model cannot do; export a module that returns the new value instead"
                    ),
                })
            }
            OutputSpec::LossOutput(_) => return Err(refuse("loss")),
            OutputSpec::GradientToParameter(_) | OutputSpec::GradientToUserInput(_) => {
                return Err(refuse("gradient"))
            }
            OutputSpec::ParameterMutation { .. } => return Err(refuse("parameter-mutation")),
            OutputSpec::Token(_) => return Err(refuse("effect-token")),
        }
    }
    Ok(out)
}

/// Buffers the training IR mutates in place (an in-place op on the buffer's placeholder or
/// on a slice of it; such programs have no `buffer_mutation` output): (buffer name,
/// placeholder).
fn in_place_buffers(ep: &ExportedProgram) -> Vec<(String, String)> {
    let placeholders: HashMap<&str, &str> = ep
        .graph_module
        .signature
        .input_specs
        .iter()
        .filter_map(|s| match s {
            InputSpec::Buffer { arg, buffer_name } => {
                Some((arg.name.as_str(), buffer_name.as_str()))
            }
            _ => None,
        })
        .collect();
    // Value → the value it is a view of.
    let mut view_of: HashMap<&str, &str> = HashMap::new();
    let mut found: Vec<(String, String)> = Vec::new();
    for node in &ep.graph_module.graph.nodes {
        let key = op_key(&node.target);
        let self_arg = node
            .inputs
            .iter()
            .find(|a| a.name == "self")
            .and_then(|a| match &a.arg {
                Argument::AsTensor(t) => Some(t.name.as_str()),
                _ => None,
            });
        let Some(self_name) = self_arg else { continue };
        let in_place = key.split('.').nth(1).is_some_and(|n| n.ends_with('_'));
        let is_view = matches!(
            key,
            "aten.slice.Tensor" | "aten.alias.default" | "aten.select.int" | "aten.view.default"
        );
        if is_view {
            if let Some(Argument::AsTensor(out)) = node.outputs.first() {
                view_of.insert(&out.name, self_name);
            }
        }
        if in_place {
            let mut root = self_name;
            while let Some(&base) = view_of.get(root) {
                root = base;
            }
            if let Some(&buffer) = placeholders.get(root) {
                if !found.iter().any(|(b, _)| b == buffer) {
                    found.push((buffer.to_string(), root.to_string()));
                }
            }
        }
    }
    found
}

/// Converts the ExportedProgram JSON `program_json` of the archive at `path`, with its
/// weights and constants `tensors` (by state-dict / constant name), into an fp32 program
/// whose function is `main`.
pub fn convert(
    program_json: &str,
    tensors: &HashMap<String, Tensor>,
    path: &Path,
    options: &TorchOptions,
) -> Result<Program, Error> {
    let ep = schema::parse(program_json, path)?;
    check_supported(&ep, path)?;
    let mut mutated = mutated_buffers(&ep, path)?;
    let in_place = in_place_buffers(&ep);
    mutated.extend(in_place.iter().cloned());
    let graph = &ep.graph_module.graph;
    let users = user_inputs(&ep, options, path)?;
    let mut inputs: Vec<Var> = users.iter().map(|u| u.var.clone()).collect();
    let mut flexible: BTreeMap<String, ShapeSet> = users
        .iter()
        .filter_map(|u| u.shapes.clone().map(|s| (u.var.name.clone(), s)))
        .collect();
    let mut weights: HashMap<&str, (&str, &Tensor)> = HashMap::new();
    let mut constants: Vec<(&str, &ConstantValue)> = Vec::new();
    // Placeholders of mutated buffers: (placeholder, buffer name, function input).
    let mut state_inputs: Vec<(String, String, String)> = Vec::new();
    for spec in &ep.graph_module.signature.input_specs {
        let (arg, state_name) = match spec {
            InputSpec::UserInput { .. } => continue,
            InputSpec::Parameter {
                arg,
                parameter_name,
            } => (arg, parameter_name),
            InputSpec::Buffer { arg, buffer_name } => {
                if mutated.iter().any(|(b, _)| b == buffer_name) {
                    let ty = graph
                        .tensor_values
                        .get(&arg.name)
                        .and_then(meta_type)
                        .filter(|t| t.static_shape().is_some())
                        .ok_or_else(|| Error::Unsupported {
                            path: path.to_path_buf(),
                            message: format!(
                                "mutated buffer '{buffer_name}' needs a static shape and a supported dtype"
                            ),
                        })?;
                    let name = sanitize_name(buffer_name);
                    if inputs.iter().any(|v| v.name == name) {
                        return Err(Error::Unsupported {
                            path: path.to_path_buf(),
                            message: format!(
                                "mutated buffer '{buffer_name}' has the name of another input"
                            ),
                        });
                    }
                    inputs.push(Var::new(name.clone(), ty));
                    state_inputs.push((arg.name.clone(), buffer_name.clone(), name));
                    continue;
                }
                (arg, buffer_name)
            }
            InputSpec::TensorConstant {
                arg,
                tensor_constant_name,
            } => (arg, tensor_constant_name),
            InputSpec::ConstantInput { name, value } => {
                constants.push((name, value));
                continue;
            }
            InputSpec::CustomObj(_) | InputSpec::Token(_) => return Err(Error::Unsupported {
                path: path.to_path_buf(),
                message:
                    "the program takes script objects or effect tokens, which mlpack cannot convert"
                        .into(),
            }),
        };
        let tensor = tensors.get(state_name).ok_or_else(|| {
            Error::invalid(
                path,
                format!(
                    "the archive has no weight '{state_name}' (input '{}')",
                    arg.name
                ),
            )
        })?;
        weights.insert(&arg.name, (state_name, tensor));
    }
    // Bool inputs and outputs are int32 features, cast at both ends (see `BOOL_FEATURE`).
    let bool_inputs: Vec<String> = inputs
        .iter_mut()
        .filter(|v| v.ty.dtype == DType::Bool)
        .map(|v| {
            v.ty = v.ty.with_dtype(BOOL_FEATURE);
            v.name.clone()
        })
        .collect();
    let mut ctx = Ctx {
        e: Emitter::new(Builder::new("main", inputs.clone()), path.to_path_buf()),
        values: HashMap::new(),
        weights,
        metas: &graph.tensor_values,
        views: HashMap::new(),
    };
    ctx.e.current = "graph inputs".into();
    for u in &users {
        let var = if bool_inputs.contains(&u.var.name) {
            ctx.coerce(&u.var.name, DType::Bool, &format!("{}_bool", u.var.name))?
        } else {
            u.var.name.clone()
        };
        ctx.bind_name(&u.torch_name, var);
    }
    for (placeholder, _, input) in &state_inputs {
        ctx.bind_name(placeholder, input.clone());
    }
    for (name, value) in constants {
        let hint = sanitize_name(name);
        let var = match value {
            ConstantValue::AsInt(n) => ctx.int(&hint, *n),
            ConstantValue::AsFloat(f) => ctx.float(&hint, f.0 as f32),
            ConstantValue::AsBool(b) => ctx.boolean(&hint, *b),
            ConstantValue::AsString(s) => ctx.string(&hint, s),
            ConstantValue::AsNone(_) => continue,
        };
        ctx.bind_name(name, var);
    }
    for node in &graph.nodes {
        let key = op_key(&node.target);
        let entry =
            ops::entry(key).ok_or_else(|| Error::Internal(format!("no converter for {key}")))?;
        let call = Call {
            node,
            entry,
            label: node_label(node),
        };
        ctx.e.current = format!("node '{}' ({key})", call.label);
        ctx.e.b.origin = Some(call.label.clone());
        (entry.convert)(&mut ctx, &call)?;
        for i in 0..call.num_outputs() {
            ctx.check_output(&call, i)?;
        }
    }
    ctx.e.b.origin = None;
    ctx.e.current = "graph outputs".into();
    let input_names: HashSet<String> = inputs.iter().map(|v| v.name.clone()).collect();
    let mut outputs: Vec<String> = Vec::new();
    for (spec, arg) in ep
        .graph_module
        .signature
        .output_specs
        .iter()
        .zip(&graph.outputs)
    {
        let (torch_name, desired, state) = match (spec, arg) {
            (OutputSpec::BufferMutation { buffer_name, .. }, Argument::AsTensor(t)) => {
                (&t.name, format!("{}_out", sanitize_name(buffer_name)), true)
            }
            (OutputSpec::UserOutput { .. }, Argument::AsTensor(t)) => {
                (&t.name, sanitize_name(&t.name), false)
            }
            (_, other) => {
                return Err(Error::Unsupported {
                    path: path.to_path_buf(),
                    message: format!("a graph output is not a tensor ({other:?})"),
                })
            }
        };
        let mut var = ctx.value(torch_name)?;
        if ctx.ty(&var)?.dtype == DType::Bool {
            var = ctx.coerce(&var, BOOL_FEATURE, &desired)?;
        }
        let needs_copy = var != desired
            && (input_names.contains(&var) || ctx.const_value(&var).is_some() || state);
        if needs_copy || outputs.contains(&var) {
            ctx.e.b.fold_constants = false;
            var = ctx.op1("identity", &desired, &[("x", &var)])?;
            ctx.e.b.fold_constants = true;
        }
        outputs.push(var);
    }
    for (_, placeholder) in &in_place {
        let Some((_, _, input)) = state_inputs.iter().find(|(p, _, _)| p == placeholder) else {
            continue;
        };
        let desired = format!("{input}_out");
        let var = ctx.value(placeholder)?;
        if var == *input {
            return Err(Error::Internal(format!(
                "buffer '{input}' is mutated in place but never written"
            )));
        }
        ctx.e.b.fold_constants = false;
        let var = ctx.op1("identity", &desired, &[("x", &var)])?;
        ctx.e.b.fold_constants = true;
        outputs.push(var);
    }
    for (_, buffer, input) in &state_inputs {
        let expected = format!("{input}_out");
        if !outputs.contains(&expected) {
            return Err(Error::Unsupported {
                path: path.to_path_buf(),
                message: format!(
                    "mutated buffer '{buffer}' cannot be returned as '{expected}' (the name is taken)"
                ),
            });
        }
    }
    let mut function = ctx.e.b.finish(outputs);
    flexible.retain(|name, _| function.inputs.iter().any(|v| v.name == *name));
    function.input_shapes = flexible;
    let mut metadata = BTreeMap::new();
    let file_name = path.file_name().map_or_else(
        || path.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    );
    metadata.insert("mlpack.source".to_string(), file_name);
    metadata.insert(
        "mlpack.torch_export_schema".to_string(),
        format!("{}.{}", ep.schema_version.major, ep.schema_version.minor),
    );
    let mut program = Program {
        target: options.target,
        functions: vec![function],
        metadata,
        description: Default::default(),
    };
    crate::passes::remove_dead_code(&mut program);
    Ok(program)
}
