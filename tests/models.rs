//! Every fixture model converts to FP32 and FP16 packages whose outputs, run by the reference
//! interpreter, match ONNX Runtime's outputs saved with the fixture.
//!
//! Tolerances:
//! - FP32: max |ours − ORT| ≤ 1e-4 × scale, scale = max |ORT output| (at least 1e-3). Both
//!   compute in fp32; only summation order differs.
//! - FP16: weights are rounded to fp16 (relative error ≤ 2⁻¹¹ each) and, with fp16 emulation,
//!   every op's result is rounded to fp16 too. Each layer then adds about 2⁻¹¹ of relative
//!   error, which accumulates over depth L roughly as √L·2⁻¹¹·(condition of the net). We
//!   require max error ≤ 3e-2 × scale and cosine similarity ≥ 0.999 — far above what rounding
//!   explains for the depths here (≤ ~80 layers), yet an op mapped wrongly fails by orders of
//!   magnitude.

mod common;

use common::fixtures::Fixture;
use mlpack::interp::{RunOptions, Value};
use mlpack::ir::Target;
use mlpack::pipeline::{self, ConvertOptions, InputShapes, Precision};
use std::path::Path;

/// Error statistics of one output.
struct Diff {
    max_abs: f64,
    scale: f64,
    cosine: f64,
}

