//! Mixed precision end to end: a decomposed LayerNorm whose variance overflows fp16 is fixed
//! by the `layer-norm` rule and by `--precision auto` (keeping only the pow…sqrt region and
//! the reduce ops in fp32), convolutional models need no fp32 op, casts stay clean.

mod common;

use common::cli::mlpack;

use common::fixtures::Fixture;
use common::packages::package_dir;
use mlpack::backend::read_package;
use mlpack::interp::{self, RunOptions, Value};
use mlpack::ir::{DType, Function, Target};
use mlpack::passes::mixed_precision::{Fp32Pattern, Fp32Rules};
use mlpack::pipeline::{
    self, Calibration, ConvertOptions, ConvertReport, MixedPrecision, Precision,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn read_npy(path: &Path) -> Value {
    mlpack::npy::parse(&std::fs::read(path).unwrap()).unwrap()
}

fn convert(
    input: PathBuf,
    output: PathBuf,
    precision: Precision,
    mixed: MixedPrecision,
) -> ConvertReport {
    pipeline::convert(&ConvertOptions {
        describe: Default::default(),
        input,
        output: output.clone(),
        precision,
        mixed,
        target: Target::IOS17,
        input_shapes: Default::default(),
        force: true,
        states: Vec::new(),
        verify: None,
    })
    .unwrap_or_else(|e| panic!("{}: {e}", output.display()))
}

/// Writes the fixture's inputs as one `.npz` in a fresh calibration directory.
fn calibration_dir(fx: &Fixture, dir: &Path) -> PathBuf {
    use std::io::Write;
    let cal = dir.join("calibration");
    std::fs::create_dir_all(&cal).unwrap();
    let file = std::fs::File::create(cal.join("sample0.npz")).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, path) in fx.input_files() {
        zip.start_file(format!("{name}.npy"), options).unwrap();
        zip.write_all(&std::fs::read(path).unwrap()).unwrap();
    }
    zip.finish().unwrap();
    cal
}

/// Runs `function` on the fixture inputs with fp16 emulation; returns the output and the
/// count of non-finite values over every value computed.
fn run_emulated(function: &Function, fx: &Fixture) -> (Vec<f32>, usize) {
    let feed: BTreeMap<String, Value> = fx
        .input_files()
        .into_iter()
        .map(|(n, p)| (n, read_npy(&p)))
        .collect();
    let mut non_finite = 0;
    let out = interp::run_with_observer(
        function,
        &feed,
        RunOptions { emulate_fp16: true },
        |_, v| {
            if let Value::Float(a) = v {
                non_finite += a.iter().filter(|x| !x.is_finite()).count();
            }
        },
    )
    .unwrap();
    (
        out[0].1.float().unwrap().iter().copied().collect(),
        non_finite,
    )
}

/// Op types (sorted) computing in fp32 in `function`, by the package's own dtypes.
fn fp32_op_types(function: &Function) -> Vec<String> {
    let types = mlpack::passes::mixed_precision::dtypes(function);
    let mut out: Vec<String> = function
        .block
        .operations
        .iter()
        .filter(|op| mlpack::passes::mixed_precision::op_precision(op, &types) == Some(DType::F32))
        .map(|op| op.op_type.clone())
        .collect();
    out.sort();
    out
}

/// No cast reads a cast's output, constants feeding fp32 ops are fp32, I/O stays fp32.
fn assert_clean_casts(function: &Function) {
    let ops = &function.block.operations;
    let types = mlpack::passes::mixed_precision::dtypes(function);
    for op in ops.iter().filter(|o| o.op_type == "cast") {
        let x = op.input("x").unwrap()[0].var().unwrap();
        let producer = function.block.producer(x).map(|(_, p)| p.op_type.as_str());
        assert_ne!(producer, Some("cast"), "cast pair at '{}'", op.name);
    }
    for op in ops {
        if mlpack::passes::mixed_precision::op_precision(op, &types) != Some(DType::F32) {
            continue;
        }
        for v in op.input_vars() {
            if let Some((_, p)) = function.block.producer(v) {
                if let Some(c) = p.const_value() {
                    if c.dtype().is_float() {
                        assert_eq!(
                            c.dtype(),
                            DType::F32,
                            "constant '{v}' of fp32 op '{}'",
                            op.name
                        );
                    }
                }
            }
        }
    }
    assert!(function.inputs.iter().all(|v| v.ty.dtype == DType::F32));
    assert!(function.outputs().iter().all(|v| v.ty.dtype == DType::F32));
}

/// The decomposed RMSNorm's region: pow, its reduce_mean, the epsilon add and sqrt.
const NORM_REGION: [&str; 4] = ["add", "pow", "reduce_mean", "sqrt"];

