//! Kernels of pooling ops: each (batch, channel) plane is pooled independently, planes in
//! parallel.

use crate::interp::{KernelArgs, Value};
use crate::ir::ops::conv::kernels::Geometry;
use crate::ir::ops::pool::pool_attrs;
use crate::ir::ops::OpArgs;
use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

/// How a window's values are combined.
#[derive(Clone, Copy)]
enum Reduce {
    Max,
    Average { exclude_padding: bool },
    L2,
}

fn pool(args: &KernelArgs, reduce: Reduce) -> Result<Vec<Value>, String> {
    let x = args.get("x")?.to_f32_array()?;
    let xs = x.shape().to_vec();
    if !(3..=5).contains(&xs.len()) {
        return Err(format!("x {xs:?} must have rank 3 to 5 ([N, C, spatial…])"));
    }
    let attrs = pool_attrs(args, xs.len() - 2)?;
    let geo = Geometry::forward(&xs[2..], &attrs.axes, attrs.pad_type, attrs.ceil_mode)?;
    let iprod: usize = geo.input.iter().product();
    let oprod: usize = geo.output.iter().product();
    let offsets = geo.kernel_offsets();
    let istr = geo.input_strides();
    let x = x.as_standard_layout();
    let xf = x.as_slice().ok_or("x is not contiguous")?;
    let planes = xs[0] * xs[1];
    let mut out = vec![0f32; planes * oprod];
    out.par_chunks_mut(oprod.max(1))
        .enumerate()
        .take(planes)
        .for_each(|(p, dst)| {
            let plane = &xf[p * iprod..(p + 1) * iprod];
            let mut start = vec![0i64; geo.input.len()];
            for (o, v) in dst.iter_mut().enumerate() {
                geo.window_start(o, &mut start);
                *v = window_value(&geo, plane, &start, &offsets, &istr, reduce);
            }
        });
    let mut shape = xs[..2].to_vec();
    shape.extend(&geo.output);
    Ok(vec![Value::Float(
        ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| e.to_string())?,
    )])
}

/// Combines the values of one window. For averages that count padding, the divisor is the
/// part of the window inside the padded input (a ceil-mode window hanging past the end
/// padding is clipped).
fn window_value(
    geo: &Geometry,
    plane: &[f32],
    start: &[i64],
    offsets: &[Vec<usize>],
    istr: &[usize],
    reduce: Reduce,
) -> f32 {
    let (mut max, mut sum, mut count, mut padded_count) = (f32::NEG_INFINITY, 0f32, 0usize, 0usize);
    for off in offsets {
        let inside_padded = (0..start.len()).all(|d| {
            let i = start[d] + off[d] as i64;
            i >= -(geo.pad_begin[d] as i64) && i < (geo.input[d] + geo.pad_end[d]) as i64
        });
        if inside_padded {
            padded_count += 1;
        }
        if let Some(flat) = geo.input_index(start, off, istr) {
            let v = plane[flat];
            max = if v.is_nan() || max.is_nan() {
                f32::NAN
            } else {
                max.max(v)
            };
            sum += match reduce {
                Reduce::L2 => v * v,
                _ => v,
            };
            count += 1;
        }
    }
    match reduce {
        Reduce::Max => max,
        Reduce::L2 => sum.sqrt(),
        Reduce::Average { exclude_padding } => {
            let divisor = if exclude_padding { count } else { padded_count };
            if divisor == 0 {
                0.0
            } else {
                sum / divisor as f32
            }
        }
    }
}

/// `max_pool` (padding never wins the maximum).
pub fn max_pool(args: &KernelArgs) -> Result<Vec<Value>, String> {
    pool(args, Reduce::Max)
}

/// `avg_pool`.
pub fn avg_pool(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let exclude_padding = args.bool("exclude_padding_from_average")?;
    pool(args, Reduce::Average { exclude_padding })
}

/// `l2_pool`: the square root of the sum of squares in each window.
pub fn l2_pool(args: &KernelArgs) -> Result<Vec<Value>, String> {
    pool(args, Reduce::L2)
}

#[cfg(test)]
mod tests {
    use crate::ir::ops::testing::{assert_close, floats, infer, run};
    use crate::ir::{DType, Tensor, TensorType};

