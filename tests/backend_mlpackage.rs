//! `.mlpackage` writer and reader: round trips, determinism, the on-disk mapping, safe
//! replacement of an existing package, and errors on corrupt packages.

use half::f16;
use mlpack::backend::{read_package, write_package};
use mlpack::ir::{Argument, Builder, DType, Operation, Program, Target, Tensor, TensorType, Var};
use mlpack::proto::coreml::mil_spec as mil;
use mlpack::proto::coreml::{feature_type, model, Model};
use mlpack::Error;
use prost::Message;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

const MODEL: &str = "Data/com.apple.CoreML/model.mlmodel";
const WEIGHTS: &str = "Data/com.apple.CoreML/weights/weight.bin";

/// `z = (x + w) + 1.5` on a [4, 5] fp32 input, where `w` (20 elements) goes to weight.bin.
fn small_program(target: Target) -> Program {
    let x = Var::new("x", TensorType::fixed(DType::F32, &[4, 5]));
    let mut b = Builder::new("main", vec![x]);
    let w = b.constant(
        "w",
        Tensor::from_f32(
            &[4, 5],
            &(0..20).map(|i| i as f32 / 8.0).collect::<Vec<_>>(),
        ),
    );
    let y = b.op1("add", "y", &[("x", &["x"]), ("y", &[&w])]).unwrap();
    let s = b.constant("s", Tensor::scalar_f32(1.5));
    let z = b.op1("add", "z", &[("x", &[&y]), ("y", &[&s])]).unwrap();
    let function = b.finish(vec![z]);
    Program {
        target,
        functions: vec![function],
        metadata: BTreeMap::from([(
            "com.github.apple.coremltools.source".into(),
            "mlpack".into(),
        )]),
        description: Default::default(),
    }
}

/// A constant of every dtype, blob-sized and immediate, plus inline value bindings.
fn every_constant_program(target: Target) -> Program {
    let mut program = small_program(target);
    let mut extra: Vec<Tensor> = vec![
        Tensor::from_f16(
            &[3, 4],
            &(0..12)
                .map(|i| f16::from_f32(i as f32 - 5.5))
                .collect::<Vec<_>>(),
        ),
        Tensor::from_f16(&[2], &[f16::from_f32(0.5), f16::from_f32(-1.0)]),
        Tensor::from_f64(&[2], &[0.1, 1e300]),
        Tensor::from_i64(&[3], &[-1, 0, 1 << 40]),
        Tensor::from_u64(&[1], &[u64::MAX]),
        Tensor::from_i32(&[12], &(0..12).map(|i| i * 1000 - 7).collect::<Vec<_>>()),
        Tensor::vec_i32(&[1, -2]),
        Tensor::from_i16(&[10], &[-300, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
        Tensor::from_u16(&[2], &[65535, 3]),
        Tensor::from_u32(&[11], &(0..11).map(|i| i * 0x0101_0101).collect::<Vec<_>>()),
        Tensor::from_u32(&[1], &[7]),
        Tensor::from_byte_elements(
            DType::I8,
            &[10],
            (0..10).map(|i| (i as i8 - 5) as u8).collect(),
        ),
        Tensor::from_byte_elements(DType::U8, &[3], vec![0, 128, 255]),
        Tensor::from_bool(&[3], &[true, false, true]),
        Tensor::from_strings(&[2], vec!["same".into(), "valid".into()]),
        Tensor::scalar_string("pad_type"),
        Tensor::from_f32(&[2, 0], &[]),
        Tensor::scalar_i32(-3),
    ];
    let sub_byte: [(DType, usize, i64); 7] = [
        (DType::I4, 21, -8),
        (DType::U4, 21, 0),
        (DType::U3, 13, 0),
        (DType::U2, 10, 0),
        (DType::U1, 11, 0),
        (DType::U6, 12, 0),
        (DType::U1, 3, 0),
    ];
    for (dtype, n, low) in sub_byte {
        let span = 1i64 << dtype.bits();
        let values: Vec<i64> = (0..n as i64).map(|i| low + (i * 7 + 3) % span).collect();
        extra.push(Tensor::from_i64_as(dtype, &[n], &values));
    }
    let block = &mut program.main_mut().block;
    for (i, t) in extra.into_iter().enumerate() {
        block
            .operations
            .push(Operation::constant(format!("c{i}"), t));
    }
    // An op whose second argument is bound by value (as iOS18 constexpr ops do), big enough
    // for weight.bin, placed before the block's output op.
    let bias = Tensor::from_f32(&[4, 5], &(0..20).map(|i| -(i as f32)).collect::<Vec<_>>());
    let inline = Operation {
        op_type: "add".into(),
        name: "inline_add".into(),
        inputs: vec![
            ("x".into(), vec![Argument::Var("x".into())]),
            ("y".into(), vec![Argument::Value(bias)]),
        ],
        outputs: vec![Var::new(
            "inline_add",
            TensorType::fixed(DType::F32, &[4, 5]),
        )],
        attributes: BTreeMap::new(),
        origin: None,
    };
    block.operations.insert(1, inline);
    block.outputs.push("inline_add".into());
    program
}

fn files_under(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.insert(path.strip_prefix(root).unwrap().to_path_buf(), Vec::new());
                stack.push(path);
            } else {
                out.insert(
                    path.strip_prefix(root).unwrap().to_path_buf(),
                    fs::read(&path).unwrap(),
                );
            }
        }
    }
    out
}

