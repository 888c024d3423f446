//! Reductions: `mean`, `sum`, `amax`, `amin`, `any`, `argmax`, `argmin`, `max.dim`,
//! `min.dim`, `cumsum`.

use super::ArgDefault::{Bool, Ints, None as NoDefault};
use super::{op, ArgDefault, Call, Ctx, Emit, OpEntry};
use crate::ir::DType;
use crate::Error;

/// The reduced axes of `dim` (all of them when empty or None).
fn reduced_axes(ctx: &mut Ctx, call: &Call, rank: usize) -> Result<Vec<i64>, Error> {
    let dims = if call.node.inputs.iter().any(|a| a.name == "dim") {
        ctx.ints_arg(call, "dim")?
    } else {
        Vec::new()
    };
    if dims.is_empty() {
        return Ok((0..rank as i64).collect());
    }
    dims.iter()
        .map(|&d| ctx.axis(d, rank).map(|a| a as i64))
        .collect()
}

/// `reduce_<mil>(self, dim, keepdim)` in the output dtype.
fn reduce(ctx: &mut Ctx, call: &Call, mil: &str) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let dtype = ctx.out_dtype(call, 0)?;
    let x = ctx.operand(call, "self", dtype)?;
    let axes = reduced_axes(ctx, call, ctx.rank(&x)?)?;
    let keep = call.node.inputs.iter().any(|a| a.name == "keepdim") && ctx.flag(call, "keepdim")?;
    let axes = ctx.ints(&format!("{out}_axes"), &axes);
    let keep = ctx.boolean(&format!("{out}_keep_dims"), keep);
    let y = ctx.op1(
        mil,
        &out,
        &[("x", &x), ("axes", &axes), ("keep_dims", &keep)],
    )?;
    ctx.bind(call, 0, y);
    Ok(())
}

fn mean(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    reduce(ctx, call, "reduce_mean")
}

fn sum(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    reduce(ctx, call, "reduce_sum")
}

fn amax(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    reduce(ctx, call, "reduce_max")
}

fn amin(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    reduce(ctx, call, "reduce_min")
}

/// `any(self, dim, keepdim)`: the maximum of the values as int32, compared with 0.
fn any(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.tensor(call, "self")?;
    let x = if ctx.ty(&x)?.dtype == DType::Bool {
        ctx.coerce(&x, DType::I32, &format!("{out}_int"))?
    } else {
        let zero = ctx.scalar_const(&format!("{out}_zero"), 0.0, ctx.ty(&x)?.dtype);
        let nz = ctx.op1(
            "not_equal",
            &format!("{out}_nonzero"),
            &[("x", &x), ("y", &zero)],
        )?;
        ctx.coerce(&nz, DType::I32, &format!("{out}_int"))?
    };
    let axes = reduced_axes(ctx, call, ctx.rank(&x)?)?;
    let keep = call.node.inputs.iter().any(|a| a.name == "keepdim") && ctx.flag(call, "keepdim")?;
    let axes = ctx.ints(&format!("{out}_axes"), &axes);
    let keep = ctx.boolean(&format!("{out}_keep_dims"), keep);
    let m = ctx.op1(
        "reduce_max",
        &format!("{out}_max"),
        &[("x", &x), ("axes", &axes), ("keep_dims", &keep)],
    )?;
    let zero = ctx.int(&format!("{out}_zero_int"), 0);
    let y = ctx.op1("not_equal", &out, &[("x", &m), ("y", &zero)])?;
    ctx.bind(call, 0, y);
    Ok(())
}

/// `argmax`/`argmin(self, dim=None, keepdim=False)`.
fn arg_reduce(ctx: &mut Ctx, call: &Call, mil: &str) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let mut x = ctx.tensor(call, "self")?;
    let keep = ctx.flag(call, "keepdim")?;
    let axis = match ctx.opt_int(call, "dim")? {
        Some(d) => ctx.axis(d, ctx.rank(&x)?)?,
        None => {
            let shape = ctx.ints(&format!("{out}_flat_shape"), &[-1]);
            x = ctx.op1(
                "reshape",
                &format!("{out}_flat"),
                &[("x", &x), ("shape", &shape)],
            )?;
            0
        }
    };
    let axis = ctx.int(&format!("{out}_axis"), axis as i64);
    let keep = ctx.boolean(&format!("{out}_keep_dims"), keep);
    let y = ctx.op1(
        mil,
        &out,
        &[("x", &x), ("axis", &axis), ("keep_dims", &keep)],
    )?;
    ctx.bind(call, 0, y);
    Ok(())
}

