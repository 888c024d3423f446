//! Tensor manipulation: `view`/`reshape`/`_unsafe_view`, `flatten`, `unflatten`, `permute`,
//! `transpose`, `t`, `expand`, `squeeze`, `unsqueeze`, `cat`, `stack`, `split`,
//! `split_with_sizes`, `chunk`, `unbind`, `slice`, `select`, `repeat`, `flip`,
//! `constant_pad_nd`, `diff`, and the identity-like ops (`clone`, `contiguous`, `alias`,
//! `detach`, `dropout` at inference, …).

use super::super::convert::{SliceView, SymVal};
use super::ArgDefault::{Bool, Float, Int, None as NoDefault};
use super::{op, pass_through, ArgDefault, Call, Ctx, Emit, OpEntry};
use crate::ir::{DType, Dim, Tensor};
use crate::Error;

/// A rank-1 int32 variable holding `sizes` (known sizes as constants, run-time sizes
/// expanded from their rank-0 variables), concatenated.
pub fn shape_vector(ctx: &mut Ctx, sizes: &[SymVal], hint: &str) -> Result<String, Error> {
    if sizes.iter().all(|s| matches!(s, SymVal::Known(_))) {
        let known: Vec<i64> = sizes
            .iter()
            .map(|s| match s {
                SymVal::Known(n) => *n,
                SymVal::Var(_) => 0,
            })
            .collect();
        return Ok(ctx.ints(hint, &known));
    }
    let mut parts = Vec::with_capacity(sizes.len());
    for (i, s) in sizes.iter().enumerate() {
        parts.push(match s {
            SymVal::Known(n) => ctx.ints(&format!("{hint}_{i}"), &[*n]),
            SymVal::Var(v) => {
                let v = ctx.coerce(v, DType::I32, &format!("{hint}_{i}_int"))?;
                if ctx.rank(&v)? == 0 {
                    let axes = ctx.ints(&format!("{hint}_{i}_axes"), &[0]);
                    ctx.op1(
                        "expand_dims",
                        &format!("{hint}_{i}"),
                        &[("x", &v), ("axes", &axes)],
                    )?
                } else {
                    v
                }
            }
        });
    }
    let axis = ctx.int(&format!("{hint}_axis"), 0);
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    ctx.op_lists("concat", hint, &[("values", refs), ("axis", vec![&axis])])
        .map(|mut o| o.remove(0))
}

/// `reshape(x)` to the shape torch records for output 0, with `sizes` (the requested
/// sizes, possibly run-time) used when more than one recorded dimension is symbolic.
fn reshape_call(
    ctx: &mut Ctx,
    call: &Call,
    x: &str,
    sizes: Option<Vec<SymVal>>,
) -> Result<String, Error> {
    let out = ctx.out(call, 0);
    let meta = ctx
        .out_meta(call, 0)
        .ok_or_else(|| ctx.invalid("output 0 has no recorded type"))?;
    let unknown = meta.shape.iter().filter(|d| d.fixed().is_none()).count();
    let shape = if unknown <= 1 {
        let dims: Vec<i64> = meta
            .shape
            .iter()
            .map(|d| d.fixed().map_or(-1, |n| n as i64))
            .collect();
        ctx.ints(&format!("{out}_shape"), &dims)
    } else {
        let sizes = sizes.ok_or_else(|| {
            ctx.unsupported("a reshape with several symbolic sizes is not supported; fix the dynamic dimensions with --dim")
        })?;
        shape_vector(ctx, &sizes, &format!("{out}_shape"))?
    };
    ctx.op1("reshape", &out, &[("x", x), ("shape", &shape)])
}

/// `view(self, size)`, `reshape(self, shape)`, `_unsafe_view(self, size)`.
fn view(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let x = ctx.tensor(call, "self")?;
    let arg = if call.node.inputs.iter().any(|a| a.name == "shape") {
        "shape"
    } else {
        "size"
    };
    let sizes = ctx.sym_ints(call, arg)?;
    let y = reshape_call(ctx, call, &x, Some(sizes))?;
    ctx.bind(call, 0, y);
    Ok(())
}

