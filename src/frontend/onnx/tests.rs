//! End-to-end tests of the ONNX frontend on small models built in code.

use super::*;
use crate::ir::{DType, Dim, Function, Operation, Tensor};
use crate::proto::onnx::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use bytes::Bytes;
use prost::Message;
use std::path::PathBuf;

/// A dimension of a declared input shape.
enum D {
    N(i64),
    P(&'static str),
}

fn value(name: &str, elem: DataType, dims: &[D]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(match d {
                D::N(n) => tensor_shape_proto::dimension::Value::DimValue(*n),
                D::P(p) => tensor_shape_proto::dimension::Value::DimParam(p.to_string()),
            }),
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

fn fixed(name: &str, dims: &[i64]) -> ValueInfoProto {
    value(
        name,
        DataType::Float,
        &dims.iter().map(|&d| D::N(d)).collect::<Vec<_>>(),
    )
}

fn output(name: &str) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        ..Default::default()
    }
}

fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..Default::default()
    }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::String as i32,
        s: Bytes::from(v.as_bytes().to_vec()),
        ..Default::default()
    }
}

fn init_f32(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        data_type: DataType::Float as i32,
        dims: dims.to_vec(),
        raw_data: Bytes::from(
            values
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<_>>(),
        ),
        ..Default::default()
    }
}

fn init_i64(name: &str, values: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        data_type: DataType::Int64 as i32,
        dims: vec![values.len() as i64],
        int64_data: values.to_vec(),
        ..Default::default()
    }
}

fn model(
    opset: i64,
    nodes: Vec<NodeProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: &[&str],
    inits: Vec<TensorProto>,
) -> ModelProto {
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: opset,
        }],
        graph: Some(GraphProto {
            node: nodes,
            input: inputs,
            output: outputs.iter().map(|o| output(o)).collect(),
            initializer: inits,
            name: "g".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Writes `m` to `model.onnx` in a fresh temporary directory.
fn write(m: &ModelProto) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.onnx");
    std::fs::write(&path, m.encode_to_vec()).unwrap();
    (dir, path)
}

fn load_with(m: &ModelProto, options: &OnnxOptions) -> Result<Program, Error> {
    let (_dir, path) = write(m);
    load(&path, options)
}

fn load_ok(m: &ModelProto) -> Program {
    match load_with(m, &OnnxOptions::default()) {
        Ok(p) => p,
        Err(e) => panic!("conversion failed: {e}"),
    }
}

/// Non-const ops of `f`, in order.
fn ops(f: &Function) -> Vec<&Operation> {
    f.block
        .operations
        .iter()
        .filter(|op| op.op_type != "const")
        .collect()
}

fn op_types(f: &Function) -> Vec<&str> {
    ops(f).iter().map(|op| op.op_type.as_str()).collect()
}

/// The constant bound to parameter `param` of `op`.
fn param<'a>(f: &'a Function, op: &Operation, param: &str) -> &'a Tensor {
    let var = op
        .input(param)
        .and_then(|a| a[0].var())
        .unwrap_or_else(|| panic!("no param {param}"));
    f.block
        .producer(var)
        .and_then(|(_, p)| p.const_value())
        .unwrap_or_else(|| panic!("{param} is not constant"))
}

fn out_shape(op: &Operation) -> Vec<usize> {
    op.outputs[0].ty.static_shape().unwrap()
}

#[test]
fn conv_pads_are_reordered_and_auto_pad_maps_to_pad_type() {
    let w = init_f32("w", &[4, 3, 3, 3], &[0.1; 108]);
    let conv = node(
        "Conv",
        "conv",
        &["x", "w"],
        &["y"],
        vec![ints("pads", &[1, 2, 3, 4]), ints("strides", &[1, 1])],
    );
    let p = load_ok(&model(
        13,
        vec![conv],
        vec![fixed("x", &[1, 3, 8, 8])],
        &["y"],
        vec![w.clone()],
    ));
    let f = p.main();
    let c = ops(f)[0];
    assert_eq!(c.op_type, "conv");
    assert_eq!(c.name, "y");
    assert_eq!(c.origin.as_deref(), Some("conv"));
    assert_eq!(param(f, c, "pad").to_i64_vec(), vec![1, 3, 2, 4]);
    assert_eq!(param(f, c, "pad_type").as_string(), Some("custom"));
    assert_eq!(param(f, c, "groups").to_i64_vec(), vec![1]);
    // H: 8 + 1 + 3 - 3 + 1 = 10; W: 8 + 2 + 4 - 3 + 1 = 12.
    assert_eq!(out_shape(c), vec![1, 4, 10, 12]);

    for (auto, mil) in [
        ("SAME_UPPER", "same"),
        ("SAME_LOWER", "same_lower"),
        ("VALID", "valid"),
    ] {
        let conv = node(
            "Conv",
            "conv",
            &["x", "w"],
            &["y"],
            vec![string("auto_pad", auto), ints("strides", &[2, 2])],
        );
        let p = load_ok(&model(
            13,
            vec![conv],
            vec![fixed("x", &[1, 3, 8, 8])],
            &["y"],
            vec![w.clone()],
        ));
        let c = ops(p.main())[0];
        assert_eq!(param(p.main(), c, "pad_type").as_string(), Some(mil));
        assert!(c.input("pad").is_none());
        let expected = if mil == "valid" { 3 } else { 4 };
        assert_eq!(out_shape(c), vec![1, 4, expected, expected]);
    }
}

#[test]
fn gemm_with_constant_weight_becomes_linear() {
    let b: Vec<f32> = (0..12).map(|v| v as f32).collect();
    let nodes = vec![node(
        "Gemm",
        "fc",
        &["a", "b", "c"],
        &["y"],
        vec![int("transB", 1)],
    )];
    let inits = vec![
        init_f32("b", &[3, 4], &b),
        init_f32("c", &[3], &[1.0, 2.0, 3.0]),
    ];
    let p = load_ok(&model(13, nodes, vec![fixed("a", &[2, 4])], &["y"], inits));
    let f = p.main();
    let lin = ops(f)[0];
    assert_eq!(op_types(f), vec!["linear"]);
    assert_eq!(param(f, lin, "weight").to_f32_vec(), b);
    assert_eq!(param(f, lin, "bias").to_f32_vec(), vec![1.0, 2.0, 3.0]);
    assert_eq!(out_shape(lin), vec![2, 3]);

    // Without transB the weight is Bᵀ: B [2, 3] = [[0,1,2],[3,4,5]] → weight [[0,3],[1,4],[2,5]].
    let nodes = vec![node("Gemm", "fc", &["a", "b"], &["y"], vec![])];
    let inits = vec![init_f32("b", &[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0])];
    let p = load_ok(&model(13, nodes, vec![fixed("a", &[5, 2])], &["y"], inits));
    let lin = ops(p.main())[0];
    assert_eq!(
        param(p.main(), lin, "weight").to_f32_vec(),
        vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
    );
    assert!(lin.input("bias").is_none());
}

