//! `split`: a package cut into a chain of packages under a weight size. The chain must compute
//! exactly what the package computes (same interpreter, bitwise), verify against the source
//! ONNX model's ONNX Runtime outputs, and every package of it is checked by coremltools (they
//! are written under `target/test-packages`).

mod common;

use common::cli::{mlpack, text};
use common::fixtures::Fixture;
use common::packages::package_dir;
use mlpack::backend::mlpackage::weight_file;
use mlpack::backend::write_package;
use mlpack::frontend::onnx::NamedDim;
use mlpack::interp::{RunOptions, Value};
use mlpack::ir::{Argument, DType, Function, Operation, Program, Target, Tensor, TensorType, Var};
use mlpack::pipeline::{self, ConvertOptions, InputShapes, InspectReport, Precision, SplitOptions};
use mlpack::verify::{InputSpec, ThresholdOverrides, VerifyOptions};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Converts a fixture at fp16 for iOS17 into `dir`.
fn convert(fx: &Fixture, dir: &Path) -> PathBuf {
    convert_for(fx, dir, Target::IOS17)
}

/// Converts a fixture at fp16 for `target` into `dir`.
fn convert_for(fx: &Fixture, dir: &Path, target: Target) -> PathBuf {
    let package = dir.join(format!("{}.mlpackage", fx.case));
    pipeline::convert(&ConvertOptions {
        describe: Default::default(),
        input: fx.model_path(),
        output: package.clone(),
        precision: Precision::Fp16,
        mixed: Default::default(),
        target,
        input_shapes: Default::default(),
        force: false,
        verify: None,
        states: Vec::new(),
    })
    .unwrap_or_else(|e| panic!("{}: convert: {e}", fx.name()));
    package
}

/// The bytes of each output value, for a bitwise comparison.
fn bits(outputs: &[(String, Value)]) -> Vec<(String, Vec<u32>)> {
    outputs
        .iter()
        .map(|(name, v)| {
            let a = v.to_f32_array().expect("numeric output");
            (name.clone(), a.iter().map(|x| x.to_bits()).collect())
        })
        .collect()
}

/// Splits the fp16 package for `target` of fixture `group/case` at `max` bytes and checks the
/// chain: at least `min_chunks` packages, each weight.bin at most `max`, the chain's outputs
/// bitwise those of the package, and `verify` against the source ONNX passing on the fixture's
/// inputs. Returns the manifest.
fn check_split(
    group: &str,
    case: &str,
    target: Target,
    max: u64,
    min_chunks: usize,
) -> pipeline::ChainManifest {
    let fx = Fixture::load(group, case);
    let dir = package_dir(&format!("split_{case}_{target}"));
    let package = convert_for(&fx, &dir, target);
    let chain = dir.join("chain");
    let report = pipeline::split(&SplitOptions {
        package: package.clone(),
        output: chain.clone(),
        max_weight_size: max,
    })
    .unwrap_or_else(|e| panic!("{}: split: {e}", fx.name()));
    let chunks = &report.manifest.chunks;
    assert!(
        chunks.len() >= min_chunks,
        "{}: {} chunks",
        fx.name(),
        chunks.len()
    );
    for c in chunks {
        let size = std::fs::metadata(weight_file(&chain.join(&c.package)))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(size <= max, "{}: weight.bin of {size} bytes", c.package);
        assert_eq!(size, c.weight_bytes, "{}: manifest size", c.package);
    }

    let options = RunOptions { emulate_fp16: true };
    let inputs = fx.input_files();
    let whole = pipeline::run_package(&package, &inputs, options).expect("run the package");
    let chained = pipeline::run_package(&chain, &inputs, options).expect("run the chain");
    assert_eq!(
        bits(&chained),
        bits(&whole),
        "{}: chain != package",
        fx.name()
    );

    // The source's ONNX Runtime outputs on the fixture inputs are the reference verify uses.
    let sample = fx
        .input_files()
        .iter()
        .map(|(name, file)| {
            let value = mlpack::npy::parse(&std::fs::read(file).unwrap()).unwrap();
            (mlpack::ir::sanitize_name(name), value)
        })
        .collect::<BTreeMap<_, _>>();
    let verified = pipeline::verify(
        &fx.model_path(),
        &chain,
        None,
        &VerifyOptions {
            inputs: InputSpec::Given(vec![sample]),
            thresholds: ThresholdOverrides::default(),
            floor: None,
            no_emulate_fp16: false,
            per_op: false,
            steps: 1,
        },
    )
    .expect("verify the chain");
    assert!(verified.passed, "{}: {}", fx.name(), verified.summary());
    for ((name, ours), (_, file)) in chained.iter().zip(fx.output_files()) {
        let ort = mlpack::npy::parse(&std::fs::read(file).unwrap()).unwrap();
        let (a, b) = (ours.to_f32_array().unwrap(), ort.to_f32_array().unwrap());
        let dot: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
        let norm = |v: &ndarray::ArrayD<f32>| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>();
        let cosine = dot / (norm(&a) * norm(&b)).sqrt();
        assert!(
            cosine > 0.999,
            "{}/{name}: cosine {cosine} with ORT",
            fx.name()
        );
    }

    let InspectReport::Chain(summary) = pipeline::inspect(&chain, false, false).unwrap() else {
        panic!("inspect does not see a chain");
    };
    assert_eq!(summary.chunks.len(), chunks.len());
    report.manifest
}