fn decode_model(package: &Path) -> Model {
    Model::decode(&fs::read(package.join(MODEL)).unwrap()[..]).unwrap()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn round_trip_gives_the_same_program() {
    for target in Target::ALL {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("every.mlpackage");
        let program = every_constant_program(target);
        write_package(&program, &dest, false).unwrap();
        let back = read_package(&dest).unwrap();
        assert_eq!(back, program, "target {target}");
    }
}

#[test]
fn writes_the_coremltools_layout() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("small.mlpackage");
    write_package(&small_program(Target::IOS16), &dest, false).unwrap();
    assert_eq!(names_in(&dest), ["Data", "Manifest.json"]);
    assert_eq!(
        names_in(&dest.join("Data/com.apple.CoreML")),
        ["model.mlmodel", "weights"]
    );
    let weights = fs::read(dest.join(WEIGHTS)).unwrap();
    // One fp32 blob of 20 elements: header, record at 64, payload at 128, no trailing padding.
    assert_eq!(weights.len(), 128 + 80);
    assert_eq!(weights[0..8], [1, 0, 0, 0, 2, 0, 0, 0]);

    let model = decode_model(&dest);
    assert_eq!(model.specification_version, 7);
    let description = model.description.unwrap();
    assert_eq!(description.input[0].name, "x");
    let Some(feature_type::Type::MultiArrayType(x)) = description.input[0]
        .r#type
        .as_ref()
        .unwrap()
        .r#type
        .as_ref()
    else {
        panic!("x is not a multi-array");
    };
    assert_eq!((x.shape.as_slice(), x.data_type), (&[4, 5][..], 65568));
    assert_eq!(description.output[0].name, "z");
    assert_eq!(
        description.metadata.unwrap().user_defined["com.github.apple.coremltools.source"],
        "mlpack"
    );

    let Some(model::Type::MlProgram(program)) = model.r#type else {
        panic!("not an ML program")
    };
    assert_eq!(program.version, 1);
    let main = &program.functions["main"];
    assert_eq!(main.opset, "CoreML6");
    let block = &main.block_specializations["CoreML6"];
    assert_eq!(block.outputs, ["z"]);
    let types: Vec<&str> = block
        .operations
        .iter()
        .map(|op| op.r#type.as_str())
        .collect();
    assert_eq!(types, ["const", "add", "const", "add"]);
    let w = &block.operations[0];
    let Some(mil::value::Value::BlobFileValue(blob)) = &w.attributes["val"].value else {
        panic!("w is not a blob")
    };
    assert_eq!(
        (blob.file_name.as_str(), blob.offset),
        ("@model_path/weights/weight.bin", 64)
    );
    let s = &block.operations[2];
    assert!(matches!(
        s.attributes["val"].value,
        Some(mil::value::Value::ImmediateValue(_))
    ));
    let add = &block.operations[1];
    assert_eq!(read_back_string(&add.attributes["name"]), "y");
    let bound: Vec<_> = add.inputs["y"]
        .arguments
        .iter()
        .map(|a| a.binding.clone())
        .collect();
    assert_eq!(
        bound,
        [Some(mil::argument::binding::Binding::Name("w".into()))]
    );
    assert_eq!(add.outputs[0].name, "y");
}

fn read_back_string(v: &mil::Value) -> &str {
    match &v.value {
        Some(mil::value::Value::ImmediateValue(mil::value::ImmediateValue {
            value:
                Some(mil::value::immediate_value::Value::Tensor(mil::TensorValue {
                    value: Some(mil::tensor_value::Value::Strings(s)),
                })),
        })) => &s.values[0],
        other => panic!("not a string immediate: {other:?}"),
    }
}

