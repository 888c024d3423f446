//! Indexing: `embedding`, `index.Tensor`, `index_select`, `gather`.

use super::ArgDefault::{Bool, Int, None as NoDefault};
use super::{op, Call, Ctx, Emit, OpEntry};
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
    let axis = ctx.int(&format!("{out}_axis"), axis as i64);
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
    let dim = ctx.int_arg(call, "dim")?;
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
    let zero = ctx.int(&format!("{out}_zero"), 0);
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
        let axes = ctx.ints(&format!("{out}_broadcast{i}_axes"), &[-1]);
        stacked.push(ctx.op1(
            "expand_dims",
            &format!("{out}_point{i}"),
            &[("x", &b), ("axes", &axes)],
        )?);
    }
    let axis = ctx.int(&format!("{out}_points_axis"), -1);
    let refs: Vec<&str> = stacked.iter().map(String::as_str).collect();
    let points = ctx
        .op_lists(
            "concat",
            &format!("{out}_points"),
            &[("values", refs), ("axis", vec![&axis])],
        )?
        .remove(0);
    // Core ML's gather_nd takes no bool data: gather the mask as int32 and cast back.
    let y = if ctx.ty(x)?.dtype == DType::Bool {
        let ints = ctx.coerce(x, DType::I32, &format!("{out}_int"))?;
        let gathered = ctx.op1(
            "gather_nd",
            &format!("{out}_ints"),
            &[("x", &ints), ("indices", &points)],
        )?;
        ctx.coerce(&gathered, DType::Bool, out)?
    } else {
        ctx.op1("gather_nd", out, &[("x", x), ("indices", &points)])?
    };
    ctx.bind(call, 0, y);
    Ok(())
}

/// `gather(self, dim, index)` → `gather_along_axis`.
fn gather(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.tensor(call, "self")?;
    let dim = ctx.int_arg(call, "dim")?;
    let axis = ctx.axis(dim, ctx.rank(&x)?)?;
    let idx = ctx.tensor(call, "index")?;
    let idx = ctx.coerce(&idx, DType::I32, &format!("{out}_indices"))?;
    let axis = ctx.int(&format!("{out}_axis"), axis as i64);
    let y = ctx.op1(
        "gather_along_axis",
        &out,
        &[("x", &x), ("indices", &idx), ("axis", &axis)],
    )?;
    ctx.bind(call, 0, y);
    Ok(())
}

/// `base` with `src` written over `base[start:end]` along `axis`: the untouched parts and
/// `src` concatenated (the last op named `out`).
pub fn scatter_slice(
    ctx: &mut Ctx,
    out: &str,
    base: &str,
    src: &str,
    axis: usize,
    start: usize,
    end: usize,
) -> Result<String, Error> {
    let shape = ctx.shape(base)?;
    let size = shape[axis];
    let rank = shape.len();
    let dtype = ctx.ty(base)?.dtype;
    let src = ctx.coerce(src, dtype, &format!("{out}_src"))?;
    let piece = |ctx: &mut Ctx, from: usize, to: usize, what: &str| -> Result<String, Error> {
        let mut begin = vec![0i64; rank];
        let mut stop: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        begin[axis] = from as i64;
        stop[axis] = to as i64;
        let b = ctx.ints(&format!("{out}_{what}_begin"), &begin);
        let e = ctx.ints(&format!("{out}_{what}_end"), &stop);
        ctx.op1(
            "slice_by_index",
            &format!("{out}_{what}"),
            &[("x", base), ("begin", &b), ("end", &e)],
        )
    };
    let mut parts = Vec::new();
    if start > 0 {
        parts.push(piece(ctx, 0, start, "head")?);
    }
    parts.push(src);
    if end < size {
        parts.push(piece(ctx, end, size, "tail")?);
    }
    if parts.len() == 1 {
        return Ok(parts.remove(0));
    }
    let axis = ctx.int(&format!("{out}_axis"), axis as i64);
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    Ok(ctx
        .op_lists("concat", out, &[("values", refs), ("axis", vec![&axis])])?
        .remove(0))
}

/// `slice_scatter(self, src, dim, start, end, step=1)` with static bounds.
fn slice_scatter(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let base = ctx.tensor(call, "self")?;
    let src = ctx.tensor(call, "src")?;
    let shape = ctx.shape(&base)?;
    let dim = ctx.int_arg(call, "dim")?;
    let axis = ctx.axis(dim, shape.len())?;
    if ctx.int_arg(call, "step")? != 1 {
        return Err(ctx.unsupported("slice_scatter with a step other than 1 is not supported"));
    }
    let size = shape[axis] as i64;
    let norm = |v: Option<i64>, open: i64| match v {
        None => open,
        Some(n) if n < 0 => (n + size).max(0),
        Some(n) => n.min(size),
    };
    let start = norm(ctx.opt_int(call, "start")?, 0);
    let end = norm(ctx.opt_int(call, "end")?, size).max(start);
    let y = scatter_slice(ctx, &out, &base, &src, axis, start as usize, end as usize)?;
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
    op(
        "aten.slice_scatter.default",
        slice_scatter,
        &[
            ("dim", Int(0)),
            ("start", NoDefault),
            ("end", NoDefault),
            ("step", Int(1)),
        ],
    ),
];
