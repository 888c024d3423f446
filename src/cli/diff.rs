//! `mlpack diff`.

use super::convert::FreezeArgs;
use super::print_json;
use super::verify_args::InputSetArgs;
use crate::pipeline::{self, DiffOptions, DiffReport, WeightDesc, WeightTotals};
use crate::verify::db;
use crate::Error;
use clap::Args;
use std::path::PathBuf;

/// Flags of `mlpack diff`.
#[derive(Debug, Args)]
#[command(
    after_help = "A is the reference, B the candidate: outputs are compared by the code of \
`verify` (same inputs, metrics and thresholds). Exits 0 whatever the differences."
)]
pub struct DiffArgs {
    /// The reference: an .mlpackage, or an .onnx / .pt2 source (run as its fp32 program).
    a: PathBuf,
    /// The .mlpackage compared with A.
    b: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// List every weight of both sides (scheme, stored bytes, bits per weight).
    #[arg(long)]
    weights: bool,
    #[command(flatten)]
    input_set: InputSetArgs,
    /// An ONNX A: the inputs B was converted with bound (its `--freeze` flags).
    #[command(flatten)]
    freeze: FreezeArgs,
}

/// Runs `mlpack diff`.
pub fn execute(args: &DiffArgs, quiet: bool) -> Result<(), Error> {
    let options = DiffOptions {
        npz: args.input_set.inputs.clone(),
        samples: args.input_set.random,
        seed: args.input_set.seed,
        ranges: args.input_set.input_ranges.clone(),
        weights: args.weights,
        frozen: args.freeze.frozen()?,
    };
    let report = pipeline::diff(&args.a, &args.b, &options)?;
    if args.json {
        print_json(&report)
    } else {
        if !quiet {
            print_report(&report);
        }
        Ok(())
    }
}

fn print_report(r: &DiffReport) {
    println!(
        "A: {} ({}, {}, function {})",
        r.a.path.display(),
        r.a.kind,
        r.a.target,
        r.a.function
    );
    println!(
        "B: {} ({}, {}, function {})",
        r.b.path.display(),
        r.b.kind,
        r.b.target,
        r.b.function
    );
    if r.signature.is_empty() {
        println!("signature: same inputs and outputs");
    } else {
        println!("signature differences:");
        for c in &r.signature {
            let text = |d: &Option<pipeline::IoDesc>| d.as_ref().map_or("-".into(), |d| d.text());
            println!(
                "  {:<6} {:<24} A: {:<32} B: {}",
                c.kind,
                c.name,
                text(&c.a),
                text(&c.b)
            );
        }
    }
    println!("ops:");
    println!("  {:<32} {:>6} {:>6} {:>7}", "type", "A", "B", "delta");
    for o in &r.ops {
        let delta = match o.delta {
            0 => String::new(),
            d => format!("{d:+}"),
        };
        println!("  {:<32} {:>6} {:>6} {:>7}", o.op_type, o.a, o.b, delta);
    }
    println!("weights:");
    print_totals("A", &r.weights.a);
    print_totals("B", &r.weights.b);
    if !r.weights.table.is_empty() {
        let width = r
            .weights
            .table
            .iter()
            .map(|w| w.name.len())
            .max()
            .unwrap_or(0);
        println!(
            "  {:<width$} {:<24} {:>12} {:>6}  {:<24} {:>12} {:>6}",
            "name", "A scheme", "A bytes", "bits", "B scheme", "B bytes", "bits"
        );
        let cells = |w: &Option<WeightDesc>| match w {
            Some(w) => (
                w.scheme.clone(),
                w.stored_bytes.to_string(),
                format!("{:.2}", w.bits_per_weight),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        for row in &r.weights.table {
            let (sa, ba, ka) = cells(&row.a);
            let (sb, bb, kb) = cells(&row.b);
            println!(
                "  {:<width$} {sa:<24} {ba:>12} {ka:>6}  {sb:<24} {bb:>12} {kb:>6}",
                row.name
            );
        }
    }
    let n = &r.numerics;
    match (&n.verify, &n.reason) {
        (Some(v), _) => {
            println!(
                "outputs (B against A, {} {} input set{}; verify's thresholds: cosine >= {}, SNR >= {} dB):",
                v.samples,
                v.inputs,
                if v.samples == 1 { "" } else { "s" },
                v.thresholds.min_cosine,
                v.thresholds.min_snr_db
            );
            for o in &v.outputs {
                let m = &o.metrics;
                if m.elements == 0 {
                    println!("  {}: no finite values compared", o.name);
                    continue;
                }
                let top1 = m
                    .top1
                    .map(|t| format!(", top-1 {:.1}%", t * 100.0))
                    .unwrap_or_default();
                println!(
                    "  {}: cosine {:.6}, SNR {}, max abs {:.3e}{top1} — verify: {}",
                    o.name,
                    m.cosine,
                    db(m.snr_db),
                    m.max_abs,
                    o.verdict.word()
                );
            }
        }
        (None, reason) => println!(
            "outputs: NOT COMPARED — {}",
            reason.as_deref().unwrap_or("no reason recorded")
        ),
    }
}

/// `  A: 12 weights, 1.2M parameters, 2400000 bytes, 16.00 bits/weight (fp16 12)`.
fn print_totals(label: &str, t: &WeightTotals) {
    let schemes: Vec<String> = t.schemes.iter().map(|(s, n)| format!("{s} ×{n}")).collect();
    println!(
        "  {label}: {} weights, {} parameters, {} bytes, {:.2} bits/weight ({})",
        t.count,
        t.parameters,
        t.stored_bytes,
        t.bits_per_weight,
        schemes.join(", ")
    );
}
