//! Pre-quantized ONNX models (fixtures/quantized: a CNN quantized by onnxruntime's
//! `quantize_static` in QDQ format, an MLP whose MatMuls onnxruntime's `MatMulNBitsQuantizer`
//! made 4-bit `MatMulNBits`) convert to packages that keep their weights as integers
//! (constexpr ops, no float copy) and whose outputs match ONNX Runtime running the quantized
//! model: cosine ≥ 0.99 where activations are quantized (Core ML rounds activations in its own
//! order, and one flipped rounding moves a value by a whole quantization step), ≥ 0.999 for
//! weight-only quantization.

mod common;

use common::fixtures::Fixture;
use mlpack::interp::RunOptions;
use mlpack::ir::Target;
use mlpack::pipeline::{self, ConvertOptions, ConvertReport, InputShapes, Precision};
use mlpack::proto::onnx::{tensor_proto::DataType, ModelProto};
use mlpack::verify::metrics::{Accumulator, Metrics};
use mlpack::Error;
use prost::Message;
use std::path::{Path, PathBuf};

/// Where a package keeps its weights.
const WEIGHTS: &str = "Data/com.apple.CoreML/weights/weight.bin";

/// Converts `fx` for `target` at `precision` into `dir`.
fn convert(
    fx: &Fixture,
    target: Target,
    precision: Precision,
    dir: &Path,
) -> Result<(PathBuf, ConvertReport), Error> {
    let out = dir.join(format!("{}_{target}_{precision:?}.mlpackage", fx.case));
    let options = ConvertOptions {
        describe: Default::default(),
        input: fx.model_path(),
        output: out.clone(),
        precision,
        mixed: Default::default(),
        target,
        input_shapes: InputShapes::default(),
        force: false,
        states: Vec::new(),
        verify: None,
    };
    let report = pipeline::convert(&options)?;
    Ok((out, report))
}

/// Runs `package` on the fixture's inputs and compares its one output with ONNX Runtime's.
fn compare(fx: &Fixture, package: &Path, precision: Precision) -> Metrics {
    let run = RunOptions {
        emulate_fp16: precision == Precision::Fp16,
    };
    let outputs = pipeline::run_package(package, &fx.input_files(), run).unwrap();
    let expected = fx.output_files();
    assert_eq!(outputs.len(), 1);
    let reference = mlpack::npy::parse(&std::fs::read(&expected[0].1).unwrap()).unwrap();
    let (ours, theirs) = (
        outputs[0].1.to_f32_array().unwrap(),
        reference.to_f32_array().unwrap(),
    );
    assert_eq!(ours.shape(), theirs.shape());
    let mut acc = Accumulator::default();
    acc.add(&theirs, &ours);
    acc.finish()
}

/// Bytes of the package's weight file.
fn weight_bytes(package: &Path) -> u64 {
    std::fs::metadata(package.join(WEIGHTS)).unwrap().len()
}

/// The fixture model's initializers as (ONNX element type, element count).
fn initializers(fx: &Fixture) -> Vec<(DataType, usize)> {
    let model = ModelProto::decode(std::fs::read(fx.model_path()).unwrap().as_slice()).unwrap();
    model
        .graph
        .unwrap()
        .initializer
        .iter()
        .map(|t| {
            (
                DataType::try_from(t.data_type).unwrap(),
                t.dims.iter().product::<i64>() as usize,
            )
        })
        .collect()
}

fn op_count(report: &ConvertReport, op: &str) -> usize {
    report.ops.get(op).copied().unwrap_or(0)
}

/// The QDQ CNN at iOS17 and iOS18: int8 constexpr weights of the target's form, activation
/// pairs as MIL `quantize`/`dequantize`, outputs matching ORT, and a weight file no larger
/// than the integers plus the float parameters and per-blob alignment.
#[test]
fn qdq_cnn_keeps_int8_weights_and_matches_onnx_runtime() {
    let fx = Fixture::load("quantized", "qdq_cnn_op13");
    let dir = common::packages::package_dir("quantized_onnx_qdq");
    let inits = initializers(&fx);
    let int8: usize = inits
        .iter()
        .filter(|(t, _)| matches!(t, DataType::Int8 | DataType::Uint8))
        .map(|(_, n)| n)
        .sum();
    let weights = inits.iter().filter(|(_, n)| *n > 1).count();
    // Scales and biases (int32, dequantized to floats) at four bytes each, plus 64 bytes of
    // blob header and alignment for every tensor.
    let params: usize = inits
        .iter()
        .filter(|(t, n)| matches!(t, DataType::Float | DataType::Int32) && *n > 1)
        .map(|(_, n)| 4 * n)
        .sum();
    let bound = (int8 + int8 / 10 + params + 64 * weights) as u64;
    assert!(
        bound < 4 * int8 as u64,
        "the bound {bound} must be below a float copy of the {int8} weights"
    );
    for (target, constexpr) in [
        (Target::IOS17, "constexpr_affine_dequantize"),
        (Target::IOS18, "constexpr_blockwise_shift_scale"),
    ] {
        for precision in [Precision::Fp32, Precision::Fp16] {
            let (package, report) = convert(&fx, target, precision, &dir).unwrap();
            let m = compare(&fx, &package, precision);
            let size = weight_bytes(&package);
            println!(
                "qdq_cnn_op13 {target} {precision:?}: cosine {:.6}, max abs {:.3e} (max |ORT| {:.3e}), weight.bin {size} B (int8 weights {int8} B, bound {bound} B), ops {:?}",
                m.cosine,
                m.max_abs,
                m.reference_range.map_or(0.0, |(lo, hi)| lo.abs().max(hi.abs())),
                report.ops
            );
            assert_eq!(
                op_count(&report, constexpr),
                4,
                "{target}: {:?}",
                report.ops
            );
            assert_eq!(
                op_count(&report, "quantize"),
                8,
                "{target}: {:?}",
                report.ops
            );
            assert_eq!(
                op_count(&report, "dequantize"),
                8,
                "{target}: {:?}",
                report.ops
            );
            assert!(report.warnings.is_empty(), "{:?}", report.warnings);
            assert!(
                m.cosine >= 0.99,
                "{target} {precision:?}: cosine {}",
                m.cosine
            );
            assert!(size <= bound, "{target}: weight.bin {size} B > {bound} B");
        }
    }
}

