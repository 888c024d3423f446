//! `mlpack lint`: an fp32 package has fp32-compute findings and an fp16 one none; a flexible
//! package is flagged; 3-bit palettes are flagged and 4-bit ones are not; `--inputs` scaled a
//! millionfold overflows fp16; `--deny` turns findings into exit code 8; `--rules` lists every
//! rule with a public source; a source model is linted as converted in memory.

mod common;

use common::cli::{error_line, mlpack, text};
use common::fixtures::Fixture;
use common::packages::package_dir;
use mlpack::interp::Value;
use serde_json::Value as Json;
use std::io::Write;
use std::path::{Path, PathBuf};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `mlpack args`, which must succeed; its stdout.
fn ok(args: &[&str]) -> String {
    let o = mlpack(args);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `mlpack lint path --json extra...` parsed.
fn lint(path: &Path, extra: &[&str]) -> Json {
    let mut args = vec!["lint", s(path), "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&ok(&args)).unwrap()
}

/// The findings of `rule` as locations.
fn locations(report: &Json, rule: &str) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == rule)
        .map(|f| f["location"].as_str().unwrap().to_string())
        .collect()
}

fn convert(model: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec!["-q", "convert", s(model), "-o", s(out)];
    args.extend_from_slice(extra);
    ok(&args);
}

fn small_cnn() -> Fixture {
    Fixture::load("models", "small_cnn_op17")
}

#[test]
fn fp32_packages_compute_off_the_neural_engine_and_fp16_ones_do_not() {
    let dir = package_dir("lint_precision");
    let model = small_cnn().model_path();
    let (fp32, fp16) = (dir.join("fp32.mlpackage"), dir.join("fp16.mlpackage"));
    convert(&model, &fp32, &["--precision", "fp32"]);
    convert(&model, &fp16, &["--precision", "fp16"]);

    let r32 = lint(&fp32, &[]);
    let found = locations(&r32, "fp32-compute");
    // inspect counts the same ops as computing in fp32.
    let inspect: Json = serde_json::from_str(&ok(&["inspect", s(&fp32), "--json"])).unwrap();
    assert_eq!(
        found.len() as u64,
        inspect["precision"]["fp32"].as_u64().unwrap()
    );
    assert!(!found.is_empty());
    let finding = &r32["findings"][0];
    assert_eq!(finding["severity"], "warning");
    assert!(finding["hint"]
        .as_str()
        .unwrap()
        .contains("--precision fp16"));
    assert_eq!(
        r32["counts"]["warning"].as_u64().unwrap(),
        found.len() as u64
    );

    let r16 = lint(&fp16, &[]);
    assert_eq!(locations(&r16, "fp32-compute"), Vec::<String>::new());
    assert_eq!(r16["findings"], Json::Array(Vec::new()), "{r16}");

    // --deny warnings: exit 8 on the fp32 package with the count, 0 on the fp16 one.
    let o = mlpack(&["lint", s(&fp32), "--deny", "warnings"]);
    assert_eq!(o.status.code(), Some(8), "{}", text(&o));
    let line = error_line(&o);
    assert!(
        line.contains(&format!(
            "{} findings at warning level or above",
            found.len()
        )),
        "{line}"
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("fp32-compute"));
    ok(&["lint", s(&fp16), "--deny", "warnings"]);
    // Warnings are not errors.
    ok(&["lint", s(&fp32), "--deny", "errors"]);
    ok(&["lint", s(&fp32)]);

    // A source model is linted as converted in memory.
    let onnx32 = lint(&model, &["--precision", "fp32"]);
    assert_eq!(onnx32["kind"], "onnx");
    assert_eq!(locations(&onnx32, "fp32-compute"), found);
    assert_eq!(lint(&model, &[])["findings"], Json::Array(Vec::new()));
}

#[test]
fn range_flexible_inputs_are_flagged() {
    let dir = package_dir("lint_flexible");
    let model = Fixture::load("flexible", "seq_attention").model_path();
    let (flexible, fixed) = (dir.join("flexible.mlpackage"), dir.join("fixed.mlpackage"));
    convert(&model, &flexible, &["--dim", "seq=1..64"]);
    convert(&model, &fixed, &["--input-shape", "ids=1,3"]);
    let r = lint(&flexible, &[]);
    assert_eq!(locations(&r, "flexible-input"), ["ids"]);
    let finding = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "flexible-input")
        .unwrap();
    assert!(
        finding["message"]
            .as_str()
            .unwrap()
            .contains("axis 1: 1..64"),
        "{finding}"
    );
    assert_eq!(
        locations(&lint(&fixed, &[]), "flexible-input"),
        Vec::<String>::new()
    );
}

