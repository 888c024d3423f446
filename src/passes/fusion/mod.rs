//! Fusion: IR-to-IR passes replacing decomposed exporter idioms with the single MIL op Core ML
//! runs natively (`gelu`, `layer_norm`, `linear`, `split`, `silu`, and attention blocks as
//! `scaled_dot_product_attention`), constant batch normalization folded into the convolution
//! before it, chains of shape-only ops as one `reshape`, and a reduction keeping axes that the
//! next op drops as one reduction without them.
//!
//! [`fuse`] runs the passes of [`PASSES`] in table order, each until it finds nothing more,
//! and repeats the round until no pass fires. The order: no-ops (`x + 0`, reshapes to the
//! input's own shape) go first, then conv + batch_norm folding (it only reads constants), then
//! activations (they only read elementwise chains), then normalization, then `linear` (so a
//! bias `add` is taken only once the norms around it are settled), then the Q/K/V `split`,
//! then the reshape and transpose chains (the split's squeezes among them) and kept reduction
//! axes, then batched matmuls through flattened batch dims become plain matmuls, and the
//! fully-masked-row guard of core-ATen attention becomes the softmax NaN guard, which moves
//! behind its matmul. Each pass rewrites one match at a time: the pattern's last op is
//! replaced by the fused op (same op and output names, the source node of the pattern's
//! characteristic op as `origin`) and the rest of the pattern, whose values no other op reads,
//! is removed as dead code. Last, [`fuse_attention`] rewrites every attention block at once
//! (its matmuls have no constant operand, so the passes before never touch them).

mod attention;
mod batched_matmul;
mod conv_batch_norm;
mod gelu;
mod graph;
mod layer_norm;
mod linear;
mod masked_row_guard;
mod nan_guard;
mod noop;
mod reduce_keep_dims;
mod reshape_chain;
mod silu;
mod split;
mod transpose_chain;

pub use attention::fuse_attention;

use super::remove_dead_code;
use crate::ir::{Function, Program, Target};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// One fusion pass: the kind it reports and the rewrite of its first match.
pub struct Pass {
    /// Name counted in the [`FusionReport`] (the fused op's type).
    pub kind: &'static str,
    /// Rewrites the first match in `function` for `target`; false when there is none.
    pub fuse_one: fn(&mut Function, Target) -> bool,
}

/// Every fusion pass, in the order [`fuse`] runs them.
pub const PASSES: &[Pass] = &[
    Pass {
        kind: "noop",
        fuse_one: noop::fuse_one,
    },
    Pass {
        kind: "conv_batch_norm",
        fuse_one: conv_batch_norm::fuse_one,
    },
    Pass {
        kind: "silu",
        fuse_one: silu::fuse_one,
    },
    Pass {
        kind: "gelu",
        fuse_one: |function, _| graph::fuse_first(function, gelu::plan),
    },
    Pass {
        kind: "layer_norm",
        fuse_one: |function, _| graph::fuse_first(function, layer_norm::plan),
    },
    Pass {
        kind: "linear",
        fuse_one: |function, _| graph::fuse_first(function, linear::plan),
    },
    Pass {
        kind: "split",
        fuse_one: split::fuse_one,
    },
    Pass {
        kind: "reshape",
        fuse_one: reshape_chain::fuse_one,
    },
    Pass {
        kind: "reduce",
        fuse_one: reduce_keep_dims::fuse_one,
    },
    Pass {
        kind: "transpose",
        fuse_one: transpose_chain::fuse_one,
    },
    Pass {
        kind: "batched_matmul",
        fuse_one: batched_matmul::fuse_one,
    },
    Pass {
        kind: "masked_row_guard",
        fuse_one: masked_row_guard::fuse_one,
    },
    Pass {
        kind: "softmax_nan_guard",
        fuse_one: nan_guard::fuse_one,
    },
];

/// The package metadata (`userDefined`) key under which conversion records what was fused,
/// as [`FusionReport`] displays it (`4 gelu, 5 layer_norm`); `inspect` prints it.
pub const FUSED_METADATA_KEY: &str = "mlpack.fused";

/// Rounds after which [`fuse`] stops even if a pass still fires (none is expected to).
const MAX_ROUNDS: usize = 8;

/// How many patterns each pass fused, by kind (serialized as a map, e.g.
/// `{"gelu": 4, "layer_norm": 5}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct FusionReport {
    /// Fusions by kind; kinds that fused nothing are absent.
    pub counts: BTreeMap<String, usize>,
}

impl FusionReport {
    /// Total fusions.
    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }
}

impl fmt::Display for FusionReport {
    /// `4 gelu, 5 layer_norm`, or `nothing` when no pattern was fused.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.counts.is_empty() {
            return f.write_str("nothing");
        }
        let parts: Vec<String> = self
            .counts
            .iter()
            .map(|(kind, n)| format!("{n} {kind}"))
            .collect();
        f.write_str(&parts.join(", "))
    }
}

