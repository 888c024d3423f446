//! Removal of `identity` ops.

use crate::ir::Program;

/// Removes `identity` ops, rewiring their readers to the identity's input. An identity whose
/// output is a function output is kept only when its input is a function input or is itself
/// another function output (the output name must survive); otherwise the producer's output is
/// renamed to the function output's name. Returns how many ops were removed.
pub fn remove_identities(program: &mut Program) -> usize {
    let mut removed = 0;
    for function in &mut program.functions {
        let input_names: Vec<String> = function.inputs.iter().map(|v| v.name.clone()).collect();
        let mut i = 0;
        while i < function.block.operations.len() {
            let op = &function.block.operations[i];
            let (Some(src), true) = (
                op.input("x").and_then(|a| a.first()).and_then(|a| a.var()),
                op.op_type == "identity",
            ) else {
                i += 1;
                continue;
            };
            let (src, out) = (src.to_string(), op.outputs[0].name.clone());
            let block = &mut function.block;
            if !block.outputs.contains(&out) {
                block.operations.remove(i);
                block.rename_uses(&out, &src);
                removed += 1;
                continue;
            }
            let src_is_fixed = input_names.contains(&src) || block.outputs.contains(&src);
            let src_uses = block.use_counts().get(src.as_str()).copied().unwrap_or(0);
            if src_is_fixed || src_uses != 1 {
                i += 1;
                continue;
            }
            block.operations.remove(i);
            block.rename_uses(&src, &out);
            if let Some(producer) = block
                .operations
                .iter_mut()
                .flat_map(|o| o.outputs.iter_mut())
                .find(|v| v.name == src)
            {
                producer.name = out;
            }
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Builder, DType, Target, TensorType, Var};

    fn program(keep_output_on_identity: bool) -> Program {
        let mut b = Builder::new(
            "main",
            vec![Var::new("x", TensorType::fixed(DType::F32, &[2]))],
        );
        let s = b.op1("add", "s", &[("x", &["x"]), ("y", &["x"])]).unwrap();
        let id = b.op1("identity", "id", &[("x", &[&s])]).unwrap();
        let out = if keep_output_on_identity {
            id
        } else {
            b.op1("add", "z", &[("x", &[&id]), ("y", &[&id])]).unwrap()
        };
        Program::new(Target::IOS15, vec![b.finish(vec![out])])
    }

    #[test]
    fn rewires_readers_of_an_inner_identity() {
        let mut p = program(false);
        assert_eq!(remove_identities(&mut p), 1);
        let z = &p.main().block.operations[1];
        assert_eq!(z.input_vars().collect::<Vec<_>>(), vec!["s", "s"]);
    }

    #[test]
    fn keeps_the_output_name_when_an_identity_is_the_output() {
        let mut p = program(true);
        assert_eq!(remove_identities(&mut p), 1);
        assert_eq!(p.main().block.operations[0].outputs[0].name, "id");
        assert_eq!(p.main().block.outputs, vec!["id"]);
        crate::ir::validate_program(&p).unwrap();
    }
}
