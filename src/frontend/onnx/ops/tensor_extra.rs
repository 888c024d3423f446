//! `Mean`, `Size`, `CastLike` and `Trilu`.

use super::elementwise::{coerce, fold_inputs, scalar_like, to_bfloat16};
use super::{ConvertFn, Ctx, Emit, Node};
use crate::ir::{DType, Tensor};
use crate::Error;

/// `Mean`: the broadcast sum of every input divided by their count.
fn mean(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let n = node.num_inputs();
    let out = ctx.out_name(node, 0);
    let acc = fold_inputs(ctx, node, "add", &format!("{out}_partial{}", n.max(1) - 1))?;
    let count = ctx.float(&format!("{out}_count"), n as f32);
    let y = ctx.op1("real_div", &out, &[("x", &acc), ("y", &count)])?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `Size`: the element count of a statically shaped input, as a constant.
fn size(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let count = ctx
        .shape(&x)?
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|c| i32::try_from(c).ok())
        .ok_or_else(|| ctx.unsupported("the element count does not fit in int32"))?;
    let y = ctx.constant(&ctx.out_name(node, 0), Tensor::scalar_i32(count));
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `CastLike(x, like)`: `Cast` to the IR type of `like` (to BFLOAT16 as `Cast` does).
fn cast_like(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let (x, like) = (ctx.input(node, 0)?, ctx.input(node, 1)?);
    if ctx.is_bfloat16(node, 1) {
        let y = to_bfloat16(ctx, &x, &ctx.out_name(node, 0))?;
        ctx.set_output(node, 0, y);
        return Ok(());
    }
    let dtype = ctx.ty(&like)?.dtype;
    let y = coerce(ctx, &x, dtype, &ctx.out_name(node, 0))?;
    ctx.set_output(node, 0, y);
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

/// This family's converters.
pub const CONVERTERS: &[(&str, ConvertFn)] = &[
    ("CastLike", cast_like),
    ("Mean", mean),
    ("Size", size),
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