#[test]
fn gemm_with_alpha_uses_matmul() {
    let alpha = AttributeProto {
        name: "alpha".into(),
        r#type: AttributeType::Float as i32,
        f: 2.0,
        ..Default::default()
    };
    let nodes = vec![node(
        "Gemm",
        "fc",
        &["a", "b"],
        &["y"],
        vec![alpha, int("transA", 1)],
    )];
    let p = load_ok(&model(
        13,
        nodes,
        vec![fixed("a", &[4, 2]), fixed("b", &[4, 3])],
        &["y"],
        vec![],
    ));
    let f = p.main();
    assert_eq!(op_types(f), vec!["matmul", "mul"]);
    assert!(param(f, ops(f)[0], "transpose_x").to_i64_vec() == vec![1]);
    assert_eq!(out_shape(ops(f)[1]), vec![2, 3]);
    assert_eq!(f.block.outputs, vec!["y"]);
}

#[test]
fn matmul_with_constant_matrix_becomes_linear() {
    let nodes = vec![node("MatMul", "mm", &["x", "w"], &["y"], vec![])];
    let inits = vec![init_f32("w", &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])];
    let p = load_ok(&model(
        13,
        nodes,
        vec![fixed("x", &[1, 5, 2])],
        &["y"],
        inits,
    ));
    let f = p.main();
    assert_eq!(op_types(f), vec!["linear"]);
    assert_eq!(
        param(f, ops(f)[0], "weight").to_f32_vec(),
        vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
    );
    assert_eq!(out_shape(ops(f)[0]), vec![1, 5, 3]);
}

#[test]
fn softmax_before_opset_13_flattens_at_axis() {
    let nodes = vec![node("Softmax", "sm", &["x"], &["y"], vec![int("axis", 1)])];
    let p = load_ok(&model(
        11,
        nodes.clone(),
        vec![fixed("x", &[2, 3, 4])],
        &["y"],
        vec![],
    ));
    let f = p.main();
    assert_eq!(op_types(f), vec!["reshape", "softmax", "reshape"]);
    assert_eq!(param(f, ops(f)[0], "shape").to_i64_vec(), vec![2, 12]);
    assert_eq!(param(f, ops(f)[1], "axis").to_i64_vec(), vec![-1]);
    assert_eq!(out_shape(ops(f)[2]), vec![2, 3, 4]);
    assert_eq!(f.block.outputs, vec!["y"]);

    let p = load_ok(&model(
        13,
        nodes,
        vec![fixed("x", &[2, 3, 4])],
        &["y"],
        vec![],
    ));
    let f = p.main();
    assert_eq!(op_types(f), vec!["softmax"]);
    assert_eq!(param(f, ops(f)[0], "axis").to_i64_vec(), vec![1]);
}

#[test]
fn squeeze_axes_come_from_the_attribute_before_13_and_the_input_from_13() {
    let old = vec![node(
        "Squeeze",
        "sq",
        &["x"],
        &["y"],
        vec![ints("axes", &[-1])],
    )];
    let p = load_ok(&model(
        11,
        old,
        vec![fixed("x", &[1, 3, 1])],
        &["y"],
        vec![],
    ));
    let f = p.main();
    assert_eq!(op_types(f), vec!["squeeze"]);
    assert_eq!(param(f, ops(f)[0], "axes").to_i64_vec(), vec![2]);
    assert_eq!(out_shape(ops(f)[0]), vec![1, 3]);

    let new = vec![node("Squeeze", "sq", &["x", "axes"], &["y"], vec![])];
    let p = load_ok(&model(
        13,
        new,
        vec![fixed("x", &[1, 3, 1])],
        &["y"],
        vec![init_i64("axes", &[0])],
    ));
    let f = p.main();
    assert_eq!(param(f, ops(f)[0], "axes").to_i64_vec(), vec![0]);
    assert_eq!(out_shape(ops(f)[0]), vec![3, 1]);
    // The axes initializer is read as a value, not emitted.
    assert!(f.block.operations.iter().all(|op| op.name != "axes"));
}

#[test]
fn shape_gather_unsqueeze_concat_reshape_folds_to_a_constant_shape() {
    let nodes = vec![
        node("Shape", "shape", &["x"], &["s"], vec![]),
        node(
            "Gather",
            "gather",
            &["s", "zero"],
            &["batch"],
            vec![int("axis", 0)],
        ),
        node(
            "Unsqueeze",
            "unsq",
            &["batch", "axes0"],
            &["batch1"],
            vec![],
        ),
        node(
            "Concat",
            "cat",
            &["batch1", "minus_one"],
            &["new_shape"],
            vec![int("axis", 0)],
        ),
        node("Reshape", "reshape", &["x", "new_shape"], &["y"], vec![]),
    ];
    let zero = TensorProto {
        name: "zero".into(),
        data_type: DataType::Int64 as i32,
        int64_data: vec![0],
        ..Default::default()
    };
    let inits = vec![zero, init_i64("axes0", &[0]), init_i64("minus_one", &[-1])];
    let p = load_ok(&model(
        13,
        nodes,
        vec![fixed("x", &[2, 3, 4])],
        &["y"],
        inits,
    ));
    let f = p.main();
    assert_eq!(op_types(f), vec!["reshape"]);
    assert_eq!(param(f, ops(f)[0], "shape").to_i64_vec(), vec![2, 12]);
    assert_eq!(out_shape(ops(f)[0]), vec![2, 12]);
    // Only the reshape and its shape constant survive.
    assert_eq!(f.block.operations.len(), 2);
}

#[test]
fn unsupported_operators_are_listed_at_once() {
    let mut foo = node("Foo", "foo", &["x"], &["b"], vec![]);
    foo.domain = "com.example".into();
    let nodes = vec![
        node("NonMaxSuppression", "nms_1", &["x"], &["a"], vec![]),
        foo,
        node("Relu", "relu", &["x"], &["r"], vec![]),
        node("NonMaxSuppression", "nms_2", &["x"], &["c"], vec![]),
    ];
    let err = load_with(
        &model(13, nodes, vec![fixed("x", &[1])], &["a"], vec![]),
        &OnnxOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }));
    let msg = err.to_string();
    assert!(
        msg.ends_with("unsupported operators: NonMaxSuppression ×2 (nms_1, nms_2), Foo [com.example] ×1 (foo)"),
        "{msg}"
    );
}

#[test]
fn dynamic_dimensions_need_an_input_shape() {
    let nodes = vec![node("Relu", "relu", &["x"], &["y"], vec![])];
    let inputs = vec![value(
        "x",
        DataType::Float,
        &[D::P("batch"), D::N(3), D::N(224), D::N(224)],
    )];
    let m = model(13, nodes, inputs, &["y"], vec![]);
    let err = load_with(&m, &OnnxOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }));
    assert!(
        err.to_string().ends_with(
            "input 'x' has dynamic dimension 'batch' (shape [batch,3,224,224]); fix it with --dim batch=1, or make it flexible with --dim batch=1..512"
        ),
        "{err}"
    );
    let options = OnnxOptions {
        input_shapes: vec![InputShape::fixed("x", &[2, 3, 224, 224])],
        ..Default::default()
    };
    let p = load_with(&m, &options).unwrap();
    assert_eq!(p.main().inputs[0].ty.shape[0], Dim::Fixed(2));

    let bad_name = OnnxOptions {
        input_shapes: vec![InputShape::fixed("nope", &[1])],
        ..Default::default()
    };
    assert!(matches!(load_with(&m, &bad_name), Err(Error::Usage(_))));
    let bad_rank = OnnxOptions {
        input_shapes: vec![InputShape::fixed("x", &[1, 3])],
        ..Default::default()
    };
    assert!(matches!(load_with(&m, &bad_rank), Err(Error::Usage(_))));
}

