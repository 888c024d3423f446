//! Indexing: `embedding`, `index.Tensor`, `index_select`, `gather`.

use super::ArgDefault::{Bool, Int};
use super::{op, Call, Ctx, OpEntry};
use crate::ir::DType;
use crate::Error;

/// `gather(x, indices, axis)` named `out`, indices as int32.
fn gather_axis(
    ctx: &mut Ctx,
    out: &str,
    x: &str,
    indices: &str,
    axis: usize,
) -> Result<String, Error> {
    let idx = ctx.coerce(indices, DType::I32, &format!("{out}_indices"))?;
    let axis = ctx.int_const(&format!("{out}_axis"), axis as i64);
    ctx.op1(
        "gather",
        out,
        &[("x", x), ("indices", &idx), ("axis", &axis)],
    )
}

/// `embedding(weight, indices, padding_idx, …)`: rows of `weight`.
fn embedding(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let w = ctx.tensor(call, "weight")?;
    let idx = ctx.tensor(call, "indices")?;
    let y = gather_axis(ctx, &out, &w, &idx, 0)?;
    ctx.bind(call, 0, y);
    Ok(())
}

/// `index_select(self, dim, index)`.
fn index_select(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.tensor(call, "self")?;
    let dim = ctx.int(call, "dim")?;
    let axis = ctx.axis(dim, ctx.rank(&x)?)?;
    let idx = ctx.tensor(call, "index")?;
    let y = gather_axis(ctx, &out, &x, &idx, axis)?;
    ctx.bind(call, 0, y);
    Ok(())
}

/// `index.Tensor(self, indices)` with one integer index tensor (at any position; the
/// others None) → `gather` along that axis.
fn index(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.tensor(call, "self")?;
    let indices = ctx.opt_tensors(call, "indices")?;
    let given: Vec<(usize, String)> = indices
        .into_iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (i, v)))
        .collect();
    if given.len() > 1 {
        return gather_points(ctx, call, &out, &x, &given);
    }
    let [(axis, idx)] = given.as_slice() else {
        return Err(ctx.invalid("no index tensor is given"));
    };
    if ctx.ty(idx)?.dtype == DType::Bool {
        return Err(ctx.unsupported("indexing with a bool mask is not supported"));
    }
    let y = gather_axis(ctx, &out, &x, idx, *axis)?;
    ctx.bind(call, 0, y);
    Ok(())
}

/// `x[i0, i1, …]` with index tensors on the leading axes, broadcast together: the indices
/// stacked on a new last axis, then `gather_nd`.
fn gather_points(
    ctx: &mut Ctx,
    call: &Call,
    out: &str,
    x: &str,
    given: &[(usize, String)],
) -> Result<(), Error> {
    if given.iter().enumerate().any(|(i, (axis, _))| i != *axis) {
        return Err(ctx.unsupported(
            "indexing with several index tensors on non-leading axes is not supported",
        ));
    }
    let mut idx = Vec::with_capacity(given.len());
    for (i, (_, v)) in given.iter().enumerate() {
        if ctx.ty(v)?.dtype == DType::Bool {
            return Err(ctx.unsupported("indexing with a bool mask is not supported"));
        }
        idx.push(ctx.coerce(v, DType::I32, &format!("{out}_index{i}"))?);
    }
    // Zeros of the broadcast shape of every index, added to each to broadcast it.
    let zero = ctx.int_const(&format!("{out}_zero"), 0);
    let mut zeros = ctx.op1(
        "mul",
        &format!("{out}_zeros0"),
        &[("x", &idx[0]), ("y", &zero)],
    )?;
    for (i, v) in idx.iter().enumerate().skip(1) {
        let z = ctx.op1(
            "mul",
            &format!("{out}_zero_index{i}"),
            &[("x", v), ("y", &zero)],
        )?;
        zeros = ctx.op1(
            "add",
            &format!("{out}_zeros{i}"),
            &[("x", &zeros), ("y", &z)],
        )?;
    }
    let mut stacked = Vec::with_capacity(idx.len());
    for (i, v) in idx.iter().enumerate() {
        let b = ctx.op1(
            "add",
            &format!("{out}_broadcast{i}"),
            &[("x", v), ("y", &zeros)],
        )?;
        let axes = ctx.ints_const(&format!("{out}_broadcast{i}_axes"), &[-1]);
        stacked.push(ctx.op1(
            "expand_dims",
            &format!("{out}_point{i}"),
            &[("x", &b), ("axes", &axes)],
        )?);
    }
    let axis = ctx.int_const(&format!("{out}_points_axis"), -1);
    let refs: Vec<&str> = stacked.iter().map(String::as_str).collect();
    let points = ctx
        .op_lists(
            "concat",
            &format!("{out}_points"),
            &[("values", refs), ("axis", vec![&axis])],
        )?
        .remove(0);
    let y = ctx.op1("gather_nd", out, &[("x", x), ("indices", &points)])?;
    ctx.bind(call, 0, y);
    Ok(())
}

/// `gather(self, dim, index)` → `gather_along_axis`.
fn gather(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.tensor(call, "self")?;
    let dim = ctx.int(call, "dim")?;
    let axis = ctx.axis(dim, ctx.rank(&x)?)?;
    let idx = ctx.tensor(call, "index")?;
    let idx = ctx.coerce(&idx, DType::I32, &format!("{out}_indices"))?;
    let axis = ctx.int_const(&format!("{out}_axis"), axis as i64);
    let y = ctx.op1(
        "gather_along_axis",
        &out,
        &[("x", &x), ("indices", &idx), ("axis", &axis)],
    )?;
    ctx.bind(call, 0, y);
    Ok(())
}

/// This family's ops.
pub const OPS: &[OpEntry] = &[
    op(
        "aten.embedding.default",
        embedding,
        &[
            ("padding_idx", Int(-1)),
            ("scale_grad_by_freq", Bool(false)),
            ("sparse", Bool(false)),
        ],
    ),
    op("aten.index.Tensor", index, &[]),
    op("aten.index_select.default", index_select, &[]),
    op(
        "aten.gather.default",
        gather,
        &[("sparse_grad", Bool(false))],
    ),
];
