//! Stateful packages end to end on `stateful/kv_decoder_ts17` (a decoder step whose graph takes
//! `k_cache`/`v_cache` and returns them updated as `k_cache_out`/`v_cache_out`, with ONNX
//! Runtime's logits for 4 consecutive steps, each fed the caches ORT returned the step before):
//! `convert --state` (and the pairing by name) writes a package with two fp16 states, which
//! `run --state-dir` steps like ONNX Runtime and `verify --steps` accepts; bad pairings are
//! usage errors. The packages are written under `target/test-packages`, where the CI script
//! checks them with coremltools (including that the description lists the states).

mod common;

use common::cli::{mlpack, text};
use common::fixtures::Fixture;
use common::packages::package_dir;
use mlpack::backend::read_package;
use mlpack::interp::Value;
use std::path::{Path, PathBuf};

/// fp16 compute against ONNX Runtime's fp32 logits (|logits| ≤ 2 here).
const TOLERANCE: f32 = 1e-2;

fn fixture() -> Fixture {
    Fixture::load("stateful", "kv_decoder_ts17")
}

/// Each step's (input_ids, position) files and ORT logits file, steps 0‥3.
fn steps(fx: &Fixture) -> Vec<(Vec<(String, PathBuf)>, PathBuf)> {
    let mut all = vec![(fx.input_files(), fx.output_files()[0].1.clone())];
    for set in &fx.meta.extra_sets {
        let (inputs, outputs) = fx.extra_set_files(set);
        all.push((inputs, outputs[0].1.clone()));
    }
    for (inputs, _) in &mut all {
        inputs.retain(|(name, _)| name == "input_ids" || name == "position");
    }
    all
}

