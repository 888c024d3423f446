//! Run-time values of the reference interpreter.

use crate::ir::{DType, Tensor};
use half::f16;
use half::slice::HalfFloatSliceExt;
use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;
use std::borrow::Cow;

/// A tensor during interpretation. Floats of every width compute as f32 (fp16 values are
/// rounded to half precision after each op only when emulation is on); integers as i32, as
/// Core ML does at run time.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// fp16/fp32/fp64 elements.
    Float(ArrayD<f32>),
    /// Integer elements of any width.
    Int(ArrayD<i32>),
    /// Boolean elements.
    Bool(ArrayD<bool>),
    /// String elements.
    Str(ArrayD<String>),
}

impl Value {
    /// Converts a constant tensor into a run-time value (a deferred weight is computed for
    /// the conversion, not kept in the tensor; a mapped one's pages are released after it).
    pub fn from_tensor(t: &Tensor) -> Value {
        let value = t.with_elements(Value::from_elements);
        t.release_pages();
        value
    }

    /// [`Value::from_tensor`] of a tensor whose elements are at hand.
    fn from_elements(t: &Tensor) -> Value {
        let shape = IxDyn(t.shape());
        let built = match t.dtype() {
            DType::String => ArrayD::from_shape_vec(shape, t.strings().to_vec()).map(Value::Str),
            DType::Bool => {
                ArrayD::from_shape_vec(shape, t.bytes().iter().map(|&b| b != 0).collect())
                    .map(Value::Bool)
            }
            d if d.is_float() => ArrayD::from_shape_vec(shape, t.to_f32_vec()).map(Value::Float),
            d if d.ir_bytes() == 1 => ArrayD::from_shape_vec(
                shape,
                t.bytes()
                    .iter()
                    .map(|&b| {
                        if d.is_signed_int() {
                            b as i8 as i32
                        } else {
                            b as i32
                        }
                    })
                    .collect(),
            )
            .map(Value::Int),
            _ => ArrayD::from_shape_vec(
                shape,
                t.to_i64_vec().into_iter().map(|v| v as i32).collect(),
            )
            .map(Value::Int),
        };
        built.expect("tensor length matches its shape")
    }

    /// Converts to a constant tensor of `dtype` (floats round to fp16 when `dtype` is fp16).
    pub fn to_tensor(&self, dtype: DType) -> Tensor {
        let shape = self.shape().to_vec();
        match self {
            Value::Float(a) => {
                let v: Vec<f32> = a.iter().copied().collect();
                match dtype {
                    DType::F16 => Tensor::from_f16(
                        &shape,
                        &v.iter().map(|&x| f16::from_f32(x)).collect::<Vec<_>>(),
                    ),
                    DType::F32 => Tensor::from_f32(&shape, &v),
                    other => Tensor::from_f32(&shape, &v).cast(other),
                }
            }
            Value::Int(a) => Tensor::from_i64_as(
                dtype,
                &shape,
                &a.iter().map(|&v| v as i64).collect::<Vec<_>>(),
            ),
            Value::Bool(a) => {
                Tensor::from_bool(&shape, &a.iter().copied().collect::<Vec<_>>()).cast(dtype)
            }
            Value::Str(a) => Tensor::from_strings(&shape, a.iter().cloned().collect()),
        }
    }

    /// Shape of the value.
    pub fn shape(&self) -> &[usize] {
        match self {
            Value::Float(a) => a.shape(),
            Value::Int(a) => a.shape(),
            Value::Bool(a) => a.shape(),
            Value::Str(a) => a.shape(),
        }
    }

    /// The float array, or an error naming what it is instead.
    pub fn float(&self) -> Result<&ArrayD<f32>, String> {
        match self {
            Value::Float(a) => Ok(a),
            other => Err(format!("expected a float tensor, got {}", other.kind())),
        }
    }

    /// The integer array, or an error.
    pub fn int(&self) -> Result<&ArrayD<i32>, String> {
        match self {
            Value::Int(a) => Ok(a),
            other => Err(format!("expected an integer tensor, got {}", other.kind())),
        }
    }

    /// The bool array, or an error.
    pub fn bool(&self) -> Result<&ArrayD<bool>, String> {
        match self {
            Value::Bool(a) => Ok(a),
            other => Err(format!("expected a bool tensor, got {}", other.kind())),
        }
    }

