//! Issue 12 item 6: `convert --function` writes one iOS18 package holding several functions of
//! one source model, each converted at its own input shapes; `run`, `verify` and `inspect`
//! take `--function NAME`; `convert` and the compression commands refuse multifunction
//! packages as input.
//!
//! The `flexible/seq_attention` fixture (symbolic `seq` on its token ids) becomes functions
//! `seq3` and `seq17`; each function's output must match the ONNX Runtime outputs saved with
//! the fixture at that length, and the weights (identical in both functions) must be in
//! weight.bin once: the file equals the one a single-function conversion writes.
//!
//! Packages go under `target/test-packages/multifunction`, where `scripts/test.sh` checks them
//! with coremltools (`scripts/coreml_check.py` loads every function of a multifunction
//! package with `MLModel(path, function_name=…)`).

mod common;

use common::cli::{mlpack, text};
use common::fixtures::Fixture;
use common::packages::package_dir;
use mlpack::backend::read_package;
use mlpack::interp::Value;
use mlpack::ir::Dim;
use std::path::{Path, PathBuf};

const WEIGHTS: &str = "Data/com.apple.CoreML/weights/weight.bin";

/// `convert` through the CLI; panics with its output unless it succeeds.
fn convert(args: &[&str]) -> String {
    let output = mlpack(&[&["convert"], args].concat());
    assert!(output.status.success(), "{args:?}: {}", text(&output));
    text(&output)
}

fn read_npy(path: &Path) -> Value {
    mlpack::npy::parse(&std::fs::read(path).unwrap()).unwrap()
}

/// Max |a − b| relative to max |b|.
fn relative_error(a: &Value, b: &Value) -> f32 {
    let (a, b) = (a.to_f32_array().unwrap(), b.to_f32_array().unwrap());
    assert_eq!(a.shape(), b.shape());
    let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b.iter())
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// The fixture's saved input and ONNX Runtime output at sequence length `seq`.
fn length_files(fx: &Fixture, seq: usize) -> (PathBuf, PathBuf) {
    let dir = fx.dir.join(format!("seq{seq}"));
    (dir.join("input_0.npy"), dir.join("output_0.npy"))
}

