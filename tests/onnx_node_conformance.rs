//! The ONNX backend node tests (onnx 1.19.1, fetched by `scripts/onnx-node-tests.sh` into
//! `target/onnx-node-tests/node/`) run through the whole pipeline: ONNX frontend (iOS18, fp32),
//! cleanup, validation, `.mlpackage` write and read-back, the reference interpreter, and a
//! comparison with the suite's expected outputs.
//!
//! Each case is classified:
//! - `pass`: every output has the expected shape and values;
//! - `fail`: values or shapes differ, a stage returned an error other than "unsupported", or
//!   something panicked;
//! - `unsupported`: the frontend returned [`Error::Unsupported`], or the case uses a value
//!   type mlpack does not represent (strings, complex, float8/float4, 4-bit ints, sequences,
//!   maps, optionals, integers outside the int32 range Core ML computes in).
//!
//! When the frontend refuses a case because a value it needs constant is computed from graph
//! inputs ([`Error::NeedsConstant`], e.g. the `axes` of `ReduceSum` fed at run time), exactly
//! those inputs are bound to their test data (`--freeze`) and the case is converted again; the
//! report lists them under `frozen`.
//!
//! Tolerance (the suite's own): |actual − expected| ≤ 1e-7 + 1e-3·|expected| for floats, after
//! rounding our fp32 value to the expected element type (fp16/bf16 outputs are what a Core ML
//! model declaring those types returns); NaN matches NaN. Integers and bools must be equal.
//!
//! The test always writes `target/onnx-node-report.json`, asserts that every case listed in
//! `tests/onnx-node-passing.txt` still passes, and with `MLPACK_WRITE_COVERAGE=1` rewrites that
//! list and `docs/onnx-op-coverage.md`.

use mlpack::frontend::onnx::{self, FrozenInput, InputShape, OnnxOptions};
use mlpack::interp::{self, RunOptions, Value};
use mlpack::ir::{sanitize_name, validate_program, DType, Program, Target};
use mlpack::proto::onnx::{tensor_proto::DataType, type_proto, ModelProto, TensorProto};
use mlpack::{backend, passes, Error};
use ndarray::{ArrayD, IxDyn};
use prost::Message;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// Relative tolerance of the ONNX backend tests.
const RTOL: f64 = 1e-3;
/// Absolute tolerance of the ONNX backend tests.
const ATOL: f64 = 1e-7;

/// Cases not run at all, with the reason (huge or slow models).
const SKIPPED: &[(&str, &str)] = &[];

/// The command that regenerates the coverage table and the passing list.
const REGENERATE: &str =
    "scripts/onnx-node-tests.sh && MLPACK_WRITE_COVERAGE=1 cargo test --test onnx_node_conformance";

/// The outcome class of one case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Pass = 0,
    Fail = 1,
    Unsupported = 2,
}

/// One case's result, as written to the JSON report.
#[derive(Clone, Debug, Serialize)]
struct CaseResult {
    case: String,
    op: String,
    status: Status,
    message: String,
    /// Graph inputs bound to their test data because the converter needs them constant.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    frozen: Vec<String>,
}

/// Why a case did not pass.
enum Outcome {
    Fail(String),
    Unsupported(String),
}

type CaseResultOr<T> = Result<T, Outcome>;

fn fail<T>(message: impl Into<String>) -> CaseResultOr<T> {
    Err(Outcome::Fail(message.into()))
}

fn unsupported<T>(message: impl Into<String>) -> CaseResultOr<T> {
    Err(Outcome::Unsupported(message.into()))
}

// ---------------------------------------------------------------------------------------------
// Paths

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| manifest_dir().join(dir))
        .unwrap_or_else(|| manifest_dir().join("target"))
}

fn suite_dir() -> PathBuf {
    target_dir().join("onnx-node-tests").join("node")
}

fn passing_list_path() -> PathBuf {
    manifest_dir().join("tests").join("onnx-node-passing.txt")
}

fn coverage_path() -> PathBuf {
    manifest_dir().join("docs").join("onnx-op-coverage.md")
}

// ---------------------------------------------------------------------------------------------
// Expected tensors

/// The elements of a decoded `TensorProto`, widened so no value is lost.
#[derive(Clone, Debug, PartialEq)]
enum Elements {
    Float(Vec<f64>),
    Int(Vec<i64>),
    Bool(Vec<bool>),
}

/// A decoded `TensorProto`: ONNX element type, shape and elements.
#[derive(Clone, Debug)]
struct TestTensor {
    name: String,
    elem_type: DataType,
    shape: Vec<usize>,
    elements: Elements,
}

fn le_bytes<const N: usize>(chunk: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(chunk);
    a
}

