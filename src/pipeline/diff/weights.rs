//! The weights of a function as `diff` compares them: every stored constant and every
//! compressed weight (a chain of constexpr ops), with its compression scheme, stored bytes
//! and bits per weight.

use crate::ir::{Argument, DType, Function, Operation, Tensor};
use crate::passes::compress::{compressed_weights, constexpr_chains};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Constants with fewer elements than this (shapes, axes, epsilons) are not weights.
const MIN_WEIGHT_ELEMENTS: usize = 10;

/// One weight of one side.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WeightDesc {
    /// Shape of the (decompressed) weight.
    pub shape: Vec<usize>,
    /// Element type of the (decompressed) weight.
    pub dtype: String,
    /// How it is stored: `fp32`, `fp16` (plain constants, by type), or the compression ops
    /// first to last, e.g. `palettized 4-bit`, `linear int8`, `sparse palettized 4-bit`,
    /// `linear int8 + palettized 4-bit` (a quantized lookup table).
    pub scheme: String,
    /// Bytes it takes in the package (sub-byte types packed).
    pub stored_bytes: usize,
    /// Stored bits per element.
    pub bits_per_weight: f64,
}

/// The weights of one side together.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WeightTotals {
    /// Number of weights.
    pub count: usize,
    /// Elements over all weights.
    pub parameters: usize,
    /// Stored bytes over all weights.
    pub stored_bytes: usize,
    /// Stored bits per element over all weights.
    pub bits_per_weight: f64,
    /// Number of weights per scheme.
    pub schemes: BTreeMap<String, usize>,
}

impl WeightTotals {
    /// The totals of `weights`.
    pub fn of<'a>(weights: impl IntoIterator<Item = &'a WeightDesc>) -> WeightTotals {
        let mut t = WeightTotals::default();
        for w in weights {
            t.count += 1;
            t.parameters += w.shape.iter().product::<usize>();
            t.stored_bytes += w.stored_bytes;
            *t.schemes.entry(w.scheme.clone()).or_default() += 1;
        }
        t.bits_per_weight = t.stored_bytes as f64 * 8.0 / t.parameters.max(1) as f64;
        t
    }
}

/// Every weight of `function` by variable name, in block order: constants of at least ten
/// elements that no constexpr op reads, then each compressed weight.
pub fn weights(function: &Function) -> Vec<(String, WeightDesc)> {
    let ops = &function.block.operations;
    let read_by_constexpr: BTreeSet<&str> = ops
        .iter()
        .filter(|op| op.op_type.starts_with("constexpr_"))
        .flat_map(|op| op.input_vars())
        .collect();
    let mut list: Vec<(String, WeightDesc)> = ops
        .iter()
        .filter_map(|op| Some((op, op.const_value()?)))
        .filter(|(op, v)| {
            v.dtype() != DType::String
                && v.len() >= MIN_WEIGHT_ELEMENTS
                && !read_by_constexpr.contains(op.outputs[0].name.as_str())
        })
        .map(|(op, v)| {
            let stored_bytes = v.bytes().len();
            let desc = WeightDesc {
                shape: v.shape().to_vec(),
                dtype: v.dtype().name().to_string(),
                scheme: v.dtype().name().to_string(),
                stored_bytes,
                bits_per_weight: stored_bytes as f64 * 8.0 / v.len() as f64,
            };
            (op.outputs[0].name.clone(), desc)
        })
        .collect();
    let chains = constexpr_chains(function);
    for (chain, c) in chains.iter().zip(compressed_weights(function)) {
        list.push((
            c.name,
            WeightDesc {
                shape: c.shape,
                dtype: c.dtype,
                scheme: scheme(chain),
                stored_bytes: c.stored_bytes,
                bits_per_weight: c.bits_per_weight,
            },
        ));
    }
    list
}

/// The stored tensor bound to `param` of a constexpr op: an inline input (iOS18 form) or an
/// attribute (iOS16 form).
fn stored<'a>(op: &'a Operation, param: &str) -> Option<&'a Tensor> {
    match op.input(param) {
        Some([Argument::Value(t)]) => Some(t),
        _ => op.attributes.get(param),
    }
}

/// The index width of a lookup-table op: the indices' type width in the iOS18 form; in the
/// iOS16 form (indices packed in bytes, one table) log2 of the table's length.
pub(in crate::pipeline) fn palette_bits(op: &Operation) -> Option<usize> {
    if op.input("indices").is_some() || op.input("indices_mask").is_some() {
        return stored(op, "indices")
            .or_else(|| stored(op, "indices_nonzero_data"))
            .map(|t| t.dtype().bits());
    }
    let entries = stored(op, "lut")?.len();
    entries
        .is_power_of_two()
        .then(|| entries.trailing_zeros() as usize)
}

/// What one constexpr op of a chain does, for the scheme text.
fn scheme_part(op: &Operation) -> String {
    let bits = match palette_bits(op) {
        Some(n) => format!("palettized {n}-bit"),
        None => "palettized".to_string(),
    };
    let dtype_of = |param| stored(op, param).map_or("?", |t| t.dtype().name());
    match op.op_type.as_str() {
        "constexpr_lut_to_dense" => bits,
        "constexpr_affine_dequantize" => format!("linear {}", dtype_of("quantized_data")),
        "constexpr_blockwise_shift_scale" => format!("linear {}", dtype_of("data")),
        "constexpr_sparse_to_dense" => SPARSE.to_string(),
        "constexpr_lut_to_sparse" => format!("{SPARSE} {bits}"),
        "constexpr_sparse_blockwise_shift_scale" => {
            format!("{SPARSE} linear {}", dtype_of("nonzero_data"))
        }
        "constexpr_cast" => format!("{} cast", dtype_of("source_val")),
        other => other.to_string(),
    }
}

/// The scheme part of a sparse op.
const SPARSE: &str = "sparse";

/// The scheme of a chain: its ops' parts joined, a bare `sparse` dropped when another part
/// already says sparse (the iOS18 joint forms end in a `constexpr_sparse_to_dense`).
fn scheme(chain: &[&Operation]) -> String {
    let parts: Vec<String> = chain.iter().map(|op| scheme_part(op)).collect();
    let joint = parts.iter().any(|p| p.starts_with("sparse "));
    let parts: Vec<&str> = parts
        .iter()
        .map(String::as_str)
        .filter(|p| !(joint && *p == SPARSE))
        .collect();
    parts.join(" + ")
}