fn argmax(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    arg_reduce(ctx, call, "reduce_argmax")
}

fn argmin(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    arg_reduce(ctx, call, "reduce_argmin")
}

/// `max.dim`/`min.dim(self, dim, keepdim)`: values and indices.
fn extreme_dim(ctx: &mut Ctx, call: &Call, value_op: &str, index_op: &str) -> Result<(), Error> {
    let x = ctx.tensor(call, "self")?;
    let rank = ctx.rank(&x)?;
    let dim = ctx.int_arg(call, "dim")?;
    let axis = ctx.axis(dim, rank)? as i64;
    let keep = ctx.flag(call, "keepdim")?;
    let out = ctx.out(call, 0);
    let axes = ctx.ints(&format!("{out}_axes"), &[axis]);
    let keep_c = ctx.boolean(&format!("{out}_keep_dims"), keep);
    let v = ctx.op1(
        value_op,
        &out,
        &[("x", &x), ("axes", &axes), ("keep_dims", &keep_c)],
    )?;
    ctx.bind(call, 0, v);
    if call.output_name(1).is_some() {
        let idx_name = ctx.out(call, 1);
        let axis_c = ctx.int(&format!("{idx_name}_axis"), axis);
        let i = ctx.op1(
            index_op,
            &idx_name,
            &[("x", &x), ("axis", &axis_c), ("keep_dims", &keep_c)],
        )?;
        ctx.bind(call, 1, i);
    }
    Ok(())
}

fn max_dim(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    extreme_dim(ctx, call, "reduce_max", "reduce_argmax")
}

fn min_dim(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    extreme_dim(ctx, call, "reduce_min", "reduce_argmin")
}

/// `cumsum(self, dim, dtype=None)`.
fn cumsum(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let dtype = ctx.out_dtype(call, 0)?;
    let x = ctx.operand(call, "self", dtype)?;
    let axis = ctx.int_arg(call, "dim")?;
    let axis = ctx.axis(axis, ctx.rank(&x)?)?;
    let axis = ctx.int(&format!("{out}_axis"), axis as i64);
    let y = ctx.op1("cumsum", &out, &[("x", &x), ("axis", &axis)])?;
    ctx.bind(call, 0, y);
    Ok(())
}

const DIM_REDUCE: &[(&str, ArgDefault)] = &[("keepdim", Bool(false)), ("dtype", NoDefault)];
const EXTREME: &[(&str, ArgDefault)] = &[("dim", Ints(&[])), ("keepdim", Bool(false))];
const ARG: &[(&str, ArgDefault)] = &[("dim", NoDefault), ("keepdim", Bool(false))];

/// This family's ops.
pub const OPS: &[OpEntry] = &[
    op("aten.mean.dim", mean, DIM_REDUCE),
    op("aten.mean.default", mean, &[("dtype", NoDefault)]),
    op("aten.sum.dim_IntList", sum, DIM_REDUCE),
    op("aten.sum.default", sum, &[("dtype", NoDefault)]),
    op("aten.amax.default", amax, EXTREME),
    op("aten.amin.default", amin, EXTREME),
    op("aten.any.dim", any, &[("keepdim", Bool(false))]),
    op(
        "aten.any.dims",
        any,
        &[("dim", NoDefault), ("keepdim", Bool(false))],
    ),
    op("aten.any.default", any, &[]),
    op("aten.argmax.default", argmax, ARG),
    op("aten.argmin.default", argmin, ARG),
    op("aten.max.dim", max_dim, &[("keepdim", Bool(false))]),
    op("aten.min.dim", min_dim, &[("keepdim", Bool(false))]),
    op("aten.cumsum.default", cumsum, &[("dtype", NoDefault)]),
];
