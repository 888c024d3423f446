//! Kernels of reductions: the reduced axes are moved last and each row is folded.

use crate::interp::{KernelArgs, Value};
use crate::ir::ops::axis::{norm_axes, norm_axis};
use crate::ir::ops::OpArgs;
use ndarray::{ArrayD, IxDyn};

/// Rows of `x` with `axes` moved last: (data, row length, output shape).
fn rows(x: &ArrayD<f32>, axes: &[usize], keep_dims: bool) -> (Vec<f32>, usize, Vec<usize>) {
    let shape = x.shape();
    let kept: Vec<usize> = (0..shape.len()).filter(|i| !axes.contains(i)).collect();
    let perm: Vec<usize> = kept.iter().chain(axes).copied().collect();
    let data: Vec<f32> = x
        .view()
        .permuted_axes(IxDyn(&perm))
        .iter()
        .copied()
        .collect();
    let n = axes.iter().map(|&i| shape[i]).product();
    let out = (0..shape.len())
        .filter_map(|i| match (axes.contains(&i), keep_dims) {
            (false, _) => Some(shape[i]),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect();
    (data, n, out)
}

/// Folds every row of the reduced axes with `f`.
fn reduce(args: &KernelArgs, f: impl Fn(&[f32]) -> f32) -> Result<Vec<Value>, String> {
    let x = args.get("x")?.to_f32_array()?;
    let axes = match args.opt_ints("axes")? {
        Some(a) => norm_axes(&a, x.ndim())?,
        None => (0..x.ndim()).collect(),
    };
    let (data, n, shape) = rows(&x, &axes, args.bool("keep_dims")?);
    let out: Vec<f32> = if n == 0 {
        vec![f(&[]); shape.iter().product()]
    } else {
        data.chunks_exact(n).map(&f).collect()
    };
    Ok(vec![Value::Float(
        ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| e.to_string())?,
    )])
}

fn sum(r: &[f32]) -> f32 {
    r.iter().map(|&v| v as f64).sum::<f64>() as f32
}

/// `reduce_mean`.
pub fn reduce_mean(args: &KernelArgs) -> Result<Vec<Value>, String> {
    reduce(args, |r| sum(r) / r.len() as f32)
}

/// `reduce_sum`.
pub fn reduce_sum(args: &KernelArgs) -> Result<Vec<Value>, String> {
    reduce(args, sum)
}

/// `reduce_max`.
pub fn reduce_max(args: &KernelArgs) -> Result<Vec<Value>, String> {
    reduce(args, |r| {
        r.iter().copied().fold(f32::NEG_INFINITY, f32::max)
    })
}

/// `reduce_min`.
pub fn reduce_min(args: &KernelArgs) -> Result<Vec<Value>, String> {
    reduce(args, |r| r.iter().copied().fold(f32::INFINITY, f32::min))
}

/// `reduce_prod`.
pub fn reduce_prod(args: &KernelArgs) -> Result<Vec<Value>, String> {
    reduce(args, |r| r.iter().product())
}

/// `reduce_l1_norm`: `Σ|x|`.
pub fn reduce_l1_norm(args: &KernelArgs) -> Result<Vec<Value>, String> {
    reduce(args, |r| {
        r.iter().map(|v| v.abs() as f64).sum::<f64>() as f32
    })
}

/// `reduce_l2_norm`: `sqrt(Σx²)`.
pub fn reduce_l2_norm(args: &KernelArgs) -> Result<Vec<Value>, String> {
    reduce(args, |r| {
        r.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt() as f32
    })
}

/// `reduce_sum_square`: `Σx²`.
pub fn reduce_sum_square(args: &KernelArgs) -> Result<Vec<Value>, String> {
    reduce(args, |r| {
        r.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() as f32
    })
}

/// `reduce_log_sum`: `ln(Σx)`.
pub fn reduce_log_sum(args: &KernelArgs) -> Result<Vec<Value>, String> {
    reduce(args, |r| sum(r).ln())
}

/// `reduce_log_sum_exp`: `ln(Σ exp(x))`, computed stably.
pub fn reduce_log_sum_exp(args: &KernelArgs) -> Result<Vec<Value>, String> {
    reduce(args, |r| {
        let max = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if max.is_infinite() {
            return max;
        }
        max + r
            .iter()
            .map(|&v| ((v - max) as f64).exp())
            .sum::<f64>()
            .ln() as f32
    })
}

/// Index of the first extreme element along `axis` (int32).
fn arg_reduce(args: &KernelArgs, better: impl Fn(f32, f32) -> bool) -> Result<Vec<Value>, String> {
    let x = args.get("x")?.to_f32_array()?;
    let axis = norm_axis(args.int("axis")?, x.ndim())?;
    let (data, n, shape) = rows(&x, &[axis], args.bool("keep_dims")?);
    let out: Vec<i32> = data
        .chunks_exact(n.max(1))
        .map(|r| {
            r.iter().enumerate().fold(
                0usize,
                |best, (i, &v)| if better(v, r[best]) { i } else { best },
            ) as i32
        })
        .collect();
    Ok(vec![Value::Int(
        ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| e.to_string())?,
    )])
}

