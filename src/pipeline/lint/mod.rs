//! `lint`: static checks of a package (or of the package an `.onnx` / `.pt2` source converts
//! to, built in memory) against Neural Engine and Core ML rules, without a Mac. The rules are
//! data, in [`rules::RULES`]; the checks live in small modules under `checks/`.

mod checks;
mod rules;

pub use rules::{Rule, RULES};

use super::convert::{build, ConvertOptions};
use super::{ModelKind, Precision};
use crate::backend::mlpackage::weight_file;
use crate::backend::read_package;
use crate::interp::{self, InterpError, RunOptions, Value};
use crate::ir::{Program, Target};
use crate::verify::{inputs, Sample};
use crate::Error;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; nothing to fix necessarily.
    Info,
    /// Likely to keep (part of) the model off the Neural Engine or to lose accuracy there.
    Warning,
    /// Core ML rejects it, or the Neural Engine cannot run it by a hard limit.
    Error,
}

impl Severity {
    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// What a check found: where, and what exactly.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    /// The op name (or input, weight or file name) concerned.
    pub location: String,
    /// What is wrong there, with the figures.
    pub message: String,
}

impl Hit {
    /// A hit at `location`.
    pub fn new(location: impl Into<String>, message: impl Into<String>) -> Hit {
        Hit {
            location: location.into(),
            message: message.into(),
        }
    }
}

/// One finding of a rule.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    /// The rule's id.
    pub rule: &'static str,
    /// The rule's severity.
    pub severity: Severity,
    /// The op name (or input, weight or file name) concerned.
    pub location: String,
    /// What is wrong there.
    pub message: String,
    /// How to fix it.
    pub hint: &'static str,
}

/// What the checks look at.
pub struct Subject<'a> {
    /// The program (every function is checked).
    pub program: &'a Program,
    /// Bytes of the package's weight.bin (for a program not written yet: the bytes its
    /// weights would take there).
    pub weight_bytes: u64,
    /// The largest |value| of every float value of the default function on the given inputs,
    /// run in fp32, by name (`None` without inputs).
    pub peaks: Option<BTreeMap<String, f32>>,
}

/// How to lint.
#[derive(Clone, Debug, PartialEq)]
pub struct LintOptions {
    /// An input set (`.npz`) to run in fp32 for the fp16 overflow rules.
    pub npz: Option<PathBuf>,
    /// For a source model: the target it is converted for.
    pub target: Target,
    /// For a source model: the compute precision it is converted at (fp16 or fp32).
    pub precision: Precision,
}

impl Default for LintOptions {
    fn default() -> LintOptions {
        LintOptions {
            npz: None,
            target: Target::IOS17,
            precision: Precision::Fp16,
        }
    }
}

/// The result of `lint`.
#[derive(Clone, Debug, Serialize)]
pub struct LintReport {
    /// What was linted.
    pub path: PathBuf,
    /// `package`, or `onnx` / `pt2` for a source converted in memory.
    pub kind: &'static str,
    /// Deployment target.
    pub target: String,
    /// Whether the fp16 overflow rules ran (they need `--inputs`).
    pub ran_inputs: bool,
    /// Every finding, in rule order then program order.
    pub findings: Vec<Finding>,
    /// Findings per severity.
    pub counts: BTreeMap<Severity, usize>,
}

impl LintReport {
    /// The most severe finding's severity, if any.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
}

/// Lints `path`: a package, or an `.onnx` / `.pt2` model converted in memory at
/// `options.target` and `options.precision` (not verified, not written).
pub fn lint(path: &Path, options: &LintOptions) -> Result<LintReport, Error> {
    let kind = ModelKind::of(path)?;
    let (program, weight_bytes) = match kind {
        ModelKind::Package => {
            let program = read_package(path)?;
            let file = weight_file(path);
            let bytes = match std::fs::metadata(&file) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                Err(e) => return Err(Error::io(&file, e)),
            };
            (program, bytes)
        }
        ModelKind::Onnx | ModelKind::Pt2 => {
            if options.precision == Precision::Auto {
                return Err(Error::Usage(
                    "--precision auto needs calibration runs; lint converts at fp16 or fp32".into(),
                ));
            }
            let convert = ConvertOptions {
                describe: Default::default(),
                input: path.to_path_buf(),
                output: PathBuf::new(),
                precision: options.precision,
                mixed: Default::default(),
                target: options.target,
                input_shapes: Default::default(),
                force: false,
                verify: None,
                states: Vec::new(),
            };
            let program = build(&convert, &convert.input_shapes)?.program;
            let bytes = checks::weights::blob_bytes(&program);
            (program, bytes)
        }
    };
    let peaks = options
        .npz
        .as_deref()
        .map(|npz| peaks(&program, npz))
        .transpose()?;
    let subject = Subject {
        program: &program,
        weight_bytes,
        peaks,
    };
    let findings = lint_subject(&subject);
    let mut counts = BTreeMap::new();
    for f in &findings {
        *counts.entry(f.severity).or_insert(0) += 1;
    }
    Ok(LintReport {
        path: path.to_path_buf(),
        kind: kind.name(),
        target: program.target.to_string(),
        ran_inputs: subject.peaks.is_some(),
        findings,
        counts,
    })
}

/// Every rule's findings in `subject`, in rule order.
pub fn lint_subject(subject: &Subject) -> Vec<Finding> {
    RULES
        .iter()
        .flat_map(|rule| {
            (rule.check)(subject).into_iter().map(|hit| Finding {
                rule: rule.id,
                severity: rule.severity,
                location: hit.location,
                message: hit.message,
                hint: rule.hint,
            })
        })
        .collect()
}

/// The largest |value| of every float value the default function computes on the input set
/// in `npz`, run in fp32 (no fp16 rounding) by the reference interpreter.
fn peaks(program: &Program, npz: &Path) -> Result<BTreeMap<String, f32>, Error> {
    let sample = inputs::read_sample(npz, program.main())?;
    peaks_on(program, &sample)
        .map_err(|e| Error::invalid(npz, format!("running the model on these inputs: {e}")))
}

/// The largest |value| (NaN ignored) of every float value the default function computes on
/// `sample`, run without fp16 rounding.
fn peaks_on(program: &Program, sample: &Sample) -> Result<BTreeMap<String, f32>, InterpError> {
    let mut peaks = BTreeMap::new();
    let runner = interp::Runner::new(
        program.main(),
        RunOptions {
            emulate_fp16: false,
        },
    )?;
    runner.run_with_observer(sample, |name, value| {
        if let Value::Float(a) = value {
            let peak = a
                .iter()
                .filter(|x| !x.is_nan())
                .fold(0f32, |m, x| m.max(x.abs()));
            peaks.insert(name.to_string(), peak);
        }
    })?;
    Ok(peaks)
}

#[cfg(test)]
mod tests;
