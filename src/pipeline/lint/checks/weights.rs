//! Weights: embedding tables, palette widths and the size of weight.bin.

use super::super::{Hit, Subject};
use super::location;
use crate::backend::stored_in_blob;
use crate::ir::Program;
use crate::passes::compress::stored_bytes;
use crate::pipeline::diff::palette_bits as index_bits;

/// A gathered-from weight of at least this many bytes is reported.
const LARGE_TABLE_BYTES: usize = 1 << 20;
/// Palette index widths the Neural Engine accelerates.
const ANE_PALETTE_BITS: [usize; 5] = [1, 2, 4, 6, 8];
/// weight.bin sizes above which the Neural Engine refuses a model on iOS, and on macOS.
const IOS_WEIGHT_LIMIT: u64 = 1_000_000_000;
const MACOS_WEIGHT_LIMIT: u64 = 2_000_000_000;

/// `large-gather-table`: gathers whose table is a weight of [`LARGE_TABLE_BYTES`] or more.
pub fn large_gather_tables(subject: &Subject) -> Vec<Hit> {
    let mut hits = Vec::new();
    for f in &subject.program.functions {
        let ops = &f.block.operations;
        for op in ops.iter().filter(|op| op.op_type.starts_with("gather")) {
            let Some(table) = op.input("x").and_then(|a| a.first()).and_then(|a| a.var()) else {
                continue;
            };
            let Some((_, producer)) = f.block.producer(table) else {
                continue;
            };
            if !super::is_weight_op(producer) {
                continue;
            }
            let Some(ty) = f.var_type(table) else {
                continue;
            };
            let Some(shape) = ty.static_shape() else {
                continue;
            };
            let bytes = shape.iter().product::<usize>() * ty.dtype.ir_bytes();
            if bytes >= LARGE_TABLE_BYTES {
                hits.push(Hit::new(
                    location(subject, f, &op.name),
                    format!(
                        "{} reads rows of weight '{table}' {ty} ({:.1} MiB)",
                        op.op_type,
                        bytes as f64 / (1 << 20) as f64
                    ),
                ));
            }
        }
    }
    hits
}

/// `palettization-bits`: lookup-table ops whose index width the Neural Engine does not
/// accelerate.
pub fn palette_bits(subject: &Subject) -> Vec<Hit> {
    let mut hits = Vec::new();
    for f in &subject.program.functions {
        for op in &f.block.operations {
            if !matches!(
                op.op_type.as_str(),
                "constexpr_lut_to_dense" | "constexpr_lut_to_sparse"
            ) {
                continue;
            }
            match index_bits(op) {
                Some(bits) if !ANE_PALETTE_BITS.contains(&bits) => hits.push(Hit::new(
                    location(subject, f, &op.name),
                    format!("{}-bit palette indices", bits),
                )),
                _ => {}
            }
        }
    }
    hits
}

/// `weights-over-1gb`: weight.bin above [`IOS_WEIGHT_LIMIT`] (and at most the macOS limit).
pub fn over_1gb(subject: &Subject) -> Vec<Hit> {
    weight_size(subject, IOS_WEIGHT_LIMIT, Some(MACOS_WEIGHT_LIMIT))
}

/// `weights-over-2gb`: weight.bin above [`MACOS_WEIGHT_LIMIT`].
pub fn over_2gb(subject: &Subject) -> Vec<Hit> {
    weight_size(subject, MACOS_WEIGHT_LIMIT, None)
}

fn weight_size(subject: &Subject, above: u64, up_to: Option<u64>) -> Vec<Hit> {
    let bytes = subject.weight_bytes;
    if bytes <= above || up_to.is_some_and(|max| bytes > max) {
        return Vec::new();
    }
    vec![Hit::new(
        "weight.bin",
        format!("{bytes} bytes of weights (limit {above})"),
    )]
}

/// The bytes the weights of `program` take in weight.bin once written: constants stored
/// there and every constexpr op's stored parameters (without alignment padding).
pub fn blob_bytes(program: &Program) -> u64 {
    program
        .functions
        .iter()
        .flat_map(|f| &f.block.operations)
        .map(|op| match op.const_value() {
            Some(v) if stored_in_blob(v, program.target) => v.bytes().len(),
            Some(_) => 0,
            None if op.op_type.starts_with("constexpr_") => stored_bytes(op),
            None => 0,
        } as u64)
        .sum()
}