fn diff(ours: &Value, reference: &Value) -> Diff {
    assert_eq!(ours.shape(), reference.shape(), "output shapes differ");
    let a = ours.to_f32_array().unwrap();
    let b = reference.to_f32_array().unwrap();
    let (mut max_abs, mut scale, mut dot, mut na, mut nb) = (0f64, 0f64, 0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b.iter()) {
        let (x, y) = (x as f64, y as f64);
        assert!(x.is_finite(), "non-finite output value {x}");
        max_abs = max_abs.max((x - y).abs());
        scale = scale.max(y.abs());
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    let cosine = if na == 0.0 && nb == 0.0 {
        1.0
    } else {
        dot / (na.sqrt() * nb.sqrt()).max(1e-30)
    };
    Diff {
        max_abs,
        scale: scale.max(1e-3),
        cosine,
    }
}

fn read_npy(path: &Path) -> Value {
    mlpack::npy::parse(&std::fs::read(path).unwrap()).unwrap()
}

/// The `--input-shape` values a fixture with dynamic dims needs.
fn input_shapes(fx: &Fixture) -> InputShapes {
    InputShapes {
        inputs: fx
            .meta
            .input_shape_flags
            .iter()
            .map(|flag| flag.parse().expect("an --input-shape flag"))
            .collect(),
        dims: Vec::new(),
        frozen: Vec::new(),
    }
}

/// Converts `fx` at `precision`, runs it, and returns (output name, diff) per output.
fn convert_and_compare(
    fx: &Fixture,
    precision: Precision,
    dir: &Path,
) -> Result<Vec<(String, Diff)>, String> {
    let out = dir.join(format!("{}_{precision:?}.mlpackage", fx.case));
    let options = ConvertOptions {
        describe: Default::default(),
        input: fx.model_path(),
        output: out.clone(),
        precision,
        mixed: Default::default(),
        target: Target::IOS17,
        input_shapes: input_shapes(fx),
        force: false,
        states: Vec::new(),
        verify: None,
    };
    pipeline::convert(&options).map_err(|e| format!("{}: convert: {e}", fx.name()))?;
    let inputs = fx.input_files();
    let run = RunOptions {
        emulate_fp16: precision == Precision::Fp16,
    };
    let outputs = pipeline::run_package(&out, &inputs, run)
        .map_err(|e| format!("{}: run: {e}", fx.name()))?;
    let expected = fx.output_files();
    assert_eq!(outputs.len(), expected.len(), "{}: output count", fx.name());
    Ok(outputs
        .iter()
        .zip(&expected)
        .map(|((name, value), (_, file))| (name.clone(), diff(value, &read_npy(file))))
        .collect())
}

fn check_group(group: &str, precision: Precision) {
    let dir = common::packages::package_dir(&format!("models_{group}_{precision:?}"));
    let mut failures = Vec::new();
    for fx in Fixture::all(group) {
        let diffs = match convert_and_compare(&fx, precision, &dir) {
            Ok(d) => d,
            Err(e) => {
                println!("{e}");
                failures.push(e);
                continue;
            }
        };
        for (name, d) in diffs {
            let (tol, min_cos) = match precision {
                Precision::Fp32 => (1e-4, 0.999_999),
                Precision::Fp16 | Precision::Auto => (3e-2, 0.999),
            };
            let line = format!(
                "{}/{name} {precision:?}: max abs err {:.3e} (scale {:.3e}, rel {:.2e}), cosine {:.7}",
                fx.name(),
                d.max_abs,
                d.scale,
                d.max_abs / d.scale,
                d.cosine
            );
            println!("{line}");
            if d.max_abs > tol * d.scale || d.cosine < min_cos {
                failures.push(line);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "outputs differ from ONNX Runtime:\n{}",
        failures.join("\n")
    );
}

#[test]
fn models_match_onnx_runtime_in_fp32() {
    check_group("models", Precision::Fp32);
}

#[test]
fn models_match_onnx_runtime_in_fp16() {
    check_group("models", Precision::Fp16);
}

#[test]
fn op_cases_match_onnx_runtime_in_fp32() {
    check_group("ops", Precision::Fp32);
}

/// The recurrent fixtures take the path the README describes: MIL's `lstm`/`gru`/`rnn` where
/// they compute ONNX's function, the unrolled form (`matmul` per step) elsewhere. Their values
/// are checked against ONNX Runtime by the group tests above, in fp32 and (models) fp16.
#[test]
fn recurrent_fixtures_use_native_ops_where_they_fit() {
    use mlpack::frontend::onnx::{self, OnnxOptions};
    /// (group, case, the native op and how many, the fewest matmuls).
    type Case = (
        &'static str,
        &'static str,
        Option<(&'static str, usize)>,
        usize,
    );
    let cases: &[Case] = &[
        // Two bidirectional LSTM layers become `lstm`; torch's GRU (linear_before_reset=1)
        // unrolls over the 12 steps.
        ("models", "recurrent_op14", Some(("lstm", 2)), 12),
        ("ops", "lstm_bidirectional_peepholes", Some(("lstm", 1)), 0),
        ("ops", "lstm_reverse", Some(("lstm", 1)), 0),
        ("ops", "lstm_sequence_lens_clip", None, 10),
        ("ops", "gru_bidirectional", Some(("gru", 2)), 0),
        ("ops", "gru_linear_before_reset_reverse", None, 4),
        ("ops", "rnn_bidirectional_relu_tanh", Some(("rnn", 2)), 0),
        ("ops", "rnn_leaky_relu_alpha", None, 3),
    ];
    for &(group, case, native, matmuls) in cases {
        let fx = Fixture::load(group, case);
        let options = OnnxOptions {
            target: Target::IOS17,
            ..OnnxOptions::default()
        };
        let program = onnx::load(&fx.model_path(), &options).unwrap();
        let counts = program.main().op_counts();
        let recurrent: Vec<(&str, usize)> = counts
            .iter()
            .filter(|(op, _)| ["lstm", "gru", "rnn"].contains(&op.as_str()))
            .map(|(op, &n)| (op.as_str(), n))
            .collect();
        assert_eq!(
            recurrent,
            native.into_iter().collect::<Vec<_>>(),
            "{group}/{case}: {counts:?}"
        );
        assert!(
            counts.get("matmul").copied().unwrap_or(0) >= matmuls,
            "{group}/{case}: {counts:?}"
        );
    }
}
