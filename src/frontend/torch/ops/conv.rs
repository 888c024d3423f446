//! Convolutions: `conv1d`/`conv2d`/`conv3d` (training IR, numeric or string padding),
//! `conv_transpose*d`, and core ATen's `convolution`.

use super::ArgDefault::{Int, Ints, None as NoDefault, Str};
use super::{op, ArgDefault, Call, Ctx, Emit, OpEntry};
use crate::frontend::lowering::conv_dilations_groups;
use crate::Error;

/// A per-spatial-dimension list: a single value stands for all of them (torch `int[2]`).
pub fn spatial_list(ctx: &Ctx, v: Vec<i64>, spatial: usize, what: &str) -> Result<Vec<i64>, Error> {
    match v.len() {
        1 => Ok(vec![v[0]; spatial]),
        n if n == spatial => Ok(v),
        _ => Err(ctx.invalid(format!(
            "{what} {v:?} does not fit {spatial} spatial dimensions"
        ))),
    }
}

/// Emits `conv` or `conv_transpose` for `call`; `padding` is `Ok(pads)` (symmetric, one per
/// spatial dimension) or `Err(pad_type)` for torch's string padding.
fn emit(
    ctx: &mut Ctx,
    call: &Call,
    padding: Result<Vec<i64>, &'static str>,
    transposed: bool,
) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.tensor(call, "input")?;
    let w = ctx.tensor(call, "weight")?;
    let bias = ctx.opt_tensor(call, "bias")?;
    let rank = ctx.rank(&x)?;
    if !(3..=5).contains(&rank) {
        return Err(ctx.unsupported(format!(
            "only 1-D to 3-D convolutions are supported, input has rank {rank}"
        )));
    }
    let spatial = rank - 2;
    let strides = ctx.ints_arg(call, "stride")?;
    let strides = spatial_list(ctx, strides, spatial, "stride")?;
    let dilations = ctx.ints_arg(call, "dilation")?;
    let dilations = spatial_list(ctx, dilations, spatial, "dilation")?;
    let groups = ctx.int_arg(call, "groups")?;
    let mut params: Vec<(&str, String)> = vec![("x", x.clone()), ("weight", w.clone())];
    if let Some(b) = bias {
        params.push(("bias", b));
    }
    match &padding {
        Ok(pads) => {
            let pads = spatial_list(ctx, pads.clone(), spatial, "padding")?;
            let mil: Vec<i64> = pads.iter().flat_map(|&p| [p, p]).collect();
            params.push(("pad_type", ctx.string(&format!("{out}_pad_type"), "custom")));
            params.push(("pad", ctx.ints(&format!("{out}_pad"), &mil)));
            if transposed {
                let output_padding = ctx.ints_arg(call, "output_padding")?;
                let output_padding = spatial_list(ctx, output_padding, spatial, "output_padding")?;
                if output_padding.iter().any(|&p| p != 0) {
                    let x_shape = ctx.shape(&x)?;
                    let w_shape = ctx.shape(&w)?;
                    let sizes: Vec<i64> = (0..spatial)
                        .map(|i| {
                            (x_shape[2 + i] as i64 - 1) * strides[i]
                                + (w_shape[2 + i] as i64 - 1) * dilations[i]
                                + 1
                                - 2 * pads[i]
                                + output_padding[i]
                        })
                        .collect();
                    params.push((
                        "output_shape",
                        ctx.ints(&format!("{out}_output_shape"), &sizes),
                    ));
                }
            }
        }
        Err(pad_type) => {
            params.push(("pad_type", ctx.string(&format!("{out}_pad_type"), pad_type)));
        }
    }
    params.push(("strides", ctx.ints(&format!("{out}_strides"), &strides)));
    params.extend(conv_dilations_groups(ctx, &out, &dilations, groups));
    let refs: Vec<(&str, &str)> = params.iter().map(|(p, v)| (*p, v.as_str())).collect();
    let mil = if transposed { "conv_transpose" } else { "conv" };
    let y = ctx.op1(mil, &out, &refs)?;
    ctx.bind(call, 0, y);
    Ok(())
}

/// `conv{1,2,3}d(input, weight, bias, stride, padding, dilation, groups)`; `padding` may be
/// `'valid'` or `'same'` (the `.padding` overload).
fn conv_nd(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let padding = match ctx.opt_string(call, "padding") {
        Ok(Some(s)) if s == "valid" => Err("valid"),
        Ok(Some(s)) if s == "same" => Err("same"),
        Ok(Some(s)) => return Err(ctx.unsupported(format!("padding '{s}' is not supported"))),
        _ => Ok(ctx.ints_arg(call, "padding")?),
    };
    emit(ctx, call, padding, false)
}

/// `conv_transpose{1,2,3}d.input(input, weight, bias, stride, padding, output_padding,
/// groups, dilation)`.
fn conv_transpose_nd(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let padding = ctx.ints_arg(call, "padding")?;
    emit(ctx, call, Ok(padding), true)
}

/// Core ATen `convolution(input, weight, bias, stride, padding, dilation, transposed,
/// output_padding, groups)`.
fn convolution(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let transposed = ctx.flag(call, "transposed")?;
    let padding = ctx.ints_arg(call, "padding")?;
    emit(ctx, call, Ok(padding), transposed)
}

const CONV: &[(&str, ArgDefault)] = &[
    ("bias", NoDefault),
    ("stride", Ints(&[1])),
    ("padding", Ints(&[0])),
    ("dilation", Ints(&[1])),
    ("groups", Int(1)),
];

const CONV_PADDING: &[(&str, ArgDefault)] = &[
    ("bias", NoDefault),
    ("stride", Ints(&[1])),
    ("padding", Str("valid")),
    ("dilation", Ints(&[1])),
    ("groups", Int(1)),
];

const CONV_TRANSPOSE: &[(&str, ArgDefault)] = &[
    ("bias", NoDefault),
    ("stride", Ints(&[1])),
    ("padding", Ints(&[0])),
    ("output_padding", Ints(&[0])),
    ("groups", Int(1)),
    ("dilation", Ints(&[1])),
];

/// This family's ops.
pub const OPS: &[OpEntry] = &[
    op("aten.conv1d.default", conv_nd, CONV),
    op("aten.conv2d.default", conv_nd, CONV),
    op("aten.conv3d.default", conv_nd, CONV),
    op("aten.conv1d.padding", conv_nd, CONV_PADDING),
    op("aten.conv2d.padding", conv_nd, CONV_PADDING),
    op("aten.conv3d.padding", conv_nd, CONV_PADDING),
    op(
        "aten.conv_transpose1d.default",
        conv_transpose_nd,
        CONV_TRANSPOSE,
    ),
    op(
        "aten.conv_transpose2d.input",
        conv_transpose_nd,
        CONV_TRANSPOSE,
    ),
    op(
        "aten.conv_transpose3d.input",
        conv_transpose_nd,
        CONV_TRANSPOSE,
    ),
    op("aten.convolution.default", convolution, &[]),
];
