//! Bad inputs of every kind end in a one-line error with a documented exit code, before
//! anything is allocated or written (issue 15's table, one test per group of cases).

mod common;

use common::cli::{error_line, fails_with, mlpack, stderr};
use std::io::Write;
use std::path::{Path, PathBuf};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The small MLP fixture (input `x`: fp32 [2,16]).
fn small_model() -> PathBuf {
    fixture("models/mlp_op17/model.onnx")
}

/// Converts the small MLP into `dir/name` without verification.
fn small_package(dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    let o = mlpack(&[
        "convert",
        s(&small_model()),
        "-o",
        s(&out),
        "--no-verify",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    out
}

/// An `.npy` file's bytes with header `descr` and `shape` (a Python tuple) and payload `data`.
fn npy_bytes(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n");
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

/// Writes an `.npz` archive (stored members) holding `members` (name, `.npy` bytes).
fn write_npz(path: &Path, members: &[(&str, Vec<u8>)]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in members {
        zip.start_file(*name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

/// Case 1: an `.npy` dtype of element size 0 is invalid input wherever `.npy` data is read.
#[test]
fn npy_with_a_zero_size_dtype_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let package = small_package(dir.path(), "p.mlpackage");
    for descr in ["<f0", "<i0", "|u0", "|b0"] {
        let npy = dir.path().join("x.npy");
        std::fs::write(&npy, npy_bytes(descr, "(2, 16)", &[])).unwrap();
        let input = format!("x={}", s(&npy));
        let out = dir.path().join("out");
        fails_with(
            &["run", s(&package), "--input", &input, "-o", s(&out)],
            4,
            &["x.npy", "unsupported dtype"],
        );
        let npz = dir.path().join("in.npz");
        write_npz(&npz, &[("x.npy", npy_bytes(descr, "(2, 16)", &[]))]);
        fails_with(
            &[
                "verify",
                s(&small_model()),
                s(&package),
                "--inputs",
                s(&npz),
            ],
            4,
            &["in.npz", "unsupported dtype"],
        );
        let calibration = dir.path().join("calibration");
        std::fs::create_dir_all(&calibration).unwrap();
        write_npz(
            &calibration.join("set.npz"),
            &[("x.npy", npy_bytes(descr, "(2, 16)", &[]))],
        );
        let converted = dir.path().join("auto.mlpackage");
        fails_with(
            &[
                "convert",
                s(&small_model()),
                "-o",
                s(&converted),
                "--precision",
                "auto",
                "--calibration",
                s(&calibration),
            ],
            4,
            &["set.npz", "unsupported dtype"],
        );
        assert!(!converted.exists());
    }
}

/// Cases 2, 4 and 5: shapes beyond 2^31 elements are refused before anything is allocated:
/// from a flag a usage error naming it, from the model invalid input naming it, in every
/// command that reads ONNX.
#[test]
fn shapes_beyond_the_element_limit_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mlpackage");
    let dynamic = fixture("models/small_cnn_dynamic/model.onnx");
    for flags in [
        ["--input-shape", "x=18446744073709551615,3,16,16"],
        ["--input-shape", "x=4294967296,3,16,16"],
        ["--dim", "batch=18446744073709551615"],
        ["--dim", "batch=1..18446744073709551615"],
    ] {
        let mut args = vec!["convert", s(&dynamic), "-o", s(&out)];
        args.extend(flags);
        let line = fails_with(&args, 2, &["--input-shape/--dim", "input 'x'"]);
        assert!(line.contains("elements"), "{line}");
    }
    let recipe = dir.path().join("recipe.json");
    std::fs::write(&recipe, r#"{"global": {"quantize": {}}}"#).unwrap();
    let package = small_package(dir.path(), "p.mlpackage");
    for case in ["huge_input", "overflow_input"] {
        let model = fixture(&format!("bad/{case}/model.onnx"));
        let m = s(&model);
        let o = s(&out);
        for args in [
            vec!["convert", m, "-o", o],
            vec!["palettize", m, "-o", o, "--nbits", "4"],
            vec!["quantize", m, "-o", o],
            vec!["prune", m, "-o", o, "--target-sparsity", "0.5"],
            vec!["compress", m, "-o", o, "--recipe", s(&recipe)],
            vec!["verify", m, s(&package)],
            vec!["inspect", m],
        ] {
            if args[0] == "inspect" {
                // Describing the model allocates nothing: it still succeeds.
                let run = mlpack(&args);
                assert!(run.status.success(), "{}", stderr(&run));
                continue;
            }
            fails_with(&args, 4, &[case, "input 'x' declares shape", "elements"]);
        }
        assert!(!out.exists());
    }
}

/// Case 6: Conv/MaxPool pads of 2^62 are invalid input naming the node.
#[test]
fn huge_pads_are_invalid_input_naming_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mlpackage");
    for (case, op) in [("huge_pads_maxpool", "MaxPool"), ("huge_pads_conv", "Conv")] {
        let model = fixture(&format!("bad/{case}/model.onnx"));
        fails_with(
            &["convert", s(&model), "-o", s(&out)],
            4,
            &[case, &format!("({op})"), "elements"],
        );
        assert!(!out.exists());
    }
}

/// Cases 3 and 20: counts, NaN and infinities in numeric flags are usage errors naming the
/// flag.
#[test]
fn numeric_flags_refuse_nan_infinity_and_absurd_counts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mlpackage");
    let m = small_model();
    let package = small_package(dir.path(), "p.mlpackage");
    for (flag, value) in [
        ("--verify-samples", "18446744073709551615"),
        ("--verify-samples", "1000000000000"),
        ("--verify-samples", "0"),
        ("--calibration-samples", "1000000000000"),
    ] {
        fails_with(
            &["convert", s(&m), "-o", s(&out), flag, value],
            2,
            &[flag, value],
        );
    }
    for (flag, value) in [
        ("--max-abs", "nan"),
        ("--max-abs", "inf"),
        ("--max-abs", "-1"),
        ("--min-snr", "NaN"),
        ("--min-cosine", "-inf"),
        ("--min-cosine", "2"),
        ("--random", "1000000000000"),
        ("--steps", "18446744073709551615"),
    ] {
        let arg = format!("{flag}={value}");
        fails_with(&["verify", s(&m), s(&package), &arg], 2, &[flag, value]);
    }
    for (flag, value) in [("--min-cosine", "nan"), ("--min-snr", "inf")] {
        fails_with(
            &[
                "palettize",
                s(&m),
                "-o",
                s(&out),
                "--nbits",
                "4",
                flag,
                value,
            ],
            2,
            &[flag, value],
        );
    }
    for (flag, value) in [("--target-sparsity", "nan"), ("--threshold", "inf")] {
        fails_with(
            &["prune", s(&m), "-o", s(&out), flag, value],
            2,
            &[flag, value],
        );
    }
    assert!(!out.exists());
}

/// Case 18: flag-parser errors are one `mlpack: error:` line with exit code 2; help and
/// version still print as before.
#[test]
fn flag_parser_errors_are_one_line_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mlpackage");
    let m = small_model();
    for (args, needle) in [
        (
            vec!["palettize", s(&m), "-o", s(&out), "--nbits", "abc"],
            "--nbits",
        ),
        (vec!["prune", s(&m), "-o", s(&out), "--n-m", "4:2"], "--n-m"),
        (
            vec!["quantize", s(&m), "-o", s(&out), "--dtype", "int3"],
            "int3",
        ),
        (
            vec!["convert", s(&m), "-o", s(&out), "--no-such-flag"],
            "--no-such-flag",
        ),
        (vec!["convert", s(&m)], "--output"),
        (vec!["frobnicate"], "frobnicate"),
    ] {
        fails_with(&args, 2, &[needle]);
    }
    let help = mlpack(&["convert", "--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage: mlpack convert"));
    let version = mlpack(&["--version"]);
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("mlpack {}", env!("CARGO_PKG_VERSION"))
    );
    assert!(!out.exists());
    let _ = error_line;
}

/// Every file under `dir` with its bytes, sorted by path.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Cases 12–16: no command writes onto, inside or above what it reads, report files
/// included; the report and the package are written together or not at all.
#[test]
fn outputs_never_land_on_inside_or_above_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let package = small_package(d, "p.mlpackage");
    let before = tree(&package);
    let inner = package.join("inner.mlpackage");
    for args in [
        vec!["convert", s(&package), "-o", s(&inner)],
        vec!["quantize", s(&package), "-o", s(&inner)],
        vec!["palettize", s(&package), "-o", s(&inner), "--nbits", "4"],
        vec![
            "split",
            s(&package),
            "-o",
            &format!("{}/chain", s(&package)),
        ],
    ] {
        fails_with(&args, 2, &["lies inside the input", "p.mlpackage"]);
    }
    // Case 16: `run -o` into the input package.
    let x = fixture("models/mlp_op17/input_0.npy");
    let input = format!("x={}", s(&x));
    fails_with(
        &["run", s(&package), "--input", &input, "-o", s(&package)],
        2,
        &["lies inside the input", "y.npy"],
    );
    fails_with(
        &[
            "run",
            s(&package),
            "--input",
            &input,
            "--state-dir",
            s(&package),
        ],
        2,
        &["--state-dir", "the output is the input"],
    );
    assert_eq!(tree(&package), before, "the input package changed");

    // Case 13: the output contains the input.
    let outer = d.join("outer.mlpackage");
    let nested = outer.join("inner").join("p.mlpackage");
    std::fs::create_dir_all(nested.parent().unwrap()).unwrap();
    std::fs::rename(&package, &nested).unwrap();
    fails_with(
        &["convert", s(&nested), "-o", s(&outer), "--force"],
        2,
        &["contains the input"],
    );
    assert_eq!(tree(&nested).len(), before.len(), "the input was touched");

    // Case 14: the report is the input model.
    let model = d.join("m.onnx");
    std::fs::copy(small_model(), &model).unwrap();
    let model_bytes = std::fs::read(&model).unwrap();
    let out = d.join("out.mlpackage");
    fails_with(
        &["convert", s(&model), "-o", s(&out), "--report", s(&model)],
        2,
        &["--report", "the output is the input"],
    );
    assert_eq!(std::fs::read(&model).unwrap(), model_bytes);
    // Case 15: a report in a missing folder, or equal to -o: nothing written.
    let missing = d.join("missing").join("r.json");
    fails_with(
        &["convert", s(&model), "-o", s(&out), "--report", s(&missing)],
        2,
        &["--report", "does not exist"],
    );
    fails_with(
        &["convert", s(&model), "-o", s(&out), "--report", s(&out)],
        2,
        &["--report", "overlaps the -o output"],
    );
    fails_with(
        &[
            "quantize",
            s(&model),
            "-o",
            s(&out),
            "--report",
            s(&missing),
        ],
        2,
        &["--report", "does not exist"],
    );
    assert!(!out.exists(), "a package was written without its report");
    // And with a good report path both are written.
    let report = d.join("r.json");
    let o = mlpack(&[
        "convert",
        s(&model),
        "-o",
        s(&out),
        "--report",
        s(&report),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("Manifest.json").is_file());
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(json["output"], s(&out));
    let names: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(names.is_empty(), "temporary files left: {names:?}");
}

/// Case 9: external data reached through a symlink out of the model's folder is refused; the
/// same bytes as a regular file inside it convert.
#[cfg(unix)]
#[test]
fn external_data_symlinked_out_of_the_model_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("model");
    std::fs::create_dir(&folder).unwrap();
    let model = folder.join("model.onnx");
    std::fs::copy(fixture("bad/missing_external/model.onnx"), &model).unwrap();
    let outside = dir.path().join("secret.bin");
    std::fs::write(&outside, [0u8; 48]).unwrap();
    let weights = folder.join("weights.bin");
    std::os::unix::fs::symlink(&outside, &weights).unwrap();
    let out = dir.path().join("out.mlpackage");
    fails_with(
        &["convert", s(&model), "-o", s(&out)],
        4,
        &["initializer 'w'", "leads outside"],
    );
    assert!(!out.exists());
    std::fs::remove_file(&weights).unwrap();
    std::fs::copy(&outside, &weights).unwrap();
    let o = mlpack(&["convert", s(&model), "-o", s(&out), "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Case 9 for packages: a member symlinked out of the package is refused.
#[cfg(unix)]
#[test]
fn package_members_symlinked_out_of_the_package_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let package = small_package(dir.path(), "p.mlpackage");
    let weights = package.join("Data/com.apple.CoreML/weights/weight.bin");
    let outside = dir.path().join("elsewhere.bin");
    std::fs::rename(&weights, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &weights).unwrap();
    fails_with(
        &["inspect", s(&package)],
        4,
        &["weight.bin", "leads outside"],
    );
}

/// Makes a FIFO at `path`.
#[cfg(unix)]
fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Cases 10 and 11: FIFOs and devices are refused before they are opened (nothing hangs or
/// reads forever), and a Manifest.json of random bytes is invalid input.
#[cfg(unix)]
#[test]
fn fifos_devices_and_garbage_manifests_are_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let fifo_model = dir.path().join("model.onnx");
    mkfifo(&fifo_model);
    fails_with(&["inspect", s(&fifo_model)], 4, &["not a regular file"]);
    let package = small_package(dir.path(), "p.mlpackage");
    let members = [
        "Manifest.json",
        "Data/com.apple.CoreML/model.mlmodel",
        "Data/com.apple.CoreML/weights/weight.bin",
    ];
    for member in members {
        let copy = dir.path().join("q.mlpackage");
        let _ = std::fs::remove_dir_all(&copy);
        copy_tree(&package, &copy);
        let path = copy.join(member);
        std::fs::remove_file(&path).unwrap();
        mkfifo(&path);
        fails_with(
            &["inspect", s(&copy)],
            4,
            &[member.rsplit('/').next().unwrap(), "not a regular file"],
        );
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        fails_with(
            &["inspect", s(&copy)],
            4,
            &[member.rsplit('/').next().unwrap()],
        );
    }
    let copy = dir.path().join("r.mlpackage");
    copy_tree(&package, &copy);
    let noise: Vec<u8> = (0u32..4096)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(copy.join("Manifest.json"), noise).unwrap();
    fails_with(
        &["inspect", s(&copy)],
        4,
        &["Manifest.json", "not valid JSON"],
    );
}

/// Copies the directory tree `from` to `to`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// Case 7: two nodes writing one value name are invalid input naming both nodes.
#[test]
fn two_nodes_writing_one_value_are_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mlpackage");
    let model = fixture("bad/duplicate_output/model.onnx");
    fails_with(
        &["convert", s(&model), "-o", s(&out)],
        4,
        &["nodes 'first' and 'second' both write 'y'"],
    );
    assert!(!out.exists());
}

/// Case 8: a zero-size initializer (concatenated, and one unused) converts at fp16 as at fp32.
#[test]
fn zero_size_initializers_convert_at_fp16_as_at_fp32() {
    let dir = common::packages::package_dir("zero_size_initializers");
    let model = fixture("bad/zero_size_initializer/model.onnx");
    for precision in ["fp16", "fp32"] {
        let out = dir.join(format!("zero_size_{precision}.mlpackage"));
        let o = mlpack(&[
            "convert",
            s(&model),
            "-o",
            s(&out),
            "--precision",
            precision,
            "-q",
        ]);
        assert!(o.status.success(), "{precision}: {}", stderr(&o));
        // The package computes y = x: run it on the fixture's own kind of input.
        let x = dir.join("x.npy");
        let values: Vec<u8> = (0..6)
            .flat_map(|v| (v as f32 - 2.5).to_le_bytes())
            .collect();
        std::fs::write(&x, npy_bytes("<f4", "(2, 3)", &values)).unwrap();
        let results = dir.join(format!("out_{precision}"));
        let input = format!("x={}", s(&x));
        let o = mlpack(&["run", s(&out), "--input", &input, "-o", s(&results), "-q"]);
        assert!(o.status.success(), "{precision}: {}", stderr(&o));
        let y = mlpack::npy::parse(&std::fs::read(results.join("y.npy")).unwrap()).unwrap();
        let got: Vec<f32> = y.float().unwrap().iter().copied().collect();
        assert_eq!(got, vec![-2.5, -1.5, -0.5, 0.5, 1.5, 2.5], "{precision}");
    }
}

/// Case 17: an `.npz` member of another float type than its input is invalid input.
#[test]
fn npz_members_of_another_float_type_are_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let package = small_package(dir.path(), "p.mlpackage");
    let npz = dir.path().join("in.npz");
    let f64s: Vec<u8> = (0..32)
        .flat_map(|v| (v as f64 / 32.0).to_le_bytes())
        .collect();
    write_npz(&npz, &[("x.npy", npy_bytes("<f8", "(2, 16)", &f64s))]);
    fails_with(
        &[
            "verify",
            s(&small_model()),
            s(&package),
            "--inputs",
            s(&npz),
        ],
        4,
        &["in.npz", "float64", "fp32"],
    );
    let f32s: Vec<u8> = (0..32)
        .flat_map(|v| (v as f32 / 32.0).to_le_bytes())
        .collect();
    write_npz(&npz, &[("x.npy", npy_bytes("<f4", "(2, 16)", &f32s))]);
    let o = mlpack(&[
        "verify",
        s(&small_model()),
        s(&package),
        "--inputs",
        s(&npz),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Case 21: a model importing an opset newer than the newest supported converts with a
/// warning on stderr.
#[test]
fn newer_opsets_convert_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mlpackage");
    let model = fixture("bad/opset_99/model.onnx");
    let o = mlpack(&["convert", s(&model), "-o", s(&out), "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stderr(&o);
    assert!(
        text.starts_with("mlpack: warning: ") && text.contains("opset 99 is newer"),
        "{text}"
    );
    let o = mlpack(&[
        "convert",
        s(&small_model()),
        "-o",
        s(&dir.path().join("b.mlpackage")),
        "-q",
    ]);
    assert!(o.status.success() && o.stderr.is_empty(), "{}", stderr(&o));
}

/// Case 19: a temporary package left by a killed process is removed by the next write to the
/// same output; one of a running process is kept.
#[test]
fn stale_temporary_packages_of_ended_processes_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mlpackage");
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = dir.path().join(format!(".out.mlpackage.tmp-{dead}"));
    let running = dir
        .path()
        .join(format!(".out.mlpackage.tmp-{}", std::process::id()));
    for p in [&stale, &running] {
        std::fs::create_dir(p).unwrap();
        std::fs::write(p.join("weight.bin"), [0u8; 64]).unwrap();
    }
    let o = mlpack(&["convert", s(&small_model()), "-o", s(&out), "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !stale.exists(),
        "the dead process's temporary package is left"
    );
    assert!(
        running.exists(),
        "a running process's temporary package was removed"
    );
}

/// Case 19: SIGTERM during a write removes the process's own temporary package. The test
/// waits for the temporary package to appear and then signals; an attempt in which the write
/// ends first is repeated.
#[cfg(unix)]
#[test]
fn sigterm_during_a_write_leaves_no_temporary_package() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mlpackage");
    let model = common::fixtures::Fixture::load("models", "resnet18_op17").model_path();
    for _attempt in 0..20 {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mlpack"))
            .args([
                "convert",
                s(&model),
                "-o",
                s(&out),
                "--no-verify",
                "--force",
                "-q",
            ])
            .spawn()
            .unwrap();
        let temp = dir
            .path()
            .join(format!(".out.mlpackage.tmp-{}", child.id()));
        // Wait for the write to begin (or the command to end).
        let seen = loop {
            if temp.exists() {
                break true;
            }
            if child.try_wait().unwrap().is_some() {
                break false;
            }
            std::thread::yield_now();
        };
        if !seen {
            continue;
        }
        // SAFETY: signalling our own child process.
        unsafe {
            libc_kill(child.id() as i32, 15);
        }
        let status = child.wait().unwrap();
        if status.success() {
            continue; // It finished before the signal arrived.
        }
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(15), "{status:?}");
        assert!(
            !temp.exists(),
            "the temporary package is left after SIGTERM"
        );
        return;
    }
    panic!("no attempt caught the conversion while it wrote");
}

#[cfg(unix)]
extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, signal: i32) -> i32;
}

