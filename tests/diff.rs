//! `mlpack diff`: an fp16 package against its 4-bit palettized version (the op histogram
//! gains the lookup-table ops, bits per weight drop from 16 to about 4, the output figures are
//! exactly those `verify` reports), an ONNX or .pt2 source against its package, signature differences
//! between a flexible and a fixed package, and two unrelated packages that share no outputs.

mod common;

use common::cli::{fails_with, mlpack, stderr, text};
use common::fixtures::Fixture;
use common::packages::package_dir;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Runs `mlpack args`, which must succeed.
fn ok(args: &[&str]) -> String {
    let o = mlpack(args);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `mlpack diff a b --json extra...` parsed.
fn diff_json(a: &Path, b: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["diff", s(a), s(b), "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&ok(&args)).unwrap()
}

/// The `ops` row of `op_type` as (A, B, delta).
fn op_row(report: &Value, op_type: &str) -> (u64, u64, i64) {
    let row = report["ops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["op_type"] == op_type)
        .unwrap_or_else(|| panic!("no row for {op_type}: {}", report["ops"]));
    (
        row["a"].as_u64().unwrap(),
        row["b"].as_u64().unwrap(),
        row["delta"].as_i64().unwrap(),
    )
}

/// The fixture `models/case` converted at `precision` into `dir/name.mlpackage`.
fn convert(case: &str, precision: &str, dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(format!("{name}.mlpackage"));
    let model = Fixture::load("models", case).model_path();
    ok(&[
        "-q",
        "convert",
        s(&model),
        "-o",
        s(&out),
        "--precision",
        precision,
    ]);
    out
}

#[test]
fn fp16_against_its_4bit_palettized_version() {
    let dir = package_dir("diff_palettized");
    let fp16 = convert("transformer_op17", "fp16", &dir, "fp16");
    let p4 = dir.join("p4.mlpackage");
    ok(&["-q", "palettize", s(&fp16), "-o", s(&p4), "--nbits", "4"]);
    let r = diff_json(&fp16, &p4, &["--weights"]);

    assert_eq!(r["signature"], Value::Array(Vec::new()), "same signature");
    let (a, b, delta) = op_row(&r, "constexpr_lut_to_dense");
    assert!(a == 0 && b > 0 && delta == b as i64, "{a} {b} {delta}");
    // Each palettized weight's const became one lookup-table op.
    let (_, _, consts) = op_row(&r, "const");
    assert_eq!(consts, -delta);

    let w = &r["weights"];
    assert_eq!(w["a"]["count"], w["b"]["count"]);
    assert_eq!(w["a"]["parameters"], w["b"]["parameters"]);
    assert_eq!(w["a"]["bits_per_weight"].as_f64().unwrap(), 16.0);
    assert_eq!(
        w["b"]["schemes"]["palettized 4-bit"].as_i64().unwrap(),
        delta
    );
    let table = w["table"].as_array().unwrap();
    let palettized: Vec<&Value> = table
        .iter()
        .filter(|row| row["b"]["scheme"] == "palettized 4-bit")
        .collect();
    assert_eq!(palettized.len() as i64, delta);
    for row in palettized {
        assert_eq!(row["a"]["scheme"], "fp16", "{row}");
        assert_eq!(row["a"]["bits_per_weight"].as_f64().unwrap(), 16.0);
        // 4-bit indices plus one 16-entry fp16 table (256 bits) over more than 2048 weights.
        let bits = row["b"]["bits_per_weight"].as_f64().unwrap();
        assert!((4.0..=4.125).contains(&bits), "{row}");
    }
    let (ba, bb) = (
        w["a"]["stored_bytes"].as_u64().unwrap(),
        w["b"]["stored_bytes"].as_u64().unwrap(),
    );
    assert!(bb < ba / 2, "{bb} bytes palettized against {ba} in fp16");

    // The output figures are verify's own, on the same default inputs.
    let numerics = &r["numerics"];
    assert_eq!(numerics["compared"], true, "{numerics}");
    // verify exits 6 when 4-bit misses the fp16 thresholds; its JSON is on stdout either way.
    let o = mlpack(&["verify", s(&fp16), s(&p4), "--json"]);
    let verify: Value = serde_json::from_slice(&o.stdout).unwrap();
    let ours = &numerics["verify"]["outputs"];
    assert_eq!(ours, &verify["outputs"]);
    for o in ours.as_array().unwrap() {
        let m = &o["metrics"];
        let cosine = m["cosine"].as_f64().unwrap();
        // Lossy but far from unrelated: random outputs would have a cosine near 0.
        assert!(cosine > 0.9 && cosine < 1.0, "{o}");
        assert!(m["snr_db"].as_f64().unwrap() > 5.0, "{o}");
    }

    let human = ok(&["diff", s(&fp16), s(&p4)]);
    assert!(human.contains("constexpr_lut_to_dense"), "{human}");
    assert!(human.contains("palettized 4-bit ×"), "{human}");
    assert!(human.contains("cosine"), "{human}");
    assert!(!human.contains("NOT COMPARED"), "{human}");
}

/// Writes the fixture's saved inputs as an .npz (stored members named after the inputs).
fn write_npz(fixture: &Fixture, path: &Path) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, file) in fixture.input_files() {
        zip.start_file(format!("{name}.npy"), options).unwrap();
        zip.write_all(&std::fs::read(file).unwrap()).unwrap();
    }
    zip.finish().unwrap();
}

#[test]
fn onnx_source_against_its_package() {
    let dir = package_dir("diff_onnx");
    let fixture = Fixture::load("models", "small_cnn_op17");
    let package = convert("small_cnn_op17", "fp16", &dir, "fp16");
    let model = fixture.model_path();
    let r = diff_json(&model, &package, &[]);
    assert_eq!(r["a"]["kind"], "onnx");
    assert_eq!(r["b"]["kind"], "package");
    assert_eq!(
        r["signature"],
        Value::Array(Vec::new()),
        "{}",
        r["signature"]
    );
    assert_eq!(
        r["weights"]["a"]["schemes"]["fp32"],
        r["weights"]["a"]["count"]
    );
    assert_eq!(
        r["weights"]["b"]["schemes"]["fp16"],
        r["weights"]["b"]["count"]
    );
    assert_eq!(r["weights"]["a"]["bits_per_weight"].as_f64().unwrap(), 32.0);
    let numerics = &r["numerics"]["verify"];
    assert_eq!(numerics["verdict"], "ok", "{numerics}");
    assert_eq!(numerics["inputs"], "random");
    assert_eq!(numerics["samples"], 3);

    let npz = dir.join("inputs.npz");
    write_npz(&fixture, &npz);
    let given = diff_json(&model, &package, &["--inputs", s(&npz)]);
    assert_eq!(given["numerics"]["verify"]["inputs"], "given");
    assert_eq!(given["numerics"]["verify"]["samples"], 1);
    assert_eq!(given["numerics"]["verify"]["verdict"], "ok");

    // B must be a package.
    fails_with(
        &["diff", s(&package), s(&model)],
        2,
        &["B must be an .mlpackage"],
    );
}

#[test]
fn pt2_source_against_its_package() {
    let dir = package_dir("diff_pt2");
    let archive = common::fixtures::fixtures_root().join("pt2/cnn/model.pt2");
    let package = dir.join("cnn.mlpackage");
    ok(&["-q", "convert", s(&archive), "-o", s(&package)]);
    let r = diff_json(&archive, &package, &[]);
    assert_eq!(r["a"]["kind"], "pt2");
    assert_eq!(
        r["signature"],
        Value::Array(Vec::new()),
        "{}",
        r["signature"]
    );
    assert_eq!(r["weights"]["a"]["bits_per_weight"].as_f64().unwrap(), 32.0);
    assert_eq!(r["weights"]["b"]["bits_per_weight"].as_f64().unwrap(), 16.0);
    assert_eq!(
        r["numerics"]["verify"]["verdict"], "ok",
        "{}",
        r["numerics"]
    );
}

#[test]
fn flexible_and_fixed_inputs_differ_in_signature() {
    let dir = package_dir("diff_flexible");
    let model = Fixture::load("flexible", "seq_attention").model_path();
    let flexible = dir.join("flexible.mlpackage");
    let fixed = dir.join("fixed.mlpackage");
    for (out, flag, value) in [
        (&flexible, "--dim", "seq=1..64"),
        (&fixed, "--input-shape", "ids=1,3"),
    ] {
        ok(&["-q", "convert", s(&model), "-o", s(out), flag, value]);
    }
    let r = diff_json(&flexible, &fixed, &[]);
    let changes = r["signature"].as_array().unwrap();
    let ids = changes
        .iter()
        .find(|c| c["kind"] == "input" && c["name"] == "ids")
        .unwrap_or_else(|| panic!("no change for input ids: {}", r["signature"]));
    assert_eq!(ids["a"]["accepts"], "1,1..64", "{ids}");
    assert_eq!(ids["b"]["shape"], serde_json::json!(["1", "3"]), "{ids}");
    assert!(ids["b"].get("accepts").is_none(), "{ids}");
    // B's inputs (length 3) fit A, so the outputs are compared.
    assert_eq!(r["numerics"]["compared"], true, "{}", r["numerics"]);
    let human = ok(&["diff", s(&flexible), s(&fixed)]);
    assert!(human.contains("signature differences:"), "{human}");
    assert!(human.contains("accepts 1,1..64"), "{human}");
}

#[test]
fn packages_without_shared_outputs_compare_nothing() {
    let dir = package_dir("diff_unrelated");
    let cnn = convert("small_cnn_op17", "fp32", &dir, "cnn");
    let mlp = convert("mlp_op17", "fp32", &dir, "mlp");
    let r = diff_json(&cnn, &mlp, &[]);
    assert_eq!(r["numerics"]["compared"], false);
    assert!(r["numerics"].get("verify").is_none());
    let reason = r["numerics"]["reason"].as_str().unwrap();
    assert!(!reason.is_empty());
    let o = mlpack(&["diff", s(&cnn), s(&mlp)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let human = String::from_utf8_lossy(&o.stdout);
    assert!(human.contains("outputs: NOT COMPARED — "), "{human}");
}
