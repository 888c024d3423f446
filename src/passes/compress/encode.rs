//! The numeric half of compressing one weight: from its values and a [`CompressionSpec`] to
//! target-independent compressed data (dense indices, LUTs, integers, masks).

use super::sites::{ChannelAxes, WeightSite};
use super::spec::{
    CompressionSpec, PaletteGranularity, PaletteSpec, PruneSpec, QuantGranularity, QuantSpec,
};
use crate::compress::blocks::BlockLayout;
use crate::compress::palettize::{
    palettize_group, palettize_group_vectors, ChannelGroups, Palette, PaletteMode,
};
use crate::compress::prune::{block_mask, magnitude_mask, n_m_mask, threshold_mask, Magnitude};
use crate::compress::quantize::{quantize, Granularity, QuantDtype, QuantMode, Quantized};
use crate::compress::{CompressError, Precision};
use half::f16;
use rayon::prelude::*;

/// A weight's values as the encoders read them.
#[derive(Clone, Copy, Debug)]
pub enum Values<'a> {
    /// fp32 values (an fp16 weight widened).
    F32(&'a [f32]),
    /// An fp16 weight's stored values: enough for pruning alone, which only ranks them.
    F16(&'a [f16]),
}

impl Values<'_> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Values::F32(v) => v.len(),
            Values::F16(v) => v.len(),
        }
    }
}

/// A compressed weight, before it is expressed as ops of a target.
#[derive(Clone, Debug)]
pub struct Encoded {
    /// Kept elements (`true`) of a pruned weight, row-major over the weight's shape.
    pub mask: Option<Vec<bool>>,
    /// How the (kept) values are stored.
    pub body: Body,
}

/// The storage of the values.
#[derive(Clone, Debug)]
pub enum Body {
    /// Pruning only: the kept elements are stored as they are in the source weight.
    Pruned,
    /// Palettized values.
    Palette(PaletteData),
    /// Linearly quantized values.
    Quant(QuantData),
}

/// A palettized weight.
#[derive(Clone, Debug)]
pub struct PaletteData {
    /// Index width in bits.
    pub nbits: u32,
    /// LUT entries, row-major in `lut_shape`.
    pub lut: Vec<f32>,
    /// `[g0, …, g(K−1), 2^nbits, cluster_dim]`: groups per weight axis, entries, vector length.
    pub lut_shape: Vec<usize>,
    /// One index per element (or vector), row-major in `index_shape` (pruned elements 0).
    pub indices: Vec<u8>,
    /// The weight shape, with the vector axis divided by the vector length.
    pub index_shape: Vec<usize>,
    /// Axis the LUT vectors lie along (vector palettization only).
    pub vector_axis: Option<usize>,
    /// The LUT quantized per tensor (joint palettize + quantize).
    pub lut_quant: Option<QuantData>,
    /// Per-channel scales applied after the LUT: the weight shape with 1 on the channel axis.
    pub channel_scale: Option<(Vec<f32>, Vec<usize>)>,
}

/// Linearly quantized values.
#[derive(Clone, Debug)]
pub struct QuantData {
    /// Integer type.
    pub dtype: QuantDtype,
    /// Integers, scales, zero points and the block-count shape.
    pub quantized: Quantized,
}

