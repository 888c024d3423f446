//! Verification: run a source program and a candidate program (e.g. the fp16 or compressed
//! package made from it) on the same inputs and compare their outputs against thresholds.
//!
//! [`verify_programs`] is the one entry point every command uses (`verify`, `convert`'s
//! built-in check, later compression commands): it takes two in-memory [`Program`]s.

pub mod inputs;
pub mod metrics;
pub mod per_op;
pub mod roles;

pub use inputs::{InputRange, Sample};
pub use metrics::Metrics;
pub use per_op::PerOpReport;
pub use roles::InputRole;

use crate::interp::{self, InterpError, RunOptions, Value};
use crate::ir::{DType, Function, Program};
use serde::Serialize;
use std::collections::BTreeMap;

/// Pass/fail limits applied to every output.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Thresholds {
    /// Largest allowed |candidate − source| (none by default).
    pub max_abs: Option<f64>,
    /// Smallest allowed SNR in dB.
    pub min_snr_db: f64,
    /// Smallest allowed cosine similarity.
    pub min_cosine: f64,
}

impl Thresholds {
    /// Defaults for an fp32 candidate: cosine ≥ 0.9999, SNR ≥ 40 dB.
    pub const FP32: Thresholds = Thresholds {
        max_abs: None,
        min_snr_db: 40.0,
        min_cosine: 0.9999,
    };
    /// Defaults for a candidate computing in fp16: cosine ≥ 0.999, SNR ≥ 25 dB.
    pub const FP16: Thresholds = Thresholds {
        max_abs: None,
        min_snr_db: 25.0,
        min_cosine: 0.999,
    };

    /// The defaults for a candidate, by whether it computes in fp16.
    pub fn defaults(fp16: bool) -> Thresholds {
        if fp16 {
            Thresholds::FP16
        } else {
            Thresholds::FP32
        }
    }

    /// The relative RMS error the thresholds allow: the smaller of 10^(−SNR/20) and
    /// √(2·(1 − cosine)) (for small errors 1 − cosine ≈ relative RMS error² / 2).
    pub fn level(&self) -> f64 {
        let from_snr = 10f64.powf(-self.min_snr_db / 20.0);
        let from_cosine = (2.0 * (1.0 - self.min_cosine)).max(0.0).sqrt();
        from_snr.min(from_cosine)
    }
}

/// Thresholds given on the command line; unset ones take the candidate's defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ThresholdOverrides {
    /// `--max-abs`.
    pub max_abs: Option<f64>,
    /// `--min-snr`.
    pub min_snr_db: Option<f64>,
    /// `--min-cosine`.
    pub min_cosine: Option<f64>,
}

impl ThresholdOverrides {
    /// These overrides applied over `defaults`.
    pub fn over(&self, defaults: Thresholds) -> Thresholds {
        Thresholds {
            max_abs: self.max_abs.or(defaults.max_abs),
            min_snr_db: self.min_snr_db.unwrap_or(defaults.min_snr_db),
            min_cosine: self.min_cosine.unwrap_or(defaults.min_cosine),
        }
    }
}

/// Where the inputs come from.
#[derive(Clone, Debug, PartialEq)]
pub enum InputSpec {
    /// `samples` deterministic random input sets from `seed`, with per-input ranges.
    Random {
        /// Number of input sets.
        samples: usize,
        /// Generator seed.
        seed: u64,
        /// Value ranges by input name (others: drawn by their role, see [`roles`]).
        ranges: Vec<InputRange>,
    },
    /// Input sets given by the caller (e.g. read from an `.npz`), by input name.
    Given(Vec<Sample>),
}

impl Default for InputSpec {
    fn default() -> InputSpec {
        InputSpec::Random {
            samples: 3,
            seed: 0,
            ranges: Vec::new(),
        }
    }
}