    fn image() -> Tensor {
        Tensor::from_f32(
            &[1, 1, 4, 4],
            &(1..=16).map(|v| v as f32).collect::<Vec<_>>(),
        )
    }

    fn pool_inputs(ceil: bool, exclude: bool) -> Vec<(&'static str, Tensor)> {
        vec![
            ("x", image()),
            ("kernel_sizes", Tensor::vec_i32(&[3, 3])),
            ("strides", Tensor::vec_i32(&[2, 2])),
            ("pad_type", Tensor::scalar_string("valid")),
            ("exclude_padding_from_average", Tensor::scalar_bool(exclude)),
            ("ceil_mode", Tensor::scalar_bool(ceil)),
        ]
    }

    #[test]
    fn ceil_mode_adds_partial_windows() {
        let floor = pool_inputs(false, false);
        assert_eq!(
            infer("avg_pool", &floor).unwrap()[0],
            TensorType::fixed(DType::F32, &[1, 1, 1, 1])
        );
        let ceil = pool_inputs(true, true);
        let ty = infer("avg_pool", &ceil).unwrap();
        assert_eq!(ty[0], TensorType::fixed(DType::F32, &[1, 1, 2, 2]));
        // Windows rows/cols {0,1,2} and {2,3}: averages over the in-bounds part.
        let want = [
            (1.0 + 2.0 + 3.0 + 5.0 + 6.0 + 7.0 + 9.0 + 10.0 + 11.0) / 9.0,
            (3.0 + 4.0 + 7.0 + 8.0 + 11.0 + 12.0) / 6.0,
            (9.0 + 10.0 + 11.0 + 13.0 + 14.0 + 15.0) / 6.0,
            (11.0 + 12.0 + 15.0 + 16.0) / 4.0,
        ];
        assert_close(&floats(&run("avg_pool", &ceil, &ty)[0]), &want, 1e-5);
        let mut max_inputs = ceil.clone();
        max_inputs.retain(|(n, _)| *n != "exclude_padding_from_average");
        assert_eq!(
            floats(&run("max_pool", &max_inputs, &ty)[0]),
            vec![11.0, 12.0, 15.0, 16.0]
        );
    }

    #[test]
    fn ceil_mode_needs_symmetric_padding_and_2d() {
        let mut inputs = pool_inputs(true, false);
        inputs[3] = ("pad_type", Tensor::scalar_string("custom"));
        inputs.push(("pad", Tensor::vec_i32(&[0, 1, 1, 1])));
        assert!(infer("avg_pool", &inputs)
            .unwrap_err()
            .contains("symmetric"));
        let x3 = Tensor::from_f32(&[1, 1, 2, 2, 2], &[0.0; 8]);
        let inputs = [
            ("x", x3),
            ("kernel_sizes", Tensor::vec_i32(&[1, 1, 1])),
            ("pad_type", Tensor::scalar_string("valid")),
            ("ceil_mode", Tensor::scalar_bool(true)),
        ];
        assert!(infer("max_pool", &inputs).is_err());
    }

    #[test]
    fn avg_pool_counts_padding_unless_excluded() {
        let mut inputs = vec![
            ("x", image()),
            ("kernel_sizes", Tensor::vec_i32(&[2, 2])),
            ("strides", Tensor::vec_i32(&[2, 2])),
            ("pad_type", Tensor::scalar_string("custom")),
            ("pad", Tensor::vec_i32(&[1, 1, 1, 1])),
        ];
        let ty = infer("avg_pool", &inputs).unwrap();
        assert_eq!(ty[0], TensorType::fixed(DType::F32, &[1, 1, 3, 3]));
        let out = floats(&run("avg_pool", &inputs, &ty)[0]);
        assert_close(&out[..3], &[0.25, (2.0 + 3.0) / 4.0, 1.0], 1e-6);
        inputs.push(("exclude_padding_from_average", Tensor::scalar_bool(true)));
        let out = floats(&run("avg_pool", &inputs, &ty)[0]);
        assert_close(&out[..3], &[1.0, 2.5, 4.0], 1e-6);
        assert_close(&out[4..5], &[(6.0 + 7.0 + 10.0 + 11.0) / 4.0], 1e-6);
    }
}
