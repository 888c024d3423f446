//! Pooling: `max_pool{1,2,3}d` (with or without indices; indices are not converted),
//! `avg_pool{1,2,3}d`, `adaptive_avg_pool{1,2}d`.

use super::conv::spatial_list;
use super::ArgDefault::{Bool, Ints, None as NoDefault};
use super::{op, ArgDefault, Call, Ctx, Emit, OpEntry};
use crate::Error;

/// Shared part of max and average pooling.
fn pool(ctx: &mut Ctx, call: &Call, mil: &str) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.tensor(call, "self")?;
    let rank = ctx.rank(&x)?;
    if !(3..=5).contains(&rank) {
        return Err(ctx.unsupported(format!(
            "only 1-D to 3-D pooling is supported, input has rank {rank}"
        )));
    }
    let spatial = rank - 2;
    let kernel = ctx.ints_arg(call, "kernel_size")?;
    let kernel = spatial_list(ctx, kernel, spatial, "kernel_size")?;
    let strides = match ctx.ints_arg(call, "stride")? {
        s if s.is_empty() => kernel.clone(),
        s => spatial_list(ctx, s, spatial, "stride")?,
    };
    let pads = ctx.ints_arg(call, "padding")?;
    let pads = spatial_list(ctx, pads, spatial, "padding")?;
    if mil == "max_pool" {
        let dilation = ctx.ints_arg(call, "dilation")?;
        if dilation.iter().any(|&d| d != 1) {
            return Err(
                ctx.unsupported("dilated pooling is not supported (Core ML pooling has none)")
            );
        }
    }
    let ceil_mode = ctx.flag(call, "ceil_mode")?;
    let mil_pad: Vec<i64> = pads.iter().flat_map(|&p| [p, p]).collect();
    let mut params = vec![
        ("x", x),
        (
            "kernel_sizes",
            ctx.ints(&format!("{out}_kernel_sizes"), &kernel),
        ),
        ("strides", ctx.ints(&format!("{out}_strides"), &strides)),
        ("pad_type", ctx.string(&format!("{out}_pad_type"), "custom")),
        ("pad", ctx.ints(&format!("{out}_pad"), &mil_pad)),
    ];
    if mil == "avg_pool" {
        if ctx.opt_int(call, "divisor_override")?.is_some() {
            return Err(ctx.unsupported("avg_pool with divisor_override is not supported"));
        }
        let exclude = !ctx.flag(call, "count_include_pad")?;
        params.push((
            "exclude_padding_from_average",
            ctx.boolean(&format!("{out}_exclude_padding"), exclude),
        ));
    }
    params.push((
        "ceil_mode",
        ctx.boolean(&format!("{out}_ceil_mode"), ceil_mode),
    ));
    let refs: Vec<(&str, &str)> = params.iter().map(|(p, v)| (*p, v.as_str())).collect();
    let y = ctx.op1(mil, &out, &refs)?;
    ctx.bind(call, 0, y);
    Ok(())
}

fn max_pool(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    pool(ctx, call, "max_pool")
}

fn avg_pool(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    pool(ctx, call, "avg_pool")
}

/// `adaptive_avg_pool(self, output_size)`: a global mean for output size 1, an `avg_pool`
/// when each input size is a multiple of the output size.
fn adaptive_avg_pool(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.tensor(call, "self")?;
    let shape = ctx.shape(&x)?;
    let sizes = ctx.ints_arg(call, "output_size")?;
    let spatial = sizes.len();
    if shape.len() < spatial + 1 {
        return Err(ctx.invalid(format!(
            "output_size {sizes:?} does not fit input {shape:?}"
        )));
    }
    let input = &shape[shape.len() - spatial..];
    if sizes.iter().all(|&s| s == 1) {
        let axes: Vec<i64> = (-(spatial as i64)..0).collect();
        let axes = ctx.ints(&format!("{out}_axes"), &axes);
        let keep = ctx.boolean(&format!("{out}_keep_dims"), true);
        let y = ctx.op1(
            "reduce_mean",
            &out,
            &[("x", &x), ("axes", &axes), ("keep_dims", &keep)],
        )?;
        ctx.bind(call, 0, y);
        return Ok(());
    }
    if input
        .iter()
        .zip(&sizes)
        .any(|(&i, &o)| o <= 0 || i as i64 % o != 0)
        || spatial != 2
    {
        return Err(ctx.unsupported(format!(
            "adaptive average pooling from {input:?} to {sizes:?} is not supported (sizes must divide)"
        )));
    }
    let kernel: Vec<i64> = input
        .iter()
        .zip(&sizes)
        .map(|(&i, &o)| i as i64 / o)
        .collect();
    let params = [
        (
            "kernel_sizes",
            ctx.ints(&format!("{out}_kernel_sizes"), &kernel),
        ),
        ("strides", ctx.ints(&format!("{out}_strides"), &kernel)),
        ("pad_type", ctx.string(&format!("{out}_pad_type"), "valid")),
        (
            "exclude_padding_from_average",
            ctx.boolean(&format!("{out}_exclude"), true),
        ),
    ];
    let mut refs: Vec<(&str, &str)> = vec![("x", &x)];
    refs.extend(params.iter().map(|(p, v)| (*p, v.as_str())));
    let y = ctx.op1("avg_pool", &out, &refs)?;
    ctx.bind(call, 0, y);
    Ok(())
}

const MAX_POOL: &[(&str, ArgDefault)] = &[
    ("stride", Ints(&[])),
    ("padding", Ints(&[0])),
    ("dilation", Ints(&[1])),
    ("ceil_mode", Bool(false)),
];

const AVG_POOL: &[(&str, ArgDefault)] = &[
    ("stride", Ints(&[])),
    ("padding", Ints(&[0])),
    ("ceil_mode", Bool(false)),
    ("count_include_pad", Bool(true)),
    ("divisor_override", NoDefault),
];

/// This family's ops.
pub const OPS: &[OpEntry] = &[
    op("aten.max_pool1d.default", max_pool, MAX_POOL),
    op("aten.max_pool2d.default", max_pool, MAX_POOL),
    op("aten.max_pool3d.default", max_pool, MAX_POOL),
    op("aten.max_pool2d_with_indices.default", max_pool, MAX_POOL),
    op("aten.max_pool3d_with_indices.default", max_pool, MAX_POOL),
    op("aten.avg_pool1d.default", avg_pool, AVG_POOL),
    op("aten.avg_pool2d.default", avg_pool, AVG_POOL),
    op("aten.avg_pool3d.default", avg_pool, AVG_POOL),
    op("aten.adaptive_avg_pool1d.default", adaptive_avg_pool, &[]),
    op("aten.adaptive_avg_pool2d.default", adaptive_avg_pool, &[]),
    op("aten._adaptive_avg_pool2d.default", adaptive_avg_pool, &[]),
];