#[test]
fn a_dimension_shared_by_inputs_gets_one_hint_naming_them_all() {
    let nodes = vec![node("Add", "add", &["a", "b"], &["y"], vec![])];
    let inputs = vec![
        value("a", DataType::Float, &[D::P("batch"), D::P("seq")]),
        value("b", DataType::Float, &[D::N(1), D::P("seq")]),
    ];
    let m = model(13, nodes, inputs, &["y"], vec![]);
    let msg = load_with(&m, &OnnxOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.ends_with(
            "input 'a' has dynamic dimension 'batch' (shape [batch,seq]); fix it with --dim batch=1, or make it flexible with --dim batch=1..512; \
             inputs 'a', 'b' have dynamic dimension 'seq' (shapes [batch,seq], [1,seq]); fix it with --dim seq=128, or make it flexible with --dim seq=1..512"
        ),
        "{msg}"
    );
}

#[test]
fn names_inputs_outputs_and_metadata() {
    let nodes = vec![
        node("Relu", "relu", &["in.put:0"], &["out/put"], vec![]),
        node(
            "Cast",
            "cast",
            &["ids"],
            &["ids_f"],
            vec![int("to", DataType::Float as i64)],
        ),
    ];
    let inputs = vec![
        fixed("in.put:0", &[2]),
        value("ids", DataType::Int64, &[D::N(3)]),
    ];
    let p = load_ok(&model(
        13,
        nodes,
        inputs,
        &["out/put", "in.put:0", "ids_f"],
        vec![],
    ));
    let f = p.main();
    assert_eq!(f.inputs[0].name, "in_put_0");
    assert_eq!(f.inputs[1].ty.dtype, DType::I32);
    // A graph output that is a graph input is returned through an identity.
    assert_eq!(f.block.outputs[0], "out_put");
    let identity = f.block.producer(&f.block.outputs[1]).unwrap().1;
    assert_eq!(identity.op_type, "identity");
    assert_eq!(f.block.outputs[2], "ids_f");
    assert_eq!(
        p.metadata.get("mlpack.source").map(String::as_str),
        Some("model.onnx")
    );
    assert_eq!(
        p.metadata.get("mlpack.onnx_opset").map(String::as_str),
        Some("13")
    );
    crate::ir::validate_program(&p).unwrap();
}

#[test]
fn slice_clamps_int64_max_ends() {
    let nodes = vec![node(
        "Slice",
        "sl",
        &["x", "starts", "ends", "axes", "steps"],
        &["y"],
        vec![],
    )];
    let inits = vec![
        init_i64("starts", &[1, -1]),
        init_i64("ends", &[i64::MAX, i64::MIN]),
        init_i64("axes", &[0, 1]),
        init_i64("steps", &[1, -1]),
    ];
    let p = load_ok(&model(13, nodes, vec![fixed("x", &[4, 5])], &["y"], inits));
    let f = p.main();
    let s = ops(f)[0];
    assert_eq!(s.op_type, "slice_by_index");
    assert_eq!(param(f, s, "begin").to_i64_vec(), vec![1, 4]);
    assert_eq!(param(f, s, "end").to_i64_vec(), vec![4, 0]);
    assert_eq!(param(f, s, "stride").to_i64_vec(), vec![1, -1]);
    assert_eq!(param(f, s, "end_mask").to_i64_vec(), vec![0, 1]);
    assert_eq!(out_shape(s), vec![3, 5]);
}

#[test]
fn dropout_with_a_used_mask_is_unsupported() {
    let nodes = vec![node("Dropout", "drop", &["x"], &["y", "mask"], vec![])];
    let err = load_with(
        &model(
            13,
            nodes.clone(),
            vec![fixed("x", &[2])],
            &["y", "mask"],
            vec![],
        ),
        &OnnxOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("node 'drop' (Dropout)"), "{err}");
    let p = load_ok(&model(13, nodes, vec![fixed("x", &[2])], &["y"], vec![]));
    assert_eq!(op_types(p.main()), vec!["identity"]);
}

#[test]
fn external_data_is_read_relative_to_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let mut blob = vec![0u8; 16];
    blob.extend([1.0f32, 2.0, 3.0].iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(dir.path().join("weights.bin"), &blob).unwrap();
    let entry = |k: &str, v: &str| StringStringEntryProto {
        key: k.into(),
        value: v.into(),
    };
    let b = TensorProto {
        name: "b".into(),
        data_type: DataType::Float as i32,
        dims: vec![3],
        data_location: 1,
        external_data: vec![
            entry("location", "weights.bin"),
            entry("offset", "16"),
            entry("length", "12"),
        ],
        ..Default::default()
    };
    let nodes = vec![node("Add", "add", &["x", "b"], &["y"], vec![])];
    let m = model(13, nodes, vec![fixed("x", &[3])], &["y"], vec![b.clone()]);
    let path = dir.path().join("model.onnx");
    std::fs::write(&path, m.encode_to_vec()).unwrap();
    let p = load(&path, &OnnxOptions::default()).unwrap();
    let f = p.main();
    assert_eq!(param(f, ops(f)[0], "y").to_f32_vec(), vec![1.0, 2.0, 3.0]);

    let summary = summarize(&path).unwrap();
    assert_eq!(
        summary.initializers[0].storage,
        Storage::External {
            file: "weights.bin".into(),
            offset: 16
        }
    );
    assert_eq!(summary.initializers[0].bytes, 12);

    std::fs::remove_file(dir.path().join("weights.bin")).unwrap();
    let err = load(&path, &OnnxOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("initializer 'b'") && msg.contains("weights.bin") && msg.contains("missing"),
        "{msg}"
    );

    let mut escaping = b;
    escaping.external_data[0].value = "../weights.bin".into();
    let m = model(
        13,
        vec![node("Add", "add", &["x", "b"], &["y"], vec![])],
        vec![fixed("x", &[3])],
        &["y"],
        vec![escaping],
    );
    std::fs::write(&path, m.encode_to_vec()).unwrap();
    assert!(load(&path, &OnnxOptions::default())
        .unwrap_err()
        .to_string()
        .contains("relative path inside"));
}

