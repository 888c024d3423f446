//! Kernels of elementwise ops.

use crate::interp::{KernelArgs, Value};
use crate::ir::ops::elementwise_binary::cast_target;
use crate::ir::DType;
use half::f16;
use ndarray::{ArrayD, IxDyn, Zip};

/// Results with at least this many elements are computed across the rayon pool (each element
/// by itself, so the split does not change any value).
pub const PARALLEL_ELEMENTS: usize = 1 << 15;

/// Broadcasts two arrays to their common shape and combines them elementwise.
pub fn zip_broadcast<A: Sync, B: Sync, C: Send>(
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    f: impl Fn(&A, &B) -> C + Sync + Send,
) -> Result<ArrayD<C>, String> {
    let shape = broadcast_shape(a.shape(), b.shape())?;
    let av = a.broadcast(IxDyn(&shape)).ok_or("broadcast failed")?;
    let bv = b.broadcast(IxDyn(&shape)).ok_or("broadcast failed")?;
    let zip = Zip::from(&av).and(&bv);
    Ok(if av.len() >= PARALLEL_ELEMENTS {
        zip.par_map_collect(f)
    } else {
        zip.map_collect(f)
    })
}

/// The NumPy broadcast of two concrete shapes.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let rank = a.len().max(b.len());
    let at = |s: &[usize], i: usize| {
        if i + s.len() >= rank {
            s[i + s.len() - rank]
        } else {
            1
        }
    };
    (0..rank)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => Err(format!("shapes {a:?} and {b:?} do not broadcast")),
        })
        .collect()
}

/// Applies a float or an integer function to `x` and `y`, by their kind.
fn binary(
    args: &KernelArgs,
    float: impl Fn(f32, f32) -> f32 + Sync + Send,
    int: impl Fn(i32, i32) -> i32 + Sync + Send,
) -> Result<Vec<Value>, String> {
    let (x, y) = (args.get("x")?, args.get("y")?);
    let out = match (x, y) {
        (Value::Int(a), Value::Int(b)) => Value::Int(zip_broadcast(a, b, |&p, &q| int(p, q))?),
        _ => Value::Float(zip_broadcast(&*x.floats()?, &*y.floats()?, |&p, &q| {
            float(p, q)
        })?),
    };
    Ok(vec![out])
}

/// `add`.
pub fn add(args: &KernelArgs) -> Result<Vec<Value>, String> {
    binary(args, |a, b| a + b, i32::wrapping_add)
}

/// `sub`.
pub fn sub(args: &KernelArgs) -> Result<Vec<Value>, String> {
    binary(args, |a, b| a - b, i32::wrapping_sub)
}

/// `mul`.
pub fn mul(args: &KernelArgs) -> Result<Vec<Value>, String> {
    binary(args, |a, b| a * b, i32::wrapping_mul)
}

/// `real_div` (integer operands divide exactly, then truncate toward zero).
pub fn real_div(args: &KernelArgs) -> Result<Vec<Value>, String> {
    binary(
        args,
        |a, b| a / b,
        |a, b| {
            if b == 0 {
                0
            } else {
                (a as f64 / b as f64) as i32
            }
        },
    )
}

/// `pow` (a negative integer exponent gives 0 unless the base is ±1).
pub fn pow(args: &KernelArgs) -> Result<Vec<Value>, String> {
    binary(args, f32::powf, |a, b| match (a, b) {
        (_, b) if b >= 0 => a.wrapping_pow(b as u32),
        (1, _) => 1,
        (-1, b) => {
            if b % 2 == 0 {
                1
            } else {
                -1
            }
        }
        _ => 0,
    })
}

/// `maximum`.
pub fn maximum(args: &KernelArgs) -> Result<Vec<Value>, String> {
    binary(
        args,
        |a, b| {
            if a.is_nan() || b.is_nan() {
                f32::NAN
            } else {
                a.max(b)
            }
        },
        i32::max,
    )
}

/// `minimum`.
pub fn minimum(args: &KernelArgs) -> Result<Vec<Value>, String> {
    binary(
        args,
        |a, b| {
            if a.is_nan() || b.is_nan() {
                f32::NAN
            } else {
                a.min(b)
            }
        },
        i32::min,
    )
}

/// Integer division rounding toward negative infinity (0 for a zero divisor).
fn floor_div_i32(a: i32, b: i32) -> i32 {
    if b == 0 {
        return 0;
    }
    let q = a.wrapping_div(b);
    if (a.wrapping_rem(b) != 0) && ((a < 0) != (b < 0)) {
        q - 1
    } else {
        q
    }
}

/// `floor_div`: `floor(x / y)`.
pub fn floor_div(args: &KernelArgs) -> Result<Vec<Value>, String> {
    binary(args, |a, b| (a / b).floor(), floor_div_i32)
}

