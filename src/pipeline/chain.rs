//! A chain directory written by `split`: packages run one after the other, each reading model
//! inputs and earlier packages' outputs by name, described by `chain.json`.

use crate::backend::read_package;
use crate::interp::{self, InterpError, RunOptions, Value};
use crate::ir::{validate_program, Block, Function, Program, Target};
use crate::Error;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

/// File name of a chain's manifest.
pub const CHAIN_FILE: &str = "chain.json";
/// The manifest's `format` value.
const FORMAT: &str = "mlpack-chain";
/// The manifest version this build reads and writes.
const VERSION: u32 = 1;

/// One package of a chain.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChunkEntry {
    /// The package's directory name inside the chain directory.
    pub package: String,
    /// Input names: model inputs or outputs of earlier packages.
    pub inputs: Vec<String>,
    /// Output names.
    pub outputs: Vec<String>,
    /// Size of its weight.bin in bytes.
    pub weight_bytes: u64,
    /// Non-constant ops.
    pub ops: usize,
}

/// The contents of `chain.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChainManifest {
    /// Always `mlpack-chain`.
    pub format: String,
    /// Manifest version.
    pub version: u32,
    /// File name of the package the chain was cut from.
    pub source: String,
    /// Deployment target of every package.
    pub target: String,
    /// The weight.bin size limit the chain was cut for, in bytes.
    pub max_weight_size: u64,
    /// The model's input names.
    pub inputs: Vec<String>,
    /// The model's output names, each an output of some package (or a model input).
    pub outputs: Vec<String>,
    /// Packages in run order.
    pub chunks: Vec<ChunkEntry>,
}

impl ChainManifest {
    /// A manifest of the current version.
    pub fn new(
        source: String,
        target: Target,
        max_weight_size: u64,
        inputs: Vec<String>,
        outputs: Vec<String>,
        chunks: Vec<ChunkEntry>,
    ) -> ChainManifest {
        ChainManifest {
            format: FORMAT.into(),
            version: VERSION,
            source,
            target: target.to_string(),
            max_weight_size,
            inputs,
            outputs,
            chunks,
        }
    }

    /// Writes the manifest as pretty JSON to `path`.
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        let mut text =
            serde_json::to_string_pretty(self).map_err(|e| Error::Internal(e.to_string()))?;
        text.push('\n');
        std::fs::write(path, text).map_err(|e| Error::io(path, e))
    }
}

/// True when `path` is a chain directory (holds `chain.json`).
pub fn is_chain(path: &Path) -> bool {
    path.join(CHAIN_FILE).is_file()
}

/// A chain read from disk: its manifest and its packages' programs.
#[derive(Debug)]
pub struct Chain {
    /// The chain directory.
    pub dir: PathBuf,
    /// The manifest.
    pub manifest: ChainManifest,
    /// Each package's program, in run order.
    pub programs: Vec<Program>,
}

impl Chain {
    /// Reads the chain directory `dir`: the manifest, then every package, checking that each
    /// package's inputs and outputs are the manifest's and that every input is a model input
    /// or an earlier package's output.
    pub fn read(dir: &Path) -> Result<Chain, Error> {
        let path = dir.join(CHAIN_FILE);
        let bytes =
            crate::input_file::read(&path).map_err(|e| crate::input_file::error(&path, e))?;
        let manifest: ChainManifest = serde_json::from_slice(&bytes)
            .map_err(|e| Error::invalid(&path, format!("not a chain manifest: {e}")))?;
        let invalid = |m: String| Error::invalid(&path, m);
        if manifest.format != FORMAT || manifest.version != VERSION {
            return Err(invalid(format!(
                "format '{}' version {}; this mlpack reads '{FORMAT}' version {VERSION}",
                manifest.format, manifest.version
            )));
        }
        if manifest.chunks.is_empty() {
            return Err(invalid("the chain has no packages".into()));
        }
        let mut available: Vec<&str> = manifest.inputs.iter().map(String::as_str).collect();
        let mut programs = Vec::new();
        for entry in &manifest.chunks {
            let plain = Path::new(&entry.package).components().count() == 1
                && matches!(
                    Path::new(&entry.package).components().next(),
                    Some(Component::Normal(_))
                );
            if !plain {
                return Err(invalid(format!(
                    "package '{}' is not a name inside the chain directory",
                    entry.package
                )));
            }
            let program = read_package(&dir.join(&entry.package))?;
            let main = program.main();
            let inputs: Vec<&str> = main.inputs.iter().map(|v| v.name.as_str()).collect();
            if inputs != entry.inputs || main.block.outputs != entry.outputs {
                return Err(invalid(format!(
                    "package '{}' has inputs ({}) and outputs ({}), not the ones listed",
                    entry.package,
                    inputs.join(", "),
                    main.block.outputs.join(", ")
                )));
            }
            if let Some(missing) = inputs.iter().find(|n| !available.contains(n)) {
                return Err(invalid(format!(
                    "package '{}' reads '{missing}', which no model input or earlier package provides",
                    entry.package
                )));
            }
            available.extend(entry.outputs.iter().map(String::as_str));
            programs.push(program);
        }
        if let Some(missing) = manifest
            .outputs
            .iter()
            .find(|n| !available.contains(&n.as_str()))
        {
            return Err(invalid(format!(
                "model output '{missing}' is not an output of any package"
            )));
        }
        Ok(Chain {
            dir: dir.to_path_buf(),
            manifest,
            programs,
        })
    }

