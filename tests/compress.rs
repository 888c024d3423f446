//! Weight compression end to end: every mode on real-architecture fixtures at iOS16 and
//! iOS18, written, read back and decompressed; refusals, bad weights and determinism through
//! the CLI. Each package is written under target/test-packages/compress_* with a sidecar
//! `<package>.weights.npz` holding the weights our interpreter decompresses, which
//! scripts/coreml_check.py compares with coremltools' `decompress_weights`.

mod common;

use common::fixtures::Fixture;
use common::packages::package_dir;
use mlpack::backend::{read_package, write_package};
use mlpack::interp::Value;
use mlpack::ir::{Builder, DType, Program, Target, Tensor, TensorType, Var};
use mlpack::passes::compress::{constexpr_chains, decompress, CompressionSpec, ErrorSums};
use mlpack::pipeline::{self, CompressOptions, ConvertOptions, ConvertVerify, Precision, Recipe};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A named recipe for one weight spec, as JSON, and the lowest per-weight SNR (dB) it may give
/// on the fixtures' synthetic weights: uniformly distributed, and in the CNNs scaled per output
/// channel where a BatchNorm is folded into the conv (which costs per-tensor palettization
/// 1–3 dB: 4-bit k-means 22.2, 2-bit uniform 6.1 dB at worst on mobilenet_v3_small).
struct Mode {
    name: &'static str,
    spec: &'static str,
    min_snr_db: f64,
}

/// Modes every target since iOS16 expresses.
const IOS16_MODES: &[Mode] = &[
    Mode {
        name: "kmeans4",
        spec: r#"{"palettize": {"nbits": 4}}"#,
        min_snr_db: 21.5,
    },
    Mode {
        name: "uniform2",
        spec: r#"{"palettize": {"nbits": 2, "mode": "uniform"}}"#,
        min_snr_db: 5.5,
    },
    Mode {
        name: "int8_channel",
        spec: r#"{"quantize": {}}"#,
        min_snr_db: 45.0,
    },
    Mode {
        name: "uint8_affine_tensor",
        spec: r#"{"quantize": {"dtype": "uint8", "mode": "affine", "granularity": "per-tensor"}}"#,
        min_snr_db: 40.0,
    },
    Mode {
        name: "prune50",
        spec: r#"{"prune": {"target_sparsity": 0.5}}"#,
        min_snr_db: 8.0,
    },
];

/// Modes that need the iOS18 ops.
const IOS18_MODES: &[Mode] = &[
    Mode {
        name: "kmeans4_group16",
        spec: r#"{"palettize": {"nbits": 4, "granularity": "per-grouped-channel", "group_size": 16}}"#,
        min_snr_db: 22.0,
    },
    Mode {
        name: "kmeans2_vector2",
        spec: r#"{"palettize": {"nbits": 2, "cluster_dim": 2}}"#,
        min_snr_db: 5.5,
    },
    Mode {
        name: "kmeans4_group16_vector2",
        spec: r#"{"palettize": {"nbits": 4, "cluster_dim": 2, "granularity": "per-grouped-channel", "group_size": 16}}"#,
        min_snr_db: 11.0,
    },
    Mode {
        name: "kmeans3_pcs",
        spec: r#"{"palettize": {"nbits": 3, "per_channel_scale": true}}"#,
        min_snr_db: 14.0,
    },
    Mode {
        name: "int4_block32",
        spec: r#"{"quantize": {"dtype": "int4", "granularity": "per-block", "block_size": 32}}"#,
        min_snr_db: 20.0,
    },
    Mode {
        name: "prune_2_4",
        spec: r#"{"prune": {"n_m": "2:4"}}"#,
        min_snr_db: 4.0,
    },
    Mode {
        name: "prune50_kmeans4",
        spec: r#"{"prune": {"target_sparsity": 0.5}, "palettize": {"nbits": 4}}"#,
        min_snr_db: 8.0,
    },
    Mode {
        name: "prune_2_4_int8",
        spec: r#"{"prune": {"n_m": "2:4"}, "quantize": {}}"#,
        min_snr_db: 4.0,
    },
    Mode {
        name: "kmeans4_int8_lut",
        spec: r#"{"palettize": {"nbits": 4}, "quantize": {"granularity": "per-tensor"}}"#,
        min_snr_db: 22.0,
    },
];