/// How to verify.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VerifyOptions {
    /// The inputs.
    pub inputs: InputSpec,
    /// Threshold overrides.
    pub thresholds: ThresholdOverrides,
    /// For lossy candidates (compression): the lowest figures still accepted as `degraded`
    /// when the thresholds are missed. `None`: missing a threshold fails.
    pub floor: Option<Thresholds>,
    /// Do not emulate fp16 rounding in the candidate (it is emulated when any candidate value
    /// is typed fp16).
    pub no_emulate_fp16: bool,
    /// Also compare every shared intermediate value.
    pub per_op: bool,
    /// Predictions per input sequence for stateful programs (`--steps`; 0 counts as 1): both
    /// programs start from zero states and step together, each step on its own input set
    /// (random sets are drawn per step; a given set is used at every step).
    pub steps: usize,
}

/// Which program a problem concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The reference program.
    Source,
    /// The program being checked.
    Candidate,
}

/// Why verification could not be carried out (a failed comparison is not an error: it is a
/// [`VerifyReport`] with `passed == false`).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The two programs' inputs or outputs differ.
    #[error("{0}")]
    Signature(String),
    /// The inputs do not fit the programs.
    #[error("{0}")]
    Inputs(String),
    /// Running one of the programs failed.
    #[error("{error}")]
    Run {
        /// Which program.
        side: Side,
        /// The interpreter's error.
        error: InterpError,
    },
}

/// The outcome of a comparison, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every threshold met.
    Ok,
    /// A threshold missed, but the floor of a lossy candidate met.
    Degraded,
    /// No finite source value to compare against (or nothing compared): the inputs say
    /// nothing about the candidate.
    Inconclusive,
    /// A threshold (or the floor) broken, or NaN/inf where the source is finite.
    Failed,
}

impl Verdict {
    /// The word printed after a summary.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Degraded => "degraded",
            Verdict::Inconclusive => "INCONCLUSIVE",
            Verdict::Failed => "FAILED",
        }
    }
}

/// The comparison of one output.
#[derive(Clone, Debug, Serialize)]
pub struct OutputReport {
    /// Output name.
    pub name: String,
    /// Error metrics over every sample.
    pub metrics: Metrics,
    /// This output's outcome.
    pub verdict: Verdict,
    /// Thresholds this output misses, or why it is inconclusive (empty when `ok`).
    pub failures: Vec<String>,
}

/// The result of a verification.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    /// Input sets run (sequences, for stateful programs stepped more than once).
    pub samples: usize,
    /// Predictions per input sequence (1 unless stepping states).
    pub steps: usize,
    /// `random` or `given`.
    pub inputs: &'static str,
    /// What each random input stands for and the values drawn (empty for given inputs).
    pub input_roles: Vec<InputRole>,
    /// Whether the candidate computes in fp16 (any value typed fp16).
    pub candidate_fp16: bool,
    /// Whether fp16 rounding was emulated in the candidate.
    pub emulate_fp16: bool,
    /// Thresholds applied.
    pub thresholds: Thresholds,
    /// The floor of a lossy candidate, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floor: Option<Thresholds>,
    /// Per output, in the candidate's output order.
    pub outputs: Vec<OutputReport>,
    /// The worst output's verdict: `failed` over `inconclusive` over `degraded` over `ok`.
    pub verdict: Verdict,
    /// True when the verdict is `ok` or `degraded`.
    pub passed: bool,
    /// Per-op diagnosis, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_op: Option<PerOpReport>,
}