fn json(args: &[&str]) -> serde_json::Value {
    let output = mlpack(args);
    assert!(output.status.success(), "{args:?}: {}", text(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn two_functions_match_onnx_runtime_and_share_their_weights() {
    let fx = Fixture::load("flexible", "seq_attention");
    let model = fx.model_path();
    let model = model.to_str().unwrap();
    let dir = package_dir("multifunction");
    let package = dir.join("seq_attention_seq3_seq17.mlpackage");
    let pkg = package.to_str().unwrap();
    let printed = convert(&[
        model,
        "-o",
        pkg,
        "--target",
        "iOS18",
        "--precision",
        "fp32",
        "--function",
        "seq3:ids=1,3",
        "--function",
        "seq17:ids=1,17",
        "--default-function",
        "seq17",
    ]);
    assert!(printed.contains("2 functions, default seq17"), "{printed}");

    let program = read_package(&package).unwrap();
    assert_eq!(program.function_names(), ["seq17", "seq3"]);
    for (function, seq) in program.functions.iter().zip([17, 3]) {
        assert_eq!(
            function.inputs[0].ty.shape,
            [Dim::Fixed(1), Dim::Fixed(seq)]
        );
    }

    // Each function against ONNX Runtime at its length; no --function runs the default.
    for (function, seq) in [(Some("seq3"), 3), (Some("seq17"), 17), (None, 17)] {
        let (input, expected) = length_files(&fx, seq);
        let out_dir = dir.join(format!("run_{}", function.unwrap_or("default")));
        let input = format!("ids={}", input.display());
        let mut args = vec![
            "run",
            pkg,
            "--input",
            &input,
            "-o",
            out_dir.to_str().unwrap(),
        ];
        if let Some(f) = function {
            args.extend(["--function", f]);
        }
        let output = mlpack(&args);
        assert!(output.status.success(), "{args:?}: {}", text(&output));
        let err = relative_error(&read_npy(&out_dir.join("y.npy")), &read_npy(&expected));
        println!("{function:?}: seq {seq} max rel err {err:.2e}");
        assert!(err <= 1e-4, "{function:?}: max rel err {err}");
    }

    // The weights are stored once: weight.bin is the file a one-function conversion writes.
    let single = dir.join("seq_attention_seq3.mlpackage");
    convert(&[
        model,
        "-o",
        single.to_str().unwrap(),
        "--target",
        "iOS18",
        "--precision",
        "fp32",
        "--input-shape",
        "ids=1,3",
    ]);
    let both = std::fs::read(package.join(WEIGHTS)).unwrap();
    let one = std::fs::read(single.join(WEIGHTS)).unwrap();
    assert!(one.len() > 4096, "the fixture has weights in weight.bin");
    assert_eq!(both, one, "weight.bin of the two-function package");

    // inspect lists the functions and describes the one asked for.
    let report = json(&["inspect", pkg, "--json"]);
    let names: Vec<&str> = report["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["seq17", "seq3"]);
    assert_eq!(report["function"], "seq17");
    let report = json(&["inspect", pkg, "--function", "seq3", "--json"]);
    assert_eq!(report["function"], "seq3");
    assert_eq!(report["inputs"][0]["shape"], serde_json::json!(["1", "3"]));

    // verify runs the ONNX source at the chosen function's shapes.
    for function in ["seq3", "seq17"] {
        let report = json(&["verify", model, pkg, "--function", function, "--json"]);
        assert_eq!(report["passed"], true, "{function}: {report}");
    }

    // An unknown function is a usage error listing the functions.
    for args in [
        vec!["run", pkg, "--function", "seq4"],
        vec!["inspect", pkg, "--function", "seq4"],
        vec!["verify", model, pkg, "--function", "seq4"],
    ] {
        let output = mlpack(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output));
        assert!(
            text(&output).contains("no function 'seq4' (functions: seq17, seq3)"),
            "{args:?}: {}",
            text(&output)
        );
    }

    // An ONNX model has no functions to choose from.
    let output = mlpack(&["inspect", model, "--function", "seq3"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("--function seq3:") && text(&output).contains("no functions"),
        "{}",
        text(&output)
    );

    // Commands that rewrite a package take single-function packages only.
    let rewritten = dir.join("rewritten.mlpackage");
    let rewritten = rewritten.to_str().unwrap();
    for command in ["convert", "quantize"] {
        let output = mlpack(&[command, pkg, "-o", rewritten]);
        assert_eq!(
            output.status.code(),
            Some(3),
            "{command}: {}",
            text(&output)
        );
        assert!(
            text(&output).contains("a multifunction package (seq17, seq3)"),
            "{command}: {}",
            text(&output)
        );
    }
}

#[test]
fn bad_function_flags_are_usage_errors() {
    let fx = Fixture::load("flexible", "seq_attention");
    let model = fx.model_path();
    let model = model.to_str().unwrap();
    let dir = package_dir("multifunction_errors");
    let out = dir.join("never.mlpackage");
    let out = out.to_str().unwrap();
    for (args, needle) in [
        (
            vec!["--function", "a:ids=1,3"],
            "needs --target iOS18 or later (got iOS17)",
        ),
        (
            vec!["--target", "iOS18", "--function", "a:idz=1,3"],
            "inputs the model does not have: 'idz' (function a) (inputs: ids)",
        ),
        (
            vec![
                "--target",
                "iOS18",
                "--function",
                "a:ids=1,3",
                "--function",
                "a:ids=1,4",
            ],
            "--function a: two functions have this name",
        ),
        (
            vec!["--target", "iOS18", "--function", "a-b:ids=1,3"],
            "'a-b' is not an identifier",
        ),
        (
            vec![
                "--target",
                "iOS18",
                "--function",
                "a:ids=1,3",
                "--default-function",
                "b",
            ],
            "--default-function b: not one of the functions (a)",
        ),
    ] {
        let output = mlpack(&[&["convert", model, "-o", out], args.as_slice()].concat());
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output));
        assert!(
            text(&output).contains(needle),
            "{args:?}: {}",
            text(&output)
        );
    }
    assert!(!Path::new(out).exists());
}