/// The worst output's cosine and SNR (dB) against the fp16 source package for each fixture
/// and mode, as measured (one random input set, seed 0; the same at iOS16 and iOS18). The
/// test fails when a result falls more than [`COSINE_MARGIN`] or [`SNR_MARGIN_DB`] below.
/// The figures are low for the coarse modes (2-bit uniform palettes, 50 % pruning of
/// synthetic uniform weights): they pin what the encoding gives, not what is acceptable.
const OUTPUT_FIGURES: &[(&str, &str, f64, f64)] = &[
    ("mobilenet_v3_small_op17", "int4_block32", 0.98963, 16.6),
    ("mobilenet_v3_small_op17", "int8_channel", 0.99995, 39.4),
    ("mobilenet_v3_small_op17", "kmeans2_vector2", 0.52171, 1.3),
    ("mobilenet_v3_small_op17", "kmeans3_pcs", 0.92043, 8.1),
    ("mobilenet_v3_small_op17", "kmeans4", 0.98263, 14.4),
    ("mobilenet_v3_small_op17", "kmeans4_group16", 0.98583, 15.5),
    (
        "mobilenet_v3_small_op17",
        "kmeans4_group16_vector2",
        0.85544,
        5.7,
    ),
    ("mobilenet_v3_small_op17", "kmeans4_int8_lut", 0.98292, 14.5),
    ("mobilenet_v3_small_op17", "prune50", 0.66821, 2.5),
    ("mobilenet_v3_small_op17", "prune50_kmeans4", 0.66750, 2.5),
    ("mobilenet_v3_small_op17", "prune_2_4", 0.55847, 1.5),
    ("mobilenet_v3_small_op17", "prune_2_4_int8", 0.55834, 1.5),
    (
        "mobilenet_v3_small_op17",
        "uint8_affine_tensor",
        0.99991,
        37.3,
    ),
    ("mobilenet_v3_small_op17", "uniform2", 0.05528, -21.2),
    ("resnet18_op17", "int4_block32", 0.97788, 13.3),
    ("resnet18_op17", "int8_channel", 0.99984, 34.9),
    ("resnet18_op17", "kmeans2_vector2", 0.66296, 2.0),
    ("resnet18_op17", "kmeans3_pcs", 0.93604, 9.0),
    ("resnet18_op17", "kmeans4", 0.97499, 13.1),
    ("resnet18_op17", "kmeans4_group16", 0.97820, 13.6),
    ("resnet18_op17", "kmeans4_group16_vector2", 0.89596, 6.6),
    ("resnet18_op17", "kmeans4_int8_lut", 0.97376, 12.7),
    ("resnet18_op17", "prune50", 0.80066, 4.0),
    ("resnet18_op17", "prune50_kmeans4", 0.80142, 4.0),
    ("resnet18_op17", "prune_2_4", 0.73705, 3.0),
    ("resnet18_op17", "prune_2_4_int8", 0.73709, 3.0),
    ("resnet18_op17", "uint8_affine_tensor", 0.99979, 33.8),
    ("resnet18_op17", "uniform2", 0.74937, -8.0),
    ("transformer_op13", "int4_block32", 0.99643, 21.4),
    ("transformer_op13", "int8_channel", 0.99999, 47.1),
    ("transformer_op13", "kmeans2_vector2", 0.84043, 5.3),
    ("transformer_op13", "kmeans3_pcs", 0.98985, 16.9),
    ("transformer_op13", "kmeans4", 0.99756, 23.1),
    ("transformer_op13", "kmeans4_group16", 0.99731, 22.7),
    ("transformer_op13", "kmeans4_group16_vector2", 0.95886, 10.9),
    ("transformer_op13", "kmeans4_int8_lut", 0.99753, 23.1),
    ("transformer_op13", "prune50", 0.91217, 7.7),
    ("transformer_op13", "prune50_kmeans4", 0.91145, 7.7),
    ("transformer_op13", "prune_2_4", 0.85821, 5.7),
    ("transformer_op13", "prune_2_4_int8", 0.85819, 5.7),
    ("transformer_op13", "uint8_affine_tensor", 0.99999, 45.9),
    ("transformer_op13", "uniform2", 0.93749, 8.2),
    ("transformer_op17", "int8_channel", 0.99999, 46.5),
    ("transformer_op17", "kmeans4", 0.99737, 22.8),
    ("transformer_op17", "prune50", 0.90752, 7.5),
    ("transformer_op17", "uint8_affine_tensor", 0.99999, 46.3),
    ("transformer_op17", "uniform2", 0.92727, 7.6),
];

