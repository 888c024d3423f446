//! `Manifest.json`: the package's item table. mlpack writes the two items coremltools writes
//! (the model specification and the weights directory) with identifiers derived from the
//! model's bytes, so the same program always gives a byte-identical package.

use super::{AUTHOR, MODEL_FILE, WEIGHTS_DIR};
use crate::Error;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// The only manifest format version mlpack writes and the newest it reads.
const FORMAT_VERSION: &str = "1.0.0";

/// The manifest, fields in lexicographic order (the order Core ML's writer emits).
#[derive(Serialize)]
struct Manifest<'a> {
    #[serde(rename = "fileFormatVersion")]
    file_format_version: &'a str,
    #[serde(rename = "itemInfoEntries")]
    item_info_entries: BTreeMap<String, Item>,
    #[serde(rename = "rootModelIdentifier")]
    root_model_identifier: String,
}

/// One manifest item, fields in lexicographic order.
#[derive(Serialize)]
struct Item {
    author: &'static str,
    description: &'static str,
    name: &'static str,
    path: String,
}

impl Item {
    fn new(name: &'static str, description: &'static str) -> Item {
        Item {
            author: AUTHOR,
            description,
            name,
            path: format!("{AUTHOR}/{name}"),
        }
    }
}

/// A UUID-v4-formatted identifier for item `name` of a package whose model.mlmodel holds
/// `model_bytes`: the first 16 bytes of SHA-256(name ‖ 0 ‖ model bytes) with the version and
/// variant bits set.
fn item_id(name: &str, model_bytes: &[u8]) -> String {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([0])
        .chain_update(model_bytes)
        .finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The manifest text for a package whose model.mlmodel holds `model_bytes`: sorted keys,
/// 4-space indentation, a final newline.
pub fn render(model_bytes: &[u8]) -> Result<String, Error> {
    let model_id = item_id(MODEL_FILE, model_bytes);
    let weights_id = item_id(WEIGHTS_DIR, model_bytes);
    let manifest = Manifest {
        file_format_version: FORMAT_VERSION,
        item_info_entries: BTreeMap::from([
            (
                model_id.clone(),
                Item::new(MODEL_FILE, "CoreML Model Specification"),
            ),
            (weights_id, Item::new(WEIGHTS_DIR, "CoreML Model Weights")),
        ]),
        root_model_identifier: model_id,
    };
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    let internal =
        |e: &dyn std::fmt::Display| Error::Internal(format!("serialising Manifest.json: {e}"));
    manifest
        .serialize(&mut serializer)
        .map_err(|e| internal(&e))?;
    let mut text = String::from_utf8(out).map_err(|e| internal(&e))?;
    text.push('\n');
    Ok(text)
}

/// Reads the manifest at `path` and returns the root model's path relative to `Data/`.
pub fn root_model_path(path: &Path) -> Result<PathBuf, Error> {
    let bytes = match crate::input_file::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::invalid(
                path,
                "missing (is this an .mlpackage directory?)",
            ));
        }
        Err(e) => return Err(crate::input_file::error(path, e)),
    };
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::invalid(path, "not valid JSON: the file is not UTF-8 text"))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::invalid(path, format!("not valid JSON: {e}")))?;
    let version = string(json.get("fileFormatVersion"), "fileFormatVersion", path)?;
    if !version_supported(version) {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            message: format!("manifest format version {version} is newer than {FORMAT_VERSION}"),
        });
    }
    let root = string(json.get("rootModelIdentifier"), "rootModelIdentifier", path)?;
    let item = json
        .get("itemInfoEntries")
        .and_then(|items| items.get(root))
        .ok_or_else(|| {
            Error::invalid(
                path,
                format!("rootModelIdentifier '{root}' is not in itemInfoEntries"),
            )
        })?;
    let relative = PathBuf::from(string(
        item.get("path"),
        &format!("path of item '{root}'"),
        path,
    )?);
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(Error::invalid(
            path,
            format!(
                "root model path '{}' leaves the package",
                relative.display()
            ),
        ));
    }
    Ok(relative)
}

