//! `mlpack run`.

use super::progress::Progress;
use super::split_assignment;
use crate::interp::RunOptions;
use crate::{npy, pipeline, Error};
use clap::Args;
use std::path::{Path, PathBuf};

/// Flags of `mlpack run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The .mlpackage to run, or a chain directory written by `split` (run package by package).
    package: PathBuf,
    /// An input value: NAME=FILE.npy (repeatable; one per model input).
    #[arg(long = "input", value_name = "NAME=FILE.npy", value_parser = parse_input)]
    inputs: Vec<(String, PathBuf)>,
    /// Directory for the outputs, one NAME.npy per output.
    #[arg(short, long, default_value = ".")]
    output_dir: PathBuf,
    /// Round the result of every fp16-typed op to fp16, as a device computing in fp16 would
    /// (by default fp16 ops compute in fp32).
    #[arg(long)]
    emulate_fp16: bool,
    /// The function to run (default: the package's default function).
    #[arg(long, value_name = "NAME")]
    function: Option<String>,
    /// Keep the states (of the package, or of its --function) in DIR: each state is read from
    /// DIR/STATE.npy (zeros when absent) and written back after the run.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

fn parse_input(s: &str) -> Result<(String, PathBuf), String> {
    split_assignment(s).map(|(n, f)| (n, PathBuf::from(f)))
}

/// Runs `mlpack run`.
pub fn execute(args: &RunArgs, progress: &Progress, quiet: bool) -> Result<(), Error> {
    progress.stage(&format!("running {}", args.package.display()));
    let outputs = pipeline::run_package_function(
        &args.package,
        args.function.as_deref(),
        &args.inputs,
        args.state_dir.as_deref(),
        RunOptions {
            emulate_fp16: args.emulate_fp16,
        },
    )?;
    progress.clear();
    let files: Vec<PathBuf> = outputs
        .iter()
        .map(|(name, _)| args.output_dir.join(format!("{name}.npy")))
        .collect();
    let read: Vec<&Path> = std::iter::once(args.package.as_path())
        .chain(args.inputs.iter().map(|(_, f)| f.as_path()))
        .collect();
    let written: Vec<(&str, &Path)> = files.iter().map(|f| ("-o", f.as_path())).collect();
    pipeline::check_outputs(&read, &written)?;
    std::fs::create_dir_all(&args.output_dir).map_err(|e| Error::io(&args.output_dir, e))?;
    for ((name, value), path) in outputs.iter().zip(&files) {
        let bytes = npy::serialize(value).map_err(|e| Error::invalid(path, e.to_string()))?;
        std::fs::write(path, bytes).map_err(|e| Error::io(path, e))?;
        if !quiet {
            println!(
                "{name}: {} {:?} -> {}",
                value.kind(),
                value.shape(),
                path.display()
            );
        }
    }
    Ok(())
}
