//! The verification flags of every command that verifies what it writes (`convert` and the
//! compression commands), declared once.

use super::values;
use super::verify::parse_range;
use crate::pipeline::ConvertVerify;
use crate::verify::{InputRange, ThresholdOverrides, Thresholds};
use clap::Args;

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
