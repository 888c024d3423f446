//! Precision: ops computing in fp32, and activations beyond fp16's range on given inputs.

use super::super::{Hit, Subject};
use super::{is_weight_op, location};
use crate::ir::DType;
use crate::passes::mixed_precision::{dtypes, op_precision};

/// fp16's largest finite value.
pub const FP16_MAX: f32 = 65504.0;

/// `fp32-compute`: every op whose float arithmetic is fp32.
pub fn fp32_compute(subject: &Subject) -> Vec<Hit> {
    let mut hits = Vec::new();
    for f in &subject.program.functions {
        let types = dtypes(f);
        for op in f.block.operations.iter().filter(|op| !is_weight_op(op)) {
            if op_precision(op, &types) == Some(DType::F32) {
                hits.push(Hit::new(
                    location(subject, f, &op.name),
                    format!("{} computes in fp32", op.op_type),
                ));
            }
        }
    }
    hits
}

/// `fp16-overflow`: op outputs whose largest |value| on the given inputs exceeds
/// [`FP16_MAX`].
pub fn overflow(subject: &Subject) -> Vec<Hit> {
    peaks_in(
        subject,
        FP16_MAX,
        f32::INFINITY,
        "beyond fp16's largest value 65504",
    )
}

/// `fp16-near-overflow`: op outputs whose largest |value| is above half of [`FP16_MAX`] (and
/// not beyond it).
pub fn near_overflow(subject: &Subject) -> Vec<Hit> {
    peaks_in(
        subject,
        FP16_MAX / 2.0,
        FP16_MAX,
        "within a factor 2 of fp16's largest value 65504",
    )
}

/// The op outputs of the default function whose peak is above `above` and at most `up_to`
/// (an infinite peak counts as beyond any finite bound).
fn peaks_in(subject: &Subject, above: f32, up_to: f32, what: &str) -> Vec<Hit> {
    let Some(peaks) = &subject.peaks else {
        return Vec::new();
    };
    let main = subject.program.main();
    let mut hits = Vec::new();
    for op in main.block.operations.iter().filter(|op| !is_weight_op(op)) {
        for out in &op.outputs {
            let Some(&peak) = peaks.get(&out.name) else {
                continue;
            };
            if peak > above && (peak <= up_to || up_to == f32::INFINITY) {
                hits.push(Hit::new(
                    location(subject, main, &op.name),
                    format!(
                        "{} output '{}' reaches |x| = {peak:.4e} in fp32, {what}",
                        op.op_type, out.name
                    ),
                ));
            }
        }
    }
    hits
}
