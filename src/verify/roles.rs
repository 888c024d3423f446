//! Input roles: what each model input stands for, found by following its uses through the
//! program, so that random verification inputs stay in the model's domain (token ids below the
//! vocabulary size, attention masks of zeros and ones).

use crate::ir::ops::axis::norm_axis;
use crate::ir::{Argument, DType, Function, Operation};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Default float range `[-1, 1)`.
pub const FLOAT_RANGE: (f64, f64) = (-1.0, 1.0);
/// Range of integers whose use says nothing about their values: `[0, 9]`.
pub const INT_RANGE: (f64, f64) = (0.0, 9.0);

/// What an input stands for, and so which values random inputs take.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Role {
    /// Floats: uniform in `[-1, 1)`.
    Values,
    /// Integers used as gather indices (e.g. token ids): uniform in `[0, rows)`, `rows` the
    /// smallest dimension they index.
    Indices {
        /// Size of the smallest indexed dimension.
        rows: usize,
    },
    /// Integers used as masks or in arithmetic: 0 or 1.
    Mask,
    /// Booleans: false or true.
    Booleans,
    /// Integers whose uses say nothing about their values: `[0, 9]`.
    Integers,
    /// Values from `--input-range`: floats in `[lo, hi)`, integers in `[lo, hi]`.
    Range {
        /// Lower bound.
        lo: f64,
        /// Upper bound.
        hi: f64,
    },
}

impl Role {
    /// The bounds random values are drawn from: `[lo, hi)` for floats, `[lo, hi]` for
    /// integers (booleans: `(0, 1)`).
    pub fn bounds(&self) -> (f64, f64) {
        match *self {
            Role::Values => FLOAT_RANGE,
            Role::Indices { rows } => (0.0, rows.saturating_sub(1) as f64),
            Role::Mask | Role::Booleans => (0.0, 1.0),
            Role::Integers => INT_RANGE,
            Role::Range { lo, hi } => (lo, hi),
        }
    }

    /// The role as text for an input of type `dtype`, e.g. `indices [0, 30522)`, `mask {0,1}`.
    pub fn describe(&self, dtype: DType) -> String {
        match *self {
            Role::Values => "values [-1, 1)".into(),
            Role::Indices { rows } => format!("indices [0, {rows})"),
            Role::Mask => "mask {0,1}".into(),
            Role::Booleans => "booleans {false,true}".into(),
            Role::Integers => "integers [0, 9]".into(),
            Role::Range { lo, hi } if dtype.is_float() => format!("--input-range [{lo}, {hi})"),
            Role::Range { lo, hi } => format!("--input-range [{lo}, {hi}]"),
        }
    }
}

/// The role chosen for one input.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InputRole {
    /// Input name.
    pub name: String,
    /// The role and its parameters.
    #[serde(flatten)]
    pub role: Role,
    /// The role as text (`indices [0, 30522)`).
    pub text: String,
}

/// Ops whose data inputs reach their outputs as values (moved, copied or re-typed, never
/// combined), with the parameters that carry the data.
const VALUE_PRESERVING: &[(&str, &[&str])] = &[
    ("cast", &["x"]),
    ("identity", &["x"]),
    ("reshape", &["x"]),
    ("squeeze", &["x"]),
    ("expand_dims", &["x"]),
    ("transpose", &["x"]),
    ("reverse", &["x"]),
    ("slice_by_index", &["x"]),
    ("slice_by_size", &["x"]),
    ("tile", &["x"]),
    ("split", &["x"]),
    ("concat", &["values"]),
    ("stack", &["values"]),
    ("gather", &["x"]),
    ("gather_along_axis", &["x"]),
    ("gather_nd", &["x"]),
    ("select", &["a", "b"]),
];

/// Ops reading an `indices` parameter into their `x` parameter.
const INDEXING: &[&str] = &["gather", "gather_along_axis", "gather_nd"];

/// How an integer input is used, strongest first.
#[derive(Default)]
struct Uses {
    /// Smallest indexed dimension, when used as indices.
    rows: Option<usize>,
    /// Used in arithmetic, comparisons or as a mask.
    arithmetic: bool,
}

