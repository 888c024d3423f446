//! Pooling: `MaxPool`, `AveragePool`, `GlobalAveragePool`, `GlobalMaxPool`.

use super::conv::{window, window_params, Window};
use super::{ConvertFn, Ctx, Emit, Node};
use crate::ir::ops::window::{axes, output_size, PadType};
use crate::ir::DType;
use crate::proto::onnx::tensor_proto::DataType;
use crate::Error;

/// Shared part of `MaxPool` and `AveragePool`; `extra` adds op-specific parameters.
fn pool(
    ctx: &mut Ctx,
    node: &Node,
    mil: &str,
    extra: Option<(&'static str, bool)>,
) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let rank = ctx.rank(&x)?;
    if !(3..=5).contains(&rank) {
        return Err(ctx.unsupported(format!(
            "only 1-D to 3-D pooling is supported, input has rank {rank}"
        )));
    }
    // Core ML pools floats only. 8- and 16-bit integers are exact in fp32 (and a maximum
    // of them stays one of them), so their max pool runs on fp32 and casts back.
    let integral = ctx.ty(&x)?.dtype == DType::I32;
    if integral {
        let narrow = [
            DataType::Int8,
            DataType::Uint8,
            DataType::Int16,
            DataType::Uint16,
        ];
        if mil != "max_pool" || !narrow.iter().any(|&t| ctx.elem_type(node, 0) == Some(t)) {
            return Err(ctx.unsupported(
                "integer pooling is supported for max pooling of 8- and 16-bit integers only",
            ));
        }
    }
    let (x, pooled) = if integral {
        let x = ctx.cast(&x, DType::F32, &format!("{out}_float"))?;
        (x, format!("{out}_pooled"))
    } else {
        (x, out.clone())
    };
    let spatial = rank - 2;
    let kernel = ctx
        .attr(node.ints("kernel_shape"))?
        .ok_or_else(|| ctx.invalid("attribute 'kernel_shape' is missing"))?;
    if kernel.len() != spatial || kernel.iter().any(|&k| k < 1) {
        return Err(ctx.invalid(format!(
            "kernel_shape {kernel:?} does not fit {spatial} spatial dimensions"
        )));
    }
    if let Some(d) = ctx.attr(node.ints("dilations"))? {
        if d.iter().any(|&v| v != 1) {
            return Err(ctx.unsupported(format!(
                "dilations {d:?} are not supported (Core ML pooling has none)"
            )));
        }
    }
    let win = window(ctx, node, spatial)?;
    let ceil_mode = ctx.attr(node.int_or("ceil_mode", 0))? != 0;
    let ceil_mode = ceil_mode && mil_ceil_mode(ctx, &x, &kernel, &win)?;
    let mut params = vec![
        ("x", x),
        (
            "kernel_sizes",
            ctx.ints(&format!("{out}_kernel_sizes"), &kernel),
        ),
    ];
    params.extend(window_params(ctx, &out, &win));
    if let Some((name, value)) = extra {
        params.push((name, ctx.boolean(&format!("{out}_{name}"), value)));
    }
    params.push((
        "ceil_mode",
        ctx.boolean(&format!("{out}_ceil_mode"), ceil_mode),
    ));
    let refs: Vec<(&str, &str)> = params.iter().map(|(p, v)| (*p, v.as_str())).collect();
    let mut y = ctx.op1(mil, &pooled, &refs)?;
    if integral {
        y = ctx.cast(&y, DType::I32, &out)?;
    }
    ctx.set_output(node, 0, y);
    Ok(())
}

/// Whether Core ML needs `ceil_mode` to give the sizes ONNX's `ceil_mode` gives. ONNX drops a
/// last window that starts past the input and its begin padding on every axis, Core ML only on
/// padded axes: false when ONNX's sizes are the floor sizes, true when Core ML's ceil rule
/// agrees with ONNX's, unsupported otherwise. Symbolic sizes keep the flag.
fn mil_ceil_mode(ctx: &Ctx, x: &str, kernel: &[i64], win: &Window) -> Result<bool, Error> {
    let ty = ctx.ty(x)?;
    let spatial = &ty.shape[2..];
    let Some(sizes) = spatial
        .iter()
        .map(|d| d.fixed())
        .collect::<Option<Vec<_>>>()
    else {
        return Ok(true);
    };
    let pad = win.pad.clone().unwrap_or_else(|| vec![0; 2 * sizes.len()]);
    let axes = axes(
        sizes.len(),
        kernel,
        &win.strides,
        &vec![1; sizes.len()],
        &pad,
    )
    .map_err(|m| ctx.invalid(m))?;
    let pad_type = PadType::parse(win.pad_type).map_err(|m| ctx.invalid(m))?;
    let (mut floor_agrees, mut ceil_agrees) = (true, true);
    for (&input, axis) in sizes.iter().zip(axes) {
        let size = |ceil| output_size(input, axis, pad_type, ceil).map_err(|m| ctx.invalid(m));
        let (floor, (mil_ceil, pb, _)) = (size(false)?.0, size(true)?);
        let mut onnx = mil_ceil;
        if onnx > 1 && (onnx - 1) * axis.stride >= input + pb {
            onnx -= 1;
        }
        floor_agrees &= onnx == floor;
        ceil_agrees &= onnx == mil_ceil;
    }
    match (floor_agrees, ceil_agrees) {
        (true, _) => Ok(false),
        (false, true) => Ok(true),
        (false, false) => Err(ctx.unsupported(
            "ceil_mode gives sizes no Core ML pooling gives (a last window starts in the end padding on one axis and not on another)",
        )),
    }
}

/// `MaxPool`; the `Indices` output and `storage_order` are unsupported.
fn max_pool(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    ctx.require_unused_outputs(node, 1, "Indices")?;
    pool(ctx, node, "max_pool", None)
}

/// `AveragePool`: `count_include_pad` (default 0) is the negation of MIL
/// `exclude_padding_from_average`.
fn avg_pool(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let include_pad = ctx.attr(node.int_or("count_include_pad", 0))? != 0;
    pool(
        ctx,
        node,
        "avg_pool",
        Some(("exclude_padding_from_average", !include_pad)),
    )
}

/// A global pool: the MIL reduction over every spatial axis, keeping dimensions.
fn global(ctx: &mut Ctx, node: &Node, mil: &str) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let rank = ctx.rank(&x)?;
    if rank < 3 {
        return Err(ctx.invalid(format!("input must have rank 3 or more, has {rank}")));
    }
    let axes: Vec<i64> = (2..rank as i64).collect();
    let axes = ctx.ints(&format!("{out}_axes"), &axes);
    let keep = ctx.boolean(&format!("{out}_keep_dims"), true);
    let y = ctx.op1(
        mil,
        &out,
        &[("x", &x), ("axes", &axes), ("keep_dims", &keep)],
    )?;
    ctx.set_output(node, 0, y);
    Ok(())
}

fn global_avg_pool(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    global(ctx, node, "reduce_mean")
}

fn global_max_pool(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    global(ctx, node, "reduce_max")
}

/// This family's converters.
pub const CONVERTERS: &[(&str, ConvertFn)] = &[
    ("AveragePool", avg_pool),
    ("GlobalAveragePool", global_avg_pool),
    ("GlobalMaxPool", global_max_pool),
    ("MaxPool", max_pool),
];
