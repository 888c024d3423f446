//! Transformer fixtures converted for iOS18 carry one `scaled_dot_product_attention` per
//! attention block (no `softmax` left), and their outputs, run by the reference interpreter
//! from the written package, still match the ONNX Runtime outputs saved with the fixture
//! (tolerances as in `tests/models.rs`: fp32 max error ≤ 1e-4 × scale; fp16, emulated,
//! max error ≤ 3e-2 × scale and cosine ≥ 0.999).

mod common;

use common::fixtures::Fixture;
use mlpack::backend::{read_package, write_package};
use mlpack::interp::{run, RunOptions, Value};
use mlpack::ir::{Builder, DType, Program, Target, Tensor, TensorType, Var};
use mlpack::pipeline::{self, ConvertOptions, Precision};
use std::collections::BTreeMap;

/// Attention blocks in each transformer fixture (its ONNX `Softmax` nodes).
const BLOCKS: usize = 2;

fn check(case: &str) {
    let fx = Fixture::load("models", case);
    let dir = common::packages::package_dir(&format!("attention_fusion_{case}"));
    for precision in [Precision::Fp32, Precision::Fp16] {
        let out = dir.join(format!("{case}_{precision:?}.mlpackage"));
        let report = pipeline::convert(&ConvertOptions {
            describe: Default::default(),
            input: fx.model_path(),
            output: out.clone(),
            precision,
            mixed: Default::default(),
            target: Target::IOS18,
            input_shapes: Default::default(),
            force: false,
            states: Vec::new(),
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
        assert_eq!(
            report.fusion.counts.get("scaled_dot_product_attention"),
            Some(&BLOCKS)
        );

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

/// A causal block with a padding mask (constant causal condition applied by `select` with
/// the fp32 minimum, padding by `select` with -inf): the fused package, whose
/// `scaled_dot_product_attention` takes an additive mask built from both, is written where
/// CI checks it with coremltools, read back, and computes what the unfused program does.
#[test]
fn masked_attention_package_round_trips() {
    let (h, l, e) = (4, 6, 8);
    let ty = |shape: &[usize]| TensorType::fixed(DType::F32, shape);
    let inputs = vec![
        Var::new("q", ty(&[1, h, l, e])),
        Var::new("k", ty(&[1, h, l, e])),
        Var::new("v", ty(&[1, h, l, e])),
        Var::new("padding", ty(&[1, 1, 1, l])),
    ];
    let mut b = Builder::new("main", inputs.clone());
    let future: Vec<bool> = (0..l * l).map(|i| i % l > i / l).collect();
    let future = b.constant("future", Tensor::from_bool(&[l, l], &future));
    let yes = b.constant("yes", Tensor::scalar_bool(true));
    let s = b
        .op1(
            "matmul",
            "scores",
            &[("x", &["q"]), ("y", &["k"]), ("transpose_y", &[&yes])],
        )
        .unwrap();
    let c = b.constant("c", Tensor::scalar_f32(0.25));
    let s = b
        .op1("mul", "scaled", &[("x", &[&s]), ("y", &[&c])])
        .unwrap();
    let min = b.constant("min", Tensor::scalar_f32(f32::MIN));
    let s = b
        .op1(
            "select",
            "causal",
            &[("cond", &[&future]), ("a", &[&min]), ("b", &[&s])],
        )
        .unwrap();
    let zero = b.constant("zero", Tensor::scalar_f32(0.0));
    let keep = b
        .op1("greater", "keep", &[("x", &["padding"]), ("y", &[&zero])])
        .unwrap();
    let ninf = b.constant("ninf", Tensor::scalar_f32(f32::NEG_INFINITY));
    let s = b
        .op1(
            "select",
            "padded",
            &[("cond", &[&keep]), ("a", &[&s]), ("b", &[&ninf])],
        )
        .unwrap();
    let p = b.op1("softmax", "probs", &[("x", &[&s])]).unwrap();
    let out = b
        .op1("matmul", "out", &[("x", &[&p]), ("y", &["v"])])
        .unwrap();
    let source = Program::new(Target::IOS18, vec![b.finish(vec![out])]);
    let mut fused = source.clone();
    let report = mlpack::passes::fusion::fuse(&mut fused);
    assert_eq!(report.counts.get("scaled_dot_product_attention"), Some(&1));
    let path = common::packages::package_dir("attention_fusion_masked").join("masked.mlpackage");
    write_package(&fused, &path, false).unwrap();
    let written = read_package(&path).unwrap();
    let sdpa: Vec<_> = written
        .main()
        .block
        .operations
        .iter()
        .filter(|op| op.op_type == "scaled_dot_product_attention")
        .collect();
    assert_eq!(sdpa.len(), 1);
    assert!(sdpa[0].input("attn_mask").is_some());

    // Padding masks the first key position for every query.
    let feeds: BTreeMap<String, Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let shape = v.ty.static_shape().unwrap();
            let n: usize = shape.iter().product();
            let values: Vec<f32> = if v.name == "padding" {
                (0..n).map(|j| if j == 0 { -1.0 } else { 1.0 }).collect()
            } else {
                (0..n)
                    .map(|j| ((j * 7 + i * 13) % 17) as f32 / 8.0 - 1.0)
                    .collect()
            };
            (
                v.name.clone(),
                Value::from_tensor(&Tensor::from_f32(&shape, &values)),
            )
        })
        .collect();
    let want = run(source.main(), &feeds, RunOptions::default()).unwrap();
    let got = run(written.main(), &feeds, RunOptions::default()).unwrap();
    let (want, got) = (want[0].1.float().unwrap(), got[0].1.float().unwrap());
    // Row 0 attends to no key (causal keeps key 0 only, padding masks it): the source's
    // select gives it uniform weights over the fp32-minimum scores, and so does the fused
    // additive mask; every row must agree.
    for (w, g) in want.iter().zip(got.iter()) {
        assert!(
            w.is_finite() && (w - g).abs() <= 1e-5,
            "fused {g} vs source {w}"
        );
    }
}
