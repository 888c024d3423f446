//! Issue 12: identical weights are stored once in weight.bin, by every command that writes a
//! package, with the same bytes at any thread count.
//!
//! The GPT-2 fixtures tie the LM head to the token embedding: the head's MatMul weight is the
//! embedding table transposed, which the converter turns back into a `linear` weight with the
//! table's own layout, so the `gather` table and the `linear` weight hold the same values.
//! weight.bin is walked here from its header by the blob storage layout, independently of
//! mlpack's reader: every record is distinct, the records cover the file exactly, and the tied
//! table is there once while two constants hold it.
//!
//! Packages go under `target/test-packages/weight_dedup_*`, where `scripts/test.sh` checks
//! them with coremltools; `transformers.rs` checks the same conversions against ONNX Runtime.

mod common;

use common::cli::text;
use common::fixtures::Fixture;
use common::packages::package_dir;
use mlpack::backend::{read_package, stored_in_blob};
use mlpack::ir::{Argument, Program, Tensor};
use std::path::{Path, PathBuf};

const WEIGHTS: &str = "Data/com.apple.CoreML/weights/weight.bin";
const MODEL: &str = "Data/com.apple.CoreML/model.mlmodel";

/// One weight.bin record: dtype code, pad bits and payload.
type Record = (u32, u64, Vec<u8>);

fn le(bytes: &[u8], at: usize, width: usize) -> u64 {
    bytes[at..at + width]
        .iter()
        .rev()
        .fold(0, |v, &b| (v << 8) | u64::from(b))
}

/// The records of `package`'s weight.bin, walked from the 64-byte header (blob count first),
/// each a 64-byte record (sentinel 0xDEADBEEF, dtype code, size, data offset, pad bits) at a
/// 64-aligned offset with its payload right after it. Asserts the count matches and that the
/// last payload ends the file.
fn records(package: &Path) -> Vec<Record> {
    let file = std::fs::read(package.join(WEIGHTS)).unwrap();
    let count = le(&file, 0, 4) as usize;
    let mut out = Vec::new();
    let mut end = 64usize;
    for i in 0..count {
        let at = end.next_multiple_of(64);
        assert_eq!(
            le(&file, at, 4),
            0xDEAD_BEEF,
            "record {i} at {at}: sentinel"
        );
        let (code, size, data, pad) = (
            le(&file, at + 4, 4) as u32,
            le(&file, at + 8, 8) as usize,
            le(&file, at + 16, 8) as usize,
            le(&file, at + 24, 8),
        );
        assert_eq!(data, at + 64, "record {i}: payload follows its record");
        out.push((code, pad, file[data..data + size].to_vec()));
        end = data + size;
    }
    assert_eq!(
        end,
        file.len(),
        "{}: bytes after the last blob",
        package.display()
    );
    out
}

/// Asserts no two records of `package` have the same dtype code, pad bits and payload, and
/// returns them.
fn assert_stored_once(package: &Path) -> Vec<Record> {
    let records = records(package);
    for (i, a) in records.iter().enumerate() {
        if let Some(j) = records[..i].iter().position(|b| b == a) {
            panic!(
                "{}: records {j} and {i} are identical ({} bytes)",
                package.display(),
                a.2.len()
            );
        }
    }
    records
}

/// Every constant of `program` that the writer puts in weight.bin: attributes of any op and
/// the values bound to `constexpr_*` inputs, when [`stored_in_blob`] says so.
fn blob_constants(program: &Program) -> Vec<&Tensor> {
    let target = program.target;
    let mut out = Vec::new();
    for op in &program.main().block.operations {
        out.extend(op.attributes.values());
        if op.op_type.starts_with("constexpr_") {
            for (_, args) in &op.inputs {
                out.extend(args.iter().filter_map(|a| match a {
                    Argument::Value(t) => Some(t),
                    Argument::Var(_) => None,
                }));
            }
        }
    }
    out.retain(|t| stored_in_blob(t, target));
    out
}

/// The value of the const feeding the `gather` op's table (the token embedding).
fn embedding_table(program: &Program) -> &Tensor {
    let ops = &program.main().block.operations;
    let gather = ops.iter().find(|op| op.op_type == "gather").unwrap();
    let Some([Argument::Var(name)]) = gather.input("x") else {
        panic!("gather table is not a variable");
    };
    ops.iter()
        .find(|op| op.outputs[0].name == *name)
        .and_then(|op| op.const_value())
        .expect("the gather table is a const")
}

