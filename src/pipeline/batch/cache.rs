//! The batch cache: an item whose inputs (model and its external data, the files its variant
//! names), settings and mlpack version hash to the key recorded beside its finished output is
//! `cached` and not rebuilt. Entries live at `<cache>/<model stem>/<variant>.json`.

use super::Item;
use crate::pipeline::{write_atomically, ModelKind};
use crate::{input_file, Error};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Changes whenever the key's recipe does, so older entries stop matching.
const KEY_FORMAT: &str = "mlpack-batch-cache 1";

/// A cache folder.
#[derive(Clone, Debug)]
pub struct Cache {
    dir: PathBuf,
}

/// What the cache remembers of a finished item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// The key of the inputs and settings the output was made from.
    pub key: String,
    /// The package written.
    pub output: PathBuf,
    /// The content digest of that package when it was written.
    pub output_digest: String,
    /// The `verify` block of the command's report.
    pub verify: Option<Value>,
    /// The command's warnings.
    pub warnings: Vec<String>,
}

impl Cache {
    /// The cache in `dir`, created if missing.
    pub fn open(dir: &Path) -> Result<Cache, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        Ok(Cache {
            dir: dir.to_path_buf(),
        })
    }

    fn entry_path(&self, item: &Item) -> PathBuf {
        self.dir
            .join(&item.model.stem)
            .join(format!("{}.json", item.variant))
    }

    /// The entry of `item` if it was made with `key` and its output is still exactly what
    /// was written then.
    pub fn lookup(&self, item: &Item, key: &str) -> Option<CacheEntry> {
        let bytes = std::fs::read(self.entry_path(item)).ok()?;
        let entry: CacheEntry = serde_json::from_slice(&bytes).ok()?;
        let current = entry.key == key
            && entry.output == item.output
            && item.output.is_dir()
            && path_digest(&item.output).ok()? == entry.output_digest;
        current.then_some(entry)
    }

    /// Records `item`'s finished output as made with `key` (the file is complete or absent).
    pub fn store(
        &self,
        item: &Item,
        key: &str,
        verify: Option<Value>,
        warnings: &[String],
    ) -> Result<(), Error> {
        let entry = CacheEntry {
            key: key.to_string(),
            output: item.output.clone(),
            output_digest: path_digest(&item.output)?,
            verify,
            warnings: warnings.to_vec(),
        };
        let path = self.entry_path(item);
        let folder = path.parent().expect("an entry path has a folder");
        std::fs::create_dir_all(folder).map_err(|e| Error::io(folder, e))?;
        let text =
            serde_json::to_string_pretty(&entry).map_err(|e| Error::Internal(e.to_string()))?;
        write_atomically(&path, (text + "\n").as_bytes())
    }
}

/// The cache key of a variant's `settings` (normalized text) with `command`, applied to a
/// model with digest `model` and reading the files with digests `inputs`.
pub fn item_key(command: &str, settings: &str, model: &str, inputs: &[String]) -> String {
    let mut h = Sha256::new();
    for line in [
        KEY_FORMAT,
        env!("CARGO_PKG_VERSION"),
        command,
        settings,
        model,
    ]
    .into_iter()
    .chain(inputs.iter().map(String::as_str))
    {
        h.update((line.len() as u64).to_le_bytes());
        h.update(line.as_bytes());
    }
    hex(&h.finalize())
}

/// The content digest of a model: an `.onnx` file with the external-data files it names, a
/// `.pt2` file, or a whole `.mlpackage` folder.
pub fn model_digest(path: &Path) -> Result<String, Error> {
    if ModelKind::of(path)? != ModelKind::Onnx {
        return path_digest(path);
    }
    let mut h = Sha256::new();
    h.update(path_digest(path)?);
    let dir = path.parent().unwrap_or(Path::new("."));
    for location in crate::frontend::onnx::external_locations(path) {
        h.update(format!("\n{location}\n"));
        // A missing file is the conversion's error to report; here it is just a difference.
        h.update(path_digest(&dir.join(&location)).unwrap_or_default());
    }
    Ok(hex(&h.finalize()))
}

