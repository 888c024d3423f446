//! `palettize`, `quantize`, `prune` and `compress`: load a model (converting ONNX first),
//! replace its weights by compressed constexpr ops as a recipe says, verify, write.

use super::convert::{
    check_output, load_model, prepare, source_warnings, verify_candidate, ConvertVerify,
    InputShapes,
};
use super::precision::{MixedPrecision, Precision, PrecisionReport};
use super::recipe::Recipe;
use super::ModelKind;
use crate::backend::write_package;
use crate::ir::Target;
use crate::passes::compress::{compress_weights, CompressReport};
use crate::verify::VerifyReport;
use crate::Error;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Everything a compression command needs.
#[derive(Clone, Debug)]
pub struct CompressOptions {
    /// Source: `.onnx` (converted first) or `.mlpackage`.
    pub input: PathBuf,
    /// Destination `.mlpackage`.
    pub output: PathBuf,
    /// Deployment target (default: the package's own, or iOS17 for ONNX).
    pub target: Option<Target>,
    /// Compute precision when converting ONNX.
    pub precision: Precision,
    /// Ops kept in fp32 when converting ONNX, and the `auto` search's inputs.
    pub mixed: MixedPrecision,
    /// Shapes for ONNX inputs with dynamic dimensions.
    pub input_shapes: InputShapes,
    /// What to do to which weight.
    pub recipe: Recipe,
    /// Where the recipe came from, for error messages (`None`: command-line flags).
    pub recipe_path: Option<PathBuf>,
    /// Fail instead of skipping weights that cannot be compressed.
    pub strict: bool,
    /// Replace an existing output.
    pub force: bool,
    /// Verify against the uncompressed model before writing (`None`: skip).
    pub verify: Option<ConvertVerify>,
}

/// What a compression command did.
#[derive(Clone, Debug, Serialize)]
pub struct CompressCommandReport {
    /// Source model.
    pub input: PathBuf,
    /// Written package.
    pub output: PathBuf,
    /// Deployment target.
    pub target: String,
    /// Per-weight outcome and totals.
    pub compression: CompressReport,
    /// Precision outcome when converting ONNX (ops kept in fp32 and why).
    pub precision: Option<PrecisionReport>,
    /// Model-level comparison with the uncompressed model, unless skipped.
    pub verify: Option<VerifyReport>,
    /// What the command went on despite (see [`super::convert::source_warnings`]).
    pub warnings: Vec<String>,
}

/// Runs the compression and writes the package; `progress(done, total)` follows the weights.
pub fn compress(
    options: &CompressOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<CompressCommandReport, Error> {
    let read: Vec<&Path> = std::iter::once(options.input.as_path())
        .chain(options.recipe_path.as_deref())
        .chain(options.mixed.calibration.dir())
        .collect();
    check_output(&read, &options.output, options.force)?;
    let kind = ModelKind::of(&options.input)?;
    let mut program = match (kind, options.target) {
        (ModelKind::Package, None) if options.input_shapes.is_empty() => {
            super::read_single_function_package(&options.input)?
        }
        (_, target) => load_model(
            &options.input,
            target.unwrap_or(Target::IOS17),
            &options.input_shapes,
        )?,
    };
    let target = program.target;
    let warnings = source_warnings(&program, &options.input);
    let source = options.verify.as_ref().map(|_| program.clone());
    let mut mixed = options.mixed.clone();
    if let Some(rules) = &options.recipe.fp32 {
        mixed.rules.extend(rules);
    }
    let precision = match kind {
        ModelKind::Onnx | ModelKind::Pt2 => {
            Some(prepare(&mut program, options.precision, &mixed, &options.input)?.precision)
        }
        ModelKind::Package if !mixed.rules.is_empty() || options.precision == Precision::Auto => {
            return Err(Error::Usage(
                "fp32 rules and --precision auto apply when converting ONNX or .pt2, not to a package"
                    .into(),
            ));
        }
        ModelKind::Package => {
            crate::passes::cleanup(&mut program).map_err(|m| Error::invalid(&options.input, m))?;
            None
        }
    };
    let origin = match &options.recipe_path {
        Some(p) => p.display().to_string(),
        None => "compression flags".to_string(),
    };
    let chosen = options.recipe.resolve(&program).map_err(|e| {
        let hint = if e.contains("needs target iOS18") {
            " (pass --target iOS18)"
        } else {
            ""
        };
        Error::Usage(format!("{origin}: {e}{hint}"))
    })?;
    let report = compress_weights(
        &mut program,
        options.recipe.weight_threshold,
        |site| chosen.get(&site.name).cloned(),
        progress,
    )
    .map_err(|e| Error::invalid(&options.input, e))?;
    if options.strict && report.skipped > 0 {
        let skipped: Vec<String> = report
            .weights
            .iter()
            .filter_map(|w| w.skipped.as_ref().map(|why| format!("'{}': {why}", w.name)))
            .collect();
        return Err(Error::invalid(
            &options.input,
            format!("--strict: weights not compressed: {}", skipped.join("; ")),
        ));
    }
    let verified = match (&options.verify, &source) {
        (Some(settings), Some(source)) => Some(verify_candidate(
            source,
            &program,
            settings,
            &options.input,
        )?),
        _ => None,
    };
    write_package(&program, &options.output, options.force)?;
    Ok(CompressCommandReport {
        input: options.input.clone(),
        output: options.output.clone(),
        target: target.to_string(),
        compression: report,
        precision,
        verify: verified,
        warnings,
    })
}