/// Converts `case` with `args` into `dir/<stem>.mlpackage` through the CLI, with `threads`
/// rayon threads.
fn cli_convert(case: &str, dir: &Path, stem: &str, args: &[&str], threads: &str) -> PathBuf {
    let model = Fixture::load("transformers", case).model_path();
    let out = dir.join(format!("{stem}.mlpackage"));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mlpack"))
        .env("RAYON_NUM_THREADS", threads)
        .arg("convert")
        .arg(&model)
        .arg("-o")
        .arg(&out)
        .args(args)
        .args(["--no-verify", "--quiet"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{case}: {}", text(&output));
    out
}

fn check_tied_embedding(case: &str) {
    let dir = package_dir(&format!("weight_dedup_{case}"));
    for precision in ["fp32", "fp16"] {
        let package = cli_convert(case, &dir, precision, &["--precision", precision], "2");
        let records = assert_stored_once(&package);
        let program = read_package(&package).unwrap();
        let table = embedding_table(&program);
        let holders = blob_constants(&program)
            .into_iter()
            .filter(|t| t.dtype() == table.dtype() && t.bytes() == table.bytes())
            .count();
        assert_eq!(
            holders, 2,
            "{case} {precision}: the gather table and the head weight"
        );
        let copies = records.iter().filter(|r| r.2 == table.bytes()).count();
        assert_eq!(
            copies, 1,
            "{case} {precision}: the tied table in weight.bin"
        );
    }
}

#[test]
fn tied_embedding_is_stored_once_torchscript() {
    check_tied_embedding("gpt2_ts17");
}

#[test]
fn tied_embedding_is_stored_once_dynamo() {
    check_tied_embedding("gpt2_dynamo18");
}

/// Compression commands read a package and write one: identical palettes, indices, scales
/// and masks (the tied table compresses the same way twice) are stored once too, and the
/// output does not depend on the thread count.
#[test]
fn compressed_blobs_are_stored_once_at_any_thread_count() {
    let dir = package_dir("weight_dedup_compress");
    let source = cli_convert("gpt2_ts17", &dir, "source", &[], "2");
    for args in [
        vec!["palettize", "--nbits", "4"],
        vec!["quantize", "--dtype", "int8"],
        vec!["prune", "--target-sparsity", "0.5"],
    ] {
        let mut packages = Vec::new();
        for threads in ["1", "2"] {
            let out = dir.join(format!("{}_{threads}.mlpackage", args[0]));
            let output = std::process::Command::new(env!("CARGO_BIN_EXE_mlpack"))
                .env("RAYON_NUM_THREADS", threads)
                .args(&args)
                .arg(&source)
                .arg("-o")
                .arg(&out)
                .args(["--no-verify", "--quiet"])
                .output()
                .unwrap();
            assert!(output.status.success(), "{args:?}: {}", text(&output));
            packages.push(out);
        }
        let records = assert_stored_once(&packages[0]);
        let program = read_package(&packages[0]).unwrap();
        let references = blob_constants(&program).len();
        assert!(
            references > records.len(),
            "{args:?}: {references} blob constants in {} records, none shared",
            records.len()
        );
        for file in [MODEL, WEIGHTS] {
            let a = std::fs::read(packages[0].join(file)).unwrap();
            let b = std::fs::read(packages[1].join(file)).unwrap();
            assert!(a == b, "{args:?}: {file} differs between 1 and 2 threads");
        }
    }
}

/// Converting at one and at two threads gives the same package files.
#[test]
fn convert_output_does_not_depend_on_the_thread_count() {
    let dir = package_dir("weight_dedup_threads");
    let one = cli_convert("gpt2_dynamo18", &dir, "one", &[], "1");
    let two = cli_convert("gpt2_dynamo18", &dir, "two", &[], "2");
    for file in [MODEL, WEIGHTS] {
        let a = std::fs::read(one.join(file)).unwrap();
        let b = std::fs::read(two.join(file)).unwrap();
        assert!(a == b, "{file} differs between 1 and 2 threads");
    }
}