/// Allowed drop of the output cosine below [`OUTPUT_FIGURES`].
const COSINE_MARGIN: f64 = 0.01;

/// Allowed drop of the output SNR below [`OUTPUT_FIGURES`], in dB.
const SNR_MARGIN_DB: f64 = 1.0;

/// The fixture converted to an fp16 package for `target`, in `dir`.
fn source_package(case: &str, target: Target, dir: &Path) -> PathBuf {
    let fixture = Fixture::load("models", case);
    let output = dir.join(format!("source_{target}.mlpackage"));
    pipeline::convert(&ConvertOptions {
        describe: Default::default(),
        input: fixture.model_path(),
        output: output.clone(),
        precision: Precision::Fp16,
        mixed: Default::default(),
        target,
        input_shapes: Default::default(),
        force: true,
        states: Vec::new(),
        verify: None,
    })
    .unwrap_or_else(|e| panic!("{case}: convert: {e}"));
    output
}

/// Every compressed weight of a package, decompressed by the interpreter, by variable name.
fn decompressed_weights(program: &Program) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    constexpr_chains(program.main())
        .into_iter()
        .map(|chain| {
            let out = &chain[chain.len() - 1].outputs[0];
            let values = decompress(chain.iter().copied())
                .unwrap_or_else(|e| panic!("decompress {}: {e}", out.name));
            (out.name.clone(), out.ty.static_shape().unwrap(), values)
        })
        .collect()
}

/// Writes `weights` as an .npz of float32 arrays (stored, uncompressed).
fn write_npz(path: &Path, weights: &[(String, Vec<usize>, Vec<f32>)]) {
    use std::io::Write;
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    for (name, shape, values) in weights {
        let array = ndarray::ArrayD::from_shape_vec(shape.clone(), values.clone()).unwrap();
        let bytes = mlpack::npy::serialize(&Value::Float(array)).unwrap();
        zip.start_file(format!("{name}.npy"), options).unwrap();
        zip.write_all(&bytes).unwrap();
    }
    zip.finish().unwrap();
}

fn compress_options(input: &Path, output: &Path, spec: CompressionSpec) -> CompressOptions {
    CompressOptions {
        input: input.to_path_buf(),
        output: output.to_path_buf(),
        target: None,
        precision: Precision::Fp16,
        mixed: Default::default(),
        input_shapes: Default::default(),
        recipe: Recipe::global(spec, 2048),
        recipe_path: None,
        strict: false,
        force: true,
        verify: Some(ConvertVerify {
            samples: 1,
            thresholds: mlpack::verify::ThresholdOverrides {
                max_abs: None,
                min_snr_db: Some(f64::NEG_INFINITY),
                min_cosine: Some(-1.0),
            },
            ..Default::default()
        }),
    }
}

