//! Issue 11's transformer fixtures (`fixtures/transformers/`: BERT-, GPT-2-, Llama- and
//! ViT-like models, each exported by the TorchScript exporter at opsets 13 and 17 and by the
//! dynamo exporter at opset 18) convert and match the ONNX Runtime outputs saved with them.
//!
//! Per case:
//! - fp32: every output has cosine similarity ≥ 0.9999 with ONNX Runtime's;
//! - default precision (fp16), run with fp16 emulation (every op's result rounded to fp16):
//!   cosine ≥ 0.999;
//! - BERT's sequence dim is symbolic (`seq`): converted at each stored length (16, 5 and 23
//!   tokens), the package matches ORT at that length; and converted once with
//!   `--dim seq=1..512` (default fp16, verified inside convert), the one flexible package
//!   matches ORT at all three lengths.
//!
//! Packages go under `target/test-packages/transformers_<case>_<precision>/`, where
//! `scripts/test.sh` checks them with coremltools.
//!

mod common;

use common::fixtures::{Fixture, NamedFiles};
use common::packages::package_dir;
use mlpack::backend::read_package;
use mlpack::interp::{RunOptions, Value};
use mlpack::ir::{ShapeSet, Target};
use mlpack::pipeline::{self, ConvertOptions, InputShapes, Precision};
use std::path::Path;

const GROUP: &str = "transformers";

/// Minimum cosine similarity with ONNX Runtime in fp32 (only summation order differs).
const FP32_MIN_COSINE: f64 = 0.9999;
/// Minimum cosine similarity with ONNX Runtime with fp16 weights and emulated fp16 compute.
const FP16_MIN_COSINE: f64 = 0.999;

