//! Symbolic values of shape vectors: what `shape` of a tensor with symbolic dimensions holds
//! element by element, followed through the ops that only move elements (gather, slice,
//! concat, …), so that the parts that are known fold to constants and reshape targets can be
//! resolved while building.

use super::{DType, Dim, Operation, Tensor, TensorType};
use crate::interp::{eval_op, Value};
use std::collections::HashMap;

/// One element of a shape vector: a known integer or a named symbolic dimension.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SymInt {
    /// A size known at conversion time.
    Known(i64),
    /// The run-time size of symbolic dimension `name`.
    Dim(String),
}

/// Ops whose output elements are copies of elements of one parameter (the "data" parameter),
/// selected by their other, constant, parameters.
const MOVERS: &[(&str, &str)] = &[
    ("gather", "x"),
    ("slice_by_index", "x"),
    ("expand_dims", "x"),
    ("squeeze", "x"),
    ("reshape", "x"),
    ("concat", "values"),
    ("cast", "x"),
    ("identity", "x"),
];

/// Largest shape vector followed (shape vectors are short).
const MAX_ELEMENTS: usize = 64;

/// The symbolic elements of `op`'s single output, when it is a `shape` or moves elements of
/// symbolic or constant vectors; None otherwise (the value is then simply unknown).
pub(super) fn evaluate(
    op: &Operation,
    types: &HashMap<String, TensorType>,
    consts: &HashMap<String, Tensor>,
    syms: &HashMap<String, Vec<SymInt>>,
    out_types: &[TensorType],
) -> Option<Vec<SymInt>> {
    if out_types.len() != 1 || !(out_types[0].dtype.is_int() || op.op_type == "cast") {
        return None;
    }
    if op.op_type == "shape" {
        let x = op.input("x")?.first()?.var()?;
        return Some(
            types
                .get(x)?
                .shape
                .iter()
                .map(|d| match d {
                    Dim::Fixed(n) => SymInt::Known(*n as i64),
                    Dim::Symbol(s) => SymInt::Dim(s.clone()),
                })
                .collect(),
        );
    }
    let &(_, data) = MOVERS.iter().find(|(t, _)| *t == op.op_type)?;
    // Every element of the data inputs gets a code (its index in `table`); the kernel moves
    // the codes, which are then mapped back.
    let mut table: Vec<SymInt> = Vec::new();
    let mut coded: HashMap<&str, Value> = HashMap::new();
    let mut any_symbolic = false;
    for (param, args) in &op.inputs {
        for arg in args {
            let var = arg.var()?;
            if param != data {
                consts.get(var)?;
                continue;
            }
            let ty = types.get(var)?;
            let shape = ty.static_shape()?;
            let elems: Vec<SymInt> = match (syms.get(var), consts.get(var)) {
                (Some(s), _) => {
                    any_symbolic = true;
                    s.clone()
                }
                (None, Some(t)) if ty.dtype.is_int() => {
                    t.to_i64_vec().into_iter().map(SymInt::Known).collect()
                }
                _ => return None,
            };
            if elems.len() > MAX_ELEMENTS || elems.len() != shape.iter().product::<usize>() {
                return None;
            }
            let codes: Vec<i32> = (table.len()..table.len() + elems.len())
                .map(|c| c as i32)
                .collect();
            table.extend(elems);
            coded.insert(var, Value::from_tensor(&Tensor::from_i32(&shape, &codes)));
        }
    }
    if !any_symbolic {
        return None;
    }
    let values = eval_op(
        op,
        &|v| {
            coded
                .get(v)
                .cloned()
                .or_else(|| consts.get(v).map(Value::from_tensor))
        },
        out_types,
    )
    .ok()?;
    values
        .first()?
        .to_i64_vec()
        .into_iter()
        .map(|c| usize::try_from(c).ok().and_then(|c| table.get(c).cloned()))
        .collect()
}

/// The constant tensor of `elems` when every element is known.
pub(super) fn known(elems: &[SymInt], ty: &TensorType) -> Option<Tensor> {
    let shape = ty.static_shape()?;
    let values: Vec<i32> = elems
        .iter()
        .map(|e| match e {
            SymInt::Known(n) => i32::try_from(*n).ok(),
            SymInt::Dim(_) => None,
        })
        .collect::<Option<_>>()?;
    let t = Tensor::from_i32(&shape, &values);
    Some(if ty.dtype == DType::I32 {
        t
    } else {
        Value::from_tensor(&t).to_tensor(ty.dtype)
    })
}
