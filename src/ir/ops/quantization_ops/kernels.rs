//! Kernels of the iOS17 activation quantization ops `quantize` and `dequantize`.

use crate::interp::{KernelArgs, Value};
use crate::ir::ops::axis::norm_axis;
use crate::ir::ops::OpArgs;
use ndarray::ArrayD;

/// Per-element scale and zero point: scalars, or vectors along `axis`.
struct Params {
    scale: Vec<f32>,
    zero_point: Vec<f32>,
    /// Elements per step along the axis (1 for scalars: every element uses entry 0).
    stride: usize,
    /// Entries (1 for scalars).
    count: usize,
}

impl Params {
    fn read(args: &KernelArgs, shape: &[usize]) -> Result<Params, String> {
        let scale: Vec<f32> = args.get("scale")?.to_f32_array()?.iter().copied().collect();
        let zero_point: Vec<f32> = match args.opt("zero_point") {
            Some(z) => z.to_f32_array()?.iter().copied().collect(),
            None => vec![0.0; scale.len()],
        };
        if zero_point.len() != scale.len() {
            return Err("scale and zero_point differ in size".into());
        }
        let (stride, count) = match args.opt("axis") {
            None => (1, 1),
            Some(_) => {
                let axis = norm_axis(args.int("axis")?, shape.len())?;
                (shape[axis + 1..].iter().product(), shape[axis])
            }
        };
        if scale.len() != count {
            return Err(format!("{} scales for {count} channels", scale.len()));
        }
        Ok(Params {
            scale,
            zero_point,
            stride,
            count,
        })
    }

    /// The (scale, zero point) of flat element `i`.
    fn at(&self, i: usize) -> (f32, f32) {
        let c = (i / self.stride) % self.count;
        (self.scale[c], self.zero_point[c])
    }
}

/// `quantize`: `clip(round_half_even(input / scale) + zero_point)` to the int8 or uint8 range.
pub fn quantize(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("input")?.float()?;
    let params = Params::read(args, x.shape())?;
    let (lo, hi) = match args.str("output_dtype")? {
        "int8" => (-128.0, 127.0),
        "uint8" => (0.0, 255.0),
        other => return Err(format!("output_dtype '{other}'")),
    };
    let values: Vec<i32> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let (s, z) = params.at(i);
            ((v / s).round_ties_even() + z).clamp(lo, hi) as i32
        })
        .collect();
    let out = ArrayD::from_shape_vec(x.raw_dim(), values).map_err(|e| e.to_string())?;
    Ok(vec![Value::Int(out)])
}

/// `dequantize`: `scale * (input - zero_point)`.
pub fn dequantize(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("input")?.int()?;
    let params = Params::read(args, x.shape())?;
    let values: Vec<f32> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let (s, z) = params.at(i);
            (v as f32 - z) * s
        })
        .collect();
    let out = ArrayD::from_shape_vec(x.raw_dim(), values).map_err(|e| e.to_string())?;
    Ok(vec![Value::Float(out)])
}

#[cfg(test)]
mod tests {
    use crate::ir::ops::testing::{floats, ints, run};
    use crate::ir::{DType, Tensor, TensorType};

    #[test]
    fn quantize_rounds_halves_to_even_and_saturates() {
        let x = Tensor::from_f32(&[6], &[0.25, 0.75, -0.25, 100.0, -100.0, 0.5]);
        let out = run(
            "quantize",
            &[
                ("input", x),
                ("scale", Tensor::scalar_f32(0.5)),
                ("zero_point", Tensor::from_i64_as(DType::I8, &[], &[1])),
                ("output_dtype", Tensor::scalar_string("int8")),
            ],
            &[TensorType::fixed(DType::I8, &[6])],
        );
        // 0.5 → 0 + 1, 1.5 → 2 + 1, -0.5 → -0 + 1, 200 → 127, -200 → -128, 1 → 2.
        assert_eq!(ints(&out[0]), vec![1, 3, 1, 127, -128, 2]);
    }

    #[test]
    fn per_axis_parameters_follow_the_axis() {
        let q = Tensor::from_i64_as(DType::U8, &[2, 2], &[10, 10, 20, 20]);
        let out = run(
            "dequantize",
            &[
                ("input", q),
                ("scale", Tensor::from_f32(&[2], &[0.5, 2.0])),
                ("zero_point", Tensor::from_i64_as(DType::U8, &[2], &[10, 0])),
                ("axis", Tensor::scalar_i32(1)),
            ],
            &[TensorType::fixed(DType::F32, &[2, 2])],
        );
        assert_eq!(floats(&out[0]), vec![0.0, 20.0, 5.0, 40.0]);
    }
}
