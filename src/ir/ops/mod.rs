//! The op registry: one [`OpDef`] per MIL op, holding its parameters, the first target that
//! has it, its type-inference rule and its interpreter kernel. The validator, the frontends,
//! the interpreter and the coverage docs all read this one table.

mod activation;
mod args;
pub mod broadcast;
pub mod conv;
pub mod elementwise;
pub mod linear;
mod normalization;
pub mod pool;
pub mod reduction;
pub mod shape;
pub mod window;

pub use args::InferArgs;

use super::{Target, TensorType};
use crate::interp::KernelFn;

/// Which element types a parameter accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamType {
    /// The op's floating-point type variable `T` (fp16 or fp32); every `T` parameter of one op
    /// has the same dtype.
    T,
    /// Any integer type.
    Int,
    /// `T`, or an integer type (used by ops that also run on indices, e.g. `add`, `concat`);
    /// still shared across the op's `T` parameters.
    TOrInt,
    /// bool.
    Bool,
    /// A string (e.g. `pad_type`, `dtype`).
    Str,
    /// Anything.
    Any,
}

/// One parameter of an op.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    /// Parameter name as written in the package.
    pub name: &'static str,
    /// Accepted element types.
    pub ty: ParamType,
    /// False when the parameter may be omitted.
    pub required: bool,
    /// True when the parameter takes a list of arguments (e.g. `concat.values`).
    pub variadic: bool,
    /// True when the argument must be a compile-time constant.
    pub constant: bool,
}

impl Param {
    /// A required, non-constant, single-argument parameter.
    pub const fn new(name: &'static str, ty: ParamType) -> Param {
        Param {
            name,
            ty,
            required: true,
            variadic: false,
            constant: false,
        }
    }

    /// The same parameter, optional.
    pub const fn optional(self) -> Param {
        Param {
            required: false,
            ..self
        }
    }

    /// The same parameter, constant.
    pub const fn constant(self) -> Param {
        Param {
            constant: true,
            ..self
        }
    }

    /// The same parameter, variadic.
    pub const fn variadic(self) -> Param {
        Param {
            variadic: true,
            ..self
        }
    }
}

/// Type inference: from the argument types (and constant values) to the output types, or a
/// message saying what is wrong.
pub type InferFn = fn(&InferArgs) -> Result<Vec<TensorType>, String>;

/// The definition of one MIL op.
#[derive(Clone, Copy)]
pub struct OpDef {
    /// MIL op type.
    pub name: &'static str,
    /// First deployment target whose opset has this op.
    pub since: Target,
    /// Parameters in canonical order.
    pub params: &'static [Param],
    /// Output type rule.
    pub infer: InferFn,
    /// Reference interpreter kernel.
    pub kernel: KernelFn,
}

impl OpDef {
    /// The parameter called `name`.
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }
}

/// An iOS15 op definition (the common case).
pub(crate) const fn op(
    name: &'static str,
    params: &'static [Param],
    infer: InferFn,
    kernel: KernelFn,
) -> OpDef {
    OpDef {
        name,
        since: Target::IOS15,
        params,
        infer,
        kernel,
    }
}

/// Every op family's definitions.
const FAMILIES: &[&[OpDef]] = &[
    elementwise::DEFS,
    activation::DEFS,
    linear::DEFS,
    conv::DEFS,
    pool::DEFS,
    normalization::DEFS,
    reduction::DEFS,
    shape::DEFS,
];

/// The definition of MIL op `op_type`, if mlpack knows it.
pub fn lookup(op_type: &str) -> Option<&'static OpDef> {
    FAMILIES
        .iter()
        .flat_map(|family| family.iter())
        .find(|def| def.name == op_type)
}

/// Every registered op, in family order.
pub fn all() -> impl Iterator<Item = &'static OpDef> {
    FAMILIES.iter().flat_map(|family| family.iter())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn op_names_are_unique() {
        let mut seen = HashSet::new();
        for def in all() {
            assert!(
                seen.insert(def.name),
                "op '{}' is registered twice",
                def.name
            );
        }
        assert!(seen.len() > 100, "only {} ops registered", seen.len());
    }

    #[test]
    fn parameter_names_are_unique_per_op() {
        for def in all() {
            let names: HashSet<_> = def.params.iter().map(|p| p.name).collect();
            assert_eq!(
                names.len(),
                def.params.len(),
                "op '{}' repeats a parameter",
                def.name
            );
        }
    }
}
