//! Indexed reads and writes: `GatherElements`, `GatherND`, `ScatterElements` (and its
//! deprecated alias `Scatter`), `ScatterND`, and `ReverseSequence` and `Compress` as gathers.
//! Constant indices are made non-negative against the dimension they index; run-time indices
//! are wrapped (`mod` by that dimension), since Core ML leaves negative indices undefined.

use super::shape::broadcast_to;
use super::{axis, ConvertFn, Ctx, Emit, Node};
use crate::ir::{DType, Dim, Tensor};
use crate::Error;

/// The size of axis `a` of `x`: a constant when it is fixed, else read from `shape(x)`.
fn axis_size(ctx: &mut Ctx, x: &str, a: usize, hint: &str) -> Result<String, Error> {
    match ctx.ty(x)?.shape[a] {
        Dim::Fixed(n) => Ok(ctx.int(hint, n as i64)),
        Dim::Symbol(_) => {
            let shape = ctx.op1("shape", &format!("{hint}_shape"), &[("x", x)])?;
            let at = ctx.int(&format!("{hint}_at"), a as i64);
            let zero = ctx.int(&format!("{hint}_axis"), 0);
            ctx.op1(
                "gather",
                hint,
                &[("x", &shape), ("indices", &at), ("axis", &zero)],
            )
        }
    }
}

/// Run-time `indices` into axes of sizes `sizes` (a scalar, or a vector matching the indices'
/// last axis) made non-negative: `mod(indices, sizes)`, floor-rounded, so `-1` becomes
/// `size - 1` and valid non-negative indices are unchanged.
pub fn wrap_indices(
    ctx: &mut Ctx,
    indices: &str,
    sizes: &str,
    hint: &str,
) -> Result<String, Error> {
    ctx.op1("mod", hint, &[("x", indices), ("y", sizes)])
}

/// Run-time `indices` of `node` into axis `a` of `x`, wrapped by [`wrap_indices`].
pub fn wrap_axis_indices(
    ctx: &mut Ctx,
    indices: &str,
    x: &str,
    a: usize,
    hint: &str,
) -> Result<String, Error> {
    let size = axis_size(ctx, x, a, &format!("{hint}_size"))?;
    wrap_indices(ctx, indices, &size, hint)
}

/// The indices of input `i`: a constant with negative entries resolved by `dim_of(position)`
/// (the size of the dimension that entry indexes), or the run-time variable as is.
fn indices(
    ctx: &mut Ctx,
    node: &Node,
    i: usize,
    hint: &str,
    dim_of: &dyn Fn(usize) -> usize,
) -> Result<String, Error> {
    let Some(t) = ctx.try_const_input(node, i)? else {
        return ctx.input(node, i);
    };
    let mut values = t.to_i64_vec();
    for (pos, v) in values.iter_mut().enumerate() {
        let dim = dim_of(pos) as i64;
        if *v < -dim || *v >= dim {
            return Err(ctx.invalid(format!(
                "index {v} is out of range for a dimension of size {dim}"
            )));
        }
        if *v < 0 {
            *v += dim;
        }
    }
    let values: Vec<i32> = values.iter().map(|&v| v as i32).collect();
    Ok(ctx.constant(hint, Tensor::from_i32(t.shape(), &values)))
}

