//! Pooling: `MaxPool`, `AveragePool`, `LpPool`, `GlobalAveragePool`, `GlobalMaxPool`, and
//! `MaxUnpool`.

use super::conv::{conv_grouped, window, window_params, Window};
use super::gather_scatter::wrap_indices;
use super::{ConvertFn, Ctx, Emit, Node};
use crate::ir::ops::window::{axes, output_size, PadType};
use crate::ir::{DType, Tensor};
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

/// `LpPool(p = 2)`: `(Σ |x|^p)^(1/p)` over each window. A depthwise `conv` with a kernel of
/// ones sums the powers (its zero padding adds nothing, as ONNX's does not), which also covers
/// `dilations`, unlike Core ML's pools; the channel count must be static. `ceil_mode=1` is
/// unsupported (convolutions have no ceil mode).
fn lp_pool(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let ty = ctx.ty(&x)?;
    let rank = ty.rank();
    if !(3..=5).contains(&rank) || !ty.dtype.is_float() {
        return Err(ctx.unsupported(format!(
            "only 1-D to 3-D pooling of floats is supported, input has type {ty}"
        )));
    }
    if ctx.attr(node.int_or("ceil_mode", 0))? != 0 {
        return Err(ctx.unsupported("ceil_mode=1 is not supported"));
    }
    let channels = ty.shape[1]
        .fixed()
        .ok_or_else(|| ctx.unsupported(format!("needs a static channel count, got {ty}")))?;
    let kernel = ctx
        .attr(node.ints("kernel_shape"))?
        .ok_or_else(|| ctx.invalid("attribute 'kernel_shape' is missing"))?;
    if kernel.len() != rank - 2 || kernel.iter().any(|&k| k < 1) {
        return Err(ctx.invalid(format!(
            "kernel_shape {kernel:?} does not fit {} spatial dimensions",
            rank - 2
        )));
    }
    let p = ctx.attr(node.int_or("p", 2))?;
    if p < 1 {
        return Err(ctx.invalid(format!("p must be positive, not {p}")));
    }
    let powered = if p == 2 {
        ctx.op1("square", &format!("{out}_powered"), &[("x", &x)])?
    } else {
        let abs = ctx.op1("abs", &format!("{out}_abs"), &[("x", &x)])?;
        if p == 1 {
            abs
        } else {
            let p_c = ctx.float(&format!("{out}_p"), p as f32);
            ctx.op1(
                "pow",
                &format!("{out}_powered"),
                &[("x", &abs), ("y", &p_c)],
            )?
        }
    };
    let mut weight_shape = vec![channels, 1];
    weight_shape.extend(kernel.iter().map(|&k| k as usize));
    let count = weight_shape.iter().product::<usize>();
    let ones = Tensor::from_f32(&weight_shape, &vec![1.0; count]);
    let weight = ctx.constant(&format!("{out}_ones"), ones);
    let sum_name = if p == 1 {
        out.clone()
    } else {
        format!("{out}_sum")
    };
    let sum = conv_grouped(
        ctx,
        node,
        &powered,
        &weight,
        None,
        channels as i64,
        &sum_name,
    )?;
    let y = match p {
        1 => sum,
        2 => ctx.op1("sqrt", &out, &[("x", &sum)])?,
        _ => {
            let inv = ctx.float(&format!("{out}_inverse_p"), 1.0 / p as f32);
            ctx.op1("pow", &out, &[("x", &sum), ("y", &inv)])?
        }
    };
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `MaxUnpool(X, I, output_shape?)`: the values of `X` scattered to the flat positions `I`
/// (as `MaxPool` writes its indices) of a zero tensor of the unpooled shape
/// `(in − 1)·stride − pads + kernel`. An `output_shape` (which must be constant) can only
/// repeat that shape: for a larger one, ONNX's reference and ONNX Runtime put the values in
/// different places. Run-time indices are wrapped into range like other scatters; duplicate
/// indices keep one of their values.
fn max_unpool(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let (x, indices) = (ctx.input(node, 0)?, ctx.input(node, 1)?);
    let out = ctx.out_name(node, 0);
    let shape = ctx.shape(&x)?;
    let rank = shape.len();
    if !(3..=5).contains(&rank) || !ctx.ty(&x)?.dtype.is_float() {
        return Err(ctx.unsupported(format!(
            "only 1-D to 3-D unpooling of floats is supported, input has shape {shape:?}"
        )));
    }
    let spatial = rank - 2;
    let kernel = ctx
        .attr(node.ints("kernel_shape"))?
        .ok_or_else(|| ctx.invalid("attribute 'kernel_shape' is missing"))?;
    let strides = ctx
        .attr(node.ints("strides"))?
        .unwrap_or_else(|| vec![1; spatial]);
    let pads = ctx
        .attr(node.ints("pads"))?
        .unwrap_or_else(|| vec![0; 2 * spatial]);
    if kernel.len() != spatial || strides.len() != spatial || pads.len() != 2 * spatial {
        return Err(ctx.invalid("kernel_shape, strides or pads do not fit the spatial dimensions"));
    }
    let mut unpooled: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    for i in 0..spatial {
        unpooled[2 + i] =
            (shape[2 + i] as i64 - 1) * strides[i] - pads[i] - pads[spatial + i] + kernel[i];
        if unpooled[2 + i] < 1 {
            return Err(ctx.invalid(format!("the unpooled shape {unpooled:?} is empty")));
        }
    }
    let total: i64 = unpooled.iter().product();
    let count: usize = shape.iter().product();
    let zeros = Tensor::from_f32(&[total as usize], &vec![0.0; total as usize]);
    let zeros = ctx.constant(&format!("{out}_zeros"), zeros);
    let flat = ctx.ints(&format!("{out}_flat_shape"), &[count as i64]);
    let values = ctx.op1(
        "reshape",
        &format!("{out}_values"),
        &[("x", &x), ("shape", &flat)],
    )?;
    let positions = ctx.op1(
        "reshape",
        &format!("{out}_positions"),
        &[("x", &indices), ("shape", &flat)],
    )?;
    let positions = if ctx.const_value(&positions).is_some() {
        positions
    } else {
        let size = ctx.int(&format!("{out}_size"), total);
        wrap_indices(ctx, &positions, &size, &format!("{out}_wrapped"))?
    };
    let (axis_c, mode) = (
        ctx.int(&format!("{out}_axis"), 0),
        ctx.string(&format!("{out}_mode"), "update"),
    );
    let scattered = ctx.op1(
        "scatter",
        &format!("{out}_scattered"),
        &[
            ("data", &zeros),
            ("indices", &positions),
            ("updates", &values),
            ("axis", &axis_c),
            ("mode", &mode),
        ],
    )?;
    if let Some(wanted) = ctx.const_input(node, 2)? {
        if wanted.to_i64_vec() != unpooled {
            return Err(ctx.unsupported(format!(
                "an output_shape {:?} other than the unpooled shape {unpooled:?} is not supported: ONNX's reference places the values in the unpooled shape and pads its end, ONNX Runtime indexes output_shape itself",
                wanted.to_i64_vec()
            )));
        }
    }
    let unpooled_c = ctx.ints(&format!("{out}_unpooled_shape"), &unpooled);
    let y = ctx.op1(
        "reshape",
        &out,
        &[("x", &scattered), ("shape", &unpooled_c)],
    )?;
    ctx.set_output(node, 0, y);
    Ok(())
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
    ("LpPool", lp_pool),
    ("MaxPool", max_pool),
    ("MaxUnpool", max_unpool),
];
