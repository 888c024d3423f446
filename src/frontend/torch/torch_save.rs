//! Tensors of a `torch.save` zip: `<root>/data.pkl` (a pickled dict of name → tensor) plus
//! one member `<root>/data/<key>` per storage, holding its raw little-endian bytes.
//!
//! The pickle is parsed, not run ([`super::pickle`]). Each storage must be a plain member name
//! whose size is exactly `numel` elements; tensors are strided views of it
//! ([`tensor_from_storage`] checks offsets, strides and shapes). Storages shared by several
//! tensors (tied weights, views) are read once; a stored member is a slice of the archive's
//! bytes, so contiguous tensors are not copied.

use super::pickle::{Object, Pickle, Value};
use super::storage::tensor_from_storage;
use super::zip_view::ZipView;
use crate::ir::Tensor;
use bytes::Bytes;
use std::collections::{HashMap, HashSet};

/// Largest `data.pkl` read (a state dict's pickle takes about 150 bytes per tensor).
const MAX_PICKLE_BYTES: usize = 1 << 28;

/// The tensors a `torch.save` zip holds, by key, in the order the dict lists them. Errors
/// are one line naming the member or key at fault.
pub fn read_tensors(zip: &ZipView) -> Result<Vec<(String, Tensor)>, String> {
    let root = zip
        .common_root()
        .map(|r| format!("{r}/"))
        .unwrap_or_default();
    let pkl_name = format!("{root}data.pkl");
    if !zip.contains(&pkl_name) {
        return Err(format!(
            "not a torch.save archive: it has no member '{pkl_name}'"
        ));
    }
    let (pkl, _) = zip.read(&pkl_name)?;
    if pkl.len() > MAX_PICKLE_BYTES {
        return Err(format!(
            "{pkl_name} is {} bytes, more than mlpack reads ({MAX_PICKLE_BYTES})",
            pkl.len()
        ));
    }
    let pickle = Pickle::parse(&pkl).map_err(|m| format!("{pkl_name}: {m}"))?;
    let Some(Object::Dict(entries)) = pickle.object(pickle.root()) else {
        return Err(format!(
            "{pkl_name} holds a {}, not a dict of tensors",
            pickle.kind(pickle.root())
        ));
    };
    let mut storages: HashMap<&str, (Bytes, bool)> = HashMap::new();
    let mut names = HashSet::new();
    let mut tensors = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let Value::Str(name) = key else {
            return Err(format!(
                "{pkl_name}: a key is a {}, not a str",
                pickle.kind(key)
            ));
        };
        if !names.insert(name.clone()) {
            return Err(format!("{pkl_name}: '{name}' appears twice"));
        }
        let Some(Object::Tensor(tensor)) = pickle.object(value) else {
            return Err(format!(
                "{pkl_name}: '{name}' is a {}, not a tensor",
                pickle.kind(value)
            ));
        };
        let storage = &tensor.storage;
        let key = storage.key.as_str();
        if !storages.contains_key(key) {
            let bytes = read_storage(zip, &root, key)?;
            storages.insert(key, bytes);
        }
        let (bytes, mapped) = &storages[key];
        let expected = u64::try_from(storage.numel)
            .ok()
            .and_then(|n| n.checked_mul(storage.dtype.size() as u64));
        if expected != Some(bytes.len() as u64) {
            return Err(format!(
                "storage '{key}' of '{name}' ({root}data/{key}) holds {} bytes, but its \
                 pickle says {} elements of {} bytes",
                bytes.len(),
                storage.numel,
                storage.dtype.size()
            ));
        }
        let tensor = tensor_from_storage(bytes, *mapped, &tensor.view)
            .map_err(|m| format!("tensor '{name}' ({root}data/{key}): {m}"))?;
        tensors.push((name.to_string(), tensor));
    }
    Ok(tensors)
}

