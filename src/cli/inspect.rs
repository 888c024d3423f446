//! `mlpack inspect`.

use super::print_json;
use crate::pipeline::{self, InspectReport, PackageSummary};
use crate::Error;
use clap::Args;
use std::path::PathBuf;

/// Flags of `mlpack inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// An .onnx model or an .mlpackage.
    path: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Also print the program as MIL text (packages only).
    #[arg(long)]
    mil: bool,
}

/// Runs `mlpack inspect`.
pub fn execute(args: &InspectArgs) -> Result<(), Error> {
    let report = pipeline::inspect(&args.path, args.mil)?;
    if args.json {
        return print_json(&report);
    }
    match &report {
        InspectReport::Package(p) => print_package(p),
        InspectReport::Onnx(summary) => print!("{summary}"),
    }
    Ok(())
}

fn print_package(p: &PackageSummary) {
    println!("{} (Core ML package, {}, specification version {})", p.path.display(), p.target, p.specification_version);
    for (title, list) in [("inputs", &p.inputs), ("outputs", &p.outputs)] {
        println!("{title}:");
        for io in list {
            println!("  {:<24} {:<6} [{}]", io.name, io.dtype, io.shape.join(", "));
        }
    }
    println!("ops:");
    for (op, count) in &p.ops {
        println!("  {op:<24} {count}");
    }
    println!("weights:");
    println!("  {:<40} {:<20} {:<6} {:>12}  storage", "name", "shape", "dtype", "bytes");
    for w in &p.weights {
        let shape = format!("{:?}", w.shape);
        println!("  {:<40} {:<20} {:<6} {:>12}  {}", w.name, shape, w.dtype, w.bytes, w.storage);
    }
    println!("total: {} weights, {} parameters, {} bytes", p.weights.len(), p.total_parameters, p.total_weight_bytes);
    if let Some(mil) = &p.mil {
        println!();
        print!("{mil}");
    }
}
