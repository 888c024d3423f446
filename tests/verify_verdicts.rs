//! Honest verification, end to end: random inputs follow each input's role (token ids below
//! the table size, masks of zeros and ones), a comparison with no finite source value is
//! inconclusive and writes nothing, and compression reports ok / degraded / failed against the
//! fp16 thresholds and the `--min-cosine` floor.

mod common;

use common::cli::{mlpack, text};

use common::fixtures::Fixture;
use common::packages::package_dir;
use mlpack::frontend::onnx::{self, OnnxOptions};
use mlpack::ir::{Program, Target};
use mlpack::verify::roles::Role;
use mlpack::verify::{self, inputs, InputRange, InputSpec, Verdict, VerifyOptions};
use std::path::Path;
use std::process::Output;

fn load(path: &Path) -> Program {
    onnx::load(
        path,
        &OnnxOptions {
            target: Target::IOS17,
            ..Default::default()
        },
    )
    .unwrap()
}

/// `precision/embedding_mask`: `Gather(table[7,16], input_ids)` and the BERT opset-13 additive
/// mask `(1 − attention_mask) · finfo(fp32).min` before a softmax.
#[test]
fn token_ids_index_the_table_and_masks_are_zero_or_one() {
    let model = Fixture::load("precision", "embedding_mask").model_path();
    let program = load(&model);
    let roles = inputs::roles(program.main(), &[]).unwrap();
    let found: Vec<(&str, Role)> = roles.iter().map(|r| (r.name.as_str(), r.role)).collect();
    assert_eq!(
        found,
        [
            ("input_ids", Role::Indices { rows: 7 }),
            ("attention_mask", Role::Mask)
        ]
    );
    let samples = inputs::random_inputs(program.main(), 20, 0, &[]).unwrap();
    for sample in &samples {
        assert!(sample["input_ids"]
            .int()
            .unwrap()
            .iter()
            .all(|&i| (0..7).contains(&i)));
        assert!(sample["attention_mask"]
            .int()
            .unwrap()
            .iter()
            .all(|&m| m == 0 || m == 1));
    }
    // On these inputs the source output is finite everywhere and the comparison means something.
    let report = verify::verify_programs(&program, &program, &VerifyOptions::default()).unwrap();
    assert_eq!(report.verdict, Verdict::Ok, "{}", report.summary());
    assert_eq!(report.outputs[0].metrics.reference_non_finite, 0);
    assert!(report.outputs[0].metrics.elements > 0);
    // The old default for integers, [0, 9], turns the mask into +inf and the output into NaN.
    let old = VerifyOptions {
        inputs: InputSpec::Random {
            samples: 3,
            seed: 0,
            ranges: vec![InputRange {
                name: "attention_mask".into(),
                lo: 0.0,
                hi: 9.0,
            }],
        },
        ..Default::default()
    };
    let report = verify::verify_programs(&program, &program, &old).unwrap();
    assert_eq!(
        report.verdict,
        Verdict::Inconclusive,
        "{}",
        report.summary()
    );
    assert!(!report.passed);
}