/// Below iOS17 the activation pairs compute their rounding in fp32 and below iOS16 the weights
/// become floats, each with a warning; the results still match ORT.
#[test]
fn qdq_cnn_below_ios17_warns_about_what_it_drops() {
    let fx = Fixture::load("quantized", "qdq_cnn_op13");
    let dir = common::packages::package_dir("quantized_onnx_qdq_old");
    let (package, report) = convert(&fx, Target::IOS16, Precision::Fp32, &dir).unwrap();
    let m = compare(&fx, &package, Precision::Fp32);
    println!(
        "qdq_cnn_op13 iOS16: cosine {:.6}, max abs {:.3e}, warnings {:?}",
        m.cosine, m.max_abs, report.warnings
    );
    assert_eq!(op_count(&report, "constexpr_affine_dequantize"), 4);
    assert_eq!(op_count(&report, "quantize"), 0);
    assert!(
        report.warnings.iter().any(|w| w.contains(
            "activation QuantizeLinear/DequantizeLinear pairs computed as fp32 rounding"
        )),
        "{:?}",
        report.warnings
    );
    assert!(m.cosine >= 0.99, "iOS16: cosine {}", m.cosine);

    let (package, report) = convert(&fx, Target::IOS15, Precision::Fp32, &dir).unwrap();
    let m = compare(&fx, &package, Precision::Fp32);
    println!(
        "qdq_cnn_op13 iOS15: cosine {:.6}, max abs {:.3e}, warnings {:?}",
        m.cosine, m.max_abs, report.warnings
    );
    assert!(!report.ops.keys().any(|op| op.starts_with("constexpr_")));
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("dequantized to float constants")),
        "{:?}",
        report.warnings
    );
    assert!(m.cosine >= 0.99, "iOS15: cosine {}", m.cosine);
}

/// MatMulNBits at iOS18: uint4 `constexpr_blockwise_shift_scale` weights feeding `linear`,
/// outputs matching ORT, and a weight file of about half a byte per weight; earlier targets
/// are refused, naming the op and the target it needs.
#[test]
fn matmulnbits_becomes_4_bit_constexpr_weights() {
    let fx = Fixture::load("quantized", "matmulnbits_mlp");
    let dir = common::packages::package_dir("quantized_onnx_nbits");
    // N × K 4-bit weights; per 32-weight block one scale (4 B) and one 4-bit zero point; the
    // fp32 bias; each of those 7 blobs with a 64-byte header, 64-byte aligned.
    let weights = 64 * 128 + 128 * 32;
    let blocks = weights / 32;
    let bound = (weights / 2 + blocks * 4 + blocks / 2 + 128 * 4 + 128 * 7) as u64;
    assert!(
        bound < 2 * weights as u64,
        "the bound must be below an fp16 copy"
    );
    for precision in [Precision::Fp32, Precision::Fp16] {
        let (package, report) = convert(&fx, Target::IOS18, precision, &dir).unwrap();
        let m = compare(&fx, &package, precision);
        let size = weight_bytes(&package);
        println!(
            "matmulnbits_mlp iOS18 {precision:?}: cosine {:.7}, max abs {:.3e}, weight.bin {size} B (bound {bound} B), ops {:?}",
            m.cosine, m.max_abs, report.ops
        );
        assert_eq!(op_count(&report, "constexpr_blockwise_shift_scale"), 2);
        assert_eq!(op_count(&report, "linear"), 2);
        assert!(m.cosine >= 0.999, "{precision:?}: cosine {}", m.cosine);
        assert!(size <= bound, "weight.bin {size} B > {bound} B");
    }
    match convert(&fx, Target::IOS17, Precision::Fp32, &dir) {
        Err(Error::Unsupported { message, .. }) => {
            assert!(
                message.contains("MatMulNBits") && message.contains("iOS18"),
                "{message}"
            );
        }
        other => panic!(
            "expected an unsupported error, got {:?}",
            other.map(|r| r.1.ops)
        ),
    }
}
