//! Kernels of `cumsum`, `topk`, `argsort` and `one_hot`.

use crate::interp::{KernelArgs, Value};
use crate::ir::ops::axis::norm_axis;
use ndarray::{ArrayD, Axis, Dimension, IxDyn};
use std::cmp::Ordering;

/// `cumsum` along `axis` (default 0), optionally exclusive and/or from the end.
pub fn cumsum(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?;
    let axis = norm_axis(args.int_or("axis", 0)?, x.shape().len())?;
    let exclusive = args.bool_or("exclusive", false)?;
    let reverse = args.bool_or("reverse", false)?;
    fn scan<T: Copy + std::ops::Add<Output = T> + Default>(
        a: &ArrayD<T>,
        axis: usize,
        exclusive: bool,
        reverse: bool,
    ) -> ArrayD<T> {
        let mut out = a.clone();
        for mut lane in out.lanes_mut(Axis(axis)) {
            let n = lane.len();
            let mut acc = T::default();
            for step in 0..n {
                let i = if reverse { n - 1 - step } else { step };
                let v = lane[i];
                lane[i] = if exclusive { acc } else { acc + v };
                acc = acc + v;
            }
        }
        out
    }
    let out = match x {
        Value::Int(a) => {
            Value::Int(scan(&a.mapv(std::num::Wrapping), axis, exclusive, reverse).mapv(|v| v.0))
        }
        other => Value::Float(scan(&other.to_f32_array()?, axis, exclusive, reverse)),
    };
    Ok(vec![out])
}

/// Orders positions of one lane: descending by default, ties keep the lower index first.
fn order(lane: &[f32], ascending: bool) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..lane.len()).collect();
    idx.sort_by(|&i, &j| {
        let ord = lane[i].partial_cmp(&lane[j]).unwrap_or(Ordering::Equal);
        if ascending {
            ord
        } else {
            ord.reverse()
        }
    });
    idx
}

/// Sorts every lane along `axis`, keeping the first `k`; returns (values, indices).
fn sorted(x: &ArrayD<f32>, axis: usize, k: usize, ascending: bool) -> (ArrayD<f32>, ArrayD<i32>) {
    let mut shape = x.shape().to_vec();
    shape[axis] = k;
    let mut values = ArrayD::zeros(IxDyn(&shape));
    let mut indices = ArrayD::zeros(IxDyn(&shape));
    for ((src, mut dv), mut di) in x
        .lanes(Axis(axis))
        .into_iter()
        .zip(values.lanes_mut(Axis(axis)))
        .zip(indices.lanes_mut(Axis(axis)))
    {
        let lane: Vec<f32> = src.iter().copied().collect();
        for (slot, &i) in order(&lane, ascending).iter().take(k).enumerate() {
            dv[slot] = lane[i];
            di[slot] = i as i32;
        }
    }
    (values, indices)
}

/// `topk`: the `k` largest (or smallest, with `ascending`) values along `axis` and their
/// indices.
pub fn topk(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?;
    let xf = x.to_f32_array()?;
    let axis = norm_axis(args.int_or("axis", -1)?, xf.ndim())?;
    let k = args.int_or("k", 1)?;
    if k < 1 || k as usize > xf.shape()[axis] {
        return Err(format!("k = {k} must be in [1, {}]", xf.shape()[axis]));
    }
    let (values, indices) = sorted(&xf, axis, k as usize, args.bool_or("ascending", false)?);
    Ok(vec![Value::Float(values), Value::Int(indices)])
}

/// `argsort`: indices that sort each lane along `axis` (descending unless `ascending`).
pub fn argsort(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?.to_f32_array()?;
    let axis = norm_axis(args.int_or("axis", -1)?, x.ndim())?;
    let n = x.shape()[axis];
    let (_, indices) = sorted(&x, axis, n, args.bool_or("ascending", false)?);
    Ok(vec![Value::Int(indices)])
}

