//! A deterministic fuzz smoke run on stable Rust (docs/fuzzing.md).
//!
//! In process: every fuzz target of `fuzz/src/lib.rs` (the same entry points the nightly
//! cargo-fuzz targets call) gets each committed seed of `fuzz/corpus/<target>/` and then a
//! fixed number of seeded mutations of them (bit flips, truncations, insertions, splices,
//! integers overwritten with edge values, protobuf varints and ASCII numbers replaced, and
//! the same inside zip members and package parts). Each must give `Ok` or a clean error:
//! never a panic, an internal error or a hang, and the whole run must stay within a memory
//! bound (mutated sizes must hit the resource limits, not allocate gigabytes).
//!
//! Through the binary: a few mutated inputs for every command must end with a documented exit
//! code (never 1, 101 or a signal), a one-line `mlpack: error:` message, no output and no
//! temporary folder left beside the output.
//!
//! The run is fixed (same seeds, same iterations), so a failure names a mutation that
//! reproduces; the failing input is also saved under `target/fuzz-smoke-failures/`.
//! `MLPACK_FUZZ_ITERS` sets the mutations per target, `MLPACK_FUZZ_SEED` the base seed.

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod harness;

use harness::{FuzzTarget, PART_SEPARATOR, TARGETS};
use std::io::{Cursor, Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Mutated inputs per target (unless `MLPACK_FUZZ_ITERS` says otherwise).
const DEFAULT_ITERATIONS: usize = 2000;

/// An input still running after this long is a hang.
const HANG_LIMIT: Duration = Duration::from_secs(60);

/// Peak resident memory of the in-process run above which it fails.
const MAX_RSS_BYTES: u64 = 2 << 30;

/// Address-space limit of each CLI run: an allocation beyond it aborts the run.
const CLI_ADDRESS_SPACE: u64 = 6 << 30;

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number")),
        Err(_) => default,
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The committed seeds of `target`, sorted by name.
fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = root().join("fuzz/corpus").join(target);
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seed-"))
        })
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "{}: no seed-* files", dir.display());
    seeds
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

/// Integer values that tend to break size arithmetic.
const EDGES: [u64; 10] = [
    0,
    1,
    0x7f,
    0xff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    1 << 40,
    i64::MAX as u64,
    u64::MAX,
];

/// Replaces the protobuf varint starting at or after `at` with an edge value (lengths,
/// dims, counts, field tags).
fn tweak_varint(bytes: &mut Vec<u8>, rng: &mut Rng) -> String {
    let at = rng.below(bytes.len());
    let mut end = at;
    while end < bytes.len() && bytes[end] & 0x80 != 0 && end - at < 10 {
        end += 1;
    }
    let end = (end + 1).min(bytes.len());
    let value = EDGES[rng.below(EDGES.len())];
    let mut varint = Vec::new();
    let mut v = value;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            varint.push(byte);
            break;
        }
        varint.push(byte | 0x80);
    }
    bytes.splice(at..end, varint);
    format!("varint {value:#x} at {at}")
}

/// Replaces an ASCII number (JSON values, `.npy` header shapes and sizes) with an edge one.
fn tweak_number(bytes: &mut Vec<u8>, rng: &mut Rng) -> Option<String> {
    let starts: Vec<usize> = (0..bytes.len())
        .filter(|&i| bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_digit()))
        .collect();
    if starts.is_empty() {
        return None;
    }
    let at = starts[rng.below(starts.len())];
    let end = (at..bytes.len())
        .find(|&i| !bytes[i].is_ascii_digit())
        .unwrap_or(bytes.len());
    const NUMBERS: [&str; 9] = [
        "0",
        "-1",
        "2147483648",
        "4294967296",
        "9223372036854775807",
        "18446744073709551616",
        "1e308",
        "65536",
        "3",
    ];
    let number = NUMBERS[rng.below(NUMBERS.len())];
    bytes.splice(at..end, number.bytes());
    Some(format!("number {number} at {at}"))
}