/// Decodes a serialized `TensorProto` (an `input_N.pb` / `output_N.pb` file).
fn decode_tensor(bytes: &[u8]) -> CaseResultOr<TestTensor> {
    let t =
        TensorProto::decode(bytes).map_err(|e| Outcome::Fail(format!("bad TensorProto: {e}")))?;
    let elem_type = DataType::try_from(t.data_type)
        .map_err(|_| Outcome::Unsupported(format!("unknown element type {}", t.data_type)))?;
    let mut shape = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        match usize::try_from(d) {
            Ok(n) => shape.push(n),
            Err(_) => return fail(format!("tensor '{}': negative dimension {d}", t.name)),
        }
    }
    let raw = &t.raw_data;
    let has_raw = !raw.is_empty();
    use DataType as D;
    let elements = match elem_type {
        D::Float if has_raw => Elements::Float(
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes(le_bytes(c)) as f64)
                .collect(),
        ),
        D::Float => Elements::Float(t.float_data.iter().map(|&v| v as f64).collect()),
        D::Double if has_raw => Elements::Float(
            raw.chunks_exact(8)
                .map(|c| f64::from_le_bytes(le_bytes(c)))
                .collect(),
        ),
        D::Double => Elements::Float(t.double_data.clone()),
        D::Float16 | D::Bfloat16 => {
            let bits: Vec<u16> = if has_raw {
                raw.chunks_exact(2)
                    .map(|c| u16::from_le_bytes(le_bytes(c)))
                    .collect()
            } else {
                t.int32_data.iter().map(|&v| v as u16).collect()
            };
            Elements::Float(
                bits.iter()
                    .map(|&b| match elem_type {
                        D::Float16 => half::f16::from_bits(b).to_f64(),
                        _ => half::bf16::from_bits(b).to_f64(),
                    })
                    .collect(),
            )
        }
        D::Bool if has_raw => Elements::Bool(raw.iter().map(|&b| b != 0).collect()),
        D::Bool => Elements::Bool(t.int32_data.iter().map(|&v| v != 0).collect()),
        D::Int64 if has_raw => Elements::Int(
            raw.chunks_exact(8)
                .map(|c| i64::from_le_bytes(le_bytes(c)))
                .collect(),
        ),
        D::Int64 => Elements::Int(t.int64_data.clone()),
        D::Uint64 if has_raw => Elements::Int(
            raw.chunks_exact(8)
                .map(|c| i64::try_from(u64::from_le_bytes(le_bytes(c))).unwrap_or(i64::MAX))
                .collect(),
        ),
        D::Uint64 | D::Uint32 if !has_raw => Elements::Int(
            t.uint64_data
                .iter()
                .map(|&v| i64::try_from(v).unwrap_or(i64::MAX))
                .collect(),
        ),
        D::Int32 if has_raw => Elements::Int(
            raw.chunks_exact(4)
                .map(|c| i32::from_le_bytes(le_bytes(c)) as i64)
                .collect(),
        ),
        D::Uint32 => Elements::Int(
            raw.chunks_exact(4)
                .map(|c| u32::from_le_bytes(le_bytes(c)) as i64)
                .collect(),
        ),
        D::Int16 if has_raw => Elements::Int(
            raw.chunks_exact(2)
                .map(|c| i16::from_le_bytes(le_bytes(c)) as i64)
                .collect(),
        ),
        D::Uint16 if has_raw => Elements::Int(
            raw.chunks_exact(2)
                .map(|c| u16::from_le_bytes(le_bytes(c)) as i64)
                .collect(),
        ),
        D::Int8 if has_raw => Elements::Int(raw.iter().map(|&b| b as i8 as i64).collect()),
        D::Uint8 if has_raw => Elements::Int(raw.iter().map(|&b| b as i64).collect()),
        D::Int32 | D::Int16 | D::Uint16 | D::Int8 | D::Uint8 => {
            Elements::Int(t.int32_data.iter().map(|&v| v as i64).collect())
        }
        other => {
            return unsupported(format!(
                "tensor '{}': {} elements",
                t.name,
                other.as_str_name()
            ))
        }
    };
    let count = match &elements {
        Elements::Float(v) => v.len(),
        Elements::Int(v) => v.len(),
        Elements::Bool(v) => v.len(),
    };
    if count != shape.iter().product::<usize>() {
        return fail(format!(
            "tensor '{}': shape {shape:?} but {count} elements",
            t.name
        ));
    }
    Ok(TestTensor {
        name: t.name,
        elem_type,
        shape,
        elements,
    })
}

/// Converts a decoded input to an interpreter value (integers must fit in int32).
fn to_value(t: &TestTensor) -> CaseResultOr<Value> {
    let shape = IxDyn(&t.shape);
    let built = match &t.elements {
        Elements::Float(v) => {
            ArrayD::from_shape_vec(shape, v.iter().map(|&x| x as f32).collect()).map(Value::Float)
        }
        // Core ML has no bool model inputs: the converter declares them int32 (0 or 1).
        Elements::Bool(v) => {
            ArrayD::from_shape_vec(shape, v.iter().map(|&b| b as i32).collect()).map(Value::Int)
        }
        Elements::Int(v) => {
            let mut ints = Vec::with_capacity(v.len());
            for &x in v {
                match i32::try_from(x) {
                    Ok(i) => ints.push(i),
                    Err(_) => {
                        return unsupported(format!(
                            "input '{}' holds {x}, outside the int32 range",
                            t.name
                        ))
                    }
                }
            }
            ArrayD::from_shape_vec(shape, ints).map(Value::Int)
        }
    };
    built.map_err(|e| Outcome::Fail(format!("input '{}': {e}", t.name)))
}

/// Rounds an fp32 result to the precision of the expected element type.
fn round_to(elem_type: DataType, v: f32) -> f64 {
    match elem_type {
        DataType::Float16 => half::f16::from_f32(v).to_f64(),
        DataType::Bfloat16 => half::bf16::from_f32(v).to_f64(),
        _ => v as f64,
    }
}

