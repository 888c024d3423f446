//! `Resize` and `Upsample` on the two spatial dimensions of an NCHW tensor: nearest mode by
//! whole-number factors → `upsample_nearest_neighbor`; `Resize` linear mode to whole sizes →
//! `resize_bilinear` with the matching sampling grid. Cubic mode, fractional nearest factors
//! and coordinate/rounding combinations without an exact Core ML equivalent are unsupported.
//! `GridSample` is spelled out with gathers (see [`grid_sample`]); `AffineGrid` makes its
//! grids with a `matmul`.

use super::{ConvertFn, Ctx, Emit, Node};
use crate::ir::{DType, Tensor};
use crate::Error;

/// True when `(coordinate_transformation_mode, nearest_mode)` makes nearest upsampling by a
/// whole factor `s` repeat each pixel `s` times. With `asymmetric` the source index is
/// `dst / s`, so only `floor` repeats; with `half_pixel` it is `(dst + 0.5) / s - 0.5`, which
/// lies within 0.5 of `floor(dst / s)` and never on a tie, so both `round_prefer_*` repeat.
pub fn repeats_pixels(coordinate_mode: &str, nearest_mode: &str) -> bool {
    match coordinate_mode {
        "asymmetric" => nearest_mode == "floor",
        "half_pixel" | "pytorch_half_pixel" => {
            matches!(nearest_mode, "round_prefer_floor" | "round_prefer_ceil")
        }
        _ => false,
    }
}

/// The whole-number spatial factors `[sh, sw]` of NCHW `scales`, or a message.
fn integer_factors(scales: &[f64]) -> Result<[i64; 2], String> {
    let whole = |s: f64| s >= 1.0 && s.fract() == 0.0 && s <= i32::MAX as f64;
    match scales {
        [n, c, h, w] if *n == 1.0 && *c == 1.0 && whole(*h) && whole(*w) => {
            Ok([*h as i64, *w as i64])
        }
        _ => Err(format!(
            "scales {scales:?} are not [1, 1, h, w] with whole-number h, w ≥ 1"
        )),
    }
}

/// Emits the upsampling of `x` (rank 4) by `scales` for `node`.
fn upsample(ctx: &mut Ctx, node: &Node, scales: &[f64]) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    if ctx.rank(&x)? != 4 {
        return Err(ctx.unsupported(format!(
            "only NCHW (rank 4) inputs are supported, got {}",
            ctx.ty(&x)?
        )));
    }
    let [sh, sw] = integer_factors(scales).map_err(|m| ctx.unsupported(m))?;
    let y = if sh == 1 && sw == 1 {
        x
    } else {
        let h = ctx.int(&format!("{out}_scale_factor_height"), sh);
        let w = ctx.int(&format!("{out}_scale_factor_width"), sw);
        ctx.op1(
            "upsample_nearest_neighbor",
            &out,
            &[
                ("x", &x),
                ("scale_factor_height", &h),
                ("scale_factor_width", &w),
            ],
        )?
    };
    ctx.set_output(node, 0, y);
    Ok(())
}

fn require_nearest(ctx: &Ctx, node: &Node) -> Result<(), Error> {
    let mode = ctx
        .attr(node.string("mode"))?
        .unwrap_or_else(|| "nearest".into());
    if mode != "nearest" {
        return Err(ctx.unsupported(format!("mode '{mode}' is not supported (only nearest)")));
    }
    Ok(())
}

/// The Core ML `resize_bilinear` sampling mode computing the same grid as ONNX
/// `coordinate_transformation_mode` for linear resizing to more than one output pixel:
/// half-pixel centres (clamped to the edges) are UNALIGN_CORNERS, `align_corners` is
/// STRICT_ALIGN_CORNERS, and `asymmetric` (`dst * in / out`) is DEFAULT.
pub fn bilinear_sampling_mode(coordinate_mode: &str) -> Option<&'static str> {
    match coordinate_mode {
        "half_pixel" | "pytorch_half_pixel" => Some("UNALIGN_CORNERS"),
        "align_corners" => Some("STRICT_ALIGN_CORNERS"),
        "asymmetric" => Some("DEFAULT"),
        _ => None,
    }
}

