//! Per-op checking against the registry, and whole-program validation.

use super::ops::{self, InferArgs, ParamType};
use super::{Argument, DType, Function, Operation, Program, Target, Tensor, TensorType, Var};
use std::collections::{BTreeMap, HashMap};

/// A program that breaks a rule of the IR, naming the op.
#[derive(Debug, thiserror::Error)]
#[error("op '{op}' ({op_type}): {message}")]
pub struct ValidationError {
    /// Op name (or the variable name for function-level problems).
    pub op: String,
    /// Op type.
    pub op_type: String,
    /// What is wrong.
    pub message: String,
}

/// Checks `op`'s arguments against its registry entry and infers its output types.
/// `lookup` gives the type and constant value (if any) of a variable by name.
pub fn infer_op<'a>(
    op: &'a Operation,
    lookup: &impl Fn(&str) -> Option<(&'a TensorType, Option<&'a Tensor>)>,
) -> Result<Vec<TensorType>, String> {
    if let Some(v) = op.const_value() {
        return Ok(vec![v.ty()]);
    }
    let def =
        ops::lookup(&op.op_type).ok_or_else(|| format!("unknown op type '{}'", op.op_type))?;
    let mut args: BTreeMap<&str, Vec<(&TensorType, Option<&Tensor>)>> = BTreeMap::new();
    let mut inline_types: Vec<TensorType> = Vec::new();
    // Inline values need a type that lives as long as `args`; collect them first.
    for (_, list) in &op.inputs {
        for arg in list {
            if let Argument::Value(t) = arg {
                inline_types.push(t.ty());
            }
        }
    }
    for (_, t) in op.attributes.iter().filter(|(k, _)| def.param(k).is_some()) {
        inline_types.push(t.ty());
    }
    let mut inline = inline_types.iter();
    for (param, list) in &op.inputs {
        let spec = def
            .param(param)
            .ok_or_else(|| format!("unknown input '{param}'"))?;
        if !spec.variadic && list.len() != 1 {
            return Err(format!(
                "input '{param}' takes one argument, got {}",
                list.len()
            ));
        }
        let mut entries = Vec::with_capacity(list.len());
        for arg in list {
            entries.push(match arg {
                Argument::Var(name) => lookup(name)
                    .ok_or_else(|| format!("input '{param}': '{name}' is not defined"))?,
                Argument::Value(t) => (inline.next().expect("counted above"), Some(t)),
            });
        }
        args.insert(param.as_str(), entries);
    }
    for (name, t) in op.attributes.iter().filter(|(k, _)| def.param(k).is_some()) {
        args.insert(
            name.as_str(),
            vec![(inline.next().expect("counted above"), Some(t))],
        );
    }
    let mut shared_t: Option<DType> = None;
    for spec in def.params {
        let Some(entries) = args.get(spec.name) else {
            if spec.required {
                return Err(format!("missing required input '{}'", spec.name));
            }
            continue;
        };
        for (ty, value) in entries {
            if spec.constant && value.is_none() {
                return Err(format!("input '{}' must be a constant", spec.name));
            }
            let ok = match spec.ty {
                ParamType::T => matches!(ty.dtype, DType::F16 | DType::F32),
                ParamType::TOrInt => ty.dtype.is_float() || ty.dtype.is_int(),
                ParamType::Int => ty.dtype.is_int(),
                ParamType::Bool => ty.dtype == DType::Bool,
                ParamType::Str => ty.dtype == DType::String,
                ParamType::Any | ParamType::Setting | ParamType::State => true,
            };
            if !ok {
                return Err(format!(
                    "input '{}' has type {ty}, which this op does not accept",
                    spec.name
                ));
            }
            if matches!(spec.ty, ParamType::T | ParamType::TOrInt) {
                match shared_t {
                    None => shared_t = Some(ty.dtype),
                    Some(d) if d != ty.dtype => {
                        return Err(format!(
                            "input '{}' is {} but other inputs are {d}",
                            spec.name, ty.dtype
                        ));
                    }
                    _ => {}
                }
            }
        }
    }
    (def.infer)(&InferArgs {
        def,
        op_name: &op.name,
        args,
    })
}

