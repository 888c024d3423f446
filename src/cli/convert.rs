//! `mlpack convert`.

use super::describe_args::DescribeArgs;
use super::precision::{print_fp32_ops, PrecisionArgs};
use super::progress::Progress;
use super::verify_args::VerifyArgs;
use super::{check_report, print_json, print_warnings, split_assignment, write_report};
use crate::frontend::onnx::{FrozenInput, InputShape, NamedDim};
use crate::interp::Value;
use crate::ir::{DType, Target};
use crate::passes::states::StatePair;
use crate::pipeline::{self, ConvertOptions, FunctionSpec, InputShapes, MultifunctionReport};
use crate::Error;
use crate::{input_file, npy};
use clap::Args;
use std::path::PathBuf;

/// Flags of `mlpack convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Source model: .onnx, .pt2 (torch.export archive), or an .mlpackage to re-write / re-target.
    input: PathBuf,
    /// Destination .mlpackage.
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    precision: PrecisionArgs,
    /// Deployment target: iOS15…iOS18 or macOS12…macOS15.
    #[arg(long, default_value = "iOS17")]
    target: String,
    #[command(flatten)]
    shapes: ShapeArgs,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    force: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Write the report (ops kept in fp32 and why, verify metrics) to FILE as JSON.
    #[arg(long, value_name = "FILE.json")]
    report: Option<std::path::PathBuf>,
    #[command(flatten)]
    verify: VerifyArgs,
    /// Graph output OUT is graph input IN updated in place: make IN an fp16 state (iOS18;
    /// repeatable). Without it, past_key_values*/present* and NAME/NAME_out pairs are found
    /// by name from iOS18 on. Applies to every --function.
    #[arg(long = "state", value_name = "IN=OUT", value_parser = parse_state)]
    states: Vec<StatePair>,
    #[command(flatten)]
    functions: FunctionArgs,
    #[command(flatten)]
    describe: DescribeArgs,
}

/// `--function` and `--default-function`: a multifunction package.
#[derive(Debug, Args)]
struct FunctionArgs {
    /// Add a function converted at these input shapes (repeatable; needs --target iOS18):
    /// one package holding every function, sharing their weights. --input-shape and --dim
    /// apply to every function; a function's own shape replaces --input-shape for that input.
    #[arg(long = "function", value_name = "NAME:INPUT=SHAPE[,INPUT=SHAPE...]")]
    specs: Vec<FunctionSpec>,
    /// The function Core ML runs when none is named (default: the first --function).
    #[arg(long, value_name = "NAME", requires = "specs")]
    default_function: Option<String>,
}

/// Parses `--state IN=OUT`.
fn parse_state(text: &str) -> Result<StatePair, String> {
    match text.split_once('=') {
        Some((i, o)) if !i.is_empty() && !o.is_empty() => Ok(StatePair::new(i, o)),
        _ => Err(format!(
            "'{text}' is not IN=OUT (a graph input and output name)"
        )),
    }
}

/// `--input-shape`, `--dim` and `--freeze`: sizes for inputs with dynamic dimensions, and
/// ONNX inputs bound to constants.
#[derive(Debug, Args)]
pub(super) struct ShapeArgs {
    /// Shape of an ONNX input with dynamic dimensions, fixed (1,3,224,224), with ranges
    /// (1,1..512; LO.. is unbounded) or enumerated ('1,64|1,128') (repeatable).
    #[arg(long = "input-shape", value_name = "NAME=D0,D1,...")]
    input_shapes: Vec<InputShape>,
    /// Size of every input dimension named NAME (ONNX dim_param): fixed (128), a range
    /// (1..512; LO.. is unbounded) or enumerated ('16|64|128') (repeatable).
    #[arg(long = "dim", value_name = "NAME=SIZE")]
    dims: Vec<NamedDim>,
    #[command(flatten)]
    freeze: FreezeArgs,
}

impl ShapeArgs {
    /// The library form (reads the `--freeze` files).
    pub(super) fn input_shapes(&self) -> Result<InputShapes, Error> {
        Ok(InputShapes {
            inputs: self.input_shapes.clone(),
            dims: self.dims.clone(),
            frozen: self.freeze.frozen()?,
        })
    }
}

/// `--freeze NAME=FILE.npy`: ONNX graph inputs bound to constants before conversion.
#[derive(Debug, Args)]
pub(super) struct FreezeArgs {
    /// Bind ONNX graph input NAME to the array in FILE.npy before converting, so what it feeds
    /// (axes, pads, shapes, scales, k, repeats…) folds to constants; the package has no such
    /// input (repeatable).
    #[arg(long = "freeze", value_name = "NAME=FILE.npy", value_parser = parse_freeze)]
    freeze: Vec<(String, PathBuf)>,
}

