//! Tensor manipulation: `Reshape`, `Flatten`, `Transpose`, `Concat`, `Squeeze`,
//! `Unsqueeze`, `Shape`, `Gather`, `Expand`, `Tile`, `Split`, `Pad`,
//! `DepthToSpace`, `SpaceToDepth`, `Size`.

use super::gather_scatter::wrap_axis_indices;
use super::{axes, axis, ints_attr_or_input, ConvertFn, Ctx, Emit, Node};
use crate::ir::{Dim, SymInt, Tensor, TensorType};
use crate::Error;

/// Emits `reshape(x, shape)` to a concrete shape, named `hint`.
fn reshape_to(ctx: &mut Ctx, x: &str, shape: &[usize], hint: &str) -> Result<String, Error> {
    let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    let shape_c = ctx.ints(&format!("{hint}_shape"), &dims);
    ctx.op1("reshape", hint, &[("x", x), ("shape", &shape_c)])
}

/// The concrete shape ONNX `Reshape` produces: `0` copies the input dimension (unless
/// `allowzero`), one `-1` is inferred from the element count.
pub fn reshape_target(
    input: &[usize],
    requested: &[i64],
    allow_zero: bool,
) -> Result<Vec<usize>, String> {
    let total: usize = input.iter().product();
    let mut out = Vec::with_capacity(requested.len());
    let mut infer_at = None;
    for (i, &d) in requested.iter().enumerate() {
        match d {
            -1 if infer_at.is_none() => {
                infer_at = Some(i);
                out.push(1);
            }
            -1 => return Err(format!("shape {requested:?} has more than one -1")),
            0 if !allow_zero => out.push(*input.get(i).ok_or_else(|| {
                format!("shape {requested:?}: 0 at {i} has no input dimension to copy")
            })?),
            d if d >= 0 => out.push(d as usize),
            d => return Err(format!("shape {requested:?} has invalid dimension {d}")),
        }
    }
    let known = out
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("shape {requested:?} is too large"))?;
    if let Some(i) = infer_at {
        if known == 0 || total % known != 0 {
            return Err(format!(
                "cannot infer -1 in {requested:?} for {total} elements"
            ));
        }
        out[i] = total / known;
    } else if known != total {
        return Err(format!(
            "shape {requested:?} does not hold {total} elements of input {input:?}"
        ));
    }
    Ok(out)
}

/// `Reshape(data, shape)`: the shape must be constant after folding, or a shape vector whose
/// unknown entries are input dimensions (Shape → Gather → Concat on a symbolic dimension). A
/// static result gets the concrete shape; a symbolic one a constant shape with its one unknown
/// entry as -1, or the run-time shape vector when more than one entry is unknown.
fn reshape(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let allow_zero = ctx.attr(node.int_or("allowzero", 0))? != 0;
    let (requested, runtime) = match ctx.try_const_input(node, 1)? {
        Some(t) => (
            t.to_i64_vec().into_iter().map(SymInt::Known).collect(),
            None,
        ),
        None => {
            let v = ctx.input(node, 1)?;
            let elems = ctx
                .e
                .b
                .symbolic_value(&v)
                .map(<[_]>::to_vec)
                .ok_or_else(|| {
                    ctx.needs_constant(
                        node,
                        1,
                        " (or computed from input dimensions only, which --dim fixes)",
                    )
                })?;
            (elems, Some(v))
        }
    };
    let in_ty = ctx.ty(&x)?;
    let known: Option<Vec<i64>> = requested
        .iter()
        .map(|e| match e {
            SymInt::Known(n) => Some(*n),
            SymInt::Dim(_) => None,
        })
        .collect();
    if let (Some(input), Some(requested)) = (in_ty.static_shape(), &known) {
        if input.contains(&0) {
            return Err(ctx.unsupported(format!(
                "input '{x}' of type {in_ty} has no elements (Core ML has no empty tensors)"
            )));
        }
        let shape = reshape_target(&input, requested, allow_zero).map_err(|m| ctx.invalid(m))?;
        let y = reshape_to(ctx, &x, &shape, &ctx.out_name(node, 0))?;
        ctx.set_output(node, 0, y);
        return Ok(());
    }
    let out = ctx.out_name(node, 0);
    let dims =
        symbolic_target(&in_ty.shape, &requested, allow_zero, &out).map_err(|m| ctx.invalid(m))?;
    let unknown = dims.iter().filter(|d| d.fixed().is_none()).count();
    let y = match (unknown, runtime) {
        (0 | 1, _) => {
            let shape: Vec<i64> = dims.iter().map(|d| d.fixed().map_or(-1, |n| n as i64)).collect();
            let shape_c = ctx.ints(&format!("{out}_shape"), &shape);
            ctx.op1("reshape", &out, &[("x", &x), ("shape", &shape_c)])?
        }
        (_, Some(v)) => ctx.op1("reshape", &out, &[("x", &x), ("shape", &v)])?,
        (_, None) => {
            return Err(ctx.unsupported(format!(
                "reshape of {} to {requested:?} leaves more than one dimension unknown; fix the dynamic dimensions with --dim",
                in_ty
            )))
        }
    };
    ctx.e.b.refine_type(
        &y,
        TensorType {
            dtype: in_ty.dtype,
            shape: dims,
        },
    );
    ctx.set_output(node, 0, y);
    Ok(())
}

