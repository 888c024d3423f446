//! Tests of the converters for activations composed from several MIL ops (`Selu`, `Celu`,
//! `ThresholdedRelu`, `Shrink`, `Mish`, `Hardmax`), with values computed by hand from the ONNX
//! definitions.

use super::*;

#[test]
fn selu_and_celu_follow_their_formulas() {
    let x = [-1.0, 0.0, 2.0];
    // Selu(alpha=2, gamma=3): 3 * 2 * (e^-1 - 1), 0, 3 * 2.
    let attrs = vec![float_attr("alpha", 2.0), float_attr("gamma", 3.0)];
    let e = (-1.0f32).exp();
    assert_near(
        &run_unary("Selu", attrs, &[3], &x),
        &[6.0 * (e - 1.0), 0.0, 6.0],
    );
    // Celu(alpha=2): 2 * (e^(-1/2) - 1), 0, 2.
    let y = run_unary("Celu", vec![float_attr("alpha", 2.0)], &[3], &x);
    assert_near(&y, &[2.0 * ((-0.5f32).exp() - 1.0), 0.0, 2.0]);
}

#[test]
fn thresholded_relu_drops_values_equal_to_alpha() {
    let y = run_unary(
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
    let y = run_unary("Shrink", attrs, &[5], &[-2.0, -1.5, 0.0, 1.5, 3.0]);
    assert_eq!(y, vec![-1.0, 0.0, 0.0, 0.0, 2.0]);
}

#[test]
fn mish_is_x_tanh_softplus() {
    let y = run_unary("Mish", vec![], &[2], &[0.0, 1.0]);
    // tanh(ln(1 + e)) = ((1 + e)^2 - 1) / ((1 + e)^2 + 1).
    let s = (1.0 + 1.0f32.exp()).powi(2);
    assert_near(&y, &[0.0, (s - 1.0) / (s + 1.0)]);
}

#[test]
fn hardmax_marks_the_first_maximum() {
    // Opset 13+: along the last axis; ties go to the first index.
    let y = run_unary("Hardmax", vec![], &[2, 3], &[3.0, 1.0, 3.0, 0.0, 5.0, 2.0]);
    assert_eq!(y, vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    let y = run_unary(
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
