//! Reading an ONNX file: the model is memory-mapped and decoded so that tensor payloads are
//! slices of the map, and external-data files are mapped once each and sliced on demand.

use crate::proto::onnx::{tensor_proto::DataLocation, GraphProto, ModelProto, TensorProto};
use crate::{input_file, Error};
use bytes::Bytes;
use memmap2::Mmap;
use prost::Message;
use std::collections::{BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};

/// Memory-maps `path` as shared bytes (an empty file gives empty bytes).
fn map_file(path: &Path) -> Result<Bytes, Error> {
    let file = input_file::open(path).map_err(|e| input_file::error(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: the map is read-only; like every tool that maps its input, we rely on the file
    // not being truncated by another process while it is mapped.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    Ok(Bytes::from_owner(map))
}

/// Reads and decodes the model at `path` without copying tensor payloads.
pub fn read_model(path: &Path) -> Result<ModelProto, Error> {
    map_model(path).map(|(model, _)| model)
}

/// Like [`read_model`], also returning the map of the file, which the payloads are slices of.
pub fn map_model(path: &Path) -> Result<(ModelProto, Bytes), Error> {
    let bytes = map_file(path)?;
    if bytes.is_empty() {
        return Err(Error::invalid(
            path,
            "not a valid ONNX model: the file is empty",
        ));
    }
    let model = ModelProto::decode(bytes.clone())
        .map_err(|e| Error::invalid(path, format!("not a valid ONNX model: {e}")))?;
    if model.graph.is_none() {
        return Err(Error::invalid(
            path,
            "not a valid ONNX model: it has no graph",
        ));
    }
    Ok((model, bytes))
}

/// Where an initializer's external bytes live, as its `external_data` entries say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalRef {
    /// The `location` entry: a path relative to the model's directory.
    pub location: String,
    /// Byte offset in that file (0 when absent).
    pub offset: u64,
    /// Byte length (None: up to the end of the file).
    pub length: Option<u64>,
}

/// The external-data reference of `tensor`, if its data lives outside the model file.
pub fn external_ref(tensor: &TensorProto, model_path: &Path) -> Result<Option<ExternalRef>, Error> {
    if tensor.data_location != DataLocation::External as i32 {
        return Ok(None);
    }
    let bad =
        |what: String| Error::invalid(model_path, format!("initializer '{}': {what}", tensor.name));
    let mut location = None;
    let mut offset = 0;
    let mut length = None;
    for entry in &tensor.external_data {
        let number = || {
            entry
                .value
                .parse::<u64>()
                .map_err(|_| bad(format!("bad external-data {} '{}'", entry.key, entry.value)))
        };
        match entry.key.as_str() {
            "location" => location = Some(entry.value.clone()),
            "offset" => offset = number()?,
            "length" => length = Some(number()?),
            _ => {}
        }
    }
    let location =
        location.ok_or_else(|| bad("external data without a 'location' entry".into()))?;
    Ok(Some(ExternalRef {
        location,
        offset,
        length,
    }))
}

/// The external-data locations the model at `path` names, in its initializers, attribute
/// tensors and subgraphs; empty when the model does not decode (converting it reports that).
pub fn external_locations(path: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    if let Ok(model) = read_model(path) {
        if let Some(graph) = &model.graph {
            graph_locations(graph, path, &mut found);
        }
    }
    found
}

/// Adds the external-data locations of `graph`'s tensors and subgraphs to `found`.
fn graph_locations(graph: &GraphProto, path: &Path, found: &mut BTreeSet<String>) {
    let attributes = || graph.node.iter().flat_map(|n| &n.attribute);
    let attribute_tensors = attributes().flat_map(|a| a.t.iter().chain(&a.tensors));
    for tensor in graph.initializer.iter().chain(attribute_tensors) {
        if let Ok(Some(r)) = external_ref(tensor, path) {
            found.insert(r.location);
        }
    }
    for sub in attributes().flat_map(|a| a.g.iter().chain(&a.graphs)) {
        graph_locations(sub, path, found);
    }
}

/// External-data files of one model, each mapped at most once, and the map of the model file.
pub struct ExternalData {
    model_path: PathBuf,
    base_dir: PathBuf,
    model_map: Bytes,
    files: HashMap<PathBuf, Bytes>,
}

impl ExternalData {
    /// External data for the model at `model_path` (locations resolve against its directory);
    /// `model_map` is the model file's map from [`map_model`] (empty when there is none).
    pub fn new(model_path: &Path, model_map: Bytes) -> ExternalData {
        let base_dir = model_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        ExternalData {
            model_path: model_path.to_path_buf(),
            base_dir,
            model_map,
            files: HashMap::new(),
        }
    }

    /// True when `bytes` lies inside the model file's map or an external-data file's map
    /// (which the tensors holding those bytes keep mapped).
    pub fn is_mapped(&self, bytes: &[u8]) -> bool {
        let (start, len) = (bytes.as_ptr() as usize, bytes.len());
        std::iter::once(&self.model_map)
            .chain(self.files.values())
            .any(|map| {
                let map_start = map.as_ptr() as usize;
                !map.is_empty() && start >= map_start && start + len <= map_start + map.len()
            })
    }

    /// The bytes of initializer `tensor_name` described by `r`, bounds-checked.
    pub fn slice(&mut self, tensor_name: &str, r: &ExternalRef) -> Result<Bytes, Error> {
        let bad = |what: String| {
            Error::invalid(
                &self.model_path,
                format!("initializer '{tensor_name}': {what}"),
            )
        };
        let relative = Path::new(&r.location);
        let escapes = relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
        if escapes || r.location.is_empty() {
            return Err(bad(format!(
                "external data location '{}' must be a relative path inside the model's directory",
                r.location
            )));
        }
        let path = self.base_dir.join(relative);
        if !self.files.contains_key(&path) {
            let root = match self.base_dir.as_os_str().is_empty() {
                true => Path::new("."),
                false => self.base_dir.as_path(),
            };
            input_file::check_inside(root, &path).map_err(|m| bad(format!("external data {m}")))?;
            if !path.exists() {
                return Err(bad(format!(
                    "external data file {} is missing",
                    path.display()
                )));
            }
            let bytes = map_file(&path)?;
            self.files.insert(path.clone(), bytes);
        }
        let file = &self.files[&path];
        let size = file.len() as u64;
        let end = match r.length {
            Some(len) => r.offset.checked_add(len),
            None => Some(size),
        };
        match end {
            Some(end) if r.offset <= end && end <= size => {
                Ok(file.slice(r.offset as usize..end as usize))
            }
            _ => Err(bad(format!(
                "external data range offset {} length {} lies outside {} ({size} bytes)",
                r.offset,
                r.length.map_or("(rest)".to_string(), |l| l.to_string()),
                path.display()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::onnx::GraphProto;

    #[test]
    fn decoded_raw_data_points_into_the_file_map() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.onnx");
        let tensor = TensorProto {
            name: "w".into(),
            raw_data: Bytes::from(vec![7u8; 4096]),
            ..Default::default()
        };
        let model = ModelProto {
            graph: Some(GraphProto {
                initializer: vec![tensor],
                ..Default::default()
            }),
            ..Default::default()
        };
        std::fs::write(&path, model.encode_to_vec()).unwrap();
        let map = map_file(&path).unwrap();
        let decoded = ModelProto::decode(map.clone()).unwrap();
        let raw = &decoded.graph.unwrap().initializer[0].raw_data;
        let range = map.as_ptr() as usize..map.as_ptr() as usize + map.len();
        assert!(
            range.contains(&(raw.as_ptr() as usize)),
            "raw_data was copied out of the map"
        );
        assert!(read_model(&path).is_ok());
        let (model, map) = map_model(&path).unwrap();
        let data = ExternalData::new(&path, map);
        let raw = &model.graph.unwrap().initializer[0].raw_data;
        assert!(data.is_mapped(raw));
        let heap_copy = raw.to_vec();
        assert!(!data.is_mapped(&heap_copy), "a heap copy is not mapped");
    }

    #[test]
    fn external_ranges_are_bounds_checked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("w.bin"), [1u8, 2, 3, 4]).unwrap();
        let mut data = ExternalData::new(&dir.path().join("m.onnx"), Bytes::new());
        let r = |offset, length| ExternalRef {
            location: "w.bin".into(),
            offset,
            length,
        };
        assert_eq!(&data.slice("w", &r(1, Some(2))).unwrap()[..], &[2, 3]);
        assert_eq!(&data.slice("w", &r(2, None)).unwrap()[..], &[3, 4]);
        assert!(data.slice("w", &r(3, Some(2))).is_err());
        assert!(data.slice("w", &r(u64::MAX, Some(2))).is_err());
        let abs = ExternalRef {
            location: "/etc/passwd".into(),
            offset: 0,
            length: None,
        };
        assert!(data.slice("w", &abs).is_err());
    }
}