/// `flatten(self, start_dim, end_dim)`, `unflatten(self, dim, sizes)`: reshapes to the
/// recorded output shape.
fn reshape_to_meta(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let x = ctx.tensor(call, "self")?;
    let y = reshape_call(ctx, call, &x, None)?;
    ctx.bind(call, 0, y);
    Ok(())
}

/// `transpose(x, perm)` named after output 0 (identity for the identity permutation).
fn transpose_to(ctx: &mut Ctx, call: &Call, x: &str, perm: &[i64]) -> Result<(), Error> {
    if perm.iter().enumerate().all(|(i, &p)| i as i64 == p) {
        ctx.bind(call, 0, x.to_string());
        return Ok(());
    }
    let out = ctx.out(call, 0);
    let perm_c = ctx.ints(&format!("{out}_perm"), perm);
    let y = ctx.op1("transpose", &out, &[("x", x), ("perm", &perm_c)])?;
    ctx.bind(call, 0, y);
    Ok(())
}

/// `permute(self, dims)`.
fn permute(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let x = ctx.tensor(call, "self")?;
    let rank = ctx.rank(&x)?;
    let perm = ctx
        .ints_arg(call, "dims")?
        .iter()
        .map(|&d| ctx.axis(d, rank).map(|a| a as i64))
        .collect::<Result<Vec<_>, _>>()?;
    transpose_to(ctx, call, &x, &perm)
}

/// `transpose(self, dim0, dim1)`.
fn transpose(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let x = ctx.tensor(call, "self")?;
    let rank = ctx.rank(&x)?;
    let a = ctx.int_arg(call, "dim0")?;
    let a = ctx.axis(a, rank)?;
    let b = ctx.int_arg(call, "dim1")?;
    let b = ctx.axis(b, rank)?;
    let mut perm: Vec<i64> = (0..rank as i64).collect();
    perm.swap(a, b);
    transpose_to(ctx, call, &x, &perm)
}

/// `t(self)`: swaps the two dims of a matrix (a vector is unchanged).
fn t(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let x = ctx.tensor(call, "self")?;
    let perm: Vec<i64> = if ctx.rank(&x)? == 2 {
        vec![1, 0]
    } else {
        vec![0]
    };
    transpose_to(ctx, call, &x, &perm)
}

