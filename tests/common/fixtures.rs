//! The test fixtures under `fixtures/<group>/<case>/` (written by `fixtures/make_fixtures.py`).
//!
//! A case holds `model.onnx`, `meta.json` and `.npy` inputs and ONNX Runtime outputs. Cases with
//! synthetic weights (`meta.synthetic_weights`) keep their large initializers in an external
//! `weights.bin` that is not committed; [`Fixture::model_path`] regenerates it under
//! `target/fixtures/<group>/<case>/` with the same generator as the Python script and checks
//! every tensor against the values the script recorded in `synth.json`.
//!
//! Test support code: failures are bugs in the fixtures or the test setup, so they panic with a
//! message naming the fixture.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// One tensor file of a fixture, as described in `meta.json`.
#[derive(Clone, Debug, Deserialize)]
pub struct TensorFile {
    /// The ONNX graph input or output name.
    pub name: String,
    /// The `.npy` file name inside the fixture directory.
    pub file: String,
    /// The NumPy dtype name (`float32`, `int64`, `int32`, …).
    pub dtype: String,
    /// The static shape of the data.
    pub shape: Vec<usize>,
}

/// The contents of a fixture's `meta.json`.
#[derive(Clone, Debug, Deserialize)]
pub struct Meta {
    /// How the model was produced.
    pub source: String,
    /// The default-domain ONNX opset the model imports.
    pub opset: i64,
    /// Graph inputs with their data files.
    pub inputs: Vec<TensorFile>,
    /// Graph outputs with their ONNX Runtime reference files.
    pub outputs: Vec<TensorFile>,
    /// `--input-shape` style flags (`x=1,3,8,8`) for models with dynamic dims.
    #[serde(default)]
    pub input_shape_flags: Vec<String>,
    /// The `synth.json` file name when large initializers are synthetic.
    #[serde(default)]
    pub synthetic_weights: Option<String>,
    /// For `bad/` cases: what the converter is expected to complain about.
    #[serde(default)]
    pub expected_error: Option<String>,
    /// Each graph input's declared dims: sizes, or dim_param names (models with symbolic dims).
    #[serde(default)]
    pub input_dims: BTreeMap<String, Vec<Dim>>,
    /// More input sets with their ONNX Runtime outputs (other sizes of the symbolic dims).
    #[serde(default)]
    pub extra_sets: Vec<IoSet>,
}

/// Tensor names with their `.npy` files.
pub type NamedFiles = Vec<(String, PathBuf)>;

/// One declared dim of a graph input.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Dim {
    /// A fixed size.
    Size(usize),
    /// A symbolic dim (ONNX `dim_param`).
    Param(String),
}

/// An extra set of inputs and ONNX Runtime outputs of a fixture, files under `<label>/`.
#[derive(Clone, Debug, Deserialize)]
pub struct IoSet {
    /// The set's name, also its subdirectory (e.g. `seq_5`).
    pub label: String,
    /// Graph inputs with their data files.
    pub inputs: Vec<TensorFile>,
    /// Graph outputs with their ONNX Runtime reference files.
    pub outputs: Vec<TensorFile>,
}

/// One fixture case.
#[derive(Clone, Debug)]
pub struct Fixture {
    /// The group (`models`, `ops`, `bad`, `transformers`, …).
    pub group: String,
    /// The case name inside the group.
    pub case: String,
    /// The committed case directory.
    pub dir: PathBuf,
    /// The parsed `meta.json`.
    pub meta: Meta,
}

/// The repository's `fixtures/` directory.
pub fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Where materialised fixtures go: `<target dir>/fixtures`.
pub fn materialised_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| manifest.join(dir))
        .unwrap_or_else(|| manifest.join("target"));
    target.join("fixtures")
}

