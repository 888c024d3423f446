//! `run`: execute a package with the reference interpreter.

use crate::backend::read_package;
use crate::interp::{self, RunOptions, Value};
use crate::ir::{sanitize_name, Function};
use crate::{npy, Error};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Input files by input name (the package's name or the source model's name it came from).
pub type RunInputs = Vec<(String, PathBuf)>;

/// Runs the package at `path` on `.npy` inputs and returns its outputs by name. States, if
/// any, start at zero and are not kept.
pub fn run_package(
    path: &Path,
    inputs: &RunInputs,
    options: RunOptions,
) -> Result<Vec<(String, Value)>, Error> {
    run_package_with_states(path, inputs, None, options)
}

/// Like [`run_package`], with the package's states kept in `state_dir` (`--state-dir`): each
/// state is read from `STATE.npy` there (zeros when the file does not exist) and written back
/// after the run, as float32 holding the fp16 values, so that consecutive runs step a decoder.
pub fn run_package_with_states(
    path: &Path,
    inputs: &RunInputs,
    state_dir: Option<&Path>,
    options: RunOptions,
) -> Result<Vec<(String, Value)>, Error> {
    let program = read_package(path)?;
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
        let bytes = std::fs::read(file).map_err(|e| Error::io(file, e))?;
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
    let mut states = match state_dir {
        Some(dir) => load_states(main, dir)?,
        None => interp::zero_states(main),
    };
    let outputs =
        interp::run_stateful(main, &values, &mut states, options).map_err(|e| match e {
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
        })?;
    if let Some(dir) = state_dir {
        save_states(&states, dir)?;
    }
    Ok(outputs)
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
        let bytes = std::fs::read(&file).map_err(|e| Error::io(&file, e))?;
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