/// The role of every input of `function`, in declaration order. `ranges` (input name →
/// bounds, from `--input-range`) override the role found.
pub fn input_roles(function: &Function, ranges: &BTreeMap<&str, (f64, f64)>) -> Vec<InputRole> {
    let mut readers: BTreeMap<&str, Vec<(&Operation, &str)>> = BTreeMap::new();
    for op in &function.block.operations {
        for (param, args) in &op.inputs {
            for name in args.iter().filter_map(Argument::var) {
                readers.entry(name).or_default().push((op, param.as_str()));
            }
        }
    }
    function
        .inputs
        .iter()
        .map(|var| {
            let dtype = var.ty.dtype;
            let role = if let Some(&(lo, hi)) = ranges.get(var.name.as_str()) {
                Role::Range { lo, hi }
            } else if dtype.is_float() {
                Role::Values
            } else if dtype == DType::Bool {
                Role::Booleans
            } else {
                let uses = integer_uses(function, &readers, &var.name);
                match uses.rows {
                    Some(rows) => Role::Indices { rows },
                    None if uses.arithmetic => Role::Mask,
                    None => Role::Integers,
                }
            };
            InputRole {
                name: var.name.clone(),
                text: role.describe(dtype),
                role,
            }
        })
        .collect()
}

/// Follows `input` through value-preserving ops and collects what its values are used for.
fn integer_uses(
    function: &Function,
    readers: &BTreeMap<&str, Vec<(&Operation, &str)>>,
    input: &str,
) -> Uses {
    let mut uses = Uses::default();
    let mut seen = BTreeSet::from([input.to_string()]);
    let mut pending = vec![input.to_string()];
    while let Some(name) = pending.pop() {
        for &(op, param) in readers.get(name.as_str()).into_iter().flatten() {
            let op_type = op.op_type.as_str();
            if param == "indices" && INDEXING.contains(&op_type) {
                if let Some(rows) = indexed_rows(function, op) {
                    uses.rows = Some(uses.rows.map_or(rows, |r| r.min(rows)));
                }
                continue;
            }
            // An integer cast to bool is a bool feature (see `frontend::BOOL_FEATURE`): 0 or 1.
            if op_type == "cast" && op.outputs.iter().any(|o| o.ty.dtype == DType::Bool) {
                uses.arithmetic = true;
                continue;
            }
            // `mod(indices, size)` is how the ONNX frontend wraps run-time indices before an
            // indexing op (negative ones count from the end); valid indices pass unchanged.
            if op_type == "mod" && param == "x" {
                for out in &op.outputs {
                    if seen.insert(out.name.clone()) {
                        pending.push(out.name.clone());
                    }
                }
                continue;
            }
            match VALUE_PRESERVING.iter().find(|(t, _)| *t == op_type) {
                Some((_, data)) if data.contains(&param) => {
                    for out in &op.outputs {
                        if seen.insert(out.name.clone()) {
                            pending.push(out.name.clone());
                        }
                    }
                }
                // A shape, axis or bound of a data-moving op: says nothing about the values.
                Some(_) => {}
                None => uses.arithmetic = true,
            }
        }
    }
    uses
}

/// The size of the smallest dimension an indexing op's `indices` select along, when fixed.
fn indexed_rows(function: &Function, op: &Operation) -> Option<usize> {
    let table = op.input("x")?.first()?.var()?;
    let shape = &function.var_type(table)?.shape;
    let rank = shape.len();
    let dims: Vec<usize> = if op.op_type == "gather_nd" {
        // The last indices dimension counts how many leading dimensions each index selects.
        let indices = op.input("indices")?.first()?.var()?;
        let depth = function.var_type(indices)?.shape.last()?.fixed()?;
        shape
            .iter()
            .take(depth)
            .map(|d| d.fixed())
            .collect::<Option<_>>()?
    } else {
        let axis = match op.input("axis").and_then(|a| a.first()) {
            None => 0,
            Some(arg) => const_int(function, arg)?,
        };
        vec![shape[norm_axis(axis, rank).ok()?].fixed()?]
    };
    dims.into_iter().min().filter(|&rows| rows > 0)
}

