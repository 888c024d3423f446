//! Pure numeric kernels for weight compression (linear quantization, palettization, pruning).
//!
//! Nothing here knows about the IR: every function works on flat row-major slices plus a shape
//! and returns plain structs. The formulas follow coremltools 9.0 (`coremltools.optimize.coreml`),
//! including numpy float16 semantics when the weight is fp16 (see [`Precision`]).

pub mod blocks;
pub mod kmeans1d;
pub mod kmeans_vector;
pub mod palettize;
pub mod prune;
pub mod quantize;

use half::f16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

/// Why a weight cannot be compressed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompressError {
    /// The weight holds NaN or ±infinity.
    #[error("weight contains NaN or infinity")]
    NonFinite,
    /// The shape, axis or block size does not fit the weight.
    #[error("{0}")]
    Shape(String),
    /// A parameter is out of its allowed range.
    #[error("{0}")]
    Parameter(String),
}

/// The float type the weight is stored in; fixes how intermediate results are rounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// fp32: every elementwise result is an f32.
    F32,
    /// fp16: every elementwise result is computed in f32 then rounded to f16 (numpy float16).
    F16,
}

impl Precision {
    /// Round an f32 result to this precision (identity for fp32).
    pub fn round(self, x: f32) -> f32 {
        match self {
            Precision::F32 => x,
            Precision::F16 => f16::from_f32(x).to_f32(),
        }
    }

    /// Rounds every element to this precision in place, as [`Precision::round`] does one by
    /// one (fp16 goes through the vector conversion instructions when the CPU has them).
    pub fn round_slice(self, values: &mut [f32]) {
        if self == Precision::F32 {
            return;
        }
        let mut halves = [f16::ZERO; 256];
        for chunk in values.chunks_mut(halves.len()) {
            let halves = &mut halves[..chunk.len()];
            halves.convert_from_f32_slice(chunk);
            halves.convert_to_f32_slice(chunk);
        }
    }
}

/// Rounds half to even like `f32::round_ties_even`, without a libm call (the default build
/// target has no SSE4.1 rounding instruction, so the std method is a function call per value).
#[inline]
pub fn round_half_even(x: f32) -> f32 {
    // Adding and subtracting 1.5·2^23 rounds to an integer in the current (nearest-even) mode;
    // values of magnitude ≥ 2^22 are already integers.
    const MAGIC: f32 = 12_582_912.0;
    if x.abs() < 4_194_304.0 {
        (x + MAGIC) - MAGIC
    } else {
        x
    }
}

/// Fail with [`CompressError::NonFinite`] if any value is NaN or infinite.
pub(crate) fn check_finite<T: prune::Magnitude>(values: &[T]) -> Result<(), CompressError> {
    // A fold without early exit, so the per-chunk test vectorizes.
    if values
        .par_chunks(1 << 16)
        .all(|chunk| chunk.iter().fold(true, |finite, v| finite & v.is_finite()))
    {
        Ok(())
    } else {
        Err(CompressError::NonFinite)
    }
}

/// Fail unless the product of `shape` equals `len`.
pub(crate) fn check_shape(shape: &[usize], len: usize) -> Result<(), CompressError> {
    let count: usize = shape.iter().product();
    if count == len {
        Ok(())
    } else {
        Err(CompressError::Shape(format!(
            "shape {shape:?} holds {count} elements but the weight has {len}"
        )))
    }
}

/// Row-major strides of `shape` (elements, not bytes).
pub fn row_major_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for axis in (0..shape.len().saturating_sub(1)).rev() {
        strides[axis] = strides[axis + 1] * shape[axis + 1];
    }
    strides
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_rounding_matches_half() {
        assert_eq!(Precision::F16.round(1.0 / 3.0), 0.333_251_95);
        assert_eq!(Precision::F32.round(1.0 / 3.0), 1.0 / 3.0);
        assert_eq!(Precision::F16.round(70000.0), f32::INFINITY);
    }

    #[test]
    fn slice_rounding_matches_scalar_rounding() {
        // Normal, subnormal, tie, overflow and signed-zero cases, across chunk boundaries.
        let mut values: Vec<f32> = (0..1000)
            .map(|i| (i as f32 - 500.0) * 1.37e-3 + (i % 7) as f32 * 1e-7)
            .chain([65504.0, 65520.0, 70000.0, 2049.0, -0.0, 3e-8, 6.0e-5])
            .collect();
        let expected: Vec<f32> = values.iter().map(|&v| Precision::F16.round(v)).collect();
        Precision::F16.round_slice(&mut values);
        assert_eq!(values, expected);
    }

    #[test]
    fn half_even_rounding_matches_std() {
        for x in [
            0.5f32, 1.5, 2.5, -0.5, -1.5, -2.49, 2.51, 1e7, -3e6, 4194303.5, 0.0, -0.0,
        ] {
            assert_eq!(round_half_even(x), x.round_ties_even(), "{x}");
        }
        let mut state = 1u32;
        for _ in 0..100_000 {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let x = (state as i32) as f32 / 1000.0;
            assert_eq!(round_half_even(x), x.round_ties_even(), "{x}");
        }
    }

    #[test]
    fn strides_are_row_major() {
        assert_eq!(row_major_strides(&[2, 3, 4]), vec![12, 4, 1]);
        assert_eq!(row_major_strides(&[]), Vec::<usize>::new());
    }
}
