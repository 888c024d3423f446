//! `--precision auto`: finds the ops that must stay in fp32 by running the fp32 program and
//! an fp16 candidate (with fp16 rounding emulated) on calibration inputs.
//!
//! Greedy search: convert with the current fp32 set, compare every intermediate value with
//! the fp32 run, take the first op whose fp16 value overflows, turns NaN/inf or jumps past
//! the verify error level (else, while an output misses the fp16 verify thresholds, the op
//! adding the most error), keep it in fp32 together with its norm region (see
//! [`super::norm_regions`]), and repeat until every value is finite and the outputs pass.

use super::norm_regions;
use crate::ir::{Function, Program};
use crate::passes::{to_fp16, Fp16Report};
use crate::verify::per_op::{PerOpReport, ValueDiff};
use crate::verify::{self, InputSpec, Sample, VerifyOptions, VerifyReport};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Largest finite fp16 value.
const FP16_MAX: f64 = 65504.0;

/// Most rounds (each one runs both programs on every sample) before giving up.
pub const MAX_ROUNDS: usize = 64;

/// An op the search keeps in fp32.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KeptOp {
    /// Op name.
    pub name: String,
    /// MIL op type.
    pub op_type: String,
    /// Source (ONNX) node, when known.
    pub origin: Option<String>,
    /// Why it is kept.
    pub reason: String,
    /// Largest |value| of its output in the fp32 run, when compared.
    pub max_abs_fp32: Option<f64>,
    /// Relative max error of its output computed in fp16, over the elements that stay
    /// finite (in the round that found it).
    pub fp16_max_rel: Option<f64>,
    /// Elements of its output that are NaN/inf in fp16 where the fp32 run is finite.
    pub fp16_non_finite: Option<usize>,
    /// The search round that kept it (1-based).
    pub round: usize,
}

/// What the search did.
#[derive(Clone, Debug, Serialize)]
pub struct AutoReport {
    /// Calibration input sets.
    pub samples: usize,
    /// Rounds run.
    pub rounds: usize,
    /// Ops kept in fp32 by the search (rule-selected ops are not listed), in order found.
    pub kept: Vec<KeptOp>,
    /// The final candidate against the fp32 program on the calibration inputs.
    pub verify: VerifyReport,
}

/// Runs the search on the fp32 `source`. `fixed` are ops kept in fp32 by rules (name →
/// reason). Returns the mixed-precision program, the fp16 pass's report and the search's.
pub fn search(
    source: &Program,
    samples: Vec<Sample>,
    fixed: &BTreeMap<String, String>,
) -> Result<(Program, Fp16Report, AutoReport), String> {
    let regions = norm_regions(source.main());
    let sample_count = samples.len();
    let options = VerifyOptions {
        inputs: InputSpec::Given(samples),
        per_op: true,
        ..Default::default()
    };
    let mut keep = fixed.clone();
    let mut kept: Vec<KeptOp> = Vec::new();
    for round in 1..=MAX_ROUNDS {
        let mut candidate = source.clone();
        let fp16 = to_fp16(&mut candidate, |op| keep.get(&op.name).cloned());
        let mut report =
            verify::verify_programs(source, &candidate, &options).map_err(|e| e.to_string())?;
        let per_op = report
            .per_op
            .take()
            .ok_or("the per-op comparison is missing")?;
        let Some(culprit) = culprit(candidate.main(), &per_op, &report, &keep) else {
            if report.passed && per_op.first_divergence.is_none() {
                return Ok((
                    candidate,
                    fp16,
                    AutoReport {
                        samples: sample_count,
                        rounds: round,
                        kept,
                        verify: report,
                    },
                ));
            }
            return Err(format!(
                "--precision auto: no fp16 op left to keep in fp32 and still {}",
                report.summary()
            ));
        };
        let mut region = regions
            .iter()
            .find(|r| r.contains(&culprit.name))
            .cloned()
            .unwrap_or_else(|| vec![culprit.name.clone()]);
        // The culprit first, then the rest of its region in program order.
        region.sort_by_key(|name| name != &culprit.name);
        for name in region {
            if keep.contains_key(&name) {
                continue;
            }
            let (reason, diff) = if name == culprit.name {
                (culprit.reason.clone(), culprit.diff.clone())
            } else {
                (
                    format!("in the norm region of '{}'", culprit.name),
                    per_op.values.iter().find(|v| v.op == name).cloned(),
                )
            };
            let op = candidate
                .main()
                .block
                .operations
                .iter()
                .find(|o| o.name == name);
            kept.push(KeptOp {
                op_type: op.map(|o| o.op_type.clone()).unwrap_or_default(),
                origin: op.and_then(|o| o.origin.clone()),
                reason: reason.clone(),
                max_abs_fp32: diff.as_ref().and_then(max_abs_fp32),
                fp16_max_rel: diff.as_ref().map(|d| d.metrics.max_rel),
                fp16_non_finite: diff.as_ref().map(|d| d.metrics.candidate_non_finite),
                round,
                name: name.clone(),
            });
            keep.insert(name, format!("auto: {reason}"));
        }
    }
    Err(format!(
        "--precision auto: the outputs still miss the fp16 thresholds after {MAX_ROUNDS} rounds ({} ops in fp32)",
        keep.len()
    ))
}

