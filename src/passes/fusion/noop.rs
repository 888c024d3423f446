//! No-op removal: ops that return their input unchanged — `add`/`sub` of zeros (a constant,
//! a `fill` with 0),
//! `mul`/`real_div` by a constant one, a `reshape` to the input's own shape, a `transpose` by
//! the identity permutation — when the result has the input's type (the constant does not
//! broadcast it). Their readers read the input instead.
//!
//! Exporters leave these behind: torch's `expand` to the shape a tensor already has becomes an
//! `add` of zeros, core ATen re-views tensors to their own shape. Between `softmax` and the
//! `matmul` after it they hide an attention block. (`x + 0` turns `-0` into `+0`; nothing
//! downstream of these ops can tell.)

use super::graph::{arg, is_zeros, out, Graph};
use crate::ir::{Function, Operation, Target};

/// The input `op` returns unchanged, if it is a no-op.
fn passed_through<'g>(g: &Graph<'g>, op: &'g Operation) -> Option<&'g str> {
    let is_all = |var: Option<&str>, value: f64| {
        var.and_then(|c| g.const_value(c))
            .is_some_and(|t| t.dtype().is_float() && t.to_f64_vec().iter().all(|&v| v == value))
    };
    let (x, y) = (arg(op, "x")?, arg(op, "y"));
    let input = match op.op_type.as_str() {
        "add" if is_zeros(g, x) => y?,
        "mul" if is_all(Some(x), 1.0) => y?,
        "add" | "sub" => y.is_some_and(|y| is_zeros(g, y)).then_some(x)?,
        "mul" | "real_div" => is_all(y, 1.0).then_some(x)?,
        // A fixed shape equal to the input's (the type check below) is the input itself.
        "reshape" => op.outputs[0].ty.static_shape().map(|_| x)?,
        "transpose" => {
            let perm = g.const_value(arg(op, "perm")?)?.to_i64_vec();
            let identity = perm.iter().enumerate().all(|(i, &a)| a == i as i64);
            identity.then_some(x)?
        }
        _ => return None,
    };
    (g.var_type(input)? == &op.outputs[0].ty).then_some(input)
}

/// Removes the first no-op whose output is not a block output.
pub fn fuse_one(function: &mut Function, _target: Target) -> bool {
    let g = Graph::new(function);
    let found = function
        .block
        .operations
        .iter()
        .enumerate()
        .find_map(|(i, op)| {
            let x = passed_through(&g, op)?;
            (!g.is_output(out(op))).then(|| (i, x.to_string(), out(op).to_string()))
        });
    let Some((i, x, result)) = found else {
        return false;
    };
    let block = &mut function.block;
    block.operations.remove(i);
    block.rename_uses(&result, &x);
    true
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fuse_checked, op_types};
    use crate::ir::{Builder, DType, Target, Tensor, TensorType, Var};

    #[test]
    fn removes_ops_that_return_their_input() {
        let x = Var::new("x", TensorType::fixed(DType::F32, &[2, 3]));
        let mut b = Builder::new("main", vec![x]);
        let zeros = b.constant("zeros", Tensor::from_f32(&[2, 3], &[0.0; 6]));
        let one = b.constant("one", Tensor::from_f32(&[], &[1.0]));
        let shape = b.constant("shape", Tensor::vec_i32(&[2, -1]));
        let perm = b.constant("perm", Tensor::vec_i32(&[0, 1]));
        let a = b
            .op1("add", "a", &[("x", &["x"]), ("y", &[&zeros])])
            .unwrap();
        let m = b.op1("mul", "m", &[("x", &[&a]), ("y", &[&one])]).unwrap();
        let r = b
            .op1("reshape", "r", &[("x", &[&m]), ("shape", &[&shape])])
            .unwrap();
        let t = b
            .op1("transpose", "t", &[("x", &[&r]), ("perm", &[&perm])])
            .unwrap();
        let y = b.op1("relu", "y", &[("x", &[&t])]).unwrap();
        let p = fuse_checked(b.finish(vec![y]), Target::IOS15, &[("noop", 4)]);
        assert_eq!(op_types(&p), ["relu"]);
        assert_eq!(p.main().block.operations[0].input_vars().next(), Some("x"));
    }

    #[test]
    fn keeps_broadcasting_and_nonzero_constants() {
        let x = Var::new("x", TensorType::fixed(DType::F32, &[1, 3]));
        let mut b = Builder::new("main", vec![x]);
        let zeros = b.constant("zeros", Tensor::from_f32(&[2, 3], &[0.0; 6]));
        let half = b.constant("half", Tensor::from_f32(&[], &[0.5]));
        let a = b
            .op1("add", "a", &[("x", &["x"]), ("y", &[&zeros])])
            .unwrap();
        let m = b.op1("add", "m", &[("x", &[&a]), ("y", &[&half])]).unwrap();
        let y = b.op1("relu", "y", &[("x", &[&m])]).unwrap();
        let p = fuse_checked(b.finish(vec![y]), Target::IOS15, &[]);
        assert_eq!(op_types(&p), ["add", "add", "relu"]);
    }
}
