//! A read-only view of a block for pattern matching (producers, readers, constants) and the
//! rewrite that replaces a matched pattern's last op.

use crate::ir::{Argument, DType, Function, NameTable, Operation, Tensor, TensorType};
use std::collections::{BTreeMap, HashMap};

/// Producers, readers and types of every variable of one function.
pub struct Graph<'a> {
    ops: &'a [Operation],
    types: BTreeMap<&'a str, &'a TensorType>,
    producer: HashMap<&'a str, usize>,
    readers: HashMap<&'a str, Vec<usize>>,
    outputs: &'a [String],
}

impl<'a> Graph<'a> {
    /// Indexes `function`.
    pub fn new(function: &'a Function) -> Graph<'a> {
        let block = &function.block;
        let mut producer = HashMap::new();
        let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, op) in block.operations.iter().enumerate() {
            for o in &op.outputs {
                producer.insert(o.name.as_str(), i);
            }
            for v in op.input_vars() {
                readers.entry(v).or_default().push(i);
            }
        }
        Graph {
            ops: &block.operations,
            types: function.var_types(),
            producer,
            readers,
            outputs: &block.outputs,
        }
    }

    /// The first match of `matcher` tried at every op index, in program order.
    pub fn first<M>(&self, matcher: impl FnMut(&Self, usize) -> Option<M>) -> Option<M> {
        let mut matcher = matcher;
        (0..self.ops.len()).find_map(|i| matcher(self, i))
    }

    /// The op at index `i`.
    pub fn op(&self, i: usize) -> &'a Operation {
        &self.ops[i]
    }

    /// The index of the op producing `var` when it has type `op_type`.
    pub fn producer(&self, var: &str, op_type: &str) -> Option<usize> {
        self.producer
            .get(var)
            .copied()
            .filter(|&i| self.ops[i].op_type == op_type)
    }

    /// The type of `var`.
    pub fn var_type(&self, var: &str) -> Option<&'a TensorType> {
        self.types.get(var).copied()
    }

    /// The value of `var` when a `const` op produces it.
    pub fn const_value(&self, var: &str) -> Option<&'a Tensor> {
        self.producer
            .get(var)
            .and_then(|&i| self.ops[i].const_value())
    }

    /// The value of a one-element constant `var`.
    pub fn scalar(&self, var: &str) -> Option<f64> {
        self.const_value(var)
            .filter(|t| t.len() == 1 && t.dtype().is_float())
            .map(|t| t.to_f64_vec()[0])
    }

    /// The ops reading `var` (an op reading it twice appears twice).
    pub fn readers(&self, var: &str) -> &[usize] {
        self.readers.get(var).map_or(&[], Vec::as_slice)
    }

    /// True when `var` is one of the block's outputs.
    pub fn is_output(&self, var: &str) -> bool {
        self.outputs.iter().any(|o| o == var)
    }

    /// The only op reading `var`, when `var` is read by exactly one op parameter and is not a
    /// block output: an intermediate value a fusion may remove.
    pub fn sole_reader(&self, var: &str) -> Option<usize> {
        match self.readers(var) {
            [only] if !self.is_output(var) => Some(*only),
            _ => None,
        }
    }

    /// The index of the op that only reads the (first) output of op `i`, if it has type `op_type`.
    pub fn sole_reader_of(&self, i: usize, op_type: &str) -> Option<usize> {
        self.sole_reader(out(&self.ops[i]))
            .filter(|&r| self.ops[r].op_type == op_type)
    }
}

/// True when `var` is zero everywhere: a zero constant, `fill(…, 0)`, a sum of zeros, or a
/// zero times a value cast from bool (finite, so the product is 0).
pub fn is_zeros(g: &Graph, var: &str) -> bool {
    zeros_within(g, var, 4)
}

fn zeros_within(g: &Graph, var: &str, depth: usize) -> bool {
    if depth == 0 {
        return false;
    }
    if let Some(t) = g.const_value(var) {
        return t.dtype().is_float() && t.to_f64_vec().iter().all(|&v| v == 0.0);
    }
    if let Some(i) = g.producer(var, "fill") {
        return arg(g.op(i), "value").is_some_and(|v| g.scalar(v) == Some(0.0));
    }
    if let Some(i) = g.producer(var, "add") {
        let op = g.op(i);
        return [arg(op, "x"), arg(op, "y")]
            .iter()
            .all(|v| v.is_some_and(|v| zeros_within(g, v, depth - 1)));
    }
    if let Some(i) = g.producer(var, "mul") {
        let op = g.op(i);
        let (Some(x), Some(y)) = (arg(op, "x"), arg(op, "y")) else {
            return false;
        };
        let zero_times_bool = |z: &str, b: &str| g.scalar(z) == Some(0.0) && is_cast_bool(g, b, 2);
        return zero_times_bool(x, y) || zero_times_bool(y, x);
    }
    false
}

