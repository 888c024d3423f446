//! Linear quantization parameters and values (coremltools `compute_qparams_by_dtype` +
//! `quantize_weight_by_dtype`, format-facts §6.3).

use rayon::prelude::*;

use super::{
    check_finite, check_shape, round_half_even, row_major_strides, CompressError, Precision,
};

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
    /// Quantized values in the weight's shape, within the dtype's range.
    pub values: Vec<i32>,
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
    let block_of = block_index_fn(shape, block_sizes, &param_shape);
    let block_count: usize = param_shape.iter().product();

    // Rows along the last axis: the block index is computed once per row and then advances
    // every `last_block` elements (or never, when the last axis is not split).
    let row_len = shape.last().copied().unwrap_or(1).max(1);
    let last_block = block_sizes.last().copied().unwrap_or(0);
    let block_in_row = move |row_base: usize, j: usize| match last_block {
        0 => row_base,
        b => row_base + j / b,
    };
    let mut mins = vec![f32::INFINITY; block_count];
    let mut maxs = vec![f32::NEG_INFINITY; block_count];
    for (row, chunk) in values.chunks(row_len).enumerate() {
        let base = block_of(row * row_len);
        for (j, &v) in chunk.iter().enumerate() {
            let b = block_in_row(base, j);
            mins[b] = mins[b].min(v);
            maxs[b] = maxs[b].max(v);
        }
    }

    let (qmin, qmax) = dtype.range(mode);
    let p = precision;
    let mut scales = Vec::with_capacity(block_count);
    let mut zero_points = Vec::with_capacity(block_count);
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

    let quantized: Vec<i32> = values
        .par_chunks(row_len)
        .enumerate()
        .flat_map_iter(|(row, chunk)| {
            let base = block_of(row * row_len);
            let (scales, zero_points) = (&scales, &zero_points);
            chunk.iter().enumerate().map(move |(j, &v)| {
                let b = block_in_row(base, j);
                let q = round_half_even(p.round(v / scales[b])) + zero_points[b] as f32;
                q.clamp(qmin as f32, qmax as f32) as i32
            })
        })
        .collect();
    drop(block_of);

    let has_zero_point = !(mode == QuantMode::Symmetric && dtype.signed());
    Ok(Quantized {
        values: quantized,
        scales,
        zero_points: has_zero_point.then_some(zero_points),
        param_shape,
    })
}

/// A function from a flat element index to its flat block index in `param_shape`.
fn block_index_fn<'a>(
    shape: &'a [usize],
    block_sizes: &'a [usize],
    param_shape: &'a [usize],
) -> impl Fn(usize) -> usize + Sync + 'a {
    let element_strides = row_major_strides(shape);
    let block_strides = row_major_strides(param_shape);
    move |flat| {
        let mut block = 0;
        for axis in 0..shape.len() {
            let index = (flat / element_strides[axis]) % shape[axis];
            if let Some(block_index) = index.checked_div(block_sizes[axis]) {
                block += block_index * block_strides[axis];
            }
        }
        block
    }
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
        assert_eq!(q.values, vec![50, -127, 0, 2]);
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
        assert_eq!(q.values, vec![254, 0, 130, 127]);
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
        assert_eq!(q.values, vec![0, 255, 10, 0, 255, 85]);
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
        assert_eq!(q.values, vec![7, -4, 7, 1]);
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
        assert_eq!(q.values, vec![127, 64]);
        let q32 = quantize(
            &[1.0, 0.5],
            &[2],
            &[0],
            QuantDtype::Int8,
            QuantMode::Symmetric,
            Precision::F32,
        )
        .unwrap();
        assert_eq!(q32.values, vec![127, 64]);
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
            assert_eq!(q.values, vec![0; 4]);
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