#[test]
fn truncated_and_missing_files_are_reported() {
    let w = init_f32("w", &[64], &[0.5; 64]);
    let m = model(
        13,
        vec![node("Add", "add", &["x", "w"], &["y"], vec![])],
        vec![fixed("x", &[64])],
        &["y"],
        vec![w],
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.onnx");
    let bytes = m.encode_to_vec();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = load(&path, &OnnxOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("not a valid ONNX model"), "{err}");
    let err = load(&dir.path().join("absent.onnx"), &OnnxOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }));
}

#[test]
fn summary_lists_dims_ops_and_initializers() {
    let nodes = vec![
        node("Relu", "r1", &["x"], &["a"], vec![]),
        node("Relu", "r2", &["a"], &["y"], vec![]),
    ];
    let inputs = vec![value("x", DataType::Float, &[D::P("batch"), D::N(3)])];
    let m = model(
        13,
        nodes,
        inputs,
        &["y"],
        vec![init_f32("w", &[2, 2], &[0.0; 4])],
    );
    let (_dir, path) = write(&m);
    let s = summarize(&path).unwrap();
    assert_eq!(
        s.inputs[0].dims,
        Some(vec![
            DimSummary::Param("batch".into()),
            DimSummary::Fixed(3)
        ])
    );
    assert_eq!(s.op_histogram.get("Relu"), Some(&2));
    assert_eq!(s.initializers[0].bytes, 16);
    assert_eq!(s.totals.parameters, 4);
    let json = serde_json::to_string(&s).unwrap();
    assert!(json.contains(r#""dims":["batch",3]"#), "{json}");
}

/// Converts `m` and runs it on float inputs (by ONNX input order), returning output 0.
fn run_f32(m: &ModelProto, inputs: &[(&[usize], &[f32])]) -> (Vec<usize>, Vec<f32>) {
    use crate::interp::{run, RunOptions, Value};
    let p = load_ok(m);
    crate::ir::validate_program(&p).unwrap();
    let f = p.main();
    let mut values = std::collections::BTreeMap::new();
    for (var, (shape, data)) in f.inputs.iter().zip(inputs) {
        let array = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape), data.to_vec()).unwrap();
        values.insert(var.name.clone(), Value::Float(array));
    }
    let outs = run(f, &values, RunOptions::default()).unwrap();
    let out = outs[0].1.to_f32_array().unwrap();
    (out.shape().to_vec(), out.iter().copied().collect())
}