/// Applies one byte-level mutation to `bytes` (`other` is another seed, for splices);
/// returns its description.
fn mutate_bytes(bytes: &mut Vec<u8>, other: &[u8], rng: &mut Rng) -> String {
    if bytes.is_empty() {
        bytes.extend_from_slice(&other[..other.len().min(64)]);
        return "filled".into();
    }
    let len = bytes.len();
    match rng.below(7) {
        0 => {
            let flips = 1 + rng.below(8);
            for _ in 0..flips {
                let at = rng.below(len);
                bytes[at] ^= 1 << rng.below(8);
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
        3 => {
            let value = EDGES[rng.below(EDGES.len())];
            let width = [1, 2, 4, 8][rng.below(4)];
            let at = rng.below(len.saturating_sub(width) + 1);
            let end = (at + width).min(len);
            bytes[at..end].copy_from_slice(&value.to_le_bytes()[..end - at]);
            format!("{width}-byte {value:#x} at {at}")
        }
        4 => tweak_varint(bytes, rng),
        5 => tweak_number(bytes, rng).unwrap_or_else(|| tweak_varint(bytes, rng)),
        _ => {
            // Splice: a chunk of this input or another seed over a random place.
            let source = if rng.below(2) == 0 || other.is_empty() {
                bytes.clone()
            } else {
                other.to_vec()
            };
            let from = rng.below(source.len());
            let n = 1 + rng.below((source.len() - from).min(256));
            let at = rng.below(len);
            let end = (at + rng.below(n + 1)).min(len);
            bytes.splice(at..end, source[from..from + n].iter().copied());
            format!("{n} bytes from {from} spliced at {at}")
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
    if members.is_empty() {
        return None;
    }
    // Prefer the members that hold weights, pickles or arrays.
    let interesting: Vec<usize> = (0..members.len())
        .filter(|&i| {
            let name = &members[i].0;
            name.ends_with(".pt")
                || name.ends_with(".pkl")
                || name.ends_with(".npy")
                || name.contains("/data/")
        })
        .collect();
    let pick = if !interesting.is_empty() && rng.below(4) != 0 {
        interesting[rng.below(interesting.len())]
    } else {
        rng.below(members.len())
    };
    let other = members[rng.below(members.len())].1.clone();
    let (name, data) = &mut members[pick];
    let what = match (depth, data.starts_with(b"PK\x03\x04")) {
        (0, true) => {
            let (inner, what) = mutate_member(data, rng, 1)?;
            *data = inner;
            what
        }
        _ if name.ends_with(".npy") && rng.below(2) == 0 => match mutate_npy_header(data, rng) {
            Some((bytes, what)) => {
                *data = bytes;
                what
            }
            None => mutate_bytes(data, &other, rng),
        },
        _ if name.ends_with(".json") && rng.below(2) == 0 => match mutate_json(data, rng) {
            Some((bytes, what)) => {
                *data = bytes;
                what
            }
            None => mutate_bytes(data, &other, rng),
        },
        _ => mutate_bytes(data, &other, rng),
    };
    let what = format!("member '{name}': {what}");
    let compression = if rng.below(4) == 0 {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in &members {
        let options = zip::write::SimpleFileOptions::default().compression_method(compression);
        writer.start_file(name.as_str(), options).ok()?;
        writer.write_all(data).ok()?;
    }
    Some((writer.finish().ok()?.into_inner(), what))
}

/// A protobuf field as it is on the wire.
#[derive(Clone)]
enum Wire {
    Varint(u64),
    Fixed64([u8; 8]),
    Bytes(Vec<u8>),
    Fixed32([u8; 4]),
}

fn read_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// `bytes` as a protobuf message (field number, value), if it parses as one.
fn parse_message(bytes: &[u8]) -> Option<Vec<(u64, Wire)>> {
    let mut fields = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let key = read_varint(bytes, &mut at)?;
        let (number, wire_type) = (key >> 3, key & 7);
        if number == 0 {
            return None;
        }
        let value = match wire_type {
            0 => Wire::Varint(read_varint(bytes, &mut at)?),
            1 => {
                let v = bytes.get(at..at + 8)?.try_into().ok()?;
                at += 8;
                Wire::Fixed64(v)
            }
            2 => {
                let n = usize::try_from(read_varint(bytes, &mut at)?).ok()?;
                let v = bytes.get(at..at.checked_add(n)?)?.to_vec();
                at += n;
                Wire::Bytes(v)
            }
            5 => {
                let v = bytes.get(at..at + 4)?.try_into().ok()?;
                at += 4;
                Wire::Fixed32(v)
            }
            _ => return None,
        };
        fields.push((number, value));
    }
    Some(fields)
}

fn encode_message(fields: &[(u64, Wire)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (number, value) in fields {
        let wire_type = match value {
            Wire::Varint(_) => 0,
            Wire::Fixed64(_) => 1,
            Wire::Bytes(_) => 2,
            Wire::Fixed32(_) => 5,
        };
        write_varint(&mut out, (number << 3) | wire_type);
        match value {
            Wire::Varint(v) => write_varint(&mut out, *v),
            Wire::Fixed64(v) => out.extend_from_slice(v),
            Wire::Bytes(v) => {
                write_varint(&mut out, v.len() as u64);
                out.extend_from_slice(v);
            }
            Wire::Fixed32(v) => out.extend_from_slice(v),
        }
    }
    out
}

/// Short printable strings of a message tree (op types, names, attribute names), to swap in.
fn strings_of(fields: &[(u64, Wire)], out: &mut Vec<Vec<u8>>, depth: usize) {
    for (_, value) in fields {
        if let Wire::Bytes(b) = value {
            if !b.is_empty() && b.len() <= 64 && b.iter().all(|c| c.is_ascii_graphic()) {
                out.push(b.clone());
            } else if depth < 12 {
                if let Some(inner) = parse_message(b) {
                    strings_of(&inner, out, depth + 1);
                }
            }
        }
    }
}

/// A value-level mutation of a protobuf message that keeps it well formed: a varint (dims,
/// attribute ints, types, offsets) set to an edge or nearby value, a string swapped for
/// another of the message (op types, value names), a packed integer changed, a field
/// dropped or duplicated, or the bytes of a leaf mutated; `None` when `bytes` does not parse.
fn mutate_protobuf(bytes: &[u8], rng: &mut Rng) -> Option<(Vec<u8>, String)> {
    let mut root = parse_message(bytes)?;
    if root.is_empty() {
        return None;
    }
    let mut strings = Vec::new();
    strings_of(&root, &mut strings, 0);
    let mut path = Vec::new();
    let what = mutate_fields(&mut root, &strings, rng, &mut path, 0);
    Some((
        encode_message(&root),
        format!("protobuf {}: {what}", path.join(".")),
    ))
}

fn mutate_fields(
    fields: &mut Vec<(u64, Wire)>,
    strings: &[Vec<u8>],
    rng: &mut Rng,
    path: &mut Vec<String>,
    depth: usize,
) -> String {
    let k = rng.below(fields.len());
    path.push(fields[k].0.to_string());
    match rng.below(16) {
        0 => {
            fields.remove(k);
            return "dropped".into();
        }
        1 => {
            let copy = fields[k].clone();
            fields.insert(k, copy);
            return "duplicated".into();
        }
        _ => {}
    }
    match &mut fields[k].1 {
        Wire::Varint(v) => {
            let old = *v;
            *v = match rng.below(4) {
                0 => old.wrapping_add(1),
                1 => old.wrapping_sub(1),
                2 => old.wrapping_mul(1 + rng.below(1000) as u64),
                _ => EDGES[rng.below(EDGES.len())],
            };
            format!("varint {old} -> {v}")
        }
        Wire::Fixed32(v) => {
            let f = [
                0.0f32,
                -1.0,
                1e30,
                f32::NAN,
                f32::INFINITY,
                f32::MIN_POSITIVE,
            ];
            *v = f[rng.below(f.len())].to_le_bytes();
            "fixed32".into()
        }
        Wire::Fixed64(v) => {
            *v = EDGES[rng.below(EDGES.len())].to_le_bytes();
            "fixed64".into()
        }
        Wire::Bytes(b) => {
            if depth < 12 && rng.below(5) != 0 {
                if let Some(mut inner) = parse_message(b).filter(|f| !f.is_empty()) {
                    let what = mutate_fields(&mut inner, strings, rng, path, depth + 1);
                    *b = encode_message(&inner);
                    return what;
                }
            }
            let printable = !b.is_empty() && b.iter().all(|c| c.is_ascii_graphic());
            if printable && !strings.is_empty() && rng.below(2) == 0 {
                *b = strings[rng.below(strings.len())].clone();
                return format!("string -> {}", String::from_utf8_lossy(b));
            }
            // Packed integers (dims, ints attributes): change one.
            let mut at = 0;
            let mut packed = Vec::new();
            while at < b.len() {
                match read_varint(b, &mut at) {
                    Some(v) => packed.push(v),
                    None => break,
                }
            }
            if at == b.len() && !packed.is_empty() && rng.below(2) == 0 {
                let i = rng.below(packed.len());
                packed[i] = EDGES[rng.below(EDGES.len())];
                b.clear();
                for v in &packed {
                    write_varint(b, *v);
                }
                return format!("packed[{i}] -> {}", packed[i]);
            }
            let other = b.clone();
            mutate_bytes(b, &other, rng)
        }
    }
}

/// A value-level mutation of a JSON document: a value replaced with an edge one (numbers,
/// strings with glob patterns, empty and nested containers), a key dropped or renamed, a
/// value copied elsewhere; `None` when `bytes` is not JSON.
fn mutate_json(bytes: &[u8], rng: &mut Rng) -> Option<(Vec<u8>, String)> {
    use serde_json::{json, Value};
    let mut root: Value = serde_json::from_slice(bytes).ok()?;
    let mut nodes = 0;
    count_nodes(&root, &mut nodes);
    let target = rng.below(nodes);
    let replacements = [
        json!(0),
        json!(-1),
        json!(4294967296u64),
        json!(u64::MAX),
        json!(-9223372036854775808i64),
        json!(1e308),
        json!(0.5),
        json!(""),
        json!("*"),
        json!("**/*"),
        json!("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b"),
        json!("../../../../etc/passwd"),
        json!("/"),
        json!(null),
        json!(true),
        json!([]),
        json!({}),
        json!([[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]),
        json!({"palettize": {"nbits": 4}}),
        json!({"quantize": {"dtype": "int4", "granularity": "per-block", "block_size": 0}}),
        json!({"prune": {"n_m": "0:0"}}),
        json!({"command": "convert"}),
        json!({"command": "palettize", "nbits": 65536}),
    ];
    let choice = rng.below(replacements.len() + 2);
    let mut seen = 0;
    let what = edit_json(&mut root, target, &mut seen, &mut |value| {
        if choice == replacements.len() {
            // Rename a key of an object.
            if let Value::Object(map) = value {
                if let Some(key) = map.keys().next().cloned() {
                    let v = map.remove(&key).unwrap();
                    map.insert(format!("{key}x"), v);
                    return format!("key {key} renamed");
                }
            }
            *value = Value::Null;
            "null".into()
        } else if choice == replacements.len() + 1 {
            // Drop a key or element.
            match value {
                Value::Object(map) if !map.is_empty() => {
                    let key = map.keys().next().cloned().unwrap();
                    map.remove(&key);
                    format!("key {key} dropped")
                }
                Value::Array(list) if !list.is_empty() => {
                    list.remove(0);
                    "element dropped".into()
                }
                _ => "kept".into(),
            }
        } else {
            *value = replacements[choice].clone();
            format!("set to {value}")
        }
    });
    Some((
        serde_json::to_vec_pretty(&root).ok()?,
        format!("json: {what}"),
    ))
}

fn count_nodes(value: &serde_json::Value, n: &mut usize) {
    *n += 1;
    match value {
        serde_json::Value::Array(list) => list.iter().for_each(|v| count_nodes(v, n)),
        serde_json::Value::Object(map) => map.values().for_each(|v| count_nodes(v, n)),
        _ => {}
    }
}

fn edit_json(
    value: &mut serde_json::Value,
    target: usize,
    seen: &mut usize,
    edit: &mut dyn FnMut(&mut serde_json::Value) -> String,
) -> String {
    if *seen == target {
        *seen += 1;
        return edit(value);
    }
    *seen += 1;
    let children: Vec<&mut serde_json::Value> = match value {
        serde_json::Value::Array(list) => list.iter_mut().collect(),
        serde_json::Value::Object(map) => map.values_mut().collect(),
        _ => Vec::new(),
    };
    for child in children {
        let what = edit_json(child, target, seen, edit);
        if !what.is_empty() {
            return what;
        }
    }
    String::new()
}

/// A mutation of an `.npy` file's header: its length field (2 bytes in version 1, 4 in
/// versions 2 and 3) set to an edge or nearby value, its version changed, or a number of the
/// header text (shape, dtype size) replaced; `None` when `bytes` is not an `.npy` file.
fn mutate_npy_header(bytes: &[u8], rng: &mut Rng) -> Option<(Vec<u8>, String)> {
    if !bytes.starts_with(b"\x93NUMPY") || bytes.len() < 12 {
        return None;
    }
    let mut out = bytes.to_vec();
    let width = if out[6] == 1 { 2 } else { 4 };
    let what = match rng.below(4) {
        0 => {
            let old = u32::from_le_bytes([out[8], out[9], out[10], out[11]]) as u64
                & if width == 2 { 0xffff } else { 0xffff_ffff };
            let new = match rng.below(3) {
                0 => EDGES[rng.below(EDGES.len())],
                1 => old.wrapping_add(1 + rng.below(64) as u64),
                _ => old.wrapping_sub(1 + rng.below(64) as u64),
            };
            out[8..8 + width].copy_from_slice(&new.to_le_bytes()[..width]);
            format!("header length {old} -> {}", new & ((1 << (8 * width)) - 1))
        }
        1 => {
            out[6] = [0, 1, 2, 3, 4, 255][rng.below(6)];
            format!("version {}", out[6])
        }
        _ => {
            let header_end = (10 + width + 128).min(out.len());
            let mut header = out[..header_end].to_vec();
            let what = tweak_number(&mut header, rng)?;
            out.splice(..header_end, header);
            what
        }
    };
    Some((out, format!("npy {what}")))
}

/// One mutation of the `seed` input of `target` (`other`: another seed of it).
fn mutate(target: &str, seed: &[u8], other: &[u8], rng: &mut Rng) -> (Vec<u8>, String) {
    let structured = rng.below(3) != 0;
    if structured && matches!(target, "pt2" | "npz") {
        if let Some(mutated) = mutate_member(seed, rng, 0) {
            return mutated;
        }
    }
    if structured && target == "npy" {
        if let Some(mutated) = mutate_npy_header(seed, rng) {
            return mutated;
        }
    }
    if structured && matches!(target, "onnx") {
        if let Some(mutated) = mutate_protobuf(seed, rng) {
            return mutated;
        }
    }
    if structured && matches!(target, "plan" | "recipe") {
        if let Some(mutated) = mutate_json(seed, rng) {
            return mutated;
        }
    }
    if structured && target == "mlpackage" {
        let mut parts: Vec<Vec<u8>> = split(seed);
        let others = split(other);
        let k = rng.below(parts.len());
        let what = match k {
            0 => mutate_json(&parts[0], rng).map(|(bytes, what)| {
                parts[0] = bytes;
                what
            }),
            1 => mutate_protobuf(&parts[1], rng).map(|(bytes, what)| {
                parts[1] = bytes;
                what
            }),
            _ => None,
        };
        let what = what
            .unwrap_or_else(|| mutate_bytes(&mut parts[k], &others[k.min(others.len() - 1)], rng));
        let mut joined = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                joined.extend_from_slice(PART_SEPARATOR);
            }
            joined.extend_from_slice(part);
        }
        return (joined, format!("part {k}: {what}"));
    }
    let mut bytes = seed.to_vec();
    let rounds = 1 + rng.below(3);
    let what: Vec<String> = (0..rounds)
        .map(|_| mutate_bytes(&mut bytes, other, rng))
        .collect();
    (bytes, what.join(", "))
}

fn split(data: &[u8]) -> Vec<Vec<u8>> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(at) = rest
        .windows(PART_SEPARATOR.len())
        .position(|w| w == PART_SEPARATOR)
    {
        parts.push(rest[..at].to_vec());
        rest = &rest[at + PART_SEPARATOR.len()..];
    }
    parts.push(rest.to_vec());
    parts
}

/// Keeps a failing input for reproduction; returns where.
fn save_failure(label: &str, bytes: &[u8]) -> PathBuf {
    let dir = root().join("target/fuzz-smoke-failures");
    std::fs::create_dir_all(&dir).unwrap();
    let name: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Runs `target` on `bytes`; a failure message unless it gave `Ok` or a clean error. Counts
/// the outcomes by exit code in `codes`.
fn run_one(
    target: &FuzzTarget,
    bytes: &[u8],
    label: &str,
    codes: &mut [usize; 9],
) -> Option<String> {
    let outcome = catch_unwind(AssertUnwindSafe(|| (target.run)(bytes)));
    let problem = match outcome {
        Ok(Ok(())) => {
            codes[0] += 1;
            return None;
        }
        Ok(Err(e)) if e.exit_code() != mlpack::ExitCode::Internal => {
            if std::env::var_os("MLPACK_FUZZ_VERBOSE").is_some() {
                println!("{label}: {}", e.one_line());
            }
            codes[e.exit_code() as usize] += 1;
            return None;
        }
        Ok(Err(e)) => format!("internal error: {e}"),
        Err(panic) => format!("panicked: {}", panic_message(&*panic)),
    };
    let saved = save_failure(label, bytes);
    Some(format!("{label}: {problem} (input: {})", saved.display()))
}

/// Peak resident memory of this process.
fn peak_rss_bytes() -> u64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0);
    usage.ru_maxrss as u64 * 1024
}

/// Silences panics on the fuzzing thread (they are caught and reported); other threads keep
/// the default hook.
fn quiet_panics_on(thread_name: &'static str) {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() != Some(thread_name) {
            default(info);
        }
    }));
}

