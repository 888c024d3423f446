//! The reference interpreter: runs a [`Program`](crate::ir::Program) on the CPU in f32 with
//! ndarray, one op at a time, using each op's registered kernel.

mod kernel;
mod value;

pub use kernel::{KernelArgs, KernelFn};
pub(crate) use value::per_kind;
pub use value::Value;

use crate::ir::{ops, Argument, DType, Function, Operation, TensorType};
use std::collections::{BTreeMap, HashMap};

/// A failure while interpreting, naming the op.
#[derive(Debug, thiserror::Error)]
pub enum InterpError {
    /// A function input was not supplied or does not match its declared type.
    #[error("input '{name}': {message}")]
    Input {
        /// Input name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// An op failed.
    #[error("op '{op}' ({op_type}): {message}")]
    Op {
        /// Op name.
        op: String,
        /// Op type.
        op_type: String,
        /// What went wrong.
        message: String,
    },
}

/// Interpreter settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Round every fp16-typed value to half precision after the op producing it.
    pub emulate_fp16: bool,
}

/// Runs one op on argument values already resolved by name; `declared` are its output types.
pub fn eval_op(
    op: &Operation,
    values: &impl Fn(&str) -> Option<Value>,
    declared: &[TensorType],
) -> Result<Vec<Value>, String> {
    let resolved: HashMap<&str, Value> = op
        .input_vars()
        .filter_map(|name| values(name).map(|v| (name, v)))
        .collect();
    eval_borrowed(op, &|name| resolved.get(name), declared)
}

/// [`eval_op`] on borrowed argument values (nothing is copied to call the kernel).
fn eval_borrowed<'v>(
    op: &Operation,
    values: &dyn Fn(&str) -> Option<&'v Value>,
    declared: &[TensorType],
) -> Result<Vec<Value>, String> {
    if let Some(v) = op.const_value() {
        return Ok(vec![Value::from_tensor(v)]);
    }
    let def = ops::lookup(&op.op_type)
        .ok_or_else(|| format!("no interpreter kernel for op type '{}'", op.op_type))?;
    // Values written into the op itself (inline arguments, attributes) are converted here;
    // variables are borrowed.
    let inline: Vec<Value> = op
        .inputs
        .iter()
        .flat_map(|(_, args)| args)
        .filter_map(|arg| match arg {
            Argument::Value(t) => Some(Value::from_tensor(t)),
            Argument::Var(_) => None,
        })
        .collect();
    let attributes: Vec<(&str, Value)> = op
        .attributes
        .iter()
        .filter(|(name, _)| *name != "val" && !op.inputs.iter().any(|(p, _)| p == *name))
        .map(|(name, t)| (name.as_str(), Value::from_tensor(t)))
        .collect();
    let mut inline_values = inline.iter();
    let mut args = BTreeMap::new();
    for (param, list) in &op.inputs {
        let mut vals = Vec::with_capacity(list.len());
        for arg in list {
            vals.push(match arg {
                Argument::Var(name) => {
                    values(name).ok_or_else(|| format!("variable '{name}' is not defined"))?
                }
                Argument::Value(_) => inline_values
                    .next()
                    .ok_or("an inline argument has no value")?,
            });
        }
        args.insert(param.as_str(), vals);
    }
    for (name, value) in &attributes {
        args.insert(name, vec![value]);
    }
    let args = KernelArgs {
        def,
        op,
        args,
        outputs: declared,
    };
    let mut outs = (def.kernel)(&args)?;
    if outs.len() != declared.len() {
        return Err(format!(
            "kernel produced {} outputs, op declares {}",
            outs.len(),
            declared.len()
        ));
    }
    let decompresses = op.op_type.starts_with("constexpr_");
    for (out, ty) in outs.iter_mut().zip(declared) {
        conform(out, ty.dtype);
        // Core ML materialises a compressed weight in its declared dtype at load time.
        if decompresses && ty.dtype == DType::F16 {
            out.round_to_f16();
        }
    }
    Ok(outs)
}

/// Makes a kernel result match the declared dtype's kind (e.g. a float result of an int op).
fn conform(value: &mut Value, dtype: DType) {
    let converted = match (&*value, dtype) {
        (Value::Float(a), d) if d.is_int() => Some(Value::Int(a.mapv(|v| v as i32))),
        (Value::Int(a), d) if d.is_float() => Some(Value::Float(a.mapv(|v| v as f32))),
        (Value::Bool(a), d) if d.is_float() => Some(Value::Float(a.mapv(|v| v as u8 as f32))),
        (Value::Bool(a), d) if d.is_int() => Some(Value::Int(a.mapv(|v| v as i32))),
        _ => None,
    };
    if let Some(c) = converted {
        *value = c;
    }
}

