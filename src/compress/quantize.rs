//! Linear quantization parameters and values (coremltools `compute_qparams_by_dtype` +
//! `quantize_weight_by_dtype`, docs/format.md §6).

use rayon::prelude::*;

use super::blocks::BlockLayout;
use super::{check_finite, check_shape, round_half_even, CompressError, Precision};

/// Integer storage type of quantized values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantDtype {
    /// Signed 8-bit.
    Int8,
    /// Unsigned 8-bit.
    Uint8,
    /// Signed 4-bit.
    Int4,
    /// Unsigned 4-bit.
    Uint4,
}

impl QuantDtype {
    fn bits(self) -> u32 {
        match self {
            QuantDtype::Int8 | QuantDtype::Uint8 => 8,
            QuantDtype::Int4 | QuantDtype::Uint4 => 4,
        }
    }

    fn signed(self) -> bool {
        matches!(self, QuantDtype::Int8 | QuantDtype::Int4)
    }

    /// The integer a stored byte of [`Quantized::values`] holds.
    pub fn integer(self, stored: u8) -> i32 {
        if self.signed() {
            i32::from(stored as i8)
        } else {
            i32::from(stored)
        }
    }

    /// The quantized range `(qmin, qmax)` for `mode` (symmetric drops one code).
    pub fn range(self, mode: QuantMode) -> (i32, i32) {
        let bits = self.bits();
        let symmetric = mode == QuantMode::Symmetric;
        if self.signed() {
            let lo = -(1 << (bits - 1));
            (if symmetric { lo + 1 } else { lo }, (1 << (bits - 1)) - 1)
        } else {
            let hi = (1 << bits) - 1;
            (0, if symmetric { hi - 1 } else { hi })
        }
    }
}

/// Quantization mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantMode {
    /// `linear_symmetric`: range `[-R, R]` with `R = max|w|`.
    Symmetric,
    /// `linear` (affine): range `[min(0, min w), max(0, max w)]` with a zero point.
    Affine,
}

/// Which elements share a scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// One scale for the whole weight.
    PerTensor,
    /// One scale per index of `axis` (the output channel axis).
    PerChannel {
        /// The output channel axis.
        axis: usize,
    },
    /// One scale per output channel and per `block_size` consecutive input-axis elements.
    PerBlock {
        /// The output channel axis.
        output_axis: usize,
        /// The input channel axis.
        input_axis: usize,
        /// Elements per block along `input_axis` (0 = whole axis).
        block_size: usize,
    },
}

impl Granularity {
    /// Block size per axis (0 = the whole axis is one block), as coremltools derives it.
    pub fn block_sizes(self, rank: usize) -> Result<Vec<usize>, CompressError> {
        let mut sizes = vec![0; rank];
        let mut set = |axis: usize, size: usize| {
            if axis >= rank {
                return Err(CompressError::Shape(format!(
                    "axis {axis} is out of range for a rank-{rank} weight"
                )));
            }
            sizes[axis] = size;
            Ok(())
        };
        match self {
            Granularity::PerTensor => {}
            Granularity::PerChannel { axis } => set(axis, 1)?,
            Granularity::PerBlock {
                output_axis,
                input_axis,
                block_size,
            } => {
                set(output_axis, 1)?;
                set(input_axis, block_size)?;
            }
        }
        Ok(sizes)
    }
}

/// A quantized weight: `w ≈ (values − zero_point) · scale`, broadcast over blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantized {
    /// Quantized values in the weight's shape, within the dtype's range, one byte each in the
    /// dtype's storage encoding (two's complement for the signed types; see
    /// [`QuantDtype::integer`]).
    pub values: Vec<u8>,
    /// Scales (rounded to the weight precision), row-major in `param_shape`.
    pub scales: Vec<f32>,
    /// Zero points in `param_shape`; `None` for symmetric signed quantization.
    pub zero_points: Option<Vec<i32>>,
    /// Shape of scales and zero points: the weight's rank, the block count on each axis.
    pub param_shape: Vec<usize>,
}