/// Compares one output with its expected tensor; the message names the first mismatch.
fn compare(name: &str, actual: &Value, expected: &TestTensor) -> Result<(), String> {
    if actual.shape() != expected.shape.as_slice() {
        return Err(format!(
            "output '{name}': shape {:?}, expected {:?}",
            actual.shape(),
            expected.shape
        ));
    }
    let mismatch = |i: usize, got: String, want: String, count: usize| {
        Err(format!(
            "output '{name}' ({}, shape {:?}): {count} of {} elements differ; first at flat index {i}: got {got}, expected {want}",
            expected.elem_type.as_str_name(),
            expected.shape,
            expected.shape.iter().product::<usize>()
        ))
    };
    match (actual, &expected.elements) {
        (Value::Float(a), Elements::Float(e)) => {
            let bad: Vec<usize> = a
                .iter()
                .zip(e)
                .enumerate()
                .filter(|(_, (&x, &y))| {
                    let x = round_to(expected.elem_type, x);
                    let same = (x.is_nan() && y.is_nan())
                        || x == y
                        || (x - y).abs() <= ATOL + RTOL * y.abs();
                    !same
                })
                .map(|(i, _)| i)
                .collect();
            match bad.first() {
                None => Ok(()),
                Some(&i) => {
                    let x = a.iter().nth(i).copied().unwrap_or(f32::NAN);
                    mismatch(i, format!("{x:e}"), format!("{:e}", e[i]), bad.len())
                }
            }
        }
        (Value::Int(a), Elements::Int(e)) => {
            let bad: Vec<usize> = a
                .iter()
                .zip(e)
                .enumerate()
                .filter(|(_, (&x, &y))| x as i64 != y)
                .map(|(i, _)| i)
                .collect();
            match bad.first() {
                None => Ok(()),
                Some(&i) => {
                    let x = a.iter().nth(i).copied().unwrap_or_default();
                    mismatch(i, x.to_string(), e[i].to_string(), bad.len())
                }
            }
        }
        // Bool outputs come back as int32 0/1 (Core ML has no bool model outputs).
        (Value::Int(a), Elements::Bool(_)) if a.iter().all(|&x| x == 0 || x == 1) => {
            let a = a.mapv(|x| x == 1);
            compare(name, &Value::Bool(a), expected)
        }
        (Value::Bool(a), Elements::Bool(e)) => {
            let bad: Vec<usize> = a
                .iter()
                .zip(e)
                .enumerate()
                .filter(|(_, (x, y))| x != y)
                .map(|(i, _)| i)
                .collect();
            match bad.first() {
                None => Ok(()),
                Some(&i) => mismatch(i, (!e[i]).to_string(), e[i].to_string(), bad.len()),
            }
        }
        (a, _) => Err(format!(
            "output '{name}': got a {} tensor, expected {}",
            a.kind(),
            expected.elem_type.as_str_name()
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Running one case

/// ONNX element types the pipeline represents (as fp32, int32 or bool).
fn representable(elem_type: i32) -> bool {
    use DataType as D;
    matches!(
        DataType::try_from(elem_type),
        Ok(D::Float
            | D::Float16
            | D::Bfloat16
            | D::Double
            | D::Int64
            | D::Int32
            | D::Int16
            | D::Int8
            | D::Uint8
            | D::Uint16
            | D::Uint32
            | D::Uint64
            | D::Bool)
    )
}

/// Unsupported when a graph input or output is not a tensor of a representable type.
fn check_io_types(model: &ModelProto) -> CaseResultOr<()> {
    let Some(graph) = &model.graph else {
        return fail("the model has no graph");
    };
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let declared = graph
        .input
        .iter()
        .filter(|v| !initializers.contains(v.name.as_str()))
        .map(|v| ("input", v))
        .chain(graph.output.iter().map(|v| ("output", v)));
    for (role, v) in declared {
        match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(type_proto::Value::TensorType(t)) if representable(t.elem_type) => {}
            Some(type_proto::Value::TensorType(t)) => {
                let name = DataType::try_from(t.elem_type).map_or("unknown", |d| d.as_str_name());
                return unsupported(format!("{role} '{}' has element type {name}", v.name));
            }
            Some(type_proto::Value::SequenceType(_)) => {
                return unsupported(format!("{role} '{}' is a sequence", v.name))
            }
            Some(type_proto::Value::MapType(_)) => {
                return unsupported(format!("{role} '{}' is a map", v.name))
            }
            Some(type_proto::Value::OptionalType(_)) => {
                return unsupported(format!("{role} '{}' is an optional", v.name))
            }
            Some(_) => return unsupported(format!("{role} '{}' is not a tensor", v.name)),
            None => {}
        }
    }
    Ok(())
}

/// The `input_N.pb` / `output_N.pb` files of a data set, decoded, in index order.
fn read_tensors(dir: &Path, prefix: &str) -> CaseResultOr<Vec<TestTensor>> {
    let mut tensors = Vec::new();
    for i in 0.. {
        let file = dir.join(format!("{prefix}_{i}.pb"));
        if !file.exists() {
            break;
        }
        let bytes =
            fs::read(&file).map_err(|e| Outcome::Fail(format!("{}: {e}", file.display())))?;
        tensors.push(decode_tensor(&bytes)?);
    }
    Ok(tensors)
}

/// A crate error as a case outcome: Unsupported stays unsupported, anything else fails. The
/// message leaves out the (temporary) path.
fn outcome_of(stage: &str, e: Error) -> Outcome {
    match e {
        Error::Unsupported { message, .. } | Error::NeedsConstant { message, .. } => {
            Outcome::Unsupported(message)
        }
        Error::Invalid { message, .. } => Outcome::Fail(format!("{stage}: {message}")),
        other => Outcome::Fail(format!("{stage}: {other}")),
    }
}

/// Converts the case's model at the test data's shapes (`graph_inputs` fed `inputs`). When the
/// frontend needs constant a value computed from graph inputs, those inputs are frozen to their
/// test data (recorded in `frozen`) and the model converted again, until it converts or the
/// refusal names no input not frozen yet.
fn convert_case(
    model_path: &Path,
    graph_inputs: &[&str],
    inputs: &[TestTensor],
    frozen: &mut Vec<String>,
) -> CaseResultOr<Program> {
    let mut values: Vec<FrozenInput> = Vec::new();
    loop {
        let options = OnnxOptions {
            input_shapes: graph_inputs
                .iter()
                .zip(inputs)
                .filter(|(n, _)| !frozen.iter().any(|f| f == *n))
                .map(|(n, t)| InputShape::fixed(n, &t.shape))
                .collect(),
            dims: Vec::new(),
            frozen: values.clone(),
            target: Target::IOS18,
        };
        let needed = match onnx::load(model_path, &options) {
            Ok(program) => return Ok(program),
            Err(Error::NeedsConstant {
                inputs: needed,
                message,
                ..
            }) => {
                let new: Vec<String> = needed.into_iter().filter(|n| !frozen.contains(n)).collect();
                if new.is_empty() {
                    return unsupported(message);
                }
                new
            }
            Err(e) => return Err(outcome_of("convert", e)),
        };
        for name in needed {
            let Some(i) = graph_inputs.iter().position(|n| *n == name) else {
                return fail(format!("convert: '{name}' is not a graph input"));
            };
            let value = to_value(&inputs[i])?;
            // A bool input is fed as fp32 0/1 (see to_value); frozen, it keeps its type.
            let dtype = match (&inputs[i].elements, &value) {
                (Elements::Bool(_), _) | (_, Value::Bool(_)) => DType::Bool,
                (_, Value::Float(_)) => DType::F32,
                (_, Value::Int(_)) => DType::I32,
                (_, Value::Str(_)) => return unsupported(format!("input '{name}' holds strings")),
            };
            values.push(FrozenInput {
                name: name.clone(),
                value: value.to_tensor(dtype),
            });
            frozen.push(name);
        }
    }
}

/// Runs one case through the pipeline; Ok when every output matches. The graph inputs bound
/// to constants on the way are pushed onto `frozen`.
fn run_case(
    case_dir: &Path,
    model: &ModelProto,
    scratch: &Path,
    frozen: &mut Vec<String>,
) -> CaseResultOr<()> {
    check_io_types(model)?;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| Outcome::Fail("the model has no graph".into()))?;
    let data_dir = case_dir.join("test_data_set_0");
    let inputs = read_tensors(&data_dir, "input")?;
    let expected = read_tensors(&data_dir, "output")?;
    for t in &expected {
        if let Elements::Int(v) = &t.elements {
            if let Some(x) = v.iter().find(|&&x| i32::try_from(x).is_err()) {
                return unsupported(format!(
                    "expected output '{}' holds {x}, outside the int32 range",
                    t.name
                ));
            }
        }
    }

    // The graph inputs the data files feed, in order (initializers are not fed).
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let graph_inputs: Vec<&str> = graph
        .input
        .iter()
        .map(|v| v.name.as_str())
        .filter(|n| !initializers.contains(n))
        .collect();
    if graph_inputs.len() != inputs.len() {
        return fail(format!(
            "{} graph inputs but {} input files",
            graph_inputs.len(),
            inputs.len()
        ));
    }
    let mut program = convert_case(&case_dir.join("model.onnx"), &graph_inputs, &inputs, frozen)?;
    passes::cleanup(&mut program).map_err(|e| Outcome::Fail(format!("cleanup: {e}")))?;
    validate_program(&program).map_err(|e| Outcome::Fail(format!("validate: {e}")))?;
    let package = scratch.join("model.mlpackage");
    backend::write_package(&program, &package, true).map_err(|e| outcome_of("write", e))?;
    let program = backend::read_package(&package).map_err(|e| outcome_of("read", e))?;
    let main = program.main();

    let mut values = BTreeMap::new();
    for (i, (onnx_name, tensor)) in graph_inputs.iter().zip(&inputs).enumerate() {
        if frozen.iter().any(|f| f == onnx_name) {
            continue;
        }
        let wanted = sanitize_name(onnx_name);
        let var = main
            .inputs
            .iter()
            .find(|v| v.name == wanted)
            .or_else(|| (main.inputs.len() == inputs.len()).then(|| &main.inputs[i]));
        match var {
            Some(var) => {
                values.insert(var.name.clone(), to_value(tensor)?);
            }
            // The converted program does not read this input (e.g. an unused optional one).
            None => continue,
        }
    }
    let outputs = interp::run(main, &values, RunOptions::default())
        .map_err(|e| Outcome::Fail(format!("run: {e}")))?;
    if outputs.len() != expected.len() {
        return fail(format!(
            "{} outputs, expected {}",
            outputs.len(),
            expected.len()
        ));
    }
    let problems: Vec<String> = outputs
        .iter()
        .zip(&expected)
        .filter_map(|((name, value), want)| compare(name, value, want).err())
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        fail(problems.join("; "))
    }
}

/// The text of a panic payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "non-string panic payload".into())
}

