//! Constant folding over a whole program.

use crate::interp::{eval_op, Value};
use crate::ir::{Operation, Program, Tensor};
use std::collections::HashMap;

/// Replaces every op whose inputs are all constants (other than `const` and the constexpr
/// decompression ops, which must stay as written) by `const` ops holding its outputs.
/// Returns how many ops were folded, or the op that failed to evaluate.
pub fn fold_constants(program: &mut Program) -> Result<usize, String> {
    let mut folded = 0;
    for function in &mut program.functions {
        let mut consts: HashMap<String, Tensor> = HashMap::new();
        let mut new_ops = Vec::with_capacity(function.block.operations.len());
        for op in std::mem::take(&mut function.block.operations) {
            if let Some(v) = op.const_value() {
                consts.insert(op.outputs[0].name.clone(), v.clone());
                new_ops.push(op);
                continue;
            }
            let foldable = !op.op_type.starts_with("constexpr_")
                && op.input_vars().next().is_some()
                && op.input_vars().all(|v| consts.contains_key(v));
            if !foldable {
                new_ops.push(op);
                continue;
            }
            let declared: Vec<_> = op.outputs.iter().map(|o| o.ty.clone()).collect();
            let values = eval_op(&op, &|v| consts.get(v).map(Value::from_tensor), &declared)
                .map_err(|m| format!("folding op '{}' ({}): {m}", op.name, op.op_type))?;
            for (out, value) in op.outputs.iter().zip(values) {
                let tensor = value.to_tensor(out.ty.dtype);
                let mut c = Operation::constant(out.name.clone(), tensor.clone());
                c.origin = op.origin.clone();
                consts.insert(out.name.clone(), tensor);
                new_ops.push(c);
            }
            folded += 1;
        }
        function.block.operations = new_ops;
    }
    Ok(folded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Builder, DType, Target, TensorType, Var};

    #[test]
    fn folds_ops_with_constant_inputs() {
        let mut b = Builder::new(
            "main",
            vec![Var::new("x", TensorType::fixed(DType::F32, &[2]))],
        );
        b.fold_constants = false;
        let a = b.constant("a", Tensor::from_f32(&[2], &[1.0, 2.0]));
        let c = b.op1("add", "c", &[("x", &[&a]), ("y", &[&a])]).unwrap();
        let y = b.op1("add", "y", &[("x", &["x"]), ("y", &[&c])]).unwrap();
        let mut p = Program::new(Target::IOS15, vec![b.finish(vec![y])]);
        assert_eq!(fold_constants(&mut p).unwrap(), 1);
        let c_op = &p.main().block.operations[1];
        assert_eq!(c_op.op_type, "const");
        assert_eq!(c_op.const_value().unwrap().to_f32_vec(), vec![2.0, 4.0]);
        assert_eq!(p.main().block.operations[2].op_type, "add");
    }
}
