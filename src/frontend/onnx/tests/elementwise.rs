//! Tests of the elementwise converters `Mean` and `CastLike` (fed by `Size`), with values
//! computed by hand from the ONNX definitions.

use super::*;

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
