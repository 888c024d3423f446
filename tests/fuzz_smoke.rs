//! A deterministic fuzz smoke run on stable Rust: seeded mutations of committed inputs (bit
//! flips, truncations, insertions, integers overwritten with edge values, and the same
//! inside zip members, down to the `data.pkl` of a nested `torch.save` zip) must each give
//! `Ok` or a clean error, never a panic or an internal error.
//!
//! Each reader is a [`Target`]: its seed files and how to read one input. The run is fixed
//! (same seed, same iterations) so a failure names a mutation that reproduces.

use mlpack::error::ExitCode;
use mlpack::frontend::torch::archive;
use std::io::{Cursor, Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// A reader under test.
struct Target {
    /// Name, for messages.
    name: &'static str,
    /// Seed inputs, relative to the repository root.
    seeds: &'static [&'static str],
    /// Mutated inputs per seed.
    iterations: usize,
    /// Reads the input file at the path, touching everything it returns.
    read: fn(&Path) -> Result<(), mlpack::Error>,
}

const TARGETS: &[Target] = &[Target {
    name: "pt2_archive",
    seeds: &[
        "fixtures/pt2/cnn/model.pt2",
        "fixtures/pt2/cnn/model_torch27.pt2",
        "fixtures/pt2/cnn/model_torch28.pt2",
        "fixtures/pt2/buffer/model_torch27.pt2",
    ],
    iterations: 600,
    read: read_pt2,
}];

fn read_pt2(path: &Path) -> Result<(), mlpack::Error> {
    let opened = archive::open(path)?;
    for tensor in opened.tensors.values() {
        // Deferred conversions run here.
        std::hint::black_box(tensor.to_f32_vec());
    }
    Ok(())
}

/// splitmix64: a tiny deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Mutates `bytes` in place with one byte-level mutation; returns its description.
fn mutate_bytes(bytes: &mut Vec<u8>, rng: &mut Rng) -> String {
    let len = bytes.len();
    match rng.below(4) {
        0 => {
            let flips = 1 + rng.below(8);
            for _ in 0..flips {
                let at = rng.below(len);
                if let Some(b) = bytes.get_mut(at) {
                    *b ^= 1 << rng.below(8);
                }
            }
            format!("{flips} bit flips")
        }
        1 => {
            let at = rng.below(len);
            bytes.truncate(at);
            format!("truncated to {at}")
        }
        2 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(16);
            let inserted: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            bytes.splice(at..at, inserted);
            format!("{n} bytes inserted at {at}")
        }
        _ => {
            const EDGES: [u64; 6] = [0, 1, 0x7fff_ffff, 0xffff_ffff, u64::MAX, 1 << 40];
            let value = EDGES[rng.below(EDGES.len())];
            let width = [1, 2, 4, 8][rng.below(4)];
            let at = rng.below(len.saturating_sub(width) + 1);
            let end = (at + width).min(len);
            bytes[at..end].copy_from_slice(&value.to_le_bytes()[..end - at]);
            format!("{width}-byte {value:#x} at {at}")
        }
    }
}

/// The zip `bytes` with one member's contents mutated (recursing into a nested zip's
/// `data.pkl`); None when `bytes` is not a readable zip.
fn mutate_member(bytes: &[u8], rng: &mut Rng, depth: usize) -> Option<(Vec<u8>, String)> {
    let mut reader = zip::ZipArchive::new(Cursor::new(bytes)).ok()?;
    let mut members = Vec::new();
    for i in 0..reader.len() {
        let mut file = reader.by_index(i).ok()?;
        let name = file.name().ok()?.to_string();
        let mut data = Vec::new();
        file.read_to_end(&mut data).ok()?;
        members.push((name, data));
    }
    // Prefer the members that hold weights or pickles.
    let interesting: Vec<usize> = (0..members.len())
        .filter(|&i| {
            let name = &members[i].0;
            name.ends_with(".pt") || name.ends_with(".pkl") || name.contains("/data/")
        })
        .collect();
    let pick = if !interesting.is_empty() && rng.below(4) != 0 {
        interesting[rng.below(interesting.len())]
    } else {
        rng.below(members.len())
    };
    let (name, data) = &mut members[pick];
    let what = match (depth, data.starts_with(b"PK\x03\x04")) {
        (0, true) => {
            let (inner, what) = mutate_member(data, rng, 1)?;
            *data = inner;
            what
        }
        _ => mutate_bytes(data, rng),
    };
    let what = format!("member '{name}': {what}");
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in &members {
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        writer.start_file(name.as_str(), options).ok()?;
        writer.write_all(data).ok()?;
    }
    Some((writer.finish().ok()?.into_inner(), what))
}

#[test]
fn mutated_inputs_give_ok_or_a_clean_error() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut runs = 0;
    // The panics are caught and reported below; keep their messages out of the output.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for target in TARGETS {
        for (s, seed) in target.seeds.iter().enumerate() {
            let original = std::fs::read(root.join(seed)).unwrap();
            let mut rng = Rng(0x6d6c_7061_636b ^ s as u64);
            let input: PathBuf = dir.path().join(format!("{}_{s}.bin", target.name));
            for i in 0..target.iterations {
                let (bytes, what) = if rng.below(2) == 0 {
                    mutate_member(&original, &mut rng, 0)
                        .unwrap_or_else(|| (original.clone(), "unchanged".into()))
                } else {
                    let mut bytes = original.clone();
                    let what = mutate_bytes(&mut bytes, &mut rng);
                    (bytes, what)
                };
                std::fs::write(&input, &bytes).unwrap();
                let label = format!("{} {seed} #{i} ({what})", target.name);
                match catch_unwind(AssertUnwindSafe(|| (target.read)(&input))) {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) if e.exit_code() == ExitCode::Internal => {
                        failures.push(format!("{label}: internal error: {e}"))
                    }
                    Ok(Err(_)) => {}
                    Err(panic) => {
                        let message = panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        failures.push(format!("{label}: panicked: {message}"));
                    }
                }
                runs += 1;
            }
        }
    }
    std::panic::set_hook(hook);
    assert!(runs >= 2000, "only {runs} inputs run");
    assert!(
        failures.is_empty(),
        "{} of {runs} mutated inputs failed:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
}
