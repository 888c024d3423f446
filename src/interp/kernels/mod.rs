//! Kernels, one file per op family; each op's registry entry points at its kernel here.

pub mod activation;
pub mod classify;
pub mod constexpr;
pub mod conv;
pub mod elementwise;
pub mod gemm;
pub mod linear;
pub mod normalization;
pub mod pool;
pub mod quantization;
pub mod reduction;
pub mod resize;
pub mod scatter_gather;
pub mod shape;
pub mod states;
pub mod tensor_ops;
#[cfg(test)]
pub(crate) mod testing;
pub mod transformers;

/// Applies a generic array expression to whichever element kind `$v` holds, keeping the kind:
/// `per_kind!(value, a => f(a)?)`.
macro_rules! per_kind {
    ($v:expr, $a:ident => $body:expr) => {
        match $v {
            $crate::interp::Value::Float($a) => $crate::interp::Value::Float($body),
            $crate::interp::Value::Int($a) => $crate::interp::Value::Int($body),
            $crate::interp::Value::Bool($a) => $crate::interp::Value::Bool($body),
            $crate::interp::Value::Str($a) => $crate::interp::Value::Str($body),
        }
    };
}
pub(crate) use per_kind;

/// Normalises a possibly negative axis for a tensor of `rank`.
pub(crate) fn norm_axis(axis: i64, rank: usize) -> Result<usize, String> {
    crate::ir::ops::InferArgs::axis(axis, rank)
}

/// Normalises a list of possibly negative axes, rejecting duplicates.
pub(crate) fn norm_axes(axes: &[i64], rank: usize) -> Result<Vec<usize>, String> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let a = norm_axis(a, rank)?;
        if out.contains(&a) {
            return Err(format!("axis {a} is listed twice in {axes:?}"));
        }
        out.push(a);
    }
    Ok(out)
}
