//! The lint rules as data: one table of id, severity, title, fix hint, public sources and the
//! check that finds it. docs/lint.md gives each rule's facts with its sources.

use super::checks::{io, precision, shapes, target, weights};
use super::{Hit, Severity, Subject};
use serde::Serialize;

/// One lint rule.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Rule {
    /// Stable identifier, e.g. `fp32-compute`.
    pub id: &'static str,
    /// How bad a finding is.
    pub severity: Severity,
    /// What the rule looks for.
    pub title: &'static str,
    /// How to fix a finding.
    pub hint: &'static str,
    /// Public sources of the fact the rule rests on (URLs).
    pub sources: &'static [&'static str],
    /// Finds the rule's findings in a subject.
    #[serde(skip)]
    pub check: fn(&Subject) -> Vec<Hit>,
}

const HOLLANCE_16BIT: &str = "https://github.com/hollance/neural-engine/blob/master/docs/16-bit.md";
const HOLLANCE_UNSUPPORTED: &str =
    "https://github.com/hollance/neural-engine/blob/master/docs/unsupported-layers.md";
const ANEMLL_RULES: &str = "https://github.com/Anemll/Anemll/blob/main/.cursorrules";
const SD_README: &str = "https://github.com/apple/ml-stable-diffusion/blob/main/README.md";
const SD_NBITS: &str = "https://github.com/apple/ml-stable-diffusion/blob/main/python_coreml_stable_diffusion/mixed_bit_compression_pre_analysis.py";
const SD_CHUNK: &str = "https://github.com/apple/ml-stable-diffusion/blob/main/python_coreml_stable_diffusion/torch2coreml.py";
const ANE_TRANSFORMERS: &str = "https://github.com/apple/ml-ane-transformers";
const ANE_LAYER_NORM: &str =
    "https://github.com/apple/ml-ane-transformers/blob/main/ane_transformers/reference/layer_norm.py";
const FLEXIBLE_INPUTS: &str =
    "https://apple.github.io/coremltools/docs-guides/source/flexible-inputs.html";
const CT_ISSUE_RANGE: &str = "https://github.com/apple/coremltools/issues/1029";
const CT_ISSUE_RANGE_ANE: &str = "https://github.com/apple/coremltools/issues/2370";
const CT_ISSUE_RANK: &str = "https://github.com/apple/coremltools/issues/1723";
const CT_ISSUE_GATHER: &str = "https://github.com/apple/coremltools/issues/1103";
const CT_OPS: &str =
    "https://apple.github.io/coremltools/source/coremltools.converters.mil.mil.ops.defs.html";