fn read_npy(path: &Path) -> Value {
    mlpack::npy::parse(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Cosine similarity of two outputs of the same shape; panics on a shape mismatch or a
/// non-finite value of ours.
fn cosine(what: &str, ours: &Value, reference: &Value) -> f64 {
    assert_eq!(
        ours.shape(),
        reference.shape(),
        "{what}: output shape differs from ONNX Runtime's"
    );
    let a = ours.to_f32_array().unwrap();
    let b = reference.to_f32_array().unwrap();
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b.iter()) {
        let (x, y) = (f64::from(x), f64::from(y));
        assert!(x.is_finite(), "{what}: non-finite output value {x}");
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    dot / (na.sqrt() * nb.sqrt()).max(1e-30)
}

/// `--input-shape` for every input of a fixture with symbolic dims: the shapes of the
/// `.npy` files of `inputs` (none for static fixtures).
fn fixed_shapes(fx: &Fixture, inputs: &NamedFiles) -> InputShapes {
    if fx.meta.input_dims.is_empty() {
        return InputShapes::default();
    }
    let inputs = inputs
        .iter()
        .map(|(name, file)| {
            let dims: Vec<String> = read_npy(file)
                .shape()
                .iter()
                .map(usize::to_string)
                .collect();
            format!("{name}={}", dims.join(",")).parse().unwrap()
        })
        .collect();
    InputShapes {
        inputs,
        ..Default::default()
    }
}

/// Converts `fx` at `precision` (symbolic dims fixed to the sizes of `inputs`) into
/// `target/test-packages`, and returns the package.
fn convert_case(
    fx: &Fixture,
    precision: Precision,
    label: &str,
    inputs: &NamedFiles,
) -> std::path::PathBuf {
    let dir = package_dir(&format!("{GROUP}_{}_{precision:?}{label}", fx.case));
    let package = dir.join(format!("{}.mlpackage", fx.case));
    let options = ConvertOptions {
        describe: Default::default(),
        input: fx.model_path(),
        output: package.clone(),
        precision,
        mixed: Default::default(),
        target: Target::IOS17,
        input_shapes: fixed_shapes(fx, inputs),
        force: false,
        states: Vec::new(),
        verify: None,
    };
    if let Err(e) = pipeline::convert(&options) {
        panic!("{}: convert {precision:?}: {e}", fx.name());
    }
    package
}

/// Runs `package` on `inputs` and asserts every output's cosine with `outputs` is at least
/// `min_cosine`.
fn check_set(
    fx: &Fixture,
    package: &Path,
    label: &str,
    inputs: &NamedFiles,
    outputs: &NamedFiles,
    precision: Precision,
    min_cosine: f64,
) {
    let run = RunOptions {
        emulate_fp16: precision == Precision::Fp16,
    };
    let ours = pipeline::run_package(package, inputs, run)
        .unwrap_or_else(|e| panic!("{}{label}: run {precision:?}: {e}", fx.name()));
    assert_eq!(ours.len(), outputs.len(), "{}: output count", fx.name());
    let mut failures = Vec::new();
    for ((name, value), (_, file)) in ours.iter().zip(outputs) {
        let what = format!("{}{label}/{name} {precision:?}", fx.name());
        let cos = cosine(&what, value, &read_npy(file));
        println!("{what}: cosine {cos:.7}");
        if cos.is_nan() || cos < min_cosine {
            failures.push(format!("{what}: cosine {cos:.7} < {min_cosine}"));
        }
    }
    assert!(
        failures.is_empty(),
        "outputs differ from ONNX Runtime:\n{}",
        failures.join("\n")
    );
}

/// The fixture's main input set at `precision`, then every extra input set (other lengths of
/// the symbolic dims), each on a package converted for its sizes (see [`check_flexible`] for
/// one package for every length).
fn check(case: &str, precision: Precision) {
    let fx = Fixture::load(GROUP, case);
    let min_cosine = match precision {
        Precision::Fp32 => FP32_MIN_COSINE,
        Precision::Fp16 | Precision::Auto => FP16_MIN_COSINE,
    };
    let package = convert_case(&fx, precision, "", &fx.input_files());
    check_set(
        &fx,
        &package,
        "",
        &fx.input_files(),
        &fx.output_files(),
        precision,
        min_cosine,
    );
    for set in &fx.meta.extra_sets {
        let (inputs, outputs) = fx.extra_set_files(set);
        let label = format!("_{}", set.label);
        let package = convert_case(&fx, precision, &label, &inputs);
        check_set(
            &fx, &package, &label, &inputs, &outputs, precision, min_cosine,
        );
    }
}

/// Rows of the BERT fixtures' position table (`BERT_MAX_POSITIONS` in make_fixtures.py).
const BERT_MAX_POSITIONS: usize = 64;

/// BERT converted once with `--dim seq=1..512` at the default precision, verified inside
/// convert at the smallest and largest length: the model slices its position ids up to `seq`
/// from a table of [`BERT_MAX_POSITIONS`], so the accepted range narrows to that with a note,
/// and the one package matches ONNX Runtime at every stored length (16, 5 and 23 tokens).
fn check_flexible(case: &str) {
    let fx = Fixture::load(GROUP, case);
    let dir = package_dir(&format!("{GROUP}_{case}_flexible"));
    let package = dir.join(format!("{case}.mlpackage"));
    let options = ConvertOptions {
        describe: Default::default(),
        input: fx.model_path(),
        output: package.clone(),
        precision: Precision::Fp16,
        mixed: Default::default(),
        target: Target::IOS17,
        input_shapes: InputShapes {
            inputs: Vec::new(),
            dims: vec!["seq=1..512".parse().unwrap()],
            frozen: Vec::new(),
        },
        force: false,
        states: Vec::new(),
        verify: Some(Default::default()),
    };
    let report = pipeline::convert(&options)
        .unwrap_or_else(|e| panic!("{}: convert --dim seq=1..512: {e}", fx.name()));
    assert!(
        report.verify.as_ref().is_some_and(|v| v.passed),
        "{}: {:?}",
        fx.name(),
        report.verify
    );
    assert_eq!(report.limits.len(), 1, "{}: {:?}", fx.name(), report.limits);
    assert!(
        report.limits[0].starts_with(&format!("seq at most {BERT_MAX_POSITIONS}: node ")),
        "{}: {:?}",
        fx.name(),
        report.limits
    );
    let program = read_package(&package).unwrap();
    let main = program.main();
    for v in &main.inputs {
        assert_eq!(
            main.input_shapes.get(&v.name),
            Some(&ShapeSet::Ranges(vec![
                (1, Some(1)),
                (1, Some(BERT_MAX_POSITIONS))
            ])),
            "{}: accepted shapes of {}",
            fx.name(),
            v.name
        );
    }
    let sets = fx.meta.extra_sets.iter().map(|set| {
        let (inputs, outputs) = fx.extra_set_files(set);
        (format!("_flexible_{}", set.label), inputs, outputs)
    });
    let main_set = ("_flexible".to_string(), fx.input_files(), fx.output_files());
    let mut lengths = Vec::new();
    for (label, inputs, outputs) in std::iter::once(main_set).chain(sets) {
        lengths.push(read_npy(&inputs[0].1).shape()[1]);
        check_set(
            &fx,
            &package,
            &label,
            &inputs,
            &outputs,
            Precision::Fp16,
            FP16_MIN_COSINE,
        );
    }
    assert_eq!(lengths, [16, 5, 23], "{}: lengths run", fx.name());
}

/// One test per case and precision.
macro_rules! case {
    ($case:ident) => {
        mod $case {
            use super::*;

            #[test]
            fn fp32_matches_onnx_runtime() {
                check(stringify!($case), Precision::Fp32);
            }

            #[test]
            fn fp16_matches_onnx_runtime() {
                check(stringify!($case), Precision::Fp16);
            }
        }
    };
}

case!(bert_ts13);
case!(bert_ts17);
case!(bert_dynamo18);

/// One flexible-length test per BERT case.
mod flexible {
    use super::*;

    #[test]
    fn bert_ts13_matches_onnx_runtime_at_three_lengths() {
        check_flexible("bert_ts13");
    }

    #[test]
    fn bert_ts17_matches_onnx_runtime_at_three_lengths() {
        check_flexible("bert_ts17");
    }

    #[test]
    fn bert_dynamo18_matches_onnx_runtime_at_three_lengths() {
        check_flexible("bert_dynamo18");
    }
}
case!(gpt2_ts13);
case!(gpt2_ts17);
case!(gpt2_dynamo18);
case!(llama_ts17);
case!(llama_dynamo18);
case!(vit_ts17);
case!(vit_dynamo18);

/// Every case listed above exists, and every case in the group is listed above.
#[test]
fn every_transformer_fixture_is_tested() {
    let listed = [
        "bert_dynamo18",
        "bert_ts13",
        "bert_ts17",
        "gpt2_dynamo18",
        "gpt2_ts13",
        "gpt2_ts17",
        "llama_dynamo18",
        "llama_ts17",
        "vit_dynamo18",
        "vit_ts17",
    ];
    let found: Vec<String> = Fixture::all(GROUP).into_iter().map(|f| f.case).collect();
    assert_eq!(found, listed);
}

/// The files each case's meta.json names exist, and BERT's sequence dim is symbolic.
#[test]
fn transformer_fixtures_have_their_files() {
    for fx in Fixture::all(GROUP) {
        assert!(fx.committed_model_path().is_file(), "{}", fx.name());
        let sets = fx.meta.extra_sets.iter().map(|s| fx.extra_set_files(s));
        for (inputs, outputs) in sets.chain([(fx.input_files(), fx.output_files())]) {
            for (name, path) in inputs.into_iter().chain(outputs) {
                assert!(path.is_file(), "{}: missing {name}", fx.name());
            }
        }
        if fx.case.starts_with("bert") {
            let seq = common::fixtures::Dim::Param("seq".into());
            for input in ["input_ids", "attention_mask", "token_type_ids"] {
                assert_eq!(
                    fx.meta.input_dims.get(input).map(|d| &d[1]),
                    Some(&seq),
                    "{}: {input}",
                    fx.name()
                );
            }
            assert_eq!(fx.meta.extra_sets.len(), 2, "{}", fx.name());
        }
    }
}

/// At iOS18 every attention block (2 per model) is one `scaled_dot_product_attention` (Llama's
/// NaN guard on the attention weights moved behind it), and the GELU models (BERT, GPT-2, ViT)
/// compute `gelu` with no `erf` or `tanh` chain left; Llama computes `silu`.
#[test]
fn fused_at_ios18() {
    for fx in Fixture::all(GROUP) {
        let dir = package_dir(&format!("{GROUP}_{}_ios18", fx.case));
        let package = dir.join(format!("{}.mlpackage", fx.case));
        let options = ConvertOptions {
            describe: Default::default(),
            input: fx.model_path(),
            output: package.clone(),
            precision: Precision::Fp16,
            mixed: Default::default(),
            target: Target::IOS18,
            input_shapes: fixed_shapes(&fx, &fx.input_files()),
            force: false,
            states: Vec::new(),
            verify: None,
        };
        let report = pipeline::convert(&options)
            .unwrap_or_else(|e| panic!("{}: convert at iOS18: {e}", fx.name()));
        let count = |op: &str| report.ops.get(op).copied().unwrap_or(0);
        let what = format!("{}: {:?}", fx.name(), report.ops);
        assert_eq!(count("scaled_dot_product_attention"), 2, "{what}");
        assert_eq!(count("softmax"), 0, "{what}");
        if fx.case.starts_with("llama") {
            assert_eq!(count("silu"), 2, "{what}");
        } else {
            assert!(count("gelu") >= 2, "{what}");
        }
        assert_eq!(count("erf") + count("tanh"), 0, "{what}");
    }
}
