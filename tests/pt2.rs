//! Every `.pt2` fixture (torch 2.15 training IR `model.pt2` and core ATen `model_aten.pt2`)
//! converts to an fp32 program whose outputs, run by the reference interpreter, match the
//! eager-torch outputs saved with the fixture: max |ours − torch| ≤ 1e-4 × scale, scale =
//! max |torch output| (at least 1e-3); both compute in fp32, only summation order differs.
//! Mutated buffers start from the saved initial contents and must end at the saved ones.

mod common;

use common::fixtures::Fixture;
use common::packages::package_dir;
use mlpack::backend::read_package;
use mlpack::frontend::torch::{load, TorchOptions};
use mlpack::interp::{self, RunOptions, Value};
use mlpack::ir::{sanitize_name, Program, Target};
use mlpack::pipeline::{self, ConvertOptions, InputShapes, Precision};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The archives of a fixture: torch 2.15 training IR and core ATen, and where present the
/// same programs written by torch 2.7 (legacy zip) and 2.8 (pickled weights).
const FILES: [&str; 6] = [
    "model.pt2",
    "model_aten.pt2",
    "model_torch27.pt2",
    "model_torch27_aten.pt2",
    "model_torch28.pt2",
    "model_torch28_aten.pt2",
];

fn read_npy(path: &Path) -> Value {
    mlpack::npy::parse(&std::fs::read(path).unwrap()).unwrap()
}

/// Max |ours − reference| / scale of one output.
fn relative_error(ours: &Value, reference: &Value) -> f64 {
    assert_eq!(ours.shape(), reference.shape(), "output shapes differ");
    let a = ours.to_f32_array().unwrap();
    let b = reference.to_f32_array().unwrap();
    let (mut max_abs, mut scale) = (0f64, 0f64);
    for (&x, &y) in a.iter().zip(b.iter()) {
        let (x, y) = (x as f64, y as f64);
        assert!(x.is_finite(), "non-finite output value {x}");
        max_abs = max_abs.max((x - y).abs());
        scale = scale.max(y.abs());
    }
    max_abs / scale.max(1e-3)
}