/// Compresses `values` (row-major in `shape`) as `spec` says. `axes` are the channel axes from
/// the weight's consumers (needed by every mode but per-tensor ones). Palettization and
/// quantization need [`Values::F32`].
pub fn encode(
    values: Values<'_>,
    shape: &[usize],
    precision: Precision,
    site: &WeightSite,
    spec: &CompressionSpec,
) -> Result<Encoded, CompressError> {
    let axes = site.axes;
    let mask = spec
        .prune
        .as_ref()
        .map(|p| match values {
            Values::F32(v) => prune_mask(v, shape, axes, p),
            Values::F16(v) => prune_mask(v, shape, axes, p),
        })
        .transpose()?;
    let joint = spec.palettize.is_some() || spec.quantize.is_some();
    let values = match values {
        Values::F32(values) => values,
        Values::F16(_) if !joint => {
            return Ok(Encoded {
                mask,
                body: Body::Pruned,
            })
        }
        Values::F16(_) => {
            return Err(CompressError::Parameter(
                "internal: palettization and quantization need fp32 values".into(),
            ))
        }
    };
    // Joint modes compress the pruned weight (pruned elements zeroed).
    let pruned: Option<Vec<f32>> = mask.as_ref().filter(|_| joint).map(|m| {
        values
            .iter()
            .zip(m)
            .map(|(&v, &keep)| if keep { v } else { 0.0 })
            .collect()
    });
    let dense = pruned.as_deref().unwrap_or(values);
    let body = match (&spec.palettize, &spec.quantize) {
        (Some(p), q) => {
            let mut data = palettize(dense, shape, precision, site, p, mask.as_deref())?;
            if let Some(q) = q {
                let quantized = quantize(
                    &data.lut,
                    &data.lut_shape,
                    &vec![0; data.lut_shape.len()],
                    q.dtype.into(),
                    q.mode.into(),
                    precision,
                )?;
                data.lut_quant = Some(QuantData {
                    dtype: q.dtype.into(),
                    quantized,
                });
            }
            Body::Palette(data)
        }
        (None, Some(q)) => Body::Quant(linear(dense, shape, precision, axes, q)?),
        (None, None) => Body::Pruned,
    };
    Ok(Encoded { mask, body })
}

/// The channel axes, or an error for modes that need them.
fn need_axes(axes: Option<ChannelAxes>, what: &str) -> Result<ChannelAxes, CompressError> {
    axes.ok_or_else(|| {
        CompressError::Shape(format!(
            "{what} needs the weight's channel axes, but its consumers disagree on them"
        ))
    })
}

fn prune_mask<T: Magnitude>(
    values: &[T],
    shape: &[usize],
    axes: Option<ChannelAxes>,
    spec: &PruneSpec,
) -> Result<Vec<bool>, CompressError> {
    let axis_of = |dim: usize, what: &str| -> Result<usize, CompressError> {
        let axes = need_axes(axes, what)?;
        Ok(if dim == 0 { axes.output } else { axes.input })
    };
    if let Some(ratio) = spec.n_m {
        let axis = axis_of(spec.dim.unwrap_or(1), "n:m pruning")?;
        if ratio.m > shape[axis] / 2 {
            return Err(CompressError::Shape(format!(
                "n:m run length {} exceeds half of the {} channels on axis {axis}",
                ratio.m, shape[axis]
            )));
        }
        return n_m_mask(values, shape, axis, ratio.n, ratio.m);
    }
    if let Some(threshold) = spec.threshold {
        crate::compress::check_finite(values)?;
        return Ok(threshold_mask(values, threshold));
    }
    let sparsity = spec.target_sparsity.unwrap_or(0.0);
    match spec.block_size {
        Some(block) => {
            let axis = axis_of(spec.dim.unwrap_or(0), "block pruning")?;
            block_mask(values, shape, axis, block, sparsity)
        }
        None => magnitude_mask(values, sparsity),
    }
}

fn linear(
    values: &[f32],
    shape: &[usize],
    precision: Precision,
    axes: Option<ChannelAxes>,
    spec: &QuantSpec,
) -> Result<QuantData, CompressError> {
    let granularity = match spec.granularity {
        QuantGranularity::PerTensor => Granularity::PerTensor,
        QuantGranularity::PerChannel => Granularity::PerChannel {
            axis: need_axes(axes, "per-channel quantization")?.output,
        },
        QuantGranularity::PerBlock => {
            let axes = need_axes(axes, "per-block quantization")?;
            Granularity::PerBlock {
                output_axis: axes.output,
                input_axis: axes.input,
                block_size: spec.block_size,
            }
        }
    };
    let dtype: QuantDtype = spec.dtype.into();
    let mode: QuantMode = spec.mode.into();
    let quantized = quantize(
        values,
        shape,
        &granularity.block_sizes(shape.len())?,
        dtype,
        mode,
        precision,
    )?;
    Ok(QuantData { dtype, quantized })
}