/// `GatherElements(data, indices, axis)` → `gather_along_axis`.
fn gather_elements(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let shape = ctx.shape(&x)?;
    let a = axis(ctx, ctx.attr(node.int_or("axis", 0))?, shape.len())?;
    let mut idx = indices(ctx, node, 1, &format!("{out}_indices"), &|_| shape[a])?;
    if ctx.const_value(&idx).is_none() {
        idx = wrap_axis_indices(ctx, &idx, &x, a, &format!("{out}_wrapped"))?;
    }
    let axis_c = ctx.int(&format!("{out}_axis"), a as i64);
    let y = ctx.op1(
        "gather_along_axis",
        &out,
        &[("x", &x), ("indices", &idx), ("axis", &axis_c)],
    )?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// The index tuples of a GatherND/ScatterND `node` (its input 1) into data of `shape`, with
/// negative indices wrapped.
fn nd_indices(ctx: &mut Ctx, node: &Node, shape: &[usize], out: &str) -> Result<String, Error> {
    let depth = ctx
        .try_const_input(node, 1)?
        .and_then(|t| t.shape().last().copied())
        .unwrap_or(1)
        .max(1);
    let idx = indices(ctx, node, 1, &format!("{out}_indices"), &|pos| {
        shape.get(pos % depth).copied().unwrap_or(0)
    })?;
    wrap_nd_indices(ctx, &idx, shape, out)
}

/// `GatherND(data, indices)` with `batch_dims=0` → `gather_nd`.
fn gather_nd(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    if ctx.attr(node.int_or("batch_dims", 0))? != 0 {
        return Err(ctx.unsupported("batch_dims other than 0 is not supported"));
    }
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let shape = ctx.shape(&x)?;
    let idx = nd_indices(ctx, node, &shape, &out)?;
    // Core ML's gather_nd takes no bool data: gather a mask as int32 and cast back.
    let y = if ctx.ty(&x)?.dtype == crate::ir::DType::Bool {
        let ints = ctx.cast(&x, crate::ir::DType::I32, &format!("{out}_int"))?;
        let gathered = ctx.op1(
            "gather_nd",
            &format!("{out}_ints"),
            &[("x", &ints), ("indices", &idx)],
        )?;
        ctx.cast(&gathered, crate::ir::DType::Bool, &out)?
    } else {
        ctx.op1("gather_nd", &out, &[("x", &x), ("indices", &idx)])?
    };
    ctx.set_output(node, 0, y);
    Ok(())
}

/// Run-time N-D `indices` (the last axis indexes the leading axes of a tensor of static
/// `shape`) wrapped by [`wrap_indices`] with the sizes of those axes; constants as they are.
fn wrap_nd_indices(
    ctx: &mut Ctx,
    indices: &str,
    shape: &[usize],
    out: &str,
) -> Result<String, Error> {
    if ctx.const_value(indices).is_some() {
        return Ok(indices.to_string());
    }
    let depth = match ctx.ty(indices)?.shape.last() {
        Some(Dim::Fixed(d)) if *d <= shape.len() => *d,
        _ => {
            return Err(ctx.unsupported(
                "run-time indices need a static last dimension no larger than the data's rank",
            ))
        }
    };
    let sizes: Vec<i64> = shape[..depth].iter().map(|&s| s as i64).collect();
    let sizes = ctx.ints(&format!("{out}_sizes"), &sizes);
    wrap_indices(ctx, indices, &sizes, &format!("{out}_wrapped"))
}

/// The MIL scatter `mode` for an ONNX `reduction`.
fn scatter_mode(ctx: &Ctx, node: &Node) -> Result<&'static str, Error> {
    match ctx
        .attr(node.string("reduction"))?
        .as_deref()
        .unwrap_or("none")
    {
        "none" => Ok("update"),
        "add" => Ok("add"),
        "mul" => Ok("mul"),
        "max" => Ok("max"),
        "min" => Ok("min"),
        other => Err(ctx.unsupported(format!("reduction '{other}' is not supported"))),
    }
}