/// The string at `v`, or an error naming `what` is missing from the manifest at `path`.
fn string<'v>(v: Option<&'v serde_json::Value>, what: &str, path: &Path) -> Result<&'v str, Error> {
    v.and_then(serde_json::Value::as_str)
        .ok_or_else(|| Error::invalid(path, format!("missing string {what}")))
}

/// True when `version` (major.minor.patch) is at most [`FORMAT_VERSION`].
fn version_supported(version: &str) -> bool {
    let parts: Option<Vec<u64>> = version.split('.').map(|p| p.parse().ok()).collect();
    matches!(parts.as_deref(), Some([major, minor, patch]) if (*major, *minor, *patch) <= (1, 0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_uuid_v4_shaped_hashes() {
        // Computed independently with Python's hashlib (sha256(name + b"\0" + b"abc")).
        assert_eq!(
            item_id("model.mlmodel", b"abc"),
            "23f5aec5-0438-481f-ab22-9b9548e36277"
        );
        assert_eq!(
            item_id("weights", b"abc"),
            "8dc91515-108c-4768-8ba8-0c15c262f62d"
        );
        assert_ne!(item_id("weights", b"abd"), item_id("weights", b"abc"));
    }

    #[test]
    fn renders_like_coremltools() {
        let expected = r#"{
    "fileFormatVersion": "1.0.0",
    "itemInfoEntries": {
        "23f5aec5-0438-481f-ab22-9b9548e36277": {
            "author": "com.apple.CoreML",
            "description": "CoreML Model Specification",
            "name": "model.mlmodel",
            "path": "com.apple.CoreML/model.mlmodel"
        },
        "8dc91515-108c-4768-8ba8-0c15c262f62d": {
            "author": "com.apple.CoreML",
            "description": "CoreML Model Weights",
            "name": "weights",
            "path": "com.apple.CoreML/weights"
        }
    },
    "rootModelIdentifier": "23f5aec5-0438-481f-ab22-9b9548e36277"
}
"#;
        assert_eq!(render(b"abc").unwrap(), expected);
    }

    #[test]
    fn reads_the_root_model_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Manifest.json");
        std::fs::write(&path, render(b"abc").unwrap()).unwrap();
        assert_eq!(
            root_model_path(&path).unwrap(),
            PathBuf::from("com.apple.CoreML/model.mlmodel")
        );

        let missing = root_model_path(&dir.path().join("nope.json")).unwrap_err();
        assert!(
            matches!(missing, Error::Invalid { .. }) && missing.to_string().contains("missing"),
            "{missing}"
        );
        std::fs::write(&path, "{ not json").unwrap();
        assert!(root_model_path(&path)
            .unwrap_err()
            .to_string()
            .contains("not valid JSON"));
        std::fs::write(
            &path,
            r#"{"fileFormatVersion":"2.0.0","itemInfoEntries":{},"rootModelIdentifier":"a"}"#,
        )
        .unwrap();
        assert!(matches!(
            root_model_path(&path),
            Err(Error::Unsupported { .. })
        ));
        let escaping = r#"{"fileFormatVersion":"1.0.0","rootModelIdentifier":"a",
            "itemInfoEntries":{"a":{"path":"../x/model.mlmodel"}}}"#;
        std::fs::write(&path, escaping).unwrap();
        assert!(root_model_path(&path)
            .unwrap_err()
            .to_string()
            .contains("leaves the package"));
        std::fs::write(
            &path,
            r#"{"fileFormatVersion":"1.0.0","itemInfoEntries":{},"rootModelIdentifier":"a"}"#,
        )
        .unwrap();
        assert!(root_model_path(&path)
            .unwrap_err()
            .to_string()
            .contains("not in itemInfoEntries"));
    }
}
