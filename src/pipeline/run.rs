//! `run`: execute a package with the reference interpreter.

use super::chain::{is_chain, Chain};
use super::read_package_function;
use crate::interp::{self, RunOptions, Value};
use crate::ir::{sanitize_name, Function};
use crate::{input_file, npy, Error};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Input files by input name (the package's name or the source model's name it came from).
pub type RunInputs = Vec<(String, PathBuf)>;

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
        let values = read_inputs(chain.join()?.main(), inputs)?;
        return chain
            .run(&values, options)
            .map_err(|(package, e)| run_error(e, &package, inputs, None));
    }
    if let Some(dir) = state_dir {
        super::check_outputs(&[path], &[("--state-dir", dir)])?;
    }
    let program = read_package_function(path, function)?;
    let main = program.main();
    let values = read_inputs(main, inputs)?;
    let mut states = match state_dir {
        Some(dir) => load_states(main, dir)?,
        None => interp::zero_states(main),
    };
    let outputs = interp::run_stateful(main, &values, &mut states, options)
        .map_err(|e| run_error(e, path, inputs, state_dir))?;
    if let Some(dir) = state_dir {
        save_states(&states, dir)?;
    }
    Ok(outputs)
}

/// The `.npy` inputs, checked against `main`'s inputs, by input name.
fn read_inputs(main: &Function, inputs: &RunInputs) -> Result<BTreeMap<String, Value>, Error> {
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
        let bytes = input_file::read(file).map_err(|e| input_file::error(file, e))?;
        let value = npy::parse(&bytes).map_err(|e| Error::invalid(file, e.to_string()))?;
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
