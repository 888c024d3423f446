//! `mlpack palettize`, `quantize`, `prune` and `compress`.

use super::convert::ShapeArgs;
use super::precision::{print_fp32_ops, PrecisionArgs};
use super::progress::Progress;
use super::values;
use super::verify_args::VerifyArgs;
use super::{check_report, print_json, print_warnings, write_report};
use crate::ir::Target;
use crate::passes::compress::{
    CompressionSpec, NmRatio, PaletteGranularity, PaletteModeArg, PaletteSpec, PruneSpec,
    QuantDtypeArg, QuantGranularity, QuantModeArg, QuantSpec, WeightReport,
    DEFAULT_WEIGHT_THRESHOLD,
};
use crate::pipeline::{self, CompressCommandReport, CompressOptions, Recipe};
use crate::verify::{ThresholdOverrides, Thresholds, Verdict};
use crate::Error;
use clap::Args;
use std::path::{Path, PathBuf};

/// Default floor of the compression commands' verification: cosine similarity 0.9.
const DEFAULT_MIN_COSINE: f64 = 0.9;

/// Flags shared by every compression command.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Source model: .onnx or .pt2 (converted first, like `convert`) or .mlpackage.
    input: PathBuf,
    /// Destination .mlpackage.
    #[arg(short, long)]
    output: PathBuf,
    /// Deployment target (default: the package's own target; iOS17 for ONNX).
    #[arg(long)]
    target: Option<String>,
    /// Compute precision and fp32 rules when converting ONNX.
    #[command(flatten)]
    precision: PrecisionArgs,
    #[command(flatten)]
    shapes: ShapeArgs,
    /// Leave weights with at most this many elements uncompressed.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_WEIGHT_THRESHOLD)]
    weight_threshold: usize,
    /// Write the per-weight report (and verify metrics) to FILE as JSON.
    #[arg(long, value_name = "FILE.json")]
    report: Option<PathBuf>,
    /// Fail when a weight cannot be compressed instead of skipping it with a warning.
    #[arg(long)]
    strict: bool,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    force: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    verify: VerifyArgs,
    /// Floor: fail (exit 6, nothing written) when an output's cosine similarity is below C
    /// [default: 0.9]. Above it but below the fp16 thresholds (cosine 0.999, SNR 25 dB) the
    /// result is written and reported `degraded`.
    #[arg(long, value_name = "C", value_parser = values::cosine, conflicts_with = "no_verify")]
    min_cosine: Option<f64>,
    /// Floor: fail (exit 6, nothing written) when an output's SNR in dB is below DB [default:
    /// none].
    #[arg(long, value_name = "DB", value_parser = values::finite, conflicts_with = "no_verify")]
    min_snr: Option<f64>,
}

/// Flags of `mlpack palettize`.
#[derive(Debug, Args)]
pub struct PalettizeArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Index width in bits: 1, 2, 3, 4, 6 or 8 (not with --mode unique).
    #[arg(long)]
    nbits: Option<u32>,
    /// How the lookup table is chosen.
    #[arg(long, default_value = "kmeans", value_parser = values::named::<PaletteModeArg>(&["kmeans", "uniform", "unique"]))]
    mode: PaletteModeArg,
    /// One LUT per weight, or one per group of output channels (iOS18+).
    #[arg(long, default_value = "per-tensor", value_parser = values::named::<PaletteGranularity>(&["per-tensor", "per-grouped-channel"]))]
    granularity: PaletteGranularity,
    /// Channels per LUT with --granularity per-grouped-channel.
    #[arg(long, value_name = "N", default_value_t = 32)]
    group_size: usize,
    /// Axis to group channels along (default: the consuming op's output-channel axis).
    #[arg(long, value_name = "A")]
    channel_axis: Option<usize>,
    /// Values per LUT entry; > 1 is vector palettization along the channel axis (iOS18+).
    #[arg(long, value_name = "D", default_value_t = 1)]
    cluster_dim: usize,
    /// Scale each weight by its per-channel max |w| before palettizing (iOS18+).
    #[arg(long)]
    per_channel_scale: bool,
}

/// Flags of `mlpack quantize`.
#[derive(Debug, Args)]
pub struct QuantizeArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Integer type (int4/uint4: iOS18+).
    #[arg(long, default_value = "int8", value_parser = values::named::<QuantDtypeArg>(&["int8", "uint8", "int4", "uint4"]))]
    dtype: QuantDtypeArg,
    /// Symmetric or affine (zero point) quantization.
    #[arg(long, default_value = "symmetric", value_parser = values::named::<QuantModeArg>(&["symmetric", "affine"]))]
    mode: QuantModeArg,
    /// Which values share a scale (per-block: iOS18+).
    #[arg(long, default_value = "per-channel", value_parser = values::named::<QuantGranularity>(&["per-tensor", "per-channel", "per-block"]))]
    granularity: QuantGranularity,
    /// Input-channel block length with --granularity per-block.
    #[arg(long, value_name = "N", default_value_t = 32)]
    block_size: usize,
}

