//! Kernels of `linear` and `matmul`.

use crate::interp::{KernelArgs, Value};
use crate::ir::ops::elementwise_binary::kernels::broadcast_shape;
use crate::ir::ops::gemm::{gemm, gemm_into};
use crate::ir::ops::OpArgs;
use ndarray::{ArrayD, ArrayView2, ArrayViewD, Axis, Ix2, IxDyn};
use rayon::prelude::*;

/// `linear`: `x · weightᵀ + bias` over the last axis of `x`.
pub fn linear(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?.floats()?;
    let w = args.get("weight")?.floats()?;
    let w = w
        .view()
        .into_dimensionality::<Ix2>()
        .map_err(|_| "weight must have rank 2".to_string())?;
    let (out_f, in_f) = w.dim();
    let shape = x.shape().to_vec();
    if shape.last() != Some(&in_f) {
        return Err(format!("x {shape:?} does not end in {in_f} input features"));
    }
    let rows = x.len() / in_f.max(1);
    let x = x.as_standard_layout();
    let x2 = x
        .view()
        .into_shape_with_order((rows, in_f))
        .map_err(|e| e.to_string())?;
    let mut y = gemm(x2.view(), w.t());
    if let Some(b) = args.opt("bias") {
        let b = b.floats()?;
        if b.len() != out_f {
            return Err(format!("bias has {} values, expected {out_f}", b.len()));
        }
        let b = b
            .view()
            .into_shape_with_order(out_f)
            .map_err(|e| e.to_string())?;
        y += &b;
    }
    let mut out_shape = shape;
    *out_shape.last_mut().ok_or("x is a scalar")? = out_f;
    Ok(vec![Value::Float(
        y.into_shape_with_order(IxDyn(&out_shape))
            .map_err(|e| e.to_string())?,
    )])
}

/// `matmul` with NumPy broadcasting of batch dims and rank-1 operands.
pub fn matmul(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?.floats()?;
    let y = args.get("y")?.floats()?;
    let (tx, ty) = (args.bool("transpose_x")?, args.bool("transpose_y")?);
    let (x_vec, y_vec) = (x.ndim() == 1, y.ndim() == 1);
    if x.ndim() == 0 || y.ndim() == 0 {
        return Err("matmul operands must have rank ≥ 1".into());
    }
    let x = if x_vec {
        x.view().insert_axis(Axis(0))
    } else {
        x.view()
    };
    let y = if y_vec {
        y.view().insert_axis(Axis(1))
    } else {
        y.view()
    };
    let (x, y) = (swap_last2(x, tx && !x_vec), swap_last2(y, ty && !y_vec));
    let (xr, yr) = (x.ndim(), y.ndim());
    let (m, k) = (x.shape()[xr - 2], x.shape()[xr - 1]);
    let (k2, n) = (y.shape()[yr - 2], y.shape()[yr - 1]);
    if k != k2 {
        return Err(format!("inner dimensions {k} and {k2} differ"));
    }
    let batch = broadcast_shape(&x.shape()[..xr - 2], &y.shape()[..yr - 2])?;
    let with = |b: &[usize], p: usize, q: usize| -> Vec<usize> {
        b.iter().copied().chain([p, q]).collect()
    };
    let xb = x
        .broadcast(IxDyn(&with(&batch, m, k)))
        .ok_or("x does not broadcast")?;
    let yb = y
        .broadcast(IxDyn(&with(&batch, k, n)))
        .ok_or("y does not broadcast")?;
    let count: usize = batch.iter().product();
    let xb = xb.to_shape((count, m, k)).map_err(|e| e.to_string())?;
    let yb = yb.to_shape((count, k, n)).map_err(|e| e.to_string())?;
    let mut out = vec![0f32; count * m * n];
    let product = |(i, c): (usize, &mut [f32])| {
        let c = ndarray::ArrayViewMut2::from_shape((m, n), c).expect("an m×n block");
        let (a, b): (ArrayView2<f32>, ArrayView2<f32>) =
            (xb.index_axis(Axis(0), i), yb.index_axis(Axis(0), i));
        gemm_into(a, b, c);
    };
    if m * n > 0 {
        out.par_chunks_mut(m * n).enumerate().for_each(product);
    }
    let mut shape = batch;
    if !x_vec {
        shape.push(m);
    }
    if !y_vec {
        shape.push(n);
    }
    Ok(vec![Value::Float(
        ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| e.to_string())?,
    )])
}

/// `a` with its last two axes swapped when `swap`.
fn swap_last2(mut a: ArrayViewD<'_, f32>, swap: bool) -> ArrayViewD<'_, f32> {
    if swap {
        let n = a.ndim();
        a.swap_axes(n - 1, n - 2);
    }
    a
}

#[cfg(test)]
mod tests {
    use crate::ir::ops::testing::{floats, run};
    use crate::ir::{DType, Tensor, TensorType};

    #[test]
    fn matmul_broadcasts_batches_and_vectors() {
        // x: [2, 1, 2] batches [[1,2]] and [[3,4]]; y: [2, 2] = [[1,0],[1,1]].
        let x = Tensor::from_f32(&[2, 1, 2], &[1.0, 2.0, 3.0, 4.0]);
        let y = Tensor::from_f32(&[2, 2], &[1.0, 0.0, 1.0, 1.0]);
        let out = run(
            "matmul",
            &[("x", x), ("y", y.clone())],
            &[TensorType::fixed(DType::F32, &[2, 1, 2])],
        );
        assert_eq!(floats(&out[0]), vec![3.0, 2.0, 7.0, 4.0]);
        let v = Tensor::from_f32(&[2], &[1.0, 2.0]);
        let out = run(
            "matmul",
            &[
                ("x", y.clone()),
                ("y", v),
                ("transpose_x", Tensor::scalar_bool(true)),
            ],
            &[TensorType::fixed(DType::F32, &[2])],
        );
        // yᵀ = [[1,1],[0,1]] · [1,2] = [3, 2].
        assert_eq!(floats(&out[0]), vec![3.0, 2.0]);
    }

    #[test]
    fn linear_adds_bias() {
        let x = Tensor::from_f32(&[1, 2], &[1.0, 2.0]);
        let w = Tensor::from_f32(&[3, 2], &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
        let b = Tensor::from_f32(&[3], &[0.5, 0.5, 0.5]);
        let out = run(
            "linear",
            &[("x", x), ("weight", w), ("bias", b)],
            &[TensorType::fixed(DType::F32, &[1, 3])],
        );
        assert_eq!(floats(&out[0]), vec![1.5, 2.5, 3.5]);
    }
}
