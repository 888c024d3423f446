//! Tests of graph patterns torch's ONNX exporters emit: shape computations with empty
//! intermediates (`unflatten` slices `shape[dim + 1:]`, empty at the last axis), and the
//! `IsNaN`/`IsInf` predicates, with values from the ONNX operator definitions.

use super::*;

/// `Reshape(x, Concat(shape[:2], [2, 3], shape[3:]))` on a rank-3 `x`: the last slice is empty.
fn unflatten_last_axis(shape_input: &str) -> ModelProto {
    let nodes = vec![
        node("Shape", "shape", &["x"], &["s"], vec![]),
        node("Slice", "head", &["s", "zero", "two"], &["head"], vec![]),
        node("Slice", "tail", &["s", "three", "max"], &["tail"], vec![]),
        node(
            "Concat",
            "cat",
            &["head", "split", "tail"],
            &["new_shape"],
            vec![int("axis", 0)],
        ),
        node("Reshape", "reshape", &["x", shape_input], &["y"], vec![]),
    ];
    let inits = vec![
        init_i64("zero", &[0]),
        init_i64("two", &[2]),
        init_i64("three", &[3]),
        init_i64("max", &[i64::MAX]),
        init_i64("split", &[2, 3]),
    ];
    model(14, nodes, vec![fixed("x", &[1, 4, 6])], &["y"], inits)
}

#[test]
fn an_empty_slice_of_a_shape_folds_into_the_concat() {
    let p = load_ok(&unflatten_last_axis("new_shape"));
    let f = p.main();
    assert_eq!(op_types(f), vec!["reshape"]);
    assert_eq!(param(f, ops(f)[0], "shape").to_i64_vec(), vec![1, 4, 2, 3]);
    // Nothing empty is left in the program.
    for op in &f.block.operations {
        assert!(op
            .outputs
            .iter()
            .all(|o| !o.ty.shape.contains(&Dim::Fixed(0))));
    }
}

#[test]
fn an_empty_tensor_an_op_needs_is_an_error_naming_its_node() {
    // x[:, :, 6:] of x [1, 4, 6] is empty, and `add` would have to compute with it.
    let nodes = vec![
        node(
            "Slice",
            "tail",
            &["x", "six", "max", "two"],
            &["tail"],
            vec![],
        ),
        node("Add", "add", &["tail", "b"], &["y"], vec![]),
    ];
    let inits = vec![
        init_i64("six", &[6]),
        init_i64("max", &[i64::MAX]),
        init_i64("two", &[2]),
    ];
    let inputs = vec![fixed("x", &[1, 4, 6]), fixed("b", &[1, 4, 1])];
    let err = load_with(
        &model(14, nodes, inputs, &["y"], inits),
        &OnnxOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("node 'add'") && message.contains("no elements"),
        "{message}"
    );
}

#[test]
fn a_concat_of_empty_inputs_is_empty() {
    let nodes = vec![
        node("Shape", "shape", &["x"], &["s"], vec![]),
        node("Slice", "tail", &["s", "three", "max"], &["tail"], vec![]),
        node(
            "Concat",
            "cat",
            &["tail", "tail"],
            &["e"],
            vec![int("axis", 0)],
        ),
        node(
            "Concat",
            "cat2",
            &["e", "split"],
            &["new_shape"],
            vec![int("axis", 0)],
        ),
        node("Reshape", "reshape", &["x", "new_shape"], &["y"], vec![]),
    ];
    let inits = vec![
        init_i64("three", &[3]),
        init_i64("max", &[i64::MAX]),
        init_i64("split", &[4, 6]),
    ];
    let p = load_ok(&model(
        14,
        nodes,
        vec![fixed("x", &[1, 4, 6])],
        &["y"],
        inits,
    ));
    let f = p.main();
    assert_eq!(op_types(f), vec!["reshape"]);
    assert_eq!(param(f, ops(f)[0], "shape").to_i64_vec(), vec![4, 6]);
}

/// Runs `op` on one input and returns its bool result, which the model returns as fp32 0/1
/// (Core ML has no bool outputs).
fn predicate(op: &str, attrs: Vec<AttributeProto>, x: &[f32]) -> Vec<i64> {
    use crate::interp::{run, RunOptions, Value};
    let m = model(
        20,
        vec![node(op, "n", &["x"], &["y"], attrs)],
        vec![fixed("x", &[x.len() as i64])],
        &["y"],
        vec![],
    );
    let p = load_ok(&m);
    crate::ir::validate_program(&p).unwrap();
    let f = p.main();
    let array = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[x.len()]), x.to_vec()).unwrap();
    let values = [(f.inputs[0].name.clone(), Value::Float(array))].into();
    let outs = run(f, &values, RunOptions::default()).unwrap();
    match &outs[0].1 {
        Value::Float(b) => b.iter().map(|&v| v as i64).collect(),
        other => panic!("expected an fp32 output, got {other:?}"),
    }
}

#[test]
fn is_nan_and_is_inf_follow_the_onnx_definitions() {
    let x = [
        -1.2,
        f32::NAN,
        f32::INFINITY,
        2.8,
        f32::NEG_INFINITY,
        f32::INFINITY,
    ];
    assert_eq!(predicate("IsNaN", vec![], &x), vec![0, 1, 0, 0, 0, 0]);
    assert_eq!(predicate("IsInf", vec![], &x), vec![0, 0, 1, 0, 1, 1]);
    let positive = vec![int("detect_negative", 0)];
    assert_eq!(predicate("IsInf", positive, &x), vec![0, 0, 1, 0, 0, 1]);
    let negative = vec![int("detect_positive", 0)];
    assert_eq!(predicate("IsInf", negative, &x), vec![0, 0, 0, 0, 1, 0]);
    let neither = vec![int("detect_positive", 0), int("detect_negative", 0)];
    assert_eq!(predicate("IsInf", neither, &x), vec![0; 6]);
}
