//! What to do to one weight: a compression spec (prune, palettize, quantize, or a joint
//! combination of them) and the deployment target it needs.

use crate::compress::palettize::{PaletteMode, ALLOWED_NBITS};
use crate::compress::quantize::{QuantDtype, QuantMode};
use crate::ir::Target;
use serde::{Deserialize, Serialize};

/// The steps applied to a weight, in the fixed order prune → palettize → quantize.
///
/// One step alone is plain compression; several are joint compression: prune + palettize
/// (a sparse palettized weight), prune + quantize (sparse quantized), palettize + quantize
/// (the LUT itself quantized per tensor) and all three.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressionSpec {
    /// Zero out weights and store only the non-zeros with a bit mask.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<PruneSpec>,
    /// Replace values by indices into a lookup table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub palettize: Option<PaletteSpec>,
    /// Store integers plus scales (and offsets); joint with palettize it quantizes the LUT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantize: Option<QuantSpec>,
}

/// Palettization settings (coremltools `OpPalettizerConfig`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaletteSpec {
    /// Index width: 1, 2, 3, 4, 6 or 8 (required except for `unique`).
    #[serde(default)]
    pub nbits: Option<u32>,
    /// How the LUT is chosen.
    #[serde(default)]
    pub mode: PaletteModeArg,
    /// One LUT per weight, or one per group of output channels.
    #[serde(default)]
    pub granularity: PaletteGranularity,
    /// Channels per group for `per-grouped-channel`.
    #[serde(default = "default_group_size")]
    pub group_size: usize,
    /// The channel axis to group along (default: the consumer's output-channel axis).
    #[serde(default)]
    pub channel_axis: Option<usize>,
    /// Values per LUT entry (> 1: vector palettization along the channel axis).
    #[serde(default = "one")]
    pub cluster_dim: usize,
    /// Divide each weight by a per-channel max |w| scale before palettizing.
    #[serde(default)]
    pub per_channel_scale: bool,
}

/// Palettization mode on the command line and in recipes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PaletteModeArg {
    /// Optimal k-means LUT.
    #[default]
    Kmeans,
    /// Evenly spaced LUT between min and max.
    Uniform,
    /// The weight's distinct values (at most 256).
    Unique,
}

impl From<PaletteModeArg> for PaletteMode {
    fn from(mode: PaletteModeArg) -> PaletteMode {
        match mode {
            PaletteModeArg::Kmeans => PaletteMode::Kmeans,
            PaletteModeArg::Uniform => PaletteMode::Uniform,
            PaletteModeArg::Unique => PaletteMode::Unique,
        }
    }
}

/// Which values share a LUT.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PaletteGranularity {
    /// One LUT for the whole weight.
    #[default]
    PerTensor,
    /// One LUT per `group_size` channels.
    PerGroupedChannel,
}

/// Linear quantization settings (coremltools `OpLinearQuantizerConfig`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantSpec {
    /// Integer type.
    #[serde(default)]
    pub dtype: QuantDtypeArg,
    /// Symmetric (no offset for signed types) or affine (with a zero point).
    #[serde(default)]
    pub mode: QuantModeArg,
    /// Which values share a scale.
    #[serde(default)]
    pub granularity: QuantGranularity,
    /// Input-channel block length for `per-block`.
    #[serde(default = "default_block_size")]
    pub block_size: usize,
}

/// Quantized integer type on the command line and in recipes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QuantDtypeArg {
    /// Signed 8-bit.
    #[default]
    Int8,
    /// Unsigned 8-bit.
    Uint8,
    /// Signed 4-bit (iOS18+).
    Int4,
    /// Unsigned 4-bit (iOS18+).
    Uint4,
}

impl From<QuantDtypeArg> for QuantDtype {
    fn from(dtype: QuantDtypeArg) -> QuantDtype {
        match dtype {
            QuantDtypeArg::Int8 => QuantDtype::Int8,
            QuantDtypeArg::Uint8 => QuantDtype::Uint8,
            QuantDtypeArg::Int4 => QuantDtype::Int4,
            QuantDtypeArg::Uint4 => QuantDtype::Uint4,
        }
    }
}

/// Quantization mode on the command line and in recipes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QuantModeArg {
    /// Range `[-max|w|, max|w|]`.
    #[default]
    Symmetric,
    /// Range `[min(0, min w), max(0, max w)]` with a zero point.
    Affine,
}

impl From<QuantModeArg> for QuantMode {
    fn from(mode: QuantModeArg) -> QuantMode {
        match mode {
            QuantModeArg::Symmetric => QuantMode::Symmetric,
            QuantModeArg::Affine => QuantMode::Affine,
        }
    }
}

