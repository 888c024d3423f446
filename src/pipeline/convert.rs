//! `convert`: load a model, clean it up, set its precision, write a package.

use super::describe::DescribeOptions;
use super::precision::{apply_precision, MixedPrecision, Precision, PrecisionReport};
use super::ModelKind;
use crate::backend::write_package;
use crate::frontend::onnx::{self, FrozenInput, InputShape, NamedDim, OnnxOptions};
use crate::frontend::torch::{self, TorchOptions};
use crate::ir::{validate_program, Program, Target};
use crate::passes::states::{self, StatePair};
use crate::passes::{self, FusionReport};
use crate::verify::{
    self, InputRange, InputSpec, ThresholdOverrides, Thresholds, Verdict, VerifyOptions,
    VerifyReport,
};
use crate::Error;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Everything `convert` needs.
#[derive(Clone, Debug)]
pub struct ConvertOptions {
    /// Source model (`.onnx` or `.mlpackage`).
    pub input: PathBuf,
    /// Destination `.mlpackage`.
    pub output: PathBuf,
    /// Compute precision.
    pub precision: Precision,
    /// Ops kept in fp32 by rule, and the inputs of the `auto` search.
    pub mixed: MixedPrecision,
    /// Deployment target.
    pub target: Target,
    /// Shapes for ONNX inputs with dynamic dimensions.
    pub input_shapes: InputShapes,
    /// Replace an existing output.
    pub force: bool,
    /// Verify the converted program against the source before writing (`None`: skip).
    pub verify: Option<ConvertVerify>,
    /// Graph inputs updated in place, made states (`--state`); empty: detected by name from
    /// iOS18 on (see [`states::detect_pairs`]).
    pub states: Vec<StatePair>,
    /// Image inputs, class labels and metadata of the model description.
    pub describe: DescribeOptions,
}

impl ConvertOptions {
    /// The files and folders the conversion reads: the model, a calibration folder and a class
    /// labels file.
    pub fn read_paths(&self) -> Vec<&Path> {
        std::iter::once(self.input.as_path())
            .chain(self.mixed.calibration.dir())
            .chain(self.describe.read_paths())
            .collect()
    }
}

/// How the source model's inputs are pinned: shapes for inputs with dynamic dimensions
/// (fixed, ranged or enumerated, per input with `--input-shape` or per named dimension with
/// `--dim`), and ONNX inputs bound to constants (`--freeze`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InputShapes {
    /// Whole shapes by input name.
    pub inputs: Vec<InputShape>,
    /// Sizes by ONNX `dim_param`.
    pub dims: Vec<NamedDim>,
    /// ONNX graph inputs bound to constants, no inputs of the package.
    pub frozen: Vec<FrozenInput>,
}

impl InputShapes {
    /// True when no shape and no frozen input is given.
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty() && self.dims.is_empty() && self.frozen.is_empty()
    }
}

/// How `convert` verifies its result: seeded random inputs (seed 0), default thresholds for
/// the output precision.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvertVerify {
    /// Random input sets.
    pub samples: usize,
    /// Value ranges by input name.
    pub ranges: Vec<InputRange>,
    /// Write the package (and report the failure) even when verification fails.
    pub allow_degraded: bool,
    /// Thresholds replacing the defaults of the candidate's precision.
    pub thresholds: ThresholdOverrides,
    /// For lossy commands: the floor below which verification fails; between it and the
    /// thresholds the result is `degraded` and still written.
    pub floor: Option<Thresholds>,
}

impl Default for ConvertVerify {
    fn default() -> ConvertVerify {
        ConvertVerify {
            samples: 3,
            ranges: Vec::new(),
            allow_degraded: false,
            thresholds: ThresholdOverrides::default(),
            floor: None,
        }
    }
}

/// What `convert` did.
#[derive(Clone, Debug, Serialize)]
pub struct ConvertReport {
    /// Source model.
    pub input: PathBuf,
    /// Written package.
    pub output: PathBuf,
    /// Deployment target.
    pub target: String,
    /// Compute precision.
    pub precision: Precision,
    /// Op count by type in the written program (constants included).
    pub ops: BTreeMap<String, usize>,
    /// Precision outcome: the fp16 pass (ops kept in fp32 with the reason, casts) and the
    /// automatic search.
    #[serde(flatten)]
    pub mixed: PrecisionReport,
    /// Patterns fused into single ops, by kind.
    pub fusion: FusionReport,
    /// Flexible sizes narrowed to what the model computes (e.g. positions up to the size of
    /// its position table), one note each.
    pub limits: Vec<String>,
    /// Graph inputs made states, as `input=output` pairs.
    pub states: Vec<String>,
    /// True when the states were found by name rather than given with `--state`.
    pub states_detected: bool,
    /// Verification against the source, unless skipped.
    pub verify: Option<VerifyReport>,
    /// What the conversion went on despite (an ONNX opset newer than the newest supported).
    pub warnings: Vec<String>,
}