#[test]
fn gpt2_chain_matches_the_package() {
    check_split("transformers", "gpt2_ts17", Target::IOS17, 40_000, 3);
}

/// Before iOS16 a model cannot take or return fp16, so fp16 values cross as fp32 carriers.
#[test]
fn gpt2_ios15_chain_carries_fp16_as_fp32() {
    let manifest = check_split("transformers", "gpt2_ts17", Target::IOS15, 40_000, 3);
    assert!(
        manifest.chunks[0].outputs[0].ends_with("_as_fp32"),
        "{manifest:?}"
    );
}

#[test]
fn transformer_encoder_chain_matches_the_package() {
    check_split("models", "transformer_op17", Target::IOS17, 70_000, 3);
}

#[test]
fn split_output_is_deterministic() {
    let fx = Fixture::load("transformers", "gpt2_ts17");
    let dir = package_dir("split_deterministic");
    let package = convert(&fx, &dir);
    let mut trees = Vec::new();
    for name in ["a", "b"] {
        let chain = dir.join(name);
        pipeline::split(&SplitOptions {
            package: package.clone(),
            output: chain.clone(),
            max_weight_size: 40_000,
        })
        .unwrap();
        let mut files = Vec::new();
        for entry in walk(&chain) {
            let relative = entry.strip_prefix(&chain).unwrap().to_path_buf();
            files.push((relative, std::fs::read(&entry).unwrap()));
        }
        trees.push(files);
    }
    assert_eq!(trees[0], trees[1]);
}

/// Every file under `dir`, sorted.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The flexible-length attention fixture converted with `--dim seq=1..64`: the chain's packages
/// take the values crossing the cuts at any length, and the chain's output is bitwise the
/// package's at every length the fixture stores.
#[test]
fn flexible_chain_matches_the_package_at_every_length() {
    let fx = Fixture::load("flexible", "seq_attention");
    let dir = package_dir("split_flexible");
    let package = dir.join("seq_attention.mlpackage");
    pipeline::convert(&ConvertOptions {
        describe: Default::default(),
        input: fx.model_path(),
        output: package.clone(),
        precision: Precision::Fp16,
        mixed: Default::default(),
        target: Target::IOS17,
        input_shapes: InputShapes {
            inputs: Vec::new(),
            dims: vec!["seq=1..64".parse::<NamedDim>().unwrap()],
            frozen: Vec::new(),
        },
        force: false,
        verify: None,
        states: Vec::new(),
    })
    .unwrap();
    let chain = dir.join("chain");
    let report = pipeline::split(&SplitOptions {
        package: package.clone(),
        output: chain.clone(),
        max_weight_size: 7_000,
    })
    .unwrap();
    assert!(report.manifest.chunks.len() >= 3, "{:?}", report.manifest);
    let options = RunOptions { emulate_fp16: true };
    for seq in ["seq3", "seq17", "seq64"] {
        let inputs = vec![("ids".to_string(), fx.dir.join(seq).join("input_0.npy"))];
        let whole = pipeline::run_package(&package, &inputs, options).unwrap();
        let chained = pipeline::run_package(&chain, &inputs, options).unwrap();
        assert_eq!(bits(&chained), bits(&whole), "{seq}");
    }
}

