//! Kernels of the resizing ops: each output row/column samples the input at a grid point,
//! nearest or by linear interpolation, separably over the last two dims.

use crate::interp::{KernelArgs, Value};
use crate::ir::ops::image_resizing::{scale_factors, scaled_size, target_size};
use crate::ir::ops::OpArgs;
use ndarray::{ArrayD, IxDyn};

/// One output position: the two input neighbours and the weight of the second.
type Tap = (usize, usize, f32);

/// Resamples the last two dims of `x` with per-row and per-column taps.
fn resample(x: &ArrayD<f32>, rows: &[Tap], cols: &[Tap]) -> Result<ArrayD<f32>, String> {
    let shape = x.shape().to_vec();
    let r = shape.len();
    if r < 3 {
        return Err(format!("x {shape:?} must have rank 3 or more"));
    }
    let (h, w) = (shape[r - 2], shape[r - 1]);
    let planes: usize = shape[..r - 2].iter().product();
    let x = x.as_standard_layout();
    let xf = x.as_slice().ok_or("x is not contiguous")?;
    let mut out = Vec::with_capacity(planes * rows.len() * cols.len());
    for p in 0..planes {
        let plane = &xf[p * h * w..(p + 1) * h * w];
        for &(r0, r1, fr) in rows {
            for &(c0, c1, fc) in cols {
                let top = plane[r0 * w + c0] * (1.0 - fc) + plane[r0 * w + c1] * fc;
                let bottom = plane[r1 * w + c0] * (1.0 - fc) + plane[r1 * w + c1] * fc;
                out.push(top * (1.0 - fr) + bottom * fr);
            }
        }
    }
    let mut out_shape = shape;
    out_shape[r - 2] = rows.len();
    out_shape[r - 1] = cols.len();
    ArrayD::from_shape_vec(IxDyn(&out_shape), out).map_err(|e| e.to_string())
}

/// Nearest taps: output `i` reads input `floor(i * step)`.
fn nearest(n_in: usize, n_out: usize, step: f64) -> Result<Vec<Tap>, String> {
    if n_in == 0 {
        return Err("cannot resample an empty dimension".into());
    }
    Ok((0..n_out)
        .map(|i| ((i as f64 * step).floor() as usize).min(n_in - 1))
        .map(|j| (j, j, 0.0))
        .collect())
}

/// Linear taps at grid points `grid(i)`, clamped to `[0, n_in - 1]`.
fn linear(n_in: usize, n_out: usize, grid: impl Fn(f64) -> f64) -> Result<Vec<Tap>, String> {
    if n_in == 0 {
        return Err("cannot resample an empty dimension".into());
    }
    let last = (n_in - 1) as f64;
    Ok((0..n_out)
        .map(|i| {
            let g = grid(i as f64).clamp(0.0, last);
            let i0 = g.floor() as usize;
            (
                (i0).min(n_in - 1),
                (i0 + 1).min(n_in - 1),
                (g - i0 as f64) as f32,
            )
        })
        .collect())
}

fn spatial(x: &ArrayD<f32>) -> Result<(usize, usize), String> {
    let s = x.shape();
    if s.len() < 3 {
        return Err(format!("x {s:?} must have rank 3 or more"));
    }
    Ok((s[s.len() - 2], s[s.len() - 1]))
}

fn targets(args: &KernelArgs) -> Result<(usize, usize), String> {
    Ok((
        target_size(args, "target_size_height")?,
        target_size(args, "target_size_width")?,
    ))
}

/// `upsample_nearest_neighbor`: output `i` reads input `floor(i / scale)`.
pub fn upsample_nearest_neighbor(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?.to_f32_array()?;
    let (h, w) = spatial(&x)?;
    let (sh, sw) = scale_factors(args)?;
    let rows = nearest(h, scaled_size(h, sh)?, 1.0 / sh)?;
    let cols = nearest(w, scaled_size(w, sw)?, 1.0 / sw)?;
    Ok(vec![Value::Float(resample(&x, &rows, &cols)?)])
}

/// `resize_nearest_neighbor`: output `i` reads input `floor(i * in / out)`.
pub fn resize_nearest_neighbor(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?.to_f32_array()?;
    let (h, w) = spatial(&x)?;
    let (th, tw) = targets(args)?;
    let rows = nearest(h, th, h as f64 / th as f64)?;
    let cols = nearest(w, tw, w as f64 / tw as f64)?;
    Ok(vec![Value::Float(resample(&x, &rows, &cols)?)])
}

/// Grid of `upsample_bilinear`: corners aligned, or half-pixel centres with the scale
/// recomputed from the sizes.
fn upsample_grid(n_in: usize, n_out: usize, align_corners: bool) -> Result<Vec<Tap>, String> {
    if align_corners {
        let spacing = if n_out > 1 {
            (n_in as f64 - 1.0) / (n_out as f64 - 1.0)
        } else {
            0.0
        };
        linear(n_in, n_out, |i| i * spacing)
    } else {
        let spacing = n_in as f64 / n_out as f64;
        linear(n_in, n_out, |i| i * spacing + 0.5 * spacing - 0.5)
    }
}

