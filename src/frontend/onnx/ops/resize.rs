//! `Resize` and `Upsample` in nearest mode by whole-number factors on the two spatial
//! dimensions of an NCHW tensor → `upsample_nearest_neighbor`. Other modes, fractional
//! factors and coordinate/rounding combinations that do not reduce to repeating each pixel
//! are unsupported.

use super::{ConvertFn, Ctx, Node};
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

/// `Resize`: scales (input 1 at opset 10, input 2 from 11) or sizes (input 3).
fn resize(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    require_nearest(ctx, node)?;
    if ctx.opset >= 11 {
        let coord = ctx
            .attr(node.string("coordinate_transformation_mode"))?
            .unwrap_or_else(|| "half_pixel".into());
        let nearest = ctx
            .attr(node.string("nearest_mode"))?
            .unwrap_or_else(|| "round_prefer_floor".into());
        if !repeats_pixels(&coord, &nearest) {
            return Err(ctx.unsupported(format!(
                "coordinate_transformation_mode '{coord}' with nearest_mode '{nearest}' is not supported"
            )));
        }
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
    }
    let scales_input = if ctx.opset < 11 { 1 } else { 2 };
    let scales = ctx
        .const_input(node, scales_input)?
        .map(|t| t.to_f64_vec())
        .filter(|v| !v.is_empty());
    let scales = match scales {
        Some(s) => s,
        None => {
            let sizes = ctx
                .const_input(node, 3)?
                .ok_or_else(|| ctx.invalid("neither scales nor sizes is given"))?;
            let x = ctx.input(node, 0)?;
            let shape = ctx.shape(&x)?;
            let sizes = sizes.to_i64_vec();
            if sizes.len() != shape.len() {
                return Err(ctx.invalid(format!(
                    "sizes {sizes:?} do not match the input rank {}",
                    shape.len()
                )));
            }
            sizes
                .iter()
                .zip(&shape)
                .map(|(&o, &i)| o as f64 / i as f64)
                .collect()
        }
    };
    upsample(ctx, node, &scales)
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
