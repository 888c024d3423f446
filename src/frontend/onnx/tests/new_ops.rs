//! Tests of the converters for `Selu`, `Celu`, `ThresholdedRelu`, `Shrink`, `Mish`, `Hardmax`,
//! `Mean`, `Size`, `CastLike` and `Trilu`, with values computed by hand from the ONNX
//! definitions.

use super::*;

fn float_attr(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Float as i32,
        f: v,
        ..Default::default()
    }
}

/// Runs a one-input, one-node model on `x` of `shape`.
fn unary(op: &str, attrs: Vec<AttributeProto>, shape: &[usize], x: &[f32]) -> Vec<f32> {
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

fn assert_near(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= 1e-5 * w.abs().max(1.0),
            "{got:?} vs {want:?}"
        );
    }
}

#[test]
fn selu_and_celu_follow_their_formulas() {
    let x = [-1.0, 0.0, 2.0];
    // Selu(alpha=2, gamma=3): 3 * 2 * (e^-1 - 1), 0, 3 * 2.
    let attrs = vec![float_attr("alpha", 2.0), float_attr("gamma", 3.0)];
    let e = (-1.0f32).exp();
    assert_near(
        &unary("Selu", attrs, &[3], &x),
        &[6.0 * (e - 1.0), 0.0, 6.0],
    );
    // Celu(alpha=2): 2 * (e^(-1/2) - 1), 0, 2.
    let y = unary("Celu", vec![float_attr("alpha", 2.0)], &[3], &x);
    assert_near(&y, &[2.0 * ((-0.5f32).exp() - 1.0), 0.0, 2.0]);
}

#[test]
fn thresholded_relu_drops_values_equal_to_alpha() {
    let y = unary(
        "ThresholdedRelu",
        vec![float_attr("alpha", 2.0)],
        &[4],
        &[1.0, 2.0, 2.5, -3.0],
    );
    assert_eq!(y, vec![0.0, 0.0, 2.5, 0.0]);
}

#[test]
fn shrink_subtracts_or_adds_bias_outside_lambda() {
    let attrs = vec![float_attr("lambd", 1.5), float_attr("bias", 1.0)];
    let y = unary("Shrink", attrs, &[5], &[-2.0, -1.5, 0.0, 1.5, 3.0]);
    assert_eq!(y, vec![-1.0, 0.0, 0.0, 0.0, 2.0]);
}

#[test]
fn mish_is_x_tanh_softplus() {
    let y = unary("Mish", vec![], &[2], &[0.0, 1.0]);
    // tanh(ln(1 + e)) = ((1 + e)^2 - 1) / ((1 + e)^2 + 1).
    let s = (1.0 + 1.0f32.exp()).powi(2);
    assert_near(&y, &[0.0, (s - 1.0) / (s + 1.0)]);
}

