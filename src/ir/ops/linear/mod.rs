//! Linear algebra ops: `linear` and `matmul`.

pub mod kernels;

use self::kernels as k;
use super::broadcast::broadcast_shapes;
use super::{op, ChannelAxes, InferArgs, OpArgs, OpDef, Param, ParamType};
use crate::ir::{Dim, TensorType};

const LINEAR: &[Param] = &[
    Param::new("x", ParamType::T),
    Param::new("weight", ParamType::T),
    Param::new("bias", ParamType::T).optional(),
];
const MATMUL: &[Param] = &[
    Param::new("x", ParamType::TOrInt),
    Param::new("y", ParamType::TOrInt),
    Param::new("transpose_x", ParamType::Bool)
        .constant()
        .default_bool(false),
    Param::new("transpose_y", ParamType::Bool)
        .constant()
        .default_bool(false),
];

/// True when two dims may be equal (either is symbolic, or both are the same size).
fn compatible(a: &Dim, b: &Dim) -> bool {
    a.fixed().zip(b.fixed()).is_none_or(|(p, q)| p == q)
}

fn infer_linear(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let (x, w) = (a.ty("x")?, a.ty("weight")?);
    if x.rank() == 0 || w.rank() != 2 {
        return Err(format!(
            "x {x} must have rank ≥ 1 and weight {w} rank 2 ([out, in])"
        ));
    }
    let last = &x.shape[x.rank() - 1];
    if !compatible(last, &w.shape[1]) {
        return Err(format!(
            "x {x} has {last} input features but weight {w} expects {}",
            w.shape[1]
        ));
    }
    if let Some(b) = a.opt_ty("bias") {
        if b.rank() != 1 || !compatible(&b.shape[0], &w.shape[0]) {
            return Err(format!("bias {b} must have shape [{}]", w.shape[0]));
        }
    }
    let mut shape = x.shape[..x.rank() - 1].to_vec();
    shape.push(w.shape[0].clone());
    Ok(vec![TensorType {
        dtype: x.dtype,
        shape,
    }])
}

/// The output shape of `matmul` (NumPy rules: rank-1 operands gain and then lose a unit dim,
/// batch dims broadcast).
pub fn matmul_shape(x: &[Dim], y: &[Dim], tx: bool, ty: bool) -> Result<Vec<Dim>, String> {
    if x.is_empty() || y.is_empty() {
        return Err("matmul operands must have rank ≥ 1".into());
    }
    let mut xs = x.to_vec();
    let mut ys = y.to_vec();
    let (x_vec, y_vec) = (xs.len() == 1, ys.len() == 1);
    if x_vec {
        xs.insert(0, Dim::Fixed(1));
    } else if tx {
        let n = xs.len();
        xs.swap(n - 1, n - 2);
    }
    if y_vec {
        ys.push(Dim::Fixed(1));
    } else if ty {
        let n = ys.len();
        ys.swap(n - 1, n - 2);
    }
    let (m, kx) = (&xs[xs.len() - 2], &xs[xs.len() - 1]);
    let (ky, n) = (&ys[ys.len() - 2], &ys[ys.len() - 1]);
    if !compatible(kx, ky) {
        return Err(format!("inner dimensions {kx} and {ky} differ"));
    }
    let mut shape = broadcast_shapes(&xs[..xs.len() - 2], &ys[..ys.len() - 2])?;
    if !x_vec {
        shape.push(m.clone());
    }
    if !y_vec {
        shape.push(n.clone());
    }
    Ok(shape)
}

fn infer_matmul(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let (x, y) = (a.ty("x")?, a.ty("y")?);
    let shape = matmul_shape(
        &x.shape,
        &y.shape,
        a.bool("transpose_x")?,
        a.bool("transpose_y")?,
    )?;
    Ok(vec![TensorType {
        dtype: x.dtype,
        shape,
    }])
}

/// Channel axes of a constant `matmul` operand: of `y` (`[…, K, N]`, or `[…, N, K]` with
/// `transpose_y`) the outputs are N and the inputs K; of `x` (`[…, M, K]`, or `[…, K, M]` with
/// `transpose_x`) the outputs are M and the inputs K.
fn matmul_weight_axes(param: &str, rank: usize, flag: &dyn Fn(&str) -> bool) -> ChannelAxes {
    let (last, second_last) = (rank - 1, rank - 2);
    let (output, input) = match (param, flag("transpose_x"), flag("transpose_y")) {
        ("y", _, true) | ("x", false, _) => (second_last, last),
        _ => (last, second_last),
    };
    ChannelAxes { output, input }
}

/// The definitions of this family.
pub const DEFS: &[OpDef] = &[
    op("linear", LINEAR, infer_linear, k::linear),
    op("matmul", MATMUL, infer_matmul, k::matmul).weight_axes(matmul_weight_axes),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn d(v: &[usize]) -> Vec<Dim> {
        v.iter().map(|&n| Dim::Fixed(n)).collect()
    }

    #[test]
    fn matmul_shapes_follow_numpy() {
        assert_eq!(
            matmul_shape(&d(&[2, 1, 3, 4]), &d(&[5, 4, 6]), false, false).unwrap(),
            d(&[2, 5, 3, 6])
        );
        assert_eq!(
            matmul_shape(&d(&[4]), &d(&[3, 4, 6]), false, false).unwrap(),
            d(&[3, 6])
        );
        assert_eq!(
            matmul_shape(&d(&[3, 4]), &d(&[4]), false, false).unwrap(),
            d(&[3])
        );
        assert_eq!(
            matmul_shape(&d(&[4, 3]), &d(&[6, 4]), true, true).unwrap(),
            d(&[3, 6])
        );
        assert!(matmul_shape(&d(&[3, 4]), &d(&[5, 6]), false, false).is_err());
    }
}