/// True when `var` is a bool value cast (up to `depth` casts) to a number.
fn is_cast_bool(g: &Graph, var: &str, depth: usize) -> bool {
    let Some(i) = g.producer(var, "cast") else {
        return false;
    };
    let Some(x) = arg(g.op(i), "x") else {
        return false;
    };
    g.var_type(x).is_some_and(|t| t.dtype == DType::Bool)
        || (depth > 1 && is_cast_bool(g, x, depth - 1))
}

/// The variable bound to parameter `param` of `op`.
pub fn arg<'o>(op: &'o Operation, param: &str) -> Option<&'o str> {
    op.input(param)
        .and_then(|a| match a {
            [one] => Some(one),
            _ => None,
        })
        .and_then(Argument::var)
}

/// The first output variable of `op`.
pub fn out(op: &Operation) -> &str {
    &op.outputs[0].name
}

/// The operands `(x, y)` of a binary elementwise op.
pub fn operands(op: &Operation) -> Option<(&str, &str)> {
    Some((arg(op, "x")?, arg(op, "y")?))
}

/// For a commutative binary op with one operand equal to `var`, the other operand.
pub fn other_operand<'o>(op: &'o Operation, var: &str) -> Option<&'o str> {
    let (x, y) = operands(op)?;
    if x == var {
        Some(y)
    } else if y == var {
        Some(x)
    } else {
        None
    }
}

/// For a commutative binary op with exactly one one-element float constant operand: the other
/// operand and the constant's value.
pub fn split_scalar<'o>(g: &Graph, op: &'o Operation) -> Option<(&'o str, f64)> {
    let (x, y) = operands(op)?;
    match (g.scalar(x), g.scalar(y)) {
        (None, Some(c)) => Some((x, c)),
        (Some(c), None) => Some((y, c)),
        _ => None,
    }
}

/// True when `value` is within a relative 1e-4 of `expected` (exporters round constants to
/// fp32 or to a few decimals).
pub fn close(value: f64, expected: f64) -> bool {
    (value - expected).abs() <= 1e-4 * expected.abs()
}

/// A planned rewrite: op `root` (and the ops only it reads) replaced by `ops`.
pub struct Rewrite {
    /// Index of the op whose output the new ops produce.
    pub root: usize,
    /// The replacement ops, the one producing the root's output last.
    pub ops: Vec<Operation>,
}

/// Applies the first rewrite `plan` finds, trying every op index in program order (fresh
/// names come from one table of `function`'s names); false when there is none.
pub fn fuse_first(
    function: &mut Function,
    plan: impl Fn(&Graph, usize, &mut NameTable) -> Option<Rewrite>,
) -> bool {
    let rewrite = {
        let g = Graph::new(function);
        let mut names = NameTable::of_function(function);
        g.first(|g, i| plan(g, i, &mut names))
    };
    match rewrite {
        Some(r) => {
            replace(function, r.root, r.ops);
            true
        }
        None => false,
    }
}

/// Replaces op `root` with `ops` (which end with the op producing `root`'s outputs under the
/// same names), leaving the pattern's other ops for dead-code removal.
pub fn replace(function: &mut Function, root: usize, ops: Vec<Operation>) {
    function.block.operations.splice(root..=root, ops);
}

/// A new op `op_type` named `name` with the given variable inputs and outputs.
pub fn new_op(
    op_type: &str,
    name: &str,
    inputs: &[(&str, &str)],
    outputs: Vec<crate::ir::Var>,
    origin: Option<String>,
) -> Operation {
    Operation {
        op_type: op_type.to_string(),
        name: name.to_string(),
        inputs: inputs
            .iter()
            .map(|(p, v)| (p.to_string(), vec![Argument::Var(v.to_string())]))
            .collect(),
        outputs,
        attributes: Default::default(),
        origin,
    }
}

/// A `const` op named fresh from `hint`, with `origin`; returns it with its variable name.
pub fn new_const(
    names: &mut NameTable,
    hint: &str,
    value: Tensor,
    origin: Option<String>,
) -> (Operation, String) {
    let name = names.fresh(hint);
    let mut op = Operation::constant(name.clone(), value);
    op.origin = origin;
    (op, name)
}