/// The dims ONNX `Reshape` gives `input` for a target whose entries may be symbolic: `0` copies
/// the input dimension (unless `allow_zero`), a `-1` is fixed when the input's symbols all
/// reappear in the target, the input's only symbol when the fixed sizes agree, or a new
/// symbol named after `out` otherwise.
fn symbolic_target(
    input: &[Dim],
    requested: &[SymInt],
    allow_zero: bool,
    out: &str,
) -> Result<Vec<Dim>, String> {
    let mut dims = Vec::with_capacity(requested.len());
    let mut infer_at = None;
    for (i, e) in requested.iter().enumerate() {
        dims.push(match e {
            SymInt::Dim(s) => Dim::Symbol(s.clone()),
            SymInt::Known(-1) if infer_at.is_none() => {
                infer_at = Some(i);
                Dim::Fixed(1)
            }
            SymInt::Known(0) if !allow_zero => input.get(i).cloned().ok_or_else(|| {
                format!("shape {requested:?}: 0 at {i} has no input dimension to copy")
            })?,
            SymInt::Known(n) if *n > 0 => Dim::Fixed(*n as usize),
            SymInt::Known(n) => {
                return Err(format!("shape {requested:?} has invalid dimension {n}"))
            }
        });
    }
    let Some(i) = infer_at else {
        return Ok(dims);
    };
    let split = |ds: &[Dim]| {
        let fixed: usize = ds.iter().filter_map(Dim::fixed).product();
        let mut symbols: Vec<String> = ds
            .iter()
            .filter(|d| d.fixed().is_none())
            .map(Dim::to_string)
            .collect();
        symbols.sort();
        (fixed, symbols)
    };
    let (fixed_in, symbols_in) = split(input);
    let (fixed_out, symbols_out) = split(&dims);
    dims[i] = if symbols_in == symbols_out && fixed_out > 0 && fixed_in % fixed_out == 0 {
        Dim::Fixed(fixed_in / fixed_out)
    } else if symbols_in.len() == 1 && symbols_out.is_empty() && fixed_in == fixed_out {
        Dim::Symbol(symbols_in[0].clone())
    } else {
        Dim::Symbol(format!("{out}_d{i}"))
    };
    Ok(dims)
}