/// Warnings about the source at `path` of `program` that the conversion went on despite: an
/// ONNX opset newer than the newest supported, and what the ONNX frontend noted (e.g.
/// quantized weights kept as floats).
pub fn source_warnings(program: &Program, path: &Path) -> Vec<String> {
    if !matches!(ModelKind::of(path), Ok(ModelKind::Onnx)) {
        return Vec::new();
    }
    let opset = program
        .metadata
        .get(onnx::OPSET_METADATA_KEY)
        .and_then(|v| v.parse().ok())
        .and_then(|opset| onnx::opset_warning(opset, path));
    let noted = program
        .metadata
        .get(onnx::WARNINGS_METADATA_KEY)
        .into_iter()
        .flat_map(|notes| notes.split("; "))
        .map(|note| format!("{}: {note}", path.display()));
    opset.into_iter().chain(noted).collect()
}

/// Checks the output path before any work: it must end in `.mlpackage`, not exist unless
/// `force`, and be neither one of `inputs`, inside one nor above one (see
/// [`super::check_outputs`]).
pub fn check_output(inputs: &[&Path], output: &Path, force: bool) -> Result<(), Error> {
    if ModelKind::of(output)? != ModelKind::Package {
        return Err(Error::Usage(format!(
            "{}: the output must be a .mlpackage path",
            output.display()
        )));
    }
    super::check_outputs(inputs, &[("-o", output)])?;
    if output.exists() && !force {
        return Err(Error::Usage(format!(
            "{}: already exists; pass --force to replace it",
            output.display()
        )));
    }
    Ok(())
}

/// Loads a model of either kind as an fp32 (or, for packages, as-written) program for `target`.
pub fn load_model(
    path: &Path,
    target: Target,
    input_shapes: &InputShapes,
) -> Result<Program, Error> {
    match ModelKind::of(path)? {
        ModelKind::Onnx => onnx::load(
            path,
            &OnnxOptions {
                input_shapes: input_shapes.inputs.clone(),
                dims: input_shapes.dims.clone(),
                frozen: input_shapes.frozen.clone(),
                target,
            },
        ),
        ModelKind::Pt2 if !input_shapes.frozen.is_empty() => Err(Error::Usage(format!(
            "--freeze {}: binding inputs to constants applies to ONNX models only ({} is a .pt2 archive)",
            input_shapes.frozen[0].name,
            path.display()
        ))),
        ModelKind::Pt2 => torch::load(
            path,
            &TorchOptions {
                input_shapes: input_shapes.inputs.clone(),
                dims: input_shapes.dims.clone(),
                target,
            },
        ),
        ModelKind::Package => {
            if !input_shapes.is_empty() {
                return Err(Error::Usage(
                    "--input-shape, --dim and --freeze apply to ONNX and .pt2 inputs only".into(),
                ));
            }
            let mut program = super::read_single_function_package(path)?;
            program.target = target;
            validate_program(&program).map_err(|e| Error::Unsupported {
                path: path.to_path_buf(),
                message: format!("cannot re-target to {target}: {e}"),
            })?;
            Ok(program)
        }
    }
}

/// Runs the whole conversion and writes the package.
pub fn convert(options: &ConvertOptions) -> Result<ConvertReport, Error> {
    check_output(&options.read_paths(), &options.output, options.force)?;
    let built = build(options, &options.input_shapes)?;
    write_package(&built.program, &options.output, options.force)?;
    Ok(built.report(options))
}

/// A converted, verified program not yet written, with what converting it did.
pub(super) struct Built {
    /// The program.
    pub program: Program,
    /// Fusion and precision outcome.
    prepared: Prepared,
    /// The graph inputs made states.
    states: Vec<StatePair>,
    /// Verification against the source, unless skipped.
    verified: Option<VerifyReport>,
}

impl Built {
    /// The report of converting `options.input` into this program.
    pub fn report(&self, options: &ConvertOptions) -> ConvertReport {
        let program = &self.program;
        let ops = program.main().op_counts();
        ConvertReport {
            input: options.input.clone(),
            output: options.output.clone(),
            target: options.target.to_string(),
            precision: options.precision,
            ops,
            mixed: self.prepared.precision.clone(),
            fusion: self.prepared.fusion.clone(),
            limits: program
                .metadata
                .get(onnx::LIMITS_METADATA_KEY)
                .map(|notes| notes.split("; ").map(str::to_string).collect())
                .unwrap_or_default(),
            states: self.states.iter().map(ToString::to_string).collect(),
            states_detected: options.states.is_empty() && !self.states.is_empty(),
            verify: self.verified.clone(),
            warnings: source_warnings(program, &options.input),
        }
    }
}

