//! Tests of `AffineGrid`, `Col2Im`, `Det`, `LpPool`, `LRN` and `MaxUnpool` on cases the node
//! suite leaves out (constant parameters, other `p`, 3×3 matrices, refusals), against outputs
//! computed by ONNX Runtime 1.23.

use super::*;

#[test]
fn affine_grid_maps_pixel_centres_or_corners() {
    let theta = [0.5, -1.0, 0.25, 2.0, 0.5, -0.5];
    let want = [
        (
            0,
            [
                0.41666666,
                -2.0833335,
                0.75,
                -0.75,
                1.0833334,
                0.5833334,
                -0.5833334,
                -1.5833334,
                -0.25,
                -0.25,
                0.083_333_34,
                1.0833334,
            ],
        ),
        (
            1,
            [
                0.75, -3.0, 1.25, -1.0, 1.75, 1.0, -1.25, -2.0, -0.75, 0.0, -0.25, 2.0,
            ],
        ),
    ];
    for (align, want) in want {
        let m = model(
            20,
            vec![node(
                "AffineGrid",
                "n",
                &["theta", "size"],
                &["y"],
                vec![int("align_corners", align)],
            )],
            vec![fixed("theta", &[1, 2, 3])],
            &["y"],
            vec![init_i64("size", &[1, 1, 2, 3])],
        );
        let (shape, y) = run_f32(&m, &[(&[1, 2, 3], &theta)]);
        assert_eq!(shape, vec![1, 2, 3, 2]);
        assert_near(&y, &want);
    }
}

/// A Col2Im case: input shape, image shape, attributes, expected output.
type Col2ImCase<'a> = (&'a [i64], &'a [i64], Vec<AttributeProto>, &'a [f32]);

#[test]
fn col2im_adds_overlapping_blocks_back() {
    let cases: [Col2ImCase; 2] = [
        (
            &[1, 4, 8],
            &[4, 5],
            vec![ints("strides", &[2, 1])],
            &[
                0.0, 9.0, 11.0, 13.0, 11.0, 16.0, 41.0, 43.0, 45.0, 27.0, 4.0, 17.0, 19.0, 21.0,
                15.0, 20.0, 49.0, 51.0, 53.0, 31.0,
            ],
        ),
        (
            &[1, 4, 9],
            &[3, 3],
            vec![ints("pads", &[1, 0, 0, 1])],
            &[21.0, 62.0, 66.0, 27.0, 74.0, 78.0, 24.0, 58.0, 60.0],
        ),
    ];
    for (in_shape, image, attrs, want) in cases {
        let m = model(
            18,
            vec![node("Col2Im", "n", &["x", "image", "block"], &["y"], attrs)],
            vec![fixed("x", in_shape)],
            &["y"],
            vec![init_i64("image", image), init_i64("block", &[2, 2])],
        );
        let dims: Vec<usize> = in_shape.iter().map(|&d| d as usize).collect();
        let x: Vec<f32> = (0..dims.iter().product::<usize>())
            .map(|v| v as f32)
            .collect();
        let (shape, y) = run_f32(&m, &[(&dims, &x)]);
        assert_eq!(
            shape,
            [vec![1, 1], image.iter().map(|&d| d as usize).collect()].concat()
        );
        assert_eq!(y, want);
    }
}

#[test]
fn det_of_3x3_matrices_by_cofactors() {
    let x = [
        2.0, -1.0, 0.5, 1.0, 3.0, 2.0, 0.0, 1.0, 4.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0,
    ];
    let m = model(
        11,
        vec![node("Det", "n", &["x"], &["y"], vec![])],
        vec![fixed("x", &[2, 3, 3])],
        &["y"],
        vec![],
    );
    let (shape, y) = run_f32(&m, &[(&[2, 3, 3], &x)]);
    assert_eq!(shape, vec![2]);
    assert_near(&y, &[24.5, -2.9999988]);
}

#[test]
fn lp_pool_takes_any_p() {
    let x = [
        1.0, -2.0, 3.0, 0.5, 2.0, 1.0, -1.0, 4.0, 0.0, 3.0, 2.0, -2.0,
    ];
    for (p, want) in [
        (1, [6.0, 7.0, 8.5, 6.0, 7.0, 9.0]),
        (
            3,
            [
                2.6207414, 3.332222, 4.5164013, 3.3019273, 3.332222, 4.326_749,
            ],
        ),
    ] {
        let y = run_unary(
            "LpPool",
            vec![ints("kernel_shape", &[2, 2]), int("p", p)],
            &[1, 1, 3, 4],
            &x,
        );
        assert_near(&y, &want);
    }
}

#[test]
fn lrn_with_an_even_size_is_unsupported() {
    let m = model(
        13,
        vec![node("LRN", "n", &["x"], &["y"], vec![int("size", 2)])],
        vec![fixed("x", &[1, 4, 2, 2])],
        &["y"],
        vec![],
    );
    let err = load_with(&m, &OnnxOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
}

#[test]
fn max_unpool_refuses_an_output_shape_beyond_the_unpooled_one() {
    let m = model(
        11,
        vec![node(
            "MaxUnpool",
            "n",
            &["x", "i", "shape"],
            &["y"],
            vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])],
        )],
        vec![
            fixed("x", &[1, 1, 2, 2]),
            value("i", DataType::Int64, &[D::N(1), D::N(1), D::N(2), D::N(2)]),
        ],
        &["y"],
        vec![init_i64("shape", &[1, 1, 5, 5])],
    );
    let err = load_with(&m, &OnnxOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
}
