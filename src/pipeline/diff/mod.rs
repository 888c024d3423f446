//! `diff`: what changed between two packages, or between a source model (`.onnx`, `.pt2`) and
//! a package: input/output signatures, op counts, weights (count, stored bytes, bits per
//! weight, compression scheme) and outputs on shared inputs, compared by the same code as
//! `verify`.

mod signature;
mod weights;

pub use signature::{signature_changes, IoDesc, SignatureChange};
pub(super) use weights::palette_bits;
pub use weights::{weights, WeightDesc, WeightTotals};

use super::verify::{compare, load_source};
use super::{read_package_function, ModelKind};
use crate::frontend::onnx::FrozenInput;
use crate::ir::Program;
use crate::verify::{InputRange, InputSpec, Side, VerifyError, VerifyOptions, VerifyReport};
use crate::Error;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What `diff` compares outputs on, and how much it lists.
#[derive(Clone, Debug, PartialEq)]
pub struct DiffOptions {
    /// One input set from this `.npz` archive (for B's inputs) instead of random ones.
    pub npz: Option<PathBuf>,
    /// Random input sets (drawn for B's inputs as `verify` draws them).
    pub samples: usize,
    /// Seed of the random inputs.
    pub seed: u64,
    /// Value ranges of random inputs by name (others by their role, as `verify`).
    pub ranges: Vec<InputRange>,
    /// List every weight of both sides, not only the totals.
    pub weights: bool,
    /// An ONNX A's graph inputs bound to constants, as B was converted (`--freeze`).
    pub frozen: Vec<FrozenInput>,
}

impl Default for DiffOptions {
    fn default() -> DiffOptions {
        DiffOptions {
            npz: None,
            samples: 3,
            seed: 0,
            ranges: Vec::new(),
            weights: false,
            frozen: Vec::new(),
        }
    }
}

/// One side of a diff.
#[derive(Clone, Debug, Serialize)]
pub struct DiffSide {
    /// The file or package.
    pub path: PathBuf,
    /// `onnx`, `pt2` or `package`.
    pub kind: &'static str,
    /// Deployment target of the program compared (a source model: B's).
    pub target: String,
    /// The function compared.
    pub function: String,
}

/// How often an op type occurs on each side.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OpDelta {
    /// MIL op type.
    pub op_type: String,
    /// Count in A.
    pub a: usize,
    /// Count in B.
    pub b: usize,
    /// `b - a`.
    pub delta: i64,
}

/// One weight on both sides (`None` where a side has no weight of that name).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WeightRow {
    /// Variable name.
    pub name: String,
    /// A's weight.
    pub a: Option<WeightDesc>,
    /// B's weight.
    pub b: Option<WeightDesc>,
}

/// The weights of both sides.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WeightsDiff {
    /// A's totals.
    pub a: WeightTotals,
    /// B's totals.
    pub b: WeightTotals,
    /// Every weight, A's in A's order then those only B has (with `weights` only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub table: Vec<WeightRow>,
}

/// The output comparison: `verify`'s report, or why nothing was compared.
#[derive(Clone, Debug, Serialize)]
pub struct Numerics {
    /// True when at least one output was compared.
    pub compared: bool,
    /// Why nothing was compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The comparison, B as the candidate and A as the reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyReport>,
}

/// The result of `diff`.
#[derive(Clone, Debug, Serialize)]
pub struct DiffReport {
    /// The reference.
    pub a: DiffSide,
    /// The package compared with it.
    pub b: DiffSide,
    /// Inputs, states and outputs declared differently or on one side only.
    pub signature: Vec<SignatureChange>,
    /// Every op type either side has, by name.
    pub ops: Vec<OpDelta>,
    /// Weight totals (and the per-weight table when asked for).
    pub weights: WeightsDiff,
    /// Outputs compared on shared inputs.
    pub numerics: Numerics,
}