/// Compresses `case` in every mode `target` can express; checks each written package.
fn every_mode(case: &str, target: Target) {
    let dir = package_dir(&format!("compress_{case}_{target}"));
    let source = source_package(case, target, &dir);
    let originals: HashMap<String, Vec<f32>> = read_package(&source)
        .unwrap()
        .main()
        .block
        .operations
        .iter()
        .filter_map(|op| Some((op.outputs[0].name.clone(), op.const_value()?.to_f32_vec())))
        .collect();
    let mut modes: Vec<&Mode> = IOS16_MODES.iter().collect();
    if target >= Target::IOS18 {
        modes.extend(IOS18_MODES);
    }
    for mode in modes {
        let spec: CompressionSpec = serde_json::from_str(mode.spec).unwrap();
        let output = dir.join(format!("{}.mlpackage", mode.name));
        let report = pipeline::compress(&compress_options(&source, &output, spec), &|_, _| {})
            .unwrap_or_else(|e| panic!("{case} {target} {}: {e}", mode.name));
        let c = &report.compression;
        assert!(c.compressed > 0, "{case} {}: nothing compressed", mode.name);
        assert!(
            c.bytes_after < c.bytes_before,
            "{case} {}: no saving",
            mode.name
        );
        for w in c.weights.iter().filter(|w| w.skipped.is_none()) {
            let snr = w.snr_db.unwrap_or(f64::INFINITY);
            assert!(
                snr >= mode.min_snr_db,
                "{case} {target} {}: weight {} SNR {snr:.1} dB < {}",
                mode.name,
                w.name,
                mode.min_snr_db
            );
        }
        // Verification runs with thresholds that always pass (−∞ dB, cosine −1) so every
        // mode is written and checked; its measured figures are checked here instead.
        let verify = report.verify.expect("verified");
        let worst = &verify.worst().expect("an output").metrics;
        let &(_, _, cosine, snr_db) = OUTPUT_FIGURES
            .iter()
            .find(|(c, m, _, _)| *c == case && *m == mode.name)
            .unwrap_or_else(|| panic!("{case} {}: no figures in OUTPUT_FIGURES", mode.name));
        assert!(
            worst.cosine >= cosine - COSINE_MARGIN && worst.snr_db >= snr_db - SNR_MARGIN_DB,
            "{case} {target} {}: {} (expected cosine ≥ {cosine} − {COSINE_MARGIN}, SNR ≥ \
             {snr_db} − {SNR_MARGIN_DB} dB)",
            mode.name,
            verify.summary()
        );
        println!(
            "{case} {target} {:<18} {:>3} weights {:>9} → {:>9} B  worst output {}",
            mode.name,
            c.compressed,
            c.bytes_before,
            c.bytes_after,
            verify.summary()
        );
        // The written package decompresses to what the report measured.
        let written = read_package(&output).unwrap();
        assert_eq!(written.target, target);
        let weights = decompressed_weights(&written);
        assert_eq!(weights.len(), c.compressed, "{case} {}", mode.name);
        // The report's error, computed from the encoded data, is the error of the weights the
        // written package decompresses to.
        for (name, _, decompressed) in &weights {
            let w = c.weights.iter().find(|w| &w.name == name).unwrap();
            let mut sums = ErrorSums::default();
            for (exact, approx) in originals[name].chunks(4096).zip(decompressed.chunks(4096)) {
                sums.add(exact, approx);
            }
            assert_eq!(
                w.max_abs_error,
                sums.max_abs(),
                "{case} {} {name}",
                mode.name
            );
            let (a, b) = (
                w.snr_db.unwrap_or(f64::INFINITY),
                sums.snr_db().unwrap_or(f64::INFINITY),
            );
            assert!(
                a == b || (a - b).abs() < 1e-3,
                "{case} {} {name}: SNR {a} vs {b}",
                mode.name
            );
        }
        write_npz(&dir.join(format!("{}.weights.npz", mode.name)), &weights);
    }
}

#[test]
fn resnet18_every_mode_ios18() {
    every_mode("resnet18_op17", Target::IOS18);
}

#[test]
fn resnet18_every_mode_ios16() {
    every_mode("resnet18_op17", Target::IOS16);
}

#[test]
fn mobilenet_v3_small_every_mode_ios18() {
    every_mode("mobilenet_v3_small_op17", Target::IOS18);
}

#[test]
fn mobilenet_v3_small_every_mode_ios16() {
    every_mode("mobilenet_v3_small_op17", Target::IOS16);
}

// ---------------------------------------------------------------------------------------------
// CLI: refusals, bad weights, determinism
// ---------------------------------------------------------------------------------------------

