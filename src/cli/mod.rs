//! The command-line interface: flag parsing (clap), dispatch, printing and exit codes.
//! Every command is a thin layer over a [`crate::pipeline`] function.

mod batch;
mod compress;
mod convert;
mod describe_args;
mod diff;
mod inspect;
mod lint;
mod precision;
mod progress;
mod run;
mod split;
mod values;
mod verify;
mod verify_args;

use crate::{pipeline, Error, ExitCode};
use clap::error::ErrorKind;
use clap::{Parser, Subcommand};
use std::path::Path;

/// Convert ONNX models and torch.export archives (.pt2) to Core ML ML Program packages, inspect, run and verify them on Linux.
#[derive(Debug, Parser)]
#[command(name = "mlpack", version, about, long_about = None, after_help = EXIT_CODES)]
pub struct Cli {
    /// Print nothing but errors.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

const EXIT_CODES: &str = "Exit codes: 0 success, 1 internal error, 2 usage error, \
3 unsupported model, 4 invalid or corrupt input, 5 I/O failure, 6 verification failed, \
7 some batch items failed (the others were made), \
8 lint findings denied by --deny.";

#[derive(Debug, Subcommand)]
enum Command {
    /// Convert an ONNX model or a .pt2 archive (or re-target a package) to an .mlpackage.
    Convert(convert::ConvertArgs),
    /// Describe an .onnx model, a .pt2 archive or an .mlpackage: I/O, ops, weights.
    Inspect(inspect::InspectArgs),
    /// Run a package on the CPU with the reference interpreter.
    Run(run::RunArgs),
    /// Compare a package's outputs with its source model's (or a reference package's).
    Verify(verify::VerifyCommandArgs),
    /// Palettize weights: lookup tables of 1–8-bit indices (k-means, uniform, unique).
    Palettize(compress::PalettizeArgs),
    /// Linearly quantize weights to int8/uint8/int4/uint4.
    Quantize(compress::QuantizeArgs),
    /// Prune weights: magnitude, threshold, block or n:m sparsity.
    Prune(compress::PruneArgs),
    /// Compress weights as a JSON recipe says (per-op settings, joint compression).
    Compress(compress::CompressArgs),
    /// Cut a package into a chain of packages, each with a weight.bin under a size.
    Split(split::SplitArgs),
    /// Make every variant of a plan of each of its models: parallel, sharded, cached, reported.
    Batch(batch::BatchArgs),
    /// Compare two packages (or a source model and a package): signature, ops, weights, outputs.
    Diff(diff::DiffArgs),
    /// Check a package (or a model converted in memory) against Neural Engine and Core ML rules.
    Lint(lint::LintArgs),
}

/// Parses the process arguments, runs the command and returns the exit code.
pub fn main() -> std::process::ExitCode {
    crate::temp_paths::remove_on_signals();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return flag_error(e),
    };
    let progress = progress::Progress::new(cli.quiet);
    let result = match &cli.command {
        Command::Convert(args) => convert::execute(args, &progress, cli.quiet),
        Command::Inspect(args) => inspect::execute(args),
        Command::Run(args) => run::execute(args, &progress, cli.quiet),
        Command::Verify(args) => verify::execute(args, &progress, cli.quiet),
        Command::Palettize(args) => compress::palettize(args, &progress, cli.quiet),
        Command::Quantize(args) => compress::quantize(args, &progress, cli.quiet),
        Command::Prune(args) => compress::prune(args, &progress, cli.quiet),
        Command::Compress(args) => compress::compress(args, &progress, cli.quiet),
        Command::Split(args) => split::execute(args, cli.quiet),
        Command::Batch(args) => batch::execute(args, &progress, cli.quiet),
        Command::Diff(args) => diff::execute(args, cli.quiet),
        Command::Lint(args) => lint::execute(args, cli.quiet),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            progress.clear();
            eprintln!("mlpack: error: {}", e.one_line());
            std::process::ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// Ends a run whose flags did not parse: `--help` and `--version` print as clap writes them
/// (exit 0); every other problem is the one-line `mlpack: error: ...` with exit code 2.
fn flag_error(e: clap::Error) -> std::process::ExitCode {
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    // clap's first paragraph (the message, and for missing arguments their list), joined.
    let rendered = e.render().to_string();
    let message: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.is_empty())
        .collect();
    let message = message.join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    eprintln!("mlpack: error: {message} (see --help)");
    std::process::ExitCode::from(ExitCode::Usage as u8)
}

/// Prints `value` as pretty JSON on stdout.
fn print_json(value: &impl serde::Serialize) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Internal(e.to_string()))?;
    println!("{text}");
    Ok(())
}

/// Checks a `--report` path before any work: its folder exists, and it is neither one of
/// `inputs` nor the package `output` (nor inside or above them).
fn check_report(report: Option<&Path>, inputs: &[&Path], output: &Path) -> Result<(), Error> {
    let Some(report) = report else {
        return Ok(());
    };
    pipeline::check_report_path("--report", report)?;
    pipeline::check_outputs(inputs, &[("-o", output), ("--report", report)])
}

/// Writes `value` as pretty JSON to the `--report` file (complete or not at all); when that
/// fails the package just written at `package` is removed, so the two exist together or not
/// at all.
fn write_report(path: &Path, value: &impl serde::Serialize, package: &Path) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Internal(e.to_string()))?;
    let written = pipeline::write_atomically(path, (text + "\n").as_bytes());
    if written.is_err() {
        // Best effort: the error being returned matters more than a failed cleanup.
        let _ = std::fs::remove_dir_all(package);
    }
    written
}

/// Prints each warning on stderr as `mlpack: warning: ...` (also with `--quiet`).
fn print_warnings(warnings: &[String]) {
    for w in warnings {
        eprintln!("mlpack: warning: {w}");
    }
}

/// Parses `NAME=VALUE`.
fn split_assignment(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.is_empty() && !value.is_empty() => {
            Ok((name.to_string(), value.to_string()))
        }
        _ => Err(format!("expected NAME=VALUE, got '{s}'")),
    }
}