/// `upsample_bilinear` (align_corners true by default).
pub fn upsample_bilinear(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?.to_f32_array()?;
    let (h, w) = spatial(&x)?;
    let (sh, sw) = scale_factors(args)?;
    let align = args.bool("align_corners")?;
    let rows = upsample_grid(h, scaled_size(h, sh)?, align)?;
    let cols = upsample_grid(w, scaled_size(w, sw)?, align)?;
    Ok(vec![Value::Float(resample(&x, &rows, &cols)?)])
}

/// Grid of `resize_bilinear` in sampling mode `mode`.
fn resize_grid(n_in: usize, n_out: usize, mode: &str) -> Result<Vec<Tap>, String> {
    let (fi, fo) = (n_in as f64, n_out as f64);
    match mode {
        "STRICT_ALIGN_CORNERS" => upsample_grid(n_in, n_out, true),
        "ALIGN_CORNERS" if n_out == 1 => linear(n_in, n_out, |_| (fi - 1.0) / 2.0),
        "ALIGN_CORNERS" => upsample_grid(n_in, n_out, true),
        "UNALIGN_CORNERS" => upsample_grid(n_in, n_out, false),
        "DEFAULT" => {
            let spacing = if n_out > 1 {
                (fi - fi / fo) / (fo - 1.0)
            } else {
                0.0
            };
            linear(n_in, n_out, |i| i * spacing)
        }
        "OFFSET_CORNERS" => {
            let delta = (fi - 1.0).max(1.0) / fo;
            linear(n_in, n_out, |i| 0.5 * delta + i * delta)
        }
        other => Err(format!("unknown sampling_mode '{other}'")),
    }
}

/// `resize_bilinear` (sampling mode "DEFAULT" by default).
pub fn resize_bilinear(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?.to_f32_array()?;
    let (h, w) = spatial(&x)?;
    let (th, tw) = targets(args)?;
    let mode = args.str("sampling_mode")?;
    let rows = resize_grid(h, th, mode)?;
    let cols = resize_grid(w, tw, mode)?;
    Ok(vec![Value::Float(resample(&x, &rows, &cols)?)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::ops::testing::{assert_close, floats, infer, run};
    use crate::ir::{DType, Tensor, TensorType};

    fn grid(taps: &[Tap]) -> Vec<f32> {
        taps.iter().map(|&(i0, _, f)| i0 as f32 + f).collect()
    }

    #[test]
    fn grids_match_the_documented_examples() {
        // coremltools' examples for Xin = 2.
        assert_close(
            &grid(&upsample_grid(2, 5, false).unwrap()),
            &[0.0, 0.1, 0.5, 0.9, 1.0],
            1e-6,
        );
        assert_close(
            &grid(&upsample_grid(2, 5, true).unwrap()),
            &[0.0, 0.25, 0.5, 0.75, 1.0],
            1e-6,
        );
        assert_close(
            &grid(&resize_grid(2, 5, "DEFAULT").unwrap()),
            &[0.0, 0.4, 0.8, 1.0, 1.0],
            1e-6,
        );
        assert_close(
            &grid(&resize_grid(2, 5, "OFFSET_CORNERS").unwrap()),
            &[0.1, 0.3, 0.5, 0.7, 0.9],
            1e-6,
        );
        let six = [0.0, 0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0, 1.0];
        assert_close(
            &grid(&resize_grid(2, 6, "UNALIGN_CORNERS").unwrap()),
            &six,
            1e-6,
        );
    }

    #[test]
    fn nearest_and_bilinear_upsampling() {
        let x = Tensor::from_f32(&[1, 1, 2], &[1.0, 3.0]);
        let inputs = [
            ("x", x.clone()),
            ("scale_factor_height", Tensor::scalar_i32(1)),
            ("scale_factor_width", Tensor::scalar_i32(2)),
        ];
        let ty = infer("upsample_nearest_neighbor", &inputs).unwrap();
        assert_eq!(ty[0], TensorType::fixed(DType::F32, &[1, 1, 4]));
        assert_eq!(
            floats(&run("upsample_nearest_neighbor", &inputs, &ty)[0]),
            vec![1.0, 1.0, 3.0, 3.0]
        );
        let inputs = [
            ("x", x),
            ("scale_factor_width", Tensor::scalar_f32(2.5)),
            ("align_corners", Tensor::scalar_bool(true)),
        ];
        let ty = infer("upsample_bilinear", &inputs).unwrap();
        assert_eq!(ty[0], TensorType::fixed(DType::F32, &[1, 1, 5]));
        assert_close(
            &floats(&run("upsample_bilinear", &inputs, &ty)[0]),
            &[1.0, 1.5, 2.0, 2.5, 3.0],
            1e-6,
        );
    }
}
