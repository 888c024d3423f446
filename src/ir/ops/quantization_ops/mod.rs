//! Activation quantization (iOS17): `quantize` (float → int8/uint8) and `dequantize` (back),
//! per tensor or along one axis, as coremltools defines them in
//! `converters/mil/mil/ops/defs/iOS17/quantization_ops.py`:
//! `quantize = clip(round(input / scale) + zero_point)` (halves to even) and
//! `dequantize = scale * (input - zero_point)`.

pub mod kernels;

use self::kernels as k;
use super::axis::norm_axis;
use super::{op, InferArgs, OpArgs, OpDef, Param, ParamType};
use crate::ir::{DType, Target, TensorType};

const QUANTIZE: &[Param] = &[
    Param::new("input", ParamType::T),
    Param::new("zero_point", ParamType::Any)
        .optional()
        .constant(),
    Param::new("scale", ParamType::T).constant(),
    Param::new("axis", ParamType::Int).optional().constant(),
    Param::new("output_dtype", ParamType::Str).constant(),
];

const DEQUANTIZE: &[Param] = &[
    Param::new("input", ParamType::Any),
    Param::new("zero_point", ParamType::Any)
        .optional()
        .constant(),
    Param::new("scale", ParamType::T).constant(),
    Param::new("axis", ParamType::Int).optional().constant(),
];

/// The integer types of quantized values.
const QUANTIZED: &[DType] = &[DType::I8, DType::U8];

/// Checks `scale`, `zero_point` and `axis` against the input: scalars without an axis, or
/// vectors of the input's size along `axis`.
fn check_params(a: &InferArgs, input: &TensorType) -> Result<(), String> {
    let scale = a.ty("scale")?;
    let zero_point = a.opt_ty("zero_point");
    let axis = a.value("axis").map(|t| t.scalar_i64());
    match scale.rank() {
        0 => {
            if axis.is_some() {
                return Err("axis must be omitted when scale is a scalar".into());
            }
            if zero_point.is_some_and(|z| z.rank() != 0) {
                return Err("zero_point must be a scalar when scale is".into());
            }
        }
        1 => {
            let axis = axis
                .flatten()
                .ok_or("axis is required when scale is a vector")?;
            let axis = norm_axis(axis, input.rank())?;
            let size = input.shape[axis].fixed();
            for (name, ty) in [("scale", Some(scale)), ("zero_point", zero_point)] {
                let Some(ty) = ty else { continue };
                let n = ty.shape.first().and_then(|d| d.fixed());
                if ty.rank() != 1 || (size.is_some() && n != size) {
                    return Err(format!(
                        "{name} has type {ty}, expected a vector of input axis {axis} ({})",
                        input.shape[axis]
                    ));
                }
            }
        }
        r => return Err(format!("scale must be a scalar or a vector, has rank {r}")),
    }
    Ok(())
}

fn infer_quantize(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let input = a.ty("input")?;
    if input.rank() == 0 {
        return Err("input must have rank 1 or more".into());
    }
    let out = a.str("output_dtype")?;
    let dtype = match out {
        "int8" => DType::I8,
        "uint8" => DType::U8,
        other => return Err(format!("output_dtype must be int8 or uint8, got '{other}'")),
    };
    if let Some(z) = a.opt_ty("zero_point") {
        if z.dtype != dtype {
            return Err(format!("zero_point is {}, output_dtype is {out}", z.dtype));
        }
    }
    if let Some(s) = a.value("scale") {
        if s.to_f32_vec().contains(&0.0) {
            return Err("scale must not be 0".into());
        }
    }
    check_params(a, input)?;
    Ok(vec![input.with_dtype(dtype)])
}

fn infer_dequantize(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let input = a.ty("input")?;
    if !QUANTIZED.contains(&input.dtype) {
        return Err(format!("input is {}, expected int8 or uint8", input.dtype));
    }
    if input.rank() == 0 {
        return Err("input must have rank 1 or more".into());
    }
    if let Some(z) = a.opt_ty("zero_point") {
        if z.dtype != input.dtype {
            return Err(format!(
                "zero_point is {}, input is {}",
                z.dtype, input.dtype
            ));
        }
    }
    check_params(a, input)?;
    Ok(vec![input.with_dtype(a.ty("scale")?.dtype)])
}

/// The definitions of this family.
pub const DEFS: &[OpDef] = &[
    op("quantize", QUANTIZE, infer_quantize, k::quantize).since(Target::IOS17),
    op("dequantize", DEQUANTIZE, infer_dequantize, k::dequantize).since(Target::IOS17),
];

#[cfg(test)]
mod tests {
    use crate::ir::ops::testing::infer;
    use crate::ir::{DType, Tensor, TensorType};

    fn int8(values: &[i32]) -> Tensor {
        Tensor::from_i64_as(
            DType::I8,
            &[values.len()],
            &values.iter().map(|&v| v as i64).collect::<Vec<_>>(),
        )
    }

    #[test]
    fn quantize_types_follow_output_dtype_and_zero_point() {
        let x = Tensor::from_f32(&[2, 3], &[0.0; 6]);
        let ok = infer(
            "quantize",
            &[
                ("input", x.clone()),
                ("scale", Tensor::from_f32(&[3], &[0.1, 0.2, 0.3])),
                ("zero_point", int8(&[0, 1, -1])),
                ("axis", Tensor::scalar_i32(1)),
                ("output_dtype", Tensor::scalar_string("int8")),
            ],
        )
        .unwrap();
        assert_eq!(ok, vec![TensorType::fixed(DType::I8, &[2, 3])]);
        let mismatch = infer(
            "quantize",
            &[
                ("input", x.clone()),
                ("scale", Tensor::scalar_f32(0.1)),
                ("zero_point", Tensor::from_i64_as(DType::I8, &[], &[0])),
                ("output_dtype", Tensor::scalar_string("uint8")),
            ],
        );
        assert!(mismatch.unwrap_err().contains("zero_point"));
        let no_axis = infer(
            "quantize",
            &[
                ("input", x),
                ("scale", Tensor::from_f32(&[3], &[0.1, 0.2, 0.3])),
                ("output_dtype", Tensor::scalar_string("uint8")),
            ],
        );
        assert!(no_axis.unwrap_err().contains("axis"));
    }

    #[test]
    fn dequantize_needs_8_bit_input_and_returns_the_scale_type() {
        let ok = infer(
            "dequantize",
            &[
                ("input", int8(&[1, 2, 3])),
                ("scale", Tensor::scalar_f32(0.5)),
            ],
        )
        .unwrap();
        assert_eq!(ok, vec![TensorType::fixed(DType::F32, &[3])]);
        let wide = infer(
            "dequantize",
            &[
                ("input", Tensor::vec_i32(&[1, 2, 3])),
                ("scale", Tensor::scalar_f32(0.5)),
            ],
        );
        assert!(wide.unwrap_err().contains("int8 or uint8"));
    }
}
