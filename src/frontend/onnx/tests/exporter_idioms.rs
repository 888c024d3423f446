//! Tests of graph patterns torch's ONNX exporters emit: shape computations with empty
//! intermediates (`unflatten` slices `shape[dim + 1:]`, empty at the last axis), and the
//! `IsNaN`/`IsInf` predicates, with values from the ONNX operator definitions; BERT's
//! `position_ids[:, :seq]` on a symbolic `seq`.

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

/// Runs `op` on one input and returns its bool result, which the model returns as int32 0/1
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
        Value::Int(b) => b.iter().map(|&v| v as i64).collect(),
        other => panic!("expected an int32 output, got {other:?}"),
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

/// `y = x + pos[:, :seq]` as BERT computes its position ids: `seq` is read with Shape → Gather
/// → Unsqueeze from `x` of shape [1, seq]; `pos` is [[0, 1, …, 7]]. `start` names the start.
fn positions_up_to_seq(start: &str) -> ModelProto {
    let nodes = vec![
        node("Shape", "shape", &["x"], &["s"], vec![]),
        node(
            "Gather",
            "gather",
            &["s", "one"],
            &["n"],
            vec![int("axis", 0)],
        ),
        node("Unsqueeze", "unsq", &["n", "axes0"], &["n1"], vec![]),
        node(
            "Slice",
            "positions",
            &["pos", start, "n1", "axes1"],
            &["p"],
            vec![],
        ),
        node("Add", "add", &["x", "p"], &["y"], vec![]),
    ];
    let one = TensorProto {
        name: "one".into(),
        data_type: DataType::Int64 as i32,
        int64_data: vec![1],
        ..Default::default()
    };
    let positions: Vec<f32> = (0..8).map(|i| i as f32).collect();
    let inits = vec![
        one,
        init_i64("axes0", &[0]),
        init_i64("axes1", &[1]),
        init_i64("zero", &[0]),
        init_f32("pos", &[1, 8], &positions),
    ];
    let x = value("x", DataType::Float, &[D::N(1), D::P("seq")]);
    model(13, nodes, vec![x], &["y"], inits)
}

fn with_seq(range: &str) -> OnnxOptions {
    OnnxOptions {
        dims: vec![format!("seq={range}").parse().unwrap()],
        ..Default::default()
    }
}

#[test]
fn a_slice_up_to_a_symbolic_length_ends_at_run_time() {
    use crate::interp::{run, RunOptions, Value};
    let p = load_with(&positions_up_to_seq("zero"), &with_seq("1..512")).unwrap();
    let f = p.main();
    let slice = ops(f)
        .into_iter()
        .find(|op| op.op_type == "slice_by_index")
        .expect("a slice_by_index");
    assert!(
        f.block
            .producer(slice.input("end").unwrap()[0].var().unwrap())
            .is_some_and(|(_, op)| op.op_type != "const"),
        "the end is computed at run time"
    );
    let seq = Dim::Symbol("seq".into());
    assert_eq!(slice.outputs[0].ty.shape, vec![Dim::Fixed(1), seq.clone()]);
    assert_eq!(f.block.outputs.len(), 1);
    // The table has 8 positions: seq is limited to 8, and the note says which node.
    assert_eq!(
        f.input_shapes["x"],
        crate::ir::ShapeSet::Ranges(vec![(1, Some(1)), (1, Some(8))])
    );
    assert_eq!(
        p.metadata[LIMITS_METADATA_KEY],
        "seq at most 8: node 'positions' (Slice) slices an axis of size 8 up to seq"
    );
    for n in [1usize, 3, 8] {
        let x: Vec<f32> = (0..n).map(|i| 10.0 * i as f32).collect();
        let mut values = std::collections::BTreeMap::new();
        let array = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[1, n]), x).unwrap();
        values.insert("x".to_string(), Value::Float(array));
        let outs = run(f, &values, RunOptions::default()).unwrap();
        let y: Vec<f32> = outs[0].1.to_f32_array().unwrap().iter().copied().collect();
        let want: Vec<f32> = (0..n).map(|i| 11.0 * i as f32).collect();
        assert_eq!(y, want, "seq {n}");
    }
}

#[test]
fn a_length_beyond_the_sliced_table_is_a_usage_error() {
    let e = load_with(&positions_up_to_seq("zero"), &with_seq("9..512")).unwrap_err();
    assert!(matches!(e, Error::Usage(_)), "{e}");
    assert!(
        e.to_string()
            .contains("node 'positions' (Slice) takes seq up to 8"),
        "{e}"
    );
}

#[test]
fn a_slice_start_computed_at_run_time_is_an_error_naming_the_node() {
    let e = load_with(&positions_up_to_seq("n1"), &with_seq("1..512")).unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("node 'positions' (Slice): a start computed at run time"),
        "{e}"
    );
}
