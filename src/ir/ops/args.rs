//! What type rules and kernels see of an op's arguments. [`OpArgs`] is the one access API:
//! [`InferArgs`] implements it at type-inference time (argument types and constant values)
//! and [`KernelArgs`](crate::interp::KernelArgs) at run time (argument values). An absent
//! optional parameter reads as the default declared on its [`Param`](super::Param).

use super::{OpDef, ParamDefault};
use crate::ir::{Dim, Tensor, TensorType};
use std::collections::BTreeMap;

/// Reads an op's arguments by parameter name, with the defaults of its parameter specs.
pub trait OpArgs<'a> {
    /// The op's definition (its parameter specs, with their defaults).
    fn def(&self) -> &'static OpDef;

    /// True when parameter `name` has an argument.
    fn has(&self, name: &str) -> bool;

    /// The elements of parameter `name`'s argument as integers (it is present; at type
    /// inference it must be a constant).
    fn given_ints(&self, name: &str) -> Result<Vec<i64>, String>;

    /// The elements of parameter `name`'s argument as floats (it is present; at type
    /// inference it must be a constant).
    fn given_floats(&self, name: &str) -> Result<Vec<f64>, String>;

    /// The string of parameter `name`'s string-scalar argument (it is present; at type
    /// inference it must be a constant).
    fn given_str(&self, name: &str) -> Result<&'a str, String>;

    /// The default declared for parameter `name`; an error naming it when it has none.
    fn default(&self, name: &str) -> Result<ParamDefault, String> {
        self.def()
            .param(name)
            .and_then(|p| p.default)
            .ok_or_else(|| format!("missing input '{name}'"))
    }

    /// Integer list of parameter `name`, or its default.
    fn ints(&self, name: &str) -> Result<Vec<i64>, String> {
        if self.has(name) {
            return self.given_ints(name);
        }
        match self.default(name)? {
            ParamDefault::Ints(v) => Ok(v.to_vec()),
            ParamDefault::Int(v) => Ok(vec![v]),
            other => Err(format!(
                "input '{name}' defaults to {other:?}, not integers"
            )),
        }
    }

    /// Integer list of optional parameter `name`, or `None` when it is absent and has no
    /// declared default.
    fn opt_ints(&self, name: &str) -> Result<Option<Vec<i64>>, String> {
        if self.has(name) || self.def().param(name).is_some_and(|p| p.default.is_some()) {
            self.ints(name).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Scalar integer of parameter `name`, or its default.
    fn int(&self, name: &str) -> Result<i64, String> {
        if !self.has(name) {
            return match self.default(name)? {
                ParamDefault::Int(v) => Ok(v),
                ParamDefault::Bool(b) => Ok(b as i64),
                other => Err(format!(
                    "input '{name}' defaults to {other:?}, not an integer"
                )),
            };
        }
        one(name, self.given_ints(name)?)
    }

    /// Scalar bool of parameter `name`, or its default.
    fn bool(&self, name: &str) -> Result<bool, String> {
        if !self.has(name) {
            return match self.default(name)? {
                ParamDefault::Bool(b) => Ok(b),
                other => Err(format!("input '{name}' defaults to {other:?}, not a bool")),
            };
        }
        one(name, self.given_ints(name)?).map(|v| v != 0)
    }

    /// Scalar float of parameter `name`, or its default.
    fn float(&self, name: &str) -> Result<f64, String> {
        if !self.has(name) {
            return match self.default(name)? {
                ParamDefault::Float(v) => Ok(v),
                ParamDefault::Int(v) => Ok(v as f64),
                other => Err(format!("input '{name}' defaults to {other:?}, not a float")),
            };
        }
        one(name, self.given_floats(name)?)
    }

    /// String scalar of parameter `name`, or its default.
    fn str(&self, name: &str) -> Result<&'a str, String> {
        if !self.has(name) {
            return match self.default(name)? {
                ParamDefault::Str(s) => Ok(s),
                other => Err(format!(
                    "input '{name}' defaults to {other:?}, not a string"
                )),
            };
        }
        self.given_str(name)
    }
}

/// The single element of `values`, read from parameter `name`.
fn one<T: Copy>(name: &str, values: Vec<T>) -> Result<T, String> {
    match values.as_slice() {
        [v] => Ok(*v),
        _ => Err(format!("input '{name}' must be a scalar")),
    }
}

/// Argument types (and constant values, where known) of one op, by parameter name.
pub struct InferArgs<'a> {
    /// The op's definition.
    pub def: &'static OpDef,
    /// Name of the op being typed (used to name the symbolic dims it introduces).
    pub op_name: &'a str,
    /// Parameter name → one entry per argument: its type and its value if constant.
    pub args: BTreeMap<&'a str, Vec<(&'a TensorType, Option<&'a Tensor>)>>,
}

impl<'a> OpArgs<'a> for InferArgs<'a> {
    fn def(&self) -> &'static OpDef {
        self.def
    }

    fn has(&self, name: &str) -> bool {
        self.args.contains_key(name)
    }

    fn given_ints(&self, name: &str) -> Result<Vec<i64>, String> {
        Ok(self.const_value(name)?.to_i64_vec())
    }

    fn given_floats(&self, name: &str) -> Result<Vec<f64>, String> {
        Ok(self.const_value(name)?.to_f64_vec())
    }

    fn given_str(&self, name: &str) -> Result<&'a str, String> {
        self.const_value(name)?
            .as_string()
            .ok_or_else(|| format!("input '{name}' must be a string"))
    }
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

    /// A fresh symbolic dim for output dimension `index` of this op, for sizes only known at
    /// run time (names are deterministic: derived from the op name).
    pub fn symbol(&self, index: usize) -> Dim {
        Dim::Symbol(format!("{}_d{index}", self.op_name))
    }

    /// Constant integer list of parameter `name` when it is present and constant.
    pub fn known_ints(&self, name: &str) -> Option<Vec<i64>> {
        self.value(name).map(Tensor::to_i64_vec)
    }
}

/// A string parameter's closed set of values as a Rust enum (e.g. pad modes): parsed once,
/// with an error naming the allowed values.
pub trait StrEnum: Sized + Copy + 'static {
    /// What the values are, for error messages (e.g. "pad mode").
    const WHAT: &'static str;
    /// Every value with its MIL spelling.
    const VALUES: &'static [(&'static str, Self)];

    /// The value spelled `s`.
    fn parse(s: &str) -> Result<Self, String> {
        Self::VALUES
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::VALUES.iter().map(|(n, _)| *n).collect();
                format!(
                    "unknown {} '{s}' (expected one of {})",
                    Self::WHAT,
                    names.join(", ")
                )
            })
    }
}
