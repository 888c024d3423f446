//! Indexed reads and writes: `GatherElements`, `GatherND`, `ScatterElements`, `ScatterND`.
//! Constant indices are made non-negative against the dimension they index.

use super::{axis, ConvertFn, Ctx, Node};
use crate::ir::Tensor;
use crate::Error;

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
    let idx = indices(ctx, node, 1, &format!("{out}_indices"), &|_| shape[a])?;
    let axis_c = ctx.int(&format!("{out}_axis"), a as i64);
    let y = ctx.op1(
        "gather_along_axis",
        &out,
        &[("x", &x), ("indices", &idx), ("axis", &axis_c)],
    )?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `GatherND(data, indices)` with `batch_dims=0` → `gather_nd`.
fn gather_nd(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    if ctx.attr(node.int_or("batch_dims", 0))? != 0 {
        return Err(ctx.unsupported("batch_dims other than 0 is not supported"));
    }
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let shape = ctx.shape(&x)?;
    let depth = ctx
        .try_const_input(node, 1)?
        .and_then(|t| t.shape().last().copied())
        .unwrap_or(1)
        .max(1);
    let idx = indices(ctx, node, 1, &format!("{out}_indices"), &|pos| {
        shape.get(pos % depth).copied().unwrap_or(0)
    })?;
    let y = ctx.op1("gather_nd", &out, &[("x", &x), ("indices", &idx)])?;
    ctx.set_output(node, 0, y);
    Ok(())
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
    let idx = indices(ctx, node, 1, &format!("{out}_indices"), &|_| shape[a])?;
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
    let depth = ctx
        .try_const_input(node, 1)?
        .and_then(|t| t.shape().last().copied())
        .unwrap_or(1)
        .max(1);
    let idx = indices(ctx, node, 1, &format!("{out}_indices"), &|pos| {
        shape.get(pos % depth).copied().unwrap_or(0)
    })?;
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

/// This family's converters.
pub const CONVERTERS: &[(&str, ConvertFn)] = &[
    ("GatherElements", gather_elements),
    ("GatherND", gather_nd),
    ("ScatterElements", scatter_elements),
    ("ScatterND", scatter_nd),
];
