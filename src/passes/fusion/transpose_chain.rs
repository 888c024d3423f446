//! Transpose chains: `transpose(transpose(x, p), q)` where the inner transpose is read only by
//! the outer one → `transpose(x, r)` with `r[i] = p[q[i]]` (the identity permutation is then
//! removed as a [no-op](super::noop)). Core-ATen exports permute back and forth around
//! attention outputs.

use super::graph::{arg, new_const, new_op, replace, Graph};
use crate::ir::{Function, NameTable, Target, Tensor};

/// Fuses the first transpose reading a transpose that nothing else reads.
pub fn fuse_one(function: &mut Function, _target: Target) -> bool {
    let g = Graph::new(function);
    let found = (0..function.block.operations.len()).find_map(|i| {
        let inner = g.op(i);
        if inner.op_type != "transpose" {
            return None;
        }
        let o = g.sole_reader_of(i, "transpose")?;
        let p = g.const_value(arg(inner, "perm")?)?.to_i64_vec();
        let q = g.const_value(arg(g.op(o), "perm")?)?.to_i64_vec();
        let composed: Option<Vec<i32>> = q
            .iter()
            .map(|&a| {
                let a = usize::try_from(a).ok()?;
                i32::try_from(*p.get(a)?).ok()
            })
            .collect();
        Some((o, arg(inner, "x")?.to_string(), composed?))
    });
    let Some((o, x, perm)) = found else {
        return false;
    };
    let outer = g.op(o);
    let mut names = NameTable::of_function(function);
    let (perm_op, perm) = new_const(
        &mut names,
        &format!("{}_perm", outer.name),
        Tensor::vec_i32(&perm),
        outer.origin.clone(),
    );
    let transpose = new_op(
        "transpose",
        &outer.name,
        &[("x", &x), ("perm", &perm)],
        outer.outputs.clone(),
        outer.origin.clone(),
    );
    replace(function, o, vec![perm_op, transpose]);
    true
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fuse_checked, op_types};
    use crate::ir::{Builder, DType, Target, Tensor, TensorType, Var};

    #[test]
    fn composes_transposes_and_drops_the_identity() {
        let x = Var::new("x", TensorType::fixed(DType::F32, &[2, 3, 4, 5]));
        let mut b = Builder::new("main", vec![x]);
        let p = b.constant("p", Tensor::vec_i32(&[2, 0, 1, 3]));
        let q = b.constant("q", Tensor::vec_i32(&[1, 2, 0, 3]));
        let r = b.constant("r", Tensor::vec_i32(&[0, 2, 1, 3]));
        let a = b
            .op1("transpose", "a", &[("x", &["x"]), ("perm", &[&p])])
            .unwrap();
        let c = b
            .op1("transpose", "c", &[("x", &[&a]), ("perm", &[&q])])
            .unwrap();
        let d = b
            .op1("transpose", "d", &[("x", &[&c]), ("perm", &[&r])])
            .unwrap();
        let y = b.op1("relu", "y", &[("x", &[&d])]).unwrap();
        let p = fuse_checked(b.finish(vec![y]), Target::IOS15, &[("transpose", 2)]);
        assert_eq!(op_types(&p), ["transpose", "relu"]);
    }
}
