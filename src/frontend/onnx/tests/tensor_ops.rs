//! Tests of the `Trilu` converter, with values computed by hand from the ONNX definition.

use super::*;

#[test]
fn trilu_zeroes_outside_the_band() {
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let y = run_unary("Trilu", vec![], &[3, 3], &x);
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