/// `expand(self, size)`: a static result is a reshape to the output rank and a `tile`; a
/// symbolic one adds a zero tensor of the run-time shape (broadcasting).
fn expand(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.tensor(call, "self")?;
    let x_ty = ctx.ty(&x)?;
    let meta = ctx
        .out_meta(call, 0)
        .ok_or_else(|| ctx.invalid("output 0 has no recorded type"))?;
    let rank = meta.rank();
    if x_ty.rank() > rank {
        return Err(ctx.invalid(format!("cannot expand {x_ty} to rank {rank}")));
    }
    let padded: Vec<Dim> = std::iter::repeat_n(Dim::Fixed(1), rank - x_ty.rank())
        .chain(x_ty.shape.iter().cloned())
        .collect();
    let mut y = x.clone();
    if let (Some(target), Some(have)) = (meta.static_shape(), x_ty.static_shape()) {
        if padded.len() != have.len() {
            let dims: Vec<i64> = padded
                .iter()
                .map(|d| d.fixed().unwrap_or(1) as i64)
                .collect();
            let shape = ctx.ints(&format!("{out}_ranked_shape"), &dims);
            y = ctx.op1(
                "reshape",
                &format!("{out}_ranked"),
                &[("x", &y), ("shape", &shape)],
            )?;
        }
        let reps: Vec<i64> = padded
            .iter()
            .zip(&target)
            .map(|(h, &w)| if h.fixed() == Some(w) { 1 } else { w as i64 })
            .collect();
        if reps.iter().any(|&r| r != 1) {
            let reps_c = ctx.ints(&format!("{out}_reps"), &reps);
            y = ctx.op1("tile", &out, &[("x", &y), ("reps", &reps_c)])?;
        }
        ctx.bind(call, 0, y);
        return Ok(());
    }
    // Symbolic: x + zeros(size), with -1 sizes taken from x.
    let sizes = ctx.sym_ints(call, "size")?;
    let offset = rank - x_ty.rank();
    let mut resolved = Vec::with_capacity(rank);
    for (i, s) in sizes.into_iter().enumerate() {
        resolved.push(match s {
            SymVal::Known(-1) if i >= offset => match &x_ty.shape[i - offset] {
                Dim::Fixed(n) => SymVal::Known(*n as i64),
                Dim::Symbol(_) => {
                    let shape = ctx.op1("shape", &format!("{out}_input_shape"), &[("x", &x)])?;
                    let idx = ctx.int(&format!("{out}_dim{i}_index"), (i - offset) as i64);
                    SymVal::Var(ctx.op1(
                        "gather",
                        &format!("{out}_dim{i}"),
                        &[("x", &shape), ("indices", &idx)],
                    )?)
                }
            },
            other => other,
        });
    }
    let shape = shape_vector(ctx, &resolved, &format!("{out}_shape"))?;
    let dtype = x_ty.dtype;
    let work = if dtype == DType::Bool {
        DType::I32
    } else {
        dtype
    };
    let xw = ctx.coerce(&x, work, &format!("{out}_as_number"))?;
    let zero = ctx.scalar_const(&format!("{out}_zero"), 0.0, work);
    let zeros = ctx.op1(
        "fill",
        &format!("{out}_zeros"),
        &[("shape", &shape), ("value", &zero)],
    )?;
    let hint = if dtype == DType::Bool {
        format!("{out}_number")
    } else {
        out.clone()
    };
    let mut y = ctx.op1("add", &hint, &[("x", &xw), ("y", &zeros)])?;
    if dtype == DType::Bool {
        y = ctx.coerce(&y, DType::Bool, &out)?;
    }
    ctx.bind(call, 0, y);
    Ok(())
}

/// `squeeze(self)`, `squeeze(self, dim)`, `squeeze(self, dims)`: only dims of size 1 go.
fn squeeze(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.tensor(call, "self")?;
    let ty = ctx.ty(&x)?;
    let rank = ty.rank();
    let listed: Vec<usize> = if call.node.inputs.iter().any(|a| a.name == "dim") {
        ctx.ints_arg(call, "dim")?
            .iter()
            .map(|&d| ctx.axis(d, rank))
            .collect::<Result<_, _>>()?
    } else {
        (0..rank).collect()
    };
    let axes: Vec<i64> = listed
        .into_iter()
        .filter(|&a| ty.shape[a].fixed() == Some(1))
        .map(|a| a as i64)
        .collect();
    if axes.is_empty() {
        ctx.bind(call, 0, x);
        return Ok(());
    }
    let axes = ctx.ints(&format!("{out}_axes"), &axes);
    let y = ctx.op1("squeeze", &out, &[("x", &x), ("axes", &axes)])?;
    ctx.bind(call, 0, y);
    Ok(())
}

/// `unsqueeze(self, dim)`.
fn unsqueeze(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.tensor(call, "self")?;
    let dim = ctx.int_arg(call, "dim")?;
    let axis = ctx.axis(dim, ctx.rank(&x)? + 1)?;
    let axes = ctx.ints(&format!("{out}_axes"), &[axis as i64]);
    let y = ctx.op1("expand_dims", &out, &[("x", &x), ("axes", &axes)])?;
    ctx.bind(call, 0, y);
    Ok(())
}