/// `one_hot`: a new axis of `one_hot_vector_size` holding `on_value` at each index and
/// `off_value` elsewhere (indices outside the range give all `off_value`; negative indices
/// count from the end).
pub fn one_hot(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let idx = args.get("indices")?.int()?;
    let depth = args.int_or("one_hot_vector_size", 0)?;
    let depth =
        usize::try_from(depth).map_err(|_| format!("one_hot_vector_size {depth} is negative"))?;
    let axis = norm_axis(args.int_or("axis", -1)?, idx.ndim() + 1)?;
    let on = args
        .opt("on_value")
        .cloned()
        .unwrap_or(Value::Int(ArrayD::from_elem(IxDyn(&[]), 1)));
    let off = args
        .opt("off_value")
        .cloned()
        .unwrap_or(Value::Int(ArrayD::from_elem(IxDyn(&[]), 0)));
    let mut shape = idx.shape().to_vec();
    shape.insert(axis, depth);
    let hot = |ix: &IxDyn| {
        let pos = ix[axis] as i64;
        let mut src: Vec<usize> = ix.slice().to_vec();
        src.remove(axis);
        let i = idx[IxDyn(&src)] as i64;
        let i = if i < 0 { i + depth as i64 } else { i };
        i == pos
    };
    let first = |v: &Value| {
        v.to_f32_array()
            .ok()
            .and_then(|a| a.iter().next().copied())
            .ok_or("on/off value is empty")
    };
    let out = match (&on, &off) {
        (Value::Int(_), Value::Int(_)) => {
            let (p, q) = (first(&on)? as i32, first(&off)? as i32);
            Value::Int(ArrayD::from_shape_fn(IxDyn(&shape), |ix| {
                if hot(&ix) {
                    p
                } else {
                    q
                }
            }))
        }
        (Value::Bool(_), Value::Bool(_)) => {
            let (p, q) = (first(&on)? != 0.0, first(&off)? != 0.0);
            Value::Bool(ArrayD::from_shape_fn(IxDyn(&shape), |ix| {
                if hot(&ix) {
                    p
                } else {
                    q
                }
            }))
        }
        _ => {
            let (p, q) = (first(&on)?, first(&off)?);
            Value::Float(ArrayD::from_shape_fn(IxDyn(&shape), |ix| {
                if hot(&ix) {
                    p
                } else {
                    q
                }
            }))
        }
    };
    Ok(vec![out])
}

#[cfg(test)]
mod tests {
    use crate::ir::ops::testing::{floats, infer, ints, run};
    use crate::ir::{DType, Tensor, TensorType};

    #[test]
    fn cumsum_exclusive_and_reverse() {
        let x = Tensor::from_f32(&[4], &[1.0, 2.0, 3.0, 4.0]);
        let t = [x.ty()];
        assert_eq!(
            floats(&run("cumsum", &[("x", x.clone())], &t)[0]),
            vec![1.0, 3.0, 6.0, 10.0]
        );
        let opts = [
            ("x", x),
            ("exclusive", Tensor::scalar_bool(true)),
            ("reverse", Tensor::scalar_bool(true)),
        ];
        assert_eq!(
            floats(&run("cumsum", &opts, &t)[0]),
            vec![9.0, 7.0, 4.0, 0.0]
        );
    }

    #[test]
    fn topk_and_argsort() {
        let x = Tensor::from_f32(&[2, 3], &[1.0, 3.0, 2.0, 5.0, 5.0, 4.0]);
        let inputs = [("x", x.clone()), ("k", Tensor::scalar_i32(2))];
        let ty = infer("topk", &inputs).unwrap();
        assert_eq!(ty[1], TensorType::fixed(DType::I32, &[2, 2]));
        let out = run("topk", &inputs, &ty);
        assert_eq!(floats(&out[0]), vec![3.0, 2.0, 5.0, 5.0]);
        assert_eq!(ints(&out[1]), vec![1, 2, 0, 1]);
        let inputs = [
            ("x", x),
            ("axis", Tensor::scalar_i32(0)),
            ("ascending", Tensor::scalar_bool(true)),
        ];
        let ty = infer("argsort", &inputs).unwrap();
        assert_eq!(
            ints(&run("argsort", &inputs, &ty)[0]),
            vec![0, 0, 0, 1, 1, 1]
        );
    }

    #[test]
    fn one_hot_inserts_axis() {
        let inputs = [
            ("indices", Tensor::from_i32(&[3], &[0, -1, 5])),
            ("one_hot_vector_size", Tensor::scalar_i32(3)),
            ("axis", Tensor::scalar_i32(0)),
            ("on_value", Tensor::scalar_f32(2.0)),
            ("off_value", Tensor::scalar_f32(0.5)),
        ];
        let ty = infer("one_hot", &inputs).unwrap();
        assert_eq!(ty[0], TensorType::fixed(DType::F32, &[3, 3]));
        // Column j is the one-hot of indices[j]: 0 → row 0, -1 → row 2, 5 → none.
        assert_eq!(
            floats(&run("one_hot", &inputs, &ty)[0]),
            vec![2.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 2.0, 0.5]
        );
    }
}