/// The op to keep in fp32 next, why, and its compared value.
struct Culprit {
    name: String,
    reason: String,
    diff: Option<ValueDiff>,
}

/// The first diverging fp16 op; else, when an output fails, the fp16 op adding the most
/// relative error over its inputs; `None` when neither exists.
fn culprit(
    candidate: &Function,
    per_op: &PerOpReport,
    report: &VerifyReport,
    keep: &BTreeMap<String, String>,
) -> Option<Culprit> {
    if let Some(d) = &per_op.first_divergence {
        let name = through_casts(candidate, &d.value.op);
        if !keep.contains_key(&name) {
            let m = &d.value.metrics;
            let max = max_abs_fp32(&d.value).unwrap_or(0.0);
            let reason = if max > FP16_MAX {
                format!(
                    "fp32 values reach {max:.3e}, beyond fp16's {FP16_MAX} ({} NaN/inf values in fp16)",
                    m.candidate_non_finite
                )
            } else if m.candidate_non_finite > 0 {
                format!(
                    "{} NaN/inf values in fp16 (fp32 max |value| {max:.3e})",
                    m.candidate_non_finite
                )
            } else {
                format!("fp16 relative max error {:.3e} ({})", m.max_rel, d.reason)
            };
            return Some(Culprit {
                name,
                reason,
                diff: Some(d.value.clone()),
            });
        }
    }
    if report.passed && per_op.first_divergence.is_none() {
        return None;
    }
    let error: HashMap<&str, f64> = per_op
        .values
        .iter()
        .map(|v| (v.name.as_str(), v.metrics.max_rel))
        .collect();
    let input_error = |var: &str| -> f64 {
        let mut var = var.to_string();
        loop {
            if let Some(&e) = error.get(var.as_str()) {
                return e;
            }
            match candidate.block.producer(&var) {
                Some((_, op)) if op.op_type == "cast" => {
                    match op.input("x").and_then(|a| a.first()).and_then(|a| a.var()) {
                        Some(x) => var = x.to_string(),
                        None => return 0.0,
                    }
                }
                _ => return 0.0,
            }
        }
    };
    per_op
        .values
        .iter()
        .filter(|v| v.dtype == "fp16" && !keep.contains_key(&v.op))
        .filter_map(|v| {
            let (_, op) = candidate.block.producer(&v.name)?;
            let inherited = op.input_vars().map(input_error).fold(0.0, f64::max);
            let added = v.metrics.max_rel - inherited;
            (added > 0.0).then_some((added, v))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(added, v)| Culprit {
            name: v.op.clone(),
            reason: format!("largest error contribution: fp16 adds {added:.3e} relative max error"),
            diff: Some(v.clone()),
        })
}

/// The op behind `op_name`, looking through casts to the op whose value they convert.
fn through_casts(function: &Function, op_name: &str) -> String {
    let mut name = op_name.to_string();
    for _ in 0..function.block.operations.len() {
        let Some(op) = function.block.operations.iter().find(|o| o.name == name) else {
            break;
        };
        let x = op.input("x").and_then(|a| a.first()).and_then(|a| a.var());
        match (
            op.op_type.as_str(),
            x.and_then(|x| function.block.producer(x)),
        ) {
            ("cast", Some((_, producer))) => name = producer.name.clone(),
            _ => break,
        }
    }
    name
}

/// Largest |value| of the fp32 run's value, from its finite range.
fn max_abs_fp32(diff: &ValueDiff) -> Option<f64> {
    diff.metrics
        .reference_range
        .map(|(lo, hi)| lo.abs().max(hi.abs()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::Value;
    use crate::ir::{Builder, DType, Target, Tensor, TensorType, Var};
    use ndarray::ArrayD;

    fn program(b: Builder, out: String) -> Program {
        Program::new(Target::IOS16, vec![b.finish(vec![out])])
    }

    fn sample(values: &[f32]) -> Vec<Sample> {
        let x = ArrayD::from_shape_vec(vec![values.len()], values.to_vec()).unwrap();
        vec![Sample::from([("x".to_string(), Value::Float(x))])]
    }

    /// y = sqrt((400·x)²) + 1: the square (160 000 at x = 1) overflows fp16, and so does
    /// its cast back to fp16 for the sqrt.
    #[test]
    fn keeps_the_overflowing_square_and_the_sqrt_reading_it() {
        let mut b = Builder::new(
            "main",
            vec![Var::new("x", TensorType::fixed(DType::F32, &[3]))],
        );
        let k = b.constant("k", Tensor::scalar_f32(400.0));
        let two = b.constant("two", Tensor::scalar_f32(2.0));
        let one = b.constant("one", Tensor::scalar_f32(1.0));
        let a = b.op1("mul", "a", &[("x", &["x"]), ("y", &[&k])]).unwrap();
        let sq = b.op1("pow", "sq", &[("x", &[&a]), ("y", &[&two])]).unwrap();
        let r = b.op1("sqrt", "r", &[("x", &[&sq])]).unwrap();
        let y = b.op1("add", "y", &[("x", &[&r]), ("y", &[&one])]).unwrap();
        let p = program(b, y);
        let (mixed, fp16, report) =
            search(&p, sample(&[1.0, -0.5, 0.25]), &BTreeMap::new()).unwrap();
        let kept: Vec<(&str, usize)> = report
            .kept
            .iter()
            .map(|k| (k.name.as_str(), k.round))
            .collect();
        assert_eq!(kept, [("sq", 1), ("r", 2)]);
        assert_eq!(report.rounds, 3);
        assert!(report.verify.passed, "{}", report.verify.summary());
        assert!(
            report.kept[0]
                .reason
                .contains("1.600e5, beyond fp16's 65504 (1 NaN/inf values in fp16)"),
            "{}",
            report.kept[0].reason
        );
        assert_eq!(report.kept[0].max_abs_fp32, Some(160000.0));
        assert_eq!(report.kept[0].fp16_non_finite, Some(1));
        assert_eq!(fp16.fp16_ops, 2, "mul and add stay fp16");
        crate::ir::validate_program(&mixed).unwrap();
    }

    #[test]
    fn a_program_that_fits_fp16_keeps_nothing() {
        let mut b = Builder::new(
            "main",
            vec![Var::new("x", TensorType::fixed(DType::F32, &[3]))],
        );
        let y = b.op1("relu", "y", &[("x", &["x"])]).unwrap();
        let (_, fp16, report) =
            search(&program(b, y), sample(&[1.0, -2.0, 3.0]), &BTreeMap::new()).unwrap();
        assert!(report.kept.is_empty() && fp16.fp32_ops.is_empty());
        assert_eq!(report.rounds, 1);
    }
}
