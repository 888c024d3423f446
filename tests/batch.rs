//! `mlpack batch` end to end on `fixtures/batch/plan.json` over copies of small fixtures (an
//! ONNX MLP, a .pt2 CNN), the unsupported-operator model of `fixtures/bad` and a truncated
//! file: failure isolation, exit code, the JSON and JUnit reports, the cache, sharding, plan
//! errors and the schema.

mod common;

use common::cli::{fails_with, mlpack, stderr};
use common::fixtures::fixtures_root;
use common::packages::package_dir;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A folder holding the batch plans and the models they name, with distinct stems.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = fixtures_root();
    for f in ["plan.json", "recipe.json", "unknown_key.json"] {
        std::fs::copy(root.join("batch").join(f), dir.path().join(f)).unwrap();
    }
    for (from, to) in [
        ("models/mlp_op13/model.onnx", "mlp.onnx"),
        ("pt2/cnn/model.pt2", "cnn.pt2"),
        ("bad/unsupported_ops/model.onnx", "unsupported.onnx"),
    ] {
        std::fs::copy(root.join(from), dir.path().join(to)).unwrap();
    }
    std::fs::write(dir.path().join("truncated.onnx"), b"\x08\x07\x12").unwrap();
    dir
}

/// Runs `mlpack batch` with `args`, returning the exit code.
fn batch(args: &[&str]) -> i32 {
    let o = mlpack(&[&["batch"], args].concat());
    o.status.code().expect("exited")
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// (model, variant, status) of every item of a report.
fn statuses(report: &Value) -> Vec<(String, String, String)> {
    report["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let s = |k: &str| i[k].as_str().unwrap().to_string();
            (s("model"), s("variant"), s("status"))
        })
        .collect()
}

/// Every file under `dir` by relative path, with its bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(dir).unwrap().to_path_buf();
                files.insert(rel, std::fs::read(e.path()).unwrap());
            }
        }
    }
    files
}

const MODELS: [&str; 4] = ["cnn.pt2", "mlp.onnx", "truncated.onnx", "unsupported.onnx"];
const VARIANTS: [&str; 3] = ["fp16", "mixed", "p4"];