/// `cat(tensors, dim)` (empty tensors dropped, operands in the output dtype).
fn cat(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let dtype = ctx.out_dtype(call, 0)?;
    let meta = ctx
        .out_meta(call, 0)
        .ok_or_else(|| ctx.invalid("output 0 has no recorded type"))?;
    let dim = ctx.int_arg(call, "dim")?;
    let axis = ctx.axis(dim, meta.rank())?;
    let mut parts = Vec::new();
    for (i, v) in ctx.tensors(call, "tensors")?.into_iter().enumerate() {
        let ty = ctx.ty(&v)?;
        if ty.shape.iter().any(|d| d.fixed() == Some(0)) {
            continue;
        }
        parts.push(ctx.coerce(&v, dtype, &format!("{out}_part{i}"))?);
    }
    let y = match parts.len() {
        0 => return Err(ctx.unsupported("concatenating only empty tensors is not supported")),
        1 => parts.remove(0),
        _ => {
            let axis = ctx.int(&format!("{out}_axis"), axis as i64);
            let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
            ctx.op_lists("concat", &out, &[("values", refs), ("axis", vec![&axis])])?
                .remove(0)
        }
    };
    ctx.bind(call, 0, y);
    Ok(())
}

/// `stack(tensors, dim)`: each operand gets the new axis, then `concat`.
fn stack(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let dtype = ctx.out_dtype(call, 0)?;
    let meta = ctx
        .out_meta(call, 0)
        .ok_or_else(|| ctx.invalid("output 0 has no recorded type"))?;
    let dim = ctx.int_arg(call, "dim")?;
    let axis = ctx.axis(dim, meta.rank())? as i64;
    let mut parts = Vec::new();
    for (i, v) in ctx.tensors(call, "tensors")?.into_iter().enumerate() {
        let v = ctx.coerce(&v, dtype, &format!("{out}_part{i}"))?;
        let axes = ctx.ints(&format!("{out}_part{i}_axes"), &[axis]);
        parts.push(ctx.op1(
            "expand_dims",
            &format!("{out}_part{i}_expanded"),
            &[("x", &v), ("axes", &axes)],
        )?);
    }
    let axis = ctx.int(&format!("{out}_axis"), axis);
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    let y = ctx
        .op_lists("concat", &out, &[("values", refs), ("axis", vec![&axis])])?
        .remove(0);
    ctx.bind(call, 0, y);
    Ok(())
}

/// Splits `x` along `axis` into pieces of `sizes` and binds them to the list outputs;
/// `squeeze` drops the axis from each piece (`unbind`).
fn split_into(
    ctx: &mut Ctx,
    call: &Call,
    x: &str,
    axis: usize,
    sizes: &[i64],
    squeeze: bool,
) -> Result<(), Error> {
    let names = call.list_output_names();
    let base = names
        .iter()
        .flatten()
        .next()
        .map_or_else(|| call.label.clone(), |n| n.to_string());
    let pieces = if sizes.len() == 1 {
        vec![x.to_string()]
    } else {
        let sizes_c = ctx.ints(&format!("{base}_split_sizes"), sizes);
        let axis_c = ctx.int(&format!("{base}_axis"), axis as i64);
        ctx.op(
            "split",
            &base,
            &[("x", x), ("split_sizes", &sizes_c), ("axis", &axis_c)],
        )?
    };
    for (piece, name) in pieces.into_iter().zip(names) {
        let Some(name) = name else { continue };
        let piece = if squeeze {
            let axes = ctx.ints(&format!("{name}_axes"), &[axis as i64]);
            ctx.op1("squeeze", name, &[("x", &piece), ("axes", &axes)])?
        } else {
            piece
        };
        ctx.bind_name(name, piece);
    }
    Ok(())
}

/// The static size of `x` along `axis`.
fn dim_size(ctx: &Ctx, x: &str, axis: usize) -> Result<i64, Error> {
    match ctx.ty(x)?.shape[axis] {
        Dim::Fixed(n) => Ok(n as i64),
        Dim::Symbol(ref s) => Err(ctx.unsupported(format!(
            "splitting along symbolic dimension '{s}' is not supported; fix it with --dim"
        ))),
    }
}

