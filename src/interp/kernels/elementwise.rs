//! Kernels of elementwise binary and unary ops.

use crate::interp::{KernelArgs, Value};
use ndarray::{ArrayD, IxDyn, Zip};

/// Broadcasts two arrays to their common shape and combines them elementwise.
pub fn zip_broadcast<A: Clone, B: Clone, C>(
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    f: impl Fn(&A, &B) -> C,
) -> Result<ArrayD<C>, String> {
    let rank = a.ndim().max(b.ndim());
    let pad = |s: &[usize]| -> Vec<usize> { std::iter::repeat_n(1, rank - s.len()).chain(s.iter().copied()).collect() };
    let (sa, sb) = (pad(a.shape()), pad(b.shape()));
    let mut out = Vec::with_capacity(rank);
    for (&x, &y) in sa.iter().zip(&sb) {
        out.push(match (x, y) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(format!("shapes {:?} and {:?} do not broadcast", a.shape(), b.shape())),
        });
    }
    let shape = IxDyn(&out);
    let av = a.view().into_shape_with_order(IxDyn(&sa)).map_err(|e| e.to_string())?;
    let bv = b.view().into_shape_with_order(IxDyn(&sb)).map_err(|e| e.to_string())?;
    let av = av.broadcast(shape.clone()).ok_or("broadcast failed")?;
    let bv = bv.broadcast(shape).ok_or("broadcast failed")?;
    Ok(Zip::from(&av).and(&bv).map_collect(|x, y| f(x, y)))
}

/// Applies a float or an integer function to `x` and `y`, by their kind.
fn binary(
    args: &KernelArgs,
    float: impl Fn(f32, f32) -> f32,
    int: impl Fn(i32, i32) -> i32,
) -> Result<Vec<Value>, String> {
    let (x, y) = (args.get("x")?, args.get("y")?);
    let out = match (x, y) {
        (Value::Int(a), Value::Int(b)) => Value::Int(zip_broadcast(a, b, |&p, &q| int(p, q))?),
        _ => Value::Float(zip_broadcast(&x.to_f32_array()?, &y.to_f32_array()?, |&p, &q| float(p, q))?),
    };
    Ok(vec![out])
}

/// `add`.
pub fn add(args: &KernelArgs) -> Result<Vec<Value>, String> {
    binary(args, |a, b| a + b, i32::wrapping_add)
}
