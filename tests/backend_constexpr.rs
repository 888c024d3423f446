//! Constexpr (compressed-weight) ops through the package writer and reader: parameters as
//! attributes at iOS16/17, as input bindings at iOS18, blob rules for their payloads.

use mlpack::backend::{read_package, write_package};
use mlpack::interp::{run, RunOptions, Value};
use mlpack::ir::{
    infer_op, validate_program, Argument, Block, DType, Function, Operation, Program, Target,
    Tensor, TensorType, Var,
};
use mlpack::proto::coreml::{model, Model};
use prost::Message;
use std::collections::BTreeMap;

/// A constexpr op producing `out`, its parameters attributes (`as_inputs` false) or inline
/// input values.
fn constexpr(op_type: &str, out: &str, params: Vec<(&str, Tensor)>, as_inputs: bool) -> Operation {
    let mut op = Operation {
        op_type: op_type.into(),
        name: out.into(),
        inputs: Vec::new(),
        outputs: Vec::new(),
        attributes: BTreeMap::new(),
        origin: None,
    };
    for (p, t) in params {
        if as_inputs {
            op.inputs.push((p.into(), vec![Argument::Value(t)]));
        } else {
            op.attributes.insert(p.into(), t);
        }
    }
    let types = infer_op(&op, &|_| None).unwrap();
    op.outputs = vec![Var::new(out, types[0].clone())];
    op
}

/// `y = linear(x[2, 8], weight)` where `weight` ([4, 8] fp32) is made by `ops`.
fn program(target: Target, ops: Vec<Operation>) -> Program {
    let x = Var::new("x", TensorType::fixed(DType::F32, &[2, 8]));
    let weight = ops.last().unwrap().outputs[0].name.clone();
    let linear = Operation {
        op_type: "linear".into(),
        name: "y".into(),
        inputs: vec![
            ("x".into(), vec![Argument::Var("x".into())]),
            ("weight".into(), vec![Argument::Var(weight)]),
        ],
        outputs: vec![Var::new("y", TensorType::fixed(DType::F32, &[2, 4]))],
        attributes: BTreeMap::new(),
        origin: None,
    };
    let mut operations = ops;
    operations.push(linear);
    Program {
        target,
        functions: vec![Function {
            name: "main".into(),
            inputs: vec![x],
            states: Vec::new(),
            input_shapes: Default::default(),
            block: Block {
                operations,
                outputs: vec!["y".into()],
            },
        }],
        metadata: BTreeMap::new(),
        description: Default::default(),
    }
}

fn u(dtype: DType, shape: &[usize], v: impl Iterator<Item = i64>) -> Tensor {
    Tensor::from_i64_as(dtype, shape, &v.collect::<Vec<_>>())
}

