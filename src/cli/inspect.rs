//! `mlpack inspect`.

use super::print_json;
use crate::frontend::onnx::{Coverage, DimSummary, NodeCoverage, OnnxSummary, Refusal, Storage};
use crate::pipeline::{self, ChainSummary, DescriptionInfo, InspectReport, IoInfo, PackageSummary};
use crate::Error;
use clap::Args;
use std::path::{Path, PathBuf};

/// Flags of `mlpack inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// An .onnx model, a .pt2 archive, an .mlpackage or a chain directory written by `split`.
    path: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Also print the program as MIL text (for ONNX: the fp32 program as converted).
    #[arg(long)]
    mil: bool,
    /// List every op of a package with its compute precision (fp16/fp32, casts).
    #[arg(long)]
    ops: bool,
    /// Describe this function of a multifunction package (default: its default function).
    #[arg(long, value_name = "NAME")]
    function: Option<String>,
    /// ONNX: say which nodes would convert (for iOS17) and why the others would not, by
    /// running each node's converter; nothing is written.
    #[arg(long, conflicts_with_all = ["mil", "ops", "function"])]
    coverage: bool,
}

/// Runs `mlpack inspect`.
pub fn execute(args: &InspectArgs) -> Result<(), Error> {
    if args.coverage {
        let coverage = pipeline::coverage(&args.path)?;
        return match args.json {
            true => print_json(&coverage),
            false => {
                print_coverage(&coverage);
                Ok(())
            }
        };
    }
    let report =
        pipeline::inspect_function(&args.path, args.function.as_deref(), args.mil, args.ops)?;
    if args.json {
        return print_json(&report);
    }
    match &report {
        InspectReport::Package(p) => print_package(p),
        InspectReport::Pt2 { archive, program } => {
            println!(
                "{} (torch.export archive: {}, schema {}, {} IR, {} tensors)",
                args.path.display(),
                archive.container,
                archive.schema_version,
                archive.ir,
                archive.tensors
            );
            if !archive.symbols.is_empty() {
                println!("symbols: {}", archive.symbols.join(", "));
            }
            println!("converted (fp32, {}):", program.target);
            print_package_body(program);
        }
        InspectReport::Chain(c) => print_chain(c),
        InspectReport::Onnx { summary, mil } => {
            print_onnx(&args.path, summary);
            if let Some(mil) = mil {
                println!();
                print!("{mil}");
            }
        }
    }
    Ok(())
}

/// The coverage table: one row per node, with the reason of each that does not convert.
fn print_coverage(c: &Coverage) {
    println!(
        "{}: {} of {} nodes convert (target {})",
        c.path.display(),
        c.convertible,
        c.total,
        c.target
    );
    if c.nodes.is_empty() {
        return;
    }
    let width = |f: &dyn Fn(&NodeCoverage) -> usize, title: &str| {
        c.nodes.iter().map(f).max().unwrap_or(0).max(title.len())
    };
    let op = |n: &NodeCoverage| match n.domain.as_str() {
        "" | "ai.onnx" => n.op_type.clone(),
        domain => format!("{} [{domain}]", n.op_type),
    };
    let name_w = width(&|n| n.name.chars().count(), "NODE");
    let op_w = width(&|n| op(n).chars().count(), "OP");
    println!("  {:<name_w$}  {:<op_w$}  CONVERTS  REASON", "NODE", "OP");
    for n in &c.nodes {
        let verdict = if n.convertible { "yes" } else { "no" };
        let reason = match (&n.refusal, &n.reason) {
            (Some(class), Some(reason)) => format!("{}: {reason}", refusal_name(*class)),
            _ => String::new(),
        };
        let line = format!(
            "  {:<name_w$}  {:<op_w$}  {verdict:<8}  {reason}",
            n.name,
            op(n)
        );
        println!("{}", line.trim_end());
    }
}