    /// Elements as i64 (floats truncate), for shape-like arguments.
    pub fn to_i64_vec(&self) -> Vec<i64> {
        match self {
            Value::Float(a) => a.iter().map(|&v| v as i64).collect(),
            Value::Int(a) => a.iter().map(|&v| v as i64).collect(),
            Value::Bool(a) => a.iter().map(|&v| v as i64).collect(),
            Value::Str(_) => Vec::new(),
        }
    }

    /// The elements as f32, borrowed when they already are floats (converted otherwise, as
    /// [`Value::to_f32_array`] does).
    pub fn floats(&self) -> Result<Cow<'_, ArrayD<f32>>, String> {
        match self {
            Value::Float(a) => Ok(Cow::Borrowed(a)),
            other => other.to_f32_array().map(Cow::Owned),
        }
    }

    /// Elements as f32 (bools as 0/1), for numeric arguments of either kind.
    pub fn to_f32_array(&self) -> Result<ArrayD<f32>, String> {
        match self {
            Value::Float(a) => Ok(a.clone()),
            Value::Int(a) => Ok(a.mapv(|v| v as f32)),
            Value::Bool(a) => Ok(a.mapv(|v| v as u8 as f32)),
            Value::Str(_) => Err("expected a numeric tensor, got strings".into()),
        }
    }

    /// The single string of a string scalar.
    pub fn as_str(&self) -> Result<&str, String> {
        match self {
            Value::Str(a) if a.len() == 1 => Ok(a.iter().next().unwrap()),
            other => Err(format!("expected a string scalar, got {}", other.kind())),
        }
    }

    /// A word for the value's kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Float(_) => "float",
            Value::Int(_) => "int",
            Value::Bool(_) => "bool",
            Value::Str(_) => "string",
        }
    }

    /// Rounds float elements to the nearest fp16 value (overflow to ±inf, NaN kept, subnormals
    /// kept); other kinds are unchanged.
    pub fn round_to_f16(&mut self) {
        if let Value::Float(a) = self {
            round_array_to_f16(a);
        }
    }
}

/// Elements converted per block, through a buffer on the stack.
const ROUNDING_BLOCK: usize = 1024;

/// Rounds every element of `a` to the nearest fp16 value, in blocks of slice conversions (which
/// use the CPU's fp16 instructions where it has them, with the same results) spread over the
/// rayon pool. Each element's result depends on that element alone.
pub fn round_array_to_f16(a: &mut ArrayD<f32>) {
    fn round_block(block: &mut [f32]) {
        let mut half = [f16::ZERO; ROUNDING_BLOCK];
        let half = &mut half[..block.len()];
        half.convert_from_f32_slice(block);
        half.convert_to_f32_slice(block);
    }
    match a.as_slice_memory_order_mut() {
        Some(data) => data
            .par_chunks_mut(ROUNDING_BLOCK * 16)
            .for_each(|chunk| chunk.chunks_mut(ROUNDING_BLOCK).for_each(round_block)),
        None => a.mapv_inplace(|v| f16::from_f32(v).to_f32()),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ShapeBuilder;

    #[test]
    fn rounding_to_f16_matches_the_scalar_conversion() {
        // Ties, overflow, the smallest subnormal, NaN, infinities; more than one block.
        let specials = [
            1.0 + 1.0 / 2048.0,
            1.0 + 3.0 / 2048.0,
            65520.0,
            -1e6,
            5.96e-8,
            1e-9,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
        ];
        let values: Vec<f32> = (0..3000)
            .map(|i| {
                specials
                    .get(i)
                    .copied()
                    .unwrap_or((i as f32 * 0.7317).sin() * 300.0)
            })
            .collect();
        let want: Vec<f32> = values.iter().map(|&v| f16::from_f32(v).to_f32()).collect();
        let same = |got: &ArrayD<f32>| {
            let got: Vec<f32> = got.iter().copied().collect();
            got.len() == want.len()
                && got
                    .iter()
                    .zip(&want)
                    .all(|(g, w)| g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()))
        };
        let mut standard = ArrayD::from_shape_vec(IxDyn(&[3000]), values.clone()).unwrap();
        round_array_to_f16(&mut standard);
        assert!(same(&standard));
        // Column-major memory: rounded in memory order, compared in logical order.
        let mut fortran = ArrayD::from_shape_vec(IxDyn(&[1000, 3]).f(), values.clone()).unwrap();
        round_array_to_f16(&mut fortran);
        let want_fortran = ArrayD::from_shape_vec(IxDyn(&[1000, 3]).f(), want.clone()).unwrap();
        assert!(fortran
            .iter()
            .zip(want_fortran.iter())
            .all(|(g, w)| g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan())));
    }
}
