//! What a kernel sees of an op at run time.

use super::Value;
use crate::ir::{Operation, TensorType};
use std::collections::BTreeMap;

/// A kernel: computes an op's outputs from its argument values.
pub type KernelFn = fn(&KernelArgs) -> Result<Vec<Value>, String>;

/// Argument values of one op, by parameter name, plus the op's declared output types.
pub struct KernelArgs<'a> {
    /// The op being run.
    pub op: &'a Operation,
    /// Parameter name → argument values (several for variadic parameters).
    pub args: BTreeMap<&'a str, Vec<&'a Value>>,
    /// Declared output types.
    pub outputs: &'a [TensorType],
}

impl<'a> KernelArgs<'a> {
    /// The value of single-argument parameter `name`; an error if absent.
    pub fn get(&self, name: &str) -> Result<&'a Value, String> {
        self.opt(name)
            .ok_or_else(|| format!("missing input '{name}'"))
    }

    /// The value of parameter `name`, if present.
    pub fn opt(&self, name: &str) -> Option<&'a Value> {
        self.args.get(name).and_then(|v| v.first()).copied()
    }

    /// Every value of variadic parameter `name`.
    pub fn list(&self, name: &str) -> Vec<&'a Value> {
        self.args.get(name).cloned().unwrap_or_default()
    }

    /// Integer list of parameter `name`.
    pub fn ints(&self, name: &str) -> Result<Vec<i64>, String> {
        Ok(self.get(name)?.to_i64_vec())
    }

    /// Integer list of parameter `name`, if present.
    pub fn opt_ints(&self, name: &str) -> Option<Vec<i64>> {
        self.opt(name).map(Value::to_i64_vec)
    }

    /// Scalar integer of parameter `name`, or `default` when absent.
    pub fn int_or(&self, name: &str, default: i64) -> Result<i64, String> {
        match self.opt(name) {
            None => Ok(default),
            Some(v) => v
                .to_i64_vec()
                .first()
                .copied()
                .ok_or_else(|| format!("input '{name}' is empty")),
        }
    }

    /// Scalar bool of parameter `name`, or `default` when absent.
    pub fn bool_or(&self, name: &str, default: bool) -> Result<bool, String> {
        self.int_or(name, default as i64).map(|v| v != 0)
    }

    /// Scalar float of parameter `name`, or `default` when absent.
    pub fn float_or(&self, name: &str, default: f32) -> Result<f32, String> {
        match self.opt(name) {
            None => Ok(default),
            Some(v) => v
                .to_f32_array()?
                .iter()
                .next()
                .copied()
                .ok_or_else(|| format!("input '{name}' is empty")),
        }
    }

    /// String scalar of parameter `name`, or `default` when absent.
    pub fn str_or(&self, name: &str, default: &'a str) -> Result<&'a str, String> {
        match self.opt(name) {
            None => Ok(default),
            Some(v) => v.as_str(),
        }
    }
}
