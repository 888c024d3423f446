//! `CumSum` and `TopK`.

use super::{axis, ConvertFn, Ctx, Emit, Node};
use crate::Error;

/// `CumSum(x, axis)` with `exclusive`/`reverse` → `cumsum`; the axis must be constant.
fn cumsum(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let rank = ctx.rank(&x)?;
    let a = ctx
        .const_input(node, 1)?
        .and_then(|t| t.scalar_i64())
        .ok_or_else(|| ctx.invalid("input 'axis' must be a scalar"))?;
    let a = axis(ctx, a, rank)?;
    let exclusive = ctx.attr(node.int_or("exclusive", 0))? != 0;
    let reverse = ctx.attr(node.int_or("reverse", 0))? != 0;
    let axis_c = ctx.int(&format!("{out}_axis"), a as i64);
    let exclusive_c = ctx.boolean(&format!("{out}_exclusive"), exclusive);
    let reverse_c = ctx.boolean(&format!("{out}_reverse"), reverse);
    let y = ctx.op1(
        "cumsum",
        &out,
        &[
            ("x", &x),
            ("axis", &axis_c),
            ("exclusive", &exclusive_c),
            ("reverse", &reverse_c),
        ],
    )?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `TopK(x, K)` → `topk` (values and int32 indices, sorted). `K` is an attribute before
/// opset 10 and a constant input from it; `largest=0` is `ascending`. An unsorted request
/// (`sorted=0`) accepts any order, so the sorted result serves it too.
fn topk(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let rank = ctx.rank(&x)?;
    let k = if ctx.opset < 10 {
        ctx.attr(node.int("k"))?
    } else {
        ctx.const_input(node, 1)?.and_then(|t| t.scalar_i64())
    };
    let k = k
        .filter(|&k| k >= 1)
        .ok_or_else(|| ctx.unsupported("K must be a constant of at least 1"))?;
    let a = axis(ctx, ctx.attr(node.int_or("axis", -1))?, rank)?;
    let ascending = ctx.attr(node.int_or("largest", 1))? == 0;
    let k_c = ctx.int(&format!("{out}_k"), k);
    let axis_c = ctx.int(&format!("{out}_axis"), a as i64);
    let ascending_c = ctx.boolean(&format!("{out}_ascending"), ascending);
    let outs = ctx.op(
        "topk",
        &out,
        &[
            ("x", &x),
            ("k", &k_c),
            ("axis", &axis_c),
            ("ascending", &ascending_c),
        ],
    )?;
    for (i, var) in outs.into_iter().enumerate() {
        ctx.set_output(node, i, var);
    }
    Ok(())
}

/// This family's converters.
pub const CONVERTERS: &[(&str, ConvertFn)] = &[("CumSum", cumsum), ("TopK", topk)];
