//! Kernels of control-flow ops.

use crate::interp::{KernelArgs, Value};
use crate::ir::ops::elementwise_binary::kernels::broadcast_shape;
use ndarray::{ArrayD, IxDyn, Zip};

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

#[cfg(test)]
mod tests {
    use crate::ir::ops::testing::{floats, run};
    use crate::ir::{DType, Tensor, TensorType};

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