/// An RMSNorm (which no fusion replaces, unlike a decomposed LayerNorm) whose squares overflow
/// fp16: the `layer-norm` rule and `auto` both keep exactly its region in fp32.
#[test]
fn rmsnorm_overflow_is_fixed_by_the_rule_and_by_auto() {
    let fx = Fixture::load("precision", "rmsnorm_decomposed");
    let dir = package_dir("mixed_precision_rmsnorm");
    let expected: Vec<f32> = read_npy(&fx.output_files()[0].1)
        .float()
        .unwrap()
        .iter()
        .copied()
        .collect();
    let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
    let max_err = |y: &[f32]| {
        y.iter()
            .zip(&expected)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
    };

    // fp16: NaN/inf under emulation.
    let p16 = dir.join("fp16.mlpackage");
    convert(
        fx.model_path(),
        p16.clone(),
        Precision::Fp16,
        MixedPrecision::default(),
    );
    let program = read_package(&p16).unwrap();
    let (_, non_finite) = run_emulated(program.main(), &fx);
    assert!(non_finite > 0, "fp16 overflows");
    assert!(fp32_op_types(program.main()).is_empty());

    // The layer-norm rule: finite, close to ONNX Runtime, exactly the norm region in fp32.
    let rule = dir.join("rule.mlpackage");
    let report = convert(
        fx.model_path(),
        rule.clone(),
        Precision::Fp16,
        MixedPrecision {
            rules: Fp32Rules {
                patterns: vec![Fp32Pattern::LayerNorm],
                ..Default::default()
            },
            ..Default::default()
        },
    );
    let fp16 = report.mixed.fp16.unwrap();
    assert_eq!(
        fp16.fp32_ops.len(),
        NORM_REGION.len(),
        "{:?}",
        fp16.fp32_ops
    );
    let program = read_package(&rule).unwrap();
    assert_eq!(fp32_op_types(program.main()), NORM_REGION);
    assert_clean_casts(program.main());
    let (y, non_finite) = run_emulated(program.main(), &fx);
    assert_eq!(non_finite, 0);
    let err_rule = max_err(&y);
    assert!(
        err_rule <= 1e-2 * scale,
        "max error {err_rule}, scale {scale}"
    );

    // auto with the fixture's input as calibration: the same region, found on its own.
    let auto = dir.join("auto.mlpackage");
    let report = convert(
        fx.model_path(),
        auto.clone(),
        Precision::Auto,
        MixedPrecision {
            calibration: Calibration::Dir(calibration_dir(&fx, &dir)),
            ..Default::default()
        },
    );
    let search = report.mixed.auto.unwrap();
    assert_eq!(search.kept.len(), NORM_REGION.len(), "{:?}", search.kept);
    assert_eq!(search.rounds, 2, "one region added, then a clean run");
    assert_eq!(search.kept[0].op_type, "pow");
    assert!(
        search.kept[0].reason.contains("beyond fp16's 65504"),
        "{}",
        search.kept[0].reason
    );
    assert!(search.kept[0].max_abs_fp32.unwrap() > 65504.0);
    assert!(search.verify.passed, "{}", search.verify.summary());
    let program = read_package(&auto).unwrap();
    assert_eq!(fp32_op_types(program.main()), NORM_REGION);
    assert_clean_casts(program.main());
    let (y, non_finite) = run_emulated(program.main(), &fx);
    assert_eq!(non_finite, 0);
    let err_auto = max_err(&y);
    assert!(
        err_auto <= 1e-2 * scale,
        "max error {err_auto}, scale {scale}"
    );
    eprintln!("rmsnorm: scale {scale}, rule max err {err_rule}, auto max err {err_auto}");

    // inspect lists the precision of every op.
    let o = mlpack(&["inspect", auto.to_str().unwrap(), "--ops"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("compute precision: 2 fp16, 4 fp32 ops"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains(" fp32 ") && l.contains(" pow ")),
        "{out}"
    );
    assert!(out.contains("fp32→fp16"), "casts are shown: {out}");
}

#[test]
fn a_rule_matching_nothing_is_a_usage_error() {
    let fx = Fixture::load("precision", "layernorm_decomposed");
    let dir = package_dir("mixed_precision_bad_rule");
    let out = dir.join("never.mlpackage");
    let model = fx.model_path();
    for (flag, value, message) in [
        (
            "--fp32-ops",
            "conv",
            "--fp32-ops conv: no float op of type 'conv'",
        ),
        ("--fp32-nodes", "*attn*", "--fp32-nodes *attn*: matches no"),
    ] {
        let o = mlpack(&[
            "convert",
            model.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            flag,
            value,
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(message), "{err}");
        assert!(!out.exists());
    }
}

#[test]
fn transformer_layer_norms_match_the_pattern() {
    let fx = Fixture::load("models", "transformer_op13");
    let dir = package_dir("mixed_precision_transformer");
    let report = convert(
        fx.model_path(),
        dir.join("rule.mlpackage"),
        Precision::Fp16,
        MixedPrecision {
            rules: Fp32Rules {
                patterns: vec![Fp32Pattern::LayerNorm],
                ..Default::default()
            },
            ..Default::default()
        },
    );
    let kept = report.mixed.fp16.unwrap().fp32_ops;
    // Fusion made each of the five norms one layer_norm op; the rule keeps those.
    assert_eq!(kept.len(), 5, "five fused norms: {kept:?}");
    let auto = convert(
        fx.model_path(),
        dir.join("auto.mlpackage"),
        Precision::Auto,
        MixedPrecision::default(),
    );
    let search = auto.mixed.auto.unwrap();
    assert!(search.kept.is_empty(), "{:?}", search.kept);
}

#[test]
fn convolutional_models_keep_no_op_in_fp32() {
    for case in ["resnet18_op17", "mobilenet_v3_small_op17"] {
        let fx = Fixture::load("models", case);
        let dir = package_dir(&format!("mixed_precision_{case}"));
        let report = convert(
            fx.model_path(),
            dir.join("auto.mlpackage"),
            Precision::Auto,
            MixedPrecision {
                calibration: Calibration::Random {
                    samples: 2,
                    ranges: Vec::new(),
                },
                ..Default::default()
            },
        );
        let search = report.mixed.auto.unwrap();
        assert!(search.kept.is_empty(), "{case}: {:?}", search.kept);
        assert_eq!(search.rounds, 1);
        assert!(search.verify.passed, "{case}: {}", search.verify.summary());
        let fp16 = report.mixed.fp16.unwrap();
        assert!(fp16.fp32_ops.is_empty(), "{case}: {:?}", fp16.fp32_ops);
        eprintln!("{case}: auto: {}", search.verify.summary());
    }
}
