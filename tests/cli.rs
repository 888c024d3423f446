//! End-to-end tests of the `mlpack` binary: exit codes, one-line errors, no partial output.

mod common;

use common::cli::mlpack;

use common::packages::package_dir;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The one-line error of a failed run, checked to be exactly one line.
fn error_line(o: &Output) -> String {
    let text = stderr(o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "expected a one-line error, got:\n{text}");
    assert!(lines[0].starts_with("mlpack: error: "), "{text}");
    lines[0].to_string()
}

/// The directory holds nothing but `expected` (no package, no leftover temp dir).
fn assert_dir_only(dir: &Path, expected: &[&str]) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, expected, "unexpected files in {}", dir.display());
}

fn small_model() -> PathBuf {
    fixture("models/mlp_op17/model.onnx")
}

#[test]
fn help_and_version_succeed() {
    for args in [
        &["--help"][..],
        &["--version"],
        &["convert", "--help"],
        &["inspect", "--help"],
        &["run", "--help"],
    ] {
        let o = mlpack(args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    }
    let help = String::from_utf8_lossy(&mlpack(&["--help"]).stdout).into_owned();
    assert!(help.contains("Exit codes"), "{help}");
}

#[test]
fn unsupported_ops_are_listed_at_once_before_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mlpackage");
    let o = mlpack(&[
        "convert",
        fixture("bad/unsupported_ops/model.onnx").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let line = error_line(&o);
    assert!(
        line.contains("NonMaxSuppression") && line.contains("Foo"),
        "{line}"
    );
    assert!(
        line.contains("×2") || line.contains("x2") || line.contains("2 nodes"),
        "{line}"
    );
    assert_dir_only(dir.path(), &[]);
}

#[test]
fn corrupt_and_truncated_models_are_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.onnx");
    std::fs::write(&garbage, b"\xff\xff\xff\xff this is not protobuf").unwrap();
    let truncated = dir.path().join("truncated.onnx");
    let bytes = std::fs::read(small_model()).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    for input in [&garbage, &truncated] {
        let out = dir.path().join("out.mlpackage");
        let o = mlpack(&[
            "convert",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_eq!(
            o.status.code(),
            Some(4),
            "{}: {}",
            input.display(),
            stderr(&o)
        );
        assert!(error_line(&o).contains(input.file_name().unwrap().to_str().unwrap()));
        assert!(!out.exists());
    }
}

#[test]
fn missing_external_data_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mlpackage");
    let o = mlpack(&[
        "convert",
        fixture("bad/missing_external/model.onnx").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(error_line(&o).contains("weights.bin"));
    assert_dir_only(dir.path(), &[]);
}

#[test]
fn unknown_target_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mlpackage");
    let o = mlpack(&[
        "convert",
        small_model().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--target",
        "iOS99",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(error_line(&o).contains("iOS99"));
    assert_dir_only(dir.path(), &[]);
}

#[test]
fn existing_output_needs_force_and_input_is_never_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mlpackage");
    let model = small_model();
    let args = [
        "convert",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--quiet",
    ];
    assert!(mlpack(&args).status.success());
    let first = std::fs::read(out.join("Data/com.apple.CoreML/model.mlmodel")).unwrap();

    let o = mlpack(&args);
    assert_eq!(o.status.code(), Some(2));
    assert!(error_line(&o).contains("--force"));

    let mut forced = args.to_vec();
    forced.push("--force");
    assert!(mlpack(&forced).status.success());
    assert_eq!(
        std::fs::read(out.join("Data/com.apple.CoreML/model.mlmodel")).unwrap(),
        first
    );
    assert_dir_only(dir.path(), &["out.mlpackage"]);

    let o = mlpack(&[
        "convert",
        out.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(error_line(&o).contains("the output is the input"));
    assert_eq!(
        std::fs::read(out.join("Data/com.apple.CoreML/model.mlmodel")).unwrap(),
        first
    );
}

#[test]
fn missing_output_folder_names_the_requested_package() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("missing").join("out.mlpackage");
    let model = small_model();
    let o = mlpack(&[
        "convert",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(5));
    let line = error_line(&o);
    assert!(line.contains(out.to_str().unwrap()), "{line}");
    assert!(!line.contains(".tmp-"), "{line}");
    assert_dir_only(dir.path(), &[]);
}

#[test]
fn dynamic_batch_needs_a_dim_and_the_error_shows_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mlpackage");
    let model = fixture("models/small_cnn_dynamic/model.onnx");
    let o = mlpack(&[
        "convert",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let line = error_line(&o);
    assert!(
        line.contains("dynamic dimension 'batch'") && line.contains("--dim batch=1"),
        "{line}"
    );
    assert_dir_only(dir.path(), &[]);
}

#[test]
fn inspect_describes_onnx_and_packages_as_json() {
    let out = package_dir("cli_inspect").join("out.mlpackage");
    let model = small_model();
    assert!(mlpack(&[
        "convert",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--quiet"
    ])
    .status
    .success());
    for path in [&model, &out] {
        let o = mlpack(&["inspect", path.to_str().unwrap(), "--json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(v["inputs"].as_array().is_some_and(|a| !a.is_empty()), "{v}");
        assert!(
            v["outputs"].as_array().is_some_and(|a| !a.is_empty()),
            "{v}"
        );
    }
    let o = mlpack(&["inspect", out.to_str().unwrap(), "--mil"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("func main("));
}

#[test]
fn inspect_coverage_names_the_nodes_that_would_not_convert_and_why() {
    let bad = fixture("bad/unsupported_ops/model.onnx");
    let o = mlpack(&["inspect", bad.to_str().unwrap(), "--coverage", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["total"].as_u64(), v["convertible"].as_u64()),
        (Some(3), Some(0)),
        "{v}"
    );
    let rows: Vec<(&str, &str, &str)> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            assert_eq!(n["convertible"], false, "{n}");
            (
                n["name"].as_str().unwrap(),
                n["refusal"].as_str().unwrap(),
                n["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (
                "NonMaxSuppression -> sel_a",
                "unsupported_op",
                "no converter for NonMaxSuppression"
            ),
            (
                "NonMaxSuppression -> sel_b",
                "unsupported_op",
                "no converter for NonMaxSuppression"
            ),
            (
                "Foo -> foo",
                "unsupported_op",
                "no converter for Foo [com.example]"
            ),
        ]
    );
    let o = mlpack(&["inspect", bad.to_str().unwrap(), "--coverage"]);
    let table = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(table.contains("0 of 3 nodes convert"), "{table}");
    assert!(
        table.lines().any(|l| l.contains("Foo -> foo")
            && l.contains("Foo [com.example]")
            && l.contains("no ")
            && l.contains("unsupported op: no converter for Foo [com.example]")),
        "{table}"
    );

    let good = small_model();
    let o = mlpack(&["inspect", good.to_str().unwrap(), "--coverage", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let nodes = v["nodes"].as_array().unwrap();
    assert!(!nodes.is_empty());
    assert!(
        nodes
            .iter()
            .all(|n| n["convertible"] == true && n.get("reason").is_none()),
        "{v}"
    );
    assert_eq!(v["convertible"], v["total"]);

    let o = mlpack(&[
        "inspect",
        fixture("pt2/mobilenet_v3/model.pt2").to_str().unwrap(),
        "--coverage",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(error_line(&o).contains("--coverage"));
}

/// Every file of a package, by relative path, with its bytes.
fn package_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                files.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn output_is_byte_identical_across_runs_thread_counts_and_rewrites() {
    let dir = package_dir("cli_determinism");
    let model = fixture("models/small_cnn_op17/model.onnx");
    let mut packages = Vec::new();
    for (i, threads) in ["1", "2", "2"].iter().enumerate() {
        let out = dir.join(format!("run{i}.mlpackage"));
        let o = Command::new(env!("CARGO_BIN_EXE_mlpack"))
            .env("RAYON_NUM_THREADS", threads)
            .args([
                "convert",
                model.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--quiet",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        packages.push(package_files(&out));
    }
    assert!(packages[0].iter().any(|(p, _)| p.ends_with("weight.bin")));
    assert_eq!(packages[0], packages[1]);
    assert_eq!(packages[1], packages[2]);

    // Re-writing a package with the same flags reproduces it exactly.
    let again = dir.join("again.mlpackage");
    let first = dir.join("run0.mlpackage");
    let o = mlpack(&[
        "convert",
        first.to_str().unwrap(),
        "-o",
        again.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(package_files(&again), packages[0]);
}

#[test]
fn a_closed_stdout_stops_the_command_without_a_panic() {
    // `mlpack inspect M | head`: the reader is gone before anything is printed.
    let model = fixture("transformers/gpt2_ts17/model.onnx");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mlpack"))
        .args(["inspect", model.to_str().unwrap(), "--mil"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert!(
            o.status.success() || o.status.signal() == Some(libc::SIGPIPE),
            "{:?}",
            o.status
        );
    }
}
