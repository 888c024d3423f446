//! How a small parameter tensor (scales, zero points, LUT groups, per-channel scales) tiles a
//! weight: each weight axis is split into equal blocks, one parameter per block.
//!
//! Kernels walk the weight row by row (rows along the last axis): the parameter index of a
//! row's first element is computed once, then advances every [`BlockLayout::step`] elements.

use super::{row_major_strides, CompressError};

/// Longest row built by merging trailing axes.
const MAX_MERGED_ROW: usize = 1 << 16;

/// A parameter shape laid over a weight shape of the same rank (each parameter dimension
/// divides the weight dimension).
#[derive(Clone, Debug)]
pub struct BlockLayout {
    shape: Vec<usize>,
    block: Vec<usize>,
    element_strides: Vec<usize>,
    param_strides: Vec<usize>,
    param_count: usize,
}

impl BlockLayout {
    /// The layout of `param_shape` over `shape`; fails when a parameter dimension is 0 or does
    /// not divide the weight dimension.
    pub fn new(shape: &[usize], param_shape: &[usize]) -> Result<BlockLayout, CompressError> {
        if shape.len() != param_shape.len()
            || shape
                .iter()
                .zip(param_shape)
                .any(|(&n, &p)| p == 0 || n % p != 0)
        {
            return Err(CompressError::Shape(format!(
                "parameter shape {param_shape:?} does not tile weight shape {shape:?}"
            )));
        }
        // Rows of a few elements (a conv kernel's 3×3) would make per-row work dominate:
        // merge a trailing axis without its own parameters into the axis before it (the
        // blocks of that axis grow by its length) while the row stays short. Flat indices
        // are unchanged by the merge.
        let mut shape = shape.to_vec();
        let mut param_shape = param_shape.to_vec();
        while shape.len() > 1 && param_shape[shape.len() - 1] == 1 {
            let n = shape.len();
            let merged = shape[n - 2] * shape[n - 1];
            if merged > MAX_MERGED_ROW {
                break;
            }
            shape.truncate(n - 1);
            shape[n - 2] = merged;
            param_shape.truncate(n - 1);
        }
        Ok(BlockLayout {
            block: shape
                .iter()
                .zip(&param_shape)
                .map(|(&n, &p)| n / p)
                .collect(),
            element_strides: row_major_strides(&shape),
            param_strides: row_major_strides(&param_shape),
            param_count: param_shape.iter().product(),
            shape,
        })
    }

    /// Number of parameters.
    pub fn param_count(&self) -> usize {
        self.param_count
    }

    /// Elements per row: the last weight dimension, or the product of the last few when the
    /// trailing ones have no parameters of their own (1 for a scalar).
    pub fn row_len(&self) -> usize {
        self.shape.last().copied().unwrap_or(1).max(1)
    }

    /// Elements of a row that share one parameter: the parameter index of element `j` of a row
    /// is `row_base(row) + j / step()` (the whole row shares one when the step is the row
    /// length).
    pub fn step(&self) -> usize {
        self.block.last().copied().unwrap_or(1).max(1)
    }

    /// The parameter index of flat element `flat`.
    pub fn param_index(&self, flat: usize) -> usize {
        let mut index = 0;
        for axis in 0..self.shape.len() {
            let coordinate = (flat / self.element_strides[axis]) % self.shape[axis];
            index += coordinate / self.block[axis] * self.param_strides[axis];
        }
        index
    }

    /// The parameter index of the first element of row `row` (rows of [`Self::row_len`]).
    pub fn row_base(&self, row: usize) -> usize {
        self.param_index(row * self.row_len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_channel_and_per_block_indices() {
        // Weight [4, 6], one parameter per row and per 3 columns: params [4, 2].
        let layout = BlockLayout::new(&[4, 6], &[4, 2]).unwrap();
        assert_eq!(layout.param_count(), 8);
        assert_eq!(layout.step(), 3);
        assert_eq!(layout.param_index(0), 0);
        assert_eq!(layout.param_index(4), 1);
        assert_eq!(layout.param_index(6 * 2 + 5), 5);
        assert_eq!(layout.row_base(3), 6);
        // Channels on the last axis: every element of a row has its own parameter.
        let last = BlockLayout::new(&[3, 5], &[1, 5]).unwrap();
        assert_eq!(
            (last.step(), last.row_base(2), last.param_index(4)),
            (1, 0, 4)
        );
        // A broadcast scale (1 on the middle axis) of a rank-3 weight.
        let middle = BlockLayout::new(&[2, 3, 2], &[2, 1, 2]).unwrap();
        assert_eq!(middle.param_index(2 * 3 * 2 - 1), 3);
        assert_eq!(middle.row_base(4), 2);
        // A conv weight [4, 2, 3, 3] per output channel: one row per channel of 18 elements.
        let conv = BlockLayout::new(&[4, 2, 3, 3], &[4, 1, 1, 1]).unwrap();
        assert_eq!(
            (conv.row_len(), conv.step(), conv.param_count()),
            (72, 18, 4)
        );
        assert_eq!(
            (conv.row_base(0), conv.param_index(37), conv.param_index(70)),
            (0, 2, 3)
        );
        // Per block on the input axis: blocks of 2 input channels × 9 kernel positions.
        let blocks = BlockLayout::new(&[2, 4, 3, 3], &[2, 2, 1, 1]).unwrap();
        assert_eq!((blocks.row_len(), blocks.step()), (36, 18));
        assert_eq!((blocks.row_base(1), blocks.param_index(36 + 20)), (2, 3));
    }

    #[test]
    fn rejects_non_dividing_parameters() {
        assert!(BlockLayout::new(&[4, 6], &[4, 4]).is_err());
        assert!(BlockLayout::new(&[4, 6], &[4]).is_err());
        assert!(BlockLayout::new(&[4, 6], &[0, 1]).is_err());
    }
}