/// Quantize `values` (row-major in `shape`) with one scale per block.
///
/// `block_sizes[axis]` is the block length on that axis (0 = whole axis; see
/// [`Granularity::block_sizes`]). Arithmetic is rounded to `precision` after each step like
/// numpy does for float16 arrays, and rounding is half-to-even. A block whose range is empty
/// (all zeros) or whose scale underflows to 0 gets scale 1, so no division by zero happens;
/// NaN or infinity is an error.
pub fn quantize(
    values: &[f32],
    shape: &[usize],
    block_sizes: &[usize],
    dtype: QuantDtype,
    mode: QuantMode,
    precision: Precision,
) -> Result<Quantized, CompressError> {
    check_shape(shape, values.len())?;
    check_finite(values)?;
    if block_sizes.len() != shape.len() {
        return Err(CompressError::Shape(format!(
            "{} block sizes for a rank-{} weight",
            block_sizes.len(),
            shape.len()
        )));
    }
    let mut param_shape = Vec::with_capacity(shape.len());
    for (&dim, &block) in shape.iter().zip(block_sizes) {
        if block == 0 {
            param_shape.push(1);
        } else if dim % block != 0 {
            return Err(CompressError::Shape(format!(
                "block size {block} does not divide dimension {dim}"
            )));
        } else {
            param_shape.push(dim / block);
        }
    }
    let layout = BlockLayout::new(shape, &param_shape)?;
    let (mins, maxs) = block_ranges(values, &layout);

    let (qmin, qmax) = dtype.range(mode);
    let p = precision;
    let mut scales = Vec::with_capacity(layout.param_count());
    let mut zero_points = Vec::with_capacity(layout.param_count());
    for (&min, &max) in mins.iter().zip(&maxs) {
        let (lo, hi) = match mode {
            QuantMode::Symmetric => {
                let r = min.abs().max(max.abs());
                (-r, r)
            }
            QuantMode::Affine => (min.min(0.0), max.max(0.0)),
        };
        let width = p.round(hi - lo);
        let mut scale = p.round(width / (qmax - qmin) as f32);
        if scale == 0.0 {
            scale = 1.0;
        }
        let zp = match mode {
            QuantMode::Symmetric if dtype.signed() => 0,
            QuantMode::Symmetric => qmax / 2,
            QuantMode::Affine if width == 0.0 => qmin.max(0),
            QuantMode::Affine => {
                let num = p.round(p.round(qmin as f32 * hi) - p.round(qmax as f32 * lo));
                let zp = p.round(num / width).round_ties_even();
                zp.clamp(qmin as f32, qmax as f32) as i32
            }
        };
        scales.push(scale);
        zero_points.push(zp);
    }

    let rounding = Rounding {
        precision,
        qmin: qmin as f32,
        qmax: qmax as f32,
    };
    let row_len = layout.row_len();
    let step = layout.step();
    let rows_per_task = (TASK_ELEMENTS / row_len).max(1);
    let mut stored = vec![0u8; values.len()];
    stored
        .par_chunks_mut(rows_per_task * row_len)
        .zip(values.par_chunks(rows_per_task * row_len))
        .enumerate()
        .for_each(|(task, (out, src))| {
            let first_row = task * rows_per_task;
            let rows = out.chunks_mut(row_len).zip(src.chunks(row_len));
            for (r, (out, src)) in rows.enumerate() {
                let base = layout.row_base(first_row + r);
                if step == 1 {
                    let params = base..base + row_len;
                    rounding.elementwise(src, out, &scales[params.clone()], &zero_points[params]);
                } else {
                    let runs = out.chunks_mut(step).zip(src.chunks(step));
                    for (k, (out, src)) in runs.enumerate() {
                        rounding.uniform(src, out, scales[base + k], zero_points[base + k]);
                    }
                }
            }
        });

    let has_zero_point = !(mode == QuantMode::Symmetric && dtype.signed());
    Ok(Quantized {
        values: stored,
        scales,
        zero_points: has_zero_point.then_some(zero_points),
        param_shape,
    })
}

/// Elements per parallel work item of the element-wise passes.
const TASK_ELEMENTS: usize = 1 << 16;
/// Elements rounded together through a stack buffer.
const RUN: usize = 256;

/// `q = clamp(round_half_even(round_p(w / scale)) + zero_point)`, stored as one byte.
struct Rounding {
    precision: Precision,
    qmin: f32,
    qmax: f32,
}

impl Rounding {
    /// Quantizes `src` into `out` with one scale and zero point.
    fn uniform(&self, src: &[f32], out: &mut [u8], scale: f32, zero_point: i32) {
        let mut buffer = [0f32; RUN];
        for (src, out) in src.chunks(RUN).zip(out.chunks_mut(RUN)) {
            let ratios = &mut buffer[..src.len()];
            for (r, &w) in ratios.iter_mut().zip(src) {
                *r = w / scale;
            }
            self.store(ratios, out, |_| zero_point);
        }
    }