/// Which values share a quantization scale.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QuantGranularity {
    /// One scale per weight.
    PerTensor,
    /// One scale per output channel.
    #[default]
    PerChannel,
    /// One scale per output channel and block of input channels (iOS18+).
    PerBlock,
}

/// Pruning settings (coremltools `OpMagnitudePrunerConfig` / `OpThresholdPrunerConfig`).
/// Exactly one of `target_sparsity`, `threshold` and `n_m` is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneSpec {
    /// Fraction of the smallest-magnitude values (or blocks) to zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_sparsity: Option<f64>,
    /// Zero every value with `|w| <= threshold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f32>,
    /// Zero the `n` smallest of every `m` consecutive values along `dim`, written `"n:m"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_m: Option<NmRatio>,
    /// Prune whole blocks of this many channels along `dim` (with `target_sparsity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<usize>,
    /// 0: output channels, 1: input channels (default 0 for blocks, 1 for n:m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dim: Option<usize>,
}

/// An `n:m` structured-sparsity ratio.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NmRatio {
    /// Values zeroed per run.
    pub n: usize,
    /// Run length.
    pub m: usize,
}

impl std::str::FromStr for NmRatio {
    type Err = String;
    fn from_str(text: &str) -> Result<NmRatio, String> {
        let parsed = text
            .split_once(':')
            .and_then(|(n, m)| Some((n.trim().parse().ok()?, m.trim().parse().ok()?)));
        match parsed {
            Some((n, m)) if n <= m && m > 0 => Ok(NmRatio { n, m }),
            _ => Err(format!(
                "'{text}' is not an n:m ratio with 0 < m and n ≤ m (e.g. 2:4)"
            )),
        }
    }
}

impl TryFrom<String> for NmRatio {
    type Error = String;
    fn try_from(text: String) -> Result<NmRatio, String> {
        text.parse()
    }
}

impl From<NmRatio> for String {
    fn from(ratio: NmRatio) -> String {
        format!("{}:{}", ratio.n, ratio.m)
    }
}

fn default_group_size() -> usize {
    32
}

fn default_block_size() -> usize {
    32
}

fn one() -> usize {
    1
}

impl CompressionSpec {
    /// Checks the settings on their own and against `target`; the error names the setting
    /// and, when the target is too old, the minimum target that can express it.
    pub fn check(&self, target: Target) -> Result<(), String> {
        if self.prune.is_none() && self.palettize.is_none() && self.quantize.is_none() {
            return Err("no compression step (expected prune, palettize or quantize)".into());
        }
        if target < Target::IOS16 {
            return Err(format!(
                "compressed weights need target iOS16 or later (target is {target})"
            ));
        }
        let mut needs_ios18: Vec<&str> = Vec::new();
        let steps = [
            self.prune.is_some(),
            self.palettize.is_some(),
            self.quantize.is_some(),
        ];
        if steps.iter().filter(|&&s| s).count() > 1 {
            needs_ios18.push("joint compression");
        }
        if let Some(p) = &self.prune {
            p.check()?;
        }
        if let Some(p) = &self.palettize {
            p.check(&mut needs_ios18)?;
            if self.prune.is_some() && p.cluster_dim > 1 {
                return Err(
                    "pruning with vector palettization (cluster_dim > 1) is not supported".into(),
                );
            }
            if self.prune.is_some() && p.per_channel_scale {
                return Err("pruning with per-channel-scale palettization is not supported".into());
            }
        }
        if let Some(q) = &self.quantize {
            q.check(&mut needs_ios18)?;
            if self.palettize.as_ref().is_some_and(|p| p.per_channel_scale) {
                return Err(
                    "quantizing the LUT of a per-channel-scale palettization is not supported"
                        .into(),
                );
            }
            if self.palettize.is_some() && q.granularity != QuantGranularity::PerTensor {
                return Err(
                    "quantizing a palettized weight quantizes its LUT, which needs granularity per-tensor"
                        .into(),
                );
            }
        }
        if target < Target::IOS18 && !needs_ios18.is_empty() {
            return Err(format!(
                "{} needs target iOS18 or later (target is {target})",
                needs_ios18.join(", ")
            ));
        }
        Ok(())
    }

    /// A short description such as `palettize kmeans 4-bit per-tensor`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(p) = &self.prune {
            parts.push(p.describe());
        }
        if let Some(p) = &self.palettize {
            parts.push(p.describe());
        }
        if let Some(q) = &self.quantize {
            parts.push(q.describe());
        }
        parts.join(" + ")
    }
}