fn palettize(
    values: &[f32],
    shape: &[usize],
    precision: Precision,
    site: &WeightSite,
    spec: &PaletteSpec,
    mask: Option<&[bool]>,
) -> Result<PaletteData, CompressError> {
    let axes = site.axes;
    let needs_axis = spec.granularity == PaletteGranularity::PerGroupedChannel
        || spec.cluster_dim > 1
        || spec.per_channel_scale;
    let axis = match spec.channel_axis {
        Some(a) if a < shape.len() => a,
        Some(a) => {
            return Err(CompressError::Shape(format!(
                "channel axis {a} is out of range for a rank-{} weight",
                shape.len()
            )))
        }
        None if needs_axis => need_axes(axes, "this palettization")?.output,
        None => 0,
    };
    let group_size = match spec.granularity {
        PaletteGranularity::PerTensor => shape[axis],
        PaletteGranularity::PerGroupedChannel => spec.group_size,
    };
    if shape[axis] % group_size != 0 {
        return Err(CompressError::Shape(format!(
            "group size {group_size} does not divide the {} channels on axis {axis}",
            shape[axis]
        )));
    }
    let channel_scale = spec
        .per_channel_scale
        .then(|| channel_scales(values, shape, axis, precision))
        .transpose()?;
    let scaled = channel_scale
        .as_ref()
        .map(|(scales, scale_shape)| {
            let layout = BlockLayout::new(shape, scale_shape)?;
            Ok::<_, CompressError>(
                values
                    .iter()
                    .enumerate()
                    .map(|(flat, &v)| precision.round(v / scales[layout.param_index(flat)]))
                    .collect::<Vec<f32>>(),
            )
        })
        .transpose()?;
    let values = scaled.as_deref().unwrap_or(values);
    let mode: PaletteMode = spec.mode.into();
    if spec.cluster_dim > 1 {
        let per_group = shape[axis] / site.conv_groups.max(1);
        if per_group % spec.cluster_dim != 0 {
            return Err(CompressError::Shape(format!(
                "cluster_dim {} does not divide the {per_group} channels of each of the {} convolution groups",
                spec.cluster_dim, site.conv_groups
            )));
        }
        let mut data = palettize_vectors(
            values,
            shape,
            axis,
            group_size,
            spec.cluster_dim,
            mode,
            spec.nbits,
            precision,
        )?;
        data.channel_scale = channel_scale;
        return Ok(data);
    }
    let nbits = spec.nbits;
    let groups = ChannelGroups::new(shape, axis, group_size)?;
    let kept =
        |range: std::ops::Range<usize>| range.filter(move |&flat| mask.is_none_or(|m| m[flat]));
    let palettes: Vec<Palette> = (0..groups.count())
        .into_par_iter()
        .map(|g| {
            let members: Vec<f32> = match mask {
                None if groups.count() == 1 => values.to_vec(),
                None => groups
                    .ranges(g)
                    .flat_map(|r| values[r].iter().copied())
                    .collect(),
                Some(_) => groups
                    .ranges(g)
                    .flat_map(kept)
                    .map(|flat| values[flat])
                    .collect(),
            };
            if members.is_empty() {
                return Ok(Palette {
                    nbits: nbits.unwrap_or(1),
                    lut: vec![0.0; 1 << nbits.unwrap_or(1)],
                    indices: Vec::new(),
                });
            }
            palettize_group(&members, mode, nbits, precision)
        })
        .collect::<Result<_, _>>()?;
    let nbits = palettes.iter().map(|p| p.nbits).max().unwrap_or(1);
    let entries = 1usize << nbits;
    let mut lut = Vec::with_capacity(entries * palettes.len());
    let mut indices = vec![0u8; values.len()];
    for (g, palette) in palettes.iter().enumerate() {
        lut.extend_from_slice(&palette.lut);
        lut.resize(lut.len() + entries - palette.lut.len(), 0.0);
        let mut source = palette.indices.iter();
        for range in groups.ranges(g) {
            match mask {
                None => {
                    let n = range.len();
                    for (slot, &index) in indices[range].iter_mut().zip(source.by_ref().take(n)) {
                        *slot = index;
                    }
                }
                Some(_) => {
                    for (flat, &index) in kept(range).zip(source.by_ref()) {
                        indices[flat] = index;
                    }
                }
            }
        }
    }
    let mut lut_shape = vec![1; shape.len()];
    lut_shape[axis] = groups.count();
    lut_shape.extend([entries, 1]);
    Ok(PaletteData {
        nbits,
        lut,
        lut_shape,
        indices,
        index_shape: shape.to_vec(),
        vector_axis: None,
        lut_quant: None,
        channel_scale,
    })
}