#[test]
fn mutated_inputs_give_ok_or_a_clean_error() {
    let iterations = env_number("MLPACK_FUZZ_ITERS", DEFAULT_ITERATIONS as u64) as usize;
    let base_seed = env_number("MLPACK_FUZZ_SEED", 0x6d6c_7061_636b);
    let current = Arc::new(Mutex::new((String::new(), Instant::now())));
    let progress = Arc::clone(&current);
    quiet_panics_on("fuzz-smoke");
    let worker = std::thread::Builder::new()
        .name("fuzz-smoke".into())
        .spawn(move || {
            let mut failures = Vec::new();
            let mut runs = 0;
            for (t, target) in TARGETS.iter().enumerate() {
                let seeds = seeds(target.name);
                let mut rng = Rng(base_seed ^ ((t as u64) << 32));
                let inputs = seeds
                    .iter()
                    .map(|(name, bytes)| (name.clone(), bytes.clone()));
                let mutated = (0..iterations).map(|i| {
                    let s = rng.below(seeds.len());
                    let other = &seeds[rng.below(seeds.len())].1;
                    let (bytes, what) = mutate(target.name, &seeds[s].1, other, &mut rng);
                    (format!("{} #{i} ({what})", seeds[s].0), bytes)
                });
                let mut codes = [0; 9];
                for (what, bytes) in inputs.chain(mutated.collect::<Vec<_>>()) {
                    let label = format!("{} {what}", target.name);
                    *progress.lock().unwrap() = (label.clone(), Instant::now());
                    failures.extend(run_one(target, &bytes, &label, &mut codes));
                    runs += 1;
                }
                println!("{}: outcomes by exit code {codes:?}", target.name);
                let rss = peak_rss_bytes();
                assert!(
                    rss <= MAX_RSS_BYTES,
                    "after target {}: peak RSS {} MiB",
                    target.name,
                    rss >> 20
                );
            }
            (runs, failures)
        })
        .unwrap();
    while !worker.is_finished() {
        std::thread::sleep(Duration::from_millis(50));
        let (label, since) = current.lock().unwrap().clone();
        assert!(
            since.elapsed() < HANG_LIMIT,
            "hang: {label} still running after {HANG_LIMIT:?}"
        );
    }
    let (runs, failures) = worker.join().expect("the fuzzing thread finishes");
    assert!(runs >= TARGETS.len() * iterations, "only {runs} inputs run");
    assert!(
        failures.is_empty(),
        "{} of {runs} inputs failed:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
}

/// Exit codes the README documents for a failure (1 is an internal error: a bug).
const DOCUMENTED_FAILURES: [i32; 7] = [2, 3, 4, 5, 6, 7, 8];

/// Per-run limit of a CLI run: beyond it the run is a hang.
const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// The outcome of one CLI run.
struct CliRun {
    code: Option<i32>,
    stderr: String,
}

/// Runs the binary with `args` in `dir`, under [`CLI_ADDRESS_SPACE`], killed after
/// [`CLI_TIMEOUT`].
fn run_cli(dir: &Path, args: &[String]) -> Result<CliRun, String> {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(env!("CARGO_BIN_EXE_mlpack"));
    command
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: CLI_ADDRESS_SPACE,
                rlim_max: CLI_ADDRESS_SPACE,
            };
            libc::setrlimit(libc::RLIMIT_AS, &limit);
            Ok(())
        });
    }
    let mut child = command.spawn().expect("the binary starts");
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).ok();
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > CLI_TIMEOUT {
            child.kill().ok();
            child.wait().ok();
            return Err(format!("hang: killed after {CLI_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = reader.join().unwrap();
    use std::os::unix::process::ExitStatusExt;
    if let Some(signal) = status.signal() {
        return Err(format!("killed by signal {signal}: {stderr}"));
    }
    Ok(CliRun {
        code: status.code(),
        stderr,
    })
}

/// Temporary folders (`.NAME.tmp-*`) left in `dir`.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.') && n.contains(".tmp-"))
                .collect()
        })
        .unwrap_or_default()
}

