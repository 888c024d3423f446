//! The checks behind the lint rules, one module per subject: inputs, precision, shapes,
//! weights and the deployment target.

pub mod io;
pub mod precision;
pub mod shapes;
pub mod target;
pub mod weights;

use super::Subject;
use crate::ir::{Function, Operation, TensorType};

/// Where a finding in `function` at `name` is: the name, prefixed with the function's name
/// in a multifunction program.
fn location(subject: &Subject, function: &Function, name: &str) -> String {
    match subject.program.is_multifunction() {
        true => format!("{}/{name}", function.name),
        false => name.to_string(),
    }
}

/// True for the ops that hold or decompress weights rather than compute.
fn is_weight_op(op: &Operation) -> bool {
    op.op_type == "const" || op.op_type.starts_with("constexpr_")
}

/// Every computed value of every function: inputs (the input itself as the place) and the
/// outputs of the ops that are not weights (the op as the place), with their types.
fn values<'a>(
    subject: &'a Subject,
) -> impl Iterator<Item = (String, &'a str, &'a TensorType)> + 'a {
    subject.program.functions.iter().flat_map(move |f| {
        let inputs = f
            .inputs
            .iter()
            .map(move |v| (location(subject, f, &v.name), "input", &v.ty));
        let outputs = f
            .block
            .operations
            .iter()
            .filter(|op| !is_weight_op(op))
            .flat_map(move |op| {
                op.outputs
                    .iter()
                    .map(move |o| (location(subject, f, &op.name), op.op_type.as_str(), &o.ty))
            });
        inputs.chain(outputs)
    })
}
