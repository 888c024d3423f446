//! Fusion on fixture models: the transformer (GELU via erf; a decomposed LayerNorm at opset
//! 13, `LayerNormalization` at 17), efficientnet_b0 (SiLU as sigmoid · x) and the torchvision
//! CNNs (BatchNormalization after each Conv, global pooling then Flatten) convert in fp32 and
//! fp16 to packages holding the fused ops and none of their pieces, whose outputs still match
//! the ONNX Runtime outputs saved with the fixture (tolerances as in tests/models.rs).

mod common;

use common::fixtures::Fixture;
use mlpack::interp::RunOptions;
use mlpack::ir::Target;
use mlpack::pipeline::{self, ConvertOptions, Precision};
use std::collections::BTreeMap;

/// Converts `case` at `precision` into `dir`, checks its outputs against ORT's and returns the
/// report's op counts and fusion counts.
fn convert(
    case: &str,
    precision: Precision,
    dir: &std::path::Path,
) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let fx = Fixture::load("models", case);
    let out = dir.join(format!("{case}_{precision:?}.mlpackage"));
    let report = pipeline::convert(&ConvertOptions {
        describe: Default::default(),
        input: fx.model_path(),
        output: out.clone(),
        precision,
        mixed: Default::default(),
        target: Target::IOS17,
        input_shapes: Default::default(),
        force: false,
        states: Vec::new(),
        verify: None,
    })
    .unwrap();
    let run = RunOptions {
        emulate_fp16: precision == Precision::Fp16,
    };
    let outputs = pipeline::run_package(&out, &fx.input_files(), run).unwrap();
    let (tol, min_cos) = match precision {
        Precision::Fp32 => (1e-4, 0.999_999),
        _ => (3e-2, 0.999),
    };
    for ((name, ours), (_, file)) in outputs.iter().zip(fx.output_files()) {
        let reference = mlpack::npy::parse(&std::fs::read(file).unwrap()).unwrap();
        let (a, b) = (
            ours.to_f32_array().unwrap(),
            reference.to_f32_array().unwrap(),
        );
        assert_eq!(a.shape(), b.shape(), "{case}/{name}");
        let (mut max_abs, mut scale, mut dot, mut na, mut nb) = (0f64, 1e-3f64, 0f64, 0f64, 0f64);
        for (&x, &y) in a.iter().zip(b.iter()) {
            let (x, y) = (x as f64, y as f64);
            max_abs = max_abs.max((x - y).abs());
            scale = scale.max(y.abs());
            dot += x * y;
            na += x * x;
            nb += y * y;
        }
        let cosine = dot / (na.sqrt() * nb.sqrt()).max(1e-30);
        println!("{case}/{name} {precision:?}: max abs {max_abs:.3e} (scale {scale:.3e}), cosine {cosine:.7}");
        assert!(
            max_abs <= tol * scale && cosine >= min_cos,
            "{case}/{name} {precision:?} differs from ONNX Runtime"
        );
    }
    let summary = match pipeline::inspect(&out, false, false).unwrap() {
        pipeline::InspectReport::Package(p) => p,
        other => panic!("not a package: {other:?}"),
    };
    assert_eq!(
        summary.fused.as_deref(),
        Some(report.fusion.to_string().as_str())
    );
    (report.ops, report.fusion.counts)
}

#[test]
fn transformer_converts_with_gelu_layer_norm_and_linear() {
    let dir = common::packages::package_dir("fusion_transformer");
    for case in ["transformer_op13", "transformer_op17"] {
        for precision in [Precision::Fp32, Precision::Fp16] {
            let (ops, fused) = convert(case, precision, &dir);
            let count = |t: &str| ops.get(t).copied().unwrap_or(0);
            assert_eq!(count("erf"), 0, "{case}: {ops:?}");
            assert_eq!(count("gelu"), 2, "{case}: {ops:?}");
            assert_eq!(count("layer_norm"), 5, "{case}: {ops:?}");
            for piece in ["reduce_mean", "sqrt", "rsqrt", "pow"] {
                assert_eq!(count(piece), 0, "{case}: {piece} left: {ops:?}");
            }
            assert_eq!(fused.get("gelu"), Some(&2), "{case}: {fused:?}");
            let norms = if case.ends_with("13") { Some(&5) } else { None };
            assert_eq!(fused.get("layer_norm"), norms, "{case}: {fused:?}");
        }
    }
}

#[test]
fn efficientnet_converts_with_silu() {
    let dir = common::packages::package_dir("fusion_efficientnet");
    for precision in [Precision::Fp32, Precision::Fp16] {
        let (ops, fused) = convert("efficientnet_b0_op17", precision, &dir);
        assert_eq!(ops.get("silu"), Some(&49), "{ops:?}");
        assert_eq!(fused.get("silu"), Some(&49), "{fused:?}");
        // The squeeze-excitation gates stay sigmoid · y (y is not the sigmoid's input).
        assert_eq!(ops.get("sigmoid"), Some(&16), "{ops:?}");
        assert_eq!(ops.get("batch_norm"), None, "{ops:?}");
        assert_eq!(fused.get("conv_batch_norm"), Some(&49), "{fused:?}");
        assert_eq!(ops.get("conv"), Some(&81), "{ops:?}");
    }
}

#[test]
fn cnns_fold_every_batch_norm_into_its_conv() {
    let dir = common::packages::package_dir("fusion_cnn");
    // torchvision's architectures: (convolutions, of which followed by BatchNorm).
    for (case, convs, norms) in [
        ("resnet18_op17", 20, 20),
        ("mobilenet_v3_small_op13", 52, 34),
    ] {
        for precision in [Precision::Fp32, Precision::Fp16] {
            let (ops, fused) = convert(case, precision, &dir);
            assert_eq!(ops.get("batch_norm"), None, "{case}: {ops:?}");
            assert_eq!(ops.get("conv"), Some(&convs), "{case}: {ops:?}");
            assert_eq!(
                fused.get("conv_batch_norm"),
                Some(&norms),
                "{case}: {fused:?}"
            );
            // The pooled features are flattened by the reduction itself.
            assert_eq!(fused.get("reduce"), Some(&1), "{case}: {fused:?}");
            assert_eq!(ops.get("reshape"), None, "{case}: {ops:?}");
        }
    }
}
