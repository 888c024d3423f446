//! States (iOS18): a graph input that the graph returns updated (a static KV cache `k_cache`
//! and its new value `k_cache_out`) becomes a Core ML state. The input turns into an fp16
//! state read once with `read_state` at the start of the function, the output is no longer a
//! function output and is stored with one `write_state` at the end.
//!
//! coremltools writes a `write_state` + `read_state` pair after every in-place update; a single
//! write of the final value is equivalent when nothing reads the state after it (coremltools
//! itself drops the `read_state` of an update nobody reads).

use crate::ir::{sanitize_name, Argument, DType, Function, NameTable, Operation, Tensor, Var};
use std::collections::BTreeMap;
use std::fmt;

/// Metadata key recording the pairs a package was converted with (`in=out,in=out`), so that
/// `verify` can pair the same inputs and outputs of the source model.
pub const STATES_METADATA_KEY: &str = "mlpack.states";

/// A graph input updated in place: `output` is the new value of `input`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatePair {
    /// Graph input holding the state's value before the prediction; the state's name.
    pub input: String,
    /// Graph output holding its value after the prediction.
    pub output: String,
}

impl StatePair {
    /// A pair from source names (sanitized to the program's identifiers).
    pub fn new(input: &str, output: &str) -> StatePair {
        StatePair {
            input: sanitize_name(input),
            output: sanitize_name(output),
        }
    }

    /// Parses the `in=out,in=out` list of [`STATES_METADATA_KEY`].
    pub fn parse_list(text: &str) -> Option<Vec<StatePair>> {
        text.split(',')
            .map(|p| p.split_once('=').map(|(i, o)| StatePair::new(i, o)))
            .collect()
    }

    /// The `in=out,in=out` form of `pairs`.
    pub fn list_text(pairs: &[StatePair]) -> String {
        pairs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl fmt::Display for StatePair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.input, self.output)
    }
}

/// The pairs the usual names imply: `past_key_values…` with `present…` (Hugging Face
/// exports) and `NAME` with `NAME_out` (e.g. `k_cache` / `k_cache_out`), when both have the
/// same dtype and the same static shape.
pub fn detect_pairs(function: &Function) -> Vec<StatePair> {
    let outputs = function.outputs();
    let mut pairs = Vec::new();
    for input in &function.inputs {
        let mut candidates = vec![format!("{}_out", input.name)];
        if let Some(rest) = input.name.strip_prefix("past_key_values") {
            candidates.push(format!("present{rest}"));
        }
        let found = outputs.iter().find(|o| {
            candidates.contains(&o.name)
                && o.ty == input.ty
                && input.ty.static_shape().is_some()
                && input.ty.dtype.is_float()
        });
        if let Some(output) = found {
            pairs.push(StatePair {
                input: input.name.clone(),
                output: output.name.clone(),
            });
        }
    }
    pairs
}

/// Checks `pairs` against `function` without changing it: each input is a float graph input
/// of static shape, each output a graph output of the same shape, no name used twice.
pub fn check_pairs(function: &Function, pairs: &[StatePair]) -> Result<(), String> {
    let list = |names: Vec<&str>| names.join(", ");
    let outputs = function.outputs();
    for (i, pair) in pairs.iter().enumerate() {
        let flag = format!("--state {pair}");
        if pairs[..i]
            .iter()
            .any(|p| p.input == pair.input || p.output == pair.output)
        {
            return Err(format!("{flag}: the input or the output is paired twice"));
        }
        let Some(input) = function.inputs.iter().find(|v| v.name == pair.input) else {
            return Err(format!(
                "{flag}: '{}' is not a graph input (inputs: {})",
                pair.input,
                list(function.inputs.iter().map(|v| v.name.as_str()).collect())
            ));
        };
        let Some(output) = outputs.iter().find(|v| v.name == pair.output) else {
            return Err(format!(
                "{flag}: '{}' is not a graph output (outputs: {})",
                pair.output,
                list(outputs.iter().map(|v| v.name.as_str()).collect())
            ));
        };
        if !input.ty.dtype.is_float() || !output.ty.dtype.is_float() {
            return Err(format!(
                "{flag}: states hold floats; input is {}, output is {}",
                input.ty, output.ty
            ));
        }
        let Some(shape) = input.ty.static_shape() else {
            return Err(format!(
                "{flag}: input '{}' has the dynamic type {}; states must have a static shape \
                 (fix its size with --input-shape or --dim)",
                input.name, input.ty
            ));
        };
        if output.ty.static_shape().as_ref() != Some(&shape) {
            return Err(format!(
                "{flag}: output '{}' has type {}, input '{}' has {}; a state's new value must \
                 have the same shape",
                output.name, output.ty, input.name, input.ty
            ));
        }
    }
    Ok(())
}