#[test]
fn no_blobs_gives_an_empty_weights_directory() {
    let x = Var::new("x", TensorType::fixed(DType::F32, &[2]));
    let mut b = Builder::new("main", vec![x]);
    let y = b.op1("add", "y", &[("x", &["x"]), ("y", &["x"])]).unwrap();
    let program = Program::new(Target::IOS15, vec![b.finish(vec![y])]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("tiny.mlpackage");
    write_package(&program, &dest, false).unwrap();
    assert!(names_in(&dest.join("Data/com.apple.CoreML/weights")).is_empty());
    assert_eq!(read_package(&dest).unwrap(), program);
}

#[test]
fn same_program_gives_byte_identical_packages() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        dir.path().join("a/m.mlpackage"),
        dir.path().join("b/m.mlpackage"),
    );
    fs::create_dir_all(a.parent().unwrap()).unwrap();
    fs::create_dir_all(b.parent().unwrap()).unwrap();
    let program = every_constant_program(Target::IOS18);
    write_package(&program, &a, false).unwrap();
    write_package(&program, &b, false).unwrap();
    // The 20-element value bound to a plain op's input stays immediate.
    let Some(model::Type::MlProgram(mil_program)) = decode_model(&a).r#type else {
        panic!()
    };
    let inline = &mil_program.functions["main"].block_specializations["CoreML8"].operations[1];
    let Some(mil::argument::binding::Binding::Value(bias)) =
        &inline.inputs["y"].arguments[0].binding
    else {
        panic!("inline_add.y is not bound by value")
    };
    assert!(matches!(
        bias.value,
        Some(mil::value::Value::ImmediateValue(_))
    ));
    let (fa, fb) = (files_under(&a), files_under(&b));
    assert_eq!(fa.len(), 6, "{:?}", fa.keys());
    assert_eq!(fa, fb);
    // A different program gets different item identifiers.
    let c = dir.path().join("c.mlpackage");
    write_package(&small_program(Target::IOS18), &c, false).unwrap();
    assert_ne!(
        fs::read(c.join("Manifest.json")).unwrap(),
        fa[Path::new("Manifest.json")]
    );
}

#[test]
fn refuses_an_existing_destination_unless_overwriting() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("m.mlpackage");
    write_package(&small_program(Target::IOS15), &dest, false).unwrap();
    let before = files_under(&dest);
    let err = write_package(&small_program(Target::IOS16), &dest, false).unwrap_err();
    assert!(
        matches!(&err, Error::Usage(m) if m.ends_with("m.mlpackage exists; pass --force to replace it")),
        "{err}"
    );
    assert_eq!(files_under(&dest), before);
    write_package(&small_program(Target::IOS16), &dest, true).unwrap();
    assert_eq!(read_package(&dest).unwrap().target, Target::IOS16);
    assert_eq!(names_in(dir.path()), ["m.mlpackage"]);
    let err = write_package(
        &small_program(Target::IOS16),
        &dir.path().join("m.pkg"),
        false,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Usage(m) if m.contains("must end in .mlpackage")));
}

#[test]
fn failure_leaves_no_temp_dir_and_keeps_the_old_package() {
    // A const op that also carries a `name` attribute passes validation but cannot be
    // encoded; the failure comes after weight.bin has been started.
    let mut program = small_program(Target::IOS15);
    let mut bad = Operation::constant("bad", Tensor::scalar_f32(0.0));
    bad.attributes
        .insert("name".into(), Tensor::scalar_string("clash"));
    program.main_mut().block.operations.push(bad);

    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("m.mlpackage");
    let err = write_package(&program, &dest, false).unwrap_err();
    assert!(matches!(err, Error::Internal(_)), "{err}");
    assert!(names_in(dir.path()).is_empty());

    write_package(&small_program(Target::IOS15), &dest, false).unwrap();
    let before = files_under(&dest);
    assert!(matches!(
        write_package(&program, &dest, true),
        Err(Error::Internal(_))
    ));
    assert_eq!(names_in(dir.path()), ["m.mlpackage"]);
    assert_eq!(files_under(&dest), before);
}

#[test]
fn invalid_programs_are_internal_errors() {
    let mut program = small_program(Target::IOS15);
    program.main_mut().block.outputs.push("nowhere".into());
    let dir = tempfile::tempdir().unwrap();
    let err = write_package(&program, &dir.path().join("m.mlpackage"), false).unwrap_err();
    assert!(
        matches!(&err, Error::Internal(m) if m.contains("nowhere")),
        "{err}"
    );
    assert!(names_in(dir.path()).is_empty());
}

