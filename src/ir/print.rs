//! A readable text dump of a program (`mlpack inspect --mil`).

use super::{Argument, Program, Tensor};
use std::fmt::Write;

/// Renders `program` as MIL-like text: one line per op, constants abbreviated.
pub fn print_program(program: &Program) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "program(target: {}, opset: {})",
        program.target,
        program.target.opset()
    );
    for f in &program.functions {
        let inputs: Vec<String> = f
            .inputs
            .iter()
            .map(|v| format!("%{}: {}", v.name, v.ty))
            .collect();
        let _ = writeln!(s, "func {}({}) {{", f.name, inputs.join(", "));
        for op in &f.block.operations {
            let outs: Vec<String> = op
                .outputs
                .iter()
                .map(|v| format!("%{}: {}", v.name, v.ty))
                .collect();
            let mut args: Vec<String> = op
                .inputs
                .iter()
                .map(|(p, list)| {
                    let items: Vec<String> = list
                        .iter()
                        .map(|a| match a {
                            Argument::Var(n) => format!("%{n}"),
                            Argument::Value(t) => summarize(t),
                        })
                        .collect();
                    if list.len() == 1 {
                        format!("{p}={}", items[0])
                    } else {
                        format!("{p}=({})", items.join(", "))
                    }
                })
                .collect();
            args.extend(
                op.attributes
                    .iter()
                    .map(|(k, t)| format!("{k}={}", summarize(t))),
            );
            let _ = writeln!(
                s,
                "  {} = {}(name=\"{}\", {})",
                outs.join(", "),
                op.op_type,
                op.name,
                args.join(", ")
            );
        }
        let outs: Vec<String> = f.block.outputs.iter().map(|o| format!("%{o}")).collect();
        let _ = writeln!(s, "}} -> ({})", outs.join(", "));
    }
    s
}

/// A short rendering of a constant: the values when small, the type otherwise.
fn summarize(t: &Tensor) -> String {
    if let Some(s) = t.as_string() {
        return format!("\"{s}\"");
    }
    if t.len() <= 8 {
        let vals: Vec<String> = t.to_f64_vec().iter().map(|v| format!("{v}")).collect();
        if t.shape().is_empty() {
            return format!("{}({})", t.dtype(), vals.join(""));
        }
        return format!("{}[{}]", t.dtype(), vals.join(", "));
    }
    format!("{}", t.ty())
}