impl VerifyReport {
    /// The output with the lowest SNR (ties: lowest cosine), worst verdicts first.
    pub fn worst(&self) -> Option<&OutputReport> {
        self.outputs.iter().min_by(|a, b| {
            (
                std::cmp::Reverse(a.verdict),
                a.metrics.snr_db,
                a.metrics.cosine,
            )
                .partial_cmp(&(
                    std::cmp::Reverse(b.verdict),
                    b.metrics.snr_db,
                    b.metrics.cosine,
                ))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
    }

    /// The inputs' roles as text: `input_ids: indices [0, 30522), attention_mask: mask {0,1}`.
    pub fn roles_text(&self) -> String {
        self.input_roles
            .iter()
            .map(|r| format!("{}: {}", r.name, r.text))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// One line: `3 random inputs (x: values [-1, 1)), worst output y: cosine 0.99998, SNR
    /// 42.1 dB, max abs 3.2e-3 — ok` (or `— degraded (…)`, `— INCONCLUSIVE (…)`, `— FAILED
    /// (…)`), with non-finite counts when there are any.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "{} {} input{}",
            self.samples,
            self.inputs,
            if self.samples == 1 { "" } else { "s" }
        );
        if self.steps > 1 {
            line += &format!(" × {} steps", self.steps);
        }
        if !self.input_roles.is_empty() {
            line += &format!(" ({})", self.roles_text());
        }
        if let Some(w) = self.worst().filter(|w| w.metrics.elements == 0) {
            line += &format!(", worst output {}: no finite values compared", w.name);
        } else if let Some(w) = self.worst() {
            let m = &w.metrics;
            line += &format!(
                ", worst output {}: cosine {:.5}, SNR {}, max abs {:.1e}",
                w.name,
                m.cosine,
                db(m.snr_db),
                m.max_abs
            );
            if let Some(t) = m.top1 {
                line += &format!(", top-1 {:.0}%", t * 100.0);
            }
        }
        for o in &self.outputs {
            let m = &o.metrics;
            if m.reference_non_finite > 0 {
                line += &format!(
                    ", source output {} has {} NaN/inf values",
                    o.name, m.reference_non_finite
                );
            }
            if m.candidate_non_finite > 0 {
                line += &format!(
                    ", output {} has {} NaN/inf values where the source is finite",
                    o.name, m.candidate_non_finite
                );
            }
        }
        let word = self.verdict.word();
        if self.verdict == Verdict::Ok {
            format!("{line} — {word}")
        } else {
            let failures: Vec<String> = self
                .outputs
                .iter()
                .flat_map(|o| o.failures.iter().map(move |f| format!("{}: {f}", o.name)))
                .collect();
            format!("{line} — {word} ({})", failures.join("; "))
        }
    }
}

/// A dB value for text output (`inf dB` for an exact match).
pub fn db(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1} dB")
    } else {
        format!("{v} dB")
    }
}

/// True when any input, op output or constant of the program is typed fp16.
pub fn is_fp16(program: &Program) -> bool {
    program.functions.iter().any(|f| {
        f.inputs.iter().any(|v| v.ty.dtype == DType::F16)
            || f.block
                .operations
                .iter()
                .flat_map(|op| &op.outputs)
                .any(|o| o.ty.dtype == DType::F16)
    })
}

/// Checks that both functions take the same inputs and give the same outputs (names, element
/// kinds, fixed dimensions).
pub fn check_signatures(source: &Function, candidate: &Function) -> Result<(), VerifyError> {
    let kind = |d: DType| {
        if d.is_float() {
            "float"
        } else if d.is_int() {
            "int"
        } else {
            d.name()
        }
    };
    let dims_agree = |a: &crate::ir::TensorType, b: &crate::ir::TensorType| {
        a.rank() == b.rank()
            && a.shape
                .iter()
                .zip(&b.shape)
                .all(|(x, y)| match (x.fixed(), y.fixed()) {
                    (Some(x), Some(y)) => x == y,
                    _ => true,
                })
    };
    let lists = [
        ("inputs", source.inputs.clone(), candidate.inputs.clone()),
        ("states", source.states.clone(), candidate.states.clone()),
        ("outputs", source.outputs(), candidate.outputs()),
    ];
    for (what, src, cand) in lists {
        let names = |l: &[crate::ir::Var]| l.iter().map(|v| v.name.clone()).collect::<Vec<_>>();
        let (mut sn, mut cn) = (names(&src), names(&cand));
        sn.sort();
        cn.sort();
        if sn != cn {
            return Err(VerifyError::Signature(format!(
                "the source and the candidate have different {what}: source [{}], candidate [{}]",
                sn.join(", "),
                cn.join(", ")
            )));
        }
        for s in &src {
            let Some(c) = cand.iter().find(|c| c.name == s.name) else {
                continue;
            };
            if kind(s.ty.dtype) != kind(c.ty.dtype) || !dims_agree(&s.ty, &c.ty) {
                return Err(VerifyError::Signature(format!(
                    "{} '{}' differs: source {}, candidate {}",
                    &what[..what.len() - 1],
                    s.name,
                    s.ty,
                    c.ty
                )));
            }
        }
    }
    Ok(())
}