/// An op over 16-element values with one output `name` of `dtype`.
fn op(op_type: &str, name: &str, inputs: &[(&str, &str)], dtype: DType) -> Operation {
    Operation {
        op_type: op_type.into(),
        name: name.into(),
        inputs: inputs
            .iter()
            .map(|(p, v)| (p.to_string(), vec![Argument::Var(v.to_string())]))
            .collect(),
        outputs: vec![Var::new(name, TensorType::fixed(dtype, &[16]))],
        attributes: BTreeMap::new(),
        origin: None,
    }
}

/// A 16-element fp32 constant `name` with values `a + b·i`.
fn ramp(name: &str, a: f32, b: f32) -> Operation {
    let values: Vec<f32> = (0..16).map(|i| a + b * i as f32).collect();
    Operation::constant(name, Tensor::from_f32(&[16], &values))
}

/// The program of `operations` on the 16-element fp32 input `x`, returning `out`.
fn program(operations: Vec<Operation>) -> Program {
    Program {
        target: Target::IOS17,
        functions: vec![Function {
            name: "main".into(),
            inputs: vec![Var::new("x", TensorType::fixed(DType::F32, &[16]))],
            states: Vec::new(),
            input_shapes: BTreeMap::new(),
            block: mlpack::ir::Block {
                operations,
                outputs: vec!["out".into()],
            },
        }],
        metadata: BTreeMap::from([("author".to_string(), "split test".to_string())]),
        description: Default::default(),
    }
}

/// The input `x = 1 - 0.1·i`.
const X: (f32, f32) = (1.0, -0.1);

/// Writes `program` as a package under `target/test-packages/<test>`, splits it with one
/// 16-element fp32 constant per weight.bin, checks the chain's output is bitwise the
/// package's on `x` and returns the split report.
fn split_program(test: &str, program: &Program) -> pipeline::SplitReport {
    let dir = package_dir(test);
    let package = dir.join("model.mlpackage");
    write_package(program, &package, false).unwrap();
    let chain = dir.join("chain");
    let max = 64 + 128;
    let report = pipeline::split(&SplitOptions {
        package: package.clone(),
        output: chain.clone(),
        max_weight_size: max,
    })
    .unwrap();
    for c in &report.manifest.chunks {
        assert!(c.weight_bytes <= max, "{c:?}");
        let chunk = mlpack::backend::read_package(&chain.join(&c.package)).unwrap();
        assert_eq!(
            chunk.metadata.get("author").map(String::as_str),
            Some("split test")
        );
    }
    let input = dir.join("x.npy");
    let x: Vec<f32> = (0..16).map(|i| X.0 + X.1 * i as f32).collect();
    let x = Value::Float(ndarray::ArrayD::from_shape_vec(vec![16], x).unwrap());
    std::fs::write(&input, mlpack::npy::serialize(&x).unwrap()).unwrap();
    let inputs = vec![("x".to_string(), input)];
    let options = RunOptions::default();
    let whole = pipeline::run_package(&package, &inputs, options).unwrap();
    let chained = pipeline::run_package(&chain, &inputs, options).unwrap();
    assert_eq!(bits(&chained), bits(&whole));
    report
}

/// `b = x < c1; y = x + c2; out = select(b, y, x)`: with one constant per weight.bin the bool
/// `b` crosses the cut as an int32 carrier.
#[test]
fn bool_values_cross_as_int32() {
    let c1 = (-2.0, 0.25);
    // Both select branches occur (x < c1 from element 9 on), so the carried condition matters.
    let less: Vec<bool> = (0..16)
        .map(|i| X.0 + X.1 * (i as f32) < c1.0 + c1.1 * (i as f32))
        .collect();
    assert!(less.contains(&true) && less.contains(&false));
    let report = split_program(
        "split_bool",
        &program(vec![
            ramp("c1", c1.0, c1.1),
            op("less", "b", &[("x", "x"), ("y", "c1")], DType::Bool),
            ramp("c2", 0.5, 0.125),
            op("add", "y", &[("x", "x"), ("y", "c2")], DType::F32),
            op(
                "select",
                "out",
                &[("cond", "b"), ("a", "y"), ("b", "x")],
                DType::F32,
            ),
        ]),
    );
    let chunks = &report.manifest.chunks;
    assert_eq!(chunks.len(), 2, "{chunks:?}");
    assert_eq!(chunks[0].outputs, ["b_as_int32"]);
    assert_eq!(chunks[1].inputs, ["x", "b_as_int32"]);
    assert!(report.shared.is_empty());
}