impl FreezeArgs {
    /// The frozen inputs, their files read: an unreadable file is an I/O error, one that is not
    /// a numeric `.npy` array invalid input, a name given twice a usage error.
    pub(super) fn frozen(&self) -> Result<Vec<FrozenInput>, Error> {
        let mut frozen: Vec<FrozenInput> = Vec::with_capacity(self.freeze.len());
        for (name, file) in &self.freeze {
            if frozen.iter().any(|f| f.name == *name) {
                return Err(Error::Usage(format!("--freeze {name}: given twice")));
            }
            let bytes = input_file::read(file).map_err(|e| input_file::error(file, e))?;
            let invalid = |m: String| Error::invalid(file, format!("--freeze {name}: {m}"));
            let value = npy::parse(&bytes).map_err(|e| invalid(e.to_string()))?;
            let dtype = match &value {
                Value::Float(_) => DType::F32,
                Value::Int(_) => DType::I32,
                Value::Bool(_) => DType::Bool,
                Value::Str(_) => return Err(invalid("not a numeric or bool array".into())),
            };
            frozen.push(FrozenInput {
                name: name.clone(),
                value: value.to_tensor(dtype),
            });
        }
        Ok(frozen)
    }
}

/// Parses `--freeze NAME=FILE.npy`.
fn parse_freeze(text: &str) -> Result<(String, PathBuf), String> {
    let (name, file) = split_assignment(text)?;
    Ok((name, PathBuf::from(file)))
}

impl ConvertArgs {
    /// The library options these flags describe.
    pub(super) fn options(&self) -> Result<ConvertOptions, Error> {
        let target: Target = self
            .target
            .parse()
            .map_err(|e: crate::ir::UnknownTarget| Error::Usage(format!("--target: {e}")))?;
        Ok(ConvertOptions {
            describe: self.describe.options(),
            input: self.input.clone(),
            output: self.output.clone(),
            precision: self.precision.precision,
            mixed: self.precision.mixed(&self.verify.input_ranges),
            target,
            input_shapes: self.shapes.input_shapes()?,
            force: self.force,
            verify: self.verify.settings(Default::default(), None),
            states: self.states.clone(),
        })
    }

    /// The `--function` specs and `--default-function` (no specs: a single-function package).
    pub(super) fn functions(&self) -> (&[FunctionSpec], Option<&str>) {
        (
            &self.functions.specs,
            self.functions.default_function.as_deref(),
        )
    }
}

/// Runs `mlpack convert`.
pub fn execute(args: &ConvertArgs, progress: &Progress, quiet: bool) -> Result<(), Error> {
    let options = args.options()?;
    check_report(
        args.report.as_deref(),
        &options.read_paths(),
        &options.output,
    )?;
    progress.stage(&format!("converting {}", args.input.display()));
    if !args.functions.specs.is_empty() {
        let report = pipeline::convert_functions(
            &options,
            &args.functions.specs,
            args.functions.default_function.as_deref(),
        )?;
        progress.clear();
        return print_functions(args, &report, quiet);
    }
    let report = pipeline::convert(&options)?;
    progress.clear();
    print_warnings(&report.warnings);
    if let Some(v) = report.verify.as_ref().filter(|v| !v.passed) {
        eprintln!(
            "mlpack: warning: verification failed, wrote the package anyway (--allow-degraded): {}",
            v.summary()
        );
    }
    if let Some(path) = &args.report {
        write_report(path, &report, &args.output)?;
    }
    if args.json {
        return print_json(&report);
    }
    if !quiet {
        let ops: usize = report
            .ops
            .iter()
            .filter(|(k, _)| k.as_str() != "const")
            .map(|(_, v)| v)
            .sum();
        println!(
            "wrote {} ({}, {:?}): {ops} ops",
            report.output.display(),
            report.target,
            report.precision
        );
        if report.fusion.total() > 0 {
            println!("fused: {}", report.fusion);
        }
        for note in &report.limits {
            println!("flexible: {note}");
        }
        if !report.states.is_empty() {
            let how = if report.states_detected {
                "paired by name"
            } else {
                "from --state"
            };
            println!("states ({how}): {}", report.states.join(", "));
        }
        print_fp32_ops(&report.mixed);
        if let Some(v) = report.verify.as_ref().filter(|v| v.passed) {
            println!("verify: {}", v.summary());
        }
    }
    Ok(())
}

/// Prints (or writes) the report of a multifunction conversion.
fn print_functions(
    args: &ConvertArgs,
    report: &MultifunctionReport,
    quiet: bool,
) -> Result<(), Error> {
    if let Some(first) = report.functions.first() {
        print_warnings(&first.report.warnings);
    }
    for f in report
        .functions
        .iter()
        .filter_map(|f| f.report.verify.as_ref())
    {
        if !f.passed {
            eprintln!(
                "mlpack: warning: verification failed, wrote the package anyway (--allow-degraded): {}",
                f.summary()
            );
        }
    }
    if let Some(path) = &args.report {
        write_report(path, report, &args.output)?;
    }
    if args.json {
        return print_json(report);
    }
    if quiet {
        return Ok(());
    }
    println!(
        "wrote {} ({}, {:?}): {} functions, default {}",
        report.output.display(),
        args.target,
        args.precision.precision,
        report.functions.len(),
        report.default_function
    );
    for f in &report.functions {
        let ops: usize = f
            .report
            .ops
            .iter()
            .filter(|(k, _)| k.as_str() != "const")
            .map(|(_, v)| v)
            .sum();
        let verify = f
            .report
            .verify
            .as_ref()
            .map_or_else(|| "not verified".to_string(), |v| v.summary());
        let states = if f.report.states.is_empty() {
            String::new()
        } else {
            format!("; states: {}", f.report.states.join(", "))
        };
        println!("  {}: {ops} ops{states}; verify: {verify}", f.name);
    }
    Ok(())
}