/// `ranges`, plus pixel values `[0, 255)` for every image input of `candidate` that has no
/// range given.
fn with_pixel_ranges(candidate: &Program, ranges: &[InputRange]) -> Vec<InputRange> {
    let given = |name: &str| {
        ranges
            .iter()
            .any(|r| r.name == name || crate::ir::sanitize_name(&r.name) == name)
    };
    let pixels = candidate
        .description
        .images
        .keys()
        .filter(|name| !given(name))
        .map(|name| InputRange {
            name: name.clone(),
            lo: 0.0,
            hi: 255.0,
        });
    ranges.iter().cloned().chain(pixels).collect()
}

/// Runs `source` and `candidate` on the inputs `options` describes and compares their
/// outputs. The source runs as written without fp16 emulation; the candidate with fp16
/// emulation when it holds fp16 values (unless `no_emulate_fp16`).
pub fn verify_programs(
    source: &Program,
    candidate: &Program,
    options: &VerifyOptions,
) -> Result<VerifyReport, VerifyError> {
    let (src, cand) = (source.main(), candidate.main());
    check_signatures(src, cand)?;
    let steps = options.steps.max(1);
    let (samples, kind, input_roles) = match &options.inputs {
        InputSpec::Random {
            samples,
            seed,
            ranges,
        } => {
            let ranges = &with_pixel_ranges(candidate, ranges);
            (
                inputs::random_inputs(cand, samples.saturating_mul(steps), *seed, ranges)
                    .map_err(VerifyError::Inputs)?,
                "random",
                inputs::roles(cand, ranges).map_err(VerifyError::Inputs)?,
            )
        }
        InputSpec::Given(sets) => (
            sets.iter()
                .flat_map(|s| std::iter::repeat_n(s.clone(), steps))
                .collect(),
            "given",
            Vec::new(),
        ),
    };
    if samples.is_empty() {
        return Err(VerifyError::Inputs(
            "no input sets to verify with (--random / --verify-samples must be at least 1)".into(),
        ));
    }
    let candidate_fp16 = is_fp16(candidate);
    let emulate_fp16 = candidate_fp16 && !options.no_emulate_fp16;
    let thresholds = options
        .thresholds
        .over(Thresholds::defaults(candidate_fp16));
    let source_options = RunOptions {
        emulate_fp16: false,
    };
    let candidate_options = RunOptions { emulate_fp16 };

    // The source runs on every sample first, then the candidate: only one program's weights
    // are held as run-time values at a time. States start at zero every `steps` samples.
    let run_all = |program: &Function, options: RunOptions| {
        let runner = interp::Runner::new(program, options)?;
        let mut states = BTreeMap::new();
        (samples.iter().enumerate())
            .map(|(i, sample)| {
                if i % steps == 0 {
                    states = interp::zero_states(program);
                }
                runner.run_stateful(sample, &mut states)
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let references = run_all(src, source_options).map_err(|error| VerifyError::Run {
        side: Side::Source,
        error,
    })?;
    let produced_all = run_all(cand, candidate_options).map_err(|error| VerifyError::Run {
        side: Side::Candidate,
        error,
    })?;
    let mut accumulators: BTreeMap<String, metrics::Accumulator> = BTreeMap::new();
    for (reference, produced) in references.iter().zip(&produced_all) {
        for (name, value) in produced {
            let Some((_, r)) = reference.iter().find(|(n, _)| n == name) else {
                continue;
            };
            if r.shape() != value.shape() {
                return Err(VerifyError::Signature(format!(
                    "output '{name}' has shape {:?} in the source and {:?} in the candidate",
                    r.shape(),
                    value.shape()
                )));
            }
            // String outputs (a classifier's label) follow from numeric ones (its
            // probabilities), which are compared.
            if matches!((r, value), (Value::Str(_), Value::Str(_))) {
                continue;
            }
            let (r, c) = match (r.to_f32_array(), value.to_f32_array()) {
                (Ok(r), Ok(c)) => (r, c),
                (Err(e), _) | (_, Err(e)) => {
                    return Err(VerifyError::Signature(format!("output '{name}': {e}")))
                }
            };
            accumulators.entry(name.clone()).or_default().add(&r, &c);
        }
    }
    let outputs: Vec<OutputReport> = cand
        .block
        .outputs
        .iter()
        .filter_map(|name| {
            let metrics = accumulators.get(name)?.finish();
            let (verdict, failures) = judge(&metrics, &thresholds, options.floor.as_ref());
            Some(OutputReport {
                name: name.clone(),
                metrics,
                verdict,
                failures,
            })
        })
        .collect();
    let verdict = outputs
        .iter()
        .map(|o| o.verdict)
        .max()
        .unwrap_or(Verdict::Ok);
    let passed = matches!(verdict, Verdict::Ok | Verdict::Degraded);
    let per_op = if options.per_op {
        Some(per_op::diagnose(
            src,
            cand,
            &samples,
            source_options,
            candidate_options,
            thresholds.level(),
        )?)
    } else {
        None
    };
    Ok(VerifyReport {
        samples: samples.len() / steps,
        steps,
        inputs: kind,
        input_roles,
        candidate_fp16,
        emulate_fp16,
        thresholds,
        floor: options.floor,
        outputs,
        verdict,
        passed,
        per_op,
    })
}

/// One output's verdict and the reasons for it: inconclusive when nothing was compared;
/// failed on NaN/inf where the source is finite or below the floor; degraded (with a floor)
/// or failed (without) below the thresholds.
fn judge(m: &Metrics, t: &Thresholds, floor: Option<&Thresholds>) -> (Verdict, Vec<String>) {
    if m.candidate_non_finite > 0 {
        let mut reasons = vec![format!(
            "{} NaN/inf values where the source is finite",
            m.candidate_non_finite
        )];
        reasons.extend(breaches(m, t));
        return (Verdict::Failed, reasons);
    }
    if m.elements == 0 {
        let why = if m.reference_non_finite > 0 {
            "the source output has no finite value on these inputs, nothing to compare"
        } else {
            "the output has no elements, nothing to compare"
        };
        return (Verdict::Inconclusive, vec![why.to_string()]);
    }
    if let Some(floor) = floor {
        let below = breaches(m, floor);
        if !below.is_empty() {
            let below = below.into_iter().map(|b| format!("{b} (floor)")).collect();
            return (Verdict::Failed, below);
        }
    }
    let missed = breaches(m, t);
    match (missed.is_empty(), floor.is_some()) {
        (true, _) => (Verdict::Ok, missed),
        (false, true) => (Verdict::Degraded, missed),
        (false, false) => (Verdict::Failed, missed),
    }
}

/// The thresholds `m` breaks, as text.
fn breaches(m: &Metrics, t: &Thresholds) -> Vec<String> {
    let mut out = Vec::new();
    if m.cosine < t.min_cosine || m.cosine.is_nan() {
        out.push(format!("cosine {:.5} < {}", m.cosine, t.min_cosine));
    }
    if m.snr_db < t.min_snr_db || m.snr_db.is_nan() {
        out.push(format!("SNR {} < {} dB", db(m.snr_db), t.min_snr_db));
    }
    if let Some(limit) = t.max_abs {
        if m.max_abs > limit {
            out.push(format!("max abs {:.3e} > {limit}", m.max_abs));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Builder, Target, Tensor, TensorType, Var};

    /// y = x · w (elementwise) for a constant w.
    fn scale_program(w: f32, dtype: DType) -> Program {
        let mut b = Builder::new(
            "main",
            vec![Var::new("x", TensorType::fixed(DType::F32, &[4]))],
        );
        let w = b.constant("w", Tensor::from_f32(&[4], &[w; 4]));
        let y = b.op1("mul", "y", &[("x", &["x"]), ("y", &[&w])]).unwrap();
        let mut p = Program::new(Target::IOS16, vec![b.finish(vec![y])]);
        if dtype == DType::F16 {
            crate::passes::to_fp16(&mut p, |_| None);
        }
        p
    }

    #[test]
    fn levels_follow_the_thresholds() {
        assert!(
            (Thresholds::FP32.level() - 0.01).abs() < 1e-12,
            "40 dB → 1e-2 beats √(2e-4)"
        );
        assert!(
            (Thresholds::FP16.level() - 0.002f64.sqrt()).abs() < 1e-12,
            "√(2e-3) beats 10^(-25/20)"
        );
    }

    #[test]
    fn identical_programs_pass_and_scaled_ones_fail() {
        let p = scale_program(2.0, DType::F32);
        let r = verify_programs(&p, &p, &VerifyOptions::default()).unwrap();
        assert!(
            r.passed && r.samples == 3 && !r.candidate_fp16,
            "{}",
            r.summary()
        );
        assert!(r.summary().ends_with("— ok"), "{}", r.summary());
        // 2.1 instead of 2: error 5 % of the signal → SNR 26 dB, below fp32's 40 dB.
        let off = verify_programs(
            &p,
            &scale_program(2.1, DType::F32),
            &VerifyOptions::default(),
        )
        .unwrap();
        assert!(!off.passed);
        assert!(
            (off.outputs[0].metrics.snr_db - 26.02).abs() < 0.01,
            "{}",
            off.outputs[0].metrics.snr_db
        );
        assert!(
            off.summary().contains("FAILED (y: SNR 26.0 dB < 40 dB)"),
            "{}",
            off.summary()
        );
    }

    #[test]
    fn fp16_candidates_get_fp16_defaults_and_emulation() {
        let src = scale_program(2.0, DType::F32);
        let r = verify_programs(
            &src,
            &scale_program(2.0, DType::F16),
            &VerifyOptions::default(),
        )
        .unwrap();
        assert!(r.candidate_fp16 && r.emulate_fp16 && r.passed);
        assert_eq!(r.thresholds, Thresholds::FP16);
        assert!(
            r.outputs[0].metrics.max_abs > 0.0,
            "emulated rounding shows"
        );
        let options = VerifyOptions {
            no_emulate_fp16: true,
            ..Default::default()
        };
        let plain = verify_programs(&src, &scale_program(2.0, DType::F16), &options).unwrap();
        assert!(plain.candidate_fp16 && !plain.emulate_fp16);
        // Only the cast of x to fp16 rounds then; the emulated run also rounds the product.
        assert!(plain.outputs[0].metrics.max_abs <= r.outputs[0].metrics.max_abs);
    }

    #[test]
    fn per_op_finds_the_diverging_op_and_lists_casts() {
        let options = VerifyOptions {
            per_op: true,
            ..Default::default()
        };
        let src = scale_program(2.0, DType::F32);
        // 3x against 2x: relative max error max|x| / max|2x| = 0.5 > 10 × 0.01.
        let r = verify_programs(&src, &scale_program(3.0, DType::F32), &options).unwrap();
        let p = r.per_op.unwrap();
        let d = p.first_divergence.expect("a divergence");
        assert_eq!(
            (d.value.name.as_str(), d.value.op_type.as_str()),
            ("y", "mul")
        );
        assert!(
            (d.value.metrics.max_rel - 0.5).abs() < 1e-6,
            "{}",
            d.value.metrics.max_rel
        );
        let fp16 = verify_programs(&src, &scale_program(2.0, DType::F16), &options)
            .unwrap()
            .per_op
            .unwrap();
        assert!(fp16.first_divergence.is_none());
        let casts: Vec<(&str, &str)> = fp16
            .casts
            .iter()
            .map(|c| (c.from_dtype.as_str(), c.to_dtype.as_str()))
            .collect();
        assert_eq!(casts, [("fp32", "fp16"), ("fp16", "fp32")]);
    }

    #[test]
    fn non_finite_values_are_reported() {
        let inf = scale_program(f32::INFINITY, DType::F32);
        let r = verify_programs(&inf, &inf, &VerifyOptions::default()).unwrap();
        assert_eq!(
            r.outputs[0].metrics.reference_non_finite, 12,
            "3 samples × 4 elements"
        );
        assert!(
            r.summary()
                .contains("source output y has 12 NaN/inf values"),
            "{}",
            r.summary()
        );
        assert_eq!(r.outputs[0].metrics.elements, 0);
        assert!(!r.passed && r.verdict == Verdict::Inconclusive);
        assert!(
            r.summary().ends_with(
                "— INCONCLUSIVE (y: the source output has no finite value on these inputs, nothing to compare)"
            ),
            "{}",
            r.summary()
        );
        let bad = verify_programs(
            &scale_program(2.0, DType::F32),
            &inf,
            &VerifyOptions::default(),
        )
        .unwrap();
        assert!(!bad.passed);
        assert!(
            bad.summary()
                .contains("output y has 12 NaN/inf values where the source is finite"),
            "{}",
            bad.summary()
        );
    }

    #[test]
    fn a_floor_splits_missed_thresholds_into_degraded_and_failed() {
        // 2.1 instead of 2: cosine 1 (same direction), SNR 26.0 dB: below fp32's 40 dB.
        let (src, cand) = (
            scale_program(2.0, DType::F32),
            scale_program(2.1, DType::F32),
        );
        let floor = |min_snr_db| VerifyOptions {
            floor: Some(Thresholds {
                max_abs: None,
                min_snr_db,
                min_cosine: 0.9,
            }),
            ..Default::default()
        };
        let degraded = verify_programs(&src, &cand, &floor(20.0)).unwrap();
        assert_eq!(degraded.verdict, Verdict::Degraded);
        assert!(degraded.passed);
        assert!(
            degraded
                .summary()
                .ends_with("— degraded (y: SNR 26.0 dB < 40 dB)"),
            "{}",
            degraded.summary()
        );
        let failed = verify_programs(&src, &cand, &floor(30.0)).unwrap();
        assert_eq!(failed.verdict, Verdict::Failed);
        assert!(!failed.passed);
        assert!(
            failed
                .summary()
                .ends_with("— FAILED (y: SNR 26.0 dB < 30 dB (floor))"),
            "{}",
            failed.summary()
        );
        let ok = verify_programs(&src, &src, &floor(30.0)).unwrap();
        assert_eq!(ok.verdict, Verdict::Ok);
    }

    #[test]
    fn random_inputs_are_described_by_role() {
        let p = scale_program(2.0, DType::F32);
        let r = verify_programs(&p, &p, &VerifyOptions::default()).unwrap();
        assert!(
            r.summary()
                .starts_with("3 random inputs (x: values [-1, 1)), worst output y"),
            "{}",
            r.summary()
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["input_roles"][0]["role"], "values");
        assert_eq!(json["verdict"], "ok");
    }

    #[test]
    fn signatures_must_agree() {
        let p = scale_program(2.0, DType::F32);
        let mut other = p.clone();
        other.main_mut().block.outputs = vec!["x".into()];
        let e = verify_programs(&p, &other, &VerifyOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("different outputs: source [y], candidate [x]"),
            "{e}"
        );
    }
}
