//! Kernels of elementwise binary ops.

use crate::interp::{KernelArgs, Value};
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

/// `f` made to return NaN when either operand is NaN (as MIL's `maximum`/`minimum` do).
fn nan_propagating(f: fn(f32, f32) -> f32) -> impl Fn(f32, f32) -> f32 + Sync + Send {
    move |a, b| {
        if a.is_nan() || b.is_nan() {
            f32::NAN
        } else {
            f(a, b)
        }
    }
}

/// `maximum`.
pub fn maximum(args: &KernelArgs) -> Result<Vec<Value>, String> {
    binary(args, nan_propagating(f32::max), i32::max)
}

/// `minimum`.
pub fn minimum(args: &KernelArgs) -> Result<Vec<Value>, String> {
    binary(args, nan_propagating(f32::min), i32::min)
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

#[cfg(test)]
mod tests {
    use crate::ir::ops::testing::{floats, run};
    use crate::ir::{DType, Tensor, TensorType};

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
}