#[test]
fn hardmax_marks_the_first_maximum() {
    // Opset 13+: along the last axis; ties go to the first index.
    let y = unary("Hardmax", vec![], &[2, 3], &[3.0, 1.0, 3.0, 0.0, 5.0, 2.0]);
    assert_eq!(y, vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    let y = unary(
        "Hardmax",
        vec![int("axis", 0)],
        &[2, 3],
        &[3.0, 1.0, 3.0, 0.0, 5.0, 2.0],
    );
    assert_eq!(y, vec![1.0, 0.0, 1.0, 0.0, 1.0, 0.0]);
}

#[test]
fn hardmax_before_opset_13_flattens_from_axis() {
    // Axis 1 of a [1, 2, 2]: one hardmax over all four values.
    let m = model(
        11,
        vec![node("Hardmax", "n", &["x"], &["y"], vec![int("axis", 1)])],
        vec![fixed("x", &[1, 2, 2])],
        &["y"],
        vec![],
    );
    let (shape, y) = run_f32(&m, &[(&[1, 2, 2], &[1.0, 4.0, 5.0, 2.0])]);
    assert_eq!(shape, vec![1, 2, 2]);
    assert_eq!(y, vec![0.0, 0.0, 1.0, 0.0]);
}

#[test]
fn mean_divides_the_broadcast_sum_by_the_count() {
    let m = model(
        13,
        vec![node("Mean", "n", &["a", "b", "c"], &["y"], vec![])],
        vec![fixed("a", &[2]), fixed("b", &[2]), fixed("c", &[1])],
        &["y"],
        vec![],
    );
    let (shape, y) = run_f32(
        &m,
        &[(&[2], &[1.0, 2.0]), (&[2], &[3.0, 4.0]), (&[1], &[5.0])],
    );
    assert_eq!(shape, vec![2]);
    assert_eq!(y, vec![3.0, 11.0 / 3.0]);
}

#[test]
fn size_counts_elements_of_a_static_shape() {
    let nodes = vec![
        node("Size", "s", &["x"], &["n"], vec![]),
        node("CastLike", "c", &["n", "x"], &["y"], vec![]),
    ];
    let m = model(15, nodes, vec![fixed("x", &[2, 3, 4])], &["y"], vec![]);
    let x = [0.0; 24];
    let (shape, y) = run_f32(&m, &[(&[2, 3, 4], &x)]);
    assert_eq!(shape, Vec::<usize>::new());
    assert_eq!(y, vec![24.0]);
}

/// A run-time value cast like an int64 tensor and back like the float input: two `cast` ops
/// that run (ONNX Cast from float to integer truncates toward zero).
#[test]
fn cast_like_casts_a_run_time_value_to_the_other_type() {
    let nodes = vec![
        node("CastLike", "to_int", &["x", "like"], &["i"], vec![]),
        node("CastLike", "to_float", &["i", "x"], &["y"], vec![]),
    ];
    let m = model(
        15,
        nodes,
        vec![fixed("x", &[5])],
        &["y"],
        vec![init_i64("like", &[7])],
    );
    let p = load_ok(&m);
    assert_eq!(op_types(p.main()), vec!["cast", "cast"]);
    let (shape, y) = run_f32(&m, &[(&[5], &[-1.7, -0.4, 0.4, 2.5, 3.9])]);
    assert_eq!(shape, vec![5]);
    assert_eq!(y, vec![-1.0, 0.0, 0.0, 2.0, 3.0]);
}

#[test]
fn trilu_zeroes_outside_the_band() {
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let y = unary("Trilu", vec![], &[3, 3], &x);
    assert_eq!(y, vec![1.0, 2.0, 3.0, 0.0, 5.0, 6.0, 0.0, 0.0, 9.0]);
    let m = model(
        14,
        vec![node(
            "Trilu",
            "n",
            &["x", "k"],
            &["y"],
            vec![int("upper", 0)],
        )],
        vec![fixed("x", &[2, 3])],
        &["y"],
        vec![init_i64_scalar("k", 1)],
    );
    let (_, y) = run_f32(&m, &[(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])]);
    assert_eq!(y, vec![1.0, 2.0, 0.0, 4.0, 5.0, 6.0]);
}

fn init_i64_scalar(name: &str, v: i64) -> TensorProto {
    TensorProto {
        name: name.into(),
        data_type: DataType::Int64 as i32,
        int64_data: vec![v],
        ..Default::default()
    }
}

#[test]
fn group_normalization_scales_per_group_in_opset_18_and_per_channel_from_21() {
    let run = |opset, groups, scale: &[f32], bias: &[f32]| {
        let n = scale.len() as i64;
        let m = model(
            opset,
            vec![node(
                "GroupNormalization",
                "g",
                &["x", "s", "b"],
                &["y"],
                vec![int("num_groups", groups), float_attr("epsilon", 0.0)],
            )],
            vec![fixed("x", &[1, 2, 2])],
            &["y"],
            vec![init_f32("s", &[n], scale), init_f32("b", &[n], bias)],
        );
        run_f32(&m, &[(&[1, 2, 2], &[1.0, 3.0, 2.0, 6.0])]).1
    };
    // Two groups of one channel: means 2 and 4, variances 1 and 4 → [-1, 1] each.
    let y = run(18, 2, &[2.0, 3.0], &[10.0, 20.0]);
    assert_near(&y, &[8.0, 12.0, 17.0, 23.0]);
    // One group: mean 3, variance 3.5; then per-channel scale and bias.
    let s = 3.5f32.sqrt();
    let y = run(21, 1, &[2.0, 3.0], &[10.0, 20.0]);
    let want = [
        -2.0 / s * 2.0 + 10.0,
        10.0,
        -1.0 / s * 3.0 + 20.0,
        3.0 / s * 3.0 + 20.0,
    ];
    assert_near(&y, &want);
}

#[test]
fn einsum_contracts_shared_labels() {
    let m = model(
        12,
        vec![node(
            "Einsum",
            "e",
            &["a", "b"],
            &["y"],
            vec![string("equation", "ij,kj->ik")],
        )],
        vec![fixed("a", &[2, 2]), fixed("b", &[1, 2])],
        &["y"],
        vec![],
    );
    // a · bᵀ: [1*5 + 2*6, 3*5 + 4*6].
    let (shape, y) = run_f32(
        &m,
        &[(&[2, 2], &[1.0, 2.0, 3.0, 4.0]), (&[1, 2], &[5.0, 6.0])],
    );
    assert_eq!(shape, vec![2, 1]);
    assert_eq!(y, vec![17.0, 39.0]);
}