fn read_npy(path: &Path) -> Vec<f32> {
    let value = mlpack::npy::parse(&std::fs::read(path).unwrap()).unwrap();
    match value {
        Value::Float(a) => a.iter().copied().collect(),
        other => panic!("{}: not a float array ({})", path.display(), other.kind()),
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// `mlpack run PACKAGE` on one step's inputs (with `--state-dir` when given); the logits.
fn run_step(package: &Path, inputs: &[(String, PathBuf)], state_dir: Option<&Path>) -> Vec<f32> {
    let out = package.with_extension("out");
    let mut args: Vec<String> = vec!["run".into(), package.display().to_string()];
    for (name, file) in inputs {
        args.push("--input".into());
        args.push(format!("{name}={}", file.display()));
    }
    if let Some(dir) = state_dir {
        args.push("--state-dir".into());
        args.push(dir.display().to_string());
    }
    args.extend(["-o".into(), out.display().to_string(), "-q".into()]);
    let o = mlpack(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "run: {}", text(&o));
    read_npy(&out.join("logits.npy"))
}

fn convert(package: &Path, extra: &[&str]) -> std::process::Output {
    let model = fixture().model_path();
    let mut args = vec![
        "convert",
        model.to_str().unwrap(),
        "-o",
        package.to_str().unwrap(),
        "--force",
    ];
    args.extend_from_slice(extra);
    mlpack(&args)
}

#[test]
fn kv_cache_package_steps_like_onnx_runtime() {
    let dir = package_dir("states_steps");
    let package = dir.join("kv_decoder.mlpackage");
    let o = convert(
        &package,
        &[
            "--target",
            "iOS18",
            "--state",
            "k_cache=k_cache_out",
            "--state",
            "v_cache=v_cache_out",
        ],
    );
    assert!(o.status.success(), "convert: {}", text(&o));
    assert!(
        text(&o).contains("states (from --state): k_cache=k_cache_out, v_cache=v_cache_out"),
        "{}",
        text(&o)
    );

    let program = read_package(&package).unwrap();
    let main = program.main();
    let names = |vars: &[mlpack::ir::Var]| vars.iter().map(|v| v.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&main.states), ["k_cache", "v_cache"]);
    assert_eq!(names(&main.inputs), ["input_ids", "position"]);
    assert_eq!(main.block.outputs, ["logits"]);
    for state in &main.states {
        assert_eq!(state.ty.to_string(), "tensor<fp16, [1, 2, 16, 16]>");
    }

    let o = mlpack(&["inspect", package.to_str().unwrap()]);
    let listing = text(&o);
    let states_at = listing.find("states:\n").expect("inspect lists the states");
    assert!(
        listing[states_at..].contains("k_cache                  fp16   [1, 2, 16, 16]"),
        "{listing}"
    );

    let state_dir = dir.join("states");
    let steps = steps(&fixture());
    assert_eq!(steps.len(), 4, "the fixture has 4 steps");
    for (i, (inputs, expected)) in steps.iter().enumerate() {
        let logits = run_step(&package, inputs, Some(&state_dir));
        let diff = max_abs_diff(&logits, &read_npy(expected));
        assert!(diff <= TOLERANCE, "step {i}: max |mlpack − ORT| = {diff}");
    }
    for state in ["k_cache", "v_cache"] {
        let cache = read_npy(&state_dir.join(format!("{state}.npy")));
        assert_eq!(cache.len(), 2 * 16 * 16);
    }

    // Without the caches of the earlier steps, the last step does not give ORT's logits.
    let (inputs, expected) = &steps[3];
    let fresh = run_step(&package, inputs, None);
    assert!(max_abs_diff(&fresh, &read_npy(expected)) > 10.0 * TOLERANCE);
}

#[test]
fn cache_pairs_are_found_by_name_and_verify_steps_them() {
    let dir = package_dir("states_detected");
    let package = dir.join("kv_decoder.mlpackage");
    let o = convert(&package, &["--target", "iOS18"]);
    assert!(o.status.success(), "convert: {}", text(&o));
    assert!(
        text(&o).contains("states (paired by name): k_cache=k_cache_out, v_cache=v_cache_out"),
        "{}",
        text(&o)
    );
    let model = fixture().model_path();
    let o = mlpack(&[
        "verify",
        model.to_str().unwrap(),
        package.to_str().unwrap(),
        "--steps",
        "4",
    ]);
    assert!(o.status.success(), "verify: {}", text(&o));
    assert!(
        text(&o).contains("3 random inputs × 4 steps"),
        "{}",
        text(&o)
    );
}

#[test]
fn before_ios18_the_caches_stay_inputs_and_outputs() {
    let dir = package_dir("states_ios17");
    let package = dir.join("kv_decoder.mlpackage");
    let o = convert(&package, &[]);
    assert!(o.status.success(), "convert: {}", text(&o));
    let program = read_package(&package).unwrap();
    assert!(program.main().states.is_empty());
    assert_eq!(program.main().inputs.len(), 4);
}

#[test]
fn bad_pairings_are_usage_errors() {
    let dir = package_dir("states_bad");
    let package = dir.join("never.mlpackage");
    let cases: &[(&[&str], &str)] = &[
        (
            &["--target", "iOS18", "--state", "kv=k_cache_out"],
            "--state kv=k_cache_out: 'kv' is not a graph input",
        ),
        (
            &["--target", "iOS18", "--state", "k_cache=present"],
            "'present' is not a graph output",
        ),
        (
            &["--target", "iOS18", "--state", "k_cache=logits"],
            "a state's new value must have the same shape",
        ),
        (
            &["--state", "k_cache=k_cache_out"],
            "states need --target iOS18 or later",
        ),
        (
            &["--target", "iOS18", "--state", "k_cache"],
            "is not IN=OUT",
        ),
    ];
    for (flags, expected) in cases {
        let o = convert(&package, flags);
        assert_eq!(o.status.code(), Some(2), "{flags:?}: {}", text(&o));
        assert!(text(&o).contains(expected), "{flags:?}: {}", text(&o));
        assert!(!package.exists());
    }
}

#[test]
fn state_dir_needs_a_stateful_package() {
    let dir = package_dir("states_stateless");
    let package = dir.join("kv_decoder.mlpackage");
    assert!(convert(&package, &["--no-verify"]).status.success());
    let fx = fixture();
    let mut args = vec!["run".to_string(), package.display().to_string()];
    for (name, file) in fx.input_files() {
        args.push("--input".into());
        args.push(format!("{name}={}", file.display()));
    }
    args.extend([
        "--state-dir".into(),
        dir.join("s").display().to_string(),
        "-o".into(),
        dir.join("out").display().to_string(),
    ]);
    let o = mlpack(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("the package has no states"),
        "{}",
        text(&o)
    );
}

#[test]
fn each_function_of_a_multifunction_package_keeps_the_states() {
    let dir = package_dir("states_multifunction");
    let package = dir.join("kv_decoder.mlpackage");
    let o = convert(
        &package,
        &[
            "--target",
            "iOS18",
            "--function",
            "first:input_ids=1,1",
            "--function",
            "second:input_ids=1,1",
        ],
    );
    assert!(o.status.success(), "convert: {}", text(&o));
    assert!(
        text(&o).contains("states: k_cache=k_cache_out, v_cache=v_cache_out"),
        "{}",
        text(&o)
    );
    let program = read_package(&package).unwrap();
    assert_eq!(program.function_names(), ["first", "second"]);
    for function in &program.functions {
        let states: Vec<&str> = function.states.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(states, ["k_cache", "v_cache"], "function {}", function.name);
    }

    let state_dir = dir.join("states");
    for (i, (inputs, expected)) in steps(&fixture()).iter().enumerate() {
        let out = dir.join("out");
        let mut args = vec![
            "run".to_string(),
            package.display().to_string(),
            "--function".into(),
            "second".into(),
            "--state-dir".into(),
            state_dir.display().to_string(),
            "-o".into(),
            out.display().to_string(),
            "-q".into(),
        ];
        for (name, file) in inputs {
            args.push("--input".into());
            args.push(format!("{name}={}", file.display()));
        }
        let o = mlpack(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(o.status.success(), "run: {}", text(&o));
        let diff = max_abs_diff(&read_npy(&out.join("logits.npy")), &read_npy(expected));
        assert!(diff <= TOLERANCE, "step {i}: max |mlpack − ORT| = {diff}");
    }

    let model = fixture().model_path();
    let o = mlpack(&[
        "verify",
        model.to_str().unwrap(),
        package.to_str().unwrap(),
        "--function",
        "second",
        "--steps",
        "4",
    ]);
    assert!(o.status.success(), "verify: {}", text(&o));
}

#[test]
fn split_refuses_a_stateful_package() {
    let dir = package_dir("states_split");
    let package = dir.join("kv_decoder.mlpackage");
    assert!(convert(&package, &["--target", "iOS18", "--no-verify"])
        .status
        .success());
    let chain = dir.join("chain");
    let o = mlpack(&[
        "split",
        package.to_str().unwrap(),
        "-o",
        chain.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("a stateful package (states k_cache, v_cache)"),
        "{}",
        text(&o)
    );
    assert!(!chain.exists());
}
