//! Dead-code elimination.

use crate::ir::Program;
use std::collections::HashSet;

/// Removes every op none of whose outputs reaches a function output. Ops without outputs
/// (`write_state`, whose effect is on a state) are kept. Returns how many ops were removed.
pub fn remove_dead_code(program: &mut Program) -> usize {
    let mut removed = 0;
    for function in &mut program.functions {
        let block = &mut function.block;
        let mut live: HashSet<String> = block.outputs.iter().cloned().collect();
        let mut keep = vec![false; block.operations.len()];
        for (i, op) in block.operations.iter().enumerate().rev() {
            if op.outputs.is_empty() || op.outputs.iter().any(|o| live.contains(&o.name)) {
                keep[i] = true;
                live.extend(op.input_vars().map(str::to_string));
            }
        }
        let before = block.operations.len();
        let mut flags = keep.into_iter();
        block.operations.retain(|_| flags.next().unwrap_or(false));
        removed += before - block.operations.len();
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Builder, DType, Target, Tensor, TensorType, Var};

    #[test]
    fn removes_only_unreachable_ops() {
        let mut b = Builder::new(
            "main",
            vec![Var::new("x", TensorType::fixed(DType::F32, &[2]))],
        );
        let one = b.constant("one", Tensor::from_f32(&[2], &[1.0, 1.0]));
        let y = b.op1("add", "y", &[("x", &["x"]), ("y", &[&one])]).unwrap();
        let _unused = b
            .op1("add", "unused", &[("x", &["x"]), ("y", &["x"])])
            .unwrap();
        let mut p = Program::new(Target::IOS15, vec![b.finish(vec![y])]);
        assert_eq!(remove_dead_code(&mut p), 1);
        let names: Vec<_> = p.main().op_names();
        assert_eq!(names, vec!["one", "y"]);
    }
}