#[test]
fn expand_broadcasts_with_reshape_and_tile() {
    let nodes = vec![node("Expand", "ex", &["x", "shape"], &["y"], vec![])];
    let m = model(
        13,
        nodes,
        vec![fixed("x", &[3, 1])],
        &["y"],
        vec![init_i64("shape", &[2, 1, 2])],
    );
    assert_eq!(op_types(load_ok(&m).main()), vec!["reshape", "tile"]);
    let (shape, v) = run_f32(&m, &[(&[3, 1], &[1.0, 2.0, 3.0])]);
    assert_eq!(shape, vec![2, 3, 2]);
    assert_eq!(
        v,
        vec![1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
    );
}

#[test]
fn split_sizes_come_from_the_input_or_num_outputs() {
    let nodes = vec![node(
        "Split",
        "sp",
        &["x", "sizes"],
        &["a", "b"],
        vec![int("axis", 0)],
    )];
    let m = model(
        13,
        nodes,
        vec![fixed("x", &[5])],
        &["b", "a"],
        vec![init_i64("sizes", &[2, 3])],
    );
    let p = load_ok(&m);
    let f = p.main();
    assert_eq!(f.block.outputs, vec!["b", "a"]);
    let split = ops(f)[0];
    assert_eq!(param(f, split, "split_sizes").to_i64_vec(), vec![2, 3]);
    let (shape, v) = run_f32(&m, &[(&[5], &[1.0, 2.0, 3.0, 4.0, 5.0])]);
    assert_eq!((shape, v), (vec![3], vec![3.0, 4.0, 5.0]));

    // Opset 18: 7 elements in 3 outputs are 3, 3, 1.
    let nodes = vec![node(
        "Split",
        "sp",
        &["x"],
        &["a", "b", "c"],
        vec![int("num_outputs", 3)],
    )];
    let p = load_ok(&model(
        18,
        nodes,
        vec![fixed("x", &[7])],
        &["a", "b", "c"],
        vec![],
    ));
    assert_eq!(
        param(p.main(), ops(p.main())[0], "split_sizes").to_i64_vec(),
        vec![3, 3, 1]
    );
}

#[test]
fn pad_uses_mil_order_for_trailing_axes() {
    let nodes = vec![node("Pad", "pad", &["x", "pads", "value"], &["y"], vec![])];
    let value = TensorProto {
        name: "value".into(),
        data_type: DataType::Float as i32,
        float_data: vec![9.0],
        ..Default::default()
    };
    let m = model(
        13,
        nodes,
        vec![fixed("x", &[1, 2])],
        &["y"],
        vec![init_i64("pads", &[0, 1, 0, 2]), value],
    );
    let p = load_ok(&m);
    assert_eq!(
        param(p.main(), ops(p.main())[0], "pad").to_i64_vec(),
        vec![1, 2]
    );
    let (shape, v) = run_f32(&m, &[(&[1, 2], &[1.0, 2.0])]);
    assert_eq!((shape, v), (vec![1, 5], vec![9.0, 1.0, 2.0, 9.0, 9.0]));
}

#[test]
fn range_and_constant_of_shape_fold() {
    let fill = TensorProto {
        name: "v".into(),
        data_type: DataType::Int64 as i32,
        dims: vec![1],
        int64_data: vec![4],
        ..Default::default()
    };
    let value_attr = AttributeProto {
        name: "value".into(),
        r#type: AttributeType::Tensor as i32,
        t: Some(fill),
        ..Default::default()
    };
    let scalar = |name: &str, v: i64| TensorProto {
        name: name.into(),
        data_type: DataType::Int64 as i32,
        int64_data: vec![v],
        ..Default::default()
    };
    let nodes = vec![
        node(
            "Range",
            "range",
            &["start", "limit", "delta"],
            &["r"],
            vec![],
        ),
        node(
            "ConstantOfShape",
            "cos",
            &["shape"],
            &["c"],
            vec![value_attr],
        ),
        node("Add", "add", &["r", "c"], &["y"], vec![]),
    ];
    let inits = vec![
        scalar("start", 10),
        scalar("limit", 4),
        scalar("delta", -3),
        init_i64("shape", &[2]),
    ];
    let p = load_ok(&model(13, nodes, vec![], &["y"], inits));
    let f = p.main();
    // Everything folds: the output is a constant returned through an identity.
    assert_eq!(op_types(f), vec!["identity"]);
    let value = f
        .block
        .operations
        .iter()
        .find_map(|op| op.const_value())
        .unwrap();
    assert_eq!(
        (value.dtype(), value.to_i64_vec()),
        (DType::I32, vec![14, 11])
    );
}

#[test]
fn clip_at_opset_6_uses_attributes_and_one_bound_uses_maximum() {
    let f32_attr = |name: &str, v: f32| AttributeProto {
        name: name.into(),
        r#type: AttributeType::Float as i32,
        f: v,
        ..Default::default()
    };
    let nodes = vec![node(
        "Clip",
        "clip",
        &["x"],
        &["y"],
        vec![f32_attr("min", -1.0), f32_attr("max", 1.0)],
    )];
    let m = model(6, nodes, vec![fixed("x", &[3])], &["y"], vec![]);
    assert_eq!(op_types(load_ok(&m).main()), vec!["clip"]);
    assert_eq!(
        run_f32(&m, &[(&[3], &[-3.0, 0.5, 2.0])]).1,
        vec![-1.0, 0.5, 1.0]
    );

    let lo = TensorProto {
        name: "lo".into(),
        data_type: DataType::Float as i32,
        float_data: vec![0.0],
        ..Default::default()
    };
    let nodes = vec![node("Clip", "clip", &["x", "lo"], &["y"], vec![])];
    let m = model(13, nodes, vec![fixed("x", &[3])], &["y"], vec![lo]);
    assert_eq!(op_types(load_ok(&m).main()), vec!["maximum"]);
    assert_eq!(
        run_f32(&m, &[(&[3], &[-3.0, 0.5, 2.0])]).1,
        vec![0.0, 0.5, 2.0]
    );

    let nodes = vec![node(
        "Add",
        "add",
        &["x", "x"],
        &["y"],
        vec![int("broadcast", 1), int("axis", 0)],
    )];
    let err = load_with(
        &model(6, nodes, vec![fixed("x", &[3])], &["y"], vec![]),
        &OnnxOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("legacy broadcasting"), "{err}");
}

#[test]
fn arithmetic_helpers_compute_exactly() {
    let nodes = vec![
        node("Neg", "neg", &["x"], &["n"], vec![]),
        node("Reciprocal", "rec", &["x"], &["r"], vec![]),
        node("Sum", "sum", &["x", "n", "r"], &["s"], vec![]),
        node("PRelu", "prelu", &["s", "slope"], &["y"], vec![]),
    ];
    let m = model(
        13,
        nodes,
        vec![fixed("x", &[2])],
        &["y"],
        vec![init_f32("slope", &[1], &[0.5])],
    );
    // x = [2, -4]: -x = [-2, 4], 1/x = [0.5, -0.25], sum = [0.5, -0.25], prelu → [0.5, -0.125].
    assert_eq!(run_f32(&m, &[(&[2], &[2.0, -4.0])]).1, vec![0.5, -0.125]);
}

#[test]
fn layer_norm_argmax_and_cast() {
    let nodes = vec![
        node(
            "LayerNormalization",
            "ln",
            &["x", "gamma", "beta"],
            &["n"],
            vec![int("axis", -1)],
        ),
        node(
            "ArgMax",
            "am",
            &["n"],
            &["i"],
            vec![int("axis", 1), int("keepdims", 0)],
        ),
        node(
            "Cast",
            "cast",
            &["i"],
            &["y"],
            vec![int("to", DataType::Float as i64)],
        ),
    ];
    let inits = vec![
        init_f32("gamma", &[3], &[1.0, 1.0, -1.0]),
        init_f32("beta", &[3], &[0.0; 3]),
    ];
    let m = model(17, nodes, vec![fixed("x", &[2, 3])], &["y"], inits);
    assert_eq!(
        op_types(load_ok(&m).main()),
        vec!["layer_norm", "reduce_argmax", "cast"]
    );
    // Row 0 normalised is increasing, so gamma = -1 on the last element makes index 1 largest;
    // row 1 is decreasing, so index 0 is largest.
    let (shape, v) = run_f32(&m, &[(&[2, 3], &[1.0, 2.0, 3.0, 3.0, 2.0, 1.0])]);
    assert_eq!((shape, v), (vec![2], vec![1.0, 0.0]));
}

#[test]
fn output_names_win_over_intermediate_names() {
    // The softmax emits intermediate ops named after its output "y"; the graph output "y_flat"
    // produced by another node must still be called "y_flat".
    let nodes = vec![
        node("Softmax", "sm", &["x"], &["y"], vec![int("axis", 1)]),
        node("Relu", "relu", &["y"], &["y_flat"], vec![]),
    ];
    let p = load_ok(&model(
        11,
        nodes,
        vec![fixed("x", &[2, 3, 4])],
        &["y_flat", "y"],
        vec![],
    ));
    let f = p.main();
    assert_eq!(f.block.outputs, vec!["y_flat", "y"]);
    assert_eq!(f.block.producer("y_flat").unwrap().1.op_type, "relu");
    assert_eq!(f.block.producer("y").unwrap().1.op_type, "reshape");
    crate::ir::validate_program(&p).unwrap();
}

#[test]
fn conv_transpose_pads_and_output_padding() {
    // x = [1, 2], w = [1, 1, 1], stride 2: x0 covers outputs 0..3, x1 covers 2..5 → [1, 1, 3, 2, 2].
    let w = init_f32("w", &[1, 1, 3], &[1.0; 3]);
    let case = |attrs: Vec<AttributeProto>| {
        let nodes = vec![node("ConvTranspose", "ct", &["x", "w"], &["y"], attrs)];
        run_f32(
            &model(
                13,
                nodes,
                vec![fixed("x", &[1, 1, 2])],
                &["y"],
                vec![w.clone()],
            ),
            &[(&[1, 1, 2], &[1.0, 2.0])],
        )
    };
    assert_eq!(
        case(vec![ints("strides", &[2])]),
        (vec![1, 1, 5], vec![1.0, 1.0, 3.0, 2.0, 2.0])
    );
    assert_eq!(
        case(vec![ints("strides", &[2]), ints("output_padding", &[1])]),
        (vec![1, 1, 6], vec![1.0, 1.0, 3.0, 2.0, 2.0, 0.0])
    );
    assert_eq!(
        case(vec![ints("strides", &[2]), ints("pads", &[1, 1])]),
        (vec![1, 1, 3], vec![1.0, 3.0, 2.0])
    );
}

#[test]
fn batch_norm_on_a_matrix_runs_with_a_unit_spatial_dimension() {
    let nodes = vec![node(
        "BatchNormalization",
        "bn",
        &["x", "s", "b", "m", "v"],
        &["y"],
        vec![],
    )];
    let inits = vec![
        init_f32("s", &[2], &[2.0, 1.0]),
        init_f32("b", &[2], &[1.0, 0.0]),
        init_f32("m", &[2], &[1.0, -1.0]),
        init_f32("v", &[2], &[4.0 - 1e-5, 1.0 - 1e-5]),
    ];
    let m = model(13, nodes, vec![fixed("x", &[1, 2])], &["y"], inits);
    assert_eq!(
        op_types(load_ok(&m).main()),
        vec!["expand_dims", "batch_norm", "squeeze"]
    );
    // (5 - 1) / 2 * 2 + 1 = 5; (1 + 1) / 1 * 1 + 0 = 2.
    let (shape, v) = run_f32(&m, &[(&[1, 2], &[5.0, 1.0])]);
    assert_eq!(shape, vec![1, 2]);
    assert!(
        (v[0] - 5.0).abs() < 1e-5 && (v[1] - 2.0).abs() < 1e-5,
        "{v:?}"
    );
}

#[test]
fn log_softmax_is_x_minus_log_sum_exp() {
    let nodes = vec![node("LogSoftmax", "lsm", &["x"], &["y"], vec![])];
    let m = model(13, nodes, vec![fixed("x", &[2])], &["y"], vec![]);
    assert_eq!(
        op_types(load_ok(&m).main()),
        vec!["reduce_log_sum_exp", "sub"]
    );
    // log(e^0 + e^ln3) = ln 4: y = [-ln 4, ln 3 - ln 4]; the large input stays finite.
    let (_, v) = run_f32(&m, &[(&[2], &[0.0, 3f32.ln()])]);
    assert!(
        (v[0] + 4f32.ln()).abs() < 1e-6 && (v[1] - (3f32.ln() - 4f32.ln())).abs() < 1e-6,
        "{v:?}"
    );
    let (_, v) = run_f32(&m, &[(&[2], &[0.0, 200.0])]);
    assert_eq!(v, vec![-200.0, 0.0]);
}

#[test]
fn hostile_sizes_are_errors_not_panics() {
    let huge = TensorProto {
        name: "w".into(),
        data_type: DataType::Float as i32,
        dims: vec![i64::MAX, 4],
        ..Default::default()
    };
    let nodes = vec![node("Add", "add", &["x", "w"], &["y"], vec![])];
    let err = load_with(
        &model(13, nodes, vec![fixed("x", &[1])], &["y"], vec![huge]),
        &OnnxOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");

    let nodes = vec![node("ConstantOfShape", "c", &["shape"], &["y"], vec![])];
    let m = model(
        13,
        nodes,
        vec![],
        &["y"],
        vec![init_i64("shape", &[1 << 40, 1 << 40])],
    );
    assert!(matches!(
        load_with(&m, &OnnxOptions::default()),
        Err(Error::Unsupported { .. })
    ));

    let nodes = vec![node("Reshape", "r", &["x", "shape"], &["y"], vec![])];
    let m = model(
        13,
        nodes,
        vec![fixed("x", &[4])],
        &["y"],
        vec![init_i64("shape", &[i64::MAX, i64::MAX])],
    );
    assert!(matches!(
        load_with(&m, &OnnxOptions::default()),
        Err(Error::Invalid { .. })
    ));
}

#[test]
fn resize_nearest_by_whole_factors_repeats_pixels() {
    let scales = TensorProto {
        name: "scales".into(),
        data_type: DataType::Float as i32,
        dims: vec![4],
        float_data: vec![1.0, 1.0, 2.0, 2.0],
        ..Default::default()
    };
    let attrs = vec![
        string("mode", "nearest"),
        string("coordinate_transformation_mode", "asymmetric"),
        string("nearest_mode", "floor"),
    ];
    let nodes = vec![node("Resize", "rs", &["x", "", "scales"], &["y"], attrs)];
    let m = model(
        13,
        nodes,
        vec![fixed("x", &[1, 1, 1, 2])],
        &["y"],
        vec![scales],
    );
    assert_eq!(
        op_types(load_ok(&m).main()),
        vec!["upsample_nearest_neighbor"]
    );
    let (shape, v) = run_f32(&m, &[(&[1, 1, 1, 2], &[1.0, 2.0])]);
    assert_eq!(
        (shape, v),
        (
            vec![1, 1, 2, 4],
            vec![1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0]
        )
    );

    // Linear, half-pixel: 2 → 4 samples at (i + 0.5) / 2 - 0.5 = [-0.25→0, 0.25, 0.75, 1.25→1]
    // of [1, 3] → [1, 1.5, 2.5, 3].
    let nodes = vec![node(
        "Resize",
        "rs",
        &["x", "", "", "sizes"],
        &["y"],
        vec![string("mode", "linear")],
    )];
    let m = model(
        13,
        nodes,
        vec![fixed("x", &[1, 1, 2, 2])],
        &["y"],
        vec![init_i64("sizes", &[1, 1, 2, 4])],
    );
    assert_eq!(op_types(load_ok(&m).main()), vec!["resize_bilinear"]);
    let (shape, v) = run_f32(&m, &[(&[1, 1, 2, 2], &[1.0, 3.0, 1.0, 3.0])]);
    assert_eq!(
        (shape, v),
        (
            vec![1, 1, 2, 4],
            vec![1.0, 1.5, 2.5, 3.0, 1.0, 1.5, 2.5, 3.0]
        )
    );

    let nodes = vec![node(
        "Resize",
        "rs",
        &["x", "", "", "sizes"],
        &["y"],
        vec![string("mode", "cubic")],
    )];
    let m = model(
        13,
        nodes,
        vec![fixed("x", &[1, 1, 2, 2])],
        &["y"],
        vec![init_i64("sizes", &[1, 1, 2, 4])],
    );
    let err = load_with(&m, &OnnxOptions::default()).unwrap_err();
    assert!(err.to_string().contains("mode 'cubic'"), "{err}");
}

#[test]
fn a_graph_output_nobody_produces_is_invalid() {
    let nodes = vec![node("Relu", "relu", &["x"], &["y"], vec![])];
    let err = load_with(
        &model(13, nodes, vec![fixed("x", &[2])], &["z"], vec![]),
        &OnnxOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }));
    assert!(
        err.to_string().contains("graph output 'z' is not produced"),
        "{err}"
    );
}

