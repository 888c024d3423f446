//! Opening a `.pt2` file: which container torch wrote, the exported program's JSON text and
//! its lifted tensors (parameters, buffers, constants) by name.
//!
//! The container is recognised by its members, never by the file name (docs/pt2.md):
//! - PT2 archive (torch 2.8 and later): `<root>/archive_format` holds `pt2`, the program is
//!   `<root>/models/model.json`; weights are raw storages `data/weights/weight_<i>` described
//!   by `data/weights/model_weights_config.json` (2.9 and later), or one `torch.save` pickle
//!   `data/weights/model.pt` (2.8); constants likewise under `data/constants/`.
//! - Legacy zip (torch 2.5–2.7): `serialized_exported_program.json` beside the `torch.save`
//!   zips `serialized_state_dict.pt` and `serialized_constants.pt`.
//! - A TorchScript archive (`data.pkl` + `constants.pkl`) is refused with a hint.
//!
//! The file is memory-mapped; raw weights are slices of the map, so a weight costs no memory
//! until it is read, and its pages can be released after.

use super::storage::{tensor_from_storage, TorchDType, View};
use super::torch_save;
use super::zip_view::ZipView;
use crate::ir::Tensor;
use crate::Error;
use bytes::Bytes;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Which container a `.pt2` file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    /// The flat zip torch 2.5–2.7 write.
    Legacy,
    /// A PT2 archive whose weights are one pickled state dict (torch 2.8).
    ArchivePickled,
    /// A PT2 archive with raw weight storages (torch 2.9 and later).
    ArchiveRaw,
}

impl std::fmt::Display for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Container::Legacy => "legacy torch.export zip (torch 2.5–2.7)",
            Container::ArchivePickled => "PT2 archive, pickled weights (torch 2.8)",
            Container::ArchiveRaw => "PT2 archive, raw weights (torch 2.9+)",
        })
    }
}

/// An opened `.pt2` file.
pub struct Archive {
    /// The container kind.
    pub container: Container,
    /// The ExportedProgram JSON text, as written (it may hold Python's `Infinity`/`NaN`).
    pub program: String,
    /// Lifted tensors by state-dict or constant name (`parameter_name`, `buffer_name`,
    /// `tensor_constant_name` of the program's input specs).
    pub tensors: HashMap<String, Tensor>,
}

/// Opens the `.pt2` file at `path`. A file that is not a torch.export archive, or whose
/// weights are inconsistent, is [`Error::Invalid`] naming the file and the member.
pub fn open(path: &Path) -> Result<Archive, Error> {
    let bytes = map_regular_file(path)?;
    let invalid = |m: String| Error::invalid(path, m);
    let zip = ZipView::new(bytes, true).map_err(|m| invalid(format!("not a .pt2 archive: {m}")))?;
    let root = zip
        .common_root()
        .map(|r| format!("{r}/"))
        .unwrap_or_default();
    let member = |name: &str| format!("{root}{name}");
    if zip.contains(&member("archive_format")) {
        let format = zip.read_text(&member("archive_format")).map_err(invalid)?;
        if format.trim() != "pt2" {
            return Err(invalid(format!(
                "archive_format is '{}', not 'pt2'",
                format.trim()
            )));
        }
        if let Ok(version) = zip.read_text(&member("archive_version")) {
            if version.trim() != "0" {
                return Err(invalid(format!(
                    "PT2 archive version '{}' is not supported (mlpack reads version 0)",
                    version.trim()
                )));
            }
        }
        let program = zip
            .read_text(&member("models/model.json"))
            .map_err(|m| invalid(format!("{m} (the exported program)")))?;
        let mut tensors = HashMap::new();
        let raw_config = member("data/weights/model_weights_config.json");
        let container = if zip.contains(&raw_config) {
            read_raw(&zip, &raw_config, &member("data/weights/"), &mut tensors)
                .map_err(&invalid)?;
            let constants = member("data/constants/model_constants_config.json");
            if zip.contains(&constants) {
                read_raw(&zip, &constants, &member("data/constants/"), &mut tensors)
                    .map_err(&invalid)?;
            }
            Container::ArchiveRaw
        } else {
            for name in ["data/weights/model.pt", "data/constants/model.pt"] {
                if zip.contains(&member(name)) {
                    read_pickled(&zip, &member(name), &mut tensors).map_err(&invalid)?;
                }
            }
            Container::ArchivePickled
        };
        return Ok(Archive {
            container,
            program,
            tensors,
        });
    }
    if zip.contains(&member("serialized_exported_program.json")) {
        let program = zip
            .read_text(&member("serialized_exported_program.json"))
            .map_err(&invalid)?;
        let mut tensors = HashMap::new();
        for name in ["serialized_state_dict.pt", "serialized_constants.pt"] {
            if zip.contains(&member(name)) {
                read_pickled(&zip, &member(name), &mut tensors).map_err(&invalid)?;
            }
        }
        return Ok(Archive {
            container: Container::Legacy,
            program,
            tensors,
        });
    }
    if zip.contains(&member("data.pkl")) && zip.contains(&member("constants.pkl")) {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            message: "this is a TorchScript archive (torch.jit.save), not a torch.export \
                      program; export the model with torch.export.export and torch.export.save"
                .into(),
        });
    }
    Err(invalid(
        "not a torch.export archive: it has neither models/model.json (PT2 archive) nor \
         serialized_exported_program.json (torch 2.5–2.7)"
            .into(),
    ))
}

