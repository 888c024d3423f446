//! Program transformations: cleanup (constant folding, identity removal, dead code), fusion
//! of exporter idioms into single MIL ops, and precision (fp16 compute with casts at the fp32
//! boundaries, mixed precision).

pub mod compress;
mod const_fold;
mod dead_code;
pub mod fusion;
mod identity;
pub mod mixed_precision;
mod precision;
pub mod states;

pub use const_fold::fold_constants;
pub use dead_code::remove_dead_code;
pub use fusion::{fuse, FusionReport, FUSED_METADATA_KEY};
pub use identity::remove_identities;
pub use precision::{to_fp16, Fp16Report};

use crate::ir::Program;

/// The cleanup pipeline: constant folding, identity removal, then dead-code elimination.
pub fn cleanup(program: &mut Program) -> Result<(), String> {
    fold_constants(program)?;
    remove_identities(program);
    remove_dead_code(program);
    Ok(())
}
