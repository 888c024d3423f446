//! `mlpack verify`, convert's built-in verification and fp16 emulation, end to end: an fp16
//! resnet18 passes, a corrupted weight is caught and traced to its conv, an fp16 overflow in a
//! decomposed LayerNorm is reproduced only under emulation, bad `.npz` inputs are explained.

mod common;

use common::cli::{mlpack, text};

use common::fixtures::Fixture;
use common::packages::package_dir;
use mlpack::backend::{read_package, stored_in_blob};
use mlpack::interp::{self, RunOptions, Value};
use mlpack::ir::Target;
use mlpack::pipeline::{self, ConvertOptions, ConvertVerify, Precision};
use mlpack::verify::VerifyOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

fn read_npy(path: &Path) -> Value {
    mlpack::npy::parse(&std::fs::read(path).unwrap()).unwrap()
}

fn options(
    input: PathBuf,
    output: PathBuf,
    precision: Precision,
    verify: Option<ConvertVerify>,
) -> ConvertOptions {
    ConvertOptions {
        describe: Default::default(),
        input,
        output,
        precision,
        mixed: Default::default(),
        target: Target::IOS17,
        input_shapes: Default::default(),
        force: false,
        states: Vec::new(),
        verify,
    }
}

/// Named arrays of an `.npz`.
type Members<'a> = Vec<(&'a str, &'a Value)>;

/// Writes an `.npz` holding `members` (name → value) as `np.savez` (stored) or
/// `np.savez_compressed` (deflated) would.
fn write_npz(path: &Path, members: &[(&str, &Value)], compressed: bool) {
    let method = if compressed {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, value) in members {
        zip.start_file(
            format!("{name}.npy"),
            zip::write::SimpleFileOptions::default().compression_method(method),
        )
        .unwrap();
        zip.write_all(&mlpack::npy::serialize(value).unwrap())
            .unwrap();
    }
    zip.finish().unwrap();
}

#[test]
fn fp16_torchvision_models_pass_with_default_thresholds() {
    // Also the measurements behind the fp16 defaults (README): printed per model.
    let dir = package_dir("verify_fp16_models");
    for case in [
        "resnet18_op17",
        "mobilenet_v3_small_op17",
        "efficientnet_b0_op17",
    ] {
        let fx = Fixture::load("models", case);
        let out = dir.join(format!("{case}.mlpackage"));
        let report = pipeline::convert(&options(
            fx.model_path(),
            out.clone(),
            Precision::Fp16,
            Some(ConvertVerify::default()),
        ))
        .unwrap_or_else(|e| panic!("{case}: {e}"));
        let v = report.verify.expect("verified by default");
        println!("{case}: {}", v.summary());
        assert!(
            v.passed && v.candidate_fp16 && v.emulate_fp16,
            "{case}: {}",
            v.summary()
        );
        if case == "resnet18_op17" {
            // The package as written verifies too, here on the fixture's own input (.npz).
            let npz = dir.join("resnet18_input.npz");
            let x = read_npy(&fx.input_files()[0].1);
            write_npz(&npz, &[("x", &x)], true);
            let r = pipeline::verify(
                &fx.model_path(),
                &out,
                Some(&npz),
                &VerifyOptions::default(),
            )
            .unwrap();
            println!("{case} on the fixture input: {}", r.summary());
            assert!(r.passed && r.samples == 1, "{}", r.summary());
            assert_eq!(
                r.outputs[0].metrics.top1,
                Some(1.0),
                "1000 class scores: top-1 agrees"
            );
        }
    }
}

