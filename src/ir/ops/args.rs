//! What a type-inference rule sees of an op's arguments.

use crate::ir::{Dim, Tensor, TensorType};
use std::collections::BTreeMap;

/// Argument types (and constant values, where known) of one op, by parameter name.
pub struct InferArgs<'a> {
    /// Name of the op being typed (used to name the symbolic dims it introduces).
    pub op_name: &'a str,
    /// Parameter name → one entry per argument: its type and its value if constant.
    pub args: BTreeMap<&'a str, Vec<(&'a TensorType, Option<&'a Tensor>)>>,
}

impl<'a> InferArgs<'a> {
    /// Type of single-argument parameter `name`; an error if absent.
    pub fn ty(&self, name: &str) -> Result<&'a TensorType, String> {
        self.opt_ty(name)
            .ok_or_else(|| format!("missing input '{name}'"))
    }

    /// Type of single-argument parameter `name`, if present.
    pub fn opt_ty(&self, name: &str) -> Option<&'a TensorType> {
        self.args.get(name).and_then(|a| a.first()).map(|(t, _)| *t)
    }

    /// Types of every argument of variadic parameter `name`.
    pub fn tys(&self, name: &str) -> Vec<&'a TensorType> {
        self.args
            .get(name)
            .map(|a| a.iter().map(|(t, _)| *t).collect())
            .unwrap_or_default()
    }

    /// Constant value of parameter `name`, if present and constant.
    pub fn value(&self, name: &str) -> Option<&'a Tensor> {
        self.args
            .get(name)
            .and_then(|a| a.first())
            .and_then(|(_, v)| *v)
    }

    /// Constant value of parameter `name`; an error if it is not a known constant.
    pub fn const_value(&self, name: &str) -> Result<&'a Tensor, String> {
        self.value(name)
            .ok_or_else(|| format!("input '{name}' must be a constant"))
    }

    /// Constant integer list of parameter `name`.
    pub fn ints(&self, name: &str) -> Result<Vec<i64>, String> {
        Ok(self.const_value(name)?.to_i64_vec())
    }

    /// Constant integer list of optional parameter `name` (None when absent).
    pub fn opt_ints(&self, name: &str) -> Result<Option<Vec<i64>>, String> {
        if self.args.contains_key(name) {
            self.ints(name).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Constant scalar integer of parameter `name`, or `default` when absent.
    pub fn int_or(&self, name: &str, default: i64) -> Result<i64, String> {
        match self.args.get(name) {
            None => Ok(default),
            Some(_) => self
                .const_value(name)?
                .scalar_i64()
                .ok_or_else(|| format!("input '{name}' must be a scalar")),
        }
    }

    /// Constant scalar bool of parameter `name`, or `default` when absent.
    pub fn bool_or(&self, name: &str, default: bool) -> Result<bool, String> {
        self.int_or(name, default as i64).map(|v| v != 0)
    }

    /// Constant string of parameter `name`, or `default` when absent.
    pub fn str_or(&self, name: &str, default: &'a str) -> Result<&'a str, String> {
        match self.args.get(name) {
            None => Ok(default),
            Some(_) => self
                .const_value(name)?
                .as_string()
                .ok_or_else(|| format!("input '{name}' must be a string")),
        }
    }

    /// Normalises axis `axis` (negative counts from the end) for a tensor of `rank`.
    pub fn axis(axis: i64, rank: usize) -> Result<usize, String> {
        let r = rank as i64;
        if axis < -r || axis >= r {
            return Err(format!("axis {axis} out of range for rank {rank}"));
        }
        Ok(if axis < 0 {
            (axis + r) as usize
        } else {
            axis as usize
        })
    }

    /// A fresh symbolic dim for output dimension `index` of this op, for sizes only known at
    /// run time (names are deterministic: derived from the op name).
    pub fn symbol(&self, index: usize) -> Dim {
        Dim::Symbol(format!("{}_d{index}", self.op_name))
    }

    /// Constant float scalar of parameter `name`, or `default` when absent.
    pub fn float_or(&self, name: &str, default: f64) -> Result<f64, String> {
        match self.args.get(name) {
            None => Ok(default),
            Some(_) => self
                .const_value(name)?
                .scalar_f64()
                .ok_or_else(|| format!("input '{name}' must be a scalar")),
        }
    }

    /// Constant integer list of parameter `name` when it is present and constant.
    pub fn known_ints(&self, name: &str) -> Option<Vec<i64>> {
        self.value(name).map(Tensor::to_i64_vec)
    }
}