/// Runs `function` on `inputs` (by input name) and returns its outputs by name, in
/// block-output order. States, if any, start at zero (see [`run_stateful`]).
pub fn run(
    function: &Function,
    inputs: &BTreeMap<String, Value>,
    options: RunOptions,
) -> Result<Vec<(String, Value)>, InterpError> {
    Runner::new(function, options)?.run(inputs)
}

/// Like [`run`], calling `observe(var_name, value)` for every value an op produces.
pub fn run_with_observer(
    function: &Function,
    inputs: &BTreeMap<String, Value>,
    options: RunOptions,
    observe: impl FnMut(&str, &Value),
) -> Result<Vec<(String, Value)>, InterpError> {
    Runner::new(function, options)?.run_with_observer(inputs, observe)
}

/// Every state of `function` at zero, by name.
pub fn zero_states(function: &Function) -> BTreeMap<String, Value> {
    function
        .states
        .iter()
        .map(|v| {
            let shape = v.ty.static_shape().unwrap_or_default();
            (v.name.clone(), Value::Float(ndarray::ArrayD::zeros(shape)))
        })
        .collect()
}

/// Runs one prediction of a stateful function: `read_state` sees the values of `states` (by
/// state name; every state must be present, with its declared shape), and each `write_state`
/// replaces the value, rounded to fp16 as the state stores it. Returns the outputs like [`run`].
pub fn run_stateful(
    function: &Function,
    inputs: &BTreeMap<String, Value>,
    states: &mut BTreeMap<String, Value>,
    options: RunOptions,
) -> Result<Vec<(String, Value)>, InterpError> {
    Runner::new(function, options)?.run_stateful(inputs, states)
}

/// Weights whose values (as f32) take more bytes than this are not prepared once but read
/// when an op needs them and dropped after their last reader, so that verifying a
/// billion-parameter model does not hold a widened copy of every weight.
const PREPARED_WEIGHTS_BUDGET: usize = 1 << 30;

/// A function ready to run on many input sets: the values of its weights (`const` ops and the
/// `constexpr_*` ops decompressing them) are computed once, when the runner is made, and
/// borrowed by every run instead of being converted again; unless they would take more than
/// [`PREPARED_WEIGHTS_BUDGET`], when each run reads them as it goes.
pub struct Runner<'f> {
    function: &'f Function,
    options: RunOptions,
    /// Values of the ops that do not depend on the inputs, by output name.
    weights: HashMap<&'f str, Value>,
    /// How many times each variable is read (by ops and as a block output).
    use_counts: BTreeMap<&'f str, usize>,
}

