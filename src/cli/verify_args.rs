//! Verification flags declared once: those of every command that verifies what it writes
//! (`convert` and the compression commands), and the input set of the commands that compare
//! two models (`verify`, `diff`).

use super::values;
use super::verify::parse_range;
use crate::pipeline::ConvertVerify;
use crate::verify::{InputRange, InputSpec, ThresholdOverrides, Thresholds};
use clap::Args;
use std::path::PathBuf;

/// Verification before writing.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Skip verifying the written model against its source before writing it.
    #[arg(long)]
    pub no_verify: bool,
    /// Random input sets for the verification (1 to 10000).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 3,
        value_parser = values::count,
        conflicts_with = "no_verify"
    )]
    pub verify_samples: usize,
    /// Range of an input's random verification (and --precision auto calibration) values:
    /// floats in [LO,HI), integers in [LO,HI] (repeatable; default by the input's role, as
    /// `verify`).
    #[arg(long = "input-range", value_name = "NAME=LO,HI", value_parser = parse_range)]
    pub input_ranges: Vec<InputRange>,
    /// Write the package even when verification fails (with a warning).
    #[arg(long, conflicts_with = "no_verify")]
    pub allow_degraded: bool,
}

impl VerifyArgs {
    /// The library settings (`None` with `--no-verify`), with these thresholds and floor.
    pub fn settings(
        &self,
        thresholds: ThresholdOverrides,
        floor: Option<Thresholds>,
    ) -> Option<ConvertVerify> {
        (!self.no_verify).then(|| ConvertVerify {
            samples: self.verify_samples,
            ranges: self.input_ranges.clone(),
            allow_degraded: self.allow_degraded,
            thresholds,
            floor,
        })
    }
}

/// The inputs two models are compared on: a file, or seeded random sets.
#[derive(Debug, Args)]
pub struct InputSetArgs {
    /// Inputs from a NumPy .npz archive (np.savez), one NAME.npy member per model input; or a
    /// .png/.jpg file for a package whose only input is an image.
    #[arg(long, value_name = "FILE.npz", conflicts_with_all = ["random", "seed", "input_ranges"])]
    pub inputs: Option<PathBuf>,
    /// Number of random input sets.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = values::count)]
    pub random: usize,
    /// Seed of the random inputs (same seed, same inputs on every machine).
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Range of an input's random values: floats uniform in [LO,HI), integers in [LO,HI]
    /// (repeatable; default by the input's role: floats [-1,1), gather indices [0,rows),
    /// masks and arithmetic {0,1}, other integers [0,9]).
    #[arg(long = "input-range", value_name = "NAME=LO,HI", value_parser = parse_range)]
    pub input_ranges: Vec<InputRange>,
}

impl InputSetArgs {
    /// The random input sets (used when no `--inputs` file is given).
    pub fn random_spec(&self) -> InputSpec {
        InputSpec::Random {
            samples: self.random,
            seed: self.seed,
            ranges: self.input_ranges.clone(),
        }
    }
}
