//! `--freeze NAME=FILE.npy`: ONNX graph inputs bound to constants before conversion, end to
//! end through the binary (convert, verify, errors and exit codes).

mod common;

use common::cli::{error_line, mlpack};
use mlpack::interp::Value;
use mlpack::proto::onnx::{
    tensor_proto::DataType, tensor_shape_proto, type_proto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use ndarray::{ArrayD, IxDyn};
use prost::Message;
use std::path::{Path, PathBuf};

fn tensor_value(name: &str, elem: DataType, dims: &[i64]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&d| tensor_shape_proto::Dimension {
            value: Some(tensor_shape_proto::dimension::Value::DimValue(d)),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `y = ReduceSum(x[2,3], axes[1])` (opset 13, keepdims 0) with `axes` a graph input, written
/// to `dir/model.onnx`.
fn reduce_sum_model(dir: &Path) -> PathBuf {
    let model = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(GraphProto {
            name: "g".into(),
            node: vec![NodeProto {
                op_type: "ReduceSum".into(),
                name: "sum".into(),
                input: vec!["x".into(), "axes".into()],
                output: vec!["y".into()],
                attribute: vec![mlpack::proto::onnx::AttributeProto {
                    name: "keepdims".into(),
                    r#type: mlpack::proto::onnx::attribute_proto::AttributeType::Int as i32,
                    i: 0,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            input: vec![
                tensor_value("x", DataType::Float, &[2, 3]),
                tensor_value("axes", DataType::Int64, &[1]),
            ],
            output: vec![tensor_value("y", DataType::Float, &[2])],
            ..Default::default()
        }),
        ..Default::default()
    };
    let path = dir.join("model.onnx");
    std::fs::write(&path, model.encode_to_vec()).unwrap();
    path
}

/// Writes `value` as `dir/name`.
fn npy(dir: &Path, name: &str, value: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, mlpack::npy::serialize(value).unwrap()).unwrap();
    path
}

fn ints(shape: &[usize], v: &[i32]) -> Value {
    Value::Int(ArrayD::from_shape_vec(IxDyn(shape), v.to_vec()).unwrap())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_frozen_input_converts_leaves_the_package_inputs_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let model = reduce_sum_model(dir.path());
    let axes = npy(dir.path(), "axes.npy", &ints(&[1], &[1]));
    let out = dir.path().join("out.mlpackage");

    let refused = mlpack(&["convert", s(&model), "-o", s(&out)]);
    assert_eq!(refused.status.code(), Some(3));
    let line = error_line(&refused);
    assert!(
        line.contains("input 'axes' must be a constant") && line.contains("--freeze"),
        "{line}"
    );

    let freeze = format!("axes={}", s(&axes));
    let o = mlpack(&[
        "convert",
        s(&model),
        "-o",
        s(&out),
        "--freeze",
        &freeze,
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["verify"]["passed"], true, "{report}");

    let o = mlpack(&["inspect", s(&out), "--json"]);
    let inspected: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let inputs: Vec<&str> = inspected["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(inputs, ["x"]);

    // verify asks for the same --freeze rather than feeding the source an input the package lacks.
    let o = mlpack(&["verify", s(&model), s(&out)]);
    assert_eq!(o.status.code(), Some(2));
    let line = error_line(&o);
    assert!(line.contains("axes") && line.contains("--freeze"), "{line}");
    let o = mlpack(&["verify", s(&model), s(&out), "--freeze", &freeze]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn bad_freeze_flags_are_one_line_errors_with_documented_codes() {
    let dir = tempfile::tempdir().unwrap();
    let model = reduce_sum_model(dir.path());
    let out = dir.path().join("out.mlpackage");
    let axes = npy(dir.path(), "axes.npy", &ints(&[1], &[1]));
    let floats = npy(
        dir.path(),
        "floats.npy",
        &Value::Float(ArrayD::from_shape_vec(IxDyn(&[1]), vec![1.0]).unwrap()),
    );
    let two = npy(dir.path(), "two.npy", &ints(&[2], &[0, 1]));
    let garbage = dir.path().join("garbage.npy");
    std::fs::write(&garbage, b"not an npy file").unwrap();
    let missing = dir.path().join("missing.npy");
    let cases: Vec<(Vec<String>, i32, Vec<&str>)> = vec![
        (
            vec![format!("nope={}", s(&axes))],
            2,
            vec!["--freeze nope", "not an input"],
        ),
        (
            vec![format!("axes={}", s(&floats))],
            2,
            vec!["--freeze axes", "float", "INT64"],
        ),
        (
            vec![format!("axes={}", s(&two))],
            2,
            vec!["--freeze axes", "shape [2]", "[1]"],
        ),
        (
            vec![format!("axes={}", s(&axes)), format!("axes={}", s(&axes))],
            2,
            vec!["--freeze axes", "twice"],
        ),
        (
            vec![format!("axes={}", s(&garbage))],
            4,
            vec!["garbage.npy", "--freeze axes"],
        ),
        (
            vec![format!("axes={}", s(&missing))],
            5,
            vec!["missing.npy"],
        ),
    ];
    for (flags, code, needles) in cases {
        let mut args = vec!["convert", s(&model), "-o", s(&out)];
        for f in &flags {
            args.extend(["--freeze", f.as_str()]);
        }
        let o = mlpack(&args);
        assert_eq!(
            o.status.code(),
            Some(code),
            "{flags:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let line = error_line(&o);
        for needle in needles {
            assert!(line.contains(needle), "{flags:?}: {line}");
        }
        assert!(!out.exists());
    }
}

#[test]
fn a_pt2_source_refuses_freeze() {
    let dir = tempfile::tempdir().unwrap();
    let axes = npy(dir.path(), "axes.npy", &ints(&[1], &[1]));
    let pt2 =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pt2/mobilenet_v3/model_aten.pt2");
    let out = dir.path().join("out.mlpackage");
    let freeze = format!("x={}", s(&axes));
    let o = mlpack(&["convert", s(&pt2), "-o", s(&out), "--freeze", &freeze]);
    assert_eq!(o.status.code(), Some(2));
    let line = error_line(&o);
    assert!(
        line.contains("--freeze x") && line.contains("ONNX models only"),
        "{line}"
    );
}
