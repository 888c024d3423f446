//! The MIL-style program: functions, blocks, operations and the values flowing between them.

use super::{Description, ShapeSet, Target, Tensor, TensorType};
use std::collections::BTreeMap;

/// A named, typed value: a function input or an operation output.
#[derive(Clone, Debug, PartialEq)]
pub struct Var {
    /// Identifier, unique within its function (`[A-Za-z_][A-Za-z0-9_]*`).
    pub name: String,
    /// Type of the value.
    pub ty: TensorType,
}

impl Var {
    /// A new variable.
    pub fn new(name: impl Into<String>, ty: TensorType) -> Var {
        Var {
            name: name.into(),
            ty,
        }
    }
}

/// What an operation parameter is bound to.
#[derive(Clone, Debug, PartialEq)]
pub enum Argument {
    /// A variable defined earlier (function input or op output), by name.
    Var(String),
    /// A compile-time value written in place (used by iOS18 constexpr ops).
    Value(Tensor),
}

impl Argument {
    /// The variable name, when bound to one.
    pub fn var(&self) -> Option<&str> {
        match self {
            Argument::Var(name) => Some(name),
            Argument::Value(_) => None,
        }
    }
}

/// One operation: its MIL type, parameters bound to arguments, and its outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct Operation {
    /// MIL op type, e.g. `conv` or `const`.
    pub op_type: String,
    /// Op name (the `name` attribute in the package).
    pub name: String,
    /// Parameters in definition order; variadic parameters hold several arguments.
    pub inputs: Vec<(String, Vec<Argument>)>,
    /// Output variables.
    pub outputs: Vec<Var>,
    /// Attributes other than `name` (`val` for `const`, constexpr parameters before iOS18).
    pub attributes: BTreeMap<String, Tensor>,
    /// Name of the source-model node this op came from, for diagnostics.
    pub origin: Option<String>,
}

impl Operation {
    /// A `const` op producing `value` as variable `name`.
    pub fn constant(name: impl Into<String>, value: Tensor) -> Operation {
        let name = name.into();
        Operation {
            op_type: "const".into(),
            outputs: vec![Var::new(name.clone(), value.ty())],
            name,
            inputs: Vec::new(),
            attributes: BTreeMap::from([("val".to_string(), value)]),
            origin: None,
        }
    }

    /// [`Operation::constant`] recording source node `origin`.
    pub fn constant_from(
        name: impl Into<String>,
        value: Tensor,
        origin: Option<String>,
    ) -> Operation {
        Operation {
            origin,
            ..Operation::constant(name, value)
        }
    }

    /// The value of a `const` op.
    pub fn const_value(&self) -> Option<&Tensor> {
        if self.op_type == "const" {
            self.attributes.get("val")
        } else {
            None
        }
    }

    /// The arguments bound to parameter `param`, if present.
    pub fn input(&self, param: &str) -> Option<&[Argument]> {
        self.inputs
            .iter()
            .find(|(p, _)| p == param)
            .map(|(_, a)| a.as_slice())
    }

    /// Names of every variable this op reads.
    pub fn input_vars(&self) -> impl Iterator<Item = &str> {
        self.inputs
            .iter()
            .flat_map(|(_, args)| args.iter().filter_map(Argument::var))
    }

    /// Renames every read of variable `from` to `to`.
    pub fn rename_input(&mut self, from: &str, to: &str) {
        for (_, args) in &mut self.inputs {
            for arg in args {
                if let Argument::Var(name) = arg {
                    if name == from {
                        *name = to.to_string();
                    }
                }
            }
        }
    }
}

/// A straight-line sequence of operations in topological order, with named outputs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Block {
    /// Operations, each reading only function inputs or earlier outputs.
    pub operations: Vec<Operation>,
    /// Names of the variables the block returns.
    pub outputs: Vec<String>,
}

impl Block {
    /// The op producing variable `name`, with its index.
    pub fn producer(&self, name: &str) -> Option<(usize, &Operation)> {
        self.operations
            .iter()
            .enumerate()
            .find(|(_, op)| op.outputs.iter().any(|o| o.name == name))
    }

    /// Renames every read of variable `from` (op inputs and block outputs) to `to`.
    pub fn rename_uses(&mut self, from: &str, to: &str) {
        for op in &mut self.operations {
            op.rename_input(from, to);
        }
        for out in &mut self.outputs {
            if out == from {
                *out = to.to_string();
            }
        }
    }

    /// How many times each variable is read (op inputs plus block outputs).
    pub fn use_counts(&self) -> BTreeMap<&str, usize> {
        let mut counts = BTreeMap::new();
        for op in &self.operations {
            for name in op.input_vars() {
                *counts.entry(name).or_insert(0) += 1;
            }
        }
        for out in &self.outputs {
            *counts.entry(out.as_str()).or_insert(0) += 1;
        }
        counts
    }
}