/// `split_with_sizes(self, split_sizes, dim)`.
fn split_with_sizes(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let x = ctx.tensor(call, "self")?;
    let dim = ctx.int_arg(call, "dim")?;
    let axis = ctx.axis(dim, ctx.rank(&x)?)?;
    let sizes = ctx.ints_arg(call, "split_sizes")?;
    split_into(ctx, call, &x, axis, &sizes, false)
}

/// `split(self, split_size, dim)`: pieces of `split_size`, the last one shorter.
fn split(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let x = ctx.tensor(call, "self")?;
    let dim = ctx.int_arg(call, "dim")?;
    let axis = ctx.axis(dim, ctx.rank(&x)?)?;
    let total = dim_size(ctx, &x, axis)?;
    let size = ctx.int_arg(call, "split_size")?.max(1);
    let mut sizes = Vec::new();
    let mut left = total;
    while left > 0 {
        sizes.push(size.min(left));
        left -= size;
    }
    split_into(ctx, call, &x, axis, &sizes, false)
}

/// `chunk(self, chunks, dim)`: pieces of `ceil(n / chunks)`.
fn chunk(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let x = ctx.tensor(call, "self")?;
    let dim = ctx.int_arg(call, "dim")?;
    let axis = ctx.axis(dim, ctx.rank(&x)?)?;
    let total = dim_size(ctx, &x, axis)?;
    let chunks = ctx.int_arg(call, "chunks")?.max(1);
    let size = (total + chunks - 1) / chunks;
    let mut sizes = Vec::new();
    let mut left = total;
    while left > 0 {
        sizes.push(size.min(left));
        left -= size;
    }
    split_into(ctx, call, &x, axis, &sizes, false)
}

/// `unbind(self, dim)`: one piece per index, the axis removed.
fn unbind(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let x = ctx.tensor(call, "self")?;
    let dim = ctx.int_arg(call, "dim")?;
    let axis = ctx.axis(dim, ctx.rank(&x)?)?;
    let total = dim_size(ctx, &x, axis)?;
    split_into(ctx, call, &x, axis, &vec![1; total as usize], true)
}

/// A slice bound: known, run time, or "to the end" / "from the start" (masked).
enum Bound {
    Known(i64),
    Var(String),
    Open,
}

/// `slice_by_index` of `x` along `axis` from `start` to `end` by `step`, the other axes
/// whole; `squeeze` drops the axis (`select`).
#[allow(clippy::too_many_arguments)]
fn slice_axis(
    ctx: &mut Ctx,
    out: &str,
    x: &str,
    axis: usize,
    start: Bound,
    end: Bound,
    step: i64,
    squeeze: bool,
) -> Result<String, Error> {
    let rank = ctx.rank(x)?;
    let vector = |ctx: &mut Ctx, b: &Bound, what: &str| -> Result<String, Error> {
        let sizes: Vec<SymVal> = (0..rank)
            .map(|i| match (i == axis, b) {
                (true, Bound::Known(n)) => SymVal::Known(*n),
                (true, Bound::Var(v)) => SymVal::Var(v.clone()),
                _ => SymVal::Known(0),
            })
            .collect();
        shape_vector(ctx, &sizes, &format!("{out}_{what}"))
    };
    let begin = vector(ctx, &start, "begin")?;
    let end_v = vector(ctx, &end, "end")?;
    let mask = |open: bool| -> Tensor {
        let m: Vec<bool> = (0..rank).map(|i| i != axis || open).collect();
        Tensor::from_bool(&[rank], &m)
    };
    let begin_mask = ctx.constant(
        &format!("{out}_begin_mask"),
        mask(matches!(start, Bound::Open)),
    );
    let end_mask = ctx.constant(&format!("{out}_end_mask"), mask(matches!(end, Bound::Open)));
    let strides: Vec<i64> = (0..rank)
        .map(|i| if i == axis { step } else { 1 })
        .collect();
    let stride = ctx.ints(&format!("{out}_stride"), &strides);
    let mut params = vec![
        ("x", x),
        ("begin", begin.as_str()),
        ("end", end_v.as_str()),
        ("stride", stride.as_str()),
        ("begin_mask", begin_mask.as_str()),
        ("end_mask", end_mask.as_str()),
    ];
    let squeeze_c;
    if squeeze {
        let m: Vec<bool> = (0..rank).map(|i| i == axis).collect();
        squeeze_c = ctx.constant(
            &format!("{out}_squeeze_mask"),
            Tensor::from_bool(&[rank], &m),
        );
        params.push(("squeeze_mask", squeeze_c.as_str()));
    }
    ctx.op1("slice_by_index", out, &params)
}