/// `Resize`: scales (input 1 at opset 10, input 2 from 11) or sizes (input 3); modes
/// nearest (whole factors) and linear (NCHW, exact output sizes).
fn resize(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let mode = ctx
        .attr(node.string("mode"))?
        .unwrap_or_else(|| "nearest".into());
    let coord = if ctx.opset >= 11 {
        ctx.attr(node.string("coordinate_transformation_mode"))?
            .unwrap_or_else(|| "half_pixel".into())
    } else {
        "asymmetric".into()
    };
    if ctx.attr(node.ints("axes"))?.is_some() || ctx.attr(node.int_or("antialias", 0))? != 0 {
        return Err(ctx.unsupported("the 'axes' and 'antialias' attributes are not supported"));
    }
    let policy = ctx
        .attr(node.string("keep_aspect_ratio_policy"))?
        .unwrap_or_else(|| "stretch".into());
    if policy != "stretch" {
        return Err(ctx.unsupported(format!(
            "keep_aspect_ratio_policy '{policy}' is not supported"
        )));
    }
    let x = ctx.input(node, 0)?;
    let shape = ctx.shape(&x)?;
    let scales_input = if ctx.opset < 11 { 1 } else { 2 };
    let scales = ctx
        .const_input(node, scales_input)?
        .map(|t| t.to_f64_vec())
        .filter(|v| !v.is_empty());
    let (scales, sizes) = match scales {
        Some(s) => {
            let sizes: Vec<f64> = shape.iter().zip(&s).map(|(&i, &f)| i as f64 * f).collect();
            (s, sizes)
        }
        None => {
            let sizes = ctx
                .const_input(node, 3)?
                .ok_or_else(|| ctx.invalid("neither scales nor sizes is given"))?;
            let sizes: Vec<f64> = sizes.to_i64_vec().into_iter().map(|v| v as f64).collect();
            let scales = sizes
                .iter()
                .zip(&shape)
                .map(|(&o, &i)| o / i as f64)
                .collect();
            (scales, sizes)
        }
    };
    if scales.len() != shape.len() || sizes.len() != shape.len() {
        return Err(ctx.invalid(format!(
            "scales/sizes do not match the input rank {}",
            shape.len()
        )));
    }
    match mode.as_str() {
        "nearest" if ctx.opset < 11 => upsample(ctx, node, &scales),
        "nearest" => {
            let nearest = ctx
                .attr(node.string("nearest_mode"))?
                .unwrap_or_else(|| "round_prefer_floor".into());
            if !repeats_pixels(&coord, &nearest) {
                return Err(ctx.unsupported(format!(
                    "coordinate_transformation_mode '{coord}' with nearest_mode '{nearest}' is not supported"
                )));
            }
            upsample(ctx, node, &scales)
        }
        "linear" => {
            let sampling = bilinear_sampling_mode(&coord).ok_or_else(|| {
                ctx.unsupported(format!(
                    "coordinate_transformation_mode '{coord}' is not supported"
                ))
            })?;
            let exact = sizes
                .iter()
                .all(|s| s.fract() == 0.0 && *s <= i32::MAX as f64)
                && sizes[2..].iter().all(|&s| s >= 2.0);
            if shape.len() != 4
                || !exact
                || sizes[0] != shape[0] as f64
                || sizes[1] != shape[1] as f64
            {
                return Err(ctx.unsupported(format!(
                    "linear resizing needs an NCHW input resized to whole sizes ≥ 2 on H and W only (input {shape:?}, output {sizes:?})"
                )));
            }
            let out = ctx.out_name(node, 0);
            let h = ctx.int(&format!("{out}_target_size_height"), sizes[2] as i64);
            let w = ctx.int(&format!("{out}_target_size_width"), sizes[3] as i64);
            let m = ctx.string(&format!("{out}_sampling_mode"), sampling);
            let params = [
                ("x", &x),
                ("target_size_height", &h),
                ("target_size_width", &w),
                ("sampling_mode", &m),
            ];
            let refs: Vec<(&str, &str)> = params.iter().map(|(p, v)| (*p, v.as_str())).collect();
            let y = ctx.op1("resize_bilinear", &out, &refs)?;
            ctx.set_output(node, 0, y);
            Ok(())
        }
        other => Err(ctx.unsupported(format!("mode '{other}' is not supported"))),
    }
}

