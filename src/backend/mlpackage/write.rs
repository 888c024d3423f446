//! Writing a program as an `.mlpackage`: built in a hidden temporary directory beside the
//! destination, then renamed into place.

use super::blob::BlobWriter;
use super::value::{
    dictionary_type, immediate, list_value, state_value_type, stored_in_blob, string_value,
    value_type,
};
use super::{
    description, manifest, AUTHOR, MODEL_FILE, MODEL_PATH_PREFIX, WEIGHTS_DIR, WEIGHT_FILE,
};
use crate::ir::{
    validate_program, Argument, DType, Function, Operation, Program, Target, Tensor, Var,
};
use crate::proto::coreml::mil_spec as mil;
use crate::proto::coreml::{model, Model};
use crate::temp_paths::{self, remove_any};
use crate::Error;
use prost::Message;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// Writes `program` as the `.mlpackage` directory `dest`.
///
/// The program is validated first (a failure is an [`Error::Internal`]: passes must not
/// produce invalid programs). If `dest` exists it is only replaced when `overwrite` is set,
/// and only once the new package is complete; on any failure `dest` is left untouched and the
/// temporary directory is removed.
pub fn write_package(program: &Program, dest: &Path, overwrite: bool) -> Result<(), Error> {
    validate_program(program)
        .map_err(|e| Error::Internal(format!("refusing to write an invalid program: {e}")))?;
    let mut names = program.function_names();
    names.sort_unstable();
    if let Some(twice) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(Error::Internal(format!(
            "two functions are called '{}'",
            twice[0]
        )));
    }
    if dest.extension().is_none_or(|e| e != "mlpackage") {
        return Err(Error::Usage(format!(
            "{}: a Core ML package name must end in .mlpackage",
            dest.display()
        )));
    }
    if !overwrite && dest.symlink_metadata().is_ok() {
        return Err(exists(dest));
    }
    let description = description::describe(program, dest)?;
    temp_paths::remove_stale(dest)?;
    let temp = temp_paths::sibling(dest, "tmp")?;
    remove_any(&temp)?;
    // Registered before it exists, so that a signal arriving as it is made still removes it.
    temp_paths::register(&temp);
    // The temporary folder is an implementation detail: a failure names the requested package.
    if let Err(e) = fs::create_dir(&temp) {
        temp_paths::unregister(&temp);
        return Err(Error::io(dest, e));
    }
    let written =
        write_contents(program, description, &temp).and_then(|()| install(&temp, dest, overwrite));
    if written.is_err() {
        // Best effort: the error being returned matters more than a failed cleanup.
        let _ = remove_any(&temp);
    }
    temp_paths::unregister(&temp);
    written
}

/// Writes the package files into the empty directory `root`.
fn write_contents(
    program: &Program,
    description: crate::proto::coreml::ModelDescription,
    root: &Path,
) -> Result<(), Error> {
    let data = root.join("Data").join(AUTHOR);
    let weights = data.join(WEIGHTS_DIR);
    // One level at a time, never re-creating `root`: if a signal's cleanup removed it, the
    // write fails instead of leaving a new folder behind.
    for dir in [root.join("Data"), data.clone(), weights.clone()] {
        fs::create_dir(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    let mut blobs = BlobWriter::new(weights.join(WEIGHT_FILE));
    let ml_program = encode_program(program, &mut blobs)?;
    blobs.finish()?;
    let model = Model {
        specification_version: program.target.spec_version(),
        description: Some(description),
        is_updatable: false,
        r#type: Some(model::Type::MlProgram(ml_program)),
    };
    let model_bytes = model.encode_to_vec();
    let model_path = data.join(MODEL_FILE);
    fs::write(&model_path, &model_bytes).map_err(|e| Error::io(&model_path, e))?;
    let manifest_path = root.join("Manifest.json");
    fs::write(&manifest_path, manifest::render(&model_bytes)?)
        .map_err(|e| Error::io(&manifest_path, e))
}

/// The MIL program: each function with its block specialised for the target's opset. The
/// functions share one blob writer, so a weight two functions hold is stored once.
fn encode_program<'a>(
    program: &'a Program,
    blobs: &mut BlobWriter<'a>,
) -> Result<mil::Program, Error> {
    let functions = program
        .functions
        .iter()
        .map(|f| Ok((f.name.clone(), encode_function(f, blobs, program.target)?)))
        .collect::<Result<_, Error>>()?;
    Ok(mil::Program {
        version: 1,
        functions,
        doc_string: String::new(),
        attributes: Default::default(),
    })
}

/// One function: its inputs and its block, keyed by the target's opset.
fn encode_function<'a>(
    function: &'a Function,
    blobs: &mut BlobWriter<'a>,
    target: Target,
) -> Result<mil::Function, Error> {
    let operations = function
        .block
        .operations
        .iter()
        .map(|op| encode_operation(op, blobs, target))
        .collect::<Result<_, _>>()?;
    let opset = target.opset().to_string();
    let block = mil::Block {
        inputs: Vec::new(),
        outputs: function.block.outputs.clone(),
        operations,
        attributes: Default::default(),
    };
    Ok(mil::Function {
        inputs: function
            .inputs
            .iter()
            .map(named_value_type)
            .chain(function.states.iter().map(named_state_type))
            .collect(),
        opset: opset.clone(),
        block_specializations: BTreeMap::from([(opset, block)]),
        attributes: Default::default(),
    })
}

