//! Kernels of elementwise unary ops.

use crate::interp::{KernelArgs, Value};
use crate::ir::ops::elementwise_binary::kernels::PARALLEL_ELEMENTS;
use crate::ir::ops::elementwise_unary::cast_target;
use crate::ir::ops::OpArgs;
use crate::ir::DType;
use half::f16;
use ndarray::Zip;

/// Applies `f` to every element of `x` as f32.
pub fn unary(
    args: &KernelArgs,
    f: impl Fn(f32) -> f32 + Sync + Send,
) -> Result<Vec<Value>, String> {
    let x = args.get("x")?.floats()?;
    let zip = Zip::from(&*x);
    Ok(vec![Value::Float(if x.len() >= PARALLEL_ELEMENTS {
        zip.par_map_collect(|&v| f(v))
    } else {
        zip.map_collect(|&v| f(v))
    })])
}

/// Applies `float` to float inputs and `int` to integer inputs, keeping the kind.
fn unary_with_int(
    args: &KernelArgs,
    float: impl Fn(f32) -> f32 + Sync + Send,
    int: impl Fn(i32) -> i32,
) -> Result<Vec<Value>, String> {
    match args.get("x")? {
        Value::Int(a) => Ok(vec![Value::Int(a.mapv(int))]),
        _ => unary(args, float),
    }
}

/// `logical_not`.
pub fn logical_not(args: &KernelArgs) -> Result<Vec<Value>, String> {
    Ok(vec![Value::Bool(args.get("x")?.bool()?.mapv(|v| !v))])
}

/// `abs`.
pub fn abs(args: &KernelArgs) -> Result<Vec<Value>, String> {
    unary_with_int(args, f32::abs, i32::wrapping_abs)
}

/// `ceil`.
pub fn ceil(args: &KernelArgs) -> Result<Vec<Value>, String> {
    unary(args, f32::ceil)
}

/// `floor`.
pub fn floor(args: &KernelArgs) -> Result<Vec<Value>, String> {
    unary(args, f32::floor)
}

/// `round`: halves round to even, as NumPy's `round` does in coremltools' value inference.
pub fn round(args: &KernelArgs) -> Result<Vec<Value>, String> {
    unary(args, f32::round_ties_even)
}

/// `sign` (0 for 0, NaN stays NaN).
pub fn sign(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let float = |v: f32| {
        if v > 0.0 {
            1.0
        } else if v < 0.0 {
            -1.0
        } else {
            v
        }
    };
    unary_with_int(args, float, i32::signum)
}

/// `sqrt`.
pub fn sqrt(args: &KernelArgs) -> Result<Vec<Value>, String> {
    unary(args, f32::sqrt)
}

/// `rsqrt`: `1 / sqrt(x + epsilon)`, epsilon 1e-12 by default.
pub fn rsqrt(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let eps = args.float("epsilon")? as f32;
    unary(args, |v| 1.0 / (v + eps).sqrt())
}

/// `exp`.
pub fn exp(args: &KernelArgs) -> Result<Vec<Value>, String> {
    unary(args, f32::exp)
}

/// `exp2`.
pub fn exp2(args: &KernelArgs) -> Result<Vec<Value>, String> {
    unary(args, f32::exp2)
}

/// `log`: `ln(x + epsilon)`, epsilon 1e-45 by default.
pub fn log(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let eps = args.float("epsilon")? as f32;
    unary(args, |v| (v + eps).ln())
}

/// `sin`.
pub fn sin(args: &KernelArgs) -> Result<Vec<Value>, String> {
    unary(args, f32::sin)
}

/// `cos`.
pub fn cos(args: &KernelArgs) -> Result<Vec<Value>, String> {
    unary(args, f32::cos)
}

/// `tan`.
pub fn tan(args: &KernelArgs) -> Result<Vec<Value>, String> {
    unary(args, f32::tan)
}

/// `asin`.
pub fn asin(args: &KernelArgs) -> Result<Vec<Value>, String> {
    unary(args, f32::asin)
}

/// `acos`.
pub fn acos(args: &KernelArgs) -> Result<Vec<Value>, String> {
    unary(args, f32::acos)
}

/// `atan`.
pub fn atan(args: &KernelArgs) -> Result<Vec<Value>, String> {
    unary(args, f32::atan)
}

/// `sinh`.
pub fn sinh(args: &KernelArgs) -> Result<Vec<Value>, String> {
    unary(args, f32::sinh)
}

/// `cosh`.
pub fn cosh(args: &KernelArgs) -> Result<Vec<Value>, String> {
    unary(args, f32::cosh)
}

/// `atanh`.
pub fn atanh(args: &KernelArgs) -> Result<Vec<Value>, String> {
    unary(args, f32::atanh)
}