/// Flags of `mlpack prune`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("amount").required(true).args(["target_sparsity", "threshold", "n_m"]))]
pub struct PruneArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Zero this fraction of the smallest-magnitude values (or blocks with --block-size).
    #[arg(long, value_name = "S", value_parser = values::fraction)]
    target_sparsity: Option<f64>,
    /// Zero every value with |w| ≤ T.
    #[arg(long, value_name = "T", value_parser = values::non_negative_f32)]
    threshold: Option<f32>,
    /// Zero the N smallest of every M consecutive values along --prune-dim (e.g. 2:4).
    #[arg(long, value_name = "N:M")]
    n_m: Option<NmRatio>,
    /// Prune whole blocks of B channels along --prune-dim (with --target-sparsity).
    #[arg(long, value_name = "B", conflicts_with = "n_m")]
    block_size: Option<usize>,
    /// 0: output channels, 1: input channels (default 0 for blocks, 1 for n:m); the recipe's
    /// `dim` key. (`--dim` names input dimensions, as for `convert`.)
    #[arg(long = "prune-dim", value_name = "0|1")]
    dim: Option<usize>,
}

/// Flags of `mlpack compress`.
#[derive(Debug, Args)]
pub struct CompressArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// JSON recipe: global spec, per-op-type and per-op-name overrides, joint steps.
    #[arg(long, value_name = "FILE.json")]
    recipe: PathBuf,
}

impl PalettizeArgs {
    /// The library options these flags describe.
    pub(super) fn options(&self) -> Result<CompressOptions, Error> {
        let spec = CompressionSpec {
            palettize: Some(PaletteSpec {
                nbits: self.nbits,
                mode: self.mode,
                granularity: self.granularity,
                group_size: self.group_size,
                channel_axis: self.channel_axis,
                cluster_dim: self.cluster_dim,
                per_channel_scale: self.per_channel_scale,
            }),
            ..Default::default()
        };
        let recipe = Recipe::global(spec, self.common.weight_threshold);
        self.common.options(recipe, None)
    }
}

impl QuantizeArgs {
    /// The library options these flags describe.
    pub(super) fn options(&self) -> Result<CompressOptions, Error> {
        let spec = CompressionSpec {
            quantize: Some(QuantSpec {
                dtype: self.dtype,
                mode: self.mode,
                granularity: self.granularity,
                block_size: self.block_size,
            }),
            ..Default::default()
        };
        let recipe = Recipe::global(spec, self.common.weight_threshold);
        self.common.options(recipe, None)
    }
}

impl PruneArgs {
    /// The library options these flags describe.
    pub(super) fn options(&self) -> Result<CompressOptions, Error> {
        let spec = CompressionSpec {
            prune: Some(PruneSpec {
                target_sparsity: self.target_sparsity,
                threshold: self.threshold,
                n_m: self.n_m,
                block_size: self.block_size,
                dim: self.dim,
            }),
            ..Default::default()
        };
        let recipe = Recipe::global(spec, self.common.weight_threshold);
        self.common.options(recipe, None)
    }
}

impl CompressArgs {
    /// The library options these flags describe (the recipe read and checked).
    pub(super) fn options(&self) -> Result<CompressOptions, Error> {
        let mut recipe = Recipe::load(&self.recipe)?;
        if self.common.weight_threshold != DEFAULT_WEIGHT_THRESHOLD {
            recipe.weight_threshold = self.common.weight_threshold;
        }
        self.common.options(recipe, Some(self.recipe.clone()))
    }
}

impl CommonArgs {
    /// The library options of these flags with `recipe` (read from `recipe_path`, if any).
    fn options(
        &self,
        recipe: Recipe,
        recipe_path: Option<PathBuf>,
    ) -> Result<CompressOptions, Error> {
        let target = self
            .target
            .as_deref()
            .map(|t| {
                t.parse::<Target>()
                    .map_err(|e| Error::Usage(format!("--target: {e}")))
            })
            .transpose()?;
        Ok(CompressOptions {
            input: self.input.clone(),
            output: self.output.clone(),
            target,
            precision: self.precision.precision,
            mixed: self.precision.mixed(&self.verify.input_ranges),
            input_shapes: self.shapes.input_shapes()?,
            recipe,
            recipe_path,
            strict: self.strict,
            force: self.force,
            // Compression is lossy by request: `ok` at the fp16 thresholds, `degraded` down to
            // the floor, failed below it.
            verify: self.verify.settings(
                ThresholdOverrides {
                    max_abs: None,
                    min_snr_db: Some(Thresholds::FP16.min_snr_db),
                    min_cosine: Some(Thresholds::FP16.min_cosine),
                },
                Some(Thresholds {
                    max_abs: None,
                    min_snr_db: self.min_snr.unwrap_or(f64::NEG_INFINITY),
                    min_cosine: self.min_cosine.unwrap_or(DEFAULT_MIN_COSINE),
                }),
            ),
        })
    }
}