    /// Quantizes `src` into `out` with a scale and zero point per element.
    fn elementwise(&self, src: &[f32], out: &mut [u8], scales: &[f32], zero_points: &[i32]) {
        let mut buffer = [0f32; RUN];
        let chunks = src.chunks(RUN).zip(out.chunks_mut(RUN));
        for (c, (src, out)) in chunks.enumerate() {
            let ratios = &mut buffer[..src.len()];
            for ((r, &w), &s) in ratios.iter_mut().zip(src).zip(&scales[c * RUN..]) {
                *r = w / s;
            }
            self.store(ratios, out, |j| zero_points[c * RUN + j]);
        }
    }

    /// Rounds `ratios` to the weight precision, then to integers, and stores them.
    fn store(&self, ratios: &mut [f32], out: &mut [u8], zero_point: impl Fn(usize) -> i32) {
        self.precision.round_slice(ratios);
        for (j, (o, &r)) in out.iter_mut().zip(ratios.iter()).enumerate() {
            let q = round_half_even(r) + zero_point(j) as f32;
            *o = q.clamp(self.qmin, self.qmax) as i32 as u8;
        }
    }
}

/// Minimum and maximum of the elements of every block, computed in parallel over rows.
fn block_ranges(values: &[f32], layout: &BlockLayout) -> (Vec<f32>, Vec<f32>) {
    let row_len = layout.row_len();
    let step = layout.step();
    let rows = values.len() / row_len;
    let tasks = rayon::current_num_threads() * 4;
    let rows_per_task = rows.div_ceil(tasks).max(1);
    // Each task keeps partial ranges for the span of parameter indices its rows touch.
    let partial: Vec<(usize, Vec<f32>, Vec<f32>)> = values
        .par_chunks(rows_per_task * row_len)
        .enumerate()
        .map(|(task, chunk)| {
            let first = task * rows_per_task;
            let bases: Vec<usize> = (first..first + chunk.len() / row_len)
                .map(|row| layout.row_base(row))
                .collect();
            let low = bases.iter().copied().min().unwrap_or(0);
            let high = bases.iter().copied().max().unwrap_or(0);
            let span = high + (row_len - 1) / step + 1 - low;
            let mut mins = vec![f32::INFINITY; span];
            let mut maxs = vec![f32::NEG_INFINITY; span];
            for (row, &base) in chunk.chunks(row_len).zip(&bases) {
                let base = base - low;
                if step == 1 {
                    let (mins, maxs) = (&mut mins[base..], &mut maxs[base..]);
                    for ((lo, hi), &v) in mins.iter_mut().zip(maxs.iter_mut()).zip(row) {
                        *lo = if v < *lo { v } else { *lo };
                        *hi = if v > *hi { v } else { *hi };
                    }
                    continue;
                }
                for (k, run) in row.chunks(step).enumerate() {
                    let (lo, hi) = min_max(run);
                    mins[base + k] = mins[base + k].min(lo);
                    maxs[base + k] = maxs[base + k].max(hi);
                }
            }
            (low, mins, maxs)
        })
        .collect();
    let mut mins = vec![f32::INFINITY; layout.param_count()];
    let mut maxs = vec![f32::NEG_INFINITY; layout.param_count()];
    for (low, part_mins, part_maxs) in partial {
        for (k, (lo, hi)) in part_mins.into_iter().zip(part_maxs).enumerate() {
            mins[low + k] = mins[low + k].min(lo);
            maxs[low + k] = maxs[low + k].max(hi);
        }
    }
    (mins, maxs)
}