/// `tanh`.
pub fn tanh(args: &KernelArgs) -> Result<Vec<Value>, String> {
    unary(args, f32::tanh)
}

/// `erf`.
pub fn erf(args: &KernelArgs) -> Result<Vec<Value>, String> {
    unary(args, |v| erf_f64(v as f64) as f32)
}

/// `inverse`: `1 / (x + epsilon)`, epsilon 1e-4 by default.
pub fn inverse(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let eps = args.float("epsilon")? as f32;
    unary(args, |v| 1.0 / (v + eps))
}

/// `square`.
pub fn square(args: &KernelArgs) -> Result<Vec<Value>, String> {
    unary_with_int(args, |v| v * v, |v| v.wrapping_mul(v))
}

/// `threshold`: `max(x, alpha)`.
pub fn threshold(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let alpha = args.float("alpha")? as f32;
    let int_alpha = args.int("alpha")? as i32;
    unary_with_int(args, |v| v.max(alpha), |v| v.max(int_alpha))
}

/// `cast`: floats to ints truncate toward zero, to fp16 round to nearest even, to bool test
/// for non-zero.
pub fn cast(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?;
    let dtype = cast_target(args.str("dtype")?)?;
    let out = match dtype {
        DType::Bool => Value::Bool(x.to_f32_array()?.mapv(|v| v != 0.0)),
        DType::F16 => Value::Float(x.to_f32_array()?.mapv(|v| f16::from_f32(v).to_f32())),
        d if d.is_float() => Value::Float(x.to_f32_array()?),
        d => {
            let ints = match x {
                Value::Int(a) => a.clone(),
                Value::Bool(a) => a.mapv(|v| v as i32),
                Value::Float(a) => a.mapv(|v| v as i32),
                Value::Str(_) => return Err("cannot cast strings".into()),
            };
            let wrapped = crate::ir::Tensor::from_i64_as(
                d,
                ints.shape(),
                &ints.iter().map(|&v| v as i64).collect::<Vec<_>>(),
            );
            Value::from_tensor(&wrapped)
        }
    };
    Ok(vec![out])
}

/// The error function of the platform's C math library (the one the Rust standard library
/// links; glibc documents it within 1 ulp).
pub fn erf_f64(x: f64) -> f64 {
    cmath::erf(x)
}

mod cmath {
    unsafe extern "C" {
        /// C99 `erf` from the math library.
        pub safe fn erf(x: f64) -> f64;
    }
}

/// `clip`: `min(max(x, alpha), beta)`.
pub fn clip(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let (alpha, beta) = (args.float("alpha")? as f32, args.float("beta")? as f32);
    unary(args, |v| v.max(alpha).min(beta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::ops::testing::{floats, run};
    use crate::ir::{Tensor, TensorType};

    #[test]
    fn round_is_half_to_even_and_cast_truncates() {
        let x = Tensor::from_f32(&[5], &[0.5, 1.5, 2.5, -0.5, -2.7]);
        let t = [TensorType::fixed(DType::F32, &[5])];
        assert_eq!(
            floats(&run("round", &[("x", x.clone())], &t)[0]),
            vec![0.0, 2.0, 2.0, -0.0, -3.0]
        );
        let out = run(
            "cast",
            &[("x", x), ("dtype", Tensor::scalar_string("int32"))],
            &[TensorType::fixed(DType::I32, &[5])],
        );
        assert_eq!(
            out[0].int().unwrap().iter().copied().collect::<Vec<_>>(),
            vec![0, 1, 2, 0, -2]
        );
    }

    #[test]
    fn integer_unary_ops_stay_exact() {
        let x = Tensor::from_i32(&[3], &[-16_777_217, 0, 5]);
        let t = [TensorType::fixed(DType::I32, &[3])];
        let ints = |v: &Value| v.int().unwrap().iter().copied().collect::<Vec<_>>();
        assert_eq!(
            ints(&run("abs", &[("x", x.clone())], &t)[0]),
            vec![16_777_217, 0, 5]
        );
        assert_eq!(
            ints(&run("sign", &[("x", x.clone())], &t)[0]),
            vec![-1, 0, 1]
        );
        let out = run(
            "threshold",
            &[("x", x), ("alpha", Tensor::scalar_i32(1))],
            &t,
        );
        assert_eq!(ints(&out[0]), vec![1, 1, 5]);
    }

    #[test]
    fn erf_matches_tables() {
        // Abramowitz & Stegun table 7.1.
        assert!((erf_f64(0.5) - 0.520_499_877_8).abs() < 1e-9);
        assert!((erf_f64(1.0) - 0.842_700_792_9).abs() < 1e-9);
        assert!((erf_f64(-2.0) + 0.995_322_265_0).abs() < 1e-9);
        assert!((erf_f64(3.0) - 0.999_977_909_5).abs() < 1e-9);
    }
}
