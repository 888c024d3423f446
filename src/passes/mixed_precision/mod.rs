//! Mixed precision: choosing which ops stay in fp32 while the rest compute in fp16.
//! [`rules`] selects ops by type, name or pattern; [`auto`] finds them by running the
//! fp16-emulating interpreter. Casts are then inserted by [`crate::passes::to_fp16`].

pub mod auto;
pub mod rules;

pub use auto::{search, AutoReport, KeptOp};
pub use rules::{norm_regions, Fp32Pattern, Fp32Rules};

use super::precision::decides_precision;
use crate::ir::{DType, Function, Operation};
use std::collections::HashMap;

/// The precision an op computes in: the dtype of its float outputs (of its float inputs when
/// it has none); `None` for ops without float arithmetic (constants, casts, shape queries,
/// integer ops).
pub fn op_precision(op: &Operation, types: &HashMap<&str, DType>) -> Option<DType> {
    let is_float = |v: &str| types.get(v).is_some_and(|d| d.is_float());
    if !decides_precision(op, is_float) {
        return None;
    }
    op.outputs
        .iter()
        .map(|o| o.ty.dtype)
        .find(|d| d.is_float())
        .or_else(|| {
            op.input_vars()
                .filter_map(|v| types.get(v).copied())
                .find(|d| d.is_float())
        })
}

/// Every variable's dtype in `function`, by name.
pub fn dtypes(function: &Function) -> HashMap<&str, DType> {
    function
        .var_types()
        .into_iter()
        .map(|(k, t)| (k, t.dtype))
        .collect()
}

/// The ops of `function` whose precision the fp16 pass chooses, with their indices.
fn precision_ops(function: &Function) -> impl Iterator<Item = (usize, &Operation)> {
    let types = dtypes(function);
    let is_float = move |v: &str| types.get(v).is_some_and(|d| d.is_float());
    function
        .block
        .operations
        .iter()
        .enumerate()
        .filter(move |(_, op)| decides_precision(op, &is_float))
}