/// Runs every pass of [`PASSES`] over every function of `program` to a fixed point.
pub fn fuse(program: &mut Program) -> FusionReport {
    let mut report = FusionReport::default();
    let target = program.target;
    for _ in 0..MAX_ROUNDS {
        let mut fired = false;
        for pass in PASSES {
            for f in 0..program.functions.len() {
                while (pass.fuse_one)(&mut program.functions[f], target) {
                    remove_dead_code(program);
                    *report.counts.entry(pass.kind.to_string()).or_insert(0) += 1;
                    fired = true;
                }
            }
        }
        if !fired {
            break;
        }
    }
    let attention: usize = program
        .functions
        .iter_mut()
        .map(|f| fuse_attention(f, target))
        .sum();
    remove_dead_code(program);
    if attention > 0 {
        report.counts.insert(ATTENTION_KIND.to_string(), attention);
    }
    report
}

/// The kind under which [`FusionReport`] counts attention blocks fused by [`fuse_attention`].
pub const ATTENTION_KIND: &str = "scaled_dot_product_attention";

#[cfg(test)]
pub(crate) mod testing {
    //! Shared checks of the pass tests: a fused program validates and computes what the
    //! original computed.

    use super::*;
    use crate::interp::{run, RunOptions, Value};
    use crate::ir::{validate_program, Builder};
    use std::collections::BTreeMap;

    /// Deterministic inputs in [-3, 3) for every input of `function` (symbolic dims as 2).
    fn inputs(function: &Function) -> BTreeMap<String, Value> {
        let mut state = 0x9e37_79b9_u32;
        function
            .inputs
            .iter()
            .map(|v| {
                let shape: Vec<usize> = v.ty.shape.iter().map(|d| d.fixed().unwrap_or(2)).collect();
                let n = shape.iter().product();
                let data = (0..n)
                    .map(|_| {
                        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        (state >> 8) as f32 / (1u32 << 24) as f32 * 6.0 - 3.0
                    })
                    .collect();
                let array = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&shape), data).unwrap();
                (v.name.clone(), Value::Float(array))
            })
            .collect()
    }

    /// Fuses `function` (at `target`), checks the report's counts, that the result validates,
    /// and that it computes the original's outputs (max error ≤ 1e-5 × scale); returns it.
    pub fn fuse_checked(function: Function, target: Target, expected: &[(&str, usize)]) -> Program {
        let original = Program::new(target, vec![function]);
        validate_program(&original).unwrap();
        let mut fused = original.clone();
        let report = fuse(&mut fused);
        let expected: BTreeMap<String, usize> =
            expected.iter().map(|(k, n)| (k.to_string(), *n)).collect();
        assert_eq!(
            report.counts,
            expected,
            "{}",
            crate::ir::print_program(&fused)
        );
        validate_program(&fused).unwrap();
        let inputs = inputs(original.main());
        let want = run(original.main(), &inputs, RunOptions::default()).unwrap();
        let got = run(fused.main(), &inputs, RunOptions::default()).unwrap();
        assert_eq!(want.len(), got.len());
        for ((name, a), (_, b)) in want.iter().zip(&got) {
            let (a, b) = (a.to_f32_array().unwrap(), b.to_f32_array().unwrap());
            assert_eq!(a.shape(), b.shape(), "{name}");
            let scale = a.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            let err = a
                .iter()
                .zip(b.iter())
                .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(
                err <= 1e-5 * scale,
                "{name}: max error {err} (scale {scale})"
            );
        }
        fused
    }

    /// `select(cond, fill, probs)` multiplied by `v` as `y`: attention probabilities behind a
    /// guard that replaces some of them by `fill`.
    pub fn guarded_matmul(b: &mut Builder, cond: &str, fill: &str, probs: &str) -> String {
        let inputs = [("cond", &[cond][..]), ("a", &[fill]), ("b", &[probs])];
        let guarded = b.op1("select", "guarded", &inputs).unwrap();
        b.op1("matmul", "y", &[("x", &[&guarded]), ("y", &["v"])])
            .unwrap()
    }

    /// The op types of `program`'s main function other than `const`, in order.
    pub fn op_types(program: &Program) -> Vec<&str> {
        program
            .main()
            .block
            .operations
            .iter()
            .map(|op| op.op_type.as_str())
            .filter(|t| *t != "const")
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_prints_counts_by_kind() {
        let mut r = FusionReport::default();
        assert_eq!(r.to_string(), "nothing");
        r.counts.insert("layer_norm".into(), 5);
        r.counts.insert("gelu".into(), 4);
        assert_eq!(r.to_string(), "4 gelu, 5 layer_norm");
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"gelu":4,"layer_norm":5}"#
        );
        assert_eq!(r.total(), 9);
    }
}