/// `Flatten(axis=1)` → reshape to `[prod(d[..axis]), prod(d[axis..])]`.
fn flatten(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let shape = ctx.shape(&x)?;
    let a = ctx.attr(node.int_or("axis", 1))?;
    let a = if a == shape.len() as i64 {
        shape.len()
    } else {
        axis(ctx, a, shape.len())?
    };
    let target = [shape[..a].iter().product(), shape[a..].iter().product()];
    let y = reshape_to(ctx, &x, &target, &ctx.out_name(node, 0))?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `Transpose(perm)`; without `perm` the dimensions are reversed.
fn transpose(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let rank = ctx.rank(&x)?;
    let perm = ctx
        .attr(node.ints("perm"))?
        .unwrap_or_else(|| (0..rank as i64).rev().collect());
    let perm_c = ctx.ints(&format!("{out}_perm"), &perm);
    let y = ctx.op1("transpose", &out, &[("x", &x), ("perm", &perm_c)])?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `Concat(axis)`; empty inputs (a zero-sized dimension) are dropped, and when every input is
/// empty the result is an empty constant.
fn concat(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let out = ctx.out_name(node, 0);
    let mut values = Vec::with_capacity(node.num_inputs());
    for i in 0..node.num_inputs() {
        let v = ctx.input(node, i)?;
        if ctx.ty(&v)?.shape.iter().any(|d| d.fixed() == Some(0)) {
            continue;
        }
        values.push(v);
    }
    let rank = match values.first() {
        Some(v) => ctx.rank(v)?,
        None => return concat_empty(ctx, node),
    };
    let a = axis(
        ctx,
        ctx.attr(node.int("axis"))?
            .ok_or_else(|| ctx.invalid("attribute 'axis' is missing"))?,
        rank,
    )?;
    let y = if values.len() == 1 {
        values.remove(0)
    } else {
        let axis_c = ctx.int(&format!("{out}_axis"), a as i64);
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let mut outs = ctx.op_lists(
            "concat",
            &out,
            &[("values", refs), ("axis", vec![axis_c.as_str()])],
        )?;
        outs.remove(0)
    };
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `Concat` of inputs that all have no elements: an empty constant of the joined shape.
fn concat_empty(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let first = ctx.input(node, 0)?;
    let (dtype, mut shape) = (ctx.ty(&first)?.dtype, ctx.shape(&first)?);
    let a = axis(
        ctx,
        ctx.attr(node.int("axis"))?
            .ok_or_else(|| ctx.invalid("attribute 'axis' is missing"))?,
        shape.len(),
    )?;
    for i in 1..node.num_inputs() {
        let v = ctx.input(node, i)?;
        shape[a] += ctx.shape(&v)?.get(a).copied().unwrap_or(0);
    }
    let y = ctx.empty(&ctx.out_name(node, 0), dtype, &shape)?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `Squeeze`: axes from the attribute (before 13) or the input (from 13); none → every
/// dimension of size 1.
fn squeeze(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let shape = ctx.shape(&x)?;
    let listed = ints_attr_or_input(ctx, node, "axes", 1, 13)?;
    let mut squeezed: Vec<usize> = match listed {
        Some(a) => axes(ctx, &a, shape.len())?,
        None => (0..shape.len()).filter(|&i| shape[i] == 1).collect(),
    };
    squeezed.sort_unstable();
    if let Some(&bad) = squeezed.iter().find(|&&a| shape[a] != 1) {
        return Err(ctx.invalid(format!(
            "cannot squeeze axis {bad} of size {} (shape {shape:?})",
            shape[bad]
        )));
    }
    let y = if squeezed.is_empty() {
        x
    } else {
        let axes_c = ctx.ints(
            &format!("{out}_axes"),
            &squeezed.iter().map(|&a| a as i64).collect::<Vec<_>>(),
        );
        ctx.op1("squeeze", &out, &[("x", &x), ("axes", &axes_c)])?
    };
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `Unsqueeze` → `expand_dims`; axes (attribute before 13, input from 13) refer to the
/// output's rank.
fn unsqueeze(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let rank = ctx.rank(&x)?;
    let listed = ints_attr_or_input(ctx, node, "axes", 1, 13)?
        .ok_or_else(|| ctx.invalid("axes are missing"))?;
    let mut inserted = axes(ctx, &listed, rank + listed.len())?;
    inserted.sort_unstable();
    let axes_c = ctx.ints(
        &format!("{out}_axes"),
        &inserted.iter().map(|&a| a as i64).collect::<Vec<_>>(),
    );
    let y = ctx.op1("expand_dims", &out, &[("x", &x), ("axes", &axes_c)])?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// Clamps an ONNX `Shape` start/end (opset 15) to `[0, rank]`.
fn clamp_index(i: i64, rank: usize) -> usize {
    let r = rank as i64;
    (if i < 0 { i + r } else { i }).clamp(0, r) as usize
}

/// `Shape(start, end)`: a constant when the shape is static, the `shape` op otherwise.
fn shape(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let ty = ctx.ty(&x)?;
    let rank = ty.rank();
    let start = clamp_index(ctx.attr(node.int_or("start", 0))?, rank);
    let end = clamp_index(ctx.attr(node.int_or("end", rank as i64))?, rank).max(start);
    let y = match ty.static_shape() {
        Some(dims) => {
            let dims: Vec<i64> = dims[start..end].iter().map(|&d| d as i64).collect();
            ctx.ints(&out, &dims)
        }
        None if start == 0 && end == rank => ctx.op1("shape", &out, &[("x", &x)])?,
        None => {
            let full = ctx.op1("shape", &format!("{out}_full"), &[("x", &x)])?;
            let begin = ctx.ints(&format!("{out}_begin"), &[start as i64]);
            let end = ctx.ints(&format!("{out}_end"), &[end as i64]);
            ctx.op1(
                "slice_by_index",
                &out,
                &[("x", &full), ("begin", &begin), ("end", &end)],
            )?
        }
    };
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `Gather(axis)` → `gather`; constant negative indices are made non-negative.
fn gather(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let ty = ctx.ty(&x)?;
    let a = axis(ctx, ctx.attr(node.int_or("axis", 0))?, ty.rank())?;
    let indices = match (ctx.try_const_input(node, 1)?, ty.shape[a].fixed()) {
        (Some(t), Some(dim)) => {
            let mut v = t.to_i64_vec();
            for i in &mut v {
                if *i < -(dim as i64) || *i >= dim as i64 {
                    return Err(ctx.invalid(format!(
                        "index {i} is out of range for axis {a} of size {dim}"
                    )));
                }
                if *i < 0 {
                    *i += dim as i64;
                }
            }
            let values: Vec<i32> = v.iter().map(|&i| i as i32).collect();
            ctx.constant(
                &format!("{out}_indices"),
                Tensor::from_i32(t.shape(), &values),
            )
        }
        (Some(_), None) => ctx.input(node, 1)?,
        (None, _) => {
            let runtime = ctx.input(node, 1)?;
            wrap_axis_indices(ctx, &runtime, &x, a, &format!("{out}_wrapped"))?
        }
    };
    let axis_c = ctx.int(&format!("{out}_axis"), a as i64);
    let y = ctx.op1(
        "gather",
        &out,
        &[("x", &x), ("indices", &indices), ("axis", &axis_c)],
    )?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `Expand(input, shape)`: NumPy broadcast to `shape` (see [`broadcast_to`]).
fn expand(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let requested = ctx
        .const_input(node, 1)?
        .ok_or_else(|| ctx.invalid("input 'shape' is missing"))?
        .to_i64_vec();
    let y = broadcast_to(ctx, &x, &requested, &out)?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `x` broadcast NumPy-style to `requested` (dims of 1 in `requested` keep `x`'s size): a
/// reshape to the output rank followed by `tile`, both folded when `x` is constant; the last
/// op is named `out`.
pub(super) fn broadcast_to(
    ctx: &mut Ctx,
    x: &str,
    requested: &[i64],
    out: &str,
) -> Result<String, Error> {
    let in_shape = ctx.shape(x)?;
    let rank = in_shape.len().max(requested.len());
    let padded: Vec<usize> = std::iter::repeat_n(1, rank - in_shape.len())
        .chain(in_shape.iter().copied())
        .collect();
    let req: Vec<i64> = std::iter::repeat_n(1, rank - requested.len())
        .chain(requested.iter().copied())
        .collect();
    let mut reps = Vec::with_capacity(rank);
    for (&have, &want) in padded.iter().zip(&req) {
        match (have, want) {
            (h, w) if w == 1 || w as usize == h => reps.push(1),
            (1, w) if w > 1 => reps.push(w),
            _ => {
                return Err(
                    ctx.invalid(format!("cannot expand shape {in_shape:?} to {requested:?}"))
                )
            }
        }
    }
    let mut y = x.to_string();
    if padded.len() != in_shape.len() {
        let hint = if reps.iter().all(|&r| r == 1) {
            out.to_string()
        } else {
            format!("{out}_ranked")
        };
        y = reshape_to(ctx, &y, &padded, &hint)?;
    }
    if reps.iter().any(|&r| r != 1) {
        let reps_c = ctx.ints(&format!("{out}_reps"), &reps);
        y = ctx.op1("tile", out, &[("x", &y), ("reps", &reps_c)])?;
    }
    Ok(y)
}

/// `Tile(input, repeats)` → `tile` with constant repeats.
fn tile(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let reps = ctx
        .const_input(node, 1)?
        .ok_or_else(|| ctx.invalid("input 'repeats' is missing"))?
        .to_i64_vec();
    let reps_c = ctx.ints(&format!("{out}_reps"), &reps);
    let y = ctx.op1("tile", &out, &[("x", &x), ("reps", &reps_c)])?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `Split`: sizes from the attribute (before 13) or the input (from 13), else equal parts
/// (from opset 18 `num_outputs` parts, the last one smaller if need be).
fn split(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let shape = ctx.shape(&x)?;
    let a = axis(ctx, ctx.attr(node.int_or("axis", 0))?, shape.len())?;
    let parts = node.proto.output.len();
    let sizes = match ints_attr_or_input(ctx, node, "split", 1, 13)? {
        Some(s) => s,
        None => {
            let n = ctx
                .attr(node.int("num_outputs"))?
                .map_or(parts, |n| n.max(1) as usize);
            let chunk = shape[a].div_ceil(n.max(1));
            (0..n)
                .map(|i| chunk.min(shape[a].saturating_sub(i * chunk)) as i64)
                .collect()
        }
    };
    if sizes.len() != parts
        || sizes.iter().sum::<i64>() != shape[a] as i64
        || sizes.iter().any(|&s| s < 0)
    {
        return Err(ctx.invalid(format!(
            "split sizes {sizes:?} do not divide axis {a} of size {} into {parts} parts",
            shape[a]
        )));
    }
    // Empty parts are empty constants (carried until a concat drops them); the rest split.
    let dtype = ctx.ty(&x)?.dtype;
    let mut kept = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        if size > 0 {
            kept.push(i);
            continue;
        }
        let mut empty_shape = shape.clone();
        empty_shape[a] = 0;
        let var = ctx.empty(&ctx.out_name(node, i), dtype, &empty_shape)?;
        ctx.set_output(node, i, var);
    }
    if let [only] = kept[..] {
        let var = ctx.op1("identity", &ctx.out_name(node, only), &[("x", &x)])?;
        ctx.set_output(node, only, var);
        return Ok(());
    }
    let kept_sizes: Vec<i64> = kept.iter().map(|&i| sizes[i]).collect();
    let sizes_c = ctx.ints(&format!("{out}_split_sizes"), &kept_sizes);
    let axis_c = ctx.int(&format!("{out}_axis"), a as i64);
    let outs = ctx.op(
        "split",
        &out,
        &[("x", &x), ("split_sizes", &sizes_c), ("axis", &axis_c)],
    )?;
    for (i, var) in kept.into_iter().zip(outs) {
        ctx.set_output(node, i, var);
    }
    Ok(())
}

/// MIL `pad` amounts ([begin, end] pairs) for per-axis `(begin, end)` padding: from the first
/// padded axis on, since MIL pads the trailing axes it is given. None when nothing is padded.
pub(super) fn trailing_pad(full: &[(i64, i64)]) -> Option<Vec<i64>> {
    let first = full.iter().position(|&(b, e)| b != 0 || e != 0)?;
    Some(full[first..].iter().flat_map(|&(b, e)| [b, e]).collect())
}

/// `Pad`: attributes before opset 11, inputs from it (`axes` from 18); modes constant,
/// reflect and edge (MIL `replicate`). Padding is given for the trailing axes that need it.
fn pad(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let rank = ctx.rank(&x)?;
    let mode = ctx
        .attr(node.string("mode"))?
        .unwrap_or_else(|| "constant".into());
    let mil_mode = match mode.as_str() {
        "constant" => "constant",
        "reflect" => "reflect",
        "edge" => "replicate",
        other => return Err(ctx.unsupported(format!("mode '{other}' is not supported"))),
    };
    let (pads, value, listed_axes) = if ctx.opset < 11 {
        let pads = ctx
            .attr(node.ints("pads"))?
            .ok_or_else(|| ctx.invalid("attribute 'pads' is missing"))?;
        (pads, ctx.attr(node.float_or("value", 0.0))?, None)
    } else {
        let pads = ctx
            .const_input(node, 1)?
            .ok_or_else(|| ctx.invalid("input 'pads' is missing"))?
            .to_i64_vec();
        let value = match ctx.const_input(node, 2)? {
            Some(t) => t
                .scalar_f64()
                .ok_or_else(|| ctx.invalid("constant_value must be a scalar"))?
                as f32,
            None => 0.0,
        };
        let listed_axes = ctx.const_input(node, 3)?.map(|t| t.to_i64_vec());
        (pads, value, listed_axes)
    };
    let padded_axes = match listed_axes {
        Some(a) => axes(ctx, &a, rank)?,
        None => (0..rank).collect(),
    };
    let n = padded_axes.len();
    if pads.len() != 2 * n {
        return Err(ctx.invalid(format!("pads {pads:?} should have {} entries", 2 * n)));
    }
    if pads.iter().any(|&p| p < 0) {
        return Err(ctx.unsupported(format!("negative pads {pads:?} are not supported")));
    }
    let mut full = vec![(0i64, 0i64); rank];
    for (k, &a) in padded_axes.iter().enumerate() {
        full[a] = (pads[k], pads[n + k]);
    }
    let Some(mil_pad) = trailing_pad(&full) else {
        ctx.set_output(node, 0, x);
        return Ok(());
    };
    let dtype = ctx.ty(&x)?.dtype;
    if mil_mode != "constant" && !dtype.is_float() {
        return Err(ctx.unsupported(format!(
            "mode '{mode}' on {dtype} data is not supported (Core ML pads integers only with a constant)"
        )));
    }
    let pad_c = ctx.ints(&format!("{out}_pad"), &mil_pad);
    let mode_c = ctx.string(&format!("{out}_mode"), mil_mode);
    let value_c = super::elementwise::scalar_like(
        ctx,
        &format!("{out}_constant_val"),
        ctx.ty(&x)?.dtype,
        value,
    );
    let y = ctx.op1(
        "pad",
        &out,
        &[
            ("x", &x),
            ("pad", &pad_c),
            ("mode", &mode_c),
            ("constant_val", &value_c),
        ],
    )?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `DepthToSpace` (DCR mode only, which is MIL's) and `SpaceToDepth`.
fn depth_space(ctx: &mut Ctx, node: &Node, mil: &str) -> Result<(), Error> {
    let mode = ctx
        .attr(node.string("mode"))?
        .unwrap_or_else(|| "DCR".into());
    if mode != "DCR" {
        return Err(ctx.unsupported(format!("mode '{mode}' is not supported (only DCR)")));
    }
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let block = ctx
        .attr(node.int("blocksize"))?
        .ok_or_else(|| ctx.invalid("attribute 'blocksize' is missing"))?;
    let block_c = ctx.int(&format!("{out}_block_size"), block);
    let y = ctx.op1(mil, &out, &[("x", &x), ("block_size", &block_c)])?;
    ctx.set_output(node, 0, y);
    Ok(())
}

fn depth_to_space(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    depth_space(ctx, node, "depth_to_space")
}

fn space_to_depth(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    depth_space(ctx, node, "space_to_depth")
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

/// This family's converters.
pub const CONVERTERS: &[(&str, ConvertFn)] = &[
    ("Concat", concat),
    ("DepthToSpace", depth_to_space),
    ("Expand", expand),
    ("Flatten", flatten),
    ("Gather", gather),
    ("Pad", pad),
    ("Reshape", reshape),
    ("Shape", shape),
    ("SpaceToDepth", space_to_depth),
    ("Split", split),
    ("Squeeze", squeeze),
    ("Tile", tile),
    ("Transpose", transpose),
    ("Unsqueeze", unsqueeze),
    ("Size", size),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_copies_zeros_and_infers_minus_one() {
        assert_eq!(
            reshape_target(&[2, 3, 4], &[0, -1], false).unwrap(),
            vec![2, 12]
        );
        assert_eq!(reshape_target(&[2, 3, 4], &[-1], false).unwrap(), vec![24]);
        assert!(reshape_target(&[2, 3, 4], &[5, -1], false).is_err());
        assert!(reshape_target(&[2, 3], &[-1, -1], false).is_err());
    }
}
