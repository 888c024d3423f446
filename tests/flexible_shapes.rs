//! Flexible input shapes end to end: the `flexible/seq_attention` fixture (an ONNX export with
//! a symbolic `seq` dimension on its token ids, and a Shape → Gather → Unsqueeze → Concat →
//! Reshape attention block on it) converts with `--dim seq=…` into one package whose outputs
//! match ONNX Runtime at every sequence length saved with the fixture; sizes the package does
//! not accept are refused; the package reads back with the same accepted shapes.

mod common;

use common::fixtures::Fixture;
use mlpack::backend::read_package;
use mlpack::frontend::onnx::NamedDim;
use mlpack::interp::{RunOptions, Value};
use mlpack::ir::{Dim, ShapeSet, Target};
use mlpack::pipeline::{self, ConvertOptions, InputShapes, Precision};
use mlpack::Error;
use std::path::{Path, PathBuf};

/// One sequence length of the fixture: its input and ONNX Runtime output files.
struct Length {
    seq: usize,
    input: PathBuf,
    output: PathBuf,
}

/// The lengths listed under `flexible.lengths` in the fixture's meta.json.
fn lengths(fx: &Fixture) -> Vec<Length> {
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fx.dir.join("meta.json")).unwrap()).unwrap();
    meta["flexible"]["lengths"]
        .as_array()
        .expect("flexible.lengths")
        .iter()
        .map(|l| Length {
            seq: l["seq"].as_u64().unwrap() as usize,
            input: fx.dir.join(l["inputs"][0]["file"].as_str().unwrap()),
            output: fx.dir.join(l["outputs"][0]["file"].as_str().unwrap()),
        })
        .collect()
}

fn convert(fx: &Fixture, dim: &str, out: &Path) -> Result<(), Error> {
    let options = ConvertOptions {
        describe: Default::default(),
        input: fx.model_path(),
        output: out.to_path_buf(),
        precision: Precision::Fp32,
        mixed: Default::default(),
        target: Target::IOS17,
        input_shapes: InputShapes {
            inputs: Vec::new(),
            dims: vec![dim.parse::<NamedDim>().unwrap()],
            frozen: Vec::new(),
        },
        force: true,
        states: Vec::new(),
        verify: Some(Default::default()),
    };
    pipeline::convert(&options).map(|_| ())
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

fn run(package: &Path, input: &Path) -> Result<Value, Error> {
    let inputs = vec![("ids".to_string(), input.to_path_buf())];
    let mut outs = pipeline::run_package(package, &inputs, RunOptions::default())?;
    Ok(outs.remove(0).1)
}

#[test]
fn ranged_and_enumerated_packages_match_onnx_runtime_at_every_length() {
    let fx = Fixture::load("flexible", "seq_attention");
    let lengths = lengths(&fx);
    assert_eq!(lengths.len(), 3);
    let dir = common::packages::package_dir("flexible_shapes");
    let enumerated: Vec<String> = lengths.iter().map(|l| l.seq.to_string()).collect();
    for (dim, name) in [
        ("seq=1..64".to_string(), "range"),
        (format!("seq={}", enumerated.join("|")), "enumerated"),
    ] {
        let package = dir.join(format!("seq_attention_{name}.mlpackage"));
        convert(&fx, &dim, &package).unwrap_or_else(|e| panic!("{dim}: {e}"));
        for l in &lengths {
            let out =
                run(&package, &l.input).unwrap_or_else(|e| panic!("{dim}, seq {}: {e}", l.seq));
            let err = relative_error(&out, &read_npy(&l.output));
            println!("{dim}: seq {} max rel err {err:.2e}", l.seq);
            assert!(err <= 1e-4, "{dim}: seq {}: max rel err {err}", l.seq);
        }
        let program = read_package(&package).unwrap();
        let main = program.main();
        assert_eq!(main.inputs[0].ty.shape[0], Dim::Fixed(1));
        assert!(matches!(main.inputs[0].ty.shape[1], Dim::Symbol(_)));
        let expected = match name {
            "range" => ShapeSet::Ranges(vec![(1, Some(1)), (1, Some(64))]),
            _ => ShapeSet::Enumerated(lengths.iter().map(|l| vec![1, l.seq]).collect()),
        };
        assert_eq!(main.input_shapes["ids"], expected);
    }
    // A length the enumerated package does not list is refused, naming the accepted shapes.
    let package = dir.join("seq_attention_enumerated.mlpackage");
    let odd = dir.join("ids_5.npy");
    let ids = Value::Int(ndarray::ArrayD::zeros(ndarray::IxDyn(&[1, 5])));
    std::fs::write(&odd, mlpack::npy::serialize(&ids).unwrap()).unwrap();
    let err = run(&package, &odd).unwrap_err();
    assert!(
        matches!(&err, Error::Usage(_)) && err.to_string().contains("1,3|1,17|1,64"),
        "{err}"
    );
}

#[test]
fn a_dynamic_dimension_without_a_size_names_the_dim_flag() {
    let fx = Fixture::load("flexible", "seq_attention");
    let out = common::packages::package_dir("flexible_shapes_error").join("x.mlpackage");
    let options = ConvertOptions {
        describe: Default::default(),
        input: fx.model_path(),
        output: out.clone(),
        precision: Precision::Fp32,
        mixed: Default::default(),
        target: Target::IOS17,
        input_shapes: Default::default(),
        force: false,
        states: Vec::new(),
        verify: None,
    };
    let err = pipeline::convert(&options).unwrap_err();
    assert!(
        err.to_string()
            .contains("fix it with --dim seq=128, or make it flexible with --dim seq=1..512"),
        "{err}"
    );
    assert!(!out.exists());
    let unknown = convert(&fx, "sequence=1..8", &out).unwrap_err();
    assert!(
        matches!(&unknown, Error::Usage(m) if m.contains("'sequence'") && m.contains("seq")),
        "{unknown}"
    );
}