/// Checks one CLI run: a documented exit code, a one-line error on failure, no output or
/// temporary folder left behind on failure. `output` is the path the command writes (if any).
fn check_cli(dir: &Path, args: &[String], output: Option<&Path>) -> Result<i32, String> {
    let run = run_cli(dir, args)?;
    let code = run.code.unwrap_or(-1);
    if std::env::var_os("MLPACK_FUZZ_VERBOSE").is_some() {
        println!("{}: exit {code}: {}", args[0], run.stderr.trim());
    }
    let mut problems = Vec::new();
    if code != 0 && !DOCUMENTED_FAILURES.contains(&code) {
        problems.push(format!("exit code {code}"));
    }
    if code != 0 {
        let lines: Vec<&str> = run.stderr.lines().collect();
        // A batch with failed items prints one error line per item.
        let one_line = lines.len() == 1 || (code == 7 && !lines.is_empty());
        if !one_line || !lines.iter().all(|l| l.starts_with("mlpack: error: ")) {
            problems.push("stderr is not one `mlpack: error:` line".into());
        }
        if let Some(out) = output.filter(|o| o.exists() && code != 7) {
            problems.push(format!("{} written despite the failure", out.display()));
        }
    }
    let left = leftovers(dir);
    if !left.is_empty() {
        problems.push(format!("left behind: {}", left.join(", ")));
    }
    if problems.is_empty() {
        Ok(code)
    } else {
        Err(format!(
            "{} (stderr: {})",
            problems.join("; "),
            run.stderr.trim()
        ))
    }
}