/// Largest slice end torch writes for "to the end" (`sys.maxsize`).
const OPEN_END: i64 = i64::MAX / 2;

/// `slice(self, dim, start, end, step)`.
fn slice(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.tensor(call, "self")?;
    let ty = ctx.ty(&x)?;
    let dim = ctx.int_arg(call, "dim")?;
    let axis = ctx.axis(dim, ty.rank())?;
    let step = ctx.int_arg(call, "step")?;
    if step < 1 {
        return Err(ctx.invalid(format!("slice step {step} must be positive")));
    }
    let size = ty.shape[axis].fixed().map(|n| n as i64);
    let bound = |s: Option<SymVal>, is_start: bool| match s {
        None => Bound::Open,
        Some(SymVal::Var(v)) => Bound::Var(v),
        Some(SymVal::Known(n)) if !is_start && n >= OPEN_END => Bound::Open,
        Some(SymVal::Known(n)) if !is_start && size.is_some_and(|s| n >= s) => Bound::Open,
        Some(SymVal::Known(0)) if is_start => Bound::Open,
        Some(SymVal::Known(n)) if is_start && size.is_some_and(|s| n <= -s) => Bound::Open,
        Some(SymVal::Known(n)) => Bound::Known(n),
    };
    let start = ctx.opt_sym_int(call, "start")?;
    let end = ctx.opt_sym_int(call, "end")?;
    let (start, end) = (bound(start, true), bound(end, false));
    if let (1, Some(size), Some(name)) = (step, size, call.output_name(0)) {
        let norm = |b: &Bound, open: i64| match b {
            Bound::Open => Some(open),
            Bound::Known(n) if *n < 0 => Some((n + size).max(0)),
            Bound::Known(n) => Some((*n).min(size)),
            Bound::Var(_) => None,
        };
        let base = call.tensor_name("self");
        if let (Some(s), Some(e), Some(base)) = (norm(&start, 0), norm(&end, size), base) {
            ctx.record_view(
                name,
                SliceView {
                    base,
                    axis,
                    start: s as usize,
                    end: e.max(s) as usize,
                },
            );
        }
    }
    if matches!((&start, &end), (Bound::Open, Bound::Open)) && step == 1 {
        ctx.bind(call, 0, x);
        return Ok(());
    }
    let y = slice_axis(ctx, &out, &x, axis, start, end, step, false)?;
    ctx.bind(call, 0, y);
    Ok(())
}

/// `select(self, dim, index)`: one index along `dim`, the axis removed.
fn select(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.tensor(call, "self")?;
    let rank = ctx.rank(&x)?;
    let dim = ctx.int_arg(call, "dim")?;
    let axis = ctx.axis(dim, rank)?;
    let (start, end) = match ctx.opt_sym_int(call, "index")? {
        Some(SymVal::Known(-1)) => (Bound::Known(-1), Bound::Open),
        Some(SymVal::Known(i)) => (Bound::Known(i), Bound::Known(i + 1)),
        _ => {
            return Err(
                ctx.unsupported("select with an index computed at run time is not supported")
            )
        }
    };
    let y = slice_axis(ctx, &out, &x, axis, start, end, 1, true)?;
    ctx.bind(call, 0, y);
    Ok(())
}