#[test]
fn palette_widths_the_neural_engine_cannot_use() {
    let dir = package_dir("lint_palette");
    let model = Fixture::load("models", "transformer_op17").model_path();
    let fp16 = dir.join("fp16.mlpackage");
    // 3-bit indices need the iOS18 form.
    convert(&model, &fp16, &["--target", "iOS18"]);
    let rule = |nbits: &str| {
        let out = dir.join(format!("p{nbits}.mlpackage"));
        ok(&[
            "-q",
            "palettize",
            s(&fp16),
            "-o",
            s(&out),
            "--nbits",
            nbits,
            "--no-verify",
        ]);
        locations(&lint(&out, &[]), "palettization-bits")
    };
    let three = rule("3");
    assert!(!three.is_empty());
    // Every lookup-table op is flagged: the diff of the same packages counts them.
    let diff: Json = serde_json::from_str(&ok(&[
        "diff",
        s(&fp16),
        s(&dir.join("p3.mlpackage")),
        "--json",
        "--random",
        "1",
    ]))
    .unwrap();
    let luts = diff["ops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["op_type"] == "constexpr_lut_to_dense")
        .unwrap()["b"]
        .as_u64()
        .unwrap();
    assert_eq!(three.len() as u64, luts);
    assert_eq!(rule("4"), Vec::<String>::new());
}

/// Writes the fixture's inputs, multiplied by `scale`, as an .npz.
fn scaled_inputs(fixture: &Fixture, scale: f32, path: &Path) -> PathBuf {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, file) in fixture.input_files() {
        let Value::Float(a) = mlpack::npy::parse(&std::fs::read(file).unwrap()).unwrap() else {
            panic!("{name}: float input expected");
        };
        let bytes = mlpack::npy::serialize(&Value::Float(a.mapv(|x| x * scale))).unwrap();
        zip.start_file(format!("{name}.npy"), options).unwrap();
        zip.write_all(&bytes).unwrap();
    }
    zip.finish().unwrap();
    path.to_path_buf()
}

#[test]
fn inputs_far_beyond_fp16_range_overflow() {
    let dir = package_dir("lint_overflow");
    let fixture = small_cnn();
    let fp16 = dir.join("fp16.mlpackage");
    convert(&fixture.model_path(), &fp16, &[]);
    let plain = scaled_inputs(&fixture, 1.0, &dir.join("plain.npz"));
    let huge = scaled_inputs(&fixture, 1.0e6, &dir.join("huge.npz"));
    let r = lint(&fp16, &["--inputs", s(&plain)]);
    assert_eq!(r["ran_inputs"], true);
    assert_eq!(locations(&r, "fp16-overflow"), Vec::<String>::new());
    let r = lint(&fp16, &["--inputs", s(&huge)]);
    assert!(!locations(&r, "fp16-overflow").is_empty(), "{r}");
    let o = mlpack(&["lint", s(&fp16), "--inputs", s(&huge), "--deny", "errors"]);
    assert_eq!(o.status.code(), Some(8), "{}", text(&o));
    // Without inputs the rules do not run, and the text says so.
    assert!(ok(&["lint", s(&fp16)]).contains("fp16 overflow rules not run"));
}

#[test]
fn rules_are_listed_with_their_sources() {
    let expected = [
        "target-unsupported",
        "fp32-compute",
        "fp16-overflow",
        "fp16-near-overflow",
        "flexible-input",
        "rank-above-5",
        "rank-above-4",
        "dim-above-limit",
        "tiny-last-axis",
        "large-gather-table",
        "palettization-bits",
        "weights-over-1gb",
        "weights-over-2gb",
    ];
    let rules: Json = serde_json::from_str(&ok(&["lint", "--rules", "--json"])).unwrap();
    let ids: Vec<&str> = rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, expected);
    for r in rules.as_array().unwrap() {
        let sources = r["sources"].as_array().unwrap();
        assert!(!sources.is_empty(), "{r}");
        assert!(["error", "warning", "info"].contains(&r["severity"].as_str().unwrap()));
    }
    let text = ok(&["lint", "--rules"]);
    for id in expected {
        let block: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with(id))
            .take_while(|l| l.starts_with(id) || l.starts_with(' '))
            .collect();
        assert!(
            block
                .iter()
                .any(|l| l.trim_start().starts_with("source: https://")),
            "{id}: {block:?}"
        );
    }
}