/// Writes the small program and returns (temp dir, package path).
fn written() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("m.mlpackage");
    write_package(&small_program(Target::IOS15), &dest, false).unwrap();
    (dir, dest)
}

fn assert_invalid(err: Error, file: &str, needle: &str) {
    match &err {
        Error::Invalid { path, message } => {
            assert!(path.ends_with(file), "{err}");
            assert!(message.contains(needle), "{err}");
        }
        other => panic!("expected an Invalid error about {file}, got {other}"),
    }
}

#[test]
fn corrupt_packages_are_invalid_naming_the_file() {
    let (_dir, dest) = written();
    let model = fs::read(dest.join(MODEL)).unwrap();
    fs::write(dest.join(MODEL), &model[..model.len() - 1]).unwrap();
    assert_invalid(
        read_package(&dest).unwrap_err(),
        "model.mlmodel",
        "not a Core ML model",
    );

    let (_dir, dest) = written();
    let mut weights = fs::read(dest.join(WEIGHTS)).unwrap();
    weights[64..68].copy_from_slice(&[0, 0, 0, 0]);
    fs::write(dest.join(WEIGHTS), &weights).unwrap();
    assert_invalid(
        read_package(&dest).unwrap_err(),
        "weight.bin",
        "bad sentinel",
    );

    let (_dir, dest) = written();
    let weights = fs::read(dest.join(WEIGHTS)).unwrap();
    fs::write(dest.join(WEIGHTS), &weights[..150]).unwrap();
    assert_invalid(
        read_package(&dest).unwrap_err(),
        "weight.bin",
        "runs past the end",
    );

    let (_dir, dest) = written();
    fs::remove_file(dest.join(WEIGHTS)).unwrap();
    assert_invalid(read_package(&dest).unwrap_err(), "weight.bin", "missing");

    let (_dir, dest) = written();
    fs::remove_file(dest.join("Manifest.json")).unwrap();
    assert_invalid(read_package(&dest).unwrap_err(), "Manifest.json", "missing");

    let (_dir, dest) = written();
    fs::write(dest.join("Manifest.json"), "{").unwrap();
    assert_invalid(
        read_package(&dest).unwrap_err(),
        "Manifest.json",
        "not valid JSON",
    );
}

#[test]
fn inconsistent_models_are_reported() {
    let (_dir, dest) = written();
    let mut model = decode_model(&dest);
    let Some(model::Type::MlProgram(program)) = &mut model.r#type else {
        panic!()
    };
    let block = program
        .functions
        .get_mut("main")
        .unwrap()
        .block_specializations
        .get_mut("CoreML5")
        .unwrap();
    block.operations[1].inputs.get_mut("y").unwrap().arguments[0].binding =
        Some(mil::argument::binding::Binding::Name("undefined".into()));
    fs::write(dest.join(MODEL), model.encode_to_vec()).unwrap();
    assert_invalid(
        read_package(&dest).unwrap_err(),
        "model.mlmodel",
        "'undefined' is not defined",
    );

    let (_dir, dest) = written();
    let mut model = decode_model(&dest);
    let Some(model::Type::MlProgram(program)) = &mut model.r#type else {
        panic!()
    };
    let block = program
        .functions
        .get_mut("main")
        .unwrap()
        .block_specializations
        .get_mut("CoreML5")
        .unwrap();
    block.operations[1].r#type = "frobnicate".into();
    block.operations[3].r#type = "frobnicate".into();
    fs::write(dest.join(MODEL), model.encode_to_vec()).unwrap();
    let err = read_package(&dest).unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { message, .. } if message.ends_with("support: frobnicate (2)")),
        "{err}"
    );

    let (_dir, dest) = written();
    let mut model = decode_model(&dest);
    let Some(model::Type::MlProgram(program)) = &mut model.r#type else {
        panic!()
    };
    let main = program.functions["main"].clone();
    program.functions.insert("other".into(), main);
    fs::write(dest.join(MODEL), model.encode_to_vec()).unwrap();
    assert_invalid(
        read_package(&dest).unwrap_err(),
        "model.mlmodel",
        "2 functions (main, other) but the description lists none",
    );

    let (_dir, dest) = written();
    let mut model = decode_model(&dest);
    model.description.as_mut().unwrap().input[0]
        .r#type
        .as_mut()
        .unwrap()
        .r#type = Some(feature_type::Type::ImageType(Default::default()));
    fs::write(dest.join(MODEL), model.encode_to_vec()).unwrap();
    let err = read_package(&dest).unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { message, .. }
            if message.contains("image input 'x' has color space INVALID_COLOR_SPACE")),
        "{err}"
    );
}

