//! The deployment target: ops, op parameters, compression forms and I/O types its opset
//! does not have. (Reading a package already refuses most of these; a program converted in
//! memory for an older target can still hold them.)

use super::super::{Hit, Subject};
use super::location;
use crate::ir::{ops, DType, Target};

/// `target-unsupported`: everything in the program that needs a newer target.
pub fn unsupported(subject: &Subject) -> Vec<Hit> {
    let target = subject.program.target;
    let mut hits = Vec::new();
    if subject.program.is_multifunction() && target < Target::IOS18 {
        hits.push(Hit::new(
            "program",
            format!("several functions need iOS18 (targets {target})"),
        ));
    }
    for f in &subject.program.functions {
        for v in f.inputs.iter().chain(f.outputs().iter()) {
            if v.ty.dtype == DType::F16 && target < Target::IOS16 {
                hits.push(Hit::new(
                    location(subject, f, &v.name),
                    format!("fp16 model inputs and outputs need iOS16 (targets {target})"),
                ));
            }
        }
        for v in &f.states {
            if target < Target::IOS18 {
                hits.push(Hit::new(
                    location(subject, f, &v.name),
                    format!("states need iOS18 (targets {target})"),
                ));
            }
        }
        for op in f.block.operations.iter().filter(|op| op.op_type != "const") {
            let place = location(subject, f, &op.name);
            let Some(def) = ops::lookup(&op.op_type) else {
                hits.push(Hit::new(place, format!("unknown op type {}", op.op_type)));
                continue;
            };
            if def.since > target {
                hits.push(Hit::new(
                    place,
                    format!("{} needs {} (targets {target})", op.op_type, def.since),
                ));
                continue;
            }
            for (param, _) in &op.inputs {
                if let Some(p) = def.param(param).filter(|p| p.since > target) {
                    hits.push(Hit::new(
                        place.clone(),
                        format!(
                            "{} parameter '{}' needs {} (targets {target})",
                            op.op_type, p.name, p.since
                        ),
                    ));
                }
            }
            if let Err(m) = ops::check_form(op, target) {
                hits.push(Hit::new(place, format!("{}: {m}", op.op_type)));
            }
        }
    }
    hits
}
