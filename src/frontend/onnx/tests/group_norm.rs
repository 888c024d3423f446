//! Tests of the `GroupNormalization` converter, with values computed by hand from the ONNX
//! definition (opset 18 and 21 scale and bias differently).

use super::*;

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
