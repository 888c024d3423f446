//! Fully-masked-row guard: `select(all(s == -inf, axis -1), 0, softmax(s))` →
//! `p = softmax(s); select(not_equal(p, p), 0, p)`.
//!
//! torch's core-ATen decomposition of `scaled_dot_product_attention` zeroes the weights of a
//! row whose every score is `-inf` (its softmax is `0/0`), testing the scores with
//! `logical_not(any(logical_not(s == -inf)))`. Such a row is exactly a row of NaN weights
//! unless a score is NaN or `+inf` (which make NaN weights either way, then zeroed instead of
//! propagated), so the guard becomes the NaN guard of [`nan_guard`](super::nan_guard), which
//! moves behind the next matmul and no longer reads the scores: the attention block fuses.
//!
//! The test is matched as mlpack's frontends lower it: `equal`, `logical_not`, a `cast` to
//! int32, `reduce_max` over the last axis keeping it, `not_equal` to 0, `logical_not`. The
//! zeros may be a constant, a `fill` with 0, or a branch broadcast by adding `0 · cast(bool)`.

use super::graph::{arg, is_zeros, new_const, out, replace, Graph};
use super::nan_guard;
use crate::ir::{Function, NameTable, Target, Tensor};

/// True when the one-element constant `var` names the last axis of a rank-`rank` tensor.
fn is_last_axis(g: &Graph, var: &str, rank: usize) -> bool {
    let axes = g.const_value(var).map(Tensor::to_i64_vec);
    matches!(axes.as_deref(), Some([a]) if *a == -1 || usize::try_from(*a) == Ok(rank - 1))
}

/// The scores `s` when `cond` is `all(s == -inf)` over the last axis (kept), as lowered.
fn all_masked_scores<'g>(g: &Graph<'g>, cond: &str) -> Option<&'g str> {
    let not_any = g.op(g.producer(cond, "logical_not")?);
    let any = g.op(g.producer(arg(not_any, "x")?, "not_equal")?);
    let (max, zero) = (arg(any, "x")?, arg(any, "y")?);
    let zero_int = g.const_value(zero)?;
    if zero_int.len() != 1 || zero_int.to_i64_vec()[0] != 0 {
        return None;
    }
    let reduce = g.op(g.producer(max, "reduce_max")?);
    let keeps = arg(reduce, "keep_dims")
        .and_then(|k| g.const_value(k))
        .is_some_and(|k| k.to_i64_vec() == [1]);
    let counted = g.op(g.producer(arg(reduce, "x")?, "cast")?);
    let unmasked = g.op(g.producer(arg(counted, "x")?, "logical_not")?);
    let masked = g.op(g.producer(arg(unmasked, "x")?, "equal")?);
    let (scores, inf) = (arg(masked, "x")?, arg(masked, "y")?);
    let rank = g.var_type(scores)?.rank();
    let last = is_last_axis(g, arg(reduce, "axes")?, rank);
    (keeps && last && g.scalar(inf) == Some(f64::NEG_INFINITY)).then_some(scores)
}

/// Rewrites the first fully-masked-row guard of a softmax as a NaN guard.
pub fn fuse_one(function: &mut Function, _target: Target) -> bool {
    let g = Graph::new(function);
    let found = (0..function.block.operations.len()).find(|&s| {
        let select = g.op(s);
        let guarded = || -> Option<()> {
            let (cond, zeros, probs) = (arg(select, "cond")?, arg(select, "a")?, arg(select, "b")?);
            let softmax = g.op(g.producer(probs, "softmax")?);
            let scores = arg(softmax, "x")?;
            let axis_last = is_last_axis(&g, arg(softmax, "axis")?, g.var_type(scores)?.rank());
            let same_type = g.var_type(probs) == Some(&select.outputs[0].ty);
            let guards_rows = all_masked_scores(&g, cond)? == scores && is_zeros(&g, zeros);
            (axis_last && same_type && guards_rows).then_some(())
        };
        select.op_type == "select" && guarded().is_some()
    });
    let Some(s) = found else {
        return false;
    };
    let select = g.op(s);
    let probs = arg(select, "b").expect("matched").to_string();
    let ty = select.outputs[0].ty.clone();
    let mut names = NameTable::of_function(function);
    let zero = Tensor::scalar_f32(0.0).cast(ty.dtype);
    let (zero_op, zero) = new_const(
        &mut names,
        &format!("{}_zero", out(select)),
        zero,
        select.origin.clone(),
    );
    let [check, guard] = nan_guard::guard_ops(&mut names, &probs, &zero, select);
    replace(function, s, vec![zero_op, check, guard]);
    true
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fuse_checked, guarded_matmul, op_types};
    use crate::ir::{Builder, DType, Target, Tensor, TensorType, Var};

    #[test]
    fn the_guard_of_a_fully_masked_row_moves_behind_the_matmul() {
        let mut b = Builder::new(
            "main",
            vec![
                Var::new("s", TensorType::fixed(DType::F32, &[2, 3, 4])),
                Var::new("v", TensorType::fixed(DType::F32, &[2, 4, 5])),
            ],
        );
        // Row 1 of every batch is fully masked.
        let inf = f32::NEG_INFINITY;
        let mask: Vec<f32> = (0..12)
            .map(|i| if i / 4 == 1 { inf } else { 0.0 })
            .collect();
        let mask = b.constant("mask", Tensor::from_f32(&[3, 4], &mask));
        let t = b
            .op1("add", "t", &[("x", &["s"]), ("y", &[&mask])])
            .unwrap();
        let axis = b.constant("axis", Tensor::scalar_i32(-1));
        let p = b
            .op1("softmax", "p", &[("x", &[&t]), ("axis", &[&axis])])
            .unwrap();
        let neg_inf = b.constant("neg_inf", Tensor::from_f32(&[], &[inf]));
        let eq = b
            .op1("equal", "eq", &[("x", &[&t]), ("y", &[&neg_inf])])
            .unwrap();
        let ne = b.op1("logical_not", "ne", &[("x", &[&eq])]).unwrap();
        let int32 = b.constant("int32", Tensor::scalar_string("int32"));
        let n = b
            .op1("cast", "n", &[("x", &[&ne]), ("dtype", &[&int32])])
            .unwrap();
        let axes = b.constant("axes", Tensor::vec_i32(&[2]));
        let keep = b.constant("keep", Tensor::scalar_bool(true));
        let m = b
            .op1(
                "reduce_max",
                "m",
                &[("x", &[&n]), ("axes", &[&axes]), ("keep_dims", &[&keep])],
            )
            .unwrap();
        let zero_int = b.constant("zero_int", Tensor::scalar_i32(0));
        let any = b
            .op1("not_equal", "any", &[("x", &[&m]), ("y", &[&zero_int])])
            .unwrap();
        let none = b.op1("logical_not", "none", &[("x", &[&any])]).unwrap();
        let zeros = b.constant("zeros", Tensor::from_f32(&[2, 3, 4], &[0.0; 24]));
        let y = guarded_matmul(&mut b, &none, &zeros, &p);
        let p = fuse_checked(
            b.finish(vec![y]),
            Target::IOS15,
            &[("masked_row_guard", 1), ("softmax_nan_guard", 1)],
        );
        assert_eq!(
            op_types(&p),
            ["add", "softmax", "matmul", "not_equal", "select"]
        );
    }
}