impl Fixture {
    /// Every case of `group`, sorted by name.
    pub fn all(group: &str) -> Vec<Fixture> {
        let group_dir = fixtures_root().join(group);
        let entries = fs::read_dir(&group_dir)
            .unwrap_or_else(|e| panic!("cannot list fixture group {}: {e}", group_dir.display()));
        let mut cases: Vec<String> = entries
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.path().join("meta.json").is_file())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        cases.sort();
        cases
            .iter()
            .map(|case| Fixture::load(group, case))
            .collect()
    }

    /// The case `group/case`.
    pub fn load(group: &str, case: &str) -> Fixture {
        let dir = fixtures_root().join(group).join(case);
        let meta_path = dir.join("meta.json");
        let text = fs::read_to_string(&meta_path)
            .unwrap_or_else(|e| panic!("fixture {group}/{case}: cannot read meta.json: {e}"));
        let meta = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("fixture {group}/{case}: bad meta.json: {e}"));
        Fixture {
            group: group.to_string(),
            case: case.to_string(),
            dir,
            meta,
        }
    }

    /// `group/case`, for messages.
    pub fn name(&self) -> String {
        format!("{}/{}", self.group, self.case)
    }

    /// The committed `model.onnx` (its external weights may be absent; see [`Self::model_path`]).
    pub fn committed_model_path(&self) -> PathBuf {
        self.dir.join("model.onnx")
    }

    /// The path of a model ready to load: the committed one, or for synthetic-weight cases a
    /// copy under `target/fixtures/<group>/<case>/` next to a materialised `weights.bin`.
    pub fn model_path(&self) -> PathBuf {
        self.model_path_in(&materialised_root())
    }

    /// Like [`Self::model_path`], materialising synthetic cases under `root/<group>/<case>/`.
    pub fn model_path_in(&self, root: &Path) -> PathBuf {
        let Some(synth_file) = &self.meta.synthetic_weights else {
            return self.committed_model_path();
        };
        let spec = self.synth_spec(synth_file);
        let out_dir = root.join(&self.group).join(&self.case);
        fs::create_dir_all(&out_dir).unwrap_or_else(|e| {
            panic!("{}: cannot create {}: {e}", self.name(), out_dir.display())
        });
        let model_bytes = read(&self.committed_model_path());
        let model_out = out_dir.join("model.onnx");
        if fs::read(&model_out).ok().as_deref() != Some(model_bytes.as_slice()) {
            write_atomically(&model_out, &model_bytes);
        }
        let weights_out = out_dir.join(&spec.file);
        if !existing_weights_match(&weights_out, &spec) {
            let blob = generate_weights(&spec)
                .unwrap_or_else(|message| panic!("{}: {message}", self.name()));
            write_atomically(&weights_out, &blob);
        }
        model_out
    }

    /// The parsed `synth.json` of a synthetic-weight case.
    pub fn synth_spec(&self, synth_file: &str) -> SynthSpec {
        let path = self.dir.join(synth_file);
        serde_json::from_slice(&read(&path))
            .unwrap_or_else(|e| panic!("{}: bad {}: {e}", self.name(), path.display()))
    }

    /// Graph input names with their `.npy` files.
    pub fn input_files(&self) -> Vec<(String, PathBuf)> {
        self.files(&self.meta.inputs)
    }

    /// Graph output names with their ONNX Runtime reference `.npy` files.
    pub fn output_files(&self) -> Vec<(String, PathBuf)> {
        self.files(&self.meta.outputs)
    }

    /// Input and output files of one extra set: (inputs, outputs), as for the main set.
    pub fn extra_set_files(&self, set: &IoSet) -> (NamedFiles, NamedFiles) {
        (self.files(&set.inputs), self.files(&set.outputs))
    }

    fn files(&self, tensors: &[TensorFile]) -> Vec<(String, PathBuf)> {
        tensors
            .iter()
            .map(|t| (t.name.clone(), self.dir.join(&t.file)))
            .collect()
    }
}

/// The contents of a `synth.json`.
#[derive(Clone, Debug, Deserialize)]
pub struct SynthSpec {
    /// Generator identifier; only `fnv1a64-splitmix64-uniform-v1` exists.
    pub generator: String,
    /// The external data file name the model refers to.
    pub file: String,
    /// The byte size of the whole file.
    pub total_length: u64,
    /// SHA-256 of the whole file, hex.
    pub sha256: String,
    /// The synthetic tensors in file order.
    pub tensors: Vec<SynthTensor>,
}

/// One synthetic initializer.
#[derive(Clone, Debug, Deserialize)]
pub struct SynthTensor {
    /// The initializer name (also the generator's seed).
    pub name: String,
    /// Its dims.
    pub dims: Vec<u64>,
    /// Lower end of the value range (an exact float32 value).
    pub lo: f64,
    /// Upper end of the value range (an exact float32 value).
    pub hi: f64,
    /// Byte offset in the weights file.
    pub offset: u64,
    /// Byte length in the weights file.
    pub length: u64,
    /// Values recorded by the Python generator.
    pub check: SynthCheck,
}

/// Check values for one synthetic tensor, as numpy computed them.
#[derive(Clone, Debug, Deserialize)]
pub struct SynthCheck {
    /// The first (up to) four values.
    pub first: Vec<f64>,
    /// The float64 sum of all values (numpy's pairwise summation).
    pub sum: f64,
}