fn mlpack(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mlpack"))
        .args(args)
        .output()
        .expect("run mlpack")
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `y = linear(x[1, 64], w)` with one [64, 64] weight per entry of `weights`, chained, in fp16.
fn linear_package(dir: &Path, name: &str, target: Target, weights: &[Vec<f32>]) -> PathBuf {
    let mut b = Builder::new(
        "main",
        vec![Var::new("x", TensorType::fixed(DType::F32, &[1, 64]))],
    );
    let mut x = "x".to_string();
    for (i, w) in weights.iter().enumerate() {
        let w = b.constant(&format!("w{i}"), Tensor::from_f32(&[64, 64], w));
        x = b
            .op1(
                "linear",
                &format!("y{i}"),
                &[("x", &[&x]), ("weight", &[&w])],
            )
            .unwrap();
    }
    let function = b.finish(vec![x]);
    let mut program = Program {
        target,
        functions: vec![function],
        metadata: Default::default(),
        description: Default::default(),
    };
    mlpack::passes::to_fp16(&mut program, |_| None);
    let path = dir.join(name);
    write_package(&program, &path, true).unwrap();
    path
}

fn ramp(scale: f32) -> Vec<f32> {
    (0..4096)
        .map(|i| ((i * 37 % 4096) as f32 / 4096.0 - 0.5) * scale)
        .collect()
}

#[test]
fn ios18_only_modes_are_refused_below_ios18_with_the_target_needed() {
    let dir = tempfile::tempdir().unwrap();
    let input = linear_package(dir.path(), "in.mlpackage", Target::IOS16, &[ramp(1.0)]);
    let out = dir.path().join("out.mlpackage");
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    for args in [
        vec![
            "palettize",
            i,
            "-o",
            o,
            "--nbits",
            "4",
            "--granularity",
            "per-grouped-channel",
        ],
        vec!["palettize", i, "-o", o, "--nbits", "3"],
        vec![
            "palettize",
            i,
            "-o",
            o,
            "--nbits",
            "2",
            "--cluster-dim",
            "2",
        ],
        vec!["quantize", i, "-o", o, "--dtype", "int4"],
        vec!["quantize", i, "-o", o, "--granularity", "per-block"],
    ] {
        let result = mlpack(&args);
        assert_eq!(
            result.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&result)
        );
        let message = stderr(&result);
        assert!(
            message.contains("needs target iOS18"),
            "{args:?}: {message}"
        );
        assert_eq!(message.trim().lines().count(), 1, "{message}");
        assert!(!out.exists(), "{args:?} wrote a package");
    }
}

