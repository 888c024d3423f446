//! Tests of `CenterCropPad`, `Compress` and `OneHot` with constant parameters (the node suite
//! feeds those as run-time inputs), against outputs computed by ONNX Runtime 1.23.

use super::*;

/// A constant bool tensor of `dims`.
fn init_bool(name: &str, dims: &[i64], values: &[bool]) -> TensorProto {
    TensorProto {
        name: name.into(),
        data_type: DataType::Bool as i32,
        dims: dims.to_vec(),
        int32_data: values.iter().map(|&b| b as i32).collect(),
        ..Default::default()
    }
}

#[test]
fn center_crop_pad_crops_and_pads_around_the_centre() {
    let m = model(
        18,
        vec![node("CenterCropPad", "n", &["x", "shape"], &["y"], vec![])],
        vec![fixed("x", &[5, 4])],
        &["y"],
        vec![init_i64("shape", &[3, 7])],
    );
    let x: Vec<f32> = (0..20).map(|v| v as f32).collect();
    let (shape, y) = run_f32(&m, &[(&[5, 4], &x)]);
    assert_eq!(shape, vec![3, 7]);
    #[rustfmt::skip]
    let want = [
        0.0, 4.0, 5.0, 6.0, 7.0, 0.0, 0.0,
        0.0, 8.0, 9.0, 10.0, 11.0, 0.0, 0.0,
        0.0, 12.0, 13.0, 14.0, 15.0, 0.0, 0.0,
    ];
    assert_eq!(y, want);
}

#[test]
fn compress_gathers_the_selected_slices() {
    let x: Vec<f32> = (0..6).map(|v| v as f32).collect();
    let along_axis = model(
        11,
        vec![node(
            "Compress",
            "n",
            &["x", "c"],
            &["y"],
            vec![int("axis", 0)],
        )],
        vec![fixed("x", &[3, 2])],
        &["y"],
        vec![init_bool("c", &[3], &[true, false, true])],
    );
    assert_eq!(
        run_f32(&along_axis, &[(&[3, 2], &x)]),
        (vec![2, 2], vec![0.0, 1.0, 4.0, 5.0])
    );
    // Without an axis the input is flattened; a shorter condition leaves out the rest.
    let flat = model(
        11,
        vec![node("Compress", "n", &["x", "c"], &["y"], vec![])],
        vec![fixed("x", &[3, 2])],
        &["y"],
        vec![init_bool("c", &[5], &[false, true, true, false, true])],
    );
    assert_eq!(
        run_f32(&flat, &[(&[3, 2], &x)]),
        (vec![3], vec![1.0, 2.0, 4.0])
    );
    // Selecting nothing would need an empty tensor.
    let none = model(
        11,
        vec![node(
            "Compress",
            "n",
            &["x", "c"],
            &["y"],
            vec![int("axis", 1)],
        )],
        vec![fixed("x", &[3, 2])],
        &["y"],
        vec![init_bool("c", &[2], &[false, false])],
    );
    let err = load_with(&none, &OnnxOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
}

#[test]
fn one_hot_marks_indices_from_either_end_and_leaves_others_off() {
    use crate::interp::{run, RunOptions, Value};
    let m = model(
        11,
        vec![node(
            "OneHot",
            "n",
            &["i", "depth", "values"],
            &["y"],
            vec![int("axis", 1)],
        )],
        vec![value("i", DataType::Int64, &[D::N(2), D::N(2)])],
        &["y"],
        vec![
            init_i64_scalar("depth", 10),
            init_f32("values", &[2], &[2.0, 5.0]),
        ],
    );
    let p = load_ok(&m);
    crate::ir::validate_program(&p).unwrap();
    let i = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[2, 2]), vec![1, -9, 12, 0]).unwrap();
    let inputs =
        std::collections::BTreeMap::from([(p.main().inputs[0].name.clone(), Value::Int(i))]);
    let outs = run(p.main(), &inputs, RunOptions::default()).unwrap();
    let y = outs[0].1.to_f32_array().unwrap();
    assert_eq!(y.shape(), &[2, 10, 2]);
    // Index 1 and -9 (= 1) are on at position 1; 12 is out of range; 0 is on at 0.
    let mut want = vec![2.0; 40];
    for at in [2, 3, 21] {
        want[at] = 5.0;
    }
    assert_eq!(y.iter().copied().collect::<Vec<_>>(), want);

    // A run-time depth cannot size the new axis.
    let runtime_depth = model(
        11,
        vec![node(
            "OneHot",
            "n",
            &["i", "depth", "values"],
            &["y"],
            vec![],
        )],
        vec![
            value("i", DataType::Int64, &[D::N(2)]),
            value("depth", DataType::Int64, &[]),
        ],
        &["y"],
        vec![init_f32("values", &[2], &[0.0, 1.0])],
    );
    let err = load_with(&runtime_depth, &OnnxOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("input 'depth' must be a constant"),
        "{err}"
    );
}