/// `(min, max)` of finite values, eight lanes at a time.
fn min_max(values: &[f32]) -> (f32, f32) {
    let mut lo = [f32::INFINITY; 8];
    let mut hi = [f32::NEG_INFINITY; 8];
    let chunks = values.chunks_exact(8);
    let tail = chunks.remainder();
    for chunk in chunks {
        for lane in 0..8 {
            let v = chunk[lane];
            lo[lane] = if v < lo[lane] { v } else { lo[lane] };
            hi[lane] = if v > hi[lane] { v } else { hi[lane] };
        }
    }
    let fold = |lanes: [f32; 8], pick: fn(f32, f32) -> f32| lanes.into_iter().fold(lanes[0], pick);
    let (mut low, mut high) = (fold(lo, f32::min), fold(hi, f32::max));
    for &v in tail {
        low = low.min(v);
        high = high.max(v);
    }
    (low, high)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(QuantDtype::Int8.range(QuantMode::Symmetric), (-127, 127));
        assert_eq!(QuantDtype::Int8.range(QuantMode::Affine), (-128, 127));
        assert_eq!(QuantDtype::Uint8.range(QuantMode::Symmetric), (0, 254));
        assert_eq!(QuantDtype::Uint4.range(QuantMode::Affine), (0, 15));
        assert_eq!(QuantDtype::Int4.range(QuantMode::Symmetric), (-7, 7));
    }

    fn ints(q: &Quantized, dtype: QuantDtype) -> Vec<i32> {
        q.values.iter().map(|&b| dtype.integer(b)).collect()
    }

    /// The formula element by element, with the block of each element found from scratch.
    fn reference(
        values: &[f32],
        q: &Quantized,
        dtype: QuantDtype,
        mode: QuantMode,
        shape: &[usize],
        p: Precision,
    ) -> Vec<i32> {
        let layout = BlockLayout::new(shape, &q.param_shape).unwrap();
        let (qmin, qmax) = dtype.range(mode);
        values
            .iter()
            .enumerate()
            .map(|(flat, &w)| {
                let b = layout.param_index(flat);
                let zp = q.zero_points.as_ref().map_or(0, |z| z[b]);
                let r = p.round(w / q.scales[b]).round_ties_even() as i32 + zp;
                r.clamp(qmin, qmax)
            })
            .collect()
    }

    #[test]
    fn every_block_layout_matches_the_elementwise_formula() {
        // Rows of 300 cross the 256-element rounding runs; blocks on the first, last and
        // middle axes, per tensor and per element of the last axis.
        let shape = [3, 40, 300];
        let mut state = 7u32;
        let values: Vec<f32> = (0..3 * 40 * 300)
            .map(|i| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let v = (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
                Precision::F16.round(v * (1.0 + (i % 300) as f32 / 50.0))
            })
            .collect();
        let layouts: [&[usize]; 5] = [&[0, 0, 0], &[1, 0, 0], &[0, 0, 1], &[1, 0, 20], &[0, 8, 0]];
        for block_sizes in layouts {
            for (dtype, mode) in [
                (QuantDtype::Int8, QuantMode::Symmetric),
                (QuantDtype::Uint8, QuantMode::Affine),
                (QuantDtype::Int4, QuantMode::Affine),
            ] {
                for p in [Precision::F16, Precision::F32] {
                    let q = quantize(&values, &shape, block_sizes, dtype, mode, p).unwrap();
                    assert_eq!(
                        ints(&q, dtype),
                        reference(&values, &q, dtype, mode, &shape, p),
                        "{block_sizes:?} {dtype:?} {mode:?} {p:?}"
                    );
                    // The scale of every block covers exactly that block's range.
                    let layout = BlockLayout::new(&shape, &q.param_shape).unwrap();
                    let mut max_abs = vec![0f32; layout.param_count()];
                    for (flat, &w) in values.iter().enumerate() {
                        let b = layout.param_index(flat);
                        max_abs[b] = max_abs[b].max(w.abs());
                    }
                    if mode == QuantMode::Symmetric {
                        let width = (dtype.range(mode).1 - dtype.range(mode).0) as f32;
                        for (b, &r) in max_abs.iter().enumerate() {
                            assert_eq!(q.scales[b], p.round(p.round(2.0 * r) / width));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn symmetric_int8_per_tensor() {
        // R = 2.54, scale = 5.08 / 254 = 0.02; 1.0/0.02 = 50; -2.54 → -127; 0.01 → 0.5 → 0 (even).
        let w = [1.0, -2.54, 0.01, 0.03];
        let q = quantize(
            &w,
            &[2, 2],
            &[0, 0],
            QuantDtype::Int8,
            QuantMode::Symmetric,
            Precision::F32,
        )
        .unwrap();
        assert_eq!(q.param_shape, vec![1, 1]);
        assert!((q.scales[0] - 0.02).abs() < 1e-8);
        assert_eq!(ints(&q, QuantDtype::Int8), vec![50, -127, 0, 2]);
        assert_eq!(q.zero_points, None);
    }

    #[test]
    fn symmetric_uint8_zero_point() {
        // R = 127 → scale = 254/254 = 1; zp = 254 div 2 = 127.
        let w = [127.0, -127.0, 3.0, 0.0];
        let q = quantize(
            &w,
            &[4],
            &[0],
            QuantDtype::Uint8,
            QuantMode::Symmetric,
            Precision::F32,
        )
        .unwrap();
        assert_eq!(q.scales, vec![1.0]);
        assert_eq!(q.zero_points, Some(vec![127]));
        assert_eq!(ints(&q, QuantDtype::Uint8), vec![254, 0, 130, 127]);
    }

    #[test]
    fn affine_uint8_per_channel() {
        // Row 0: lo 0, hi 255 → scale 1, zp = round((0·255 − 255·0)/255) = 0.
        // Row 1: lo −1, hi 2 → scale 3/255; zp = round((0·2 − 255·(−1))/3) = 85.
        let w = [0.0, 255.0, 10.4, -1.0, 2.0, 0.0];
        let q = quantize(
            &w,
            &[2, 3],
            &Granularity::PerChannel { axis: 0 }.block_sizes(2).unwrap(),
            QuantDtype::Uint8,
            QuantMode::Affine,
            Precision::F32,
        )
        .unwrap();
        assert_eq!(q.param_shape, vec![2, 1]);
        assert_eq!(q.scales[0], 1.0);
        assert_eq!(q.scales[1], 3.0f32 / 255.0);
        assert_eq!(q.zero_points, Some(vec![0, 85]));
        assert_eq!(ints(&q, QuantDtype::Uint8), vec![0, 255, 10, 0, 255, 85]);
    }

    #[test]
    fn per_block_int4_scales_shape() {
        // [1, 4] with blocks of 2 on axis 1: blocks {7, -3.5} and {0.7, 0.1}.
        let w = [7.0, -3.5, 0.7, 0.1];
        let sizes = Granularity::PerBlock {
            output_axis: 0,
            input_axis: 1,
            block_size: 2,
        }
        .block_sizes(2)
        .unwrap();
        assert_eq!(sizes, vec![1, 2]);
        let q = quantize(
            &w,
            &[1, 4],
            &sizes,
            QuantDtype::Int4,
            QuantMode::Symmetric,
            Precision::F32,
        )
        .unwrap();
        assert_eq!(q.param_shape, vec![1, 2]);
        assert_eq!(q.scales[0], 1.0);
        assert_eq!(q.scales[1], 1.4f32 / 14.0);
        // -3.5 → -4 (half to even); 0.1 / 0.1 → 1.
        assert_eq!(ints(&q, QuantDtype::Int4), vec![7, -4, 7, 1]);
    }

    #[test]
    fn fp16_arithmetic_rounds_each_step() {
        // R = 1, 2R = 2, scale = f16(2/254) = 0.007873535; 0.5 / scale = 63.50 → f16 63.5 → 64.
        let q = quantize(
            &[1.0, 0.5],
            &[2],
            &[0],
            QuantDtype::Int8,
            QuantMode::Symmetric,
            Precision::F16,
        )
        .unwrap();
        assert_eq!(q.scales[0], 0.007_873_535);
        assert_eq!(ints(&q, QuantDtype::Int8), vec![127, 64]);
        let q32 = quantize(
            &[1.0, 0.5],
            &[2],
            &[0],
            QuantDtype::Int8,
            QuantMode::Symmetric,
            Precision::F32,
        )
        .unwrap();
        assert_eq!(ints(&q32, QuantDtype::Int8), vec![127, 64]);
        assert_ne!(q32.scales[0], q.scales[0]);
    }

    #[test]
    fn all_zero_weight_gets_unit_scale() {
        for mode in [QuantMode::Symmetric, QuantMode::Affine] {
            let q = quantize(
                &[0.0; 4],
                &[4],
                &[0],
                QuantDtype::Int8,
                mode,
                Precision::F16,
            )
            .unwrap();
            assert_eq!(q.scales, vec![1.0]);
            assert_eq!(ints(&q, QuantDtype::Int8), vec![0; 4]);
        }
        let q = quantize(
            &[0.0; 2],
            &[2],
            &[0],
            QuantDtype::Uint8,
            QuantMode::Affine,
            Precision::F32,
        )
        .unwrap();
        assert_eq!(q.zero_points, Some(vec![0]));
    }

    #[test]
    fn non_finite_and_bad_shapes_are_errors() {
        let run = |w: &[f32], shape: &[usize], blocks: &[usize]| {
            quantize(
                w,
                shape,
                blocks,
                QuantDtype::Int8,
                QuantMode::Symmetric,
                Precision::F32,
            )
        };
        assert_eq!(
            run(&[1.0, f32::NAN], &[2], &[0]),
            Err(CompressError::NonFinite)
        );
        assert_eq!(
            run(&[1.0, f32::INFINITY], &[2], &[0]),
            Err(CompressError::NonFinite)
        );
        assert!(run(&[1.0; 6], &[6], &[4]).is_err());
        assert!(run(&[1.0; 6], &[5], &[0]).is_err());
    }
}
