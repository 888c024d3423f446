//! Nodes that produce constants or pass their input through: `Constant`,
//! `ConstantOfShape`, `EyeLike`, `Range`, `Dropout`.

use super::super::tensor::{elem_type_name, ir_dtype};
use super::{alias, ConvertFn, Ctx, Emit, Node};
use crate::ir::{DType, Tensor};
use crate::Error;

/// `Constant`: `value`, `value_float(s)` or `value_int(s)`; string and sparse values are
/// unsupported.
fn constant(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let out = ctx.out_name(node, 0);
    let value = if let Some(t) = ctx.attr(node.tensor("value"))? {
        ctx.tensor(t)?
    } else if let Some(v) = ctx.attr(node.float("value_float"))? {
        Tensor::scalar_f32(v)
    } else if let Some(v) = ctx.attr(node.floats("value_floats"))? {
        Tensor::from_f32(&[v.len()], &v)
    } else if let Some(v) = ctx.attr(node.int("value_int"))? {
        Tensor::scalar_i32(clamp(v))
    } else if let Some(v) = ctx.attr(node.ints("value_ints"))? {
        Tensor::vec_i32(&v.into_iter().map(clamp).collect::<Vec<_>>())
    } else {
        let kind = node
            .proto
            .attribute
            .first()
            .map_or("none", |a| a.name.as_str());
        return Err(ctx.unsupported(format!(
            "constant value attribute '{kind}' is not supported"
        )));
    };
    let y = ctx.constant(&out, value);
    ctx.set_output(node, 0, y);
    Ok(())
}