#[test]
fn gather_and_scatter_elements_follow_the_onnx_examples() {
    // GatherElements example from the ONNX operator docs, with -1 standing for index 1.
    let idx = TensorProto {
        name: "i".into(),
        data_type: DataType::Int64 as i32,
        dims: vec![2, 2],
        int64_data: vec![0, 0, -1, 0],
        ..Default::default()
    };
    let nodes = vec![node(
        "GatherElements",
        "ge",
        &["x", "i"],
        &["y"],
        vec![int("axis", 1)],
    )];
    let m = model(13, nodes, vec![fixed("x", &[2, 2])], &["y"], vec![idx]);
    assert_eq!(
        run_f32(&m, &[(&[2, 2], &[1.0, 2.0, 3.0, 4.0])]).1,
        vec![1.0, 1.0, 4.0, 3.0]
    );

    // ScatterElements example: data [[1, 2, 3, 4, 5]], indices [[1, 3]], updates [[1.1, 2.1]], axis 1.
    let idx = TensorProto {
        name: "i".into(),
        data_type: DataType::Int64 as i32,
        dims: vec![1, 2],
        int64_data: vec![1, 3],
        ..Default::default()
    };
    let nodes = vec![node(
        "ScatterElements",
        "se",
        &["x", "i", "u"],
        &["y"],
        vec![int("axis", 1)],
    )];
    let m = model(
        13,
        nodes,
        vec![fixed("x", &[1, 5])],
        &["y"],
        vec![idx, init_f32("u", &[1, 2], &[1.1, 2.1])],
    );
    assert_eq!(
        run_f32(&m, &[(&[1, 5], &[1.0, 2.0, 3.0, 4.0, 5.0])]).1,
        vec![1.0, 1.1, 3.0, 2.1, 5.0]
    );

    // ScatterND example 1: indices [[4], [3], [1], [7]], updates [9, 10, 11, 12].
    let idx = TensorProto {
        name: "i".into(),
        data_type: DataType::Int64 as i32,
        dims: vec![4, 1],
        int64_data: vec![4, 3, 1, 7],
        ..Default::default()
    };
    let nodes = vec![node("ScatterND", "sn", &["x", "i", "u"], &["y"], vec![])];
    let m = model(
        13,
        nodes,
        vec![fixed("x", &[8])],
        &["y"],
        vec![idx, init_f32("u", &[4], &[9.0, 10.0, 11.0, 12.0])],
    );
    let x: Vec<f32> = (1..=8).map(|v| v as f32).collect();
    assert_eq!(
        run_f32(&m, &[(&[8], &x)]).1,
        vec![1.0, 11.0, 3.0, 10.0, 9.0, 6.0, 7.0, 12.0]
    );

    // GatherND example 2 of the docs: data [[0, 1], [2, 3]], indices [[1], [0]] → [[2, 3], [0, 1]].
    let idx = TensorProto {
        name: "i".into(),
        data_type: DataType::Int64 as i32,
        dims: vec![2, 1],
        int64_data: vec![1, 0],
        ..Default::default()
    };
    let nodes = vec![node("GatherND", "gn", &["x", "i"], &["y"], vec![])];
    let m = model(13, nodes, vec![fixed("x", &[2, 2])], &["y"], vec![idx]);
    assert_eq!(
        run_f32(&m, &[(&[2, 2], &[0.0, 1.0, 2.0, 3.0])]),
        (vec![2, 2], vec![2.0, 3.0, 0.0, 1.0])
    );
}

