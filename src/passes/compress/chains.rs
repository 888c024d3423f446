//! Compressed weights already in a program: each chain of constexpr ops ending in a value
//! that ordinary ops read, what it stores and what it decompresses to.

use crate::ir::{Function, Operation};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};

/// One compressed weight of a program.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CompressedWeight {
    /// The decompressed value's variable name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its dtype.
    pub dtype: String,
    /// The chain's op types with their stored parameter types, first to last, e.g.
    /// `constexpr_lut_to_dense(indices uint4[64, 64], lut fp16[1, 1, 16, 1])`.
    pub scheme: Vec<String>,
    /// Bytes the chain stores.
    pub stored_bytes: usize,
    /// Stored bits per decompressed element.
    pub bits_per_weight: f64,
}

/// The constexpr chains of `function` whose final value is read by a non-constexpr op (or is
/// a block output), in block order, each with its ops in execution order.
pub fn constexpr_chains(function: &Function) -> Vec<Vec<&Operation>> {
    let ops = &function.block.operations;
    let producer: HashMap<&str, &Operation> = ops
        .iter()
        .filter(|op| op.op_type.starts_with("constexpr_"))
        .flat_map(|op| op.outputs.iter().map(move |o| (o.name.as_str(), op)))
        .collect();
    let mut read_by_constexpr: BTreeSet<&str> = BTreeSet::new();
    for op in ops.iter().filter(|op| op.op_type.starts_with("constexpr_")) {
        read_by_constexpr.extend(op.input_vars());
    }
    let mut chains = Vec::new();
    for op in ops.iter().filter(|op| op.op_type.starts_with("constexpr_")) {
        let is_final = op
            .outputs
            .iter()
            .all(|o| !read_by_constexpr.contains(o.name.as_str()));
        if !is_final {
            continue;
        }
        let mut chain = vec![op];
        let mut pending: Vec<&str> = op.input_vars().collect();
        while let Some(var) = pending.pop() {
            if let Some(&p) = producer.get(var) {
                if !chain.iter().any(|c| std::ptr::eq(*c, p)) {
                    chain.push(p);
                    pending.extend(p.input_vars());
                }
            }
        }
        let position = |o: &Operation| ops.iter().position(|x| std::ptr::eq(x, o));
        chain.sort_by_key(|o| position(o));
        chains.push(chain);
    }
    chains
}

/// Describes every compressed weight of `function`.
pub fn compressed_weights(function: &Function) -> Vec<CompressedWeight> {
    constexpr_chains(function)
        .into_iter()
        .map(|chain| {
            let last = chain[chain.len() - 1];
            let out = &last.outputs[0];
            let shape = out.ty.static_shape().unwrap_or_default();
            let elements: usize = shape.iter().product();
            let stored_bytes: usize = chain.iter().map(|op| super::stored_bytes(op)).sum();
            CompressedWeight {
                name: out.name.clone(),
                dtype: out.ty.dtype.name().to_string(),
                scheme: chain.iter().map(|op| describe(op)).collect(),
                bits_per_weight: stored_bytes as f64 * 8.0 / elements.max(1) as f64,
                stored_bytes,
                shape,
            }
        })
        .collect()
}

/// `op_type(param dtype[shape], …)` for the op's stored parameters.
fn describe(op: &Operation) -> String {
    let params: Vec<String> = op
        .inputs
        .iter()
        .flat_map(|(p, args)| {
            args.iter().filter_map(move |a| match a {
                crate::ir::Argument::Value(t) if t.len() > 1 || p != "vector_axis" => {
                    Some(format!("{p} {}{:?}", t.dtype().name(), t.shape()))
                }
                crate::ir::Argument::Var(v) => Some(format!("{p} ← {v}")),
                crate::ir::Argument::Value(_) => None,
            })
        })
        .chain(
            op.attributes
                .iter()
                .filter(|(p, _)| p.as_str() != "axis" && p.as_str() != "shape")
                .map(|(p, t)| format!("{p} {}{:?}", t.dtype().name(), t.shape())),
        )
        .collect();
    format!("{}({})", op.op_type, params.join(", "))
}
