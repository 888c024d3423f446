//! The command-line interface: flag parsing (clap), dispatch, printing and exit codes.
//! Every command is a thin layer over a [`crate::pipeline`] function.

mod compress;
mod convert;
mod inspect;
mod precision;
mod progress;
mod run;
mod split;
mod verify;

use crate::Error;
use clap::{Parser, Subcommand};

/// Convert ONNX models to Core ML ML Program packages, inspect, run and verify them on Linux.
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
3 unsupported model, 4 invalid or corrupt input, 5 I/O failure, 6 verification failed.";

#[derive(Debug, Subcommand)]
enum Command {
    /// Convert an ONNX model (or re-target a package) to an .mlpackage.
    Convert(convert::ConvertArgs),
    /// Describe an .onnx model, a .pt2 archive or an .mlpackage: I/O, ops, weights.
    Inspect(inspect::InspectArgs),
    /// Run a package on the CPU with the reference interpreter.
    Run(run::RunArgs),
    /// Compare a package's outputs with its source model's (or a reference package's).
    Verify(verify::VerifyArgs),
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
}

/// Parses the process arguments, runs the command and returns the exit code.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
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
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            progress.clear();
            eprintln!("mlpack: error: {}", one_line(&e));
            std::process::ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// The error message on one line (embedded newlines become "; ").
fn one_line(e: &Error) -> String {
    e.to_string()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Prints `value` as pretty JSON on stdout.
fn print_json(value: &impl serde::Serialize) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Internal(e.to_string()))?;
    println!("{text}");
    Ok(())
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