const GENERATOR: &str = "fnv1a64-splitmix64-uniform-v1";

/// 64-bit FNV-1a hash.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The `i`-th output (1-based) of a SplitMix64 generator whose state starts at `seed`.
pub fn splitmix64(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The `count` synthetic values of the tensor called `name`, uniform over `[lo, hi)`, computed
/// in float32 operation by operation (`lo + (hi - lo) * u`, no fused multiply-add).
pub fn synth_values(name: &str, count: usize, lo: f32, hi: f32) -> Vec<f32> {
    let seed = fnv1a64(name.as_bytes());
    let width = hi - lo;
    (1..=count as u64)
        .map(|i| {
            let u = (splitmix64(seed, i) >> 40) as f32 / 16_777_216.0_f32;
            lo + width * u
        })
        .collect()
}

/// Generate the whole weights file of `spec` and check it against the recorded values.
pub fn generate_weights(spec: &SynthSpec) -> Result<Vec<u8>, String> {
    if spec.generator != GENERATOR {
        return Err(format!(
            "unknown synthetic weight generator {:?}",
            spec.generator
        ));
    }
    let total = usize::try_from(spec.total_length).map_err(|e| e.to_string())?;
    let mut blob = vec![0u8; total];
    for tensor in &spec.tensors {
        let count: u64 = tensor.dims.iter().product();
        if tensor.length != count * 4 || tensor.offset + tensor.length > spec.total_length {
            return Err(format!(
                "tensor {}: inconsistent offset/length",
                tensor.name
            ));
        }
        let values = synth_values(
            &tensor.name,
            count as usize,
            tensor.lo as f32,
            tensor.hi as f32,
        );
        check_tensor(tensor, &values)?;
        let start = tensor.offset as usize;
        for (chunk, value) in blob[start..start + tensor.length as usize]
            .chunks_exact_mut(4)
            .zip(&values)
        {
            chunk.copy_from_slice(&value.to_le_bytes());
        }
    }
    let digest = hex(&Sha256::digest(&blob));
    if digest != spec.sha256 {
        return Err(format!(
            "generated {} has sha256 {digest}, synth.json says {}",
            spec.file, spec.sha256
        ));
    }
    Ok(blob)
}

/// Compare generated values with the check values Python recorded.
pub fn check_tensor(tensor: &SynthTensor, values: &[f32]) -> Result<(), String> {
    for (i, (&got, &want)) in values.iter().zip(&tensor.check.first).enumerate() {
        if got.to_bits() != (want as f32).to_bits() {
            return Err(format!(
                "synthetic tensor {}: value {i} is {got:e}, Python generated {want:e} \
                 (the Rust and Python generators disagree)",
                tensor.name
            ));
        }
    }
    let sum: f64 = values.iter().map(|&v| f64::from(v)).sum();
    let magnitude: f64 = values.iter().map(|&v| f64::from(v).abs()).sum();
    if (sum - tensor.check.sum).abs() > 1e-9 * magnitude.max(1.0) {
        return Err(format!(
            "synthetic tensor {}: sum is {sum}, Python computed {} \
             (the Rust and Python generators disagree)",
            tensor.name, tensor.check.sum
        ));
    }
    Ok(())
}

/// Whether `path` already holds the weights of `spec`: right length and each tensor's first
/// values in place (cheap; catches files left by an older generator).
fn existing_weights_match(path: &Path, spec: &SynthSpec) -> bool {
    let Ok(mut file) = fs::File::open(path) else {
        return false;
    };
    if file.metadata().map(|m| m.len()).ok() != Some(spec.total_length) {
        return false;
    }
    spec.tensors.iter().all(|tensor| {
        let mut head = vec![0u8; 4 * tensor.check.first.len()];
        file.seek(SeekFrom::Start(tensor.offset)).is_ok()
            && file.read_exact(&mut head).is_ok()
            && head
                .chunks_exact(4)
                .zip(&tensor.check.first)
                .all(|(b, &want)| {
                    f32::from_le_bytes([b[0], b[1], b[2], b[3]]).to_bits()
                        == (want as f32).to_bits()
                })
    })
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Write `bytes` to a unique temporary name next to `path`, then rename it into place, so
/// concurrent tests never see a partial file.
fn write_atomically(path: &Path, bytes: &[u8]) {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{file_name}.tmp.{}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    fs::write(&tmp, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", tmp.display()));
    fs::rename(&tmp, path)
        .unwrap_or_else(|e| panic!("cannot rename {} to {}: {e}", tmp.display(), path.display()));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
