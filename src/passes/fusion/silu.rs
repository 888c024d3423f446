//! SiLU: `mul(x, sigmoid(x))`, either operand order → `silu(x)`.

use super::graph::{new_op, other_operand, out, replace, Graph};
use crate::ir::{Function, Target};

/// Fuses the first `x * sigmoid(x)` whose sigmoid is read only by the `mul`.
pub fn fuse_one(function: &mut Function, _target: Target) -> bool {
    let g = Graph::new(function);
    let found = g.first(|g, s| {
        let sigmoid = g.op(s);
        if sigmoid.op_type != "sigmoid" {
            return None;
        }
        let x = super::graph::arg(sigmoid, "x")?;
        let m = g.sole_reader_of(s, "mul")?;
        (other_operand(g.op(m), out(sigmoid))? == x).then(|| (s, m, x.to_string()))
    });
    let Some((s, m, x)) = found else {
        return false;
    };
    let (root, origin) = (g.op(m), g.op(s).origin.clone());
    let silu = new_op(
        "silu",
        &root.name,
        &[("x", &x)],
        root.outputs.clone(),
        origin,
    );
    replace(function, m, vec![silu]);
    true
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fuse_checked, op_types};
    use crate::ir::{Builder, DType, Target, TensorType, Var};

    #[test]
    fn fuses_both_operand_orders_but_not_a_product_with_another_value() {
        let ty = TensorType::fixed(DType::F32, &[2, 3]);
        let mut b = Builder::new("main", vec![Var::new("x", ty.clone()), Var::new("z", ty)]);
        let s1 = b.op1("sigmoid", "s1", &[("x", &["x"])]).unwrap();
        let a = b.op1("mul", "a", &[("x", &["x"]), ("y", &[&s1])]).unwrap();
        let s2 = b.op1("sigmoid", "s2", &[("x", &[&a])]).unwrap();
        let c = b.op1("mul", "c", &[("x", &[&s2]), ("y", &[&a])]).unwrap();
        let s3 = b.op1("sigmoid", "s3", &[("x", &[&c])]).unwrap();
        let d = b.op1("mul", "d", &[("x", &[&s3]), ("y", &["z"])]).unwrap();
        let p = fuse_checked(b.finish(vec![d]), Target::IOS15, &[("silu", 2)]);
        assert_eq!(op_types(&p), ["silu", "silu", "sigmoid", "mul"]);
        let ops = &p.main().block.operations;
        assert_eq!(
            (ops[0].name.as_str(), ops[0].outputs[0].name.as_str()),
            ("a", "a")
        );
    }
}
