//! `CumSum`, `OneHot`, `TopK` and `Trilu`.

use super::elementwise::{coerce, scalar_like};
use super::shape::broadcast_to;
use super::{axis, ConvertFn, Ctx, Emit, Node};
use crate::ir::{DType, Tensor};
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

/// `col - row` for every element of a `rows` × `cols` matrix (row-major).
fn diagonal_offsets(rows: usize, cols: usize) -> Vec<i32> {
    (0..rows)
        .flat_map(|r| (0..cols).map(move |c| c as i32 - r as i32))
        .collect()
}

/// `Trilu`: keeps the elements whose diagonal offset `col - row` is `>= k` (upper) or `<= k`
/// (lower) and zeroes the rest, with a constant offset matrix over the last two (static)
/// dimensions compared to `k` (default 0; a run-time `k` works too) and a `select`.
fn trilu(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let upper = ctx.attr(node.int_or("upper", 1))? != 0;
    let ty = ctx.ty(&x)?;
    let rank = ty.rank();
    if rank < 2 {
        return Err(ctx.invalid(format!("input must have rank 2 or more, got {rank}")));
    }
    let (rows, cols) = match (ty.shape[rank - 2].fixed(), ty.shape[rank - 1].fixed()) {
        (Some(r), Some(c)) if i32::try_from(r.max(c)).is_ok() => (r, c),
        _ => return Err(ctx.unsupported(format!("needs static matrix dimensions, got {ty}"))),
    };
    let k = match ctx.opt_input(node, 1)? {
        Some(k) => coerce(ctx, &k, DType::I32, &format!("{out}_k"))?,
        None => ctx.int(&format!("{out}_k"), 0),
    };
    let offsets = Tensor::from_i32(&[rows, cols], &diagonal_offsets(rows, cols));
    let offsets = ctx.constant(&format!("{out}_offsets"), offsets);
    let compare = if upper { "greater_equal" } else { "less_equal" };
    let keep = ctx.op1(
        compare,
        &format!("{out}_keep"),
        &[("x", &offsets), ("y", &k)],
    )?;
    let zero = scalar_like(ctx, &format!("{out}_zero"), ty.dtype, 0.0);
    let y = ctx.op1("select", &out, &[("cond", &keep), ("a", &x), ("b", &zero)])?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `OneHot(indices, depth, values)` with `axis` (default -1): `values[1]` where the new axis'
/// position equals the index (a negative index counting from `depth`), `values[0]` elsewhere,
/// so indices outside `[-depth, depth)` give a row of `values[0]`. Built from comparisons with
/// a constant position vector and a `select`, which is exact for every index (MIL `one_hot`
/// does not say what negative indices give). `depth` must be constant; float indices are
/// truncated like ONNX's cast to int64.
fn one_hot(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let mut idx = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let depth = ctx
        .const_input(node, 1)?
        .and_then(|t| t.scalar_f64())
        .ok_or_else(|| ctx.invalid("input 'depth' must hold one value"))?
        .trunc();
    if !(1.0..=i32::MAX as f64).contains(&depth) {
        return Err(ctx.invalid(format!("depth {depth} is not a positive int32")));
    }
    let depth = depth as usize;
    if ctx.ty(&idx)?.dtype.is_float() {
        idx = ctx.cast(&idx, DType::I32, &format!("{out}_indices"))?;
    }
    let idx_shape = ctx.shape(&idx)?;
    let a = axis(ctx, ctx.attr(node.int_or("axis", -1))?, idx_shape.len() + 1)?;
    let mut out_shape = idx_shape.clone();
    out_shape.insert(a, depth);
    let mut position_shape = vec![1; idx_shape.len() + 1];
    position_shape[a] = depth;
    let positions: Vec<i32> = (0..depth as i32).collect();
    let from_end: Vec<i32> = positions.iter().map(|p| p - depth as i32).collect();
    let positions = ctx.constant(
        &format!("{out}_positions"),
        Tensor::from_i32(&position_shape, &positions),
    );
    let from_end = ctx.constant(
        &format!("{out}_positions_from_end"),
        Tensor::from_i32(&position_shape, &from_end),
    );
    let axes = ctx.ints(&format!("{out}_axes"), &[a as i64]);
    let column = ctx.op1(
        "expand_dims",
        &format!("{out}_column"),
        &[("x", &idx), ("axes", &axes)],
    )?;
    let at = ctx.op1(
        "equal",
        &format!("{out}_at"),
        &[("x", &column), ("y", &positions)],
    )?;
    let at_from_end = ctx.op1(
        "equal",
        &format!("{out}_at_from_end"),
        &[("x", &column), ("y", &from_end)],
    )?;
    let hot = ctx.op1(
        "logical_or",
        &format!("{out}_hot"),
        &[("x", &at), ("y", &at_from_end)],
    )?;
    let values = ctx.input(node, 2)?;
    if ctx.shape(&values)? != [2] {
        return Err(ctx.invalid("input 'values' must hold two values [off, on]"));
    }
    let mut picked = Vec::with_capacity(2);
    for (i, name) in [(0, "off"), (1, "on")] {
        let at = ctx.int(&format!("{out}_{name}_index"), i);
        let zero = ctx.int(&format!("{out}_{name}_axis"), 0);
        picked.push(ctx.op1(
            "gather",
            &format!("{out}_{name}"),
            &[("x", &values), ("indices", &at), ("axis", &zero)],
        )?);
    }
    let dims: Vec<i64> = out_shape.iter().map(|&d| d as i64).collect();
    let on = broadcast_to(ctx, &picked[1], &dims, &format!("{out}_on_full"))?;
    let y = ctx.op1(
        "select",
        &out,
        &[("cond", &hot), ("a", &on), ("b", &picked[0])],
    )?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// This family's converters.
pub const CONVERTERS: &[(&str, ConvertFn)] = &[
    ("CumSum", cumsum),
    ("OneHot", one_hot),
    ("TopK", topk),
    ("Trilu", trilu),
];

#[cfg(test)]
mod tests {
    use super::diagonal_offsets;

    #[test]
    fn diagonal_offsets_are_col_minus_row() {
        assert_eq!(diagonal_offsets(2, 3), vec![0, 1, 2, -1, 0, 1]);
        assert_eq!(diagonal_offsets(3, 1), vec![0, -1, -2]);
    }
}