/// Compares `a` (a package, or an `.onnx`/`.pt2` source run as its fp32 program at B's input
/// shapes, as `verify` runs it) with the package `b` (its default function; a package A
/// contributes its function of the same name, else its default one).
pub fn diff(a: &Path, b: &Path, options: &DiffOptions) -> Result<DiffReport, Error> {
    let kind_a = ModelKind::of(a)?;
    if ModelKind::of(b)? != ModelKind::Package {
        return Err(Error::Usage(format!(
            "{}: B must be an .mlpackage (A may also be .onnx or .pt2)",
            b.display()
        )));
    }
    let prog_b = read_package_function(b, None)?;
    let prog_a = load_source(a, &prog_b, &options.frozen)?;
    let (fa, fb) = (prog_a.main(), prog_b.main());
    let weights_a = weights(fa);
    let weights_b = weights(fb);
    let verify_options = VerifyOptions {
        inputs: InputSpec::Random {
            samples: options.samples,
            seed: options.seed,
            ranges: options.ranges.clone(),
        },
        ..Default::default()
    };
    let compared = compare(&prog_a, &prog_b, options.npz.as_deref(), &verify_options)?;
    Ok(DiffReport {
        a: side(a, kind_a, &prog_a),
        b: side(b, ModelKind::Package, &prog_b),
        signature: signature_changes(fa, fb),
        ops: op_deltas(&prog_a, &prog_b),
        weights: WeightsDiff {
            a: WeightTotals::of(weights_a.iter().map(|(_, w)| w)),
            b: WeightTotals::of(weights_b.iter().map(|(_, w)| w)),
            table: match options.weights {
                true => weight_rows(weights_a, weights_b),
                false => Vec::new(),
            },
        },
        numerics: numerics(compared)?,
    })
}

fn side(path: &Path, kind: ModelKind, program: &Program) -> DiffSide {
    DiffSide {
        path: path.to_path_buf(),
        kind: kind.name(),
        target: program.target.to_string(),
        function: program.main().name.clone(),
    }
}

/// Op counts by type on both sides, every type either side has.
fn op_deltas(a: &Program, b: &Program) -> Vec<OpDelta> {
    let (ca, cb) = (a.main().op_counts(), b.main().op_counts());
    let mut types: Vec<&String> = ca.keys().chain(cb.keys()).collect();
    types.sort();
    types.dedup();
    types
        .into_iter()
        .map(|t| {
            let (na, nb) = (
                ca.get(t).copied().unwrap_or(0),
                cb.get(t).copied().unwrap_or(0),
            );
            OpDelta {
                op_type: t.clone(),
                a: na,
                b: nb,
                delta: nb as i64 - na as i64,
            }
        })
        .collect()
}

/// Both sides' weights by name: A's in A's order, then those only B has.
fn weight_rows(a: Vec<(String, WeightDesc)>, b: Vec<(String, WeightDesc)>) -> Vec<WeightRow> {
    let mut b: Vec<Option<(String, WeightDesc)>> = b.into_iter().map(Some).collect();
    let mut rows: Vec<WeightRow> = a
        .into_iter()
        .map(|(name, wa)| {
            let wb = b
                .iter_mut()
                .find(|e| e.as_ref().is_some_and(|(n, _)| *n == name))
                .and_then(Option::take)
                .map(|(_, w)| w);
            WeightRow {
                name,
                a: Some(wa),
                b: wb,
            }
        })
        .collect();
    rows.extend(b.into_iter().flatten().map(|(name, wb)| WeightRow {
        name,
        a: None,
        b: Some(wb),
    }));
    rows
}

/// The numeric part of the report from `verify`'s outcome: a comparison that could not be
/// carried out (different signatures, a program failing on the inputs) compares nothing and
/// says why; inputs that do not fit are a usage error.
fn numerics(outcome: Result<VerifyReport, VerifyError>) -> Result<Numerics, Error> {
    let not_compared = |reason: String| Numerics {
        compared: false,
        reason: Some(reason),
        verify: None,
    };
    Ok(match outcome {
        Ok(report) if report.outputs.is_empty() => {
            not_compared("the two programs have no output in common".into())
        }
        Ok(report) => Numerics {
            compared: true,
            reason: None,
            verify: Some(report),
        },
        Err(VerifyError::Signature(m)) => not_compared(m),
        Err(VerifyError::Inputs(m)) => return Err(Error::Usage(m)),
        Err(VerifyError::Run { side, error }) => {
            let which = match side {
                Side::Source => "A",
                Side::Candidate => "B",
            };
            not_compared(format!("running {which} on B's inputs failed: {error}"))
        }
    })
}