/// Converts small_cnn to fp16 in `dir` and overwrites the start of the first blob-stored conv
/// weight in weight.bin with 0x7b bytes (fp16 61280). Returns the package and that conv's name.
fn corrupt_small_cnn(dir: &Path) -> (PathBuf, PathBuf, String) {
    let model = Fixture::load("models", "small_cnn_op17").model_path();
    let pkg = dir.join("corrupt.mlpackage");
    pipeline::convert(&options(
        model.clone(),
        pkg.clone(),
        Precision::Fp16,
        Some(ConvertVerify::default()),
    ))
    .unwrap();
    let program = read_package(&pkg).unwrap();
    let main = program.main();
    let (conv, weight) = main
        .block
        .operations
        .iter()
        .filter(|op| op.op_type == "conv")
        .find_map(|op| {
            let w = op.input("weight")?.first()?.var()?;
            let (_, producer) = main.block.producer(w)?;
            let t = producer.const_value()?;
            stored_in_blob(t, program.target).then(|| (op.name.clone(), t.bytes().to_vec()))
        })
        .expect("a conv whose weight is in weight.bin");
    let bin = pkg.join("Data/com.apple.CoreML/weights/weight.bin");
    let mut blob = std::fs::read(&bin).unwrap();
    let at = blob
        .windows(weight.len())
        .position(|w| w == weight.as_slice())
        .expect("the weight's bytes in weight.bin");
    blob[at..at + 32].fill(0x7b);
    std::fs::write(&bin, blob).unwrap();
    (model, pkg, conv)
}

#[test]
fn a_corrupted_weight_fails_verification_and_per_op_names_its_conv() {
    let dir = tempfile::tempdir().unwrap();
    let (model, pkg, conv) = corrupt_small_cnn(dir.path());
    let (model, pkg) = (model.to_str().unwrap(), pkg.to_str().unwrap());
    let o = mlpack(&["verify", model, pkg]);
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    assert!(
        text(&o).contains("worst output y") && text(&o).contains("FAILED"),
        "{}",
        text(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).starts_with("mlpack: error: verification failed:"),
        "{}",
        text(&o)
    );

    let o = mlpack(&["verify", model, pkg, "--per-op", "--json"]);
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["passed"], false);
    assert_eq!(report["outputs"][0]["name"], "y");
    let first = &report["per_op"]["first_divergence"]["value"];
    assert_eq!(first["op_type"], "conv", "{report:#}");
    assert_eq!(first["op"], conv.as_str(), "{report:#}");
    // The conv absorbed the BatchNormalization after it, so the value compared is that
    // node's output.
    assert!(
        first["origin"]
            .as_str()
            .unwrap()
            .contains("BatchNormalization"),
        "the ONNX node: {first}"
    );

    let o = mlpack(&["verify", model, pkg, "--per-op"]);
    let out = text(&o);
    assert!(
        out.contains("first divergence:") && out.contains(&format!("(op {conv},")),
        "{out}"
    );
    assert!(
        out.contains("-- cast x -> "),
        "precision changes are shown: {out}"
    );
}