/// Loads the source with `input_shapes`, prepares it and verifies it as `options` say. Image
/// inputs get their scale and bias ops after the precision pass (in fp32, as coremltools
/// inserts them) and in the verification source too; the classifier op comes after
/// verification, which compares the probabilities.
pub(super) fn build(options: &ConvertOptions, input_shapes: &InputShapes) -> Result<Built, Error> {
    let mut program = load_model(&options.input, options.target, input_shapes)?;
    let described = options.describe.plan(&program)?;
    let pairs = state_pairs(&program, &options.states, options.target)?;
    let source = options
        .verify
        .as_ref()
        .map(|settings| {
            let mut source = program.clone();
            states::make_states(source.main_mut(), &pairs).map_err(Error::Usage)?;
            described.apply_images(&mut source);
            Ok::<_, Error>((settings, source))
        })
        .transpose()?;
    let prepared = prepare(
        &mut program,
        options.precision,
        &options.mixed,
        &options.input,
    )?;
    attach_states(&mut program, &pairs, &options.input)?;
    described.apply_images(&mut program);
    let verified = source
        .map(|(settings, source)| verify_candidate(&source, &program, settings, &options.input))
        .transpose()?;
    described.apply_classifier(&mut program);
    options.describe.apply_metadata(&mut program, &described);
    validate_program(&program).map_err(|e| Error::invalid(&options.input, e.to_string()))?;
    Ok(Built {
        program,
        prepared,
        states: pairs,
        verified,
    })
}

/// The state pairs of a conversion: the given ones (checked, usage errors naming the flag), or
/// those found by name when none is given and the target has states.
pub fn state_pairs(
    program: &Program,
    given: &[StatePair],
    target: Target,
) -> Result<Vec<StatePair>, Error> {
    if given.is_empty() {
        return Ok(if target >= Target::IOS18 {
            states::detect_pairs(program.main())
        } else {
            Vec::new()
        });
    }
    if target < Target::IOS18 {
        return Err(Error::Usage(format!(
            "--state {}: states need --target iOS18 or later (program targets {target})",
            given[0]
        )));
    }
    states::check_pairs(program.main(), given).map_err(Error::Usage)?;
    Ok(given.to_vec())
}

/// Makes the pairs states in a prepared program (the casts it leaves unread are removed) and
/// records them in the metadata under [`states::STATES_METADATA_KEY`].
pub fn attach_states(
    program: &mut Program,
    pairs: &[StatePair],
    source: &Path,
) -> Result<(), Error> {
    if pairs.is_empty() {
        return Ok(());
    }
    states::make_states(program.main_mut(), pairs).map_err(Error::Usage)?;
    program.metadata.insert(
        states::STATES_METADATA_KEY.to_string(),
        StatePair::list_text(pairs),
    );
    passes::remove_dead_code(program);
    validate_program(program).map_err(|e| Error::invalid(source, e.to_string()))
}

/// Verifies a converted or compressed program against its source. A failure is an error
/// unless `allow_degraded`; an inconclusive comparison (an output with no finite source value)
/// is always one.
pub fn verify_candidate(
    source: &Program,
    converted: &Program,
    settings: &ConvertVerify,
    input: &Path,
) -> Result<VerifyReport, Error> {
    let options = VerifyOptions {
        inputs: InputSpec::Random {
            samples: settings.samples,
            seed: 0,
            ranges: settings.ranges.clone(),
        },
        thresholds: settings.thresholds,
        floor: settings.floor,
        ..Default::default()
    };
    let report = verify::verify_programs(source, converted, &options).map_err(|e| match e {
        verify::VerifyError::Inputs(m) => Error::Usage(m),
        other => Error::invalid(
            input,
            format!("verify: {other} (pass --no-verify to skip verification)"),
        ),
    })?;
    if report
        .outputs
        .iter()
        .any(|o| o.verdict == Verdict::Inconclusive)
    {
        return Err(Error::VerificationFailed(format!(
            "{}; nothing written (give the inputs' ranges with --input-range NAME=LO,HI, or pass \
             --no-verify and check the package with `mlpack verify --inputs FILE.npz`)",
            report.summary()
        )));
    }
    if !report.passed && !settings.allow_degraded {
        return Err(Error::VerificationFailed(format!(
            "{}; nothing written (pass --allow-degraded to write it anyway)",
            report.summary()
        )));
    }
    Ok(report)
}

/// What [`prepare`] did.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// Precision outcome.
    pub precision: PrecisionReport,
    /// Patterns fused into single ops.
    pub fusion: FusionReport,
}

/// Cleanup, fusion and precision passes shared by every command that writes a package; errors
/// name `source` (or the precision rule at fault). When something was fused, the counts are
/// recorded in the program's metadata under [`passes::FUSED_METADATA_KEY`].
pub fn prepare(
    program: &mut Program,
    precision: Precision,
    mixed: &MixedPrecision,
    source: &Path,
) -> Result<Prepared, Error> {
    passes::cleanup(program).map_err(|m| Error::invalid(source, m))?;
    let fusion = passes::fuse(program);
    if fusion.total() > 0 {
        program
            .metadata
            .insert(passes::FUSED_METADATA_KEY.to_string(), fusion.to_string());
    }
    let report = apply_precision(program, precision, mixed, source)?;
    passes::remove_dead_code(program);
    validate_program(program).map_err(|e| Error::invalid(source, e.to_string()))?;
    Ok(Prepared {
        precision: report,
        fusion,
    })
}
