//! `mlpack verify`.

use super::convert::FreezeArgs;
use super::progress::Progress;
use super::values;
use super::verify_args::InputSetArgs;
use super::{print_json, split_assignment};
use crate::pipeline;
use crate::verify::{
    db, per_op::PerOpReport, InputRange, ThresholdOverrides, Verdict, VerifyOptions, VerifyReport,
};
use crate::Error;
use clap::Args;
use std::path::PathBuf;

/// Flags of `mlpack verify`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exits with code 6 when an output breaks a threshold, or when the comparison is \
inconclusive (an output has no finite source value on the inputs). Defaults: fp32 candidates need \
cosine >= 0.9999 and SNR >= 40 dB; candidates computing in fp16 need cosine >= 0.999 and SNR >= 25 dB."
)]
pub struct VerifyCommandArgs {
    /// The reference: the original .onnx or .pt2 (run in fp32) or a reference .mlpackage.
    source: PathBuf,
    /// The .mlpackage to check, or a chain directory written by `split`.
    candidate: PathBuf,
    #[command(flatten)]
    input_set: InputSetArgs,
    /// Fail when any output's max |candidate − source| exceeds X.
    #[arg(long, value_name = "X", value_parser = values::non_negative)]
    max_abs: Option<f64>,
    /// Fail when any output's SNR is below DB decibels.
    #[arg(long, value_name = "DB", value_parser = values::finite)]
    min_snr: Option<f64>,
    /// Fail when any output's cosine similarity is below C.
    #[arg(long, value_name = "C", value_parser = values::cosine)]
    min_cosine: Option<f64>,
    /// Compare every intermediate value both programs share and show the first op that diverges.
    #[arg(long)]
    per_op: bool,
    /// Run the candidate's fp16 ops without rounding their results to fp16.
    #[arg(long)]
    no_emulate_fp16: bool,
    /// Stateful packages: step source and candidate together N predictions per input
    /// sequence, from zero states (random inputs are drawn per step).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = values::count)]
    steps: usize,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// The candidate's function to check (default: its default function).
    #[arg(long, value_name = "NAME")]
    function: Option<String>,
    /// ONNX sources: the inputs the candidate was converted with bound (its `--freeze` flags).
    #[command(flatten)]
    freeze: FreezeArgs,
}

/// Parses `NAME=LO,HI`.
pub fn parse_range(s: &str) -> Result<InputRange, String> {
    let (name, range) = split_assignment(s)?;
    let bounds = range.split_once(',').and_then(|(lo, hi)| {
        Some((
            lo.trim().parse::<f64>().ok()?,
            hi.trim().parse::<f64>().ok()?,
        ))
    });
    let (lo, hi) = bounds.ok_or_else(|| format!("expected NAME=LO,HI with numbers, got '{s}'"))?;
    Ok(InputRange { name, lo, hi })
}

/// Runs `mlpack verify`.
pub fn execute(args: &VerifyCommandArgs, progress: &Progress, quiet: bool) -> Result<(), Error> {
    let options = VerifyOptions {
        inputs: args.input_set.random_spec(),
        thresholds: ThresholdOverrides {
            max_abs: args.max_abs,
            min_snr_db: args.min_snr,
            min_cosine: args.min_cosine,
        },
        floor: None,
        no_emulate_fp16: args.no_emulate_fp16,
        per_op: args.per_op,
        steps: args.steps,
    };
    progress.stage(&format!("verifying {}", args.candidate.display()));
    let report = pipeline::verify_function(
        &args.source,
        &args.candidate,
        args.function.as_deref(),
        &args.freeze.frozen()?,
        args.input_set.inputs.as_deref(),
        &options,
    )?;
    progress.clear();
    if args.json {
        print_json(&report)?;
    } else if !quiet {
        print_report(args, &report);
    }
    match report.verdict {
        Verdict::Ok | Verdict::Degraded => Ok(()),
        Verdict::Inconclusive => Err(Error::VerificationFailed(format!(
            "{}; give inputs in the model's domain with --input-range NAME=LO,HI or --inputs FILE.npz",
            report.summary()
        ))),
        Verdict::Failed => Err(Error::VerificationFailed(report.summary())),
    }
}

