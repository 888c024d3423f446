//! Fusion passes: exporter op chains rewritten into the fused MIL ops Core ML runs fastest.

mod attention;

pub use attention::fuse_attention;

use crate::ir::{Function, Program, Target};
use std::collections::BTreeMap;

/// One fusion pass: rewrites a function for a target, returning how many fusions it made.
type FusionPass = fn(&mut Function, Target) -> usize;

/// Every fusion pass, in the order they run, by the name reports use.
const PASSES: &[(&str, FusionPass)] = &[("attention", fuse_attention)];

/// What the fusion passes did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct FusionReport {
    /// Pass name → fusions made (passes that made none are left out).
    pub fused: BTreeMap<&'static str, usize>,
}

/// Runs every fusion pass over every function, then removes the ops they left unused.
pub fn fuse(program: &mut Program) -> FusionReport {
    let mut report = FusionReport::default();
    let target = program.target;
    for (name, pass) in PASSES {
        let count: usize = program.functions.iter_mut().map(|f| pass(f, target)).sum();
        if count > 0 {
            report.fused.insert(name, count);
        }
    }
    super::remove_dead_code(program);
    report
}