/// Every rule, in the order findings are listed.
pub static RULES: &[Rule] = &[
    Rule {
        id: "target-unsupported",
        severity: Severity::Error,
        title: "an op, op parameter, compression form or I/O type the deployment target's \
                opset does not have",
        hint: "convert for a newer --target, or avoid the op",
        sources: &[CT_OPS],
        check: target::unsupported,
    },
    Rule {
        id: "fp32-compute",
        severity: Severity::Warning,
        title: "an op computing in fp32: the Neural Engine computes in fp16 only, so the op runs \
                on the CPU or GPU",
        hint: "convert with --precision fp16 (or auto, which keeps only the ops that need fp32)",
        sources: &[HOLLANCE_16BIT, SD_README],
        check: precision::fp32_compute,
    },
    Rule {
        id: "fp16-overflow",
        severity: Severity::Error,
        title: "an activation beyond fp16's largest finite value (65504) on the given inputs \
                (fp32 run): it becomes inf in fp16",
        hint: "keep the op in fp32 (--fp32-ops/--fp32-nodes, --precision auto) or scale or clip \
               the values before it",
        sources: &[HOLLANCE_16BIT, ANE_LAYER_NORM],
        check: precision::overflow,
    },
    Rule {
        id: "fp16-near-overflow",
        severity: Severity::Warning,
        title: "an activation within a factor 2 of fp16's largest finite value on the given \
                inputs (fp32 run): other inputs may overflow",
        hint: "check with more representative inputs; clip or keep the op in fp32",
        sources: &[HOLLANCE_16BIT, ANE_LAYER_NORM],
        check: precision::near_overflow,
    },
    Rule {
        id: "flexible-input",
        severity: Severity::Warning,
        title: "an input with range-flexible or unbounded dimensions: such models often run \
                off the Neural Engine",
        hint: "give the sizes the app uses as enumerated shapes (--dim NAME=16|64|128 or \
               --input-shape NAME=1,64|1,128) or fix them",
        sources: &[CT_ISSUE_RANGE, CT_ISSUE_RANGE_ANE, FLEXIBLE_INPUTS],
        check: io::flexible_inputs,
    },
    Rule {
        id: "rank-above-5",
        severity: Severity::Error,
        title: "a tensor of rank above 5, beyond Core ML's limit",
        hint: "fold dimensions together (reshape) so every tensor has rank 5 or less",
        sources: &[CT_ISSUE_RANK],
        check: shapes::rank_above_5,
    },
    Rule {
        id: "rank-above-4",
        severity: Severity::Warning,
        title: "a rank-5 tensor: Neural Engine models keep every tensor at rank 4 or less",
        hint: "fold a dimension into its neighbour (e.g. batch × heads) to stay at rank 4",
        sources: &[ANEMLL_RULES],
        check: shapes::rank_5,
    },
    Rule {
        id: "dim-above-limit",
        severity: Severity::Warning,
        title: "a dimension above 16384 (above 65536 on the channel axis of a rank-4 tensor), \
                beyond the Neural Engine's reported limits",
        hint: "split the tensor (e.g. slice a wide LM head into chunks of 16384 or fewer)",
        sources: &[ANEMLL_RULES],
        check: shapes::dims_above_limit,
    },
    Rule {
        id: "tiny-last-axis",
        severity: Severity::Warning,
        title: "a large activation whose last axis is shorter than 64 bytes: the Neural Engine \
                pads the last axis to 64 bytes, multiplying its memory",
        hint: "reorder axes so the long dimension is last (channels-first (B, C, 1, S) layout)",
        sources: &[ANEMLL_RULES, ANE_TRANSFORMERS],
        check: shapes::tiny_last_axis,
    },
    Rule {
        id: "large-gather-table",
        severity: Severity::Info,
        title: "a gather from a weight table of 1 MiB or more (an embedding): gathers run on the \
                CPU",
        hint: "expected for token embeddings; keep the lookup outside the Neural Engine part \
               (e.g. its own package with split) if it matters",
        sources: &[ANE_TRANSFORMERS, CT_ISSUE_GATHER, HOLLANCE_UNSUPPORTED],
        check: weights::large_gather_tables,
    },
    Rule {
        id: "palettization-bits",
        severity: Severity::Warning,
        title: "a palettized weight whose index width is not 1, 2, 4, 6 or 8 bits, the widths \
                the Neural Engine accelerates",
        hint: "palettize with --nbits 1, 2, 4, 6 or 8",
        sources: &[SD_NBITS],
        check: weights::palette_bits,
    },
    Rule {
        id: "weights-over-1gb",
        severity: Severity::Warning,
        title: "weight.bin above 1 GB, too large for the Neural Engine on iOS",
        hint: "cut the package with `mlpack split PACKAGE -o DIR --max-weight-size 1GB`",
        sources: &[SD_CHUNK, SD_README],
        check: weights::over_1gb,
    },
    Rule {
        id: "weights-over-2gb",
        severity: Severity::Error,
        title: "weight.bin above 2 GB, too large for the Neural Engine on macOS too",
        hint: "cut the package with `mlpack split PACKAGE -o DIR --max-weight-size 1GB`",
        sources: &[SD_README],
        check: weights::over_2gb,
    },
];