/// One operation: its type, the `name` attribute plus its own attributes, inputs bound by
/// variable name or by value, and typed outputs. Values bound to inputs follow the blob rule
/// only for `constexpr_*` ops; other ops get them as immediates (as coremltools writes the
/// literal parameters of `classify` and `reshape_like`, and as its reader requires).
fn encode_operation<'a>(
    op: &'a Operation,
    blobs: &mut BlobWriter<'a>,
    target: Target,
) -> Result<mil::Operation, Error> {
    use mil::argument::{binding::Binding as Bound, Binding};
    let literals_may_be_blobs = op.op_type.starts_with("constexpr_");
    let mut attributes = BTreeMap::from([("name".to_string(), string_value(&op.name))]);
    for (key, tensor) in &op.attributes {
        let value = encode_value(tensor, blobs, target)?;
        if attributes.insert(key.clone(), value).is_some() {
            return Err(Error::Internal(format!(
                "op '{}' has an attribute called 'name'",
                op.name
            )));
        }
    }
    let mut inputs = BTreeMap::new();
    for (param, args) in &op.inputs {
        let arguments = args
            .iter()
            .map(|arg| {
                Ok(Binding {
                    binding: Some(match arg {
                        Argument::Var(name) => Bound::Name(name.clone()),
                        Argument::Value(tensor) if literals_may_be_blobs => {
                            Bound::Value(encode_value(tensor, blobs, target)?)
                        }
                        Argument::Value(tensor) if is_classify_classes(op, param) => {
                            Bound::Value(list_value(tensor))
                        }
                        Argument::Value(tensor) => Bound::Value(immediate(tensor)),
                    }),
                })
            })
            .collect::<Result<_, Error>>()?;
        if inputs
            .insert(param.clone(), mil::Argument { arguments })
            .is_some()
        {
            return Err(Error::Internal(format!(
                "op '{}' binds input '{param}' twice",
                op.name
            )));
        }
    }
    Ok(mil::Operation {
        r#type: op.op_type.clone(),
        inputs,
        outputs: op
            .outputs
            .iter()
            .enumerate()
            .map(|(i, var)| match classify_dictionary(op, i) {
                Some(key) => mil::NamedValueType {
                    name: var.name.clone(),
                    r#type: Some(dictionary_type(key, var.ty.dtype)),
                },
                None => named_value_type(var),
            })
            .collect(),
        blocks: Vec::new(),
        attributes,
    })
}

/// True for the `classes` of a `classify` op, which coremltools binds as a list literal.
fn is_classify_classes(op: &Operation, param: &str) -> bool {
    op.op_type == "classify" && param == "classes"
}

/// The key dtype when output `index` of `op` is the probabilities of a `classify` op: held as
/// an fp64 vector in class order in the IR, written as MIL's `dict<class, fp64>`.
fn classify_dictionary(op: &Operation, index: usize) -> Option<DType> {
    if op.op_type != "classify" || index != 1 {
        return None;
    }
    op.input("classes").and_then(|a| match a.first() {
        Some(Argument::Value(t)) => Some(t.dtype()),
        _ => None,
    })
}

/// A constant as a blob reference (appended to weight.bin now) or an immediate value.
fn encode_value<'a>(
    tensor: &'a Tensor,
    blobs: &mut BlobWriter<'a>,
    target: Target,
) -> Result<mil::Value, Error> {
    if !stored_in_blob(tensor, target) {
        return Ok(immediate(tensor));
    }
    let offset = blobs.append(tensor)?;
    Ok(mil::Value {
        doc_string: String::new(),
        r#type: Some(value_type(&tensor.ty())),
        value: Some(mil::value::Value::BlobFileValue(
            mil::value::BlobFileValue {
                file_name: format!("{MODEL_PATH_PREFIX}{WEIGHTS_DIR}/{WEIGHT_FILE}"),
                offset,
            },
        )),
    })
}

fn named_value_type(var: &Var) -> mil::NamedValueType {
    mil::NamedValueType {
        name: var.name.clone(),
        r#type: Some(value_type(&var.ty)),
    }
}

/// A state input: its tensor type wrapped in a `StateType`.
fn named_state_type(var: &Var) -> mil::NamedValueType {
    mil::NamedValueType {
        name: var.name.clone(),
        r#type: Some(state_value_type(&var.ty)),
    }
}

/// Moves the finished package `temp` to `dest`, replacing an existing `dest` only when
/// `overwrite` is set (the old one is moved aside first and restored if the move fails).
fn install(temp: &Path, dest: &Path, overwrite: bool) -> Result<(), Error> {
    if dest.symlink_metadata().is_err() {
        return fs::rename(temp, dest).map_err(|e| Error::io(dest, e));
    }
    if !overwrite {
        return Err(exists(dest));
    }
    let old = temp_paths::sibling(dest, "old")?;
    remove_any(&old)?;
    fs::rename(dest, &old).map_err(|e| Error::io(dest, e))?;
    if let Err(e) = fs::rename(temp, dest) {
        let restored = fs::rename(&old, dest);
        let message = match restored {
            Ok(()) => e.to_string(),
            Err(_) => format!("{e}; the previous package is kept at {}", old.display()),
        };
        return Err(Error::io(dest, std::io::Error::new(e.kind(), message)));
    }
    remove_any(&old)
}

/// The usage error for an existing destination.
fn exists(dest: &Path) -> Error {
    Error::Usage(format!(
        "{} exists; pass --force to replace it",
        dest.display()
    ))
}
