//! `Resize` and `Upsample` on the two spatial dimensions of an NCHW tensor: nearest mode by
//! whole-number factors → `upsample_nearest_neighbor`; `Resize` linear mode to whole sizes →
//! `resize_bilinear` with the matching sampling grid. Cubic mode, fractional nearest factors
//! and coordinate/rounding combinations without an exact Core ML equivalent are unsupported.

use super::{ConvertFn, Ctx, Emit, Node};
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

/// This family's converters.
pub const CONVERTERS: &[(&str, ConvertFn)] = &[("Resize", resize), ("Upsample", upsample_op)];

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
