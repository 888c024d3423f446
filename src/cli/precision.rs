//! Precision flags shared by `convert` and the compression commands.

use super::values;
use crate::passes::mixed_precision::{Fp32Pattern, Fp32Rules, KeptOp};
use crate::pipeline::{Calibration, MixedPrecision, Precision, PrecisionReport};
use crate::verify::InputRange;
use clap::Args;
use std::path::PathBuf;

/// Compute precision and mixed-precision rules.
#[derive(Debug, Args)]
pub struct PrecisionArgs {
    /// Compute precision: fp16, fp32, or auto (fp16 keeping in fp32 the ops that overflow or
    /// lose accuracy on calibration inputs).
    #[arg(long, default_value = "fp16", value_parser = values::named::<Precision>(&["fp16", "fp32", "auto"]))]
    pub precision: Precision,
    /// Keep ops of these MIL types in fp32 (e.g. pow,sqrt).
    #[arg(long, value_name = "TYPE[,TYPE...]", value_delimiter = ',')]
    pub fp32_ops: Vec<String>,
    /// Keep ops whose name or source node name matches this glob in fp32 (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub fp32_nodes: Vec<String>,
    /// Keep an op pattern in fp32: layer-norm (a decomposed LayerNorm/RMSNorm's pow…sqrt run
    /// and its reduce ops) (repeatable).
    #[arg(long, value_name = "PATTERN", value_parser = values::named::<Fp32Pattern>(&["layer-norm"]))]
    pub fp32_pattern: Vec<Fp32Pattern>,
    /// With --precision auto: a directory of .npz input sets (default: seeded random inputs
    /// within --input-range).
    #[arg(long, value_name = "DIR")]
    pub calibration: Option<PathBuf>,
    /// With --precision auto and no --calibration: random input sets to search with.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 3,
        value_parser = values::count,
        conflicts_with = "calibration"
    )]
    pub calibration_samples: usize,
}

impl PrecisionArgs {
    /// The mixed-precision settings; `ranges` bound the random calibration inputs.
    pub fn mixed(&self, ranges: &[InputRange]) -> MixedPrecision {
        MixedPrecision {
            rules: Fp32Rules {
                ops: self.fp32_ops.clone(),
                nodes: self.fp32_nodes.clone(),
                patterns: self.fp32_pattern.clone(),
            },
            calibration: match &self.calibration {
                Some(dir) => Calibration::Dir(dir.clone()),
                None => Calibration::Random {
                    samples: self.calibration_samples,
                    ranges: ranges.to_vec(),
                },
            },
        }
    }
}

/// Prints the ops kept in fp32 and why (the automatic search's with their fp32 range and
/// fp16 error); nothing for plain fp16 or fp32.
pub fn print_fp32_ops(report: &PrecisionReport) {
    let Some(fp16) = &report.fp16 else { return };
    if fp16.fp32_ops.is_empty() && report.auto.is_none() {
        return;
    }
    println!(
        "precision: {} ops in fp16, {} in fp32, {} casts",
        fp16.fp16_ops,
        fp16.fp32_ops.len(),
        fp16.casts
    );
    let found: Vec<&KeptOp> = report.auto.iter().flat_map(|a| &a.kept).collect();
    for (name, reason) in &fp16.fp32_ops {
        match found.iter().find(|k| &k.name == name) {
            Some(k) => println!(
                "  fp32 {name} ({}{}): max |fp32 value| {}, fp16 error {}{} — {}",
                k.op_type,
                k.origin
                    .as_deref()
                    .map(|o| format!(", node {o}"))
                    .unwrap_or_default(),
                number(k.max_abs_fp32),
                number(k.fp16_max_rel),
                match k.fp16_non_finite {
                    Some(n) if n > 0 => format!(" and {n} NaN/inf"),
                    _ => String::new(),
                },
                k.reason
            ),
            None => println!("  fp32 {name}: {reason}"),
        }
    }
    if let Some(auto) = &report.auto {
        println!(
            "auto: {} rounds on {} calibration input set{}: {}",
            auto.rounds,
            auto.samples,
            if auto.samples == 1 { "" } else { "s" },
            auto.verify.summary()
        );
    }
}

fn number(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.3e}"))
}
