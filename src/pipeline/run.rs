//! `run`: execute a package with the reference interpreter.

use super::chain::{is_chain, Chain};
use super::read_package_function;
use crate::image_file::{self, is_image_file};
use crate::interp::{self, RunOptions, Value};
use crate::ir::{sanitize_name, Argument, DType, Function, Program};
use crate::{input_file, npy, Error};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Input files by input name (the package's name or the source model's name it came from):
/// `.npy`, or `.png`/`.jpg` for image inputs.
pub type RunInputs = Vec<(String, PathBuf)>;

/// The outputs of a run, and what says how to show them.
#[derive(Clone, Debug)]
pub struct RunOutputs {
    /// Output values by name, in the function's output order.
    pub values: Vec<(String, Value)>,
    /// For a classifier: the probabilities output's name and the class labels, in the order of
    /// its values.
    pub classes: Option<(String, Vec<String>)>,
}

/// Runs the package at `path` (its default function; or the chain directory `split` wrote,
/// package after package) on `.npy` inputs and returns its outputs by name. States, if any,
/// start at zero and are not kept.
pub fn run_package(
    path: &Path,
    inputs: &RunInputs,
    options: RunOptions,
) -> Result<Vec<(String, Value)>, Error> {
    run_package_function(path, None, inputs, None, options)
}

/// Runs function `function` of the package at `path` (its default function when `None`), as
/// [`run_package`] does. A chain directory's packages have one function each. With
/// `state_dir` (`--state-dir`), the function's states are kept there: each state is read from
/// `STATE.npy` (zeros when the file does not exist) and written back after the run, as
/// float32 holding the fp16 values, so that consecutive runs step a decoder.
pub fn run_package_function(
    path: &Path,
    function: Option<&str>,
    inputs: &RunInputs,
    state_dir: Option<&Path>,
    options: RunOptions,
) -> Result<Vec<(String, Value)>, Error> {
    run_package_outputs(path, function, inputs, state_dir, options).map(|o| o.values)
}

/// [`run_package_function`], also returning the class labels of a classifier package.
pub fn run_package_outputs(
    path: &Path,
    function: Option<&str>,
    inputs: &RunInputs,
    state_dir: Option<&Path>,
    options: RunOptions,
) -> Result<RunOutputs, Error> {
    if is_chain(path) {
        if let Some(name) = function {
            return Err(Error::Usage(format!(
                "--function {name}: {} is a chain of single-function packages",
                path.display()
            )));
        }
        if let Some(dir) = state_dir {
            return Err(Error::Usage(format!(
                "--state-dir {}: {} is a chain directory, whose packages have no states",
                dir.display(),
                path.display()
            )));
        }
        let chain = Chain::read(path)?;
        let values = read_inputs(&chain.join()?, inputs)?;
        return chain
            .run(&values, options)
            .map(|values| RunOutputs {
                values,
                classes: None,
            })
            .map_err(|(package, e)| run_error(e, &package, inputs, None));
    }
    if let Some(dir) = state_dir {
        super::check_outputs(&[path], &[("--state-dir", dir)])?;
    }
    let program = read_package_function(path, function)?;
    let main = program.main();
    let values = read_inputs(&program, inputs)?;
    let mut states = match state_dir {
        Some(dir) => load_states(main, dir)?,
        None => interp::zero_states(main),
    };
    let outputs = interp::run_stateful(main, &values, &mut states, options)
        .map_err(|e| run_error(e, path, inputs, state_dir))?;
    if let Some(dir) = state_dir {
        save_states(&states, dir)?;
    }
    let classes = program.description.classifier.as_ref().and_then(|c| {
        let labels = c.op(main)?.input("classes")?.first()?;
        match labels {
            Argument::Value(t) if t.dtype() == DType::String => {
                Some((c.probabilities.clone(), t.strings().to_vec()))
            }
            Argument::Value(t) => Some((
                c.probabilities.clone(),
                t.to_i64_vec().iter().map(i64::to_string).collect(),
            )),
            Argument::Var(_) => None,
        }
    });
    Ok(RunOutputs {
        values: outputs,
        classes,
    })
}