impl PaletteSpec {
    fn check(&self, needs_ios18: &mut Vec<&str>) -> Result<(), String> {
        match (self.mode, self.nbits) {
            (PaletteModeArg::Unique, Some(_)) => {
                return Err("palettize: nbits is chosen by mode unique; do not set it".into())
            }
            (PaletteModeArg::Unique, None) => {}
            (_, None) => return Err("palettize: nbits is required for kmeans and uniform".into()),
            (_, Some(n)) if !ALLOWED_NBITS.contains(&n) => {
                return Err(format!(
                    "palettize: nbits {n} is not one of {ALLOWED_NBITS:?}"
                ))
            }
            (_, Some(3)) => needs_ios18.push("3-bit palettes"),
            _ => {}
        }
        if self.granularity == PaletteGranularity::PerGroupedChannel {
            if self.group_size == 0 {
                return Err("palettize: group size must be at least 1".into());
            }
            needs_ios18.push("per-grouped-channel palettes");
        }
        if self.cluster_dim == 0 {
            return Err("palettize: cluster_dim must be at least 1".into());
        }
        if self.cluster_dim > 1 {
            if self.mode == PaletteModeArg::Uniform {
                return Err(
                    "palettize: vector palettes (cluster_dim > 1) need mode kmeans or unique"
                        .into(),
                );
            }
            needs_ios18.push("vector palettes (cluster_dim > 1)");
        }
        if self.per_channel_scale {
            needs_ios18.push("per-channel-scale palettes");
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let mode = match self.mode {
            PaletteModeArg::Kmeans => "kmeans",
            PaletteModeArg::Uniform => "uniform",
            PaletteModeArg::Unique => "unique",
        };
        let mut text = match self.nbits {
            Some(n) => format!("palettize {mode} {n}-bit"),
            None => format!("palettize {mode}"),
        };
        match self.granularity {
            PaletteGranularity::PerTensor => text.push_str(" per-tensor"),
            PaletteGranularity::PerGroupedChannel => {
                text.push_str(&format!(" group {}", self.group_size))
            }
        }
        if self.cluster_dim > 1 {
            text.push_str(&format!(" vector {}", self.cluster_dim));
        }
        if self.per_channel_scale {
            text.push_str(" per-channel-scale");
        }
        text
    }
}

impl QuantSpec {
    fn check(&self, needs_ios18: &mut Vec<&str>) -> Result<(), String> {
        if matches!(self.dtype, QuantDtypeArg::Int4 | QuantDtypeArg::Uint4) {
            needs_ios18.push("4-bit quantization");
        }
        if self.granularity == QuantGranularity::PerBlock {
            if self.block_size == 0 {
                return Err("quantize: block size must be at least 1".into());
            }
            needs_ios18.push("per-block quantization");
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let dtype = match self.dtype {
            QuantDtypeArg::Int8 => "int8",
            QuantDtypeArg::Uint8 => "uint8",
            QuantDtypeArg::Int4 => "int4",
            QuantDtypeArg::Uint4 => "uint4",
        };
        let mode = match self.mode {
            QuantModeArg::Symmetric => "symmetric",
            QuantModeArg::Affine => "affine",
        };
        let granularity = match self.granularity {
            QuantGranularity::PerTensor => "per-tensor".to_string(),
            QuantGranularity::PerChannel => "per-channel".to_string(),
            QuantGranularity::PerBlock => format!("block {}", self.block_size),
        };
        format!("quantize {dtype} {mode} {granularity}")
    }
}

impl PruneSpec {
    fn check(&self) -> Result<(), String> {
        let set = [
            self.target_sparsity.is_some(),
            self.threshold.is_some(),
            self.n_m.is_some(),
        ]
        .iter()
        .filter(|&&s| s)
        .count();
        if set != 1 {
            return Err("prune: set exactly one of target_sparsity, threshold and n_m".into());
        }
        if let Some(s) = self.target_sparsity {
            if !(0.0..=1.0).contains(&s) {
                return Err(format!("prune: target sparsity {s} is outside [0, 1]"));
            }
        }
        if let Some(t) = self.threshold {
            if !(t >= 0.0 && t.is_finite()) {
                return Err(format!("prune: threshold {t} must be a finite value ≥ 0"));
            }
        }
        if self.block_size.is_some() && self.target_sparsity.is_none() {
            return Err("prune: block_size works with target_sparsity only".into());
        }
        if let Some(b) = self.block_size {
            if b < 2 {
                return Err(format!("prune: block size {b} must be at least 2"));
            }
        }
        if let Some(d) = self.dim {
            if d > 1 {
                return Err(format!(
                    "prune: dim {d} must be 0 (output channels) or 1 (input channels)"
                ));
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        if let Some(NmRatio { n, m }) = self.n_m {
            format!("prune {n}:{m}")
        } else if let Some(t) = self.threshold {
            format!("prune |w| ≤ {t}")
        } else {
            let s = self.target_sparsity.unwrap_or(0.0) * 100.0;
            match self.block_size {
                Some(b) => format!("prune {s}% blocks of {b}"),
                None => format!("prune {s}%"),
            }
        }
    }
}