/// `mod`: the remainder with the sign of the divisor (NumPy `mod`).
pub fn modulo(args: &KernelArgs) -> Result<Vec<Value>, String> {
    binary(
        args,
        |a, b| {
            let r = a % b;
            if r != 0.0 && ((r < 0.0) != (b < 0.0)) {
                r + b
            } else {
                r
            }
        },
        |a, b| a.wrapping_sub(floor_div_i32(a, b).wrapping_mul(b)),
    )
}

/// Compares `x` and `y` elementwise.
fn compare(
    args: &KernelArgs,
    float: impl Fn(f32, f32) -> bool + Sync + Send,
    int: impl Fn(i32, i32) -> bool + Sync + Send,
) -> Result<Vec<Value>, String> {
    let (x, y) = (args.get("x")?, args.get("y")?);
    let out = match (x, y) {
        (Value::Int(a), Value::Int(b)) => zip_broadcast(a, b, |&p, &q| int(p, q))?,
        (Value::Bool(a), Value::Bool(b)) => zip_broadcast(a, b, |&p, &q| int(p as i32, q as i32))?,
        _ => zip_broadcast(&*x.floats()?, &*y.floats()?, |&p, &q| float(p, q))?,
    };
    Ok(vec![Value::Bool(out)])
}

/// `equal`.
pub fn equal(args: &KernelArgs) -> Result<Vec<Value>, String> {
    compare(args, |a, b| a == b, |a, b| a == b)
}

/// `not_equal`.
pub fn not_equal(args: &KernelArgs) -> Result<Vec<Value>, String> {
    compare(args, |a, b| a != b, |a, b| a != b)
}

/// `less`.
pub fn less(args: &KernelArgs) -> Result<Vec<Value>, String> {
    compare(args, |a, b| a < b, |a, b| a < b)
}

/// `less_equal`.
pub fn less_equal(args: &KernelArgs) -> Result<Vec<Value>, String> {
    compare(args, |a, b| a <= b, |a, b| a <= b)
}

/// `greater`.
pub fn greater(args: &KernelArgs) -> Result<Vec<Value>, String> {
    compare(args, |a, b| a > b, |a, b| a > b)
}

/// `greater_equal`.
pub fn greater_equal(args: &KernelArgs) -> Result<Vec<Value>, String> {
    compare(args, |a, b| a >= b, |a, b| a >= b)
}

fn logical(
    args: &KernelArgs,
    f: impl Fn(bool, bool) -> bool + Sync + Send,
) -> Result<Vec<Value>, String> {
    let (x, y) = (args.get("x")?.bool()?, args.get("y")?.bool()?);
    Ok(vec![Value::Bool(zip_broadcast(x, y, |&p, &q| f(p, q))?)])
}

/// `logical_and`.
pub fn logical_and(args: &KernelArgs) -> Result<Vec<Value>, String> {
    logical(args, |a, b| a && b)
}

/// `logical_or`.
pub fn logical_or(args: &KernelArgs) -> Result<Vec<Value>, String> {
    logical(args, |a, b| a || b)
}

/// `logical_xor`.
pub fn logical_xor(args: &KernelArgs) -> Result<Vec<Value>, String> {
    logical(args, |a, b| a != b)
}

/// `logical_not`.
pub fn logical_not(args: &KernelArgs) -> Result<Vec<Value>, String> {
    Ok(vec![Value::Bool(args.get("x")?.bool()?.mapv(|v| !v))])
}

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
    let eps = args.float_or("epsilon", 1e-12)?;
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
    let eps = args.float_or("epsilon", 1e-45)?;
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

/// `tanh`.
pub fn tanh(args: &KernelArgs) -> Result<Vec<Value>, String> {
    unary(args, f32::tanh)
}

/// `atanh`.
pub fn atanh(args: &KernelArgs) -> Result<Vec<Value>, String> {
    unary(args, f32::atanh)
}

/// `erf`.
pub fn erf(args: &KernelArgs) -> Result<Vec<Value>, String> {
    unary(args, |v| erf_f64(v as f64) as f32)
}

/// `inverse`: `1 / (x + epsilon)`, epsilon 1e-4 by default.
pub fn inverse(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let eps = args.float_or("epsilon", 1e-4)?;
    unary(args, |v| 1.0 / (v + eps))
}

/// `square`.
pub fn square(args: &KernelArgs) -> Result<Vec<Value>, String> {
    unary_with_int(args, |v| v * v, |v| v.wrapping_mul(v))
}