/// `repeat(self, repeats)` → `tile` (after a reshape to the repeats' rank).
fn repeat(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let mut x = ctx.tensor(call, "self")?;
    let reps = ctx.ints_arg(call, "repeats")?;
    let shape = ctx.shape(&x)?;
    if reps.len() < shape.len() {
        return Err(ctx.invalid(format!(
            "repeats {reps:?} are fewer than the dims of {shape:?}"
        )));
    }
    if reps.len() > shape.len() {
        let dims: Vec<i64> = std::iter::repeat_n(1, reps.len() - shape.len())
            .chain(shape.iter().map(|&d| d as i64))
            .collect();
        let c = ctx.ints(&format!("{out}_ranked_shape"), &dims);
        x = ctx.op1(
            "reshape",
            &format!("{out}_ranked"),
            &[("x", &x), ("shape", &c)],
        )?;
    }
    let reps_c = ctx.ints(&format!("{out}_reps"), &reps);
    let y = ctx.op1("tile", &out, &[("x", &x), ("reps", &reps_c)])?;
    ctx.bind(call, 0, y);
    Ok(())
}

/// `flip(self, dims)` → `reverse`.
fn flip(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.tensor(call, "self")?;
    let rank = ctx.rank(&x)?;
    let axes: Vec<i64> = ctx
        .ints_arg(call, "dims")?
        .iter()
        .map(|&d| ctx.axis(d, rank).map(|a| a as i64))
        .collect::<Result<_, _>>()?;
    let axes = ctx.ints(&format!("{out}_axes"), &axes);
    let y = ctx.op1("reverse", &out, &[("x", &x), ("axes", &axes)])?;
    ctx.bind(call, 0, y);
    Ok(())
}

/// `constant_pad_nd(self, pad, value)`: `pad` pairs start at the last dim.
fn constant_pad(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.tensor(call, "self")?;
    let rank = ctx.rank(&x)?;
    let pad = ctx.ints_arg(call, "pad")?;
    if pad.len() % 2 != 0 || pad.len() / 2 > rank {
        return Err(ctx.invalid(format!("pad {pad:?} does not fit rank {rank}")));
    }
    if pad.iter().any(|&p| p < 0) {
        return Err(ctx.unsupported(format!(
            "negative padding {pad:?} (cropping) is not supported"
        )));
    }
    let n = pad.len() / 2;
    // MIL pads the last n dims, first to last: reverse torch's pair order.
    let mil: Vec<i64> = (0..n)
        .rev()
        .flat_map(|k| [pad[2 * k], pad[2 * k + 1]])
        .collect();
    if mil.iter().all(|&p| p == 0) {
        ctx.bind(call, 0, x);
        return Ok(());
    }
    let value = ctx.float_arg(call, "value")?;
    let dtype = ctx.ty(&x)?.dtype;
    let pad_c = ctx.ints(&format!("{out}_pad"), &mil);
    let mode = ctx.string(&format!("{out}_mode"), "constant");
    let value = ctx.scalar_const(&format!("{out}_constant_val"), value, dtype);
    let y = ctx.op1(
        "pad",
        &out,
        &[
            ("x", &x),
            ("pad", &pad_c),
            ("mode", &mode),
            ("constant_val", &value),
        ],
    )?;
    ctx.bind(call, 0, y);
    Ok(())
}