/// The inputs of `program`'s entry point read from their files (`.npy`; `.png` or `.jpg` for
/// image inputs), checked against its signature, by input name.
fn read_inputs(program: &Program, inputs: &RunInputs) -> Result<BTreeMap<String, Value>, Error> {
    let main = program.main();
    let mut values = BTreeMap::new();
    for (given, file) in inputs {
        let var = main
            .inputs
            .iter()
            .find(|v| v.name == *given || v.name == sanitize_name(given))
            .ok_or_else(|| {
                Error::Usage(format!(
                    "--input {given}: the package has no such input ({})",
                    signature(main)
                ))
            })?;
        let value = match program.description.images.get(&var.name) {
            Some(&layout) if is_image_file(file) => {
                let size = var.ty.static_shape().map(|s| (s[2], s[3]));
                image_file::read_image(file, given, layout, size, main.input_shapes.get(&var.name))?
            }
            None if is_image_file(file) => {
                return Err(Error::Usage(format!(
                    "--input {given}={}: '{}' is not an image input (give a .npy file)",
                    file.display(),
                    var.name
                )))
            }
            _ => {
                let bytes = input_file::read(file).map_err(|e| input_file::error(file, e))?;
                npy::parse(&bytes).map_err(|e| Error::invalid(file, e.to_string()))?
            }
        };
        if let Some(set) = main.input_shapes.get(&var.name) {
            if !set.admits(value.shape()) {
                return Err(Error::Usage(format!(
                    "--input {given}: shape {:?} is not one the package accepts ({set})",
                    value.shape()
                )));
            }
        }
        if values.insert(var.name.clone(), value).is_some() {
            return Err(Error::Usage(format!("--input {given}: given twice")));
        }
    }
    if let Some(missing) = main.inputs.iter().find(|v| !values.contains_key(&v.name)) {
        return Err(Error::Usage(format!(
            "missing --input {}=FILE.npy (expects {})",
            missing.name,
            signature(main)
        )));
    }
    Ok(values)
}

/// The crate error for an interpreter failure in the package at `path`: a bad input names its
/// file, a bad state its file in `state_dir`.
fn run_error(
    e: interp::InterpError,
    path: &Path,
    inputs: &RunInputs,
    state_dir: Option<&Path>,
) -> Error {
    match e {
        interp::InterpError::Input { ref name, .. } => {
            let file = inputs
                .iter()
                .find(|(g, _)| sanitize_name(g) == *name)
                .map(|(_, f)| f.to_path_buf())
                .or_else(|| state_dir.map(|d| state_file(d, name)))
                .unwrap_or_else(|| path.to_path_buf());
            Error::invalid(&file, e.to_string())
        }
        other => Error::invalid(path, other.to_string()),
    }
}

/// `DIR/STATE.npy`.
fn state_file(dir: &Path, state: &str) -> PathBuf {
    dir.join(format!("{state}.npy"))
}

/// Every state of `main` from `dir` (zeros for a state without a file).
fn load_states(main: &Function, dir: &Path) -> Result<BTreeMap<String, Value>, Error> {
    if main.states.is_empty() {
        return Err(Error::Usage(format!(
            "--state-dir {}: the package has no states",
            dir.display()
        )));
    }
    let mut states = interp::zero_states(main);
    for (name, value) in states.iter_mut() {
        let file = state_file(dir, name);
        if !file.exists() {
            continue;
        }
        let bytes = input_file::read(&file).map_err(|e| input_file::error(&file, e))?;
        *value = npy::parse(&bytes).map_err(|e| Error::invalid(&file, e.to_string()))?;
    }
    Ok(states)
}

/// Writes every state to `dir` (created if needed).
fn save_states(states: &BTreeMap<String, Value>, dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    for (name, value) in states {
        let file = state_file(dir, name);
        let bytes = npy::serialize(value).map_err(|e| Error::invalid(&file, e.to_string()))?;
        std::fs::write(&file, bytes).map_err(|e| Error::io(&file, e))?;
    }
    Ok(())
}

/// A function's input signature, for error messages.
fn signature(function: &Function) -> String {
    function
        .inputs
        .iter()
        .map(|v| format!("{}: {}", v.name, v.ty))
        .collect::<Vec<_>>()
        .join(", ")
}
