//! `mlpack run`.

use super::progress::Progress;
use super::split_assignment;
use crate::interp::{RunOptions, Value};
use crate::pipeline::RunOutputs;
use crate::{npy, pipeline, Error};
use clap::Args;
use std::path::{Path, PathBuf};

/// Flags of `mlpack run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The .mlpackage to run, or a chain directory written by `split` (run package by package).
    package: PathBuf,
    /// An input value: NAME=FILE.npy, or NAME=FILE.png|.jpg for an image input (repeatable;
    /// one per model input).
    #[arg(long = "input", value_name = "NAME=FILE", value_parser = parse_input)]
    inputs: Vec<(String, PathBuf)>,
    /// Directory for the outputs, one NAME.npy per output (NAME.json for a classifier's label
    /// and probabilities).
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
    let run = pipeline::run_package_outputs(
        &args.package,
        args.function.as_deref(),
        &args.inputs,
        args.state_dir.as_deref(),
        RunOptions {
            emulate_fp16: args.emulate_fp16,
        },
    )?;
    progress.clear();
    let outputs = &run.values;
    let files: Vec<PathBuf> = outputs
        .iter()
        .map(|(name, value)| {
            let json = matches!(value, Value::Str(_)) || is_probabilities(&run, name);
            let extension = if json { "json" } else { "npy" };
            args.output_dir.join(format!("{name}.{extension}"))
        })
        .collect();
    let read: Vec<&Path> = std::iter::once(args.package.as_path())
        .chain(args.inputs.iter().map(|(_, f)| f.as_path()))
        .collect();
    let written: Vec<(&str, &Path)> = files.iter().map(|f| ("-o", f.as_path())).collect();
    pipeline::check_outputs(&read, &written)?;
    std::fs::create_dir_all(&args.output_dir).map_err(|e| Error::io(&args.output_dir, e))?;
    for ((name, value), path) in outputs.iter().zip(&files) {
        let (bytes, shown) = match (&run.classes, value) {
            (Some((probabilities, labels)), _) if probabilities == name => {
                let pairs = class_probabilities(labels, value);
                (dictionary_json(&pairs).into_bytes(), top_classes(&pairs))
            }
            (_, Value::Str(strings)) => {
                let json = match strings.ndim() {
                    0 => serde_json::to_string(&strings.iter().next()),
                    _ => serde_json::to_string(&strings.iter().collect::<Vec<_>>()),
                }
                .map_err(|e| Error::Internal(e.to_string()))?;
                (format!("{json}\n").into_bytes(), json)
            }
            _ => (
                npy::serialize(value).map_err(|e| Error::invalid(path, e.to_string()))?,
                format!("{} {:?}", value.kind(), value.shape()),
            ),
        };
        std::fs::write(path, bytes).map_err(|e| Error::io(path, e))?;
        if !quiet {
            println!("{name}: {shown} -> {}", path.display());
        }
    }
    Ok(())
}

/// True when output `name` is the probabilities of a classifier.
fn is_probabilities(run: &RunOutputs, name: &str) -> bool {
    run.classes.as_ref().is_some_and(|(p, _)| p == name)
}

/// Each class label with its probability, in class order.
fn class_probabilities(labels: &[String], value: &Value) -> Vec<(String, f64)> {
    let probabilities: Vec<f64> = value
        .to_f32_array()
        .map(|a| a.iter().map(|&p| p as f64).collect())
        .unwrap_or_default();
    labels.iter().cloned().zip(probabilities).collect()
}

/// A JSON object mapping each label to its probability, in class order.
fn dictionary_json(pairs: &[(String, f64)]) -> String {
    let entries: Vec<String> = pairs
        .iter()
        .map(|(label, p)| {
            let key = serde_json::Value::String(label.clone());
            let value = serde_json::Number::from_f64(*p)
                .map_or(serde_json::Value::Null, serde_json::Value::Number);
            format!("  {key}: {value}")
        })
        .collect();
    format!("{{\n{}\n}}\n", entries.join(",\n"))
}

/// The three most probable classes, for the terminal.
fn top_classes(pairs: &[(String, f64)]) -> String {
    let mut sorted: Vec<&(String, f64)> = pairs.iter().collect();
    sorted.sort_by(|a, b| b.1.total_cmp(&a.1));
    let top: Vec<String> = sorted
        .iter()
        .take(3)
        .map(|(label, p)| format!("{label} {p:.4}"))
        .collect();
    format!("{} classes, top {}", pairs.len(), top.join(", "))
}
