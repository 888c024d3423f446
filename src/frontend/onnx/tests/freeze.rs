//! Graph inputs bound to constants (`--freeze`), the inputs a converter reports it needs
//! constant, and the per-node coverage report.

use super::*;
use crate::interp::{run, RunOptions, Value};

/// `ReduceSum(x[2,3], axes)` at opset 13, `axes` a graph input (or, `axes_init`, an
/// initializer holding `[1]`).
fn reduce_sum(axes_init: bool) -> ModelProto {
    let nodes = vec![node(
        "ReduceSum",
        "sum",
        &["x", "axes"],
        &["y"],
        vec![int("keepdims", 0)],
    )];
    let mut inputs = vec![fixed("x", &[2, 3])];
    let mut inits = Vec::new();
    if axes_init {
        inits.push(init_i64("axes", &[1]));
    } else {
        inputs.push(value("axes", DataType::Int64, &[D::N(1)]));
    }
    model(13, nodes, inputs, &["y"], inits)
}

fn frozen(name: &str, value: Tensor) -> OnnxOptions {
    OnnxOptions {
        frozen: vec![FrozenInput {
            name: name.into(),
            value,
        }],
        ..Default::default()
    }
}

/// Output 0 of `p` run on `x`.
fn run_on(p: &Program, x: &[f32]) -> Vec<f32> {
    let f = p.main();
    let array = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[2, 3]), x.to_vec()).unwrap();
    let values =
        std::collections::BTreeMap::from([(f.inputs[0].name.clone(), Value::Float(array))]);
    let outs = run(f, &values, RunOptions::default()).unwrap();
    outs[0].1.to_f32_array().unwrap().iter().copied().collect()
}

#[test]
fn a_run_time_axes_input_is_reported_with_the_graph_input_to_freeze() {
    let err = load_with(&reduce_sum(false), &OnnxOptions::default()).unwrap_err();
    match &err {
        Error::NeedsConstant {
            message, inputs, ..
        } => {
            assert_eq!(inputs, &["axes"]);
            assert!(
                message.contains("node 'sum' (ReduceSum): input 'axes' must be a constant"),
                "{message}"
            );
            assert!(message.contains("--freeze"), "{message}");
        }
        other => panic!("expected NeedsConstant, got {other:?}"),
    }
    assert_eq!(err.exit_code(), crate::ExitCode::Unsupported);
}

#[test]
fn a_frozen_input_converts_like_an_initializer_and_is_no_program_input() {
    let axes = Tensor::from_i64_as(DType::I32, &[1], &[1]);
    let p = load_with(&reduce_sum(false), &frozen("axes", axes)).unwrap();
    let names: Vec<&str> = p.main().inputs.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["x"]);
    assert_eq!(
        p.metadata.get(FROZEN_METADATA_KEY).map(String::as_str),
        Some("axes")
    );
    let reference = load_ok(&reduce_sum(true));
    let x = [1.0, -2.0, 3.5, 0.25, 8.0, -1.0];
    assert_eq!(run_on(&p, &x), run_on(&reference, &x));
}

#[test]
fn frozen_inputs_are_checked_against_the_declared_input() {
    let m = reduce_sum(false);
    let usage = |options: OnnxOptions| match load_with(&m, &options) {
        Err(Error::Usage(m)) => m,
        other => panic!("expected a usage error, got {other:?}"),
    };
    let ok = || Tensor::from_i64_as(DType::I32, &[1], &[1]);
    let unknown = usage(frozen("nope", ok()));
    assert!(
        unknown.starts_with("--freeze nope: not an input of the model (inputs: x, axes)"),
        "{unknown}"
    );
    let kind = usage(frozen("axes", Tensor::from_f32(&[1], &[1.0])));
    assert!(
        kind.contains("--freeze axes: the value is float but input 'axes' is declared INT64"),
        "{kind}"
    );
    let shape = usage(frozen(
        "axes",
        Tensor::from_i64_as(DType::I32, &[2], &[0, 1]),
    ));
    assert!(
        shape.contains("--freeze axes: the value has shape [2] but input 'axes' is declared [1]"),
        "{shape}"
    );
    let mut twice = frozen("axes", ok());
    twice.frozen.push(FrozenInput {
        name: "axes".into(),
        value: ok(),
    });
    assert!(usage(twice).contains("frozen twice"));
    let mut shaped = frozen("axes", ok());
    shaped.input_shapes.push(InputShape::fixed("axes", &[1]));
    assert!(usage(shaped).contains("also has an --input-shape"));
}

#[test]
fn every_graph_input_a_needed_constant_comes_from_is_reported() {
    // axes = a + b: both inputs must be frozen for the axes to fold.
    let nodes = vec![
        node("Add", "add", &["a", "b"], &["axes"], vec![]),
        node("ReduceSum", "sum", &["x", "axes"], &["y"], vec![]),
    ];
    let i64_input = |n: &str| value(n, DataType::Int64, &[D::N(1)]);
    let m = model(
        13,
        nodes,
        vec![fixed("x", &[2, 3]), i64_input("a"), i64_input("b")],
        &["y"],
        vec![],
    );
    match load_with(&m, &OnnxOptions::default()) {
        Err(Error::NeedsConstant { inputs, .. }) => assert_eq!(inputs, ["a", "b"]),
        other => panic!("expected NeedsConstant, got {other:?}"),
    }
}

#[test]
fn coverage_names_each_node_with_why_it_does_not_convert() {
    let mut foo = node("Foo", "foo", &["x"], &["f"], vec![]);
    foo.domain = "com.example".into();
    let nodes = vec![
        node("Relu", "relu", &["x"], &["r"], vec![]),
        foo,
        node("Sigmoid", "after_foo", &["f"], &["s"], vec![]),
        node("ReduceSum", "sum", &["r", "axes"], &["y"], vec![]),
        node(
            "NegativeLogLikelihoodLoss",
            "loss",
            &["r", "t"],
            &["l"],
            vec![],
        ),
    ];
    let inputs = vec![
        value("x", DataType::Float, &[D::P("batch"), D::N(3)]),
        value("axes", DataType::Int64, &[D::N(1)]),
        value("t", DataType::Int64, &[D::P("batch")]),
    ];
    let m = model(13, nodes, inputs, &["s", "y", "l"], vec![]);
    let (_dir, path) = write(&m);
    let c = coverage(&path, Target::IOS17).unwrap();
    assert_eq!((c.total, c.convertible), (5, 1));
    let verdict = |name: &str| c.nodes.iter().find(|n| n.name == name).unwrap();
    assert!(verdict("relu").convertible && verdict("relu").reason.is_none());
    let foo = verdict("foo");
    assert_eq!(foo.refusal, Some(Refusal::UnsupportedOp));
    assert_eq!(
        foo.reason.as_deref(),
        Some("no converter for Foo [com.example]")
    );
    let after = verdict("after_foo");
    assert_eq!(after.refusal, Some(Refusal::Upstream));
    assert_eq!(
        after.reason.as_deref(),
        Some("reads 'f': node 'foo' (Foo) does not convert")
    );
    let sum = verdict("sum");
    assert_eq!(sum.refusal, Some(Refusal::NeedsConstant));
    assert_eq!(sum.freeze, ["axes"]);
    assert!(
        sum.reason
            .as_deref()
            .unwrap()
            .starts_with("input 'axes' must be a constant"),
        "{:?}",
        sum.reason
    );
    assert_eq!(verdict("loss").refusal, Some(Refusal::NotForInference));
}