/// The bytes of storage `key` (member `<root>/data/<key>`), after checking that the key
/// names a member of that folder and nothing else.
fn read_storage(zip: &ZipView, root: &str, key: &str) -> Result<(Bytes, bool), String> {
    let plain = !key.is_empty() && key != "." && key != ".." && !key.contains(['/', '\\', '\0']);
    if !plain {
        return Err(format!(
            "storage key '{}' is not a plain member name",
            key.escape_debug()
        ));
    }
    let member = format!("{root}data/{key}");
    if !zip.contains(&member) {
        return Err(format!(
            "storage '{key}' is missing: the archive has no member '{member}'"
        ));
    }
    zip.read(&member)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::Value as Run;
    use std::io::{Cursor, Read, Write};
    use std::path::{Path, PathBuf};

    fn case_dir(case: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/pt2_pickle")
            .join(case)
    }

    /// The case's torch.save file and its meta.json.
    fn load_case(case: &str) -> (Bytes, serde_json::Value) {
        let dir = case_dir(case);
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
        let file = dir.join(meta["file"].as_str().unwrap());
        (Bytes::from(std::fs::read(file).unwrap()), meta)
    }

    /// The zip `bytes` with its members renamed or replaced by `edit` (None drops one).
    fn rezip(bytes: &Bytes, edit: impl Fn(&str, Vec<u8>) -> Option<(String, Vec<u8>)>) -> Bytes {
        let mut reader = zip::ZipArchive::new(Cursor::new(bytes.clone())).unwrap();
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for i in 0..reader.len() {
            let mut file = reader.by_index(i).unwrap();
            let mut data = Vec::new();
            file.read_to_end(&mut data).unwrap();
            let name = file.name().unwrap().to_string();
            if let Some((name, data)) = edit(&name, data) {
                let options = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Stored);
                writer.start_file(name, options).unwrap();
                writer.write_all(&data).unwrap();
            }
        }
        Bytes::from(writer.finish().unwrap().into_inner())
    }

    fn read(bytes: Bytes) -> Result<Vec<(String, Tensor)>, String> {
        read_tensors(&ZipView::new(bytes, false)?)
    }

    #[test]
    fn torch_written_files_give_torchs_values() {
        for case in ["state_dict", "views_dtypes", "protocol4"] {
            let (bytes, meta) = load_case(case);
            let tensors = read(bytes).unwrap();
            let expected = meta["tensors"].as_array().unwrap();
            assert_eq!(tensors.len(), expected.len(), "{case}");
            for ((name, tensor), want) in tensors.iter().zip(expected) {
                assert_eq!(name, want["name"].as_str().unwrap(), "{case}");
                let npy =
                    std::fs::read(case_dir(case).join(want["file"].as_str().unwrap())).unwrap();
                let shape: Vec<usize> = serde_json::from_value(want["shape"].clone()).unwrap();
                assert_eq!(tensor.shape(), shape, "{case}/{name}");
                // Compared element by element: npy.rs reads a 0-d array as shape [1].
                let elements = |v: &Run| match v {
                    Run::Float(a) => a.iter().map(|x| format!("{x:?}")).collect::<Vec<_>>(),
                    Run::Int(a) => a.iter().map(|x| format!("int {x}")).collect(),
                    Run::Bool(a) => a.iter().map(|x| format!("bool {x}")).collect(),
                    Run::Str(_) => panic!("no strings here"),
                };
                let want = crate::npy::parse(&npy).unwrap();
                assert_eq!(
                    elements(&Run::from_tensor(tensor)),
                    elements(&want),
                    "{case}/{name}"
                );
            }
        }
    }

    #[test]
    fn shared_storages_are_views_of_the_same_bytes() {
        let (bytes, _) = load_case("views_dtypes");
        let range = bytes.as_ptr_range();
        let tensors: HashMap<String, Tensor> = read(bytes.clone()).unwrap().into_iter().collect();
        let at = |name: &str| tensors[name].bytes().as_ptr();
        assert!(
            range.contains(&at("weight")),
            "a stored fp32 weight is not copied"
        );
        assert_eq!(at("weight"), at("tied"));
        // `row` is base[3]: offset 6 elements into base's storage.
        assert_eq!(at("row"), at("base").wrapping_add(6 * 4));
        assert!(
            !range.contains(&at("weight_t")),
            "a strided view is gathered"
        );
    }

    #[test]
    fn storage_size_mismatch_is_refused() {
        let (bytes, _) = load_case("state_dict");
        let truncated = rezip(&bytes, |name, mut data| {
            if name == "model/data/0" {
                data.truncate(data.len() - 4);
            }
            Some((name.to_string(), data))
        });
        let err = read(truncated).unwrap_err();
        assert!(err.contains("storage '0' of '0.weight' (model/data/0) holds 44 bytes, but its pickle says 12 elements of 4 bytes"), "{err}");
        let missing = rezip(&bytes, |name, data| {
            (name != "model/data/1").then(|| (name.to_string(), data))
        });
        let err = read(missing).unwrap_err();
        assert!(err.contains("no member 'model/data/1'"), "{err}");
    }

    /// The state_dict case with `from` replaced by `to` (same length) in its data.pkl.
    fn patched_pickle(from: &[u8], to: &[u8]) -> Bytes {
        assert_eq!(from.len(), to.len());
        let (bytes, _) = load_case("state_dict");
        rezip(&bytes, |name, mut data| {
            if name.ends_with("data.pkl") {
                let at = data.windows(from.len()).position(|w| w == from).unwrap();
                data[at..at + to.len()].copy_from_slice(to);
            }
            Some((name.to_string(), data))
        })
    }

    #[test]
    fn storage_keys_must_be_plain_member_names() {
        // The first storage key is BINUNICODE '0'; make it '/'.
        let err = read(patched_pickle(b"X\x01\x00\x00\x000", b"X\x01\x00\x00\x00/")).unwrap_err();
        assert!(
            err.contains("storage key '/' is not a plain member name"),
            "{err}"
        );
        let err = read(patched_pickle(b"X\x01\x00\x00\x000", b"X\x01\x00\x00\x00.")).unwrap_err();
        assert!(
            err.contains("storage key '.' is not a plain member name"),
            "{err}"
        );
    }

    #[test]
    fn hostile_pickles_are_refused_naming_the_problem() {
        // The OrderedDict global becomes os.system (same length: 'collections OrderedDict').
        let err = read(patched_pickle(
            b"ccollections\nOrderedDict\n",
            b"cos\nsystem\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n",
        ))
        .unwrap_err();
        assert!(
            err.contains("model/data.pkl: pickle global 'os.system' is not allowed"),
            "{err}"
        );
        // A view past the end of its storage: '0.weight' (4×3) with size 5 instead of 4.
        let err = read(patched_pickle(b"K\x04K\x03\x86", b"K\x05K\x03\x86")).unwrap_err();
        assert!(
            err.contains("tensor '0.weight' (model/data/0): view"),
            "{err}"
        );
    }

    #[test]
    fn a_zip_without_data_pkl_is_not_a_torch_save_file() {
        let (bytes, _) = load_case("state_dict");
        let err = read(rezip(&bytes, |name, data| {
            (!name.ends_with("data.pkl")).then(|| (name.to_string(), data))
        }))
        .unwrap_err();
        assert!(err.contains("no member 'model/data.pkl'"), "{err}");
    }
}