#[test]
fn fp16_overflow_in_a_decomposed_rmsnorm_shows_only_under_emulation() {
    // An RMSNorm: fusion leaves it decomposed (a decomposed LayerNorm would become one
    // layer_norm op), so its squares overflow fp16.
    let fx = Fixture::load("precision", "rmsnorm_decomposed");
    let dir = package_dir("verify_rmsnorm");
    let inputs = fx.input_files();
    let expected = read_npy(&fx.output_files()[0].1);
    let expected = expected.float().unwrap();
    let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));

    // fp32: finite and equal to ONNX Runtime's output.
    let p32 = dir.join("layernorm_fp32.mlpackage");
    pipeline::convert(&options(
        fx.model_path(),
        p32.clone(),
        Precision::Fp32,
        Some(ConvertVerify::default()),
    ))
    .unwrap();
    let out = pipeline::run_package(&p32, &inputs, RunOptions::default()).unwrap();
    let y = out[0].1.float().unwrap();
    assert!(y.iter().all(|v| v.is_finite()));
    let err = y
        .iter()
        .zip(expected.iter())
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(err <= 1e-4 * scale, "fp32 max error {err}");

    // fp16 (random verification inputs in [-1, 1) do not overflow, so convert passes).
    let p16 = dir.join("layernorm_fp16.mlpackage");
    let report = pipeline::convert(&options(
        fx.model_path(),
        p16.clone(),
        Precision::Fp16,
        Some(ConvertVerify::default()),
    ))
    .unwrap();
    assert!(report.verify.unwrap().passed);
    let program = read_package(&p16).unwrap();
    let x = read_npy(&inputs[0].1);
    let feed = std::collections::BTreeMap::from([("x".to_string(), x.clone())]);
    let pow_output = |emulate: bool| {
        let mut squared = None;
        let outs = interp::run_with_observer(
            program.main(),
            &feed,
            RunOptions {
                emulate_fp16: emulate,
            },
            |name, v| {
                if name == "squared" {
                    squared = Some(v.clone());
                }
            },
        )
        .unwrap();
        (squared.expect("the pow output"), outs[0].1.clone())
    };
    let (squared, y16) = pow_output(true);
    assert!(
        squared.float().unwrap().iter().any(|v| v.is_infinite()),
        "x^2 overflows fp16"
    );
    let y16 = y16.float().unwrap().clone();
    let err16 = y16
        .iter()
        .zip(expected.iter())
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        err16 > 0.5 * scale,
        "the emulated fp16 output is wrong: max error {err16}, scale {scale}"
    );
    let (squared, y_plain) = pow_output(false);
    assert!(
        squared.float().unwrap().iter().all(|v| v.is_finite()),
        "without emulation nothing overflows"
    );
    let err_plain = y_plain
        .float()
        .unwrap()
        .iter()
        .zip(expected.iter())
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        err_plain <= 1e-2 * scale,
        "fp16 weights alone are harmless: {err_plain}"
    );

    // `run --emulate-fp16` shows it too.
    let (pkg, model) = (p16.to_str().unwrap(), fx.model_path());
    let x_arg = format!("x={}", inputs[0].1.display());
    let run_dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            pkg,
            "--input",
            &x_arg,
            "-o",
            run_dir.path().to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = mlpack(&args);
        assert!(o.status.success(), "{}", text(&o));
        read_npy(&run_dir.path().join("y.npy"))
    };
    assert_eq!(run(&["--emulate-fp16"]).float().unwrap(), &y16);
    assert_ne!(run(&[]).float().unwrap(), &y16);

    // verify on the fixture input fails and points at the pow op; without emulation it passes.
    let npz = run_dir.path().join("x.npz");
    write_npz(&npz, &[("x", &x)], false);
    let (model, npz) = (model.to_str().unwrap(), npz.to_str().unwrap());
    let o = mlpack(&["verify", model, pkg, "--inputs", npz, "--per-op", "--json"]);
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let first = &report["per_op"]["first_divergence"];
    assert_eq!(first["value"]["op_type"], "pow", "{report:#}");
    assert_eq!(first["value"]["origin"], "square", "{report:#}");
    assert!(
        first["reason"].as_str().unwrap().contains("non-finite"),
        "{first}"
    );
    assert!(
        report["per_op"]["casts"].as_array().unwrap().len() >= 2,
        "input and output casts are listed"
    );
    let o = mlpack(&["verify", model, pkg, "--inputs", npz, "--no-emulate-fp16"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // convert with inputs in the overflowing range fails (exit 6, nothing written) unless
    // --allow-degraded.
    let out = run_dir.path().join("ln.mlpackage");
    let args = [
        "convert",
        model,
        "-o",
        out.to_str().unwrap(),
        "--input-range",
        "x=-900,900",
    ];
    let o = mlpack(&args);
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    assert!(text(&o).contains("nothing written"), "{}", text(&o));
    assert!(!out.exists());
    let o = mlpack(&[&args[..], &["--allow-degraded"]].concat());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("warning: verification failed"),
        "{}",
        text(&o)
    );
    assert!(out.exists());
}