fn clamp(v: i64) -> i32 {
    v.clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// The most elements a constant made by the frontend may have (2³¹, like Core ML's int32
/// shapes).
const MAX_FOLDED_ELEMENTS: usize = 1 << 31;

/// `ConstantOfShape(shape)`: a tensor filled with `value` (default float 0). A constant shape
/// gives a constant; otherwise a `fill` op.
fn constant_of_shape(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let out = ctx.out_name(node, 0);
    let fill_value = match ctx.attr(node.tensor("value"))? {
        Some(t) => ctx.tensor(t)?,
        None => Tensor::scalar_f32(0.0),
    };
    if fill_value.len() != 1 {
        return Err(ctx.invalid("attribute 'value' must hold one element"));
    }
    let fill_value = fill_value.reshaped(&[]);
    let y = match ctx.try_const_input(node, 0)? {
        Some(shape) => {
            let dims: Vec<usize> = shape
                .to_i64_vec()
                .into_iter()
                .map(|d| d.max(0) as usize)
                .collect();
            let count = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
            if count.is_none_or(|n| n > MAX_FOLDED_ELEMENTS) {
                return Err(ctx.unsupported(format!("a constant of shape {dims:?} is too large")));
            }
            ctx.constant(&out, filled(&fill_value, &dims))
        }
        None => {
            let shape = ctx.input(node, 0)?;
            let value = ctx.constant(&format!("{out}_value"), fill_value);
            ctx.op1("fill", &out, &[("shape", &shape), ("value", &value)])?
        }
    };
    ctx.set_output(node, 0, y);
    Ok(())
}

/// A tensor of `shape` with every element equal to scalar `value`.
fn filled(value: &Tensor, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    match value.dtype() {
        DType::F32 => Tensor::from_f32(shape, &vec![value.to_f32_vec()[0]; n]),
        DType::Bool => Tensor::from_bool(shape, &vec![value.to_i64_vec()[0] != 0; n]),
        _ => Tensor::from_i32(shape, &vec![clamp(value.to_i64_vec()[0]); n]),
    }
}

/// `EyeLike(x, k, dtype)`: a constant of `x`'s (static) 2-D shape with ones on diagonal `k`
/// (above the main one for k > 0) and zeros elsewhere, of type `dtype` (default `x`'s type).
fn eye_like(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let shape = ctx.shape(&x)?;
    let [rows, cols] = shape[..] else {
        return Err(ctx.invalid(format!("input must be 2-D, has shape {shape:?}")));
    };
    let dtype = match ctx.attr(node.int("dtype"))? {
        Some(elem) => ir_dtype(elem as i32).ok_or_else(|| {
            ctx.unsupported(format!(
                "dtype {} is not supported",
                elem_type_name(elem as i32)
            ))
        })?,
        None => ctx.ty(&x)?.dtype,
    };
    let k = ctx.attr(node.int_or("k", 0))?;
    let ones: Vec<f32> = (0..rows * cols)
        .map(|i| f32::from((i % cols) as i64 - (i / cols) as i64 == k))
        .collect();
    let eye = Tensor::from_f32(&shape, &ones).cast(dtype);
    let y = ctx.constant(&out, eye);
    ctx.set_output(node, 0, y);
    Ok(())
}

/// The values of ONNX `Range(start, limit, delta)`: `max(ceil((limit - start) / delta), 0)`
/// elements `start + i * delta`.
pub fn range_values(start: f64, limit: f64, delta: f64) -> Result<Vec<f64>, String> {
    if delta == 0.0 {
        return Err("delta is 0".into());
    }
    let n = ((limit - start) / delta).ceil().max(0.0);
    if n > MAX_FOLDED_ELEMENTS as f64 {
        return Err(format!("range of {n} elements is too large"));
    }
    Ok((0..n as usize).map(|i| start + i as f64 * delta).collect())
}

/// `Range`: folded when every input is constant (possibly to an empty constant, which must
/// fold away), `range_1d` otherwise.
fn range(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let out = ctx.out_name(node, 0);
    let consts = [
        ctx.try_const_input(node, 0)?,
        ctx.try_const_input(node, 1)?,
        ctx.try_const_input(node, 2)?,
    ];
    let y = if let [Some(s), Some(l), Some(d)] = &consts {
        let scalar = |t: &Tensor| {
            t.scalar_f64()
                .ok_or_else(|| ctx.invalid("inputs must be scalars"))
        };
        let values =
            range_values(scalar(s)?, scalar(l)?, scalar(d)?).map_err(|m| ctx.invalid(m))?;
        let t = if s.dtype().is_float() {
            Tensor::from_f32(
                &[values.len()],
                &values.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            )
        } else {
            Tensor::from_i32(
                &[values.len()],
                &values.iter().map(|&v| clamp(v as i64)).collect::<Vec<_>>(),
            )
        };
        ctx.constant(&out, t)
    } else {
        let (s, l, d) = (
            ctx.input(node, 0)?,
            ctx.input(node, 1)?,
            ctx.input(node, 2)?,
        );
        ctx.op1(
            "range_1d",
            &out,
            &[("start", &s), ("end", &l), ("step", &d)],
        )?
    };
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `Dropout` at inference is the identity; a used mask output or training mode is
/// unsupported.
fn dropout(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    ctx.require_unused_outputs(node, 1, "mask")?;
    if ctx.opset >= 12 {
        if let Some(t) = ctx.try_const_input(node, 2)? {
            if t.scalar_i64().unwrap_or(0) != 0 {
                return Err(ctx.unsupported("training_mode=true is not supported"));
            }
        } else if node.input_name(2).is_some() {
            return Err(ctx.needs_constant(node, 2, ""));
        }
    }
    alias(ctx, node)
}

/// This family's converters.
pub const CONVERTERS: &[(&str, ConvertFn)] = &[
    ("Constant", constant),
    ("ConstantOfShape", constant_of_shape),
    ("Dropout", dropout),
    ("EyeLike", eye_like),
    ("Range", range),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_counts_like_onnx() {
        // Examples from the ONNX operator docs: Range(3, 9, 3) = [3, 6]; Range(10, 4, -3) = [10, 7].
        assert_eq!(range_values(3.0, 9.0, 3.0).unwrap(), vec![3.0, 6.0]);
        assert_eq!(range_values(10.0, 4.0, -3.0).unwrap(), vec![10.0, 7.0]);
        assert!(range_values(1.0, 0.0, 1.0).unwrap().is_empty());
        assert!(range_values(0.0, 1.0, 0.0).is_err());
    }

    #[test]
    fn fills_with_the_value_dtype() {
        let t = filled(&Tensor::scalar_i32(7), &[2, 2]);
        assert_eq!((t.dtype(), t.to_i64_vec()), (DType::I32, vec![7; 4]));
    }
}
