//! The inputs, states and outputs of two functions side by side: what only one has, and what
//! differs in element type, shape or accepted shapes.

use crate::ir::{Function, Var};
use serde::Serialize;

/// How one side declares an input, state or output.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IoDesc {
    /// MIL dtype name.
    pub dtype: String,
    /// Dimensions (symbols as strings).
    pub shape: Vec<String>,
    /// The shapes a flexible input accepts: ranges (`1,1..64`, `LO..` when unbounded) or
    /// enumerated shapes (`1,64|1,128`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepts: Option<String>,
}

impl IoDesc {
    /// The declaration of `var` in `function`.
    fn of(function: &Function, var: &Var) -> IoDesc {
        IoDesc {
            dtype: var.ty.dtype.name().to_string(),
            shape: var.ty.shape.iter().map(|d| d.to_string()).collect(),
            accepts: function.input_shapes.get(&var.name).map(|s| s.to_string()),
        }
    }

    /// `fp32 [1,seq] accepts 1,1..64`.
    pub fn text(&self) -> String {
        let mut text = format!("{} [{}]", self.dtype, self.shape.join(","));
        if let Some(accepts) = &self.accepts {
            text += &format!(" accepts {accepts}");
        }
        text
    }
}

/// One input, state or output that the two sides do not declare alike.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SignatureChange {
    /// `input`, `state` or `output`.
    pub kind: &'static str,
    /// Its name.
    pub name: String,
    /// A's declaration (`None`: only B has it).
    pub a: Option<IoDesc>,
    /// B's declaration (`None`: only A has it).
    pub b: Option<IoDesc>,
}

/// Every input, state and output of `a` and `b` that is missing on one side or declared
/// differently: A's in A's order first, then those only B has, inputs before states before
/// outputs.
pub fn signature_changes(a: &Function, b: &Function) -> Vec<SignatureChange> {
    let lists = [
        ("input", a.inputs.clone(), b.inputs.clone()),
        ("state", a.states.clone(), b.states.clone()),
        ("output", a.outputs(), b.outputs()),
    ];
    let mut changes = Vec::new();
    for (kind, in_a, in_b) in lists {
        let find = |list: &[Var], name: &str| list.iter().find(|v| v.name == name).cloned();
        for var in &in_a {
            let da = IoDesc::of(a, var);
            let db = find(&in_b, &var.name).map(|v| IoDesc::of(b, &v));
            if db.as_ref() != Some(&da) {
                changes.push(SignatureChange {
                    kind,
                    name: var.name.clone(),
                    a: Some(da),
                    b: db,
                });
            }
        }
        for var in in_b.iter().filter(|v| find(&in_a, &v.name).is_none()) {
            changes.push(SignatureChange {
                kind,
                name: var.name.clone(),
                a: None,
                b: Some(IoDesc::of(b, var)),
            });
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{DType, Dim, ShapeSet, TensorType};

    fn function(inputs: Vec<Var>) -> Function {
        let b = crate::ir::Builder::new("main", inputs);
        b.finish(Vec::new())
    }

    #[test]
    fn flexible_ranges_missing_and_retyped_inputs_are_changes() {
        let fixed = Var::new("x", TensorType::fixed(DType::F32, &[1, 8]));
        let flexible = Var::new(
            "x",
            TensorType {
                dtype: DType::F32,
                shape: vec![Dim::Fixed(1), Dim::Symbol("seq".into())],
            },
        );
        let a = function(vec![fixed.clone()]);
        let mut b = function(vec![flexible]);
        b.input_shapes.insert(
            "x".into(),
            ShapeSet::Ranges(vec![(1, Some(1)), (1, Some(64))]),
        );
        let changes = signature_changes(&a, &b);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].a.as_ref().unwrap().text(), "fp32 [1,8]");
        assert_eq!(
            changes[0].b.as_ref().unwrap().text(),
            "fp32 [1,seq] accepts 1,1..64"
        );
        assert!(signature_changes(&a, &a).is_empty());
        let c = function(vec![
            Var::new("x", TensorType::fixed(DType::F16, &[1, 8])),
            Var::new("y", TensorType::fixed(DType::I32, &[2])),
        ]);
        let changes = signature_changes(&a, &c);
        let names: Vec<(&str, bool, bool)> = changes
            .iter()
            .map(|c| (c.name.as_str(), c.a.is_some(), c.b.is_some()))
            .collect();
        assert_eq!(names, [("x", true, true), ("y", false, true)]);
    }
}