#[test]
fn cumsum_and_topk() {
    let axis0 = TensorProto {
        name: "a".into(),
        data_type: DataType::Int64 as i32,
        int64_data: vec![0],
        ..Default::default()
    };
    let nodes = vec![node(
        "CumSum",
        "cs",
        &["x", "a"],
        &["y"],
        vec![int("exclusive", 1), int("reverse", 1)],
    )];
    let m = model(14, nodes, vec![fixed("x", &[3])], &["y"], vec![axis0]);
    // ONNX docs: exclusive + reverse of [1, 2, 3] is [5, 3, 0].
    assert_eq!(
        run_f32(&m, &[(&[3], &[1.0, 2.0, 3.0])]).1,
        vec![5.0, 3.0, 0.0]
    );

    let nodes = vec![node(
        "TopK",
        "tk",
        &["x", "k"],
        &["values", "indices"],
        vec![],
    )];
    let m = model(
        11,
        nodes,
        vec![fixed("x", &[4])],
        &["indices", "values"],
        vec![init_i64("k", &[2])],
    );
    let p = load_ok(&m);
    assert_eq!(p.main().block.outputs, vec!["indices", "values"]);
    assert_eq!(p.main().outputs()[0].ty.dtype, DType::I32);
    assert_eq!(
        run_f32(&m, &[(&[4], &[3.0, 9.0, 1.0, 5.0])]),
        (vec![2], vec![1.0, 3.0])
    );
}

#[test]
fn arg_reduce_select_last_index_picks_the_last_tie() {
    for (op, data, want) in [
        (
            "ArgMax",
            [1.0, 3.0, 3.0, 2.0, 5.0, 5.0, 0.0, 5.0],
            [2.0, 3.0],
        ),
        (
            "ArgMin",
            [1.0, 0.0, 0.0, 2.0, 4.0, 4.0, 4.0, 9.0],
            [2.0, 2.0],
        ),
    ] {
        let attrs = vec![
            int("axis", -1),
            int("keepdims", 0),
            int("select_last_index", 1),
        ];
        let nodes = vec![node(op, "am", &["x"], &["y"], attrs)];
        let m = model(13, nodes, vec![fixed("x", &[2, 4])], &["y"], vec![]);
        assert_eq!(
            run_f32(&m, &[(&[2, 4], &data)]),
            (vec![2], want.to_vec()),
            "{op}"
        );
    }
}

#[test]
fn layer_norm_mean_and_inv_std_dev_outputs() {
    let x: &[f32] = &[1.0, 2.0, 3.0, 4.0];
    for (outputs, want) in [
        (["mean", "inv"], 2.5),
        // 1 / sqrt(var 1.25 + epsilon 1e-5).
        (["inv", "mean"], 0.894_423_6),
    ] {
        let nodes = vec![node(
            "LayerNormalization",
            "ln",
            &["x", "gamma"],
            &["y", "mean", "inv"],
            vec![int("axis", 1)],
        )];
        let inits = vec![init_f32("gamma", &[4], &[1.0; 4])];
        let m = model(17, nodes, vec![fixed("x", &[1, 4])], &outputs, inits);
        let (shape, v) = run_f32(&m, &[(&[1, 4], x)]);
        assert_eq!(shape, vec![1, 1]);
        assert!((v[0] - want).abs() < 1e-6, "{outputs:?}: {v:?}");
    }
}

#[test]
fn batch_and_instance_norm_with_statistics_given_at_run_time() {
    let nodes = vec![node(
        "BatchNormalization",
        "bn",
        &["x", "s", "b", "m", "v"],
        &["y"],
        vec![],
    )];
    let inits = vec![
        init_f32("s", &[2], &[2.0, 1.0]),
        init_f32("b", &[2], &[1.0, 0.0]),
        init_f32("v", &[2], &[4.0 - 1e-5, 1.0 - 1e-5]),
    ];
    let inputs = vec![fixed("x", &[1, 2, 1]), fixed("m", &[2])];
    let m = model(15, nodes, inputs, &["y"], inits);
    assert!(!op_types(load_ok(&m).main()).contains(&"batch_norm"));
    // (5 - 1) / 2 * 2 + 1 = 5; (1 + 1) / 1 * 1 + 0 = 2.
    let (shape, v) = run_f32(&m, &[(&[1, 2, 1], &[5.0, 1.0]), (&[2], &[1.0, -1.0])]);
    assert_eq!(shape, vec![1, 2, 1]);
    assert!(
        (v[0] - 5.0).abs() < 1e-5 && (v[1] - 2.0).abs() < 1e-5,
        "{v:?}"
    );

    let nodes = vec![node(
        "InstanceNormalization",
        "in",
        &["x", "g", "b"],
        &["y"],
        vec![],
    )];
    let inputs = vec![fixed("x", &[1, 1, 4]), fixed("g", &[1])];
    let m = model(6, nodes, inputs, &["y"], vec![init_f32("b", &[1], &[1.0])]);
    let (shape, v) = run_f32(&m, &[(&[1, 1, 4], &[1.0, 2.0, 3.0, 4.0]), (&[1], &[2.0])]);
    assert_eq!(shape, vec![1, 1, 4]);
    // (x - 2.5) / sqrt(1.25 + 1e-5) * 2 + 1.
    for (got, want) in v
        .iter()
        .zip([-1.683_270_8, 0.105_576_4, 1.894_423_6, 3.683_270_8])
    {
        assert!((got - want).abs() < 1e-5, "{v:?}");
    }
}

