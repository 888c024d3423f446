//! What each fuzz target does with its input, shared by the cargo-fuzz targets
//! (`fuzz/fuzz_targets/*.rs`, nightly) and the stable smoke test (`tests/fuzz_smoke.rs`,
//! which compiles this file as a module), so both exercise the same library entry points.
//!
//! Every target writes the input bytes where the library expects a file (in a fresh
//! temporary folder), calls one public entry point and returns its result. A panic, or an
//! [`ExitCode::Internal`] error (see [`check`]), is a bug.

use mlpack::error::ExitCode;
use mlpack::ir::Target;
use mlpack::pipeline::batch::Plan;
use mlpack::pipeline::{InputShapes, Recipe};
use mlpack::Error;
use std::path::{Path, PathBuf};

/// One fuzz target: its name (also its corpus folder `fuzz/corpus/<name>`) and entry.
pub struct FuzzTarget {
    /// Name of the target and of its corpus folder.
    pub name: &'static str,
    /// Runs the input through the library.
    pub run: fn(&[u8]) -> Result<(), Error>,
}

/// Every target.
pub const TARGETS: &[FuzzTarget] = &[
    FuzzTarget {
        name: "onnx",
        run: onnx,
    },
    FuzzTarget {
        name: "mlpackage",
        run: mlpackage,
    },
    FuzzTarget {
        name: "npy",
        run: npy,
    },
    FuzzTarget {
        name: "npz",
        run: npz,
    },
    FuzzTarget {
        name: "plan",
        run: plan,
    },
    FuzzTarget {
        name: "recipe",
        run: recipe,
    },
    FuzzTarget {
        name: "pt2",
        run: pt2,
    },
];

/// Separates the three files of an `mlpackage` input: `Manifest.json`, the model
/// specification, `weight.bin` (missing parts are missing files).
pub const PART_SEPARATOR: &[u8] = b"\n--mlpack-fuzz-part--\n";

/// The target called `name`.
pub fn target(name: &str) -> &'static FuzzTarget {
    TARGETS
        .iter()
        .find(|t| t.name == name)
        .expect("a known target")
}

/// Runs `target` on `data` and panics on an internal error (a bug, like a panic).
pub fn check(target: &FuzzTarget, data: &[u8]) {
    if let Err(e) = (target.run)(data) {
        assert!(
            e.exit_code() != ExitCode::Internal,
            "{}: internal error: {e}",
            target.name
        );
    }
}

/// A fresh temporary folder holding `data` as `name`; returns the folder and the file.
fn temp_file(name: &str, data: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join(name);
    std::fs::write(&path, data).expect("the input is written");
    (dir, path)
}

/// An ONNX model: read and converted with default options (what `convert` does before its
/// passes).
pub fn onnx(data: &[u8]) -> Result<(), Error> {
    let (_dir, path) = temp_file("model.onnx", data);
    mlpack::pipeline::load_model(&path, Target::IOS18, &InputShapes::default()).map(drop)
}

/// A torch.export archive: read and converted with default options.
pub fn pt2(data: &[u8]) -> Result<(), Error> {
    let (_dir, path) = temp_file("model.pt2", data);
    mlpack::pipeline::load_model(&path, Target::IOS18, &InputShapes::default()).map(drop)
}

/// An `.mlpackage`: the input split at [`PART_SEPARATOR`] into `Manifest.json`,
/// `Data/com.apple.CoreML/model.mlmodel` and `Data/com.apple.CoreML/weights/weight.bin`,
/// read and validated.
pub fn mlpackage(data: &[u8]) -> Result<(), Error> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let package = dir.path().join("model.mlpackage");
    let model_dir = package.join("Data").join("com.apple.CoreML");
    std::fs::create_dir_all(model_dir.join("weights")).expect("package folders");
    let files = [
        package.join("Manifest.json"),
        model_dir.join("model.mlmodel"),
        model_dir.join("weights").join("weight.bin"),
    ];
    for (file, part) in files.iter().zip(split_parts(data)) {
        std::fs::write(file, part).expect("a package member is written");
    }
    mlpack::pipeline::load_model(&package, Target::IOS18, &InputShapes::default()).map(drop)
}

/// `data` split at each [`PART_SEPARATOR`].
fn split_parts(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(at) = find(rest, PART_SEPARATOR) {
        parts.push(&rest[..at]);
        rest = &rest[at + PART_SEPARATOR.len()..];
    }
    parts.push(rest);
    parts
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A NumPy `.npy` file, parsed.
pub fn npy(data: &[u8]) -> Result<(), Error> {
    mlpack::npy::parse(data)
        .map(drop)
        .map_err(|e| Error::invalid(Path::new("input.npy"), e.to_string()))
}

/// A NumPy `.npz` archive, read as `run`/`verify` input sets.
pub fn npz(data: &[u8]) -> Result<(), Error> {
    let (_dir, path) = temp_file("inputs.npz", data);
    mlpack::verify::inputs::read_npz(&path).map(drop)
}

/// A batch plan, read and its models looked up (in a folder holding the plan, `a.onnx` and
/// `b.pt2`).
pub fn plan(data: &[u8]) -> Result<(), Error> {
    let (dir, path) = temp_file("plan.json", data);
    for model in ["a.onnx", "b.pt2"] {
        std::fs::write(dir.path().join(model), b"").expect("a model file");
    }
    Plan::load(&path)?.models(&[]).map(drop)
}

/// A compression recipe, read and resolved against the small MLP fixture.
pub fn recipe(data: &[u8]) -> Result<(), Error> {
    static PROGRAM: std::sync::OnceLock<mlpack::ir::Program> = std::sync::OnceLock::new();
    let program = PROGRAM.get_or_init(|| {
        let (_dir, path) = temp_file(
            "mlp.onnx",
            include_bytes!("../../fixtures/models/mlp_op17/model.onnx"),
        );
        mlpack::pipeline::load_model(&path, Target::IOS18, &InputShapes::default())
            .expect("the MLP fixture converts")
    });
    let (_dir, path) = temp_file("recipe.json", data);
    let recipe = Recipe::load(&path)?;
    recipe
        .resolve(program)
        .map(drop)
        .map_err(|m| Error::Usage(format!("{}: {m}", path.display())))
}