/// conv → relu → reshape → linear on a [1, 3, 8, 8] input; with `fp16` the body runs in fp16
/// between two casts, with fp16 weights.
fn conv_net(target: Target, fp16: bool) -> Program {
    let x = Var::new("x", TensorType::fixed(DType::F32, &[1, 3, 8, 8]));
    let mut b = Builder::new("main", vec![x]);
    let dt = if fp16 { DType::F16 } else { DType::F32 };
    let weight = |b: &mut Builder, hint: &str, shape: &[usize]| {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|i| ((i * 37) % 11) as f32 / 11.0 - 0.5)
            .collect();
        b.constant(hint, Tensor::from_f32(shape, &values).cast(dt))
    };
    let mut h = "x".to_string();
    if fp16 {
        let to = b.constant("to_fp16", Tensor::scalar_string("fp16"));
        h = b
            .op1("cast", "x_fp16", &[("x", &[&h]), ("dtype", &[&to])])
            .unwrap();
    }
    let w = weight(&mut b, "conv_weight", &[4, 3, 3, 3]);
    let bias = weight(&mut b, "conv_bias", &[4]);
    let strides = b.constant("strides", Tensor::vec_i32(&[1, 1]));
    let pad_type = b.constant("pad_type", Tensor::scalar_string("custom"));
    let pad = b.constant("pad", Tensor::vec_i32(&[1, 1, 1, 1]));
    let dilations = b.constant("dilations", Tensor::vec_i32(&[1, 1]));
    let groups = b.constant("groups", Tensor::scalar_i32(1));
    let conv_inputs: [(&str, &[&str]); 8] = [
        ("x", &[&h]),
        ("weight", &[&w]),
        ("bias", &[&bias]),
        ("strides", &[&strides]),
        ("pad_type", &[&pad_type]),
        ("pad", &[&pad]),
        ("dilations", &[&dilations]),
        ("groups", &[&groups]),
    ];
    let c = b.op1("conv", "conv", &conv_inputs).unwrap();
    let r = b.op1("relu", "relu", &[("x", &[&c])]).unwrap();
    let shape = b.constant("flat_shape", Tensor::vec_i32(&[1, 256]));
    let f = b
        .op1("reshape", "flat", &[("x", &[&r]), ("shape", &[&shape])])
        .unwrap();
    let lw = weight(&mut b, "fc_weight", &[10, 256]);
    let lb = weight(&mut b, "fc_bias", &[10]);
    let mut y = b
        .op1(
            "linear",
            "fc",
            &[("x", &[&f]), ("weight", &[&lw]), ("bias", &[&lb])],
        )
        .unwrap();
    if fp16 {
        let to = b.constant("to_fp32", Tensor::scalar_string("fp32"));
        y = b
            .op1("cast", "y", &[("x", &[&y]), ("dtype", &[&to])])
            .unwrap();
    }
    Program {
        target,
        functions: vec![b.finish(vec![y])],
        metadata: BTreeMap::new(),
        description: Default::default(),
    }
}

#[test]
fn conv_nets_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    for target in Target::ALL {
        for fp16 in [false, true] {
            let program = conv_net(target, fp16);
            let dest = dir.path().join(format!("conv_{target}_{fp16}.mlpackage"));
            write_package(&program, &dest, false).unwrap();
            assert_eq!(
                read_package(&dest).unwrap(),
                program,
                "{target} fp16={fp16}"
            );
            // conv weight, fc weight (and fc bias, 10 elements) are blobs; conv bias is not.
            let blobs = u32::from_le_bytes(
                fs::read(dest.join(WEIGHTS)).unwrap()[..4]
                    .try_into()
                    .unwrap(),
            );
            assert_eq!(blobs, 3);
        }
    }
}

#[test]
fn unsupported_model_kinds_and_versions() {
    let (_dir, dest) = written();
    let mut model = decode_model(&dest);
    model.specification_version = 10;
    fs::write(dest.join(MODEL), model.encode_to_vec()).unwrap();
    let err = read_package(&dest).unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { message, .. } if message.contains("version 10")),
        "{err}"
    );

    // A model whose `Type` is not an ML program (e.g. a neural network, field 500, which
    // mlpack's schema does not even name) decodes with no program.
    let (_dir, dest) = written();
    let mut model = decode_model(&dest);
    model.r#type = None;
    fs::write(dest.join(MODEL), model.encode_to_vec()).unwrap();
    let err = read_package(&dest).unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { message, .. } if message.contains("not an ML Program")),
        "{err}"
    );
}