/// Cases whose passing packages are kept under `target/test-packages/onnx_node`, so that
/// `scripts/test.sh` has coremltools check their types too: cases mlpack once converted into
/// packages that computed the right values but that coremltools typed differently, or whose
/// run-time indices Core ML leaves undefined.
const COREMLTOOLS_CHECKED: &[&str] = &[
    "test_maxpool_2d_ceil",
    "test_maxpool_2d_ceil_output_size_reduce_by_one",
    "test_averagepool_2d_ceil",
    "test_gather_negative_indices",
    "test_gather_elements_negative_indices",
    "test_scatter_elements_with_negative_indices",
];

/// Moves the package of passing case `case` to where coremltools checks it.
fn keep_package(case: &str, scratch: &Path) {
    let dir = target_dir().join("test-packages").join("onnx_node");
    let kept = dir.join(format!("{case}.mlpackage"));
    let _ = fs::remove_dir_all(&kept);
    fs::create_dir_all(&dir).expect("create target/test-packages/onnx_node");
    fs::rename(scratch.join("model.mlpackage"), &kept).expect("keep the package");
}

/// Runs one case, catching panics, and classifies it; also returns the graph inputs frozen.
fn evaluate(
    case: &str,
    model: Option<&ModelProto>,
    scratch_root: &Path,
) -> (Status, String, Vec<String>) {
    let mut frozen = Vec::new();
    let (status, message) = classify(case, model, scratch_root, &mut frozen);
    (status, message, frozen)
}

