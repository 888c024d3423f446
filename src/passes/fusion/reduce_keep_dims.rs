//! Reductions that keep their axes only to drop them: `reshape` or `squeeze` of
//! `reduce_*(x, axes, keep_dims=true)` whose result is the reduction's shape without the
//! reduced axes → `reduce_*(x, axes, keep_dims=false)`. Global average pooling followed by
//! flatten (the head of torchvision's CNNs) exports this way.

use super::graph::{arg, new_const, out, replace, Graph};
use crate::ir::ops::reduction::reduced_shape;
use crate::ir::{Argument, Function, NameTable, Operation, Target, Tensor};

/// Ops that drop the kept axes of a reduction.
const DROPPING: &[&str] = &["reshape", "squeeze"];

/// The reduced axes of `reduce` when it keeps them (its `keep_dims` a constant true).
fn kept_axes(g: &Graph, reduce: &Operation) -> Option<Option<Vec<i64>>> {
    let is_reduce = reduce.op_type.starts_with("reduce_") && reduce.input("axis").is_none();
    let keeps = is_reduce && g.const_value(arg(reduce, "keep_dims")?)?.to_i64_vec() == [1];
    if !keeps {
        return None;
    }
    match reduce.input("axes") {
        None => Some(None),
        Some(_) => Some(Some(g.const_value(arg(reduce, "axes")?)?.to_i64_vec())),
    }
}

/// Fuses the first reshape/squeeze that drops exactly the kept axes of the reduction it
/// alone reads.
pub fn fuse_one(function: &mut Function, _target: Target) -> bool {
    let g = Graph::new(function);
    let found = g.first(|g, i| {
        let reduce = g.op(i);
        if reduce.op_type == "reduce_argmax" || reduce.op_type == "reduce_argmin" {
            return None;
        }
        let axes = kept_axes(g, reduce)?;
        let d = g.sole_reader(out(reduce))?;
        let dropping = g.op(d);
        if !DROPPING.contains(&dropping.op_type.as_str()) || arg(dropping, "x")? != out(reduce) {
            return None;
        }
        let x = g.var_type(arg(reduce, "x")?)?;
        let dropped = reduced_shape(&x.shape, axes.as_deref(), false).ok()?;
        (dropped == dropping.outputs[0].ty.shape).then_some((i, d))
    });
    let Some((r, d)) = found else {
        return false;
    };
    let (reduce, dropping) = (g.op(r), g.op(d));
    let mut names = NameTable::of_function(function);
    let (keep_op, keep) = new_const(
        &mut names,
        &format!("{}_keep_dims", dropping.name),
        Tensor::scalar_bool(false),
        reduce.origin.clone(),
    );
    let mut fused = reduce.clone();
    fused.name = dropping.name.clone();
    fused.outputs = dropping.outputs.clone();
    fused.inputs.retain(|(p, _)| p != "keep_dims");
    fused
        .inputs
        .push(("keep_dims".into(), vec![Argument::Var(keep)]));
    replace(function, d, vec![keep_op, fused]);
    true
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fuse_checked, op_types};
    use crate::ir::{Builder, DType, Target, Tensor, TensorType, Var};

    #[test]
    fn pooling_then_flatten_or_squeeze_becomes_one_reduction() {
        let x = Var::new("x", TensorType::fixed(DType::F32, &[1, 3, 4, 4]));
        let mut b = Builder::new("main", vec![x]);
        let axes = b.constant("axes", Tensor::vec_i32(&[2, 3]));
        let keep = b.constant("keep", Tensor::scalar_bool(true));
        let m = b
            .op1(
                "reduce_mean",
                "m",
                &[("x", &["x"]), ("axes", &[&axes]), ("keep_dims", &[&keep])],
            )
            .unwrap();
        let shape = b.constant("shape", Tensor::vec_i32(&[1, -1]));
        let flat = b
            .op1("reshape", "flat", &[("x", &[&m]), ("shape", &[&shape])])
            .unwrap();
        let s = b
            .op1(
                "reduce_max",
                "s",
                &[("x", &["x"]), ("axes", &[&axes]), ("keep_dims", &[&keep])],
            )
            .unwrap();
        let sq = b
            .op1("squeeze", "sq", &[("x", &[&s]), ("axes", &[&axes])])
            .unwrap();
        let p = fuse_checked(b.finish(vec![flat, sq]), Target::IOS15, &[("reduce", 2)]);
        assert_eq!(op_types(&p), ["reduce_mean", "reduce_max"]);
        let names: Vec<&str> = p.main().op_names();
        assert!(names.contains(&"flat") && names.contains(&"sq"));
    }

    #[test]
    fn leaves_reshapes_that_move_other_dims() {
        let x = Var::new("x", TensorType::fixed(DType::F32, &[2, 3, 4]));
        let mut b = Builder::new("main", vec![x]);
        let axes = b.constant("axes", Tensor::vec_i32(&[2]));
        let keep = b.constant("keep", Tensor::scalar_bool(true));
        let m = b
            .op1(
                "reduce_sum",
                "m",
                &[("x", &["x"]), ("axes", &[&axes]), ("keep_dims", &[&keep])],
            )
            .unwrap();
        let shape = b.constant("shape", Tensor::vec_i32(&[3, 2]));
        let y = b
            .op1("reshape", "y", &[("x", &[&m]), ("shape", &[&shape])])
            .unwrap();
        let p = fuse_checked(b.finish(vec![y]), Target::IOS15, &[]);
        assert_eq!(op_types(&p), ["reduce_sum", "reshape"]);
    }
}
