//! Per-op diagnosis: compares every intermediate value the source and the candidate share by
//! name, and finds the first op in the candidate whose error jumps.

use super::metrics::{Accumulator, Metrics};
use super::{Side, VerifyError};
use crate::interp::{self, RunOptions, Value};
use crate::ir::{Function, Operation};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// How far past the thresholds' error level a value must be to count as the divergence.
pub const JUMP_FACTOR: f64 = 10.0;

/// Errors of one intermediate value both programs compute.
#[derive(Clone, Debug, Serialize)]
pub struct ValueDiff {
    /// Position of the producing op in the candidate's op list.
    pub index: usize,
    /// Variable name.
    pub name: String,
    /// MIL op type producing it in the candidate.
    pub op_type: String,
    /// Name of that op in the candidate.
    pub op: String,
    /// Source-model node the source's producer came from (ONNX node name), when known.
    pub origin: Option<String>,
    /// The candidate's dtype for the value.
    pub dtype: String,
    /// Errors over every sample.
    pub metrics: Metrics,
}

/// A precision change in the candidate: a `cast` op.
#[derive(Clone, Debug, Serialize)]
pub struct CastInfo {
    /// Position in the candidate's op list.
    pub index: usize,
    /// Variable cast.
    pub from: String,
    /// Variable produced.
    pub to: String,
    /// Dtype before.
    pub from_dtype: String,
    /// Dtype after.
    pub to_dtype: String,
}

/// The first value whose error jumps past the thresholds.
#[derive(Clone, Debug, Serialize)]
pub struct Divergence {
    /// The value (see [`ValueDiff`]), repeated for convenience.
    pub value: ValueDiff,
    /// Why it counts: non-finite values, or the relative error against the limit.
    pub reason: String,
}

/// The per-op report.
#[derive(Clone, Debug, Serialize)]
pub struct PerOpReport {
    /// Relative error level the thresholds imply (see [`super::Thresholds::level`]).
    pub level: f64,
    /// Values compared, in the candidate's op order.
    pub values: Vec<ValueDiff>,
    /// Precision changes in the candidate, in op order.
    pub casts: Vec<CastInfo>,
    /// Candidate values with no same-named, same-shaped source value (casts, fused or
    /// renamed values), constants not counted.
    pub not_compared: usize,
    /// The first value whose relative max error exceeds `JUMP_FACTOR × level`, or that is
    /// non-finite where the source is finite.
    pub first_divergence: Option<Divergence>,
}

/// Runs both functions on every sample, comparing shared intermediate values.
pub fn diagnose(
    source: &Function,
    candidate: &Function,
    samples: &[BTreeMap<String, Value>],
    source_options: RunOptions,
    candidate_options: RunOptions,
    level: f64,
) -> Result<PerOpReport, VerifyError> {
    let producers: HashMap<&str, (usize, &Operation)> = candidate
        .block
        .operations
        .iter()
        .enumerate()
        .flat_map(|(i, op)| op.outputs.iter().map(move |o| (o.name.as_str(), (i, op))))
        .collect();
    let origins: HashMap<&str, Option<&str>> = source
        .block
        .operations
        .iter()
        .flat_map(|op| {
            op.outputs
                .iter()
                .map(move |o| (o.name.as_str(), op.origin.as_deref()))
        })
        .collect();
    // Constants (weights) are not compared: keeping copies of them would only cost memory.
    let source_consts: BTreeSet<&str> = source
        .block
        .operations
        .iter()
        .filter(|op| op.op_type == "const")
        .flat_map(|op| op.outputs.iter().map(|o| o.name.as_str()))
        .collect();
    let mut accumulators: BTreeMap<(usize, String), Accumulator> = BTreeMap::new();
    let mut not_compared: BTreeSet<String> = BTreeSet::new();
    for sample in samples {
        let mut reference: HashMap<String, Value> = HashMap::new();
        interp::run_with_observer(source, sample, source_options, |name, value| {
            if !source_consts.contains(name) {
                reference.insert(name.to_string(), value.clone());
            }
        })
        .map_err(|error| VerifyError::Run {
            side: Side::Source,
            error,
        })?;
        interp::run_with_observer(candidate, sample, candidate_options, |name, value| {
            let Some(&(index, op)) = producers.get(name) else {
                return;
            };
            if op.op_type == "const" {
                return;
            }
            let paired = reference.get(name).filter(|r| r.shape() == value.shape());
            match (paired.map(Value::to_f32_array), value.to_f32_array()) {
                (Some(Ok(r)), Ok(c)) => accumulators
                    .entry((index, name.to_string()))
                    .or_default()
                    .add(&r, &c),
                _ => {
                    not_compared.insert(name.to_string());
                }
            }
        })
        .map_err(|error| VerifyError::Run {
            side: Side::Candidate,
            error,
        })?;
    }
    let values: Vec<ValueDiff> = accumulators
        .into_iter()
        .filter_map(|((index, name), acc)| {
            let (_, op) = producers.get(name.as_str())?;
            let dtype = op
                .outputs
                .iter()
                .find(|o| o.name == name)?
                .ty
                .dtype
                .name()
                .to_string();
            Some(ValueDiff {
                index,
                op_type: op.op_type.clone(),
                op: op.name.clone(),
                origin: origins
                    .get(name.as_str())
                    .copied()
                    .flatten()
                    .map(str::to_string),
                dtype,
                metrics: acc.finish(),
                name,
            })
        })
        .collect();
    let casts = candidate
        .block
        .operations
        .iter()
        .enumerate()
        .filter(|(_, op)| op.op_type == "cast")
        .filter_map(|(index, op)| {
            let from = op.input("x")?.first()?.var()?.to_string();
            let from_dtype = candidate.var_type(&from)?.dtype.name().to_string();
            let out = op.outputs.first()?;
            Some(CastInfo {
                index,
                from,
                to: out.name.clone(),
                from_dtype,
                to_dtype: out.ty.dtype.name().to_string(),
            })
        })
        .collect();
    let limit = JUMP_FACTOR * level;
    let first_divergence = values.iter().find_map(|v| {
        let m = &v.metrics;
        let reason = if m.candidate_non_finite > 0 {
            format!(
                "{} non-finite values where the source is finite",
                m.candidate_non_finite
            )
        } else if m.max_rel > limit {
            format!(
                "relative max error {:.3e} > {JUMP_FACTOR} × level {level:.3e}",
                m.max_rel
            )
        } else {
            return None;
        };
        Some(Divergence {
            value: v.clone(),
            reason,
        })
    });
    Ok(PerOpReport {
        level,
        values,
        casts,
        not_compared: not_compared.len(),
        first_divergence,
    })
}