#[test]
fn failed_items_are_isolated_reported_and_the_rerun_is_cached() {
    let ws = workspace();
    let out = package_dir("batch_isolation");
    let reports = tempfile::tempdir().unwrap();
    let (json, xml) = (reports.path().join("r.json"), reports.path().join("r.xml"));
    let cache = reports.path().join("cache");
    let plan = ws.path().join("plan.json");
    let args = [
        path(&plan),
        "--out-dir",
        path(&out),
        "--report",
        path(&json),
        "--junit",
        path(&xml),
        "--cache",
        path(&cache),
        "--jobs",
        "3",
    ];
    let o = mlpack(&[&["batch"], &args[..]].concat());
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("mlpack: error: unsupported.onnx [p4]: "),
        "{err}"
    );
    assert!(
        err.ends_with("mlpack: error: 6 of 12 batch items failed\n"),
        "{err}"
    );

    // Items sorted by (model, variant); the good models' items all ok, the bad ones' failed.
    let report = read_json(&json);
    let expected: Vec<(String, String, String)> = MODELS
        .iter()
        .flat_map(|m| VARIANTS.iter().map(move |v| (m, v)))
        .map(|(m, v)| {
            let status = if m.starts_with("cnn") || m.starts_with("mlp") {
                "ok"
            } else {
                "failed"
            };
            (m.to_string(), v.to_string(), status.to_string())
        })
        .collect();
    assert_eq!(statuses(&report), expected);
    let totals = &report["totals"];
    assert_eq!(
        (
            totals["items"].as_u64(),
            totals["ok"].as_u64(),
            totals["failed"].as_u64()
        ),
        (Some(12), Some(6), Some(6))
    );
    for item in report["items"].as_array().unwrap() {
        let output = PathBuf::from(item["output"].as_str().unwrap());
        let stem = Path::new(item["model"].as_str().unwrap())
            .file_stem()
            .unwrap();
        assert_eq!(
            output,
            out.join(stem)
                .join(format!("{}.mlpackage", item["variant"].as_str().unwrap()))
        );
        if item["status"] == "ok" {
            assert!(output.join("Manifest.json").is_file(), "{output:?}");
            assert!(item["verify"]["verdict"].is_string(), "{item}");
            assert!(item["error"].is_null());
        } else {
            assert!(!output.exists(), "{output:?}");
            assert!(item["verify"].is_null());
        }
    }
    let error = |model: &str| {
        let item = report["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["model"] == model)
            .unwrap();
        (
            item["error"].as_str().unwrap().to_string(),
            item["exit_code"].as_u64().unwrap(),
        )
    };
    let (unsupported, code) = error("unsupported.onnx");
    assert!(
        unsupported.contains("unsupported operators: NonMaxSuppression"),
        "{unsupported}"
    );
    assert_eq!(code, 3);
    assert_eq!(error("truncated.onnx").1, 4);
    assert!(!out.join("unsupported").exists());

    // JUnit: one testcase per item, a failure element per failed item, markup escaped.
    let junit = std::fs::read_to_string(&xml).unwrap();
    assert!(junit.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites "));
    assert_eq!(junit.matches("<testcase ").count(), 12);
    assert_eq!(junit.matches("</testcase>").count(), 12);
    assert_eq!(junit.matches("<failure ").count(), 6);
    assert!(junit.contains("tests=\"12\" failures=\"6\" errors=\"0\" skipped=\"0\""));
    assert!(junit.contains("<testcase classname=\"unsupported.onnx\" name=\"p4\""));
    assert!(junit.contains("NonMaxSuppression -&gt; sel_a"), "{junit}");
    assert!(!junit.contains("-> sel_a"));

    // The same run again: every finished item is cached and its package left untouched.
    let before: Vec<(PathBuf, std::time::SystemTime, BTreeMap<PathBuf, Vec<u8>>)> = expected
        .iter()
        .filter(|(_, _, s)| s == "ok")
        .map(|(m, v, _)| {
            let p = out
                .join(Path::new(m).file_stem().unwrap())
                .join(format!("{v}.mlpackage"));
            let mtime = std::fs::metadata(p.join("Manifest.json"))
                .unwrap()
                .modified()
                .unwrap();
            let files = tree(&p);
            (p, mtime, files)
        })
        .collect();
    assert_eq!(batch(&args), 7);
    let again = read_json(&json);
    let cached = statuses(&again)
        .into_iter()
        .filter(|(_, _, s)| s == "cached")
        .count();
    assert_eq!(cached, 6, "{:?}", statuses(&again));
    assert_eq!(again["totals"]["cached"].as_u64(), Some(6));
    for (p, mtime, files) in &before {
        assert_eq!(
            std::fs::metadata(p.join("Manifest.json"))
                .unwrap()
                .modified()
                .unwrap(),
            *mtime,
            "{p:?}"
        );
        assert_eq!(&tree(p), files, "{p:?}");
    }
    // A changed recipe invalidates only the items of the variant that reads it.
    let recipe = ws.path().join("recipe.json");
    let text = std::fs::read_to_string(&recipe)
        .unwrap()
        .replace("per-tensor", "per-channel");
    std::fs::write(&recipe, text).unwrap();
    assert_eq!(batch(&args), 7);
    let third = statuses(&read_json(&json));
    let rebuilt: Vec<&(String, String, String)> =
        third.iter().filter(|(_, _, s)| s == "ok").collect();
    assert_eq!(rebuilt.len(), 2, "{third:?}");
    assert!(rebuilt.iter().all(|(_, v, _)| v == "mixed"), "{third:?}");
}

#[test]
fn shards_partition_the_items_and_write_the_same_bytes() {
    let ws = workspace();
    let plan = ws.path().join("plan.json");
    let all = package_dir("batch_unsharded");
    let reports = tempfile::tempdir().unwrap();
    let r = |name: &str| reports.path().join(name);
    assert_eq!(
        batch(&[
            path(&plan),
            "--out-dir",
            path(&all),
            "--report",
            path(&r("all.json")),
            "-q"
        ]),
        7
    );
    let mut union = Vec::new();
    for (k, shard) in ["1/2", "2/2"].into_iter().enumerate() {
        let out = package_dir(&format!("batch_shard{}", k + 1));
        let report = r(&format!("s{}.json", k + 1));
        assert_eq!(
            batch(&[
                path(&plan),
                "--shard",
                shard,
                "--out-dir",
                path(&out),
                "--report",
                path(&report),
                "-q",
                "--jobs",
                "1"
            ]),
            7
        );
        let report = read_json(&report);
        assert_eq!(report["shard"], shard);
        for (m, v, status) in statuses(&report) {
            let rel = Path::new(Path::new(&m).file_stem().unwrap()).join(format!("{v}.mlpackage"));
            if status == "ok" {
                assert_eq!(tree(&out.join(&rel)), tree(&all.join(&rel)), "{rel:?}");
            }
            union.push((m, v, status));
        }
    }
    // Items alternate between the shards in sorted order: 6 each, together every item once.
    let unsharded = statuses(&read_json(&r("all.json")));
    let mut sorted = union.clone();
    sorted.sort();
    assert_eq!(sorted, unsharded);
    assert_eq!(
        union[..6],
        unsharded.iter().step_by(2).cloned().collect::<Vec<_>>()[..]
    );
    // The merged shard reports are the unsharded report's items.
    let merged = r("merged.json");
    let o = mlpack(&[
        "batch",
        "--merge-reports",
        path(&r("s1.json")),
        path(&r("s2.json")),
        "--report",
        path(&merged),
        "--junit",
        path(&r("merged.xml")),
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    assert_eq!(statuses(&read_json(&merged)), unsharded);
    assert_eq!(
        std::fs::read_to_string(r("merged.xml"))
            .unwrap()
            .matches("<testcase ")
            .count(),
        12
    );
    fails_with(
        &[
            "batch",
            "--merge-reports",
            path(&r("s1.json")),
            path(&r("s1.json")),
        ],
        4,
        &["is also in"],
    );
    for bad in ["0/2", "3/2", "1/0"] {
        fails_with(&["batch", path(&plan), "--shard", bad], 2, &["--shard"]);
    }
}

#[test]
fn plan_errors_name_the_key_and_the_schema_lists_the_flags() {
    let ws = workspace();
    fails_with(
        &["batch", path(&ws.path().join("unknown_key.json"))],
        4,
        &["unknown_key.json: variants.p4.nbitz: unknown key for palettize"],
    );
    let o = mlpack(&["batch", "--schema"]);
    assert_eq!(o.status.code(), Some(0));
    let schema: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        schema["required"],
        serde_json::json!(["models", "variants"])
    );
    let palettize = &schema["$defs"]["palettize"]["properties"];
    for key in [
        "nbits",
        "granularity",
        "group-size",
        "group_size",
        "weight-threshold",
        "no-verify",
        "target",
    ] {
        assert!(palettize.get(key).is_some(), "{key} not in {palettize}");
    }
    assert_eq!(palettize["nbits"]["type"], "integer");
    assert_eq!(palettize["no-verify"]["type"], "boolean");
    assert_eq!(
        palettize["granularity"]["enum"],
        serde_json::json!(["per-tensor", "per-grouped-channel"])
    );
    for absent in ["output", "force", "report", "json", "input"] {
        assert!(palettize.get(absent).is_none(), "{absent}");
    }
    assert_eq!(
        schema["$defs"]["compress"]["required"],
        serde_json::json!(["command", "recipe"])
    );
    assert!(schema["$defs"]["convert"]["properties"]
        .get("input-shape")
        .is_some());
}

#[test]
fn fail_fast_skips_the_items_after_the_first_failure() {
    let ws = workspace();
    let out = package_dir("batch_fail_fast");
    let (json, xml) = (ws.path().join("r.json"), ws.path().join("r.xml"));
    let plan = ws.path().join("plan.json");
    let args = [
        path(&plan),
        "--out-dir",
        path(&out),
        "--fail-fast",
        "--jobs",
        "1",
        "--report",
        path(&json),
        "--junit",
        path(&xml),
        "-q",
    ];
    assert_eq!(batch(&args), 7);
    // One job takes the items in order: the first failure is truncated.onnx's first variant.
    let report = read_json(&json);
    let status: Vec<String> = statuses(&report).into_iter().map(|(_, _, s)| s).collect();
    assert_eq!(status[..6], ["ok"; 6]);
    assert_eq!(status[6], "failed");
    assert_eq!(status[7..], ["skipped"; 5]);
    assert_eq!(report["totals"]["skipped"].as_u64(), Some(5));
    assert!(!out.join("unsupported").exists());
    let junit = std::fs::read_to_string(&xml).unwrap();
    assert_eq!(junit.matches("<skipped ").count(), 5);
    assert_eq!(junit.matches("<failure ").count(), 1);
}