#[test]
fn layer_norm_with_a_run_time_scale_multiplies_after_normalizing() {
    let nodes = vec![node(
        "LayerNormalization",
        "ln",
        &["x", "gamma", "beta"],
        &["y"],
        vec![int("axis", 1)],
    )];
    let inputs = vec![fixed("x", &[1, 4]), fixed("gamma", &[4])];
    let inits = vec![init_f32("beta", &[4], &[1.0; 4])];
    let m = model(17, nodes, inputs, &["y"], inits);
    assert_eq!(
        op_types(load_ok(&m).main()),
        vec!["layer_norm", "mul", "add"]
    );
    let x: &[f32] = &[1.0, 2.0, 3.0, 4.0];
    let (shape, v) = run_f32(&m, &[(&[1, 4], x), (&[4], &[2.0, 2.0, 0.0, 1.0])]);
    assert_eq!(shape, vec![1, 4]);
    // (x - 2.5) / sqrt(1.25 + 1e-5) * gamma + 1.
    for (got, want) in v.iter().zip([-1.683_270_8, 0.105_576_4, 1.0, 2.341_635_4]) {
        assert!((got - want).abs() < 1e-5, "{v:?}");
    }
}

#[test]
fn mod_with_fmod_takes_the_sign_of_the_dividend() {
    let nodes = vec![node("Mod", "m", &["x", "y"], &["z"], vec![int("fmod", 1)])];
    let inputs = vec![fixed("x", &[4]), fixed("y", &[4])];
    let m = model(13, nodes, inputs, &["z"], vec![]);
    // C fmod: fmod(-7, 3) = -1, fmod(7, -3) = 1, fmod(-6, 3) = -0, fmod(5.5, 2) = 1.5.
    let x: &[f32] = &[-7.0, 7.0, -6.0, 5.5];
    let (shape, v) = run_f32(&m, &[(&[4], x), (&[4], &[3.0, -3.0, 3.0, 2.0])]);
    assert_eq!((shape, v), (vec![4], vec![-1.0, 1.0, 0.0, 1.5]));
}

/// A float attribute.
fn float_attr(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Float as i32,
        f: v,
        ..Default::default()
    }
}

/// Runs a one-input, one-node model on `x` of `shape`.
fn run_unary(op: &str, attrs: Vec<AttributeProto>, shape: &[usize], x: &[f32]) -> Vec<f32> {
    let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    let m = model(
        18,
        vec![node(op, "n", &["x"], &["y"], attrs)],
        vec![fixed("x", &dims)],
        &["y"],
        vec![],
    );
    run_f32(&m, &[(shape, x)]).1
}

/// Asserts two float slices agree to a relative 1e-5.
fn assert_near(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= 1e-5 * w.abs().max(1.0),
            "{got:?} vs {want:?}"
        );
    }
}

/// An int64 scalar initializer.
fn init_i64_scalar(name: &str, v: i64) -> TensorProto {
    TensorProto {
        name: name.into(),
        data_type: DataType::Int64 as i32,
        int64_data: vec![v],
        ..Default::default()
    }
}

mod composite_activation;
mod einsum;
mod elementwise;
mod exporter_idioms;
mod freeze;
mod group_norm;
mod image_ops;
mod shape_ops;
mod tensor_ops;

#[test]
fn integer_div_truncates_toward_zero_like_onnx() {
    use crate::interp::{run, RunOptions, Value};
    let nodes = vec![node("Div", "div", &["x", "d"], &["y"], vec![])];
    let m = model(
        13,
        nodes,
        vec![value("x", DataType::Int64, &[D::N(6)])],
        &["y"],
        vec![init_i64("d", &[3, -3, 3, -3, 2, -2])],
    );
    let p = load_ok(&m);
    crate::ir::validate_program(&p).unwrap();
    let x =
        ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[6]), vec![7, 7, -7, -7, -4, 4]).unwrap();
    let inputs =
        std::collections::BTreeMap::from([(p.main().inputs[0].name.clone(), Value::Int(x))]);
    let outs = run(p.main(), &inputs, RunOptions::default()).unwrap();
    // C-style truncation: 7/3=2, 7/-3=-2, -7/3=-2, -7/-3=2, exact -4/2=-2 and 4/-2=-2.
    assert_eq!(
        outs[0].1.int().unwrap().iter().copied().collect::<Vec<_>>(),
        vec![2, -2, -2, 2, -2, -2]
    );
}

#[test]
fn cast_to_float16_keeps_the_rounding() {
    let nodes = vec![node(
        "Cast",
        "c",
        &["x"],
        &["y"],
        vec![int("to", DataType::Float16 as i64)],
    )];
    let m = model(13, nodes, vec![fixed("x", &[3])], &["y"], vec![]);
    // 1 + 2^-12 rounds to 1 in fp16; 65520 overflows to inf; 0.1 becomes 0.0999755859375.
    let (_, v) = run_f32(&m, &[(&[3], &[1.0 + 2f32.powi(-12), 65520.0, 0.1])]);
    assert_eq!(v, vec![1.0, f32::INFINITY, 0.099975586]);
}

#[test]
fn bool_inputs_and_outputs_are_int32_features_drawn_as_masks() {
    use crate::interp::{run, RunOptions, Value};
    use crate::verify::roles::{input_roles, Role};
    let bools = |name| value(name, DataType::Bool, &[D::N(4)]);
    let m = model(
        13,
        vec![node("Xor", "xor", &["a", "b"], &["y"], vec![])],
        vec![bools("a"), bools("b")],
        &["y"],
        vec![],
    );
    let p = load_ok(&m);
    crate::ir::validate_program(&p).unwrap();
    let f = p.main();
    let feature_types: Vec<DType> = f
        .inputs
        .iter()
        .map(|v| v.ty.dtype)
        .chain(f.outputs().iter().map(|o| o.ty.dtype))
        .collect();
    assert_eq!(feature_types, vec![DType::I32; 3]);
    let roles: Vec<Role> = input_roles(f, &Default::default())
        .into_iter()
        .map(|r| r.role)
        .collect();
    assert_eq!(roles, vec![Role::Mask, Role::Mask]);
    // Non-zero reads as true, as a cast to bool does.
    let ints = |v: Vec<i32>| Value::Int(ndarray::ArrayD::from_shape_vec(vec![4], v).unwrap());
    let values = [
        ("a".to_string(), ints(vec![0, 1, 0, 7])),
        ("b".to_string(), ints(vec![0, 0, 1, 1])),
    ]
    .into();
    let outs = run(f, &values, RunOptions::default()).unwrap();
    match &outs[0].1 {
        Value::Int(y) => assert_eq!(y.iter().copied().collect::<Vec<_>>(), vec![0, 1, 1, 0]),
        other => panic!("expected an int32 output, got {other:?}"),
    }
}