/// `threshold`: `max(x, alpha)`.
pub fn threshold(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let alpha = args.float_or("alpha", 0.0)?;
    let int_alpha = args.int_or("alpha", 0)? as i32;
    unary_with_int(args, |v| v.max(alpha), |v| v.max(int_alpha))
}

/// `select`: `a` where `cond` holds, else `b`, broadcasting all three.
pub fn select(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let cond = args.get("cond")?.bool()?;
    let (a, b) = (args.get("a")?, args.get("b")?);
    fn pick<T: Clone>(c: &ArrayD<bool>, a: &ArrayD<T>, b: &ArrayD<T>) -> Result<ArrayD<T>, String> {
        let shape = broadcast_shape(&broadcast_shape(c.shape(), a.shape())?, b.shape())?;
        let shape = IxDyn(&shape);
        let (cv, av, bv) = (
            c.broadcast(shape.clone()).ok_or("broadcast failed")?,
            a.broadcast(shape.clone()).ok_or("broadcast failed")?,
            b.broadcast(shape).ok_or("broadcast failed")?,
        );
        Ok(Zip::from(&cv)
            .and(&av)
            .and(&bv)
            .map_collect(|&c, x, y| if c { x.clone() } else { y.clone() }))
    }
    let out = match (a, b) {
        (Value::Float(a), Value::Float(b)) => Value::Float(pick(cond, a, b)?),
        (Value::Int(a), Value::Int(b)) => Value::Int(pick(cond, a, b)?),
        (Value::Bool(a), Value::Bool(b)) => Value::Bool(pick(cond, a, b)?),
        (Value::Str(a), Value::Str(b)) => Value::Str(pick(cond, a, b)?),
        (a, b) => return Err(format!("a is {} but b is {}", a.kind(), b.kind())),
    };
    Ok(vec![out])
}

/// `identity`.
pub fn identity(args: &KernelArgs) -> Result<Vec<Value>, String> {
    Ok(vec![args.get("x")?.clone()])
}

/// `cast`: floats to ints truncate toward zero, to fp16 round to nearest even, to bool test
/// for non-zero.
pub fn cast(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?;
    let dtype = cast_target(args.str_or("dtype", "")?)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::ops::testing::{floats, run};
    use crate::ir::{Tensor, TensorType};

    #[test]
    fn floor_div_and_mod_follow_numpy() {
        let x = Tensor::from_i32(&[4], &[7, -7, 7, -7]);
        let y = Tensor::from_i32(&[4], &[2, 2, -2, -2]);
        let t = [TensorType::fixed(DType::I32, &[4])];
        let q = run("floor_div", &[("x", x.clone()), ("y", y.clone())], &t);
        assert_eq!(
            q[0].int().unwrap().iter().copied().collect::<Vec<_>>(),
            vec![3, -4, -4, 3]
        );
        let r = run("mod", &[("x", x), ("y", y)], &t);
        assert_eq!(
            r[0].int().unwrap().iter().copied().collect::<Vec<_>>(),
            vec![1, 1, -1, -1]
        );
        let xf = Tensor::from_f32(&[2], &[-7.5, 7.5]);
        let yf = Tensor::from_f32(&[2], &[2.0, -2.0]);
        let r = run(
            "mod",
            &[("x", xf), ("y", yf)],
            &[TensorType::fixed(DType::F32, &[2])],
        );
        assert_eq!(floats(&r[0]), vec![0.5, -0.5]);
    }

    #[test]
    fn binary_broadcasts_and_compares() {
        let x = Tensor::from_f32(&[2, 1], &[1.0, 2.0]);
        let y = Tensor::from_f32(&[3], &[1.0, 2.0, 3.0]);
        let out = run(
            "sub",
            &[("x", x.clone()), ("y", y.clone())],
            &[TensorType::fixed(DType::F32, &[2, 3])],
        );
        assert_eq!(floats(&out[0]), vec![0.0, -1.0, -2.0, 1.0, 0.0, -1.0]);
        let out = run(
            "less_equal",
            &[("x", x), ("y", y)],
            &[TensorType::fixed(DType::Bool, &[2, 3])],
        );
        let b: Vec<bool> = out[0].bool().unwrap().iter().copied().collect();
        assert_eq!(b, vec![true, true, true, false, true, true]);
    }

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

    #[test]
    fn select_broadcasts_condition() {
        let c = Tensor::from_bool(&[2, 1], &[true, false]);
        let a = Tensor::from_f32(&[2], &[1.0, 2.0]);
        let b = Tensor::from_f32(&[], &[9.0]);
        let out = run(
            "select",
            &[("cond", c), ("a", a), ("b", b)],
            &[TensorType::fixed(DType::F32, &[2, 2])],
        );
        assert_eq!(floats(&out[0]), vec![1.0, 2.0, 9.0, 9.0]);
    }
}
