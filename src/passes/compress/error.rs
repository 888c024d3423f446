//! The reconstruction error of a compressed weight, computed from its [`Encoded`] form: each
//! row is rebuilt the way the emitted constexpr ops rebuild it (same arithmetic, same fp16
//! rounding) and compared with the original, so no decompressed copy of the weight is made.

use super::encode::{Body, Encoded, PaletteData, QuantData, Values};
use super::report::ErrorSums;
use crate::compress::blocks::BlockLayout;
use crate::compress::Precision;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

/// Elements per parallel work item (whole rows; fixed, so sums never depend on threads).
const TASK_ELEMENTS: usize = 1 << 16;

/// Compares `values` (the weight, row-major in `shape`) with what `encoded` decompresses to.
pub fn reconstruction_error(
    values: Values<'_>,
    shape: &[usize],
    precision: Precision,
    encoded: &Encoded,
) -> Result<ErrorSums, String> {
    let decoder = Decoder::new(shape, precision, &encoded.body)?;
    let row_len = decoder.row_len(shape);
    let rows_per_task = (TASK_ELEMENTS / row_len).max(1);
    let task_len = rows_per_task * row_len;
    let partial: Vec<ErrorSums> = (0..values.len().div_ceil(task_len))
        .into_par_iter()
        .map(|task| {
            let range = task * task_len..((task + 1) * task_len).min(values.len());
            let widened;
            let chunk = match values {
                Values::F32(v) => &v[range],
                Values::F16(v) => {
                    widened = widen(&v[range]);
                    &widened[..]
                }
            };
            let mut decoded = vec![0f32; row_len];
            let mut sums = ErrorSums::default();
            for (r, exact) in chunk.chunks(row_len).enumerate() {
                let row = task * rows_per_task + r;
                decoder.decode_row(row, exact, &mut decoded);
                if let Some(mask) = &encoded.mask {
                    let kept = &mask[row * row_len..(row + 1) * row_len];
                    for (d, &keep) in decoded.iter_mut().zip(kept) {
                        *d = if keep { *d } else { 0.0 };
                    }
                }
                sums.add(exact, &decoded);
            }
            sums
        })
        .collect();
    Ok(partial
        .into_iter()
        .fold(ErrorSums::default(), ErrorSums::merge))
}

/// fp16 values as f32.
fn widen(values: &[half::f16]) -> Vec<f32> {
    let mut out = vec![0f32; values.len()];
    values.convert_to_f32_slice(&mut out);
    out
}

/// Rebuilds rows of one encoded weight.
enum Decoder<'a> {
    /// Pruning only: kept elements are stored exactly.
    Kept,
    /// `round(scale · (q − zero_point))` per block.
    Quant {
        data: &'a QuantData,
        layout: BlockLayout,
        precision: Precision,
    },
    /// LUT lookups, optionally scaled per channel.
    Palette(Box<PaletteDecoder<'a>>),
}

/// The parts of a palettized weight a row lookup needs.
struct PaletteDecoder<'a> {
    indices: &'a [u8],
    /// The LUT as the ops see it (dequantized when it is stored quantized).
    lut: Vec<f32>,
    /// LUT rows (entries) per group.
    entries: usize,
    /// Values per LUT entry.
    dim: usize,
    /// Groups over the index tensor.
    groups: BlockLayout,
    /// The vector axis and the weight shape (vector palettes only).
    vector: Option<(usize, Vec<usize>)>,
    /// Per-channel scales over the weight.
    scale: Option<(&'a [f32], BlockLayout)>,
    precision: Precision,
}