/// The content digest of a file, or of a folder: every entry's relative path, kind and
/// contents in sorted order.
pub fn path_digest(path: &Path) -> Result<String, Error> {
    let mut h = Sha256::new();
    let meta = path.metadata().map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        tree(&mut h, path, "")?;
    } else {
        let mut file = input_file::open(path).map_err(|e| input_file::error(path, e))?;
        std::io::copy(&mut file, &mut h).map_err(|e| Error::io(path, e))?;
    }
    Ok(hex(&h.finalize()))
}

/// Hashes the folder `dir` (named `rel` inside the root) into `h`.
fn tree(h: &mut Sha256, dir: &Path, rel: &str) -> Result<(), Error> {
    let mut entries: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|e| {
            let e = e.map_err(|err| Error::io(dir, err))?;
            Ok((e.file_name().to_string_lossy().into_owned(), e.path()))
        })
        .collect::<Result<_, Error>>()?;
    entries.sort();
    for (name, path) in entries {
        let rel = format!("{rel}/{name}");
        let meta = path.symlink_metadata().map_err(|e| Error::io(&path, e))?;
        if meta.is_dir() {
            h.update(format!("d {rel}\n"));
            tree(h, &path, &rel)?;
        } else if meta.is_symlink() {
            let target = std::fs::read_link(&path).map_err(|e| Error::io(&path, e))?;
            h.update(format!("l {rel} {}\n", target.display()));
        } else {
            h.update(format!("f {rel} {}\n", meta.len()));
            let mut file = input_file::open(&path).map_err(|e| input_file::error(&path, e))?;
            std::io::copy(&mut file, h).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_digests_follow_names_and_contents() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::create_dir_all(a.join("sub")).unwrap();
        std::fs::write(a.join("sub/x"), b"1").unwrap();
        std::fs::write(a.join("y"), b"2").unwrap();
        let before = path_digest(&a).unwrap();
        std::fs::write(a.join("y"), b"3").unwrap();
        let changed = path_digest(&a).unwrap();
        assert_ne!(before, changed);
        std::fs::rename(a.join("y"), a.join("z")).unwrap();
        assert_ne!(changed, path_digest(&a).unwrap());
        // A file's digest is the plain sha256 of its bytes (sha256("1") from coreutils).
        assert_eq!(
            path_digest(&a.join("sub/x")).unwrap(),
            "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b"
        );
    }

    #[test]
    fn onnx_digests_cover_external_data() {
        use crate::proto::onnx::tensor_proto::DataLocation;
        use crate::proto::onnx::{GraphProto, ModelProto, StringStringEntryProto, TensorProto};
        let dir = tempfile::tempdir().unwrap();
        let tensor = TensorProto {
            name: "w".into(),
            data_location: DataLocation::External as i32,
            external_data: vec![StringStringEntryProto {
                key: "location".into(),
                value: "w.bin".into(),
            }],
            ..Default::default()
        };
        let model = ModelProto {
            graph: Some(GraphProto {
                initializer: vec![tensor],
                ..Default::default()
            }),
            ..Default::default()
        };
        let path = dir.path().join("m.onnx");
        std::fs::write(&path, prost::Message::encode_to_vec(&model)).unwrap();
        std::fs::write(dir.path().join("w.bin"), b"weights").unwrap();
        std::fs::write(dir.path().join("other.bin"), b"unrelated").unwrap();
        assert_eq!(
            crate::frontend::onnx::external_locations(&path)
                .into_iter()
                .collect::<Vec<_>>(),
            ["w.bin"]
        );
        let before = model_digest(&path).unwrap();
        std::fs::write(dir.path().join("other.bin"), b"changed").unwrap();
        assert_eq!(before, model_digest(&path).unwrap());
        std::fs::write(dir.path().join("w.bin"), b"changed").unwrap();
        assert_ne!(before, model_digest(&path).unwrap());
    }
}