/// Runs `mlpack palettize`.
pub fn palettize(args: &PalettizeArgs, progress: &Progress, quiet: bool) -> Result<(), Error> {
    run(&args.common, args.options()?, progress, quiet)
}

/// Runs `mlpack quantize`.
pub fn quantize(args: &QuantizeArgs, progress: &Progress, quiet: bool) -> Result<(), Error> {
    run(&args.common, args.options()?, progress, quiet)
}

/// Runs `mlpack prune`.
pub fn prune(args: &PruneArgs, progress: &Progress, quiet: bool) -> Result<(), Error> {
    run(&args.common, args.options()?, progress, quiet)
}

/// Runs `mlpack compress`.
pub fn compress(args: &CompressArgs, progress: &Progress, quiet: bool) -> Result<(), Error> {
    run(&args.common, args.options()?, progress, quiet)
}

fn run(
    args: &CommonArgs,
    options: CompressOptions,
    progress: &Progress,
    quiet: bool,
) -> Result<(), Error> {
    let read: Vec<&Path> = std::iter::once(options.input.as_path())
        .chain(options.recipe_path.as_deref())
        .chain(options.mixed.calibration.dir())
        .collect();
    check_report(args.report.as_deref(), &read, &options.output)?;
    progress.stage(&format!("compressing {}", args.input.display()));
    let report = pipeline::compress(&options, &|done, total| {
        progress.stage(&format!("compressing weights: {done}/{total}"))
    })?;
    progress.clear();
    print_warnings(&report.warnings);
    if let Some(path) = &args.report {
        write_report(path, &report, &args.output)?;
    }
    if report.compression.weights.is_empty() {
        eprintln!(
            "mlpack: warning: no weight was selected: none has more than {} elements (see --weight-threshold) or the recipe skips them all",
            options.recipe.weight_threshold
        );
    }
    for w in &report.compression.weights {
        if let Some(why) = &w.skipped {
            eprintln!(
                "mlpack: warning: weight '{}' left uncompressed: {why}",
                w.name
            );
        }
    }
    match report.verify.as_ref() {
        Some(v) if v.verdict == Verdict::Failed => eprintln!(
            "mlpack: warning: verification failed, wrote the package anyway (--allow-degraded): {}",
            v.summary()
        ),
        // Printed on stdout too, unless quiet or JSON.
        Some(v) if v.verdict == Verdict::Degraded && (quiet || args.json) => eprintln!(
            "mlpack: warning: the compressed model is degraded (below the fp16 thresholds, above the floor --min-cosine/--min-snr): {}",
            v.summary()
        ),
        _ => {}
    }
    if args.json {
        return print_json(&report);
    }
    if !quiet {
        print_summary(&report);
    }
    Ok(())
}

/// The per-weight table, the totals and the verify line.
fn print_summary(report: &CompressCommandReport) {
    let weights = &report.compression.weights;
    let name_width = weights
        .iter()
        .map(|w| w.name.len())
        .max()
        .unwrap_or(6)
        .clamp(6, 40);
    println!(
        "{:<name_width$}  {:<14} {:<16} {:<34} {:>6} {:>10} {:>10} {:>8} {:>9}",
        "weight", "op", "shape", "scheme", "bits", "before", "after", "SNR dB", "max err"
    );
    for w in weights {
        println!("{}", summary_row(w, name_width));
    }
    let c = &report.compression;
    println!(
        "{} weights compressed, {} skipped: {} → {} ({:.2}x)",
        c.compressed,
        c.skipped,
        human_bytes(c.bytes_before),
        human_bytes(c.bytes_after),
        c.ratio()
    );
    if let Some(p) = &report.precision {
        print_fp32_ops(p);
    }
    if let Some(v) = &report.verify {
        println!("verify: {}", v.summary());
    }
    println!("wrote {} ({})", report.output.display(), report.target);
}

fn summary_row(w: &WeightReport, name_width: usize) -> String {
    let shape = format!("{:?}", w.shape);
    let snr = match (&w.skipped, w.snr_db) {
        (Some(_), _) => "-".to_string(),
        (None, None) => "exact".to_string(),
        (None, Some(s)) => format!("{s:.1}"),
    };
    let scheme = match &w.skipped {
        Some(_) => format!("skipped: {}", w.scheme),
        None => w.scheme.clone(),
    };
    let mut name = w.name.clone();
    if name.len() > name_width {
        name = format!("…{}", &name[name.len() - name_width + 1..]);
    }
    format!(
        "{:<name_width$}  {:<14} {:<16} {:<34} {:>6.2} {:>10} {:>10} {:>8} {:>9.2e}",
        name,
        truncate(&w.op_type, 14),
        truncate(&shape, 16),
        truncate(&scheme, 34),
        w.bits_per_weight,
        human_bytes(w.bytes_before),
        human_bytes(w.bytes_after),
        snr,
        w.max_abs_error
    )
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let mut t: String = text.chars().take(width - 1).collect();
        t.push('…');
        t
    }
}

fn human_bytes(n: usize) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
