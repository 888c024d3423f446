//! Building a function op by op, with type inference and constant folding as ops are added.

use super::symbolic::{self, SymInt};
use super::{infer_op, Argument, Block, Function, NameTable, Operation, Tensor, TensorType, Var};
use crate::interp::{eval_op, Value};
use std::collections::HashMap;

/// An op that could not be added, naming it.
#[derive(Debug, thiserror::Error)]
#[error("op '{op}' ({op_type}): {message}")]
pub struct BuildError {
    /// Name of the op being added.
    pub op: String,
    /// Its type.
    pub op_type: String,
    /// What is wrong.
    pub message: String,
}

/// Builds one function. Every added op is checked and typed at once; an op whose inputs are
/// all constants is evaluated with its interpreter kernel and stored as a `const` instead, so
/// shape computations (`shape` → `gather` → `concat` → `reshape`) resolve while building.
pub struct Builder {
    name: String,
    inputs: Vec<Var>,
    ops: Vec<Operation>,
    types: HashMap<String, TensorType>,
    consts: HashMap<String, Tensor>,
    /// Symbolic elements of shape vectors computed from symbolic dimensions.
    syms: HashMap<String, Vec<SymInt>>,
    names: NameTable,
    /// Source node name recorded on the ops added next.
    pub origin: Option<String>,
    /// Whether ops with constant inputs are folded (on by default).
    pub fold_constants: bool,
}

impl Builder {
    /// A builder for function `name` with the given inputs.
    pub fn new(name: &str, inputs: Vec<Var>) -> Builder {
        let mut names = NameTable::default();
        let mut types = HashMap::new();
        for v in &inputs {
            names.reserve(&v.name);
            types.insert(v.name.clone(), v.ty.clone());
        }
        Builder {
            name: name.to_string(),
            inputs,
            ops: Vec::new(),
            types,
            consts: HashMap::new(),
            syms: HashMap::new(),
            names,
            origin: None,
            fold_constants: true,
        }
    }

    /// The type of variable `name`.
    pub fn ty(&self, name: &str) -> Option<&TensorType> {
        self.types.get(name)
    }

    /// The constant value of variable `name`, if it is a constant.
    pub fn const_value(&self, name: &str) -> Option<&Tensor> {
        self.consts.get(name)
    }

    /// The elements of shape vector `name` (known sizes and symbolic dimensions), when it is
    /// computed from the shape of a tensor with symbolic dimensions.
    pub fn symbolic_value(&self, name: &str) -> Option<&[SymInt]> {
        self.syms.get(name).map(Vec::as_slice)
    }

    /// Replaces the type of op output `name` by `ty`, which must have the same dtype and rank
    /// (used to name a dimension the type rule could only call unknown).
    pub fn refine_type(&mut self, name: &str, ty: TensorType) {
        let same_kind = self
            .types
            .get(name)
            .is_some_and(|t| t.dtype == ty.dtype && t.rank() == ty.rank());
        if !same_kind {
            return;
        }
        for op in self.ops.iter_mut().rev() {
            if let Some(out) = op.outputs.iter_mut().find(|o| o.name == name) {
                out.ty = ty.clone();
                self.types.insert(name.to_string(), ty);
                return;
            }
        }
    }

    /// A fresh identifier derived from `hint`.
    pub fn fresh_name(&mut self, hint: &str) -> String {
        self.names.fresh(hint)
    }

    /// Adds a `const` op and returns its variable name.
    pub fn constant(&mut self, hint: &str, value: Tensor) -> String {
        let name = self.names.fresh(hint);
        self.types.insert(name.clone(), value.ty());
        let op = Operation::constant_from(name.clone(), value.clone(), self.origin.clone());
        self.ops.push(op);
        self.consts.insert(name.clone(), value);
        name
    }