/// The value of a scalar integer argument, written in place or produced by a `const` op.
fn const_int(function: &Function, arg: &Argument) -> Option<i64> {
    let tensor = match arg {
        Argument::Value(t) => t,
        Argument::Var(name) => function.block.producer(name)?.1.const_value()?,
    };
    tensor.scalar_i64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Builder, Tensor, TensorType, Var};

    fn role_of(function: &Function, name: &str) -> Role {
        input_roles(function, &BTreeMap::new())
            .into_iter()
            .find(|r| r.name == name)
            .unwrap()
            .role
    }

    /// An embedding lookup of `ids` (through a reshape) in a 30×8 table, and also in a 12×8
    /// table along axis 0; an additive mask `(1 − mask) · −3.4e38` from an int mask cast to
    /// float; `count` only feeds a reshape's shape.
    fn embedding_program() -> Function {
        let mut b = Builder::new(
            "main",
            vec![
                Var::new("ids", TensorType::fixed(DType::I32, &[1, 4])),
                Var::new("mask", TensorType::fixed(DType::I32, &[1, 4])),
                Var::new("shape", TensorType::fixed(DType::I32, &[2])),
                Var::new("x", TensorType::fixed(DType::F32, &[1, 4])),
            ],
        );
        let big = b.constant("big", Tensor::from_f32(&[30, 8], &[0.5; 240]));
        let small = b.constant("small", Tensor::from_f32(&[12, 8], &[0.5; 96]));
        let axis = b.constant("axis", Tensor::from_i32(&[], &[0]));
        let flat_shape = b.constant("flat_shape", Tensor::from_i32(&[1], &[4]));
        let flat = b
            .op1(
                "reshape",
                "flat",
                &[("x", &["ids"]), ("shape", &[&flat_shape])],
            )
            .unwrap();
        let e1 = b
            .op1(
                "gather",
                "e1",
                &[("x", &[&big]), ("indices", &[&flat]), ("axis", &[&axis])],
            )
            .unwrap();
        let e2 = b
            .op1(
                "gather",
                "e2",
                &[("x", &[&small]), ("indices", &["ids"]), ("axis", &[&axis])],
            )
            .unwrap();
        let fp32 = b.constant("fp32", Tensor::scalar_string("fp32"));
        let m = b
            .op1("cast", "m", &[("x", &["mask"]), ("dtype", &[&fp32])])
            .unwrap();
        let one = b.constant("one", Tensor::from_f32(&[], &[1.0]));
        let inv = b
            .op1("sub", "inv", &[("x", &[&one]), ("y", &[&m])])
            .unwrap();
        let big_neg = b.constant("big_neg", Tensor::from_f32(&[], &[-3.4e38]));
        let add = b
            .op1("mul", "additive", &[("x", &[&inv]), ("y", &[&big_neg])])
            .unwrap();
        let sum = b
            .op1("add", "sum", &[("x", &["x"]), ("y", &[&add])])
            .unwrap();
        let r = b
            .op1("reshape", "r", &[("x", &[&sum]), ("shape", &["shape"])])
            .unwrap();
        b.finish(vec![e1, e2, r])
    }

    #[test]
    fn ids_index_the_smallest_table_and_masks_are_zero_or_one() {
        let f = embedding_program();
        assert_eq!(role_of(&f, "ids"), Role::Indices { rows: 12 });
        assert_eq!(role_of(&f, "mask"), Role::Mask);
        assert_eq!(role_of(&f, "shape"), Role::Integers);
        assert_eq!(role_of(&f, "x"), Role::Values);
        let text: Vec<String> = input_roles(&f, &BTreeMap::new())
            .into_iter()
            .map(|r| format!("{}: {}", r.name, r.text))
            .collect();
        assert_eq!(
            text,
            [
                "ids: indices [0, 12)",
                "mask: mask {0,1}",
                "shape: integers [0, 9]",
                "x: values [-1, 1)"
            ]
        );
    }

    #[test]
    fn ranges_override_roles() {
        let f = embedding_program();
        let ranges = BTreeMap::from([("ids", (2.0, 5.0)), ("x", (0.0, 255.0))]);
        let roles = input_roles(&f, &ranges);
        assert_eq!(roles[0].role, Role::Range { lo: 2.0, hi: 5.0 });
        assert_eq!(roles[0].text, "--input-range [2, 5]");
        assert_eq!(roles[3].text, "--input-range [0, 255)");
        assert_eq!(
            roles[1].role,
            Role::Mask,
            "inputs without a range keep their role"
        );
    }

    #[test]
    fn gather_nd_indexes_its_leading_dimensions() {
        let mut b = Builder::new(
            "main",
            vec![Var::new("idx", TensorType::fixed(DType::I32, &[3, 2]))],
        );
        let table = b.constant("table", Tensor::from_f32(&[7, 5, 4], &[0.0; 140]));
        let y = b
            .op1("gather_nd", "y", &[("x", &[&table]), ("indices", &["idx"])])
            .unwrap();
        let f = b.finish(vec![y]);
        assert_eq!(role_of(&f, "idx"), Role::Indices { rows: 5 });
    }

    #[test]
    fn roles_serialise_with_their_parameters() {
        let role = InputRole {
            name: "input_ids".into(),
            role: Role::Indices { rows: 30522 },
            text: Role::Indices { rows: 30522 }.describe(DType::I32),
        };
        let json = serde_json::to_value(&role).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"name": "input_ids", "role": "indices", "rows": 30522, "text": "indices [0, 30522)"})
        );
    }
}