/// Inputs the fuzz run found a bug with (`fixtures/bad/fuzz/`, see docs/fuzzing.md): the
/// file, the command run on it (`IN` is the file, `OUT` an output path), the exit code (0:
/// it must succeed) and what the one-line error must mention.
const FUZZ_FOUND: &[(&str, &[&str], i32, &[&str])] = &[
    (
        // A torch.export archive whose recorded output shape contradicts its graph was an
        // internal error (exit 1).
        "pt2_recorded_shape_conflict.pt2",
        &["convert", "IN", "-o", "OUT", "--no-verify"],
        4,
        &["aten.add.Tensor", "but the archive records"],
    ),
    (
        // An initializer with raw data whose dims multiply past usize / element size (2^63
        // elements of 4 bytes) overflowed the byte count (a panic in debug builds).
        "onnx_initializer_size_overflow.onnx",
        &["convert", "IN", "-o", "OUT", "--no-verify"],
        4,
        &["tensor 'axes'", "too large"],
    ),
    (
        // The same model in `inspect`, whose summary multiplied and summed without saturating.
        "onnx_initializer_size_overflow.onnx",
        &["inspect", "IN", "--json"],
        0,
        &[],
    ),
];

#[test]
fn inputs_found_by_fuzzing_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    for (file, args, code, needles) in FUZZ_FOUND {
        let input = fixture(&format!("bad/fuzz/{file}"));
        let out = dir.path().join("out.mlpackage");
        let args: Vec<&str> = args
            .iter()
            .map(|a| match *a {
                "IN" => s(&input),
                "OUT" => s(&out),
                a => a,
            })
            .collect();
        if *code == 0 {
            let o = mlpack(&args);
            assert!(o.status.success(), "{args:?}: {}", stderr(&o));
            continue;
        }
        let line = fails_with(&args, *code, needles);
        assert!(line.contains(file), "{line}");
        assert!(!out.exists(), "{file}: output written");
    }
}
