//! The hostile `.pt2` archives of `fixtures/pt2_bad/` (written by fixtures/make_fixtures.py,
//! described in its cases.json): opening each is a clean invalid-input error (exit 4) that
//! names the problem, and nothing in them is ever run.

use mlpack::error::ExitCode;
use mlpack::frontend::torch::archive;
use std::path::Path;

/// What each case's error must mention. Cases absent here are checked elsewhere: the
/// schema-version ones by the converter, which reads the program JSON.
const EXPECTED: &[(&str, &[&str])] = &[
    ("absurd_shape", &["stem.weight", "more than mlpack accepts"]),
    (
        "os_system",
        &[
            "pickle global 'posix.system' is not allowed",
            "serialized_state_dict.pt",
        ],
    ),
    (
        "os_system_archive",
        &[
            "pickle global 'posix.system' is not allowed",
            "data/weights/model.pt",
        ],
    ),
    ("size_mismatch", &["stem.weight", "offset 100"]),
    ("storage_not_multiple", &["866 bytes", "whole number"]),
    ("truncated_storage", &["stem.weight", "reads element"]),
    ("zip_slip", &["../../evil.txt", "leaves the archive"]),
    ("zip_slip_absolute", &["/tmp/evil", "leaves the archive"]),
];

#[test]
fn hostile_archives_are_invalid_input_naming_the_problem() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pt2_bad");
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    for (case, needles) in EXPECTED {
        let meta = &cases[case];
        assert_eq!(meta["exit_code"], 4, "{case}");
        let path = dir.join(meta["file"].as_str().unwrap());
        let err = match archive::open(&path) {
            Ok(_) => panic!("{case}: opened without error"),
            Err(e) => e,
        };
        let text = err.to_string();
        assert_eq!(err.exit_code(), ExitCode::InvalidInput, "{case}: {text}");
        assert!(!text.contains('\n'), "{case}: not one line: {text}");
        assert!(
            text.starts_with(&path.display().to_string()),
            "{case}: {text}"
        );
        for needle in *needles {
            assert!(
                text.contains(needle),
                "{case}: '{needle}' missing from: {text}"
            );
        }
        if let Some(marker) = meta["must_not_exist"].as_str() {
            assert!(!Path::new(marker).exists(), "{case}: {marker} exists");
        }
    }
}

/// Through the CLI, every hostile archive of cases.json (the schema-version and TorchScript
/// cases included) ends `convert` with the documented exit code and a one-line error naming
/// the file, before anything is written: no package, no temporary directory, and nothing the
/// archive asks to run.
#[test]
fn converting_a_hostile_archive_writes_nothing() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pt2_bad");
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let cases = cases.as_object().unwrap();
    assert!(cases.len() >= 10, "the hostile archives are missing");
    for (case, meta) in cases {
        let out_dir = tempfile::tempdir().unwrap();
        let output = out_dir.path().join("out.mlpackage");
        let input = dir.join(meta["file"].as_str().unwrap());
        let run = std::process::Command::new(env!("CARGO_BIN_EXE_mlpack"))
            .args([
                "convert",
                input.to_str().unwrap(),
                "-o",
                output.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(
            run.status.code(),
            meta["exit_code"].as_i64().map(|c| c as i32),
            "{case}: {stderr}"
        );
        let line = stderr.trim_end();
        assert!(!line.contains('\n'), "{case}: not one line: {line}");
        assert!(
            line.starts_with(&format!("mlpack: error: {}", input.display())),
            "{case}: {line}"
        );
        let left: Vec<_> = std::fs::read_dir(out_dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{case}: left {left:?}");
        if let Some(marker) = meta["must_not_exist"].as_str() {
            assert!(!Path::new(marker).exists(), "{case}: {marker} exists");
        }
    }
}