impl<'a> Decoder<'a> {
    fn new(shape: &[usize], precision: Precision, body: &'a Body) -> Result<Decoder<'a>, String> {
        let layout = |param_shape: &[usize]| {
            BlockLayout::new(shape, param_shape).map_err(|e| format!("internal: {e}"))
        };
        Ok(match body {
            Body::Pruned => Decoder::Kept,
            Body::Quant(data) => Decoder::Quant {
                layout: layout(&data.quantized.param_shape)?,
                data,
                precision,
            },
            Body::Palette(p) => {
                let rank = shape.len();
                // The emitted chain applies per-channel scales only to an unquantized LUT
                // (the spec refuses the combination).
                let scale = match (&p.channel_scale, &p.lut_quant) {
                    (Some((scales, scale_shape)), None) => {
                        Some((scales.as_slice(), layout(scale_shape)?))
                    }
                    _ => None,
                };
                Decoder::Palette(Box::new(PaletteDecoder {
                    indices: &p.indices,
                    lut: lut_values(p, precision)?,
                    entries: p.lut_shape[rank],
                    dim: p.lut_shape[rank + 1],
                    groups: BlockLayout::new(&p.index_shape, &p.lut_shape[..rank])
                        .map_err(|e| format!("internal: {e}"))?,
                    vector: p.vector_axis.map(|axis| (axis, shape.to_vec())),
                    scale,
                    precision,
                }))
            }
        })
    }

    /// The row length to decode in: the blocks' own rows where one layout covers the weight
    /// (merged trailing axes, so a conv's 3×3 kernels do not make three-element rows), else
    /// the last dimension.
    fn row_len(&self, shape: &[usize]) -> usize {
        let last = shape.last().copied().unwrap_or(1).max(1);
        match self {
            // No parameters: the layout of a single one merges every trailing axis it can.
            Decoder::Kept => BlockLayout::new(shape, &vec![1; shape.len()])
                .map_or(last, |layout| layout.row_len()),
            Decoder::Quant { layout, .. } => layout.row_len(),
            Decoder::Palette(p) if p.scale.is_some() => last,
            Decoder::Palette(p) => match &p.vector {
                None => p.groups.row_len(),
                // Vectors across rows: a row may cover everything after the vector axis.
                Some((axis, shape)) if axis + 1 < shape.len() => {
                    let inner: usize = shape[axis + 1..].iter().product();
                    if inner <= TASK_ELEMENTS {
                        inner
                    } else {
                        last
                    }
                }
                Some(_) => last,
            },
        }
    }

    /// Fills `out` with row `row` of the decompressed weight (before masking); `exact` is the
    /// same row of the original weight.
    fn decode_row(&self, row: usize, exact: &[f32], out: &mut [f32]) {
        match self {
            Decoder::Kept => out.copy_from_slice(exact),
            Decoder::Quant {
                data,
                layout,
                precision,
            } => {
                let q = &data.quantized;
                let start = row * out.len();
                let stored = &q.values[start..start + out.len()];
                let base = layout.row_base(row);
                let runs = out
                    .chunks_mut(layout.step())
                    .zip(stored.chunks(layout.step()));
                for (k, (out, stored)) in runs.enumerate() {
                    let zero_point = q.zero_points.as_ref().map_or(0, |z| z[base + k]) as f32;
                    let scale = q.scales[base + k];
                    if data.dtype.integer(0xff) < 0 {
                        for (o, &s) in out.iter_mut().zip(stored) {
                            *o = scale * (f32::from(s as i8) - zero_point);
                        }
                    } else {
                        for (o, &s) in out.iter_mut().zip(stored) {
                            *o = scale * (f32::from(s) - zero_point);
                        }
                    }
                }
                precision.round_slice(out);
            }
            Decoder::Palette(p) => p.decode_row(row, out),
        }
    }
}

impl PaletteDecoder<'_> {
    fn decode_row(&self, row: usize, out: &mut [f32]) {
        let row_len = out.len();
        let entry =
            |group: usize, index: u8| (group * self.entries + usize::from(index)) * self.dim;
        match &self.vector {
            None => {
                let indices = &self.indices[row * row_len..(row + 1) * row_len];
                let first = self.groups.param_index(row * row_len);
                let mut group = Counter::new(first, self.groups.step());
                for (o, &index) in out.iter_mut().zip(indices) {
                    *o = self.lut[entry(group.next(), index)];
                }
            }
            Some((axis, shape)) => {
                let dim = self.dim;
                if *axis + 1 == shape.len() {
                    // Vectors run along the row: consecutive `dim` elements share an index.
                    let index_row = row * (row_len / dim);
                    let indices = &self.indices[index_row..index_row + row_len / dim];
                    let first = self.groups.param_index(index_row);
                    let mut group = Counter::new(first, self.groups.step());
                    for (chunk, &index) in out.chunks_mut(dim).zip(indices) {
                        let at = entry(group.next(), index);
                        chunk.copy_from_slice(&self.lut[at..at + dim]);
                    }
                } else {
                    // The row lies at one channel `c`: index row `c / dim`, component `c % dim`.
                    let inner: usize = shape[axis + 1..].iter().product();
                    let rows_per_channel = inner / row_len;
                    let channel = row / rows_per_channel % shape[*axis];
                    let outer = row / rows_per_channel / shape[*axis];
                    let vectors = shape[*axis] / dim;
                    let index_row = (outer * vectors + channel / dim) * rows_per_channel
                        + row % rows_per_channel;
                    let indices = &self.indices[index_row * row_len..(index_row + 1) * row_len];
                    let component = channel % dim;
                    let first = self.groups.param_index(index_row * row_len);
                    let mut group = Counter::new(first, self.groups.step());
                    for (o, &index) in out.iter_mut().zip(indices) {
                        *o = self.lut[entry(group.next(), index) + component];
                    }
                }
            }
        }
        if let Some((scales, layout)) = &self.scale {
            let mut block = Counter::new(layout.param_index(row * row_len), layout.step());
            for o in out.iter_mut() {
                *o *= scales[block.next()];
            }
            self.precision.round_slice(out);
        }
    }
}

/// The LUT values the decompression ops look up: the stored LUT, or its dequantization.
fn lut_values(p: &PaletteData, precision: Precision) -> Result<Vec<f32>, String> {
    let Some(data) = &p.lut_quant else {
        return Ok(p.lut.clone());
    };
    let q = &data.quantized;
    let layout =
        BlockLayout::new(&p.lut_shape, &q.param_shape).map_err(|e| format!("internal: {e}"))?;
    let mut lut: Vec<f32> = q
        .values
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let b = layout.param_index(i);
            let zero_point = q.zero_points.as_ref().map_or(0, |z| z[b]);
            q.scales[b] * (data.dtype.integer(s) - zero_point) as f32
        })
        .collect();
    precision.round_slice(&mut lut);
    Ok(lut)
}

/// A parameter index that advances by one every `step` elements of a row.
struct Counter {
    index: usize,
    left: usize,
    step: usize,
}

impl Counter {
    fn new(first: usize, step: usize) -> Counter {
        Counter {
            index: first,
            left: step,
            step,
        }
    }

    /// The index of the current element; moves to the next element.
    #[inline]
    fn next(&mut self) -> usize {
        let index = self.index;
        self.left -= 1;
        if self.left == 0 {
            self.index += 1;
            self.left = self.step;
        }
        index
    }
}