/// `Upsample` (opsets 7–9): scales are an attribute before 9 and an input from 9.
fn upsample_op(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    require_nearest(ctx, node)?;
    let scales = if ctx.opset < 9 {
        let s = ctx
            .attr(node.floats("scales"))?
            .ok_or_else(|| ctx.invalid("attribute 'scales' is missing"))?;
        s.into_iter().map(f64::from).collect()
    } else {
        ctx.const_input(node, 1)?
            .ok_or_else(|| ctx.invalid("input 'scales' is missing"))?
            .to_f64_vec()
    };
    upsample(ctx, node, &scales)
}

/// `GridSample`'s interpolation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sampling {
    Nearest,
    Linear,
    Cubic,
}

/// `GridSample`'s handling of samples outside the input.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Padding {
    Zeros,
    Border,
    Reflection,
}

/// The taps of one spatial axis: per tap, the int32 index into the axis, whether it lies
/// inside (zeros padding only) and its interpolation weight (none for nearest sampling); each
/// of shape `[N, Q]` (batch, output positions).
struct Taps {
    index: Vec<String>,
    valid: Vec<Option<String>>,
    weight: Vec<Option<String>>,
}

/// `GridSample(X, grid, mode, padding_mode, align_corners)` on 1 to 3 static spatial axes,
/// exactly as ONNX defines it, with gathers rather than MIL `resample` (whose nearest rounding
/// and reflection are not specified to match). Per spatial axis the grid coordinate is mapped
/// to a pixel coordinate (`align_corners` decides whether ±1 are the outer pixels' centres or
/// edges), rounded half to even for `nearest`, clamped (`border`) or reflected (`reflection`)
/// when it lies outside the border; its taps (1 for nearest, 2 for linear, 4 for cubic with
/// A = −0.75) get their indices clamped, reflected, or masked to zero (`zeros`). Each
/// combination of taps across the axes is a `gather_along_axis` of the flattened input,
/// weighted by the product of the taps' weights and summed.
fn grid_sample(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let (x, grid) = (ctx.input(node, 0)?, ctx.input(node, 1)?);
    let out = ctx.out_name(node, 0);
    let (xs, gs) = (ctx.shape(&x)?, ctx.shape(&grid)?);
    let k = xs.len().saturating_sub(2);
    if !(1..=3).contains(&k) || !ctx.ty(&x)?.dtype.is_float() {
        return Err(ctx.unsupported(format!(
            "only float inputs with 1 to 3 spatial axes are supported, got shape {xs:?}"
        )));
    }
    if gs.len() != k + 2 || gs[0] != xs[0] || gs[k + 1] != k {
        return Err(ctx.invalid(format!("grid shape {gs:?} does not fit input shape {xs:?}")));
    }
    let default_mode = if ctx.opset < 20 { "bilinear" } else { "linear" };
    let mode = ctx.attr(node.string("mode"))?;
    let sampling = match mode.as_deref().unwrap_or(default_mode) {
        "nearest" => Sampling::Nearest,
        "linear" | "bilinear" => Sampling::Linear,
        "cubic" | "bicubic" => Sampling::Cubic,
        other => return Err(ctx.invalid(format!("unknown mode '{other}'"))),
    };
    let padding_mode = ctx.attr(node.string("padding_mode"))?;
    let padding = match padding_mode.as_deref().unwrap_or("zeros") {
        "zeros" => Padding::Zeros,
        "border" => Padding::Border,
        "reflection" => Padding::Reflection,
        other => return Err(ctx.invalid(format!("unknown padding_mode '{other}'"))),
    };
    let align = ctx.attr(node.int_or("align_corners", 0))? != 0;
    let (n, c) = (xs[0], xs[1]);
    let dims = &xs[2..];
    let q: usize = gs[1..=k].iter().product();
    let flat_grid = reshape(ctx, &grid, &[n, q, k], &format!("{out}_grid"))?;
    let mut axes = Vec::with_capacity(k);
    for (j, &d) in dims.iter().enumerate() {
        let hint = format!("{out}_axis{j}");
        // The grid's last axis lists coordinates innermost axis first (x, y, z).
        let at = ctx.int(&format!("{hint}_at"), (k - 1 - j) as i64);
        let two = ctx.int(&format!("{hint}_grid_axis"), 2);
        let g = ctx.op1(
            "gather",
            &format!("{hint}_normalized"),
            &[("x", &flat_grid), ("indices", &at), ("axis", &two)],
        )?;
        axes.push(axis_taps(ctx, &g, d, sampling, padding, align, &hint)?);
    }
    let pixels: usize = dims.iter().product();
    let flat_x = reshape(ctx, &x, &[n, c, pixels], &format!("{out}_flat_input"))?;
    let mut strides = vec![1usize; k];
    for j in (0..k.saturating_sub(1)).rev() {
        strides[j] = strides[j + 1] * dims[j + 1];
    }
    let taps_per_axis = axes[0].index.len();
    let combos = taps_per_axis.pow(k as u32);
    let mut acc: Option<String> = None;
    for combo in 0..combos {
        let hint = format!("{out}_tap{combo}");
        let picks: Vec<usize> = (0..k)
            .map(|j| combo / taps_per_axis.pow((k - 1 - j) as u32) % taps_per_axis)
            .collect();
        let mut flat: Option<String> = None;
        let mut valid: Option<String> = None;
        let mut weight: Option<String> = None;
        for (j, &t) in picks.iter().enumerate() {
            let mut index = axes[j].index[t].clone();
            if strides[j] != 1 {
                let stride = ctx.int(&format!("{hint}_stride{j}"), strides[j] as i64);
                index = ctx.op1(
                    "mul",
                    &format!("{hint}_offset{j}"),
                    &[("x", &index), ("y", &stride)],
                )?;
            }
            flat = Some(combine(
                ctx,
                "add",
                flat,
                index,
                &format!("{hint}_flat{j}"),
            )?);
            if let Some(v) = axes[j].valid[t].clone() {
                valid = Some(combine(
                    ctx,
                    "logical_and",
                    valid,
                    v,
                    &format!("{hint}_valid{j}"),
                )?);
            }
            if let Some(w) = axes[j].weight[t].clone() {
                weight = Some(combine(
                    ctx,
                    "mul",
                    weight,
                    w,
                    &format!("{hint}_weight{j}"),
                )?);
            }
        }
        let flat = flat.expect("at least one spatial axis");
        let channel_axis = ctx.ints(&format!("{hint}_channel_axis"), &[1]);
        let column = ctx.op1(
            "expand_dims",
            &format!("{hint}_column"),
            &[("x", &flat), ("axes", &channel_axis)],
        )?;
        let reps = ctx.ints(&format!("{hint}_reps"), &[1, c as i64, 1]);
        let indices = ctx.op1(
            "tile",
            &format!("{hint}_indices"),
            &[("x", &column), ("reps", &reps)],
        )?;
        let last = ctx.int(&format!("{hint}_axis"), 2);
        let mut term = ctx.op1(
            "gather_along_axis",
            &format!("{hint}_pixels"),
            &[("x", &flat_x), ("indices", &indices), ("axis", &last)],
        )?;
        if let Some(v) = valid {
            let v = ctx.op1(
                "expand_dims",
                &format!("{hint}_valid"),
                &[("x", &v), ("axes", &channel_axis)],
            )?;
            let zero = ctx.float(&format!("{hint}_zero"), 0.0);
            term = ctx.op1(
                "select",
                &format!("{hint}_inside"),
                &[("cond", &v), ("a", &term), ("b", &zero)],
            )?;
        }
        if let Some(w) = weight {
            let w = ctx.op1(
                "expand_dims",
                &format!("{hint}_w"),
                &[("x", &w), ("axes", &channel_axis)],
            )?;
            term = ctx.op1(
                "mul",
                &format!("{hint}_weighted"),
                &[("x", &term), ("y", &w)],
            )?;
        }
        acc = Some(combine(ctx, "add", acc, term, &format!("{hint}_sum"))?);
    }
    let mut out_shape = vec![n, c];
    out_shape.extend_from_slice(&gs[1..=k]);
    let sum = acc.expect("at least one tap");
    let y = reshape(ctx, &sum, &out_shape, &out)?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `x` reshaped to `shape`.
fn reshape(ctx: &mut Ctx, x: &str, shape: &[usize], hint: &str) -> Result<String, Error> {
    let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    let shape = ctx.ints(&format!("{hint}_shape"), &dims);
    ctx.op1("reshape", hint, &[("x", x), ("shape", &shape)])
}

/// `acc op value`, or `value` when there is no `acc` yet.
fn combine(
    ctx: &mut Ctx,
    op: &str,
    acc: Option<String>,
    value: String,
    hint: &str,
) -> Result<String, Error> {
    match acc {
        None => Ok(value),
        Some(a) => ctx.op1(op, hint, &[("x", &a), ("y", &value)]),
    }
}

/// `a op b` for a float constant `b`.
fn with_const(ctx: &mut Ctx, op: &str, a: &str, b: f32, hint: &str) -> Result<String, Error> {
    let b = ctx.float(&format!("{hint}_operand"), b);
    ctx.op1(op, hint, &[("x", a), ("y", &b)])
}

/// The taps of one spatial axis of size `d` for normalized grid coordinates `g` (`[N, Q]`).
fn axis_taps(
    ctx: &mut Ctx,
    g: &str,
    d: usize,
    sampling: Sampling,
    padding: Padding,
    align: bool,
    hint: &str,
) -> Result<Taps, Error> {
    let size = d as f32;
    // Pixel coordinate, in ONNX's operation order.
    let plus_one = with_const(ctx, "add", g, 1.0, &format!("{hint}_plus_one"))?;
    let mut v = if align {
        let half = with_const(ctx, "mul", &plus_one, 0.5, &format!("{hint}_half"))?;
        with_const(ctx, "mul", &half, size - 1.0, &format!("{hint}_pixel"))?
    } else {
        let scaled = with_const(ctx, "mul", &plus_one, size, &format!("{hint}_scaled"))?;
        let shifted = with_const(ctx, "sub", &scaled, 1.0, &format!("{hint}_shifted"))?;
        with_const(ctx, "mul", &shifted, 0.5, &format!("{hint}_pixel"))?
    };
    if sampling == Sampling::Nearest {
        v = ctx.op1("round", &format!("{hint}_rounded"), &[("x", &v)])?;
    }
    // The border coordinates lie within.
    let (lo, hi) = if align {
        (0.0, size - 1.0)
    } else {
        (-0.5, size - 0.5)
    };
    v = match padding {
        Padding::Zeros => v,
        Padding::Border => {
            let outside = outside(ctx, &v, lo, hi, &format!("{hint}_outside"))?;
            let clamped = clip(ctx, &v, 0.0, size - 1.0, &format!("{hint}_clamped"))?;
            ctx.op1(
                "select",
                &format!("{hint}_bordered"),
                &[("cond", &outside), ("a", &clamped), ("b", &v)],
            )?
        }
        Padding::Reflection => reflect(ctx, &v, lo, hi, &format!("{hint}_reflected"))?,
    };
    let (base, offsets, weights) = match sampling {
        Sampling::Nearest => (v, vec![0.0], vec![None]),
        Sampling::Linear | Sampling::Cubic => {
            let base = ctx.op1("floor", &format!("{hint}_base"), &[("x", &v)])?;
            let t = ctx.op1(
                "sub",
                &format!("{hint}_fraction"),
                &[("x", &v), ("y", &base)],
            )?;
            if sampling == Sampling::Linear {
                let w0 = {
                    let one = ctx.float(&format!("{hint}_one"), 1.0);
                    ctx.op1("sub", &format!("{hint}_w0"), &[("x", &one), ("y", &t)])?
                };
                (base, vec![0.0, 1.0], vec![Some(w0), Some(t)])
            } else {
                let w = cubic_weights(ctx, &t, hint)?;
                (
                    base,
                    vec![-1.0, 0.0, 1.0, 2.0],
                    w.into_iter().map(Some).collect(),
                )
            }
        }
    };
    let mut taps = Taps {
        index: Vec::new(),
        valid: Vec::new(),
        weight: weights,
    };
    for (i, &offset) in offsets.iter().enumerate() {
        let th = format!("{hint}_tap{i}");
        let at = if offset == 0.0 {
            base.clone()
        } else {
            with_const(ctx, "add", &base, offset, &format!("{th}_at"))?
        };
        let (at, valid) = match padding {
            Padding::Zeros => {
                let outside = outside(ctx, &at, 0.0, size - 1.0, &format!("{th}_outside"))?;
                let inside = ctx.op1("logical_not", &format!("{th}_inside"), &[("x", &outside)])?;
                let clamped = clip(ctx, &at, 0.0, size - 1.0, &format!("{th}_clamped"))?;
                (clamped, Some(inside))
            }
            Padding::Border => (
                clip(ctx, &at, 0.0, size - 1.0, &format!("{th}_clamped"))?,
                None,
            ),
            Padding::Reflection => (reflect(ctx, &at, lo, hi, &format!("{th}_reflected"))?, None),
        };
        taps.index
            .push(ctx.cast(&at, DType::I32, &format!("{th}_index"))?);
        taps.valid.push(valid);
    }
    Ok(taps)
}

/// `v < lo or v > hi` (false for NaN).
fn outside(ctx: &mut Ctx, v: &str, lo: f32, hi: f32, hint: &str) -> Result<String, Error> {
    let below = with_const(ctx, "less", v, lo, &format!("{hint}_below"))?;
    let above = with_const(ctx, "greater", v, hi, &format!("{hint}_above"))?;
    ctx.op1("logical_or", hint, &[("x", &below), ("y", &above)])
}

/// `v` clamped to `[lo, hi]`.
fn clip(ctx: &mut Ctx, v: &str, lo: f32, hi: f32, hint: &str) -> Result<String, Error> {
    let alpha = ctx.float(&format!("{hint}_lo"), lo);
    let beta = ctx.float(&format!("{hint}_hi"), hi);
    ctx.op1(
        "clip",
        hint,
        &[("x", v), ("alpha", &alpha), ("beta", &beta)],
    )
}

/// `v` reflected at `lo` and `hi` until it lies within (values inside are kept as they are):
/// with `m = (v − lo) mod 2(hi − lo)`, `lo + min(m, 2(hi − lo) − m)`. An empty range
/// (`lo == hi`) maps everything to `lo`.
fn reflect(ctx: &mut Ctx, v: &str, lo: f32, hi: f32, hint: &str) -> Result<String, Error> {
    let range = hi - lo;
    if range == 0.0 {
        let zero = with_const(ctx, "mul", v, 0.0, &format!("{hint}_zero"))?;
        return with_const(ctx, "add", &zero, lo, hint);
    }
    let from_lo = with_const(ctx, "sub", v, lo, &format!("{hint}_from_lo"))?;
    let m = with_const(ctx, "mod", &from_lo, 2.0 * range, &format!("{hint}_phase"))?;
    let back = {
        let period = ctx.float(&format!("{hint}_period"), 2.0 * range);
        ctx.op1("sub", &format!("{hint}_back"), &[("x", &period), ("y", &m)])?
    };
    let folded = ctx.op1(
        "minimum",
        &format!("{hint}_folded"),
        &[("x", &m), ("y", &back)],
    )?;
    let reflected = with_const(ctx, "add", &folded, lo, &format!("{hint}_all"))?;
    let outside = outside(ctx, v, lo, hi, &format!("{hint}_outside"))?;
    ctx.op1(
        "select",
        hint,
        &[("cond", &outside), ("a", &reflected), ("b", v)],
    )
}

/// The four cubic convolution weights (A = −0.75, as ONNX) of taps −1, 0, 1, 2 for fractional
/// offsets `t`, each a cubic in `t + 1`, `t`, `1 − t` or `2 − t` written as ONNX writes it.
fn cubic_weights(ctx: &mut Ctx, t: &str, hint: &str) -> Result<Vec<String>, Error> {
    const A: f32 = -0.75;
    let one = ctx.float(&format!("{hint}_cubic_one"), 1.0);
    let two = ctx.float(&format!("{hint}_cubic_two"), 2.0);
    let t_plus = with_const(ctx, "add", t, 1.0, &format!("{hint}_t_plus_one"))?;
    let one_minus = ctx.op1(
        "sub",
        &format!("{hint}_one_minus_t"),
        &[("x", &one), ("y", t)],
    )?;
    let two_minus = ctx.op1(
        "sub",
        &format!("{hint}_two_minus_t"),
        &[("x", &two), ("y", t)],
    )?;
    // Outer taps: ((A·s − 5A)·s + 8A)·s − 4A.
    let outer = |ctx: &mut Ctx, s: &str, h: &str| -> Result<String, Error> {
        let a = with_const(ctx, "mul", s, A, &format!("{h}_a"))?;
        let b = with_const(ctx, "sub", &a, 5.0 * A, &format!("{h}_b"))?;
        let c = ctx.op1("mul", &format!("{h}_c"), &[("x", &b), ("y", s)])?;
        let d = with_const(ctx, "add", &c, 8.0 * A, &format!("{h}_d"))?;
        let e = ctx.op1("mul", &format!("{h}_e"), &[("x", &d), ("y", s)])?;
        with_const(ctx, "sub", &e, 4.0 * A, h)
    };
    // Inner taps: ((A + 2)·s − (A + 3))·s·s + 1.
    let inner = |ctx: &mut Ctx, s: &str, h: &str| -> Result<String, Error> {
        let a = with_const(ctx, "mul", s, A + 2.0, &format!("{h}_a"))?;
        let b = with_const(ctx, "sub", &a, A + 3.0, &format!("{h}_b"))?;
        let c = ctx.op1("mul", &format!("{h}_c"), &[("x", &b), ("y", s)])?;
        let d = ctx.op1("mul", &format!("{h}_d"), &[("x", &c), ("y", s)])?;
        with_const(ctx, "add", &d, 1.0, h)
    };
    Ok(vec![
        outer(ctx, &t_plus, &format!("{hint}_w0"))?,
        inner(ctx, t, &format!("{hint}_w1"))?,
        inner(ctx, &one_minus, &format!("{hint}_w2"))?,
        outer(ctx, &two_minus, &format!("{hint}_w3"))?,
    ])
}

/// The normalized coordinates of the `d` pixels of an axis: their centres spread over
/// [−1, 1] (`align_corners=0`), or from −1 to 1 exactly (`align_corners=1`; −1 for one pixel).
fn normalized_positions(d: usize, align: bool) -> Vec<f64> {
    (0..d)
        .map(|i| {
            let i = i as f64;
            if align {
                if d == 1 {
                    -1.0
                } else {
                    -1.0 + i * (2.0 / (d - 1) as f64)
                }
            } else {
                let step = 2.0 / d as f64;
                -1.0 + step / 2.0 + i * step
            }
        })
        .collect()
}

/// `AffineGrid(theta, size, align_corners)`: the `GridSample` grid `[N, (D,) H, W, k]` of
/// the affine maps `theta` (`[N, k, k + 1]`, k = 2 or 3) applied to every pixel's normalized
/// homogeneous coordinates `(x, y, (z,) 1)`: one `matmul` of a constant coordinate table with
/// `theta` transposed. `size` (`[N, C, (D,) H, W]`) must be constant.
fn affine_grid(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let theta = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let size = ctx
        .const_input(node, 1)?
        .ok_or_else(|| ctx.invalid("input 'size' is missing"))?
        .to_i64_vec();
    let align = ctx.attr(node.int_or("align_corners", 0))? != 0;
    let k = size.len().saturating_sub(2);
    let theta_shape = ctx.shape(&theta)?;
    if !(2..=3).contains(&k)
        || size.iter().any(|&d| d < 1)
        || theta_shape != [size[0] as usize, k, k + 1]
    {
        return Err(ctx.invalid(format!(
            "size {size:?} and theta shape {theta_shape:?} are not [N, C, (D,) H, W] and [N, k, k + 1] for k = 2 or 3"
        )));
    }
    let dims: Vec<usize> = size[2..].iter().map(|&d| d as usize).collect();
    let pixels: usize = dims.iter().product();
    let axes: Vec<Vec<f64>> = dims
        .iter()
        .map(|&d| normalized_positions(d, align))
        .collect();
    // Row-major over the spatial axes; each row (x, y, (z,) 1), innermost axis first.
    let mut table = Vec::with_capacity(pixels * (k + 1));
    for p in 0..pixels {
        let mut rest = p;
        let mut coords = vec![0.0; k];
        for j in (0..k).rev() {
            coords[j] = axes[j][rest % dims[j]];
            rest /= dims[j];
        }
        table.extend(coords.iter().rev().map(|&c| c as f32));
        table.push(1.0);
    }
    let table = ctx.constant(
        &format!("{out}_coordinates"),
        Tensor::from_f32(&[pixels, k + 1], &table),
    );
    let (no, yes) = (
        ctx.boolean(&format!("{out}_transpose_x"), false),
        ctx.boolean(&format!("{out}_transpose_y"), true),
    );
    let mapped = ctx.op1(
        "matmul",
        &format!("{out}_mapped"),
        &[
            ("x", &table),
            ("y", &theta),
            ("transpose_x", &no),
            ("transpose_y", &yes),
        ],
    )?;
    let mut shape = vec![size[0] as usize];
    shape.extend(&dims);
    shape.push(k);
    let y = reshape(ctx, &mapped, &shape, &out)?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// This family's converters.
pub const CONVERTERS: &[(&str, ConvertFn)] = &[
    ("AffineGrid", affine_grid),
    ("GridSample", grid_sample),
    ("Resize", resize),
    ("Upsample", upsample_op),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_factor_nearest_modes_that_repeat_pixels() {
        assert!(repeats_pixels("asymmetric", "floor"));
        assert!(!repeats_pixels("asymmetric", "round_prefer_floor"));
        assert!(repeats_pixels("half_pixel", "round_prefer_floor"));
        assert!(!repeats_pixels("half_pixel", "floor"));
        assert!(!repeats_pixels("align_corners", "round_prefer_floor"));
        assert_eq!(integer_factors(&[1.0, 1.0, 2.0, 3.0]).unwrap(), [2, 3]);
        assert!(integer_factors(&[1.0, 1.0, 1.5, 2.0]).is_err());
        assert!(integer_factors(&[2.0, 1.0, 2.0, 2.0]).is_err());
    }
}
