//! Tests of the `Einsum` converter, with values computed by hand.

use super::*;

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