#[test]
fn recipes_are_checked_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let input = linear_package(dir.path(), "in.mlpackage", Target::IOS18, &[ramp(1.0)]);
    let out = dir.path().join("out.mlpackage");
    let recipe = dir.path().join("recipe.json");
    for (text, expect) in [
        (
            r#"{"global": {"palettize": {"nbits": 4, "bits": 2}}}"#,
            "unknown field `bits`",
        ),
        (
            r#"{"op_types": {"conv": {"quantize": {}}}}"#,
            "op_types.conv",
        ),
        (r#"{"op_names": {"nothing*": null}}"#, "op_names.nothing*"),
        (r#"{"global": {"palettize": {"nbits": 5}}}"#, "nbits 5"),
        (
            r#"{"global": {"prune": {"target_sparsity": 0.5, "n_m": "2:4"}}}"#,
            "exactly one",
        ),
    ] {
        std::fs::write(&recipe, text).unwrap();
        let result = mlpack(&[
            "compress",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--recipe",
            recipe.to_str().unwrap(),
        ]);
        let message = stderr(&result);
        assert_eq!(result.status.code(), Some(2), "{text}: {message}");
        assert!(message.contains(expect), "{text}: {message}");
        assert!(message.contains("recipe.json"), "{text}: {message}");
        assert!(!out.exists());
    }
    // A per-name override beats the op-type setting; null skips.
    std::fs::write(
        &recipe,
        r#"{"op_types": {"linear": {"quantize": {}}}, "op_names": {"y1": null}}"#,
    )
    .unwrap();
    let input = linear_package(
        dir.path(),
        "two.mlpackage",
        Target::IOS18,
        &[ramp(1.0), ramp(2.0)],
    );
    let result = mlpack(&[
        "compress",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--recipe",
        recipe.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(result.status.code(), Some(0), "{}", stderr(&result));
    let report: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
    let weights = report["compression"]["weights"].as_array().unwrap();
    assert_eq!(weights.len(), 1);
    assert_eq!(weights[0]["name"], "w0_to_fp16");
    assert_eq!(weights[0]["scheme"], "quantize int8 symmetric per-channel");
}

#[test]
fn bad_weights_are_skipped_by_name_or_fail_with_strict() {
    let dir = tempfile::tempdir().unwrap();
    let mut with_nan = ramp(1.0);
    with_nan[7] = f32::NAN;
    let constant = vec![0.25f32; 4096];
    let input = linear_package(
        dir.path(),
        "in.mlpackage",
        Target::IOS18,
        &[ramp(1.0), with_nan, constant],
    );
    let out = dir.path().join("out.mlpackage");
    let report = dir.path().join("report.json");
    let (i, o, r) = (
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        report.to_str().unwrap(),
    );
    let result = mlpack(&["quantize", i, "-o", o, "--no-verify", "--report", r]);
    assert_eq!(result.status.code(), Some(0), "{}", stderr(&result));
    assert!(stderr(&result)
        .contains("weight 'w1_to_fp16' left uncompressed: weight contains NaN or infinity"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let weights = json["compression"]["weights"].as_array().unwrap();
    assert_eq!(weights.len(), 3);
    assert!(weights[1]["skipped"].as_str().unwrap().contains("NaN"));
    // The constant weight quantizes to one code; only the fp16 scale's rounding remains.
    assert!(weights[2]["skipped"].is_null());
    assert!(weights[2]["max_abs_error"].as_f64().unwrap() < 1e-4);
    // Uniform palettes of a constant weight and k-means with more entries than distinct values.
    for args in [
        vec![
            "palettize",
            i,
            "-o",
            o,
            "--nbits",
            "4",
            "--mode",
            "uniform",
            "--no-verify",
            "--force",
        ],
        vec![
            "palettize",
            i,
            "-o",
            o,
            "--nbits",
            "8",
            "--no-verify",
            "--force",
        ],
    ] {
        let result = mlpack(&args);
        assert_eq!(
            result.status.code(),
            Some(0),
            "{args:?}: {}",
            stderr(&result)
        );
    }
    // A group size that does not divide the channels skips that weight, or fails with --strict.
    let result = mlpack(&[
        "palettize",
        i,
        "-o",
        o,
        "--nbits",
        "4",
        "--granularity",
        "per-grouped-channel",
        "--group-size",
        "24",
        "--no-verify",
        "--force",
    ]);
    assert_eq!(result.status.code(), Some(0), "{}", stderr(&result));
    assert!(stderr(&result).contains("group size 24 does not divide the 64 channels"));
    std::fs::remove_dir_all(&out).unwrap();
    let result = mlpack(&["quantize", i, "-o", o, "--no-verify", "--strict"]);
    assert_eq!(result.status.code(), Some(4), "{}", stderr(&result));
    assert!(stderr(&result).contains("'w1_to_fp16'"));
    assert!(!out.exists());
}

#[test]
fn output_is_identical_for_any_thread_count() {
    let dir = package_dir("compress_determinism");
    let source = source_package("mobilenet_v3_small_op17", Target::IOS18, &dir);
    for args in [
        vec![
            "palettize",
            "--nbits",
            "4",
            "--granularity",
            "per-grouped-channel",
            "--group-size",
            "8",
        ],
        vec![
            "quantize",
            "--dtype",
            "int4",
            "--granularity",
            "per-block",
            "--block-size",
            "16",
        ],
        vec!["prune", "--target-sparsity", "0.6"],
        vec!["palettize", "--nbits", "2", "--cluster-dim", "2"],
    ] {
        let mut packages = Vec::new();
        for threads in ["1", "2"] {
            let out = dir.join(format!("{}_{threads}.mlpackage", args[0]));
            let mut command = Command::new(env!("CARGO_BIN_EXE_mlpack"));
            command
                .env("RAYON_NUM_THREADS", threads)
                .args(&args)
                .arg(&source)
                .arg("-o")
                .arg(&out)
                .args(["--force", "--quiet", "--no-verify"]);
            let result = command.output().unwrap();
            assert!(result.status.success(), "{args:?}: {}", stderr(&result));
            packages.push(out);
        }
        for file in [
            "Data/com.apple.CoreML/model.mlmodel",
            "Data/com.apple.CoreML/weights/weight.bin",
        ] {
            let a = std::fs::read(packages[0].join(file)).unwrap();
            let b = std::fs::read(packages[1].join(file)).unwrap();
            assert!(a == b, "{args:?}: {file} differs between 1 and 2 threads");
        }
    }
}

#[test]
fn transformer_every_mode_ios18() {
    every_mode("transformer_op13", Target::IOS18);
}

#[test]
fn transformer_every_mode_ios16() {
    every_mode("transformer_op17", Target::IOS16);
}
