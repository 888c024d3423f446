//! What a kernel sees of an op at run time: the run-time view of [`OpArgs`].

use super::Value;
use crate::ir::ops::{OpArgs, OpDef};
use crate::ir::{Operation, TensorType};
use std::collections::BTreeMap;

/// A kernel: computes an op's outputs from its argument values.
pub type KernelFn = fn(&KernelArgs) -> Result<Vec<Value>, String>;

/// Argument values of one op, by parameter name, plus the op's declared output types.
pub struct KernelArgs<'a> {
    /// The op's definition.
    pub def: &'static OpDef,
    /// The op being run.
    pub op: &'a Operation,
    /// Parameter name → argument values (several for variadic parameters).
    pub args: BTreeMap<&'a str, Vec<&'a Value>>,
    /// Declared output types.
    pub outputs: &'a [TensorType],
}

impl<'a> OpArgs<'a> for KernelArgs<'a> {
    fn def(&self) -> &'static OpDef {
        self.def
    }

    fn has(&self, name: &str) -> bool {
        self.opt(name).is_some()
    }

    fn given_ints(&self, name: &str) -> Result<Vec<i64>, String> {
        Ok(self.get(name)?.to_i64_vec())
    }

    fn given_floats(&self, name: &str) -> Result<Vec<f64>, String> {
        Ok(self
            .get(name)?
            .to_f32_array()?
            .iter()
            .map(|&v| v as f64)
            .collect())
    }

    fn given_str(&self, name: &str) -> Result<&'a str, String> {
        self.get(name)?.as_str()
    }
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
}