/// Vector palettization: vectors of `dim` consecutive channels along `axis`, one LUT of
/// `2^nbits` vectors per group of `group_size` channels.
#[allow(clippy::too_many_arguments)]
fn palettize_vectors(
    values: &[f32],
    shape: &[usize],
    axis: usize,
    group_size: usize,
    dim: usize,
    mode: PaletteMode,
    nbits: Option<u32>,
    precision: Precision,
) -> Result<PaletteData, CompressError> {
    let channels = shape[axis];
    if channels % dim != 0 || group_size % dim != 0 {
        return Err(CompressError::Shape(format!(
            "cluster_dim {dim} does not divide the group of {group_size} of the {channels} channels on axis {axis}"
        )));
    }
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let groups = channels / group_size;
    let vectors_per_group = group_size / dim;
    // Flat index (in the index tensor) and first element of every vector of group `g`.
    let group_vectors = |g: usize| {
        (0..outer).flat_map(move |o| {
            (0..vectors_per_group).flat_map(move |j| {
                let cj = g * vectors_per_group + j;
                (0..inner).map(move |p| {
                    let index = (o * (channels / dim) + cj) * inner + p;
                    let first = (o * channels + cj * dim) * inner + p;
                    (index, first)
                })
            })
        })
    };
    let palettes: Vec<Palette> = (0..groups)
        .into_par_iter()
        .map(|g| {
            let mut points = Vec::with_capacity(values.len() / groups);
            for (_, first) in group_vectors(g) {
                points.extend((0..dim).map(|v| values[first + v * inner]));
            }
            palettize_group_vectors(&points, dim, mode, nbits, precision)
        })
        .collect::<Result<_, _>>()?;
    let nbits = palettes.iter().map(|p| p.nbits).max().unwrap_or(1);
    let entries = 1usize << nbits;
    let mut lut = Vec::with_capacity(groups * entries * dim);
    let mut indices = vec![0u8; values.len() / dim];
    for (g, palette) in palettes.iter().enumerate() {
        lut.extend_from_slice(&palette.lut);
        lut.resize((g + 1) * entries * dim, 0.0);
        for ((index, _), &label) in group_vectors(g).zip(&palette.indices) {
            indices[index] = label;
        }
    }
    let mut index_shape = shape.to_vec();
    index_shape[axis] /= dim;
    let mut lut_shape = vec![1; shape.len()];
    lut_shape[axis] = groups;
    lut_shape.extend([entries, dim]);
    Ok(PaletteData {
        nbits,
        lut,
        lut_shape,
        indices,
        index_shape,
        vector_axis: Some(axis),
        lut_quant: None,
        channel_scale: None,
    })
}

/// `max |w|` over `axis` (keeping it as size 1), with zeros replaced by 1.
fn channel_scales(
    values: &[f32],
    shape: &[usize],
    axis: usize,
    precision: Precision,
) -> Result<(Vec<f32>, Vec<usize>), CompressError> {
    let mut scale_shape = shape.to_vec();
    scale_shape[axis] = 1;
    let layout = BlockLayout::new(shape, &scale_shape)?;
    let mut scales = vec![0.0f32; layout.param_count()];
    for (flat, &v) in values.iter().enumerate() {
        let s = &mut scales[layout.param_index(flat)];
        *s = s.max(v.abs());
    }
    for s in &mut scales {
        *s = if *s == 0.0 { 1.0 } else { precision.round(*s) };
    }
    Ok((scales, scale_shape))
}