    /// The path of package `k`.
    pub fn package_path(&self, k: usize) -> PathBuf {
        self.dir.join(&self.manifest.chunks[k].package)
    }

    /// The chain as one program: the packages' ops one after the other (a constant copied
    /// into several packages kept once), the model inputs as the function inputs and the
    /// model outputs as its outputs. It computes what running the packages in turn computes.
    pub fn join(&self) -> Result<Program, Error> {
        let path = self.dir.join(CHAIN_FILE);
        let first = &self.programs[0];
        let mut inputs = Vec::new();
        let mut input_shapes = BTreeMap::new();
        for name in &self.manifest.inputs {
            let found = self.programs.iter().find_map(|p| {
                let main = p.main();
                let var = main.inputs.iter().find(|v| v.name == *name)?;
                Some((var.clone(), main.input_shapes.get(name).cloned()))
            });
            let (var, shapes) = found.ok_or_else(|| {
                Error::invalid(&path, format!("model input '{name}' is read by no package"))
            })?;
            if let Some(set) = shapes {
                input_shapes.insert(name.clone(), set);
            }
            inputs.push(var);
        }
        let mut operations = Vec::new();
        let mut defined: HashMap<String, usize> = HashMap::new();
        for (k, program) in self.programs.iter().enumerate() {
            if program.target != first.target {
                return Err(Error::invalid(
                    &path,
                    format!(
                        "package '{}' targets {}, the first {}",
                        self.manifest.chunks[k].package, program.target, first.target
                    ),
                ));
            }
            for op in &program.main().block.operations {
                let earlier = op
                    .outputs
                    .iter()
                    .find_map(|o| defined.get(&o.name).copied());
                match earlier {
                    Some(i) if operations[i] == *op => continue,
                    Some(_) => {
                        return Err(Error::invalid(
                            &path,
                            format!(
                                "package '{}' redefines '{}' differently from an earlier package",
                                self.manifest.chunks[k].package, op.outputs[0].name
                            ),
                        ))
                    }
                    None => {}
                }
                for o in &op.outputs {
                    defined.insert(o.name.clone(), operations.len());
                }
                operations.push(op.clone());
            }
        }
        let mut metadata = first.metadata.clone();
        metadata.remove(super::split::CHUNK_METADATA_KEY);
        let program = Program {
            target: first.target,
            functions: vec![Function {
                name: first.main().name.clone(),
                inputs,
                states: Vec::new(),
                input_shapes,
                block: Block {
                    operations,
                    outputs: self.manifest.outputs.clone(),
                },
            }],
            metadata,
            description: Default::default(),
        };
        validate_program(&program).map_err(|e| Error::invalid(&path, e.to_string()))?;
        Ok(program)
    }

    /// Runs the packages in turn on the model inputs `inputs`, each on the values it names,
    /// and returns the model outputs in manifest order. An interpreter failure comes with the
    /// path of the package it happened in.
    pub fn run(
        &self,
        inputs: &BTreeMap<String, Value>,
        options: RunOptions,
    ) -> Result<Vec<(String, Value)>, (PathBuf, InterpError)> {
        let mut values = inputs.clone();
        for (k, program) in self.programs.iter().enumerate() {
            let main = program.main();
            let feed: BTreeMap<String, Value> = main
                .inputs
                .iter()
                .filter_map(|v| Some((v.name.clone(), values.get(&v.name)?.clone())))
                .collect();
            let outputs =
                interp::run(main, &feed, options).map_err(|e| (self.package_path(k), e))?;
            values.extend(outputs);
        }
        self.manifest
            .outputs
            .iter()
            .map(|name| {
                let value = values.get(name).cloned().ok_or_else(|| {
                    let error = InterpError::Op {
                        op: name.clone(),
                        op_type: "output".into(),
                        message: "no package produces it".into(),
                    };
                    (self.dir.join(CHAIN_FILE), error)
                })?;
                Ok((name.clone(), value))
            })
            .collect()
    }
}
