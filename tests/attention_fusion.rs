//! Transformer fixtures converted for iOS18 carry one `scaled_dot_product_attention` per
//! attention block (no `softmax` left), and their outputs, run by the reference interpreter
//! from the written package, still match the ONNX Runtime outputs saved with the fixture
//! (tolerances as in `tests/models.rs`: fp32 max error ≤ 1e-4 × scale; fp16, emulated,
//! max error ≤ 3e-2 × scale and cosine ≥ 0.999).

mod common;

use common::fixtures::Fixture;
use mlpack::interp::RunOptions;
use mlpack::ir::Target;
use mlpack::pipeline::{self, ConvertOptions, Precision};

/// Attention blocks in each transformer fixture (its ONNX `Softmax` nodes).
const BLOCKS: usize = 2;

fn check(case: &str) {
    let fx = Fixture::load("models", case);
    let dir = common::packages::package_dir(&format!("attention_fusion_{case}"));
    for precision in [Precision::Fp32, Precision::Fp16] {
        let out = dir.join(format!("{case}_{precision:?}.mlpackage"));
        let report = pipeline::convert(&ConvertOptions {
            input: fx.model_path(),
            output: out.clone(),
            precision,
            mixed: Default::default(),
            target: Target::IOS18,
            input_shapes: Vec::new(),
            force: false,
            verify: None,
        })
        .unwrap_or_else(|e| panic!("{case}: convert: {e}"));
        let count = |op: &str| report.ops.get(op).copied().unwrap_or(0);
        assert_eq!(
            count("scaled_dot_product_attention"),
            BLOCKS,
            "{:?}",
            report.ops
        );
        assert_eq!(count("softmax"), 0, "{:?}", report.ops);
        assert_eq!(report.fused.fused.get("attention"), Some(&BLOCKS));

        let run = RunOptions {
            emulate_fp16: precision == Precision::Fp16,
        };
        let outputs = pipeline::run_package(&out, &fx.input_files(), run)
            .unwrap_or_else(|e| panic!("{case}: run: {e}"));
        let expected = fx.output_files();
        assert_eq!(outputs.len(), expected.len());
        for ((name, got), (_, file)) in outputs.iter().zip(&expected) {
            let want = mlpack::npy::parse(&std::fs::read(file).unwrap()).unwrap();
            assert_eq!(got.shape(), want.shape(), "{case}/{name}");
            let (got, want) = (got.to_f32_array().unwrap(), want.to_f32_array().unwrap());
            let (mut max_abs, mut scale, mut dot, mut ng, mut nw) =
                (0f64, 1e-3f64, 0f64, 0f64, 0f64);
            for (&g, &w) in got.iter().zip(want.iter()) {
                let (g, w) = (g as f64, w as f64);
                assert!(g.is_finite(), "{case}/{name}: non-finite output {g}");
                max_abs = max_abs.max((g - w).abs());
                scale = scale.max(w.abs());
                dot += g * w;
                ng += g * g;
                nw += w * w;
            }
            let cosine = dot / (ng.sqrt() * nw.sqrt()).max(1e-30);
            println!("{case}/{name} {precision:?}: max abs err {max_abs:.3e} (scale {scale:.3e}), cosine {cosine:.7}");
            let (tol, min_cos) = match precision {
                Precision::Fp32 => (1e-4, 0.999_999),
                _ => (3e-2, 0.999),
            };
            assert!(
                max_abs <= tol * scale && cosine >= min_cos,
                "{case}/{name} {precision:?} differs from ONNX Runtime"
            );
        }
    }
}

#[test]
fn transformer_op13_fuses_every_attention_block() {
    check("transformer_op13");
}

#[test]
fn transformer_op17_fuses_every_attention_block() {
    check("transformer_op17");
}