/// How a refusal class is shown in the coverage table.
fn refusal_name(r: Refusal) -> &'static str {
    match r {
        Refusal::UnsupportedOp => "unsupported op",
        Refusal::NotForInference => "not an inference op",
        Refusal::Opset => "opset",
        Refusal::ElementType => "element type",
        Refusal::NeedsConstant => "needs a constant",
        Refusal::Upstream => "upstream",
        Refusal::Converter => "converter",
    }
}

fn print_io(title: &str, list: &[IoInfo]) {
    println!("{title}:");
    for io in list {
        println!(
            "  {:<24} {:<6} [{}]",
            io.name,
            io.dtype,
            io.shape.join(", ")
        );
    }
}

/// Image inputs, classifier outputs and metadata of a package.
fn print_description(d: &DescriptionInfo) {
    for image in &d.images {
        let bias: Vec<String> = image.bias.iter().map(f32::to_string).collect();
        println!(
            "image input: {} ({}), pixels * {} + [{}]",
            image.name,
            image.layout,
            image.scale,
            bias.join(", ")
        );
    }
    if let Some(c) = &d.classifier {
        let more = if c.classes > c.first_labels.len() {
            ", ..."
        } else {
            ""
        };
        println!(
            "classifier: {} classes ({}{more}); label output {}, probabilities output {}",
            c.classes,
            c.first_labels.join(", "),
            c.label_output,
            c.probabilities_output
        );
    }
    for (field, value) in [
        ("author", &d.author),
        ("license", &d.license),
        ("description", &d.description),
        ("version", &d.version),
    ] {
        if !value.is_empty() {
            println!("{field}: {value}");
        }
    }
    for (name, text) in &d.features {
        println!("feature {name}: {text}");
    }
    if !d.user_defined.is_empty() {
        println!("metadata:");
        for (key, value) in &d.user_defined {
            println!("  {key} = {value}");
        }
    }
}