/// Validates every function of `program`: names defined before use and unique, every op
/// known to the registry and available at the program's target, declared output types equal
/// to the inferred ones, block outputs defined.
pub fn validate_program(program: &Program) -> Result<(), ValidationError> {
    for function in &program.functions {
        let mut types: HashMap<&str, (&TensorType, Option<&Tensor>)> = HashMap::new();
        for input in &function.inputs {
            if types.insert(&input.name, (&input.ty, None)).is_some() {
                return Err(err(&input.name, "input", "duplicate input name"));
            }
        }
        for state in &function.states {
            check_state(state, program.target)?;
            if types.insert(&state.name, (&state.ty, None)).is_some() {
                return Err(err(&state.name, "state", "duplicate input name"));
            }
        }
        for op in &function.block.operations {
            check_target(op, program.target)?;
            check_state_reads(op, function).map_err(|m| err(&op.name, &op.op_type, &m))?;
            let inferred = infer_op(op, &|name| types.get(name).copied())
                .map_err(|m| err(&op.name, &op.op_type, &m))?;
            if inferred.len() != op.outputs.len() {
                return Err(err(&op.name, &op.op_type, "wrong number of outputs"));
            }
            for (declared, inferred) in op.outputs.iter().zip(&inferred) {
                if !types_agree(&declared.ty, inferred) {
                    let msg = format!(
                        "output '{}' declared {} but inferred {inferred}",
                        declared.name, declared.ty
                    );
                    return Err(err(&op.name, &op.op_type, &msg));
                }
            }
            let value = op.const_value();
            for out in &op.outputs {
                if types.insert(&out.name, (&out.ty, value)).is_some() {
                    return Err(err(
                        &op.name,
                        &op.op_type,
                        &format!("'{}' is defined twice", out.name),
                    ));
                }
            }
        }
        for out in &function.block.outputs {
            if function.state(out).is_some() {
                return Err(err(out, "output", "a state cannot be a function output"));
            }
            if !types.contains_key(out.as_str()) {
                return Err(err(out, "output", "function output is never defined"));
            }
        }
    }
    Ok(())
}

/// A state is an fp16 tensor of static shape, from iOS18 on (what Core ML accepts).
fn check_state(state: &Var, target: Target) -> Result<(), ValidationError> {
    let fail = |m: String| Err(err(&state.name, "state", &m));
    if target < Target::IOS18 {
        return fail(format!(
            "states need target iOS18 or later (program targets {target})"
        ));
    }
    if state.ty.dtype != DType::F16 {
        return fail(format!("state type {} must be fp16", state.ty));
    }
    if state.ty.static_shape().is_none() {
        return fail(format!("state type {} must have a static shape", state.ty));
    }
    Ok(())
}

/// State parameters read states, and states are read by nothing else.
fn check_state_reads(op: &Operation, function: &Function) -> Result<(), String> {
    let Some(def) = ops::lookup(&op.op_type) else {
        return Ok(());
    };
    for (param, args) in &op.inputs {
        let wants_state = def.param(param).is_some_and(|p| p.ty == ParamType::State);
        for name in args.iter().filter_map(Argument::var) {
            let is_state = function.state(name).is_some();
            if wants_state && !is_state {
                return Err(format!("input '{param}': '{name}' is not a state"));
            }
            if is_state && !wants_state {
                return Err(format!(
                    "input '{param}' reads state '{name}' (states are read with read_state)"
                ));
            }
        }
    }
    Ok(())
}

fn check_target(op: &Operation, target: Target) -> Result<(), ValidationError> {
    if op.op_type == "const" {
        return Ok(());
    }
    ops::check_form(op, target).map_err(|m| err(&op.name, &op.op_type, &m))?;
    match ops::lookup(&op.op_type) {
        Some(def) if def.since > target => Err(err(
            &op.name,
            &op.op_type,
            &format!(
                "needs target {} or later (program targets {target})",
                def.since
            ),
        )),
        Some(def) => {
            let newer = op
                .inputs
                .iter()
                .filter_map(|(p, _)| def.param(p))
                .find(|p| p.since > target);
            match newer {
                Some(p) => Err(err(
                    &op.name,
                    &op.op_type,
                    &format!(
                        "input '{}' needs target {} or later (program targets {target})",
                        p.name, p.since
                    ),
                )),
                None => Ok(()),
            }
        }
        None => Ok(()),
    }
}

/// Declared and inferred types agree when dtypes match and every dimension known on both
/// sides is equal (a symbolic dimension matches anything).
fn types_agree(declared: &TensorType, inferred: &TensorType) -> bool {
    declared.dtype == inferred.dtype
        && declared.rank() == inferred.rank()
        && declared
            .shape
            .iter()
            .zip(&inferred.shape)
            .all(|(a, b)| match (a.fixed(), b.fixed()) {
                (Some(x), Some(y)) => x == y,
                _ => true,
            })
}

fn err(op: &str, op_type: &str, message: &str) -> ValidationError {
    ValidationError {
        op: op.to_string(),
        op_type: op_type.to_string(),
        message: message.to_string(),
    }
}