impl<'f> Runner<'f> {
    /// Computes the weights of `function` (rounded to fp16 where typed fp16 when `options`
    /// emulate fp16).
    pub fn new(function: &'f Function, options: RunOptions) -> Result<Runner<'f>, InterpError> {
        let mut weights: HashMap<&'f str, Value> = HashMap::new();
        let widened: usize = (function.block.operations.iter())
            .filter_map(|op| op.const_value())
            .map(|t| 4 * t.len())
            .sum();
        let prepared = if widened <= PREPARED_WEIGHTS_BUDGET {
            &function.block.operations[..]
        } else {
            &[]
        };
        for op in prepared {
            let is_weight = op.op_type == "const"
                || (op.op_type.starts_with("constexpr_")
                    && op.input_vars().all(|name| weights.contains_key(name)));
            if !is_weight {
                continue;
            }
            let declared: Vec<TensorType> = op.outputs.iter().map(|o| o.ty.clone()).collect();
            let outs = eval_borrowed(op, &|name| weights.get(name), &declared)
                .map_err(|message| op_error(op, message))?;
            for (var, mut value) in op.outputs.iter().zip(outs) {
                if options.emulate_fp16 && var.ty.dtype == DType::F16 {
                    value.round_to_f16();
                }
                weights.insert(var.name.as_str(), value);
            }
        }
        Ok(Runner {
            function,
            options,
            weights,
            use_counts: function.block.use_counts(),
        })
    }

    /// Runs the function on `inputs` (by input name) and returns its outputs by name, in
    /// block-output order.
    pub fn run(
        &self,
        inputs: &BTreeMap<String, Value>,
    ) -> Result<Vec<(String, Value)>, InterpError> {
        self.run_with_observer(inputs, |_, _| {})
    }

    /// Like [`Runner::run`], calling `observe(var_name, value)` for every value an op
    /// produces (weights included), in op order.
    pub fn run_with_observer(
        &self,
        inputs: &BTreeMap<String, Value>,
        observe: impl FnMut(&str, &Value),
    ) -> Result<Vec<(String, Value)>, InterpError> {
        let mut states = zero_states(self.function);
        self.run_inner(inputs, &mut states, observe)
    }

    /// One prediction with the states in `states`, as [`run_stateful`] describes.
    pub fn run_stateful(
        &self,
        inputs: &BTreeMap<String, Value>,
        states: &mut BTreeMap<String, Value>,
    ) -> Result<Vec<(String, Value)>, InterpError> {
        self.run_inner(inputs, states, |_, _| {})
    }

    fn run_inner(
        &self,
        inputs: &BTreeMap<String, Value>,
        states: &mut BTreeMap<String, Value>,
        mut observe: impl FnMut(&str, &Value),
    ) -> Result<Vec<(String, Value)>, InterpError> {
        let function = self.function;
        for var in &function.states {
            let value = states
                .get_mut(&var.name)
                .ok_or_else(|| InterpError::Input {
                    name: var.name.clone(),
                    message: "no value supplied for this state".into(),
                })?;
            check_input(value, &var.ty).map_err(|message| InterpError::Input {
                name: var.name.clone(),
                message,
            })?;
            value.round_to_f16();
        }
        let mut env: HashMap<&str, Value> = HashMap::new();
        for var in &function.inputs {
            let value = inputs.get(&var.name).ok_or_else(|| InterpError::Input {
                name: var.name.clone(),
                message: "no value supplied".into(),
            })?;
            check_input(value, &var.ty).map_err(|message| InterpError::Input {
                name: var.name.clone(),
                message,
            })?;
            let mut value = value.clone();
            if self.options.emulate_fp16 && var.ty.dtype == DType::F16 {
                value.round_to_f16();
            }
            env.insert(var.name.as_str(), value);
        }
        let mut remaining = self.use_counts.clone();
        for op in &function.block.operations {
            if let Some(first) = op.outputs.first() {
                if self.weights.contains_key(first.name.as_str()) {
                    for var in &op.outputs {
                        observe(&var.name, &self.weights[var.name.as_str()]);
                    }
                    continue;
                }
            }
            let declared: Vec<TensorType> = op.outputs.iter().map(|o| o.ty.clone()).collect();
            let outs = eval_borrowed(
                op,
                &|name| {
                    (env.get(name))
                        .or_else(|| self.weights.get(name))
                        .or_else(|| states.get(name))
                },
                &declared,
            )
            .map_err(|message| op_error(op, message))?;
            if op.op_type == "write_state" {
                store_state(op, &env, states);
            }
            for name in op.input_vars() {
                if let Some(count) = remaining.get_mut(name) {
                    *count -= 1;
                    if *count == 0 {
                        env.remove(name);
                    }
                }
            }
            for (var, mut value) in op.outputs.iter().zip(outs) {
                if self.options.emulate_fp16 && var.ty.dtype == DType::F16 {
                    value.round_to_f16();
                }
                observe(&var.name, &value);
                // A value nothing reads is dropped at once.
                if remaining.contains_key(var.name.as_str()) {
                    env.insert(var.name.as_str(), value);
                }
            }
        }
        function
            .block
            .outputs
            .iter()
            .map(|name| {
                let value = env
                    .get(name.as_str())
                    .or_else(|| self.weights.get(name.as_str()))
                    .cloned()
                    .ok_or_else(|| InterpError::Op {
                        op: name.clone(),
                        op_type: "output".into(),
                        message: "output is never produced".into(),
                    })?;
                Ok((name.clone(), value))
            })
            .collect()
    }
}

/// Stores the `data` of a `write_state` op (already checked by its kernel) in its state.
fn store_state(op: &Operation, env: &HashMap<&str, Value>, states: &mut BTreeMap<String, Value>) {
    let arg = |param: &str| {
        op.input(param)
            .and_then(|a| a.first())
            .and_then(|a| a.var())
    };
    if let (Some(state), Some(data)) = (arg("input"), arg("data")) {
        if let Some(mut value) = env.get(data).cloned() {
            value.round_to_f16();
            states.insert(state.to_string(), value);
        }
    }
}

/// The interpreter error for op `op` failing with `message`.
fn op_error(op: &Operation, message: String) -> InterpError {
    InterpError::Op {
        op: op.name.clone(),
        op_type: op.op_type.clone(),
        message,
    }
}

fn check_input(value: &Value, ty: &TensorType) -> Result<(), String> {
    let kind_ok = match value {
        Value::Float(_) => ty.dtype.is_float(),
        Value::Int(_) => ty.dtype.is_int(),
        Value::Bool(_) => ty.dtype == DType::Bool,
        Value::Str(_) => ty.dtype == DType::String,
    };
    if !kind_ok {
        return Err(format!("expected {ty}, got a {} tensor", value.kind()));
    }
    let shape_ok = value.shape().len() == ty.rank()
        && ty
            .shape
            .iter()
            .zip(value.shape())
            .all(|(d, &n)| d.fixed().is_none_or(|f| f == n));
    if !shape_ok {
        return Err(format!("expected {ty}, got shape {:?}", value.shape()));
    }
    Ok(())
}
