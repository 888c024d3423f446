//! The reference interpreter: runs a [`Program`](crate::ir::Program) on the CPU in f32 with
//! ndarray, one op at a time, using each op's registered kernel.

mod kernel;
pub mod kernels;
mod value;

pub use kernel::{KernelArgs, KernelFn};
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
    if let Some(v) = op.const_value() {
        return Ok(vec![Value::from_tensor(v)]);
    }
    let def = ops::lookup(&op.op_type)
        .ok_or_else(|| format!("no interpreter kernel for op type '{}'", op.op_type))?;
    let mut owned: Vec<(String, Vec<Value>)> = Vec::new();
    for (param, args) in &op.inputs {
        let mut vals = Vec::with_capacity(args.len());
        for arg in args {
            vals.push(match arg {
                Argument::Var(name) => {
                    values(name).ok_or_else(|| format!("variable '{name}' is not defined"))?
                }
                Argument::Value(t) => Value::from_tensor(t),
            });
        }
        owned.push((param.clone(), vals));
    }
    for (name, t) in &op.attributes {
        if name != "val" && !owned.iter().any(|(p, _)| p == name) {
            owned.push((name.clone(), vec![Value::from_tensor(t)]));
        }
    }
    let args = KernelArgs {
        op,
        args: owned
            .iter()
            .map(|(p, v)| (p.as_str(), v.iter().collect()))
            .collect(),
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
            if let Value::Float(a) = out {
                a.mapv_inplace(|v| half::f16::from_f32(v).to_f32());
            }
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
    run_with_observer(function, inputs, options, |_, _| {})
}

/// Like [`run`], calling `observe(var_name, value)` for every value an op produces.
pub fn run_with_observer(
    function: &Function,
    inputs: &BTreeMap<String, Value>,
    options: RunOptions,
    observe: impl FnMut(&str, &Value),
) -> Result<Vec<(String, Value)>, InterpError> {
    let mut states = zero_states(function);
    run_inner(function, inputs, &mut states, options, observe)
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
    run_inner(function, inputs, states, options, |_, _| {})
}

fn run_inner(
    function: &Function,
    inputs: &BTreeMap<String, Value>,
    states: &mut BTreeMap<String, Value>,
    options: RunOptions,
    mut observe: impl FnMut(&str, &Value),
) -> Result<Vec<(String, Value)>, InterpError> {
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
    let mut env: HashMap<String, Value> = HashMap::new();
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
        if options.emulate_fp16 && var.ty.dtype == DType::F16 {
            value.round_to_f16();
        }
        env.insert(var.name.clone(), value);
    }
    let mut remaining = function
        .block
        .use_counts()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect::<HashMap<_, _>>();
    for op in &function.block.operations {
        let declared: Vec<TensorType> = op.outputs.iter().map(|o| o.ty.clone()).collect();
        let lookup = |name: &str| env.get(name).or_else(|| states.get(name)).cloned();
        let outs = eval_op(op, &lookup, &declared).map_err(|message| InterpError::Op {
            op: op.name.clone(),
            op_type: op.op_type.clone(),
            message,
        })?;
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
            if options.emulate_fp16 && var.ty.dtype == DType::F16 {
                value.round_to_f16();
            }
            observe(&var.name, &value);
            env.insert(var.name.clone(), value);
        }
    }
    function
        .block
        .outputs
        .iter()
        .map(|name| {
            let value = env.get(name).cloned().ok_or_else(|| InterpError::Op {
                op: name.clone(),
                op_type: "output".into(),
                message: "output is never produced".into(),
            })?;
            Ok((name.clone(), value))
        })
        .collect()
}

/// Stores the `data` of a `write_state` op (already checked by its kernel) in its state.
fn store_state(op: &Operation, env: &HashMap<String, Value>, states: &mut BTreeMap<String, Value>) {
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