/// [`evaluate`] with the frozen inputs pushed onto `frozen`.
fn classify(
    case: &str,
    model: Option<&ModelProto>,
    scratch_root: &Path,
    frozen: &mut Vec<String>,
) -> (Status, String) {
    if let Some((_, reason)) = SKIPPED.iter().find(|(name, _)| *name == case) {
        return (Status::Unsupported, format!("skipped: {reason}"));
    }
    let Some(model) = model else {
        return (
            Status::Fail,
            "model.onnx does not decode as a ModelProto".into(),
        );
    };
    let scratch = scratch_root.join(case);
    if let Err(e) = fs::create_dir_all(&scratch) {
        return (
            Status::Fail,
            format!("cannot create {}: {e}", scratch.display()),
        );
    }
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        run_case(&suite_dir().join(case), model, &scratch, frozen)
    }));
    if matches!(outcome, Ok(Ok(()))) && COREMLTOOLS_CHECKED.contains(&case) {
        keep_package(case, &scratch);
    }
    // Best effort: the scratch directory is inside a temporary directory removed at the end.
    let _ = fs::remove_dir_all(&scratch);
    match outcome {
        Ok(Ok(())) => (Status::Pass, String::new()),
        Ok(Err(Outcome::Fail(m))) => (Status::Fail, m),
        Ok(Err(Outcome::Unsupported(m))) => (Status::Unsupported, m),
        Err(payload) => (
            Status::Fail,
            format!("panic: {}", panic_message(payload.as_ref())),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Attributing cases to op types

/// `BatchNormalization` → `batch_normalization`, `ReduceL1` → `reduce_l1`, `LRN` → `lrn`.
fn snake_case(op_type: &str) -> String {
    let chars: Vec<char> = op_type.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                out.push('_');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Whether `case` is `test_<stem>` or `test_<stem>_…`.
fn has_stem(case: &str, stem: &str) -> bool {
    case.strip_prefix("test_")
        .and_then(|rest| rest.strip_prefix(stem))
        .is_some_and(|tail| tail.is_empty() || tail.starts_with('_'))
}

/// The op type each case tests: for an `_expanded` case the op of the case it expands (its
/// body may be a single other node, e.g. `Identity` for a bounds-free `Clip`); else the node's
/// op type for single-node graphs; else the longest `test_<op>` prefix among the op
/// types of single-node cases (snake case or lower case), else the first node's op type.
fn attribute_ops(models: &[(String, Option<ModelProto>)]) -> Vec<String> {
    let node_ops = |m: &Option<ModelProto>| -> Vec<String> {
        m.as_ref()
            .and_then(|m| m.graph.as_ref())
            .map(|g| g.node.iter().map(|n| n.op_type.clone()).collect())
            .unwrap_or_default()
    };
    let single: HashMap<&str, String> = models
        .iter()
        .filter_map(|(case, m)| {
            let ops = node_ops(m);
            (ops.len() == 1).then(|| (case.as_str(), ops[0].clone()))
        })
        .collect();
    let known: BTreeSet<&String> = single.values().collect();
    let stems: Vec<(String, &String)> = known
        .iter()
        .flat_map(|op| [(snake_case(op), *op), (op.to_ascii_lowercase(), *op)])
        .collect();
    models
        .iter()
        .map(|(case, m)| {
            if let Some(at) = case.find("_expanded") {
                if let Some(op) = single.get(&case[..at]) {
                    return op.clone();
                }
            }
            if let Some(op) = single.get(case.as_str()) {
                return op.clone();
            }
            let longest = stems
                .iter()
                .filter(|(stem, _)| has_stem(case, stem))
                .max_by_key(|(stem, _)| stem.len())
                .map(|(_, op)| (*op).clone());
            longest
                .or_else(|| node_ops(m).into_iter().next())
                .unwrap_or_else(|| "(no nodes)".into())
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Reports

/// Per-op counts: passed, failed, unsupported.
fn per_op(results: &[CaseResult]) -> BTreeMap<&str, [usize; 3]> {
    let mut table: BTreeMap<&str, [usize; 3]> = BTreeMap::new();
    for r in results {
        let row = table.entry(r.op.as_str()).or_default();
        row[r.status as usize] += 1;
    }
    table
}

fn count(results: &[CaseResult], status: Status) -> usize {
    results.iter().filter(|r| r.status == status).count()
}

/// Element types with no Core ML counterpart, as the converter names them in refusals.
const TYPES_CORE_ML_LACKS: &[&str] = &["FLOAT8", "FLOAT4", "INT4", "STRING", "COMPLEX"];

/// Whether a case is outside what a Core ML conversion can apply to: refused because it needs
/// an element type Core ML has no type for, or because it is a training op (not inference).
fn inapplicable(r: &CaseResult) -> bool {
    r.status == Status::Unsupported
        && (TYPES_CORE_ML_LACKS
            .iter()
            .any(|t| r.message.contains(&format!("element type {t}")))
            || r.message.contains("not an inference op"))
}

/// Per-op counts of inapplicable cases (see [`inapplicable`]).
fn per_op_inapplicable(results: &[CaseResult]) -> BTreeMap<&str, usize> {
    let mut table: BTreeMap<&str, usize> = BTreeMap::new();
    for r in results.iter().filter(|r| inapplicable(r)) {
        *table.entry(r.op.as_str()).or_default() += 1;
    }
    table
}

/// The Markdown coverage table.
fn coverage_markdown(results: &[CaseResult]) -> String {
    let table = per_op(results);
    let na = per_op_inapplicable(results);
    let all_passing = table
        .values()
        .filter(|r| r[0] == r.iter().sum::<usize>())
        .count();
    // Op types with at least one applicable case, and those whose applicable cases all pass.
    let applicable: Vec<(&str, usize, usize)> = table
        .iter()
        .map(|(op, r)| {
            (
                *op,
                r[0],
                r.iter().sum::<usize>() - na.get(op).unwrap_or(&0),
            )
        })
        .filter(|&(_, _, n)| n > 0)
        .collect();
    let all_applicable_passing = applicable.iter().filter(|&&(_, p, n)| p == n).count();
    let most = table
        .values()
        .filter(|r| 2 * r[0] >= r.iter().sum::<usize>())
        .count();
    let mut md = String::new();
    let _ = writeln!(md, "# ONNX backend node-test coverage\n");
    let _ = writeln!(
        md,
        "Generated by `tests/onnx_node_conformance.rs` from the {} node tests of onnx 1.19.1 \
         (converted for iOS18 in fp32, written as an `.mlpackage`, read back and run by the \
         reference interpreter; outputs must match within |Δ| ≤ 1e-7 + 1e-3·|expected|, \
         integers and bools exactly). Regenerate with:\n",
        results.len()
    );
    let _ = writeln!(md, "```sh\n{REGENERATE}\n```\n");
    let _ = writeln!(
        md,
        "- cases passed: **{} / {}** ({} failed, {} unsupported)",
        count(results, Status::Pass),
        results.len(),
        count(results, Status::Fail),
        count(results, Status::Unsupported)
    );
    let _ = writeln!(
        md,
        "- op types with all cases passing: **{all_passing} / {}**",
        table.len()
    );
    let _ = writeln!(
        md,
        "- op types with every applicable case passing: **{all_applicable_passing} / {}** \
         (not applicable: the {} cases refused for an element type Core ML has no type for — \
         float8, float4, int4, string, complex — or as training ops; column `n/a`)",
        applicable.len(),
        na.values().sum::<usize>()
    );
    let _ = writeln!(
        md,
        "- op types with most (≥ half) cases passing: **{most} / {}**\n",
        table.len()
    );
    let _ = writeln!(
        md,
        "A case is attributed to the op type of its single node; multi-node cases (`_expanded` \
         function bodies, a few composite tests) to the op they test, by name. `unsupported` \
         means the converter reported the op or a value type (strings, sequences, float8, \
         int64 values beyond int32, …) as unsupported; `failed` means a wrong result or any \
         other error. A case whose converter needs constant a value computed from graph \
         inputs (axes, pads, shapes, scales, `k`…) is converted again with exactly those \
         inputs bound to their test data, as `--freeze NAME=FILE.npy` does; the report lists \
         them per case (`frozen`). Per-case messages are in `target/onnx-node-report.json`.\n"
    );
    let _ = writeln!(
        md,
        "| op type | passed | failed | unsupported | of which n/a | total |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
    for (op, [p, f, u]) in &table {
        let n = na.get(op).unwrap_or(&0);
        let _ = writeln!(md, "| {op} | {p} | {f} | {u} | {n} | {} |", p + f + u);
    }
    md
}

/// Writes `path` atomically enough for a test: whole contents at once.
fn write_file(path: &Path, contents: &str) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
    }
    fs::write(path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

// ---------------------------------------------------------------------------------------------
// The test

#[test]
fn onnx_backend_node_tests() {
    let suite = suite_dir();
    let mut cases: Vec<String> = match fs::read_dir(&suite) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("model.onnx").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) => panic!(
            "the ONNX node tests are missing ({}: {e}); run scripts/onnx-node-tests.sh first",
            suite.display()
        ),
    };
    assert!(
        !cases.is_empty(),
        "{} holds no node tests; run scripts/onnx-node-tests.sh",
        suite.display()
    );
    cases.sort();

    let listed: Vec<String> = match fs::read_to_string(passing_list_path()) {
        Ok(text) => text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        Err(e) => panic!("cannot read {}: {e}", passing_list_path().display()),
    };

    let models: Vec<(String, Option<ModelProto>)> = cases
        .par_iter()
        .map(|case| {
            let bytes = fs::read(suite.join(case).join("model.onnx")).ok();
            (
                case.clone(),
                bytes.and_then(|b| ModelProto::decode(b.as_slice()).ok()),
            )
        })
        .collect();
    let ops = attribute_ops(&models);

    let scratch = tempfile::tempdir().expect("create a temporary directory");
    let quiet_hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let outcomes: Vec<(Status, String, Vec<String>)> = models
        .par_iter()
        .map(|(case, model)| evaluate(case, model.as_ref(), scratch.path()))
        .collect();
    panic::set_hook(quiet_hook);

    let results: Vec<CaseResult> = models
        .iter()
        .zip(ops)
        .zip(outcomes)
        .map(|(((case, _), op), (status, message, frozen))| CaseResult {
            case: case.clone(),
            op,
            status,
            message,
            frozen,
        })
        .collect();

    let report = target_dir().join("onnx-node-report.json");
    let json = serde_json::to_string_pretty(&results).expect("serialize the report");
    write_file(&report, &(json + "\n"));

    if std::env::var("MLPACK_WRITE_COVERAGE").is_ok_and(|v| v == "1") {
        write_file(&coverage_path(), &coverage_markdown(&results));
        let passing: Vec<&str> = results
            .iter()
            .filter(|r| r.status == Status::Pass)
            .map(|r| r.case.as_str())
            .collect();
        write_file(&passing_list_path(), &(passing.join("\n") + "\n"));
    }

    let by_case: HashMap<&str, &CaseResult> =
        results.iter().map(|r| (r.case.as_str(), r)).collect();
    let regressions: Vec<String> = listed
        .iter()
        .filter_map(|case| match by_case.get(case.as_str()) {
            Some(r) if r.status == Status::Pass => None,
            Some(r) => Some(format!("{case} ({}): {:?}: {}", r.op, r.status, r.message)),
            None => Some(format!("{case}: no such case in {}", suite.display())),
        })
        .collect();

    println!(
        "onnx node tests: {} passed, {} failed, {} unsupported",
        count(&results, Status::Pass),
        count(&results, Status::Fail),
        count(&results, Status::Unsupported)
    );
    assert!(
        regressions.is_empty(),
        "{} case(s) listed in tests/onnx-node-passing.txt no longer pass (details in {}):\n{}",
        regressions.len(),
        report.display(),
        regressions.join("\n")
    );
    let uncovered = converter_coverage(&results, &read_exemptions());
    assert!(
        uncovered.is_empty(),
        "every ONNX converter needs a passing node-suite case or an entry with a reason in \
         tests/onnx-node-exempt.txt:\n{}",
        uncovered.join("\n")
    );
}

/// The converters the node suite may leave without a passing case, with the reason
/// (`tests/onnx-node-exempt.txt`: `OpType: reason` lines, `#` comments).
fn read_exemptions() -> BTreeMap<String, String> {
    let path = manifest_dir().join("tests").join("onnx-node-exempt.txt");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| match line.split_once(':') {
            Some((op, reason)) if !reason.trim().is_empty() => {
                (op.trim().to_string(), reason.trim().to_string())
            }
            _ => panic!("{}: '{line}' is not 'OpType: reason'", path.display()),
        })
        .collect()
}

/// Problems with the converters' node-suite coverage: a converter with no passing case and
/// no exemption, an exemption for an op that is not a converter, or for one that passes now.
fn converter_coverage(results: &[CaseResult], exempt: &BTreeMap<String, String>) -> Vec<String> {
    let passing: BTreeSet<&str> = results
        .iter()
        .filter(|r| r.status == Status::Pass)
        .map(|r| r.op.as_str())
        .collect();
    let converters = onnx::supported_op_types();
    let mut problems = Vec::new();
    for op in &converters {
        match (passing.contains(op), exempt.contains_key(*op)) {
            (false, false) => {
                let cases: Vec<String> = results
                    .iter()
                    .filter(|r| r.op == *op)
                    .take(3)
                    .map(|r| format!("{} {:?}: {}", r.case, r.status, r.message))
                    .collect();
                problems.push(format!(
                    "{op}: no passing case, no exemption ({})",
                    if cases.is_empty() {
                        "the suite has no case for it".to_string()
                    } else {
                        cases.join("; ")
                    }
                ));
            }
            (true, true) => problems.push(format!(
                "{op}: exempt but passes now; remove it from tests/onnx-node-exempt.txt"
            )),
            _ => {}
        }
    }
    for op in exempt.keys() {
        if !converters.contains(&op.as_str()) {
            problems.push(format!("{op}: exempt but not a converter"));
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// Unit tests of the pieces above

#[test]
fn snake_case_splits_words_and_acronyms() {
    assert_eq!(snake_case("BatchNormalization"), "batch_normalization");
    assert_eq!(snake_case("ReduceL1"), "reduce_l1");
    assert_eq!(snake_case("LRN"), "lrn");
    assert_eq!(snake_case("QLinearConv"), "q_linear_conv");
    assert_eq!(snake_case("GlobalLpPool"), "global_lp_pool");
    assert_eq!(snake_case("Add"), "add");
}

#[test]
fn cases_are_attributed_by_node_expansion_and_prefix() {
    let model = |ops: &[&str]| {
        let node = ops
            .iter()
            .map(|op| mlpack::proto::onnx::NodeProto {
                op_type: op.to_string(),
                ..Default::default()
            })
            .collect();
        Some(ModelProto {
            graph: Some(mlpack::proto::onnx::GraphProto {
                node,
                ..Default::default()
            }),
            ..Default::default()
        })
    };
    let models = vec![
        ("test_reduce_sum_default".to_string(), model(&["ReduceSum"])),
        (
            "test_reduce_sum_square_x".to_string(),
            model(&["ReduceSumSquare"]),
        ),
        ("test_softmax_axis_0".to_string(), model(&["Softmax"])),
        (
            "test_softmax_axis_0_expanded_ver18".to_string(),
            model(&["Exp", "ReduceSum", "Div"]),
        ),
        (
            "test_reduce_sum_square_y_expanded".to_string(),
            model(&["Mul", "ReduceSum"]),
        ),
        ("test_something_else".to_string(), model(&["Relu", "Add"])),
        (
            "test_softmax_axis_0_expanded".to_string(),
            model(&["Identity"]),
        ),
    ];
    assert_eq!(
        attribute_ops(&models),
        [
            "ReduceSum",
            "ReduceSumSquare",
            "Softmax",
            "Softmax",
            "ReduceSumSquare",
            "Relu",
            "Softmax"
        ]
    );
}

#[test]
fn comparison_uses_the_suite_tolerance_and_expected_precision() {
    let tensor = |elem_type, elements| TestTensor {
        name: "y".into(),
        elem_type,
        shape: vec![2],
        elements,
    };
    let floats = |v: &[f32]| Value::Float(ArrayD::from_shape_vec(IxDyn(&[2]), v.to_vec()).unwrap());
    let want = tensor(DataType::Float, Elements::Float(vec![1000.0, f64::NAN]));
    // 1e-7 + 1e-3 * 1000 = 1.0000001: 1000.9 passes, 1001.1 does not.
    assert!(compare("y", &floats(&[1000.9, f32::NAN]), &want).is_ok());
    let err = compare("y", &floats(&[1001.1, f32::NAN]), &want).unwrap_err();
    assert!(
        err.contains("1 of 2 elements differ") && err.contains("flat index 0"),
        "{err}"
    );
    // fp16 expected: 0.1 rounds to 0.0999755859375 in fp16, which is exact.
    let half = tensor(
        DataType::Float16,
        Elements::Float(vec![0.0999755859375, 0.0]),
    );
    assert!(compare("y", &floats(&[0.1, 0.0]), &half).is_ok());
    // Integers compare exactly, whatever the width.
    let ints = Value::Int(ArrayD::from_shape_vec(IxDyn(&[2]), vec![3, -4]).unwrap());
    assert!(compare(
        "y",
        &ints,
        &tensor(DataType::Int64, Elements::Int(vec![3, -4]))
    )
    .is_ok());
    assert!(compare(
        "y",
        &ints,
        &tensor(DataType::Int64, Elements::Int(vec![3, -5]))
    )
    .is_err());
    // Kind and shape mismatches fail.
    assert!(compare("y", &ints, &want)
        .unwrap_err()
        .contains("got a int tensor"));
    let three = TestTensor {
        shape: vec![3],
        ..tensor(DataType::Float, Elements::Float(vec![0.0; 3]))
    };
    assert!(compare("y", &floats(&[0.0, 0.0]), &three)
        .unwrap_err()
        .contains("shape [2], expected [3]"));
}

#[test]
fn tensor_protos_decode_from_raw_and_typed_fields() {
    let raw = TensorProto {
        name: "x".into(),
        data_type: DataType::Int64 as i32,
        dims: vec![2],
        raw_data: [7i64.to_le_bytes(), (-1i64 << 40).to_le_bytes()]
            .concat()
            .into(),
        ..Default::default()
    };
    let t = decode_tensor(&raw.encode_to_vec()).unwrap_or_else(|_| panic!("decodes"));
    assert_eq!(t.elements, Elements::Int(vec![7, -1 << 40]));
    assert!(matches!(to_value(&t), Err(Outcome::Unsupported(_))));
    let half = TensorProto {
        name: "h".into(),
        data_type: DataType::Float16 as i32,
        dims: vec![1, 2],
        int32_data: vec![0x3c00, 0xc000],
        ..Default::default()
    };
    let t = decode_tensor(&half.encode_to_vec()).unwrap_or_else(|_| panic!("decodes"));
    assert_eq!(
        (t.shape.clone(), t.elements),
        (vec![1, 2], Elements::Float(vec![1.0, -2.0]))
    );
    let strings = TensorProto {
        data_type: DataType::String as i32,
        ..Default::default()
    };
    assert!(matches!(
        decode_tensor(&strings.encode_to_vec()),
        Err(Outcome::Unsupported(_))
    ));
}

#[test]
fn only_types_core_ml_lacks_and_training_ops_are_not_applicable() {
    let case = |status, message: &str| CaseResult {
        case: "test_x".into(),
        op: "X".into(),
        status,
        message: message.into(),
        frozen: Vec::new(),
    };
    let lacking = "input 'x' has element type FLOAT8E4M3FN";
    assert!(inapplicable(&case(Status::Unsupported, lacking)));
    assert!(inapplicable(&case(
        Status::Unsupported,
        "unsupported operators: Adam (a training op, not an inference op) ×1 (n)"
    )));
    // A refusal Core ML could lift (a run-time input, a dynamic shape) stays applicable, and
    // so does a wrong result, whatever its message says.
    assert!(!inapplicable(&case(
        Status::Unsupported,
        "input 'axes' must be a constant"
    )));
    assert!(!inapplicable(&case(
        Status::Unsupported,
        "input 'x' has element type INT64"
    )));
    assert!(!inapplicable(&case(Status::Fail, lacking)));
}
