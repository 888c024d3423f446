//! Inputs: flexible shapes.

use super::super::{Hit, Subject};
use super::location;
use crate::ir::ShapeSet;

/// `flexible-input`: inputs whose accepted shapes are ranges (or unbounded), not fixed or
/// enumerated.
pub fn flexible_inputs(subject: &Subject) -> Vec<Hit> {
    let mut hits = Vec::new();
    for f in &subject.program.functions {
        for v in &f.inputs {
            let Some(ShapeSet::Ranges(ranges)) = f.input_shapes.get(&v.name) else {
                continue;
            };
            let flexible: Vec<String> = ranges
                .iter()
                .enumerate()
                .filter(|(_, (lo, hi))| *hi != Some(*lo))
                .map(|(axis, (lo, hi))| match hi {
                    Some(hi) => format!("axis {axis}: {lo}..{hi}"),
                    None => format!("axis {axis}: {lo}.. (unbounded)"),
                })
                .collect();
            if !flexible.is_empty() {
                hits.push(Hit::new(
                    location(subject, f, &v.name),
                    format!("input accepts a range of shapes ({})", flexible.join(", ")),
                ));
            }
        }
    }
    hits
}
