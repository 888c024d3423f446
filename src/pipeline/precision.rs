//! Compute precision of a written program: fp32, fp16, or mixed (fp16 with ops kept in fp32
//! by rules or by the automatic search).

use crate::ir::Program;
use crate::passes::mixed_precision::{self, AutoReport, Fp32Rules};
use crate::passes::{to_fp16, Fp16Report};
use crate::verify::inputs::{match_inputs, random_inputs, read_npz};
use crate::verify::{InputRange, Sample};
use crate::Error;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Compute precision of the written model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// fp16 compute and weights, fp32 model inputs and outputs (coremltools' default).
    Fp16,
    /// fp32 throughout.
    Fp32,
    /// fp16, keeping in fp32 the ops that overflow or lose accuracy on calibration inputs.
    Auto,
}

/// Mixed-precision settings beyond [`Precision`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MixedPrecision {
    /// Ops kept in fp32 by rule (with `Fp16` or `Auto`).
    pub rules: Fp32Rules,
    /// Inputs for the `Auto` search.
    pub calibration: Calibration,
}

/// Where `--precision auto` gets its inputs.
#[derive(Clone, Debug, PartialEq)]
pub enum Calibration {
    /// Every `.npz` file of a directory, in name order: one input set each.
    Dir(PathBuf),
    /// `samples` seeded random input sets (seed 0) within per-input ranges.
    Random {
        /// Input sets.
        samples: usize,
        /// Value ranges by input name (others: drawn by their role, see `verify::roles`).
        ranges: Vec<InputRange>,
    },
}

impl Calibration {
    /// The folder of input sets, if the inputs come from one.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Calibration::Dir(dir) => Some(dir),
            Calibration::Random { .. } => None,
        }
    }
}

impl Default for Calibration {
    fn default() -> Calibration {
        Calibration::Random {
            samples: 3,
            ranges: Vec::new(),
        }
    }
}

/// What the precision step did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PrecisionReport {
    /// The fp16 pass (not for fp32): op counts, ops kept in fp32 with the reason, casts.
    pub fp16: Option<Fp16Report>,
    /// The automatic search (`auto` only).
    pub auto: Option<AutoReport>,
}

/// Sets the precision of a cleaned-up fp32 `program`. Errors (rules matching nothing, a
/// failed search, unreadable calibration files) name `source` or the rule.
pub fn apply_precision(
    program: &mut Program,
    precision: Precision,
    mixed: &MixedPrecision,
    source: &Path,
) -> Result<PrecisionReport, Error> {
    if precision == Precision::Fp32 {
        if !mixed.rules.is_empty() {
            return Err(Error::Usage(
                "--fp32-ops/--fp32-nodes/--fp32-pattern need --precision fp16 or auto".into(),
            ));
        }
        return Ok(PrecisionReport::default());
    }
    let fixed = mixed.rules.select(program.main()).map_err(Error::Usage)?;
    if precision == Precision::Fp16 {
        let fp16 = to_fp16(program, |op| fixed.get(&op.name).cloned());
        return Ok(PrecisionReport {
            fp16: Some(fp16),
            auto: None,
        });
    }
    let samples = calibration_samples(program, &mixed.calibration)?;
    let (mixed_program, fp16, auto) = mixed_precision::search(program, samples, &fixed)
        .map_err(|m| Error::VerificationFailed(format!("{}: {m}", source.display())))?;
    *program = mixed_program;
    Ok(PrecisionReport {
        fp16: Some(fp16),
        auto: Some(auto),
    })
}

/// The calibration input sets for `program`'s entry function.
fn calibration_samples(program: &Program, calibration: &Calibration) -> Result<Vec<Sample>, Error> {
    let function = program.main();
    match calibration {
        Calibration::Random { samples, ranges } => {
            if *samples == 0 {
                return Err(Error::Usage(
                    "--calibration-samples must be at least 1".into(),
                ));
            }
            random_inputs(function, *samples, 0, ranges).map_err(Error::Usage)
        }
        Calibration::Dir(dir) => {
            let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "npz"))
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(Error::Usage(format!(
                    "--calibration {}: no .npz files",
                    dir.display()
                )));
            }
            files
                .iter()
                .map(|f| {
                    match_inputs(function, read_npz(f)?)
                        .map_err(|m| Error::Usage(format!("{}: {m}", f.display())))
                })
                .collect()
        }
    }
}