/// `diff(self, n=1, dim=-1, prepend, append)`: `x[1:] - x[:-1]` along `dim` after joining
/// `prepend` and `append`.
fn diff(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let dtype = ctx.out_dtype(call, 0)?;
    let mut x = ctx.tensor(call, "self")?;
    if ctx.int_arg(call, "n")? != 1 {
        return Err(ctx.unsupported("diff with n other than 1 is not supported"));
    }
    let rank = ctx.rank(&x)?;
    let dim = ctx.int_arg(call, "dim")?;
    let axis = ctx.axis(dim, rank)?;
    let pre = ctx.opt_tensor(call, "prepend")?;
    let app = ctx.opt_tensor(call, "append")?;
    if pre.is_some() || app.is_some() {
        let parts: Vec<String> = [pre, Some(x.clone()), app].into_iter().flatten().collect();
        let axis_c = ctx.int(&format!("{out}_join_axis"), axis as i64);
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        x = ctx
            .op_lists(
                "concat",
                &format!("{out}_joined"),
                &[("values", refs), ("axis", vec![&axis_c])],
            )?
            .remove(0);
    }
    let hi = slice_axis(
        ctx,
        &format!("{out}_next"),
        &x,
        axis,
        Bound::Known(1),
        Bound::Open,
        1,
        false,
    )?;
    let lo = slice_axis(
        ctx,
        &format!("{out}_prev"),
        &x,
        axis,
        Bound::Open,
        Bound::Known(-1),
        1,
        false,
    )?;
    let y = if dtype == DType::Bool {
        ctx.op1("logical_xor", &out, &[("x", &hi), ("y", &lo)])?
    } else {
        ctx.op1("sub", &out, &[("x", &hi), ("y", &lo)])?
    };
    ctx.bind(call, 0, y);
    Ok(())
}

const SLICE: &[(&str, ArgDefault)] = &[
    ("dim", Int(0)),
    ("start", NoDefault),
    ("end", NoDefault),
    ("step", Int(1)),
];

/// This family's ops.
pub const OPS: &[OpEntry] = &[
    op("aten.view.default", view, &[]),
    op("aten._unsafe_view.default", view, &[]),
    op("aten.reshape.default", view, &[]),
    op(
        "aten.flatten.using_ints",
        reshape_to_meta,
        &[("start_dim", Int(0)), ("end_dim", Int(-1))],
    ),
    op("aten.unflatten.int", reshape_to_meta, &[]),
    op("aten.permute.default", permute, &[]),
    op("aten.transpose.int", transpose, &[]),
    op("aten.t.default", t, &[]),
    op("aten.expand.default", expand, &[("implicit", Bool(false))]),
    op("aten.squeeze.dim", squeeze, &[]),
    op("aten.squeeze.dims", squeeze, &[]),
    op("aten.squeeze.default", squeeze, &[]),
    op("aten.unsqueeze.default", unsqueeze, &[]),
    op("aten.cat.default", cat, &[("dim", Int(0))]),
    op("aten.concat.default", cat, &[("dim", Int(0))]),
    op("aten.stack.default", stack, &[("dim", Int(0))]),
    op("aten.split.Tensor", split, &[("dim", Int(0))]),
    op(
        "aten.split_with_sizes.default",
        split_with_sizes,
        &[("dim", Int(0))],
    ),
    op("aten.chunk.default", chunk, &[("dim", Int(0))]),
    op("aten.unbind.int", unbind, &[("dim", Int(0))]),
    op("aten.slice.Tensor", slice, SLICE),
    op("aten.select.int", select, &[]),
    op("aten.repeat.default", repeat, &[]),
    op("aten.flip.default", flip, &[]),
    op(
        "aten.constant_pad_nd.default",
        constant_pad,
        &[("value", Float(0.0))],
    ),
    op(
        "aten.diff.default",
        diff,
        &[
            ("n", Int(1)),
            ("dim", Int(-1)),
            ("prepend", NoDefault),
            ("append", NoDefault),
        ],
    ),
    op("aten.clone.default", pass_through, &[]),
    op("aten.contiguous.default", pass_through, &[]),
    op("aten.alias.default", pass_through, &[]),
    op("aten.detach.default", pass_through, &[]),
    op("aten.detach_.default", pass_through, &[]),
    op("aten.lift_fresh_copy.default", pass_through, &[]),
    op("aten.dropout.default", pass_through, &[]),
    op("aten.dropout_.default", pass_through, &[]),
    op("aten.feature_dropout.default", pass_through, &[]),
];
