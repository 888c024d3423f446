//! `run`: execute a package with the reference interpreter.

use super::chain::{is_chain, Chain};
use super::read_package_function;
use crate::interp::{self, RunOptions, Value};
use crate::ir::{sanitize_name, Function};
use crate::{npy, Error};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Input files by input name (the package's name or the source model's name it came from).
pub type RunInputs = Vec<(String, PathBuf)>;

/// Runs the package at `path` (its default function; or the chain directory `split` wrote,
/// package after package) on `.npy` inputs and returns its outputs by name.
pub fn run_package(
    path: &Path,
    inputs: &RunInputs,
    options: RunOptions,
) -> Result<Vec<(String, Value)>, Error> {
    run_package_function(path, None, inputs, options)
}

/// Runs function `function` of the package at `path` (its default function when `None`), as
/// [`run_package`] does. A chain directory's packages have one function each.
pub fn run_package_function(
    path: &Path,
    function: Option<&str>,
    inputs: &RunInputs,
    options: RunOptions,
) -> Result<Vec<(String, Value)>, Error> {
    if is_chain(path) {
        if let Some(name) = function {
            return Err(Error::Usage(format!(
                "--function {name}: {} is a chain of single-function packages",
                path.display()
            )));
        }
        let chain = Chain::read(path)?;
        let values = read_inputs(chain.join()?.main(), inputs)?;
        return chain
            .run(&values, options)
            .map_err(|(package, e)| run_error(e, &package, inputs));
    }
    let program = read_package_function(path, function)?;
    let values = read_inputs(program.main(), inputs)?;
    interp::run(program.main(), &values, options).map_err(|e| run_error(e, path, inputs))
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
    Ok(values)
}

/// The crate error for an interpreter failure in the package at `path`: a bad input names its
/// file.
fn run_error(e: interp::InterpError, path: &Path, inputs: &RunInputs) -> Error {
    match e {
        interp::InterpError::Input { ref name, .. } => {
            let file = inputs
                .iter()
                .find(|(g, _)| sanitize_name(g) == *name)
                .map(|(_, f)| f.as_path())
                .unwrap_or(path);
            Error::invalid(file, e.to_string())
        }
        other => Error::invalid(path, other.to_string()),
    }
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
