//! Reductions (`ReduceMean`, `ReduceSum`, …) and `ArgMax`/`ArgMin`.

use super::{axes, axis, ints_attr_or_input, ConvertFn, Ctx, Emit, Node};
use crate::ir::DType;
use crate::Error;

/// Opset from which each reduction takes `axes` as an input instead of an attribute.
fn axes_moved_at(op_type: &str) -> i64 {
    if op_type == "ReduceSum" {
        13
    } else {
        18
    }
}

/// A reduction: `axes` (attribute or input), `keepdims` (default 1) and
/// `noop_with_empty_axes` (default 0: no axes means every axis).
fn reduce(ctx: &mut Ctx, node: &Node, mil: &str) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let rank = ctx.rank(&x)?;
    let listed = ints_attr_or_input(ctx, node, "axes", 1, axes_moved_at(node.op_type()))?
        .unwrap_or_default();
    let keep = ctx.attr(node.int_or("keepdims", 1))? != 0;
    let noop = ctx.attr(node.int_or("noop_with_empty_axes", 0))? != 0;
    if listed.is_empty() && noop {
        ctx.set_output(node, 0, x);
        return Ok(());
    }
    let mut reduced: Vec<i64> = if listed.is_empty() {
        (0..rank as i64).collect()
    } else {
        axes(ctx, &listed, rank)?
            .into_iter()
            .map(|a| a as i64)
            .collect()
    };
    reduced.sort_unstable();
    // Bool ReduceMax/ReduceMin (any/all) reduce the values as int32 0/1.
    let boolean = ctx.ty(&x)?.dtype == DType::Bool;
    let (x, reduced_name) = match boolean {
        true => (
            ctx.cast(&x, DType::I32, &format!("{out}_int"))?,
            format!("{out}_reduced"),
        ),
        false => (x, out.clone()),
    };
    let axes_c = ctx.ints(&format!("{out}_axes"), &reduced);
    let keep_c = ctx.boolean(&format!("{out}_keep_dims"), keep);
    let mut y = ctx.op1(
        mil,
        &reduced_name,
        &[("x", &x), ("axes", &axes_c), ("keep_dims", &keep_c)],
    )?;
    if boolean {
        y = ctx.cast(&y, DType::Bool, &out)?;
    }
    ctx.set_output(node, 0, y);
    Ok(())
}

/// Defines a converter per reduction.
macro_rules! reductions {
    ($($fn_name:ident => $mil:literal),* $(,)?) => {$(
        fn $fn_name(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
            reduce(ctx, node, $mil)
        }
    )*};
}

reductions! {
    reduce_mean => "reduce_mean", reduce_sum => "reduce_sum", reduce_max => "reduce_max",
    reduce_min => "reduce_min", reduce_prod => "reduce_prod", reduce_l1 => "reduce_l1_norm",
    reduce_l2 => "reduce_l2_norm", reduce_sum_square => "reduce_sum_square",
    reduce_log_sum => "reduce_log_sum", reduce_log_sum_exp => "reduce_log_sum_exp",
}

/// `ArgMax`/`ArgMin` (`axis` default 0, `keepdims` default 1). `select_last_index=1` runs
/// on the input reversed along the axis and maps the index back as `size - 1 - index`, which
/// needs a static axis size. The int64 result becomes int32 like every integer in the IR.
fn arg_reduce(ctx: &mut Ctx, node: &Node, mil: &str) -> Result<(), Error> {
    let last = ctx.attr(node.int_or("select_last_index", 0))? != 0;
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let a = axis(ctx, ctx.attr(node.int_or("axis", 0))?, ctx.rank(&x)?)?;
    let keep = ctx.attr(node.int_or("keepdims", 1))? != 0;
    let axis_c = ctx.int(&format!("{out}_axis"), a as i64);
    let keep_c = ctx.boolean(&format!("{out}_keep_dims"), keep);
    if !last {
        let y = ctx.op1(
            mil,
            &out,
            &[("x", &x), ("axis", &axis_c), ("keep_dims", &keep_c)],
        )?;
        ctx.set_output(node, 0, y);
        return Ok(());
    }
    let size = ctx.ty(&x)?.shape[a]
        .fixed()
        .ok_or_else(|| ctx.unsupported("select_last_index=1 needs a static size along the axis"))?;
    let axes_c = ctx.ints(&format!("{out}_reverse_axes"), &[a as i64]);
    let reversed = ctx.op1(
        "reverse",
        &format!("{out}_reversed"),
        &[("x", &x), ("axes", &axes_c)],
    )?;
    let index = ctx.op1(
        mil,
        &format!("{out}_reversed_index"),
        &[("x", &reversed), ("axis", &axis_c), ("keep_dims", &keep_c)],
    )?;
    let last_c = ctx.int(&format!("{out}_last_index"), size as i64 - 1);
    let y = ctx.op1("sub", &out, &[("x", &last_c), ("y", &index)])?;
    ctx.set_output(node, 0, y);
    Ok(())
}

fn arg_max(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    arg_reduce(ctx, node, "reduce_argmax")
}

fn arg_min(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    arg_reduce(ctx, node, "reduce_argmin")
}

/// This family's converters.
pub const CONVERTERS: &[(&str, ConvertFn)] = &[
    ("ArgMax", arg_max),
    ("ArgMin", arg_min),
    ("ReduceL1", reduce_l1),
    ("ReduceL2", reduce_l2),
    ("ReduceLogSum", reduce_log_sum),
    ("ReduceLogSumExp", reduce_log_sum_exp),
    ("ReduceMax", reduce_max),
    ("ReduceMean", reduce_mean),
    ("ReduceMin", reduce_min),
    ("ReduceProd", reduce_prod),
    ("ReduceSum", reduce_sum),
    ("ReduceSumSquare", reduce_sum_square),
];