/// `y = x + c1; z = y * c2; out = z + c1`: `c1` is read on both sides of the cuts, so it is
/// copied into the first and the last package.
#[test]
fn constants_read_across_a_cut_are_copied() {
    let report = split_program(
        "split_shared",
        &program(vec![
            ramp("c1", -2.0, 0.25),
            op("add", "y", &[("x", "x"), ("y", "c1")], DType::F32),
            ramp("c2", 0.5, 0.125),
            op("mul", "z", &[("x", "y"), ("y", "c2")], DType::F32),
            op("add", "out", &[("x", "z"), ("y", "c1")], DType::F32),
        ]),
    );
    assert_eq!(report.manifest.chunks.len(), 3);
    let shared: Vec<&str> = report.shared.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(shared, ["c1"]);
}

#[test]
fn cli_split_inspect_and_errors() {
    let fx = Fixture::load("transformers", "gpt2_ts17");
    let dir = package_dir("split_cli");
    let package = convert(&fx, &dir);
    let pkg = package.to_str().unwrap();
    let chain = dir.join("chain");
    let out = mlpack(&[
        "split",
        pkg,
        "-o",
        chain.to_str().unwrap(),
        "--max-weight-size",
        "40KB",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("01_gpt2_ts17.mlpackage"),
        "{}",
        text(&out)
    );
    let out = mlpack(&["inspect", chain.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("chain of"), "{}", text(&out));

    // The chain exists: never written over.
    let out = mlpack(&["split", pkg, "-o", chain.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // One constant (the 512x32 fp16 embedding) is larger than 10 KB.
    let small = dir.join("small");
    let out = mlpack(&[
        "split",
        pkg,
        "-o",
        small.to_str().unwrap(),
        "--max-weight-size",
        "10KB",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let message = text(&out);
    assert!(
        message.contains("--max-weight-size") && message.contains("wte"),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(!small.exists());
    // A bad size names the flag.
    let out = mlpack(&[
        "split",
        pkg,
        "-o",
        small.to_str().unwrap(),
        "--max-weight-size",
        "1XB",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--max-weight-size"), "{}", text(&out));
    // A missing package is an I/O failure naming it.
    let missing = dir.join("missing.mlpackage");
    let out = mlpack(&[
        "split",
        missing.to_str().unwrap(),
        "-o",
        small.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(text(&out).contains("missing.mlpackage"), "{}", text(&out));
}

/// A 4-bit palettized gpt2 (constexpr ops: attributes at iOS17, literal inputs at iOS18) cut at
/// 12 KB: each constexpr op goes with its lookup table and indices, and the chain's output is
/// bitwise the package's.
#[test]
fn palettized_chain_matches_the_package() {
    let fx = Fixture::load("transformers", "gpt2_ts17");
    let dir = package_dir("split_palettized");
    let package = convert(&fx, &dir);
    for target in ["iOS17", "iOS18"] {
        let compressed = dir.join(format!("gpt2_{target}.mlpackage"));
        let out = mlpack(&[
            "palettize",
            package.to_str().unwrap(),
            "-o",
            compressed.to_str().unwrap(),
            "--nbits",
            "4",
            "--target",
            target,
            "--allow-degraded",
            "-q",
        ]);
        assert!(out.status.success(), "{}", text(&out));
        let chain = dir.join(format!("chain_{target}"));
        let max = 12_000;
        let report = pipeline::split(&SplitOptions {
            package: compressed.clone(),
            output: chain.clone(),
            max_weight_size: max,
        })
        .unwrap();
        assert!(report.manifest.chunks.len() >= 3, "{:?}", report.manifest);
        assert!(report.manifest.chunks.iter().all(|c| c.weight_bytes <= max));
        let options = RunOptions { emulate_fp16: true };
        let inputs = fx.input_files();
        let whole = pipeline::run_package(&compressed, &inputs, options).unwrap();
        let chained = pipeline::run_package(&chain, &inputs, options).unwrap();
        assert_eq!(bits(&chained), bits(&whole), "{target}");
    }
}