#[test]
fn bad_npz_inputs_are_explained_with_the_signature() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture::load("models", "small_cnn_op17");
    let model = fx.model_path();
    let pkg = dir.path().join("s.mlpackage");
    pipeline::convert(&options(model.clone(), pkg.clone(), Precision::Fp32, None)).unwrap();
    let x = read_npy(&fx.input_files()[0].1);
    let wrong_shape = Value::Float(ndarray::ArrayD::zeros(ndarray::IxDyn(&[1, 3, 8, 8])));
    let wrong_dtype = Value::Int(ndarray::ArrayD::zeros(ndarray::IxDyn(&[1, 3, 16, 16])));
    let cases: [(&str, Members, &str); 4] = [
        ("shape", vec![("x", &wrong_shape)], "shape [1, 3, 8, 8]"),
        ("dtype", vec![("x", &wrong_dtype)], "holds int values"),
        ("missing", vec![], "x is missing"),
        ("extra", vec![("x", &x), ("z", &x)], "'z' is not an input"),
    ];
    for (name, members, message) in cases {
        let npz = dir.path().join(format!("{name}.npz"));
        write_npz(&npz, &members, name == "dtype");
        let o = mlpack(&[
            "verify",
            model.to_str().unwrap(),
            pkg.to_str().unwrap(),
            "--inputs",
            npz.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(4), "{name}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(
            err.contains(message) && err.contains("expects x: fp32 [1,3,16,16]"),
            "{name}: {err}"
        );
        assert!(
            err.contains(&format!("{name}.npz")),
            "names the file: {err}"
        );
    }
    let good = dir.path().join("good.npz");
    write_npz(&good, &[("x", &x)], true);
    let o = mlpack(&[
        "verify",
        model.to_str().unwrap(),
        pkg.to_str().unwrap(),
        "--inputs",
        good.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("verify: 1 given input, worst output y: cosine 1.00000, SNR ")
            && text(&o).contains("— ok"),
        "{}",
        text(&o)
    );
}

#[test]
fn mismatched_models_and_convert_reporting() {
    let dir = tempfile::tempdir().unwrap();
    let cnn = Fixture::load("models", "small_cnn_op17").model_path();
    let mlp = Fixture::load("models", "mlp_op17").model_path();
    let pkg = dir.path().join("cnn.mlpackage");
    let o = mlpack(&[
        "convert",
        cnn.to_str().unwrap(),
        "-o",
        pkg.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["verify"]["passed"], true, "{report:#}");
    assert_eq!(report["verify"]["samples"], 3);
    assert_eq!(report["verify"]["thresholds"]["min_cosine"], 0.999);

    let o = mlpack(&[
        "convert",
        cnn.to_str().unwrap(),
        "-o",
        pkg.to_str().unwrap(),
        "--force",
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    let lines: Vec<&str> = stdout.lines().collect();
    // small_cnn: two Conv + BatchNormalization pairs, global average pooling then Flatten.
    assert_eq!(
        lines.get(1).copied(),
        Some("fused: 2 conv_batch_norm, 1 reduce"),
        "{stdout}"
    );
    let line = lines.get(2).copied().unwrap_or_default();
    assert!(
        line.starts_with("verify: 3 random inputs (x: values [-1, 1)), worst output y: cosine ")
            && line.ends_with("— ok"),
        "{line}"
    );
    let o = mlpack(&[
        "convert",
        cnn.to_str().unwrap(),
        "-o",
        pkg.to_str().unwrap(),
        "--force",
        "--quiet",
    ]);
    assert!(o.status.success() && o.stdout.is_empty(), "{}", text(&o));
    let o = mlpack(&[
        "convert",
        cnn.to_str().unwrap(),
        "-o",
        pkg.to_str().unwrap(),
        "--force",
        "--no-verify",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(report["verify"].is_null(), "{report:#}");

    let o = mlpack(&["verify", mlp.to_str().unwrap(), pkg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(text(&o).contains("input 'x' differs"), "{}", text(&o));

    let help = String::from_utf8_lossy(&mlpack(&["verify", "--help"]).stdout).into_owned();
    assert!(help.contains("code 6"), "{help}");
    let help = String::from_utf8_lossy(&mlpack(&["--help"]).stdout).into_owned();
    assert!(help.contains("6 verification failed"), "{help}");
}
