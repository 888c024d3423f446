//! What both frontends build with: the IR builder, and the [`Emit`] helpers that add ops and
//! constants and turn problems into errors naming the source node being converted.

use crate::ir::{Builder, DType, Tensor, TensorType};
use crate::Error;
use std::path::PathBuf;

/// The function under construction, the source file and the node being converted: what a
/// frontend's conversion context holds to implement [`Emit`].
pub struct Emitter {
    /// The function being built.
    pub b: Builder,
    /// The source model, named in errors.
    pub path: PathBuf,
    /// `node 'name' (type)` of the node being converted, prefixed to errors.
    pub current: String,
}

impl Emitter {
    /// An emitter building function `b` for the model at `path`.
    pub fn new(b: Builder, path: PathBuf) -> Emitter {
        Emitter {
            b,
            path,
            current: String::new(),
        }
    }
}

/// The helpers every conversion context has, provided on top of its [`Emitter`].
pub trait Emit {
    /// The context's emitter.
    fn emitter(&self) -> &Emitter;

    /// The context's emitter, mutably.
    fn emitter_mut(&mut self) -> &mut Emitter;

    /// An [`Error::Unsupported`] about the current node.
    fn unsupported(&self, message: impl std::fmt::Display) -> Error {
        Error::Unsupported {
            path: self.emitter().path.clone(),
            message: format!("{}: {message}", self.emitter().current),
        }
    }

    /// An [`Error::Invalid`] about the current node.
    fn invalid(&self, message: impl std::fmt::Display) -> Error {
        Error::invalid(
            &self.emitter().path,
            format!("{}: {message}", self.emitter().current),
        )
    }

    /// The type of variable `var`.
    fn ty(&self, var: &str) -> Result<TensorType, Error> {
        self.emitter()
            .b
            .ty(var)
            .cloned()
            .ok_or_else(|| Error::Internal(format!("variable '{var}' has no type")))
    }

    /// The static shape of variable `var`; Unsupported when a dimension is symbolic.
    fn shape(&self, var: &str) -> Result<Vec<usize>, Error> {
        let ty = self.ty(var)?;
        ty.static_shape()
            .ok_or_else(|| self.unsupported(format!("needs a static shape, '{var}' has type {ty}")))
    }

    /// The rank of variable `var`.
    fn rank(&self, var: &str) -> Result<usize, Error> {
        Ok(self.ty(var)?.rank())
    }

    /// The constant value of variable `var`, if it is one.
    fn const_value(&self, var: &str) -> Option<&Tensor> {
        self.emitter().b.const_value(var)
    }

    /// Adds a MIL op (folded when its inputs are constant) and returns its output variables.
    fn op(
        &mut self,
        op_type: &str,
        hint: &str,
        inputs: &[(&str, &str)],
    ) -> Result<Vec<String>, Error> {
        let grouped: Vec<(&str, Vec<&str>)> = inputs.iter().map(|&(p, v)| (p, vec![v])).collect();
        self.op_lists(op_type, hint, &grouped)
    }

    /// [`Emit::op`] with several arguments per parameter (variadic parameters).
    fn op_lists(
        &mut self,
        op_type: &str,
        hint: &str,
        inputs: &[(&str, Vec<&str>)],
    ) -> Result<Vec<String>, Error> {
        let refs: Vec<(&str, &[&str])> = inputs.iter().map(|(p, v)| (*p, v.as_slice())).collect();
        self.emitter_mut()
            .b
            .op(op_type, hint, &refs)
            .map_err(|e| self.invalid(e))
    }

    /// [`Emit::op`] for a single-output op.
    fn op1(&mut self, op_type: &str, hint: &str, inputs: &[(&str, &str)]) -> Result<String, Error> {
        let mut outs = self.op(op_type, hint, inputs)?;
        match outs.len() {
            1 => Ok(outs.remove(0)),
            n => Err(Error::Internal(format!(
                "{op_type} produced {n} outputs, expected 1"
            ))),
        }
    }

    /// Adds a `const` op.
    fn constant(&mut self, hint: &str, value: Tensor) -> String {
        self.emitter_mut().b.constant(hint, value)
    }

    /// A rank-1 int32 constant (values saturate to the int32 range).
    fn ints(&mut self, hint: &str, values: &[i64]) -> String {
        let v: Vec<i32> = values.iter().map(|&x| saturate_i32(x)).collect();
        self.emitter_mut().b.constant(hint, Tensor::vec_i32(&v))
    }

    /// A rank-0 int32 constant (the value saturates to the int32 range).
    fn int(&mut self, hint: &str, value: i64) -> String {
        self.emitter_mut()
            .b
            .constant(hint, Tensor::scalar_i32(saturate_i32(value)))
    }

    /// A rank-0 fp32 constant.
    fn float(&mut self, hint: &str, value: f32) -> String {
        self.emitter_mut()
            .b
            .constant(hint, Tensor::scalar_f32(value))
    }

    /// A rank-0 bool constant.
    fn boolean(&mut self, hint: &str, value: bool) -> String {
        self.emitter_mut()
            .b
            .constant(hint, Tensor::scalar_bool(value))
    }

    /// A rank-0 string constant.
    fn string(&mut self, hint: &str, value: &str) -> String {
        self.emitter_mut()
            .b
            .constant(hint, Tensor::scalar_string(value))
    }

    /// A constant with no elements (a zero in `shape`). Its value is fully known, so shape
    /// computations can carry it until it folds away (`concat` drops it); the conversion fails
    /// only if the finished program still needs it, since Core ML has no empty tensors.
    fn empty(&mut self, hint: &str, dtype: DType, shape: &[usize]) -> Result<String, Error> {
        let value = Tensor::from_bytes(dtype, shape, Default::default())
            .map_err(|e| self.invalid(format!("an empty tensor of shape {shape:?}: {e}")))?;
        Ok(self.emitter_mut().b.constant(hint, value))
    }

    /// Adds `cast(var, dtype)` (folded when `var` is constant).
    fn cast(&mut self, var: &str, dtype: DType, hint: &str) -> Result<String, Error> {
        let dtype_name = self.string(&format!("{hint}_dtype"), dtype.name());
        self.op1("cast", hint, &[("x", var), ("dtype", &dtype_name)])
    }

    /// Makes `var` have `dtype`: unchanged when it has it, a constant is converted in place,
    /// anything else gets a `cast`.
    fn coerce(&mut self, var: &str, dtype: DType, hint: &str) -> Result<String, Error> {
        if self.ty(var)?.dtype == dtype {
            return Ok(var.to_string());
        }
        if let Some(value) = self.const_value(var) {
            let converted = value.cast(dtype);
            return Ok(self.constant(hint, converted));
        }
        self.cast(var, dtype, hint)
    }
}

/// `value` clamped to the int32 range.
fn saturate_i32(value: i64) -> i32 {
    value.clamp(i32::MIN as i64, i32::MAX as i64) as i32
}
