//! `mlpack lint`.

use super::print_json;
use super::values;
use crate::ir::Target;
use crate::pipeline::{self, LintOptions, LintReport, Precision, Severity, RULES};
use crate::Error;
use clap::Args;
use serde::Deserialize;
use std::path::PathBuf;

/// Findings of one rule listed before the rest are summed up (`--json` lists all).
const SHOWN_PER_RULE: usize = 10;

/// Flags of `mlpack lint`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exits 0 whatever it finds, unless --deny: then 8 when a finding is at or \
above the denied severity. `mlpack lint --rules` lists every rule with its severity and sources."
)]
pub struct LintArgs {
    /// An .mlpackage, or an .onnx / .pt2 model (converted in memory, not written).
    #[arg(required_unless_present = "rules")]
    path: Option<PathBuf>,
    /// Print the report (or with --rules, the rules) as JSON.
    #[arg(long)]
    json: bool,
    /// Fail (exit 8) on findings of this severity or worse: warnings, or errors.
    #[arg(long, value_name = "LEVEL", value_parser = values::named::<Deny>(&["warnings", "errors"]))]
    deny: Option<Deny>,
    /// List every rule with its severity and public sources, and exit.
    #[arg(long, conflicts_with_all = ["deny", "inputs"])]
    rules: bool,
    /// An input set (NumPy .npz) to run in fp32, for the fp16 overflow rules.
    #[arg(long, value_name = "FILE.npz")]
    inputs: Option<PathBuf>,
    /// For an .onnx / .pt2 model: the deployment target to convert for.
    #[arg(long, default_value = "iOS17")]
    target: String,
    /// For an .onnx / .pt2 model: the compute precision to convert at.
    #[arg(long, default_value = "fp16", value_parser = values::named::<Precision>(&["fp16", "fp32"]))]
    precision: Precision,
}

/// The `--deny` levels.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Deny {
    /// Warnings and errors.
    Warnings,
    /// Errors only.
    Errors,
}

impl Deny {
    /// The least severity denied.
    fn level(self) -> Severity {
        match self {
            Deny::Warnings => Severity::Warning,
            Deny::Errors => Severity::Error,
        }
    }
}

/// Runs `mlpack lint`.
pub fn execute(args: &LintArgs, quiet: bool) -> Result<(), Error> {
    if args.rules {
        return match args.json {
            true => print_json(&RULES),
            false => {
                print_rules();
                Ok(())
            }
        };
    }
    let Some(path) = &args.path else {
        return Err(Error::Usage("lint needs a PATH (or --rules)".into()));
    };
    let target: Target = args
        .target
        .parse()
        .map_err(|e| Error::Usage(format!("--target: {e}")))?;
    let options = LintOptions {
        npz: args.inputs.clone(),
        target,
        precision: args.precision,
    };
    let report = pipeline::lint(path, &options)?;
    if args.json {
        print_json(&report)?;
    } else if !quiet {
        print_report(&report);
    }
    let Some(deny) = args.deny else {
        return Ok(());
    };
    let level = deny.level();
    let denied = report
        .findings
        .iter()
        .filter(|f| f.severity >= level)
        .count();
    match denied {
        0 => Ok(()),
        n => Err(Error::LintDenied(format!(
            "{n} finding{} at {} level or above (--deny {})",
            if n == 1 { "" } else { "s" },
            level.name(),
            match deny {
                Deny::Errors => "errors",
                Deny::Warnings => "warnings",
            }
        ))),
    }
}

fn print_rules() {
    for r in RULES {
        println!("{:<20} {:<8} {}", r.id, r.severity.name(), r.title);
        println!("{:<29} fix: {}", "", r.hint);
        for s in r.sources {
            println!("{:<29} source: {s}", "");
        }
    }
}

fn print_report(r: &LintReport) {
    let counts: Vec<String> = [Severity::Error, Severity::Warning, Severity::Info]
        .iter()
        .map(|s| {
            let n = r.counts.get(s).copied().unwrap_or(0);
            let plural = if n == 1 || *s == Severity::Info {
                ""
            } else {
                "s"
            };
            format!("{n} {}{plural}", s.name())
        })
        .collect();
    println!(
        "{} ({}, {}): {}{}",
        r.path.display(),
        r.kind,
        r.target,
        counts.join(", "),
        if r.ran_inputs {
            ""
        } else {
            " (fp16 overflow rules not run: no --inputs)"
        }
    );
    for rule in RULES {
        let found: Vec<_> = r.findings.iter().filter(|f| f.rule == rule.id).collect();
        if found.is_empty() {
            continue;
        }
        println!(
            "{} {} ({}): {}",
            rule.severity.name(),
            rule.id,
            found.len(),
            rule.title
        );
        for f in found.iter().take(SHOWN_PER_RULE) {
            println!("  {}: {}", f.location, f.message);
        }
        if found.len() > SHOWN_PER_RULE {
            println!(
                "  … and {} more (--json lists every finding)",
                found.len() - SHOWN_PER_RULE
            );
        }
        println!("  fix: {}", rule.hint);
    }
}