    /// Adds an op whose parameters are bound to variables, and returns its output names: the
    /// op's (fresh) name for the first output, `<name>_<i>` for further ones.
    pub fn op(
        &mut self,
        op_type: &str,
        name_hint: &str,
        inputs: &[(&str, &[&str])],
    ) -> Result<Vec<String>, BuildError> {
        let name = self.names.fresh(name_hint);
        let inputs: Vec<(String, Vec<Argument>)> = inputs
            .iter()
            .map(|(p, vars)| {
                (
                    p.to_string(),
                    vars.iter().map(|v| Argument::Var(v.to_string())).collect(),
                )
            })
            .collect();
        let mut op = Operation {
            op_type: op_type.to_string(),
            name: name.clone(),
            inputs,
            outputs: Vec::new(),
            attributes: Default::default(),
            origin: self.origin.clone(),
        };
        let fail = |message: String| BuildError {
            op: name.clone(),
            op_type: op_type.to_string(),
            message,
        };
        let out_types =
            infer_op(&op, &|v| self.types.get(v).map(|t| (t, self.consts.get(v)))).map_err(fail)?;
        for ty in &out_types {
            ty.check_size().map_err(fail)?;
        }
        let mut out_names = vec![name.clone()];
        for i in 1..out_types.len() {
            out_names.push(self.names.fresh(&format!("{name}_{i}")));
        }
        op.outputs = out_names
            .iter()
            .zip(&out_types)
            .map(|(n, t)| Var::new(n.clone(), t.clone()))
            .collect();

        let foldable = self.fold_constants
            && !op_type.starts_with("constexpr_")
            && op.input_vars().all(|v| self.consts.contains_key(v));
        if foldable {
            let consts = &self.consts;
            let values = eval_op(&op, &|v| consts.get(v).map(Value::from_tensor), &out_types)
                .map_err(|m| BuildError {
                    op: name.clone(),
                    op_type: op_type.to_string(),
                    message: m,
                })?;
            for ((out, value), ty) in out_names.iter().zip(values).zip(&out_types) {
                let tensor = value.to_tensor(ty.dtype);
                let mut c = Operation::constant(out.clone(), tensor.clone());
                c.origin = self.origin.clone();
                self.ops.push(c);
                self.consts.insert(out.clone(), tensor);
                self.types.insert(out.clone(), ty.clone());
            }
            return Ok(out_names);
        }
        let symbolic = if self.fold_constants {
            symbolic::evaluate(&op, &self.types, &self.consts, &self.syms, &out_types)
        } else {
            None
        };
        if let Some(elems) = symbolic {
            // Every element known: the value is a constant after all.
            if let Some(tensor) = symbolic::known(&elems, &out_types[0]) {
                let mut c = Operation::constant(name.clone(), tensor.clone());
                c.origin = self.origin.clone();
                self.ops.push(c);
                self.consts.insert(name.clone(), tensor);
                self.types.insert(name.clone(), out_types[0].clone());
                return Ok(out_names);
            }
            self.syms.insert(name.clone(), elems);
        }
        for (n, t) in out_names.iter().zip(&out_types) {
            self.types.insert(n.clone(), t.clone());
        }
        self.ops.push(op);
        Ok(out_names)
    }

    /// Adds a ready-made op (e.g. a constexpr op holding its values inline) after checking it
    /// against its type rule; its output names must come from [`Builder::fresh_name`].
    pub fn push(&mut self, mut op: Operation) -> Result<(), BuildError> {
        let fail = |message: String| BuildError {
            op: op.name.clone(),
            op_type: op.op_type.clone(),
            message,
        };
        let out_types =
            infer_op(&op, &|v| self.types.get(v).map(|t| (t, self.consts.get(v)))).map_err(fail)?;
        let declared: Vec<&TensorType> = op.outputs.iter().map(|o| &o.ty).collect();
        if declared != out_types.iter().collect::<Vec<_>>() {
            return Err(fail(format!(
                "declared outputs {declared:?} differ from the inferred {out_types:?}"
            )));
        }
        for out in &op.outputs {
            self.names.reserve(&out.name);
            self.types.insert(out.name.clone(), out.ty.clone());
        }
        op.origin = self.origin.clone();
        self.ops.push(op);
        Ok(())
    }

    /// The type of the op producing variable `name` (None for function inputs).
    pub fn producer_type(&self, name: &str) -> Option<&str> {
        self.ops
            .iter()
            .rev()
            .find(|op| op.outputs.iter().any(|o| o.name == name))
            .map(|op| op.op_type.as_str())
    }

    /// [`Builder::op`] for an op with exactly one output.
    pub fn op1(
        &mut self,
        op_type: &str,
        name_hint: &str,
        inputs: &[(&str, &[&str])],
    ) -> Result<String, BuildError> {
        let mut outs = self.op(op_type, name_hint, inputs)?;
        if outs.len() != 1 {
            return Err(BuildError {
                op: name_hint.to_string(),
                op_type: op_type.to_string(),
                message: format!("expected one output, got {}", outs.len()),
            });
        }
        Ok(outs.remove(0))
    }

    /// Finishes the function with the given output variables.
    pub fn finish(self, outputs: Vec<String>) -> Function {
        Function {
            name: self.name,
            inputs: self.inputs,
            states: Vec::new(),
            input_shapes: Default::default(),
            block: Block {
                operations: self.ops,
                outputs,
            },
        }
    }
}