fn print_chain(c: &ChainSummary) {
    println!(
        "{} (chain of {} Core ML packages cut from {}, {}, weight.bin at most {} bytes each)",
        c.path.display(),
        c.chunks.len(),
        c.source,
        c.target,
        c.max_weight_size
    );
    print_io("inputs", &c.inputs);
    print_io("outputs", &c.outputs);
    for (k, chunk) in c.chunks.iter().enumerate() {
        println!(
            "{}. {}: {} ops, weight.bin {} bytes",
            k + 1,
            chunk.package,
            chunk.ops,
            chunk.weight_bytes
        );
        let names = |list: &[IoInfo]| {
            list.iter()
                .map(|io| format!("{} {}[{}]", io.name, io.dtype, io.shape.join(",")))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("     in:  {}", names(&chunk.inputs));
        println!("     out: {}", names(&chunk.outputs));
    }
}

fn print_package(p: &PackageSummary) {
    println!(
        "{} (Core ML package, {}, specification version {})",
        p.path.display(),
        p.target,
        p.specification_version
    );
    print_package_body(p);
}

/// Everything of a package summary after its heading.
fn print_package_body(p: &PackageSummary) {
    if !p.functions.is_empty() {
        println!("functions (default first):");
        for f in &p.functions {
            let shapes = |list: &[IoInfo]| -> String {
                let shown: Vec<String> = list
                    .iter()
                    .map(|io| format!("{} [{}]", io.name, io.shape.join(", ")))
                    .collect();
                shown.join(", ")
            };
            println!(
                "  {:<16} {} -> {}",
                f.name,
                shapes(&f.inputs),
                shapes(&f.outputs)
            );
        }
    }
    if let Some(function) = &p.function {
        println!("function {function}:");
    }
    print_io("inputs", &p.inputs);
    print_io("outputs", &p.outputs);
    if !p.states.is_empty() {
        print_io("states", &p.states);
    }
    print_description(&p.description);
    println!("ops:");
    for (op, count) in &p.ops {
        println!("  {op:<24} {count}");
    }
    if let Some(fused) = &p.fused {
        println!("fused: {fused}");
    }
    let counts: Vec<String> = p
        .precision
        .iter()
        .map(|(d, n)| format!("{n} {d}"))
        .collect();
    if !counts.is_empty() {
        println!("compute precision: {} ops", counts.join(", "));
    }
    if !p.op_list.is_empty() {
        println!(
            "  {:>5}  {:<10} {:<20} {:<40} node",
            "#", "precision", "type", "op"
        );
        for op in &p.op_list {
            println!(
                "  {:>5}  {:<10} {:<20} {:<40} {}",
                op.index,
                op.precision,
                op.op_type,
                op.name,
                op.origin.as_deref().unwrap_or("")
            );
        }
    }
    println!("weights:");
    println!(
        "  {:<40} {:<20} {:<6} {:>12}  storage",
        "name", "shape", "dtype", "bytes"
    );
    for w in &p.weights {
        let shape = format!("{:?}", w.shape);
        println!(
            "  {:<40} {:<20} {:<6} {:>12}  {}",
            w.name, shape, w.dtype, w.bytes, w.storage
        );
    }
    println!(
        "total: {} weights, {} parameters, {} bytes",
        p.weights.len(),
        p.total_parameters,
        p.total_weight_bytes
    );
    if !p.compressed_weights.is_empty() {
        println!("compressed weights:");
        println!(
            "  {:<40} {:<20} {:<6} {:>12} {:>6}  scheme",
            "name", "shape", "dtype", "bytes", "bits"
        );
        for w in &p.compressed_weights {
            let shape = format!("{:?}", w.shape);
            println!(
                "  {:<40} {:<20} {:<6} {:>12} {:>6.2}  {}",
                w.name,
                shape,
                w.dtype,
                w.stored_bytes,
                w.bits_per_weight,
                w.scheme.join(" → ")
            );
        }
    }
    if let Some(mil) = &p.mil {
        println!();
        print!("{mil}");
    }
}

fn print_onnx(path: &Path, s: &OnnxSummary) {
    let opsets: Vec<String> = s
        .opset_imports
        .iter()
        .map(|o| {
            format!(
                "{}{}",
                if o.domain.is_empty() {
                    "ai.onnx"
                } else {
                    &o.domain
                },
                o.version
            )
        })
        .collect();
    println!(
        "{} (ONNX, IR version {}, {}, opsets {})",
        path.display(),
        s.ir_version,
        s.producer,
        opsets.join(" ")
    );
    for (title, list) in [("inputs", &s.inputs), ("outputs", &s.outputs)] {
        println!("{title}:");
        for v in list {
            let dims = match &v.dims {
                None => "?".to_string(),
                Some(d) => d
                    .iter()
                    .map(|d| match d {
                        DimSummary::Fixed(n) => n.to_string(),
                        DimSummary::Param(p) => p.clone(),
                        DimSummary::Unknown => "?".to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            println!("  {:<24} {:<8} [{dims}]", v.name, v.elem_type);
        }
    }
    println!("ops:");
    for (op, count) in &s.op_histogram {
        println!("  {op:<24} {count}");
    }
    println!("initializers:");
    println!(
        "  {:<40} {:<20} {:<8} {:>12}  storage",
        "name", "shape", "dtype", "bytes"
    );
    for i in &s.initializers {
        let storage = match &i.storage {
            Storage::Embedded => "embedded".to_string(),
            Storage::External { file, offset } => format!("external {file}@{offset}"),
        };
        println!(
            "  {:<40} {:<20} {:<8} {:>12}  {storage}",
            i.name,
            format!("{:?}", i.dims),
            i.dtype,
            i.bytes
        );
    }
    let t = &s.totals;
    println!(
        "total: {} nodes, {} initializers, {} parameters, {} bytes",
        t.nodes, t.initializers, t.parameters, t.initializer_bytes
    );
}