/// Maps `path` after checking that it is a regular file (a FIFO or device would block or
/// never end).
fn map_regular_file(path: &Path) -> Result<Bytes, Error> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::invalid(path, "not a regular file"));
    }
    if meta.len() == 0 {
        return Err(Error::invalid(
            path,
            "not a .pt2 archive: the file is empty",
        ));
    }
    // SAFETY: the map is read-only; like every tool that maps its input, we rely on the file
    // not being truncated by another process while it is mapped.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    Ok(Bytes::from_owner(map))
}

/// `data/weights/model_weights_config.json` (and the constants' twin): where each lifted
/// tensor's storage is and how the tensor views it.
#[derive(Deserialize)]
struct PayloadConfig {
    config: BTreeMap<String, PayloadMeta>,
}

#[derive(Deserialize)]
struct PayloadMeta {
    path_name: String,
    #[serde(default)]
    use_pickle: bool,
    tensor_meta: Option<TensorMeta>,
}

/// The parts of the schema's `TensorMeta` that place a tensor in its storage.
#[derive(Deserialize)]
struct TensorMeta {
    dtype: i64,
    sizes: Vec<SymInt>,
    strides: Vec<SymInt>,
    storage_offset: SymInt,
}

/// A schema `SymInt`; a stored weight's sizes are always concrete.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum SymInt {
    AsInt(i64),
    AsExpr(serde::de::IgnoredAny),
}

impl SymInt {
    fn concrete(&self, fqn: &str) -> Result<i64, String> {
        match self {
            SymInt::AsInt(v) => Ok(*v),
            SymInt::AsExpr(_) => Err(format!("weight '{fqn}' has a symbolic size")),
        }
    }
}

/// Reads the raw storages listed in the config member `config` (members under `folder`).
fn read_raw(
    zip: &ZipView,
    config: &str,
    folder: &str,
    tensors: &mut HashMap<String, Tensor>,
) -> Result<(), String> {
    let text = zip.read_text(config)?;
    let parsed: PayloadConfig =
        serde_json::from_str(&text).map_err(|e| format!("{config}: {e}"))?;
    for (fqn, payload) in parsed.config {
        if payload.use_pickle {
            return Err(format!(
                "weight '{fqn}' is a pickled tensor subclass, which mlpack does not read"
            ));
        }
        let meta = payload
            .tensor_meta
            .ok_or_else(|| format!("{config}: weight '{fqn}' has no tensor_meta"))?;
        let dtype = TorchDType::from_schema(meta.dtype)
            .ok_or_else(|| format!("weight '{fqn}' has unsupported dtype code {}", meta.dtype))?;
        let ints = |v: &[SymInt]| {
            v.iter()
                .map(|s| s.concrete(&fqn))
                .collect::<Result<Vec<_>, _>>()
        };
        let view = View {
            dtype,
            sizes: ints(&meta.sizes)?,
            strides: ints(&meta.strides)?,
            offset: meta.storage_offset.concrete(&fqn)?,
        };
        if payload.path_name.contains('/') || payload.path_name.contains("..") {
            return Err(format!(
                "weight '{fqn}' names storage '{}'",
                payload.path_name
            ));
        }
        let member = format!("{folder}{}", payload.path_name);
        let (storage, mapped) = zip.read(&member)?;
        let tensor = tensor_from_storage(&storage, mapped, &view)
            .map_err(|m| format!("weight '{fqn}' ({member}): {m}"))?;
        tensors.insert(fqn, tensor);
    }
    Ok(())
}

/// Reads the `torch.save` zip stored as member `name` (a state dict or constants dict).
fn read_pickled(
    zip: &ZipView,
    name: &str,
    tensors: &mut HashMap<String, Tensor>,
) -> Result<(), String> {
    let (bytes, mapped) = zip.read(name)?;
    if bytes.is_empty() {
        // torch writes an empty member for an absent artifact and reads it back as `{}`
        // (`serialize_torch_artifact` / `deserialize_torch_artifact`, torch/_export/serde).
        return Ok(());
    }
    let inner = ZipView::new(bytes, mapped).map_err(|m| format!("{name}: {m}"))?;
    for (fqn, tensor) in torch_save::read_tensors(&inner).map_err(|m| format!("{name}: {m}"))? {
        tensors.insert(fqn, tensor);
    }
    Ok(())
}