/// `reduce_argmax`.
pub fn reduce_argmax(args: &KernelArgs) -> Result<Vec<Value>, String> {
    arg_reduce(args, |v, best| v > best)
}

/// `reduce_argmin`.
pub fn reduce_argmin(args: &KernelArgs) -> Result<Vec<Value>, String> {
    arg_reduce(args, |v, best| v < best)
}

#[cfg(test)]
mod tests {
    use crate::ir::ops::testing::{assert_close, floats, infer, ints, run};
    use crate::ir::{DType, Tensor, TensorType};

    fn x() -> Tensor {
        Tensor::from_f32(&[2, 3], &[1.0, 5.0, 3.0, 4.0, 2.0, 6.0])
    }

    #[test]
    fn reductions_over_axes() {
        let inputs = [
            ("x", x()),
            ("axes", Tensor::vec_i32(&[0])),
            ("keep_dims", Tensor::scalar_bool(true)),
        ];
        let ty = infer("reduce_sum", &inputs).unwrap();
        assert_eq!(ty[0], TensorType::fixed(DType::F32, &[1, 3]));
        assert_eq!(
            floats(&run("reduce_sum", &inputs, &ty)[0]),
            vec![5.0, 7.0, 9.0]
        );
        let all = [("x", x())];
        let ty = infer("reduce_mean", &all).unwrap();
        assert_eq!(ty[0], TensorType::fixed(DType::F32, &[]));
        assert_eq!(floats(&run("reduce_mean", &all, &ty)[0]), vec![3.5]);
        let rows = [("x", x()), ("axes", Tensor::vec_i32(&[-1]))];
        let ty = infer("reduce_log_sum_exp", &rows).unwrap();
        let want = |r: [f32; 3]| r.iter().map(|v| v.exp()).sum::<f32>().ln();
        assert_close(
            &floats(&run("reduce_log_sum_exp", &rows, &ty)[0]),
            &[want([1.0, 5.0, 3.0]), want([4.0, 2.0, 6.0])],
            1e-5,
        );
        assert_close(
            &floats(&run("reduce_l2_norm", &rows, &ty)[0]),
            &[35f32.sqrt(), 56f32.sqrt()],
            1e-5,
        );
    }

    #[test]
    fn argmax_and_argmin_give_int32_indices() {
        let inputs = [("x", x()), ("axis", Tensor::scalar_i32(1))];
        let ty = infer("reduce_argmax", &inputs).unwrap();
        assert_eq!(ty[0], TensorType::fixed(DType::I32, &[2]));
        assert_eq!(ints(&run("reduce_argmax", &inputs, &ty)[0]), vec![1, 2]);
        let inputs = [
            ("x", x()),
            ("axis", Tensor::scalar_i32(0)),
            ("keep_dims", Tensor::scalar_bool(true)),
        ];
        let ty = infer("reduce_argmin", &inputs).unwrap();
        assert_eq!(ty[0], TensorType::fixed(DType::I32, &[1, 3]));
        assert_eq!(ints(&run("reduce_argmin", &inputs, &ty)[0]), vec![0, 1, 0]);
    }
}
