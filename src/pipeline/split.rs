//! `split`: cut a package at op boundaries into a chain of packages whose weight files each
//! stay under a size (iOS loads at most about 1 GB of weights per model on the Neural Engine).

mod plan;

pub use plan::CHUNK_METADATA_KEY;

use super::chain::{ChainManifest, ChunkEntry, CHAIN_FILE};
use super::ModelKind;
use crate::backend::mlpackage::weight_file;
use crate::backend::{read_package, write_package};
use crate::{temp_paths, Error};
use plan::PlanError;
use std::fs;
use std::path::PathBuf;

/// What `split` cuts and where it writes the chain.
#[derive(Clone, Debug)]
pub struct SplitOptions {
    /// The `.mlpackage` to cut.
    pub package: PathBuf,
    /// The chain directory to create (must not exist).
    pub output: PathBuf,
    /// The largest weight.bin a chunk may have, in bytes.
    pub max_weight_size: u64,
}

/// The chain written, and the constants copied into several chunks.
#[derive(Clone, Debug)]
pub struct SplitReport {
    /// The manifest written as `chain.json`.
    pub manifest: ChainManifest,
    /// Constants placed in more than one chunk, with their bytes in each weight.bin.
    pub shared: Vec<(String, u64)>,
}

/// Cuts `options.package` into consecutive packages `NN_<name>.mlpackage` in the new directory
/// `options.output`, with the manifest `chain.json`. The chain is built in a hidden directory
/// beside the output and renamed into place once complete.
pub fn split(options: &SplitOptions) -> Result<SplitReport, Error> {
    let source = &options.package;
    if ModelKind::of(source)? != ModelKind::Package {
        return Err(Error::Usage(format!(
            "{}: split takes an .mlpackage (convert the model first)",
            source.display()
        )));
    }
    super::check_outputs(&[source], &[("-o", &options.output)])?;
    let program = read_package(source)?;
    let states = &program.main().states;
    if !states.is_empty() {
        let names: Vec<&str> = states.iter().map(|v| v.name.as_str()).collect();
        return Err(Error::Unsupported {
            path: source.clone(),
            message: format!(
                "a stateful package (states {}); split cuts packages without states",
                names.join(", ")
            ),
        });
    }
    if options.output.symlink_metadata().is_ok() {
        return Err(Error::Usage(format!(
            "{} exists; split writes a new directory",
            options.output.display()
        )));
    }
    let max = options.max_weight_size;
    let plan = plan::plan(&program, max).map_err(|e| match e {
        PlanError::ConstantTooLarge { .. } | PlanError::OpTooLarge { .. } => {
            Error::Usage(format!("--max-weight-size {max}: {e}"))
        }
        PlanError::Crossing { .. } => Error::Unsupported {
            path: source.clone(),
            message: e.to_string(),
        },
    })?;
    let stem = source
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let width = plan.chunks.len().to_string().len().max(2);
    temp_paths::remove_stale(&options.output)?;
    let temp = temp_paths::sibling(&options.output, "tmp")?;
    temp_paths::remove_any(&temp)?;
    // Registered before it exists, so that a signal arriving as it is made still removes it.
    temp_paths::register(&temp);
    if let Err(e) = fs::create_dir(&temp) {
        temp_paths::unregister(&temp);
        return Err(Error::io(&options.output, e));
    }
    let written = (|| {
        let mut chunks = Vec::new();
        for (k, chunk) in plan.chunks.iter().enumerate() {
            let package = format!("{:0width$}_{stem}.mlpackage", k + 1);
            let path = temp.join(&package);
            write_package(chunk, &path, false)?;
            let weights = weight_file(&path);
            let weight_bytes = match fs::metadata(&weights) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                Err(e) => return Err(Error::io(&weights, e)),
            };
            if weight_bytes > max || weight_bytes > plan.weight_bytes[k] {
                return Err(Error::Internal(format!(
                    "{package}: weight.bin has {weight_bytes} bytes, planned at most {}",
                    plan.weight_bytes[k].min(max)
                )));
            }
            let main = chunk.main();
            chunks.push(ChunkEntry {
                package,
                inputs: main.inputs.iter().map(|v| v.name.clone()).collect(),
                outputs: main.block.outputs.clone(),
                weight_bytes,
                ops: main
                    .block
                    .operations
                    .iter()
                    .filter(|op| op.op_type != "const")
                    .count(),
            });
        }
        let main = program.main();
        let manifest = ChainManifest::new(
            source
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            program.target,
            max,
            main.inputs.iter().map(|v| v.name.clone()).collect(),
            main.block.outputs.clone(),
            chunks,
        );
        manifest.write(&temp.join(CHAIN_FILE))?;
        fs::rename(&temp, &options.output).map_err(|e| Error::io(&options.output, e))?;
        Ok(manifest)
    })();
    temp_paths::unregister(&temp);
    match written {
        Ok(manifest) => Ok(SplitReport {
            manifest,
            shared: plan.shared,
        }),
        Err(e) => {
            // Best effort: the error being returned matters more than a failed cleanup.
            let _ = fs::remove_dir_all(&temp);
            Err(e)
        }
    }
}