#[test]
fn convert_and_verify_name_the_roles_they_chose() {
    let dir = package_dir("verify_verdicts_roles");
    let model = Fixture::load("precision", "embedding_mask").model_path();
    let pkg = dir.join("embedding.mlpackage");
    let (m, p) = (model.to_str().unwrap(), pkg.to_str().unwrap());
    let o = mlpack(&["convert", m, "-o", p, "--precision", "fp32"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(
            "verify: 3 random inputs (input_ids: indices [0, 7), attention_mask: mask {0,1}), worst output y"
        ),
        "{}",
        text(&o)
    );
    let o = mlpack(&["verify", m, p, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["verdict"], "ok");
    assert_eq!(
        report["input_roles"],
        serde_json::json!([
            {"name": "input_ids", "role": "indices", "rows": 7, "text": "indices [0, 7)"},
            {"name": "attention_mask", "role": "mask", "text": "mask {0,1}"}
        ])
    );
    // An explicit range overrides the role; here it makes the source output NaN.
    let o = mlpack(&["verify", m, p, "--input-range", "attention_mask=0,9"]);
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("attention_mask: --input-range [0, 9]")
            && out.contains("— INCONCLUSIVE (y: the source output has no finite value")
            && out.contains("--input-range NAME=LO,HI or --inputs FILE.npz")
            && !out.contains("— ok"),
        "{out}"
    );
}

/// `precision/nan_output`: `sqrt(−(x·x) − 1)`, NaN for every input (ONNX Runtime agrees: its
/// saved output is all NaN).
#[test]
fn a_source_that_is_nan_everywhere_makes_convert_inconclusive_and_write_nothing() {
    let fx = Fixture::load("precision", "nan_output");
    let (_, ort_output) = &fx.output_files()[0];
    let ort = mlpack::npy::parse(&std::fs::read(ort_output).unwrap()).unwrap();
    assert!(ort.float().unwrap().iter().all(|v| v.is_nan()));
    let dir = package_dir("verify_verdicts_nan");
    let pkg = dir.join("nan.mlpackage");
    let (m, p) = (fx.model_path(), pkg.to_str().unwrap().to_string());
    for extra in [&[][..], &["--allow-degraded"], &["--precision", "fp32"]] {
        let mut args = vec!["convert", m.to_str().unwrap(), "-o", &p];
        args.extend(extra);
        let o = mlpack(&args);
        assert_eq!(o.status.code(), Some(6), "{extra:?}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("INCONCLUSIVE (y: the source output has no finite value")
                && err.contains("nothing written")
                && err.contains("--input-range"),
            "{err}"
        );
        assert!(!pkg.exists(), "{extra:?}: a package was written");
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "no leftovers");
}

/// Compressing every weight of `models/mlp_op17` (Linear 16-32-32-10): int8 keeps the fp16
/// thresholds, 2-bit palettes land between them and the 0.9 cosine floor, 2:4 pruning of these
/// small layers falls below the floor.
#[test]
fn compression_reports_ok_degraded_or_failed() {
    let dir = package_dir("verify_verdicts_compress");
    let model = Fixture::load("models", "mlp_op17").model_path();
    let m = model.to_str().unwrap();
    let run = |name: &str, args: &[&str]| {
        let out = dir.join(format!("{name}.mlpackage"));
        let mut all = args.to_vec();
        let o = out.to_str().unwrap().to_string();
        all.extend([m, "-o", &o, "--weight-threshold", "0", "--json"]);
        (mlpack(&all), out)
    };
    let verdict = |o: &Output| -> serde_json::Value {
        let report: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|_| panic!("json report: {}", text(o)));
        report["verify"].clone()
    };

    let (o, out) = run("int8", &["quantize"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(verdict(&o)["verdict"], "ok", "{}", text(&o));
    assert!(out.exists());

    let (o, out) = run("palette2", &["palettize", "--nbits", "2"]);
    assert!(o.status.success(), "{}", text(&o));
    let v = verdict(&o);
    assert_eq!(v["verdict"], "degraded", "{}", text(&o));
    let cosine = v["outputs"][0]["metrics"]["cosine"].as_f64().unwrap();
    assert!((0.9..0.999).contains(&cosine), "{cosine}");
    assert_eq!(v["floor"]["min_cosine"], 0.9);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("degraded"),
        "{}",
        text(&o)
    );
    assert!(out.exists());

    let (o, out) = run("prune24", &["prune", "--n-m", "2:4"]);
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("— FAILED (y: cosine") && err.contains("< 0.9 (floor)"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written below the floor");

    // A lower floor accepts it as degraded; --allow-degraded writes it with a warning.
    let (o, out) = run(
        "prune24_floor",
        &["prune", "--n-m", "2:4", "--min-cosine", "0.5"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(verdict(&o)["verdict"], "degraded");
    assert!(out.exists());
    let (o, out) = run(
        "prune24_allowed",
        &["prune", "--n-m", "2:4", "--allow-degraded"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(verdict(&o)["verdict"], "failed");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("wrote the package anyway"),
        "{}",
        text(&o)
    );
    assert!(out.exists());
}