/// `(name, before, after)` of each buffer the fixture mutates.
fn buffers(fx: &Fixture) -> Vec<(String, Value, Value)> {
    let text = std::fs::read_to_string(fx.dir.join("meta.json")).unwrap();
    let meta: serde_json::Value = serde_json::from_str(&text).unwrap();
    meta["mutated_buffers"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|b| {
                    let file = |k: &str| fx.dir.join(b[k].as_str().unwrap());
                    (
                        sanitize_name(b["name"].as_str().unwrap()),
                        read_npy(&file("initial_file")),
                        read_npy(&file("after_file")),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `program` on `inputs` (user inputs in order, then buffers by name) and returns the
/// largest relative error over the outputs and the buffers' final contents.
fn check(
    program: &Program,
    inputs: &[Value],
    outputs: &[Value],
    buffers: &[(String, Value, Value)],
) -> Result<f64, String> {
    let function = program.main();
    let mut feed = BTreeMap::new();
    let mut user = inputs.iter();
    for v in &function.inputs {
        let value = match buffers.iter().find(|(b, _, _)| *b == v.name) {
            Some((_, before, _)) => before.clone(),
            None => user
                .next()
                .ok_or("more function inputs than inputs")?
                .clone(),
        };
        feed.insert(v.name.clone(), value);
    }
    let results = interp::run(function, &feed, RunOptions::default()).map_err(|e| e.to_string())?;
    let mut expected = outputs.iter();
    let mut worst = 0f64;
    for (name, value) in &results {
        let reference = match buffers.iter().find(|(b, _, _)| format!("{b}_out") == *name) {
            Some((_, _, after)) => after,
            None => expected.next().ok_or("more outputs than expected")?,
        };
        worst = worst.max(relative_error(value, reference));
    }
    if expected.next().is_some() {
        return Err("fewer outputs than expected".into());
    }
    Ok(worst)
}

#[test]
fn pt2_fixtures_match_eager_torch() {
    let fixtures = Fixture::all("pt2");
    assert!(fixtures.len() >= 8, "the pt2 fixtures are missing");
    let mut failures = Vec::new();
    for fx in &fixtures {
        let inputs: Vec<Value> = fx.input_files().iter().map(|(_, p)| read_npy(p)).collect();
        let outputs: Vec<Value> = fx.output_files().iter().map(|(_, p)| read_npy(p)).collect();
        let buffers = buffers(fx);
        // Extra input sets (other sequence lengths of a flexible input) run the same program.
        let mut sets = vec![(String::new(), inputs, outputs)];
        for set in &fx.meta.extra_sets {
            let (ins, outs) = fx.extra_set_files(set);
            sets.push((
                format!(" [{}]", set.label),
                ins.iter().map(|(_, p)| read_npy(p)).collect(),
                outs.iter().map(|(_, p)| read_npy(p)).collect(),
            ));
        }
        let present = FILES.iter().filter(|f| fx.dir.join(f).is_file());
        for file in present {
            let path = fx.dir.join(file);
            let program = match load(&path, &TorchOptions::default()) {
                Ok(p) => p,
                Err(e) => {
                    failures.push(format!("{}/{file}: {e}", fx.case));
                    continue;
                }
            };
            for (set, inputs, outputs) in &sets {
                let label = format!("{}/{file}{set}", fx.case);
                match check(&program, inputs, outputs, &buffers) {
                    Ok(err) if err <= 1e-4 => println!("{label}: max relative error {err:.2e}"),
                    Ok(err) => {
                        failures.push(format!("{label}: max relative error {err:.2e} > 1e-4"))
                    }
                    Err(e) => failures.push(format!("{label}: {e}")),
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Cosine similarity of two outputs (1 when both are all zeros).
fn cosine(a: &Value, b: &Value) -> f64 {
    let a = a.to_f32_array().unwrap();
    let b = b.to_f32_array().unwrap();
    let (mut dot, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b.iter()) {
        let (x, y) = (x as f64, y as f64);
        dot += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 && bb == 0.0 {
        return 1.0;
    }
    dot / (aa.sqrt() * bb.sqrt()).max(f64::MIN_POSITIVE)
}

/// The `.pt2` files of a fixture, as its meta.json lists them (every container written).
fn pt2_files(fx: &Fixture) -> Vec<String> {
    let text = std::fs::read_to_string(fx.dir.join("meta.json")).unwrap();
    let meta: serde_json::Value = serde_json::from_str(&text).unwrap();
    meta["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file"].as_str().unwrap().to_string())
        .filter(|f| f.ends_with(".pt2"))
        .collect()
}

/// Converts `source` to a package at `output` (iOS18, no verification: the tests compare with
/// torch's outputs themselves).
fn convert(source: &Path, output: &Path, precision: Precision, shapes: InputShapes) {
    let options = ConvertOptions {
        describe: Default::default(),
        input: source.to_path_buf(),
        output: output.to_path_buf(),
        precision,
        mixed: Default::default(),
        target: Target::IOS18,
        input_shapes: shapes,
        force: true,
        verify: None,
        states: Vec::new(),
    };
    pipeline::convert(&options).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
}

/// Runs the package at `path` on the user `inputs` (in order) with its states starting at the
/// fixture's initial buffer contents; returns the outputs and the final states.
fn run_package(
    path: &Path,
    inputs: &[Value],
    buffers: &[(String, Value, Value)],
) -> (Vec<(String, Value)>, BTreeMap<String, Value>) {
    let program = read_package(path).unwrap();
    let function = program.main();
    let feed: BTreeMap<String, Value> = function
        .inputs
        .iter()
        .zip(inputs)
        .map(|(v, value)| (v.name.clone(), value.clone()))
        .collect();
    assert_eq!(feed.len(), inputs.len(), "{}: input count", path.display());
    let mut states: BTreeMap<String, Value> = buffers
        .iter()
        .filter(|(name, _, _)| function.states.iter().any(|s| s.name == *name))
        .map(|(name, before, _)| (name.clone(), before.clone()))
        .collect();
    assert_eq!(
        states.len(),
        function.states.len(),
        "{}: states",
        path.display()
    );
    let outputs = interp::run_stateful(function, &feed, &mut states, RunOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (outputs, states)
}

/// Every container of every fixture (torch 2.15 training IR and core ATen, torch 2.7 legacy
/// zips, the torch 2.8 archive) converts to fp32 and fp16 packages, written under
/// `target/test-packages/pt2` so that coremltools validates each, whose outputs — run from the
/// written package, states starting at the initial buffers — match eager torch: fp32 within
/// 1e-4 relative (1e-3 for models with states, which Core ML stores in fp16), fp16 with cosine
/// ≥ 0.999 per output; buffers end at torch's final contents.
#[test]
fn pt2_packages_match_eager_torch() {
    let dir = package_dir("pt2");
    let mut failures = Vec::new();
    let mut checked = 0;
    for fx in Fixture::all("pt2") {
        let inputs: Vec<Value> = fx.input_files().iter().map(|(_, p)| read_npy(p)).collect();
        let outputs: Vec<Value> = fx.output_files().iter().map(|(_, p)| read_npy(p)).collect();
        let buffers = buffers(&fx);
        // Core ML states hold fp16 (so do the packages' states at fp32 compute precision):
        // the buffers' contents carry fp16 rounding, 2^-11 relative.
        let fp32_tolerance = if buffers.is_empty() { 1e-4 } else { 1e-3 };
        for file in pt2_files(&fx) {
            for (precision, tag) in [(Precision::Fp32, "fp32"), (Precision::Fp16, "fp16")] {
                let stem = file.trim_end_matches(".pt2");
                let package = dir.join(format!("{}_{stem}_{tag}.mlpackage", fx.case));
                convert(
                    &fx.dir.join(&file),
                    &package,
                    precision,
                    InputShapes::default(),
                );
                let (ours, states) = run_package(&package, &inputs, &buffers);
                let after = buffers
                    .iter()
                    .filter(|(name, _, _)| states.contains_key(name))
                    .map(|(name, _, after)| (&states[name], after, name.clone()));
                let pairs = ours
                    .iter()
                    .zip(&outputs)
                    .map(|((name, v), r)| (v, r, name.clone()))
                    .chain(after);
                let label = format!("{}/{file} {tag}", fx.case);
                if ours.len() != outputs.len() {
                    failures.push(format!(
                        "{label}: {} outputs, torch has {}",
                        ours.len(),
                        outputs.len()
                    ));
                    continue;
                }
                for (value, reference, name) in pairs {
                    checked += 1;
                    match precision {
                        Precision::Fp32 => {
                            let err = relative_error(value, reference);
                            if err > fp32_tolerance {
                                failures.push(format!("{label} {name}: relative error {err:.2e}"));
                            }
                        }
                        _ => {
                            let cos = cosine(value, reference);
                            if cos < 0.999 {
                                failures.push(format!("{label} {name}: cosine {cos:.5}"));
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(checked >= 60, "only {checked} outputs compared");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The transformer fixtures (2 attention blocks each, num_hidden_layers=2 in
/// `fixtures/pt2_models.py`) convert for iOS18 with every attention block as one
/// `scaled_dot_product_attention` and no `softmax` left, from the training IR and from core ATen
/// (where `bmm` flattens the batch dims and a guard zeroes fully-masked rows), in every torch
/// container; the packages go to coremltools like the others.
#[test]
fn attention_becomes_sdpa_at_both_ir_levels() {
    let dir = package_dir("pt2_ios18");
    let mut checked = 0;
    for case in ["bert", "gpt2", "llama", "vit"] {
        let fx = Fixture::all("pt2")
            .into_iter()
            .find(|fx| fx.case == case)
            .unwrap_or_else(|| panic!("fixture pt2/{case}"));
        for file in pt2_files(&fx) {
            let stem = file.trim_end_matches(".pt2");
            let package = dir.join(format!("{case}_{stem}.mlpackage"));
            let options = ConvertOptions {
                describe: Default::default(),
                input: fx.dir.join(&file),
                output: package,
                precision: Precision::Fp16,
                mixed: Default::default(),
                target: Target::IOS18,
                input_shapes: InputShapes::default(),
                force: true,
                verify: None,
                states: Vec::new(),
            };
            let report =
                pipeline::convert(&options).unwrap_or_else(|e| panic!("{case}/{file}: {e}"));
            let count = |op: &str| report.ops.get(op).copied().unwrap_or(0);
            let what = format!("{case}/{file}: {:?}", report.ops);
            assert_eq!(count("scaled_dot_product_attention"), 2, "{what}");
            assert_eq!(count("softmax"), 0, "{what}");
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} archives converted");
}

/// The ONNX twin of each fixture (the same module and weights through torch's ONNX exporter)
/// converts to an fp32 package whose outputs agree with the `.pt2` package's (1e-4 relative;
/// 1e-3 with states, stored in fp16): two frontends, one lowering.
#[test]
fn onnx_and_pt2_packages_agree() {
    let dir = package_dir("pt2_onnx");
    let mut failures = Vec::new();
    for fx in Fixture::all("pt2") {
        let onnx = fx.dir.join("model.onnx");
        if !onnx.is_file() {
            continue;
        }
        let inputs: Vec<Value> = fx.input_files().iter().map(|(_, p)| read_npy(p)).collect();
        let buffers = buffers(&fx);
        let shapes = InputShapes {
            inputs: fx
                .meta
                .input_shape_flags
                .iter()
                .map(|f| f.parse().unwrap())
                .collect(),
            dims: Vec::new(),
            frozen: Vec::new(),
        };
        let packages: Vec<PathBuf> = ["onnx", "pt2"]
            .iter()
            .map(|kind| dir.join(format!("{}_{kind}.mlpackage", fx.case)))
            .collect();
        convert(&onnx, &packages[0], Precision::Fp32, shapes);
        convert(
            &fx.dir.join("model.pt2"),
            &packages[1],
            Precision::Fp32,
            InputShapes::default(),
        );
        let (from_onnx, _) = run_package(&packages[0], &inputs, &buffers);
        let (from_pt2, _) = run_package(&packages[1], &inputs, &buffers);
        if from_onnx.len() != from_pt2.len() {
            failures.push(format!(
                "{}: {} ONNX outputs, {} .pt2 outputs",
                fx.case,
                from_onnx.len(),
                from_pt2.len()
            ));
            continue;
        }
        // The ONNX twin holds the buffers as constants; the .pt2 package's states store fp16.
        let tolerance = if buffers.is_empty() { 1e-4 } else { 1e-3 };
        for ((name, a), (_, b)) in from_onnx.iter().zip(&from_pt2) {
            let err = relative_error(a, b);
            if err > tolerance {
                failures.push(format!(
                    "{} {name}: ONNX and .pt2 packages differ by {err:.2e}",
                    fx.case
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `--function` works on a `.pt2` as on ONNX: the Llama fixture (symbolic sequence length)
/// converts once per function at that function's length, into one multifunction package that
/// coremltools validates.
#[test]
fn pt2_converts_to_a_multifunction_package() {
    let dir = package_dir("pt2_multifunction");
    let package = dir.join("llama.mlpackage");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pt2/llama/model.pt2");
    let run = common::cli::mlpack(&[
        "convert",
        source.to_str().unwrap(),
        "-o",
        package.to_str().unwrap(),
        "--target",
        "iOS18",
        "--function",
        "short:input_ids=1,4",
        "--function",
        "long:input_ids=1,16",
        "--quiet",
    ]);
    assert!(run.status.success(), "{}", common::cli::text(&run));
    let program = read_package(&package).unwrap();
    let names: Vec<&str> = program.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["short", "long"]);
}