/// A function: typed inputs and a body block.
#[derive(Clone, Debug, PartialEq)]
pub struct Function {
    /// Function name (`main` for single-function models).
    pub name: String,
    /// Inputs in declaration order.
    pub inputs: Vec<Var>,
    /// States (iOS18): fp16 static tensors kept by the runtime between predictions, read with
    /// `read_state` and written with `write_state`; declared after the inputs in the package.
    pub states: Vec<Var>,
    /// The accepted shapes of each input with symbolic dimensions, by input name.
    pub input_shapes: BTreeMap<String, ShapeSet>,
    /// Body.
    pub block: Block,
}

impl Function {
    /// The names of the block's ops, in program order.
    pub fn op_names(&self) -> Vec<&str> {
        self.block
            .operations
            .iter()
            .map(|o| o.name.as_str())
            .collect()
    }

    /// How many ops of each type the function's block holds.
    pub fn op_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for op in &self.block.operations {
            *counts.entry(op.op_type.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// The type of variable `name` (function input or op output).
    pub fn var_type(&self, name: &str) -> Option<&TensorType> {
        self.inputs
            .iter()
            .chain(&self.states)
            .find(|v| v.name == name)
            .map(|v| &v.ty)
            .or_else(|| {
                self.block
                    .operations
                    .iter()
                    .flat_map(|op| &op.outputs)
                    .find(|v| v.name == name)
                    .map(|v| &v.ty)
            })
    }

    /// Types of every variable, by name.
    pub fn var_types(&self) -> BTreeMap<&str, &TensorType> {
        let mut types: BTreeMap<&str, &TensorType> = self
            .inputs
            .iter()
            .chain(&self.states)
            .map(|v| (v.name.as_str(), &v.ty))
            .collect();
        for op in &self.block.operations {
            for out in &op.outputs {
                types.insert(&out.name, &out.ty);
            }
        }
        types
    }

    /// The state called `name`, if there is one.
    pub fn state(&self, name: &str) -> Option<&Var> {
        self.states.iter().find(|v| v.name == name)
    }

    /// The function's outputs as typed variables, in block-output order.
    pub fn outputs(&self) -> Vec<Var> {
        let types = self.var_types();
        self.block
            .outputs
            .iter()
            .filter_map(|name| {
                types
                    .get(name.as_str())
                    .map(|ty| Var::new(name.clone(), (*ty).clone()))
            })
            .collect()
    }
}

/// A whole program: the deployment target and its functions.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    /// Deployment target; fixes the opset and the specification version.
    pub target: Target,
    /// Functions; the first is the model's entry point.
    pub functions: Vec<Function>,
    /// Free-form metadata carried into the package (`userDefined` entries).
    pub metadata: BTreeMap<String, String>,
    /// Image inputs, classifier outputs and human-readable metadata of the model description.
    pub description: Description,
}

impl Program {
    /// A program of `functions` (the entry point first) for `target`, with no metadata and an
    /// empty description.
    pub fn new(target: Target, functions: Vec<Function>) -> Program {
        Program {
            target,
            functions,
            metadata: BTreeMap::new(),
            description: Description::default(),
        }
    }

    /// The entry-point function.
    pub fn main(&self) -> &Function {
        &self.functions[0]
    }

    /// The entry-point function, mutably.
    pub fn main_mut(&mut self) -> &mut Function {
        &mut self.functions[0]
    }

    /// True when the program is stored as a multifunction model (iOS18): several functions,
    /// or one not called `main`.
    pub fn is_multifunction(&self) -> bool {
        self.functions.len() > 1 || self.functions.iter().any(|f| f.name != "main")
    }

    /// The names of the functions, the entry point first.
    pub fn function_names(&self) -> Vec<&str> {
        self.functions.iter().map(|f| f.name.as_str()).collect()
    }

    /// This program reduced to its function `name` (the entry point when `None`), which becomes
    /// its only function. `Err` names the function asked for and lists the available ones.
    pub fn select_function(mut self, name: Option<&str>) -> Result<Program, String> {
        let Some(name) = name else {
            self.functions.truncate(1);
            return Ok(self);
        };
        match self.functions.iter().position(|f| f.name == name) {
            Some(index) => {
                let function = self.functions.swap_remove(index);
                self.functions = vec![function];
                Ok(self)
            }
            None => Err(format!(
                "no function '{name}' (functions: {})",
                self.function_names().join(", ")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(names: &[&str]) -> Program {
        Program {
            target: Target::IOS18,
            functions: names
                .iter()
                .map(|n| Function {
                    name: n.to_string(),
                    inputs: Vec::new(),
                    states: Vec::new(),
                    input_shapes: BTreeMap::new(),
                    block: Block::default(),
                })
                .collect(),
            metadata: BTreeMap::new(),
            description: Default::default(),
        }
    }

    #[test]
    fn selects_a_function_by_name_or_the_entry_point() {
        assert!(!program(&["main"]).is_multifunction());
        assert!(program(&["prefill"]).is_multifunction());
        let p = program(&["prefill", "decode", "other"]);
        assert_eq!(
            p.clone()
                .select_function(Some("decode"))
                .unwrap()
                .function_names(),
            ["decode"]
        );
        assert_eq!(
            p.clone().select_function(None).unwrap().function_names(),
            ["prefill"]
        );
        assert_eq!(
            p.select_function(Some("nope")).unwrap_err(),
            "no function 'nope' (functions: prefill, decode, other)"
        );
    }
}