/// Turns each pair's input into an fp16 state and its output into the state's new value
/// (see the module doc). The pairs must pass [`check_pairs`]. Casts the conversion leaves
/// unread (fp32 ↔ fp16 at the old boundary) are left to dead-code elimination.
pub fn make_states(function: &mut Function, pairs: &[StatePair]) -> Result<(), String> {
    check_pairs(function, pairs)?;
    let mut names = NameTable::of_function(function);
    let mut head = Vec::new();
    let mut tail = Vec::new();
    for pair in pairs {
        let at = function
            .inputs
            .iter()
            .position(|v| v.name == pair.input)
            .expect("checked");
        let input = function.inputs.remove(at);
        function.input_shapes.remove(&input.name);
        let state_ty = input.ty.with_dtype(DType::F16);
        function
            .states
            .push(Var::new(input.name.clone(), state_ty.clone()));

        // Read: the state's value in fp16, and in fp32 for readers that were not fp16 casts.
        let read = names.fresh(&format!("{}_read", input.name));
        head.push(op(
            "read_state",
            &read,
            vec![("input", &input.name)],
            vec![Var::new(read.clone(), state_ty.clone())],
        ));
        let (to_fp16, others) = readers(function, &input.name);
        for cast in &to_fp16 {
            function.block.rename_uses(cast, &read);
        }
        function
            .block
            .operations
            .retain(|o| !o.outputs.iter().any(|v| to_fp16.contains(&v.name)));
        if others > 0 {
            let wide = names.fresh(&format!("{}_fp32", input.name));
            head.extend(cast_ops(
                &mut names,
                &read,
                &wide,
                &state_ty,
                input.ty.dtype,
            ));
            function.block.rename_uses(&input.name, &wide);
        }

        // Write: the output's fp16 value (before the output cast, if it has one).
        let out_ty = function
            .var_type(&pair.output)
            .cloned()
            .ok_or_else(|| format!("output '{}' is not defined", pair.output))?;
        function.block.outputs.retain(|o| *o != pair.output);
        let data = if out_ty.dtype == DType::F16 {
            pair.output.clone()
        } else if let Some(narrow) = widened_from_fp16(function, &pair.output) {
            narrow
        } else {
            let narrow = names.fresh(&format!("{}_fp16", pair.output));
            tail.extend(cast_ops(
                &mut names,
                &pair.output,
                &narrow,
                &out_ty,
                DType::F16,
            ));
            narrow
        };
        let write = names.fresh(&format!("{}_write_state", pair.output));
        tail.push(op(
            "write_state",
            &write,
            vec![("input", &input.name), ("data", &data)],
            Vec::new(),
        ));
    }
    let body = std::mem::take(&mut function.block.operations);
    function.block.operations = head.into_iter().chain(body).chain(tail).collect();
    Ok(())
}

/// The outputs of the `cast(x=name, dtype="fp16")` ops reading `name`, and how many other
/// reads of `name` there are.
fn readers(function: &Function, name: &str) -> (Vec<String>, usize) {
    let mut casts = Vec::new();
    let mut others = 0;
    for o in &function.block.operations {
        let reads = o.input_vars().filter(|v| *v == name).count();
        if reads == 0 {
            continue;
        }
        if cast_dtype(function, o) == Some(DType::F16) {
            casts.push(o.outputs[0].name.clone());
        } else {
            others += reads;
        }
    }
    (casts, others)
}

/// When `name` is made by a cast from an fp16 value, that value.
fn widened_from_fp16(function: &Function, name: &str) -> Option<String> {
    let (_, producer) = function.block.producer(name)?;
    cast_dtype(function, producer)?;
    let x = producer.input("x")?.first()?.var()?;
    (function.var_type(x)?.dtype == DType::F16).then(|| x.to_string())
}

