//! Softmax NaN guard: `matmul(select(not_equal(p, p), 0, p), v)` with `p = softmax(…)` →
//! `r = matmul(p, v); select(not_equal(r, r), 0, r)`.
//!
//! torch's exports guard attention weights this way (a row whose every score is masked gives
//! NaN weights, replaced by zeros). Moved behind the matmul, the guard computes the same thing
//! (a NaN row of weights makes a NaN row of the product, replaced by zeros) and no longer sits
//! between `softmax` and the matmul, so the attention block can fuse.

use super::graph::{arg, new_op, out, replace, Graph};
use crate::ir::{Argument, DType, Function, NameTable, Operation, Target, Var};

/// The guard's ops: the `select`, its `not_equal`, the guarded `softmax` output and the
/// `matmul` reading the guarded weights.
struct Guard {
    matmul: usize,
    probs: String,
    zero: String,
}

fn find(g: &Graph, s: usize) -> Option<Guard> {
    let select = g.op(s);
    if select.op_type != "select" {
        return None;
    }
    let (cond, zero, probs) = (arg(select, "cond")?, arg(select, "a")?, arg(select, "b")?);
    let n = g.producer(cond, "not_equal")?;
    let not_equal = g.op(n);
    if arg(not_equal, "x")? != probs || arg(not_equal, "y")? != probs {
        return None;
    }
    g.producer(probs, "softmax")?;
    if g.scalar(zero)? != 0.0 || g.sole_reader(cond)? != s {
        return None;
    }
    // The weights feed only the guard (not_equal reads them twice).
    if g.is_output(probs) || g.readers(probs).iter().any(|&r| r != n && r != s) {
        return None;
    }
    let m = g.sole_reader_of(s, "matmul")?;
    (arg(g.op(m), "x")? == out(select)).then(|| Guard {
        matmul: m,
        probs: probs.to_string(),
        zero: zero.to_string(),
    })
}

/// The NaN guard of `value`: `not_equal(value, value)` and `select(…, zero, value)`, the select
/// taking the name, outputs and origin of `root` (the op the guard replaces).
pub fn guard_ops(
    names: &mut NameTable,
    value: &str,
    zero: &str,
    root: &Operation,
) -> [Operation; 2] {
    let is_nan = names.fresh(&format!("{}_is_nan", out(root)));
    let ty = root.outputs[0].ty.with_dtype(DType::Bool);
    let check = new_op(
        "not_equal",
        &is_nan,
        &[("x", value), ("y", value)],
        vec![Var::new(&is_nan, ty)],
        root.origin.clone(),
    );
    let select = new_op(
        "select",
        &root.name,
        &[("cond", &is_nan), ("a", zero), ("b", value)],
        root.outputs.clone(),
        root.origin.clone(),
    );
    [check, select]
}

/// Moves the first softmax NaN guard behind the matmul that reads the guarded weights.
pub fn fuse_one(function: &mut Function, _target: Target) -> bool {
    let g = Graph::new(function);
    let Some(guard) = g.first(find) else {
        return false;
    };
    let matmul = g.op(guard.matmul);
    let mut names = NameTable::of_function(function);
    let product = names.fresh(&format!("{}_unguarded", out(matmul)));
    let mut unguarded = matmul.clone();
    unguarded.name = names.fresh(&format!("{}_unguarded", matmul.name));
    unguarded.outputs = vec![Var::new(&product, matmul.outputs[0].ty.clone())];
    for (param, args) in &mut unguarded.inputs {
        if param == "x" {
            *args = vec![Argument::Var(guard.probs.clone())];
        }
    }
    let [check, select] = guard_ops(&mut names, &product, &guard.zero, matmul);
    replace(function, guard.matmul, vec![unguarded, check, select]);
    true
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fuse_checked, guarded_matmul, op_types};
    use crate::ir::{Builder, DType, Target, Tensor, TensorType, Var};

    #[test]
    fn moves_the_guard_behind_the_matmul() {
        let mut b = Builder::new(
            "main",
            vec![
                Var::new("s", TensorType::fixed(DType::F32, &[2, 3, 4])),
                Var::new("v", TensorType::fixed(DType::F32, &[2, 4, 5])),
            ],
        );
        let p = b.op1("softmax", "p", &[("x", &["s"])]).unwrap();
        let nan = b
            .op1("not_equal", "nan", &[("x", &[&p]), ("y", &[&p])])
            .unwrap();
        let zero = b.constant("zero", Tensor::from_f32(&[], &[0.0]));
        let y = guarded_matmul(&mut b, &nan, &zero, &p);
        let p = fuse_checked(
            b.finish(vec![y]),
            Target::IOS15,
            &[("softmax_nan_guard", 1)],
        );
        assert_eq!(op_types(&p), ["softmax", "matmul", "not_equal", "select"]);
        assert_eq!(p.main().block.outputs, ["y"]);
    }
}
