//! Helpers for kernel unit tests.

use crate::interp::{eval_op, Value};
use crate::ir::{Argument, Operation, Tensor, TensorType};

/// Runs op `op_type` on inline constant inputs; `out` are its declared output types, which
/// the produced shapes must match (so type rules and kernels are checked against each other).
pub fn run(op_type: &str, inputs: &[(&str, Tensor)], out: &[TensorType]) -> Vec<Value> {
    let values = try_run(op_type, inputs, out).unwrap();
    for (i, (v, t)) in values.iter().zip(out).enumerate() {
        if let Some(shape) = t.static_shape() {
            assert_eq!(
                v.shape(),
                shape.as_slice(),
                "{op_type} output {i}: kernel shape differs from declared {t}"
            );
        }
    }
    values
}

/// Like [`run`], returning the kernel's error.
pub fn try_run(
    op_type: &str,
    inputs: &[(&str, Tensor)],
    out: &[TensorType],
) -> Result<Vec<Value>, String> {
    let op = inline_op(op_type, inputs);
    eval_op(&op, &|_| None, out)
}

/// Type-checks op `op_type` on inline constant inputs through the registry.
pub fn infer(op_type: &str, inputs: &[(&str, Tensor)]) -> Result<Vec<TensorType>, String> {
    let op = inline_op(op_type, inputs);
    crate::ir::infer_op(&op, &|_| None)
}

/// The elements of a float value.
pub fn floats(v: &Value) -> Vec<f32> {
    v.float().unwrap().iter().copied().collect()
}

/// The elements of an int value.
pub fn ints(v: &Value) -> Vec<i32> {
    v.int().unwrap().iter().copied().collect()
}

/// Asserts two float slices agree to `tol`.
pub fn assert_close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "lengths differ: {got:?} vs {want:?}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol,
            "element {i}: got {g}, want {w} (all: {got:?})"
        );
    }
}

/// A float tensor of `shape` holding 0, 1, 2, … in row-major order.
pub fn iota(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_f32(shape, &(0..n).map(|v| v as f32).collect::<Vec<_>>())
}

/// Type-checks and runs `op` on inline inputs; its first output must be an fp32 tensor of
/// `shape` holding `values`.
pub fn check(op: &str, inputs: &[(&str, Tensor)], shape: &[usize], values: &[f32]) {
    let ty = infer(op, inputs).unwrap();
    assert_eq!(
        ty[0],
        TensorType::fixed(crate::ir::DType::F32, shape),
        "{op} type"
    );
    assert_eq!(floats(&run(op, inputs, &ty)[0]), values, "{op} values");
}

/// Op `op_type` named `t` whose inputs are the inline constants `inputs`.
fn inline_op(op_type: &str, inputs: &[(&str, Tensor)]) -> Operation {
    Operation {
        op_type: op_type.into(),
        name: "t".into(),
        inputs: inputs
            .iter()
            .map(|(p, t)| (p.to_string(), vec![Argument::Value(t.clone())]))
            .collect(),
        outputs: Vec::new(),
        attributes: Default::default(),
        origin: None,
    }
}