fn print_report(args: &VerifyCommandArgs, r: &VerifyReport) {
    let t = &r.thresholds;
    let precision = if r.candidate_fp16 {
        if r.emulate_fp16 {
            "fp16 candidate, fp16 rounding emulated"
        } else {
            "fp16 candidate, fp16 rounding not emulated"
        }
    } else {
        "fp32 candidate"
    };
    let max_abs = t
        .max_abs
        .map(|m| format!(", max abs <= {m}"))
        .unwrap_or_default();
    println!(
        "{} vs {} ({precision})",
        args.candidate.display(),
        args.source.display()
    );
    println!(
        "thresholds: cosine >= {}, SNR >= {} dB{max_abs}",
        t.min_cosine, t.min_snr_db
    );
    if !r.input_roles.is_empty() {
        println!("inputs: {}", r.roles_text());
    }
    for o in &r.outputs {
        let m = &o.metrics;
        if m.elements == 0 {
            println!(
                "  {}: no finite values compared — {}: {}",
                o.name,
                o.verdict.word(),
                o.failures.join("; ")
            );
            continue;
        }
        let mut line = format!(
            "  {}: max abs {:.3e}, mean abs {:.3e}, max rel {:.3e}, cosine {:.6}, SNR {}, PSNR {}",
            o.name,
            m.max_abs,
            m.mean_abs,
            m.max_rel,
            m.cosine,
            db(m.snr_db),
            db(m.psnr_db)
        );
        if let (Some(t1), Some(t5)) = (m.top1, m.top5) {
            line += &format!(", top-1 {:.1}%, top-5 {:.1}%", t1 * 100.0, t5 * 100.0);
        }
        if m.reference_non_finite > 0 {
            line += &format!(", source NaN/inf: {}", m.reference_non_finite);
        }
        let verdict = if o.failures.is_empty() {
            o.verdict.word().to_string()
        } else {
            format!("{}: {}", o.verdict.word(), o.failures.join("; "))
        };
        println!("{line} — {verdict}");
    }
    if let Some(p) = &r.per_op {
        print_per_op(p);
    }
    println!("verify: {}", r.summary());
}

/// Formats an optional (min, max) range.
fn range(r: Option<(f64, f64)>) -> String {
    r.map(|(lo, hi)| format!("[{lo:.4e}, {hi:.4e}]"))
        .unwrap_or_else(|| "[no finite values]".into())
}

fn print_per_op(p: &PerOpReport) {
    println!(
        "per-op (relative max error = max abs error / max |source|; divergence above {:.3e}):",
        p.level * crate::verify::per_op::JUMP_FACTOR
    );
    let mut casts = p.casts.iter().peekable();
    for v in &p.values {
        while let Some(c) = casts.next_if(|c| c.index <= v.index) {
            println!(
                "  -- cast {} -> {} ({} -> {})",
                c.from, c.to, c.from_dtype, c.to_dtype
            );
        }
        let m = &v.metrics;
        let flag = if m.candidate_non_finite > 0 {
            format!("  NaN/inf: {}", m.candidate_non_finite)
        } else {
            String::new()
        };
        println!(
            "  #{:<4} {:<28} {:<14} {:<5} node {:<24} max rel {:.3e}  cosine {:.6}{flag}",
            v.index,
            v.name,
            v.op_type,
            v.dtype,
            v.origin.as_deref().unwrap_or("-"),
            m.max_rel,
            m.cosine
        );
    }
    for c in casts {
        println!(
            "  -- cast {} -> {} ({} -> {})",
            c.from, c.to, c.from_dtype, c.to_dtype
        );
    }
    println!(
        "  {} values compared, {} not shared with the source",
        p.values.len(),
        p.not_compared
    );
    match &p.first_divergence {
        None => println!("first divergence: none"),
        Some(d) => {
            let v = &d.value;
            println!(
                "first divergence: {} = {} (op {}, ONNX node {}, {}): {}",
                v.name,
                v.op_type,
                v.op,
                v.origin.as_deref().unwrap_or("-"),
                v.dtype,
                d.reason
            );
            println!(
                "  source range {}, candidate range {}",
                range(v.metrics.reference_range),
                range(v.metrics.candidate_range)
            );
        }
    }
}