/// `ScatterElements(data, indices, updates, axis, reduction)` → `scatter_along_axis`.
fn scatter_elements(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let mode = scatter_mode(ctx, node)?;
    let data = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let shape = ctx.shape(&data)?;
    let a = axis(ctx, ctx.attr(node.int_or("axis", 0))?, shape.len())?;
    let mut idx = indices(ctx, node, 1, &format!("{out}_indices"), &|_| shape[a])?;
    if ctx.const_value(&idx).is_none() {
        idx = wrap_axis_indices(ctx, &idx, &data, a, &format!("{out}_wrapped"))?;
    }
    let updates = ctx.input(node, 2)?;
    let axis_c = ctx.int(&format!("{out}_axis"), a as i64);
    let mode_c = ctx.string(&format!("{out}_mode"), mode);
    let params = [
        ("data", &data),
        ("indices", &idx),
        ("updates", &updates),
        ("axis", &axis_c),
        ("mode", &mode_c),
    ];
    let refs: Vec<(&str, &str)> = params.iter().map(|(p, v)| (*p, v.as_str())).collect();
    let y = ctx.op1("scatter_along_axis", &out, &refs)?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `ScatterND(data, indices, updates, reduction)` → `scatter_nd`.
fn scatter_nd(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let mode = scatter_mode(ctx, node)?;
    let data = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let shape = ctx.shape(&data)?;
    let idx = nd_indices(ctx, node, &shape, &out)?;
    let updates = ctx.input(node, 2)?;
    let mode_c = ctx.string(&format!("{out}_mode"), mode);
    let params = [
        ("data", &data),
        ("indices", &idx),
        ("updates", &updates),
        ("mode", &mode_c),
    ];
    let refs: Vec<(&str, &str)> = params.iter().map(|(p, v)| (*p, v.as_str())).collect();
    let y = ctx.op1("scatter_nd", &out, &refs)?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `ReverseSequence(x, sequence_lens, batch_axis = 1, time_axis = 0)`: for batch entry `b`,
/// the first `sequence_lens[b]` steps along the time axis reversed and the rest kept. A
/// `gather_along_axis` on the time axis with index `len − 1 − t` where `t < len`, else `t`;
/// the lengths may be computed at run time (they are clamped to `[0, T]`, so no index leaves
/// the axis). Needs a static shape.
fn reverse_sequence(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let shape = ctx.shape(&x)?;
    let rank = shape.len();
    let b = axis(ctx, ctx.attr(node.int_or("batch_axis", 1))?, rank)?;
    let t = axis(ctx, ctx.attr(node.int_or("time_axis", 0))?, rank)?;
    if b == t || b > 1 || t > 1 {
        return Err(ctx.invalid(format!(
            "batch_axis {b} and time_axis {t} must be 0 and 1 in some order"
        )));
    }
    let lens = ctx.input(node, 1)?;
    let lens = ctx.coerce(&lens, DType::I32, &format!("{out}_lens_int"))?;
    let mut lens_shape = vec![1i64; rank];
    lens_shape[b] = shape[b] as i64;
    let lens_shape = ctx.ints(&format!("{out}_lens_shape"), &lens_shape);
    let lens = ctx.op1(
        "reshape",
        &format!("{out}_lens"),
        &[("x", &lens), ("shape", &lens_shape)],
    )?;
    let steps = shape[t] as i64;
    let (zero, top) = (
        ctx.int(&format!("{out}_zero"), 0),
        ctx.int(&format!("{out}_steps"), steps),
    );
    let lens = ctx.op1(
        "maximum",
        &format!("{out}_lens_low"),
        &[("x", &lens), ("y", &zero)],
    )?;
    let lens = ctx.op1(
        "minimum",
        &format!("{out}_lens_clamped"),
        &[("x", &lens), ("y", &top)],
    )?;
    let mut time_shape = vec![1; rank];
    time_shape[t] = shape[t];
    let positions: Vec<i32> = (0..steps as i32).collect();
    let positions = ctx.constant(
        &format!("{out}_positions"),
        Tensor::from_i32(&time_shape, &positions),
    );
    let within = ctx.op1(
        "less",
        &format!("{out}_within"),
        &[("x", &positions), ("y", &lens)],
    )?;
    let one = ctx.int(&format!("{out}_one"), 1);
    let last = ctx.op1("sub", &format!("{out}_last"), &[("x", &lens), ("y", &one)])?;
    let reversed = ctx.op1(
        "sub",
        &format!("{out}_reversed"),
        &[("x", &last), ("y", &positions)],
    )?;
    let index = ctx.op1(
        "select",
        &format!("{out}_index"),
        &[("cond", &within), ("a", &reversed), ("b", &positions)],
    )?;
    let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    let index = broadcast_to(ctx, &index, &dims, &format!("{out}_indices"))?;
    let axis_c = ctx.int(&format!("{out}_axis"), t as i64);
    let y = ctx.op1(
        "gather_along_axis",
        &out,
        &[("x", &x), ("indices", &index), ("axis", &axis_c)],
    )?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `Compress(x, condition, axis)`: the slices along `axis` (of `x` flattened, without one)
/// whose `condition` entry is true, as a `gather` of their positions. The condition must be
/// constant (Core ML's output shapes are fixed when the model is compiled); one selecting
/// nothing is unsupported, since Core ML has no empty tensors.
fn compress(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let mut x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let condition = ctx
        .const_input(node, 1)?
        .ok_or_else(|| ctx.invalid("input 'condition' is missing"))?;
    let a = match ctx.attr(node.int("axis"))? {
        Some(a) => axis(ctx, a, ctx.rank(&x)?)?,
        None => {
            let flat = ctx.ints(&format!("{out}_flat_shape"), &[-1]);
            x = ctx.op1(
                "reshape",
                &format!("{out}_flat"),
                &[("x", &x), ("shape", &flat)],
            )?;
            0
        }
    };
    let size = ctx.shape(&x)?[a];
    let keep: Vec<i64> = condition
        .to_i64_vec()
        .iter()
        .enumerate()
        .filter(|(_, &c)| c != 0)
        .map(|(i, _)| i as i64)
        .collect();
    if condition.len() > size {
        return Err(ctx.invalid(format!(
            "condition has {} entries, more than the {size} along the axis",
            condition.len()
        )));
    }
    if keep.is_empty() {
        return Err(
            ctx.unsupported("the condition selects nothing, and Core ML has no empty tensors")
        );
    }
    let indices = ctx.ints(&format!("{out}_indices"), &keep);
    let axis_c = ctx.int(&format!("{out}_axis"), a as i64);
    let y = ctx.op1(
        "gather",
        &out,
        &[("x", &x), ("indices", &indices), ("axis", &axis_c)],
    )?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// This family's converters.
pub const CONVERTERS: &[(&str, ConvertFn)] = &[
    ("Compress", compress),
    ("GatherElements", gather_elements),
    ("GatherND", gather_nd),
    ("ReverseSequence", reverse_sequence),
    ("Scatter", scatter_elements),
    ("ScatterElements", scatter_elements),
    ("ScatterND", scatter_nd),
];