/// The target dtype of a `cast` op.
fn cast_dtype(function: &Function, op: &Operation) -> Option<DType> {
    if op.op_type != "cast" {
        return None;
    }
    let dtype = match op.input("dtype")?.first()? {
        Argument::Value(t) => t.clone(),
        Argument::Var(v) => function.block.producer(v)?.1.const_value()?.clone(),
    };
    DType::from_name(dtype.as_string()?)
}

/// `out = cast(x=src, dtype=…)` with its dtype constant.
fn cast_ops(
    names: &mut NameTable,
    src: &str,
    out: &str,
    ty: &crate::ir::TensorType,
    dtype: DType,
) -> Vec<Operation> {
    let dtype_var = names.fresh(&format!("{out}_dtype"));
    let cast = names.fresh(&format!("cast_{out}"));
    vec![
        Operation::constant(dtype_var.clone(), Tensor::scalar_string(dtype.name())),
        op(
            "cast",
            &cast,
            vec![("x", src), ("dtype", &dtype_var)],
            vec![Var::new(out, ty.with_dtype(dtype))],
        ),
    ]
}

fn op(op_type: &str, name: &str, inputs: Vec<(&str, &str)>, outputs: Vec<Var>) -> Operation {
    Operation {
        op_type: op_type.into(),
        name: name.into(),
        inputs: inputs
            .into_iter()
            .map(|(p, v)| (p.to_string(), vec![Argument::Var(v.to_string())]))
            .collect(),
        outputs,
        attributes: BTreeMap::new(),
        origin: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Builder, Dim, TensorType};

    /// `cache` (type `ty`) in, `cache_name_out = cache + 1` and `y` out.
    fn step(input: &str, output: &str, ty: TensorType) -> Function {
        let mut b = Builder::new("main", vec![Var::new(input, ty.clone())]);
        let one = b.constant("one", Tensor::from_f32(&[1], &[1.0]));
        let out = b
            .op1("add", output, &[("x", &[input]), ("y", &[&one])])
            .unwrap();
        let y = b.op1("relu", "y", &[("x", &[input])]).unwrap();
        b.finish(vec![y, out])
    }

    #[test]
    fn hugging_face_and_out_suffix_names_are_paired() {
        let ty = TensorType::fixed(DType::F32, &[1, 2, 4, 8]);
        let f = step("past_key_values_0_key", "present_0_key", ty.clone());
        assert_eq!(
            detect_pairs(&f),
            [StatePair::new("past_key_values.0.key", "present.0.key")]
        );
        assert_eq!(
            detect_pairs(&step("k_cache", "k_cache_out", ty.clone())).len(),
            1
        );
        assert!(detect_pairs(&step("k_cache", "k_next", ty)).is_empty());
    }

    #[test]
    fn dynamic_states_are_refused_naming_the_flag() {
        let ty = TensorType {
            dtype: DType::F32,
            shape: vec![Dim::Fixed(1), Dim::Symbol("len".into())],
        };
        let f = step("k_cache", "k_cache_out", ty);
        assert!(detect_pairs(&f).is_empty());
        let e = check_pairs(&f, &[StatePair::new("k_cache", "k_cache_out")]).unwrap_err();
        assert!(
            e.starts_with("--state k_cache=k_cache_out: input 'k_cache' has the dynamic type"),
            "{e}"
        );
    }

    /// The fp32 input becomes an fp16 state read once (cast to fp32 for its fp32 readers) and
    /// the output is written back in fp16 and no longer returned; the result validates.
    #[test]
    fn an_fp32_pair_becomes_a_read_and_a_write() {
        let ty = TensorType::fixed(DType::F32, &[2, 3]);
        let mut program = crate::ir::Program::new(
            crate::ir::Target::IOS18,
            vec![step("k_cache", "k_cache_out", ty)],
        );
        make_states(
            program.main_mut(),
            &[StatePair::new("k_cache", "k_cache_out")],
        )
        .unwrap();
        crate::ir::validate_program(&program).unwrap();
        let f = program.main();
        assert!(f.inputs.is_empty());
        assert_eq!(f.states[0].ty, TensorType::fixed(DType::F16, &[2, 3]));
        assert_eq!(f.block.outputs, ["y"]);
        let types: Vec<&str> = f
            .block
            .operations
            .iter()
            .map(|o| o.op_type.as_str())
            .collect();
        assert_eq!(
            types,
            [
                "read_state",
                "const",
                "cast",
                "const",
                "add",
                "relu",
                "const",
                "cast",
                "write_state"
            ]
        );
    }
}