/// Every compression op in the form of `target`, each feeding a linear layer.
fn cases(target: Target) -> Vec<(&'static str, Vec<Operation>)> {
    let ios18 = target >= Target::IOS18;
    let mut cases = vec![(
        "cast",
        vec![constexpr(
            "constexpr_cast",
            "w",
            vec![
                (
                    "source_val",
                    Tensor::from_f32(&[4, 8], &[0.25; 32]).cast(DType::F16),
                ),
                ("output_dtype", Tensor::scalar_string("fp32")),
            ],
            ios18,
        )],
    )];
    if ios18 {
        cases.push((
            "lut_to_dense",
            vec![constexpr(
                "constexpr_lut_to_dense",
                "w",
                vec![
                    ("indices", u(DType::U2, &[4, 8], (0..32).map(|i| i % 4))),
                    (
                        "lut",
                        Tensor::from_f32(&[2, 1, 4, 1], &[0., 1., 2., 3., 4., 5., 6., 7.]),
                    ),
                ],
                true,
            )],
        ));
        cases.push((
            "sparse_to_dense",
            vec![constexpr(
                "constexpr_sparse_to_dense",
                "w",
                vec![
                    ("nonzero_data", Tensor::from_f32(&[16], &[1.5; 16])),
                    ("mask", u(DType::U1, &[4, 8], (0..32).map(|i| i % 2))),
                ],
                true,
            )],
        ));
        cases.push((
            "blockwise_shift_scale",
            vec![constexpr(
                "constexpr_blockwise_shift_scale",
                "w",
                vec![
                    ("data", u(DType::I4, &[4, 8], (0..32).map(|i| i % 16 - 8))),
                    ("scale", Tensor::from_f32(&[4, 2], &[0.5; 8])),
                    ("offset", u(DType::I4, &[4, 2], (0..8).map(|i| i - 4))),
                ],
                true,
            )],
        ));
        // Joint: a quantized LUT, bound by name into lut_to_dense.
        let lut = constexpr(
            "constexpr_blockwise_shift_scale",
            "lut_q",
            vec![
                ("data", u(DType::I8, &[1, 1, 16, 1], 0..16)),
                ("scale", Tensor::from_f32(&[1, 1, 1, 1], &[0.125])),
            ],
            true,
        );
        let mut dense = constexpr(
            "constexpr_lut_to_dense",
            "w",
            vec![
                ("indices", u(DType::U4, &[4, 8], (0..32).map(|i| i % 16))),
                ("lut", Tensor::from_f32(&[1, 1, 16, 1], &[0.0; 16])),
            ],
            true,
        );
        dense.inputs[1].1 = vec![Argument::Var("lut_q".into())];
        cases.push(("joint", vec![lut, dense]));
    } else {
        cases.push((
            "affine_dequantize",
            vec![constexpr(
                "constexpr_affine_dequantize",
                "w",
                vec![
                    (
                        "quantized_data",
                        u(DType::I8, &[4, 8], (0..32).map(|i| i - 16)),
                    ),
                    ("zero_point", u(DType::I8, &[4], 0..4)),
                    ("scale", Tensor::from_f32(&[4], &[0.5, 1.0, 2.0, 4.0])),
                    ("axis", Tensor::scalar_i32(0)),
                ],
                false,
            )],
        ));
        cases.push((
            "lut_to_dense",
            vec![constexpr(
                "constexpr_lut_to_dense",
                "w",
                vec![
                    ("indices", u(DType::U8, &[16], (0..16).map(|i| i * 7 % 256))),
                    ("lut", Tensor::from_f32(&[16], &[0.5; 16])),
                    ("shape", Tensor::from_u32(&[2], &[4, 8])),
                ],
                false,
            )],
        ));
        cases.push((
            "sparse_to_dense",
            vec![constexpr(
                "constexpr_sparse_to_dense",
                "w",
                vec![
                    ("nonzero_data", Tensor::from_f32(&[16], &[1.5; 16])),
                    (
                        "mask",
                        u(DType::U8, &[4], [0x55u8; 4].iter().map(|&b| b as i64)),
                    ),
                    ("shape", Tensor::from_u32(&[2], &[4, 8])),
                ],
                false,
            )],
        ));
    }
    cases
}

#[test]
fn constexpr_ops_round_trip_in_both_forms() {
    for target in [Target::IOS16, Target::IOS17, Target::IOS18] {
        for (name, ops) in cases(target) {
            let program = program(target, ops);
            validate_program(&program).unwrap_or_else(|e| panic!("{name} at {target}: {e}"));
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("c.mlpackage");
            write_package(&program, &dest, false).unwrap();
            let back = read_package(&dest).unwrap();
            assert_eq!(back, program, "{name} at {target}");
            let model_path = dest.join("Data/com.apple.CoreML/model.mlmodel");
            let model = Model::decode(&std::fs::read(model_path).unwrap()[..]).unwrap();
            let Some(model::Type::MlProgram(p)) = model.r#type else {
                panic!()
            };
            let block = &p.functions["main"].block_specializations[target.opset()];
            for op in block
                .operations
                .iter()
                .filter(|o| o.r#type.starts_with("constexpr_"))
            {
                if target >= Target::IOS18 {
                    assert_eq!(
                        op.attributes.len(),
                        1,
                        "{name}: only 'name' stays an attribute"
                    );
                    assert!(!op.inputs.is_empty());
                } else {
                    assert!(op.inputs.is_empty(), "{name}: no inputs before iOS18");
                    assert!(op.attributes.len() > 1);
                }
            }
            let x = ndarray::ArrayD::from_elem(ndarray::IxDyn(&[2, 8]), 1.0f32);
            let inputs = BTreeMap::from([("x".to_string(), Value::Float(x))]);
            run(back.main(), &inputs, RunOptions::default()).unwrap();
        }
    }
}

#[test]
fn each_form_is_kept_to_its_targets() {
    let ios18_cases = cases(Target::IOS18);
    let (_, ops) = &ios18_cases[1];
    let e = validate_program(&program(Target::IOS17, ops.clone())).unwrap_err();
    assert!(e.message.contains("attribute before iOS18"), "{e}");
    let ios16_cases = cases(Target::IOS16);
    let (_, ops) = &ios16_cases[2];
    let e = validate_program(&program(Target::IOS18, ops.clone())).unwrap_err();
    assert!(e.message.contains("input from iOS18"), "{e}");
}