/// Writes an `mlpackage` fuzz input out as a package folder `dir/name`.
fn lay_out_package(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let package = dir.join(name);
    let model_dir = package.join("Data/com.apple.CoreML");
    std::fs::create_dir_all(model_dir.join("weights")).unwrap();
    let files = [
        package.join("Manifest.json"),
        model_dir.join("model.mlmodel"),
        model_dir.join("weights/weight.bin"),
    ];
    for (file, part) in files.iter().zip(split(data)) {
        std::fs::write(file, part).unwrap();
    }
    package
}

/// Mutated inputs per command in the CLI leg (unless `MLPACK_FUZZ_CLI_ITERS` says otherwise).
const DEFAULT_CLI_ITERATIONS: usize = 5;

#[test]
fn every_command_fails_cleanly_on_mutated_inputs() {
    let iterations = env_number("MLPACK_FUZZ_CLI_ITERS", DEFAULT_CLI_ITERATIONS as u64) as usize;
    let base_seed = env_number("MLPACK_FUZZ_SEED", 0x6d6c_7061_636b);
    let mut rng = Rng(base_seed ^ 0xc11);
    let pick = |target: &str, rng: &mut Rng| -> (Vec<u8>, String) {
        let seeds = seeds(target);
        let s = rng.below(seeds.len());
        let other = seeds[rng.below(seeds.len())].1.clone();
        let (bytes, what) = mutate(target, &seeds[s].1, &other, rng);
        (bytes, format!("{target} {} ({what})", seeds[s].0))
    };
    let clean_package = root().join("fuzz/corpus/mlpackage/seed-mlp_op17");
    let clean_package = std::fs::read(clean_package).unwrap();
    let clean_onnx = root().join("fixtures/models/mlp_op17/model.onnx");
    let commands: &[&str] = &[
        "convert",
        "convert-pt2",
        "inspect",
        "inspect-onnx",
        "run",
        "run-npy",
        "verify",
        "verify-npz",
        "palettize",
        "quantize",
        "prune",
        "compress",
        "compress-recipe",
        "batch",
        "diff",
        "lint",
    ];
    let mut failures = Vec::new();
    let mut runs = 0;
    for command in commands {
        let mut codes = [0; 9];
        for i in 0..iterations {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            let s = |p: &Path| p.to_string_lossy().into_owned();
            let out = d.join("out.mlpackage");
            let package = |rng: &mut Rng| {
                let (bytes, what) = pick("mlpackage", rng);
                (lay_out_package(d, "in.mlpackage", &bytes), what)
            };
            let onnx = |rng: &mut Rng| {
                let (bytes, what) = pick("onnx", rng);
                let path = d.join("in.onnx");
                std::fs::write(&path, bytes).unwrap();
                (path, what)
            };
            let good_package = || lay_out_package(d, "good.mlpackage", &clean_package);
            let compress_flags = |name: &str| -> Vec<String> {
                match name {
                    "palettize" => vec!["--nbits".into(), "4".into()],
                    "prune" => vec!["--target-sparsity".into(), "0.5".into()],
                    _ => Vec::new(),
                }
            };
            let (args, output, what): (Vec<String>, Option<PathBuf>, String) = match *command {
                "convert" => {
                    let (input, what) = onnx(&mut rng);
                    (
                        vec![
                            "convert".into(),
                            s(&input),
                            "-o".into(),
                            s(&out),
                            "-q".into(),
                        ],
                        Some(out.clone()),
                        what,
                    )
                }
                "convert-pt2" => {
                    let (bytes, what) = pick("pt2", &mut rng);
                    let input = d.join("in.pt2");
                    std::fs::write(&input, bytes).unwrap();
                    let args = vec!["convert".into(), s(&input), "-o".into(), s(&out)];
                    (args, Some(out.clone()), what)
                }
                "inspect" => {
                    let (input, what) = package(&mut rng);
                    (vec!["inspect".into(), s(&input)], None, what)
                }
                "inspect-onnx" => {
                    let (input, what) = onnx(&mut rng);
                    (
                        vec!["inspect".into(), s(&input), "--json".into()],
                        None,
                        what,
                    )
                }
                "run" => {
                    let (input, what) = package(&mut rng);
                    let npy = root().join("fixtures/models/mlp_op17/input_0.npy");
                    let results = d.join("results");
                    let args = vec![
                        "run".into(),
                        s(&input),
                        "--input".into(),
                        format!("x={}", s(&npy)),
                        "-o".into(),
                        s(&results),
                    ];
                    (args, Some(results), what)
                }
                "run-npy" => {
                    let (bytes, what) = pick("npy", &mut rng);
                    let npy = d.join("x.npy");
                    std::fs::write(&npy, bytes).unwrap();
                    let results = d.join("results");
                    let args = vec![
                        "run".into(),
                        s(&good_package()),
                        "--input".into(),
                        format!("x={}", s(&npy)),
                        "-o".into(),
                        s(&results),
                    ];
                    (args, Some(results), what)
                }
                "verify" => {
                    let (input, what) = package(&mut rng);
                    let args = vec!["verify".into(), s(&clean_onnx), s(&input)];
                    (args, None, what)
                }
                "verify-npz" => {
                    let (bytes, what) = pick("npz", &mut rng);
                    let npz = d.join("in.npz");
                    std::fs::write(&npz, bytes).unwrap();
                    let args = vec![
                        "verify".into(),
                        s(&clean_onnx),
                        s(&good_package()),
                        "--inputs".into(),
                        s(&npz),
                    ];
                    (args, None, what)
                }
                "palettize" | "quantize" | "prune" | "compress" => {
                    let (input, what) = if i % 2 == 0 {
                        package(&mut rng)
                    } else {
                        onnx(&mut rng)
                    };
                    let recipe = root().join("fixtures/batch/recipe.json");
                    let mut args = vec![command.to_string(), s(&input), "-o".into(), s(&out)];
                    args.extend(compress_flags(command));
                    if *command == "compress" {
                        args.extend(["--recipe".into(), s(&recipe)]);
                    }
                    (args, Some(out.clone()), what)
                }
                "compress-recipe" => {
                    let (bytes, what) = pick("recipe", &mut rng);
                    let recipe = d.join("recipe.json");
                    std::fs::write(&recipe, bytes).unwrap();
                    let args = vec![
                        "compress".into(),
                        s(&good_package()),
                        "-o".into(),
                        s(&out),
                        "--recipe".into(),
                        s(&recipe),
                    ];
                    (args, Some(out.clone()), what)
                }
                "batch" => {
                    let (bytes, what) = pick("plan", &mut rng);
                    std::fs::write(d.join("plan.json"), bytes).unwrap();
                    std::fs::copy(&clean_onnx, d.join("mlp.onnx")).unwrap();
                    let pt2 = root().join("fixtures/pt2/buffer/model.pt2");
                    std::fs::copy(pt2, d.join("buffer.pt2")).unwrap();
                    std::fs::copy(
                        root().join("fixtures/batch/recipe.json"),
                        d.join("recipe.json"),
                    )
                    .unwrap();
                    let results = d.join("results");
                    let args = vec![
                        "batch".into(),
                        s(&d.join("plan.json")),
                        "--out-dir".into(),
                        s(&results),
                    ];
                    (args, Some(results), what)
                }
                "diff" => {
                    let (input, what) = package(&mut rng);
                    (
                        vec!["diff".into(), s(&good_package()), s(&input)],
                        None,
                        what,
                    )
                }
                "lint" => {
                    let (input, what) = if i % 2 == 0 {
                        package(&mut rng)
                    } else {
                        onnx(&mut rng)
                    };
                    (vec!["lint".into(), s(&input)], None, what)
                }
                other => unreachable!("{other}"),
            };
            runs += 1;
            let outcome = check_cli(d, &args, output.as_deref());
            if let Ok(code) = outcome {
                codes[code as usize] += 1;
            }
            if let Err(problem) = outcome {
                let kept = d.to_path_buf();
                let label = format!("{command} #{i} [{what}]");
                let saved = root().join("target/fuzz-smoke-failures").join(
                    label
                        .chars()
                        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                        .collect::<String>(),
                );
                std::fs::create_dir_all(saved.parent().unwrap()).unwrap();
                let _ = std::fs::remove_dir_all(&saved);
                let _ = std::fs::rename(&kept, &saved);
                failures.push(format!(
                    "{label}: mlpack {}: {problem} (inputs kept in {})",
                    args.join(" "),
                    saved.display()
                ));
            }
        }
        println!("{command}: exit codes {codes:?}");
    }
    assert!(runs >= commands.len() * iterations);
    assert!(
        failures.is_empty(),
        "{} of {runs} CLI runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
