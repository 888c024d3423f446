//! Pruning masks (format-facts §6.5). A mask holds `true` for every element that is kept.

use super::{check_finite, check_shape, row_major_strides, CompressError};

/// numpy `percentile(values, q)` with the default linear method (`values` unsorted, non-empty).
pub fn percentile(values: &[f64], q: f64) -> f64 {
    // Two order statistics by selection (linear time), not a full sort.
    let mut work = values.to_vec();
    let position = (work.len() - 1) as f64 * (q / 100.0);
    let below = position.floor() as usize;
    let (_, &mut a, rest) = work.select_nth_unstable_by(below, f64::total_cmp);
    let b = rest.iter().copied().min_by(f64::total_cmp).unwrap_or(a);
    let t = position - below as f64;
    // numpy's _lerp: interpolate from the nearer end.
    if t >= 0.5 {
        b - (b - a) * (1.0 - t)
    } else {
        a + (b - a) * t
    }
}

/// Keep elements with `|w| > threshold` (coremltools `OpThresholdPrunerConfig`).
pub fn threshold_mask(values: &[f32], threshold: f32) -> Vec<bool> {
    values.iter().map(|v| v.abs() > threshold).collect()
}

/// Unstructured magnitude pruning to `target_sparsity` in [0, 1]: zero every `|w|` at or
/// below the numpy percentile of `|w|`; a sparsity of 1 zeroes everything.
pub fn magnitude_mask(values: &[f32], target_sparsity: f64) -> Result<Vec<bool>, CompressError> {
    check_finite(values)?;
    if !(0.0..=1.0).contains(&target_sparsity) {
        return Err(CompressError::Parameter(format!(
            "target sparsity {target_sparsity} is outside [0, 1]"
        )));
    }
    let q = target_sparsity * 100.0;
    if q == 100.0 || values.is_empty() {
        return Ok(vec![false; values.len()]);
    }
    let magnitudes: Vec<f64> = values.iter().map(|v| f64::from(v.abs())).collect();
    let cut = percentile(&magnitudes, q);
    Ok(magnitudes.iter().map(|&m| m > cut).collect())
}

/// n:m structured pruning: along `axis`, in each run of `m` consecutive elements (the axis
/// zero-padded to a multiple of `m`), zero the `n` smallest `|w|` (ties: lower index first).
pub fn n_m_mask(
    values: &[f32],
    shape: &[usize],
    axis: usize,
    n: usize,
    m: usize,
) -> Result<Vec<bool>, CompressError> {
    check_shape(shape, values.len())?;
    check_finite(values)?;
    if axis >= shape.len() {
        return Err(CompressError::Shape(format!(
            "axis {axis} is out of range for a rank-{} weight",
            shape.len()
        )));
    }
    if m == 0 || n > m {
        return Err(CompressError::Parameter(format!(
            "n:m ratio {n}:{m} needs 0 < m and n ≤ m"
        )));
    }
    let stride = row_major_strides(shape)[axis];
    let len = shape[axis];
    let mut mask = vec![true; values.len()];
    for line_start in (0..values.len()).filter(|&f| (f / stride) % len == 0) {
        for run_start in (0..len).step_by(m) {
            // Padding entries (index ≥ len) have magnitude 0 and count towards the n zeroed.
            let mut run: Vec<(f32, usize)> = (run_start..run_start + m)
                .map(|i| {
                    let magnitude = if i < len {
                        values[line_start + i * stride].abs()
                    } else {
                        0.0
                    };
                    (magnitude, i)
                })
                .collect();
            run.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for &(_, i) in run.iter().take(n).filter(|(_, i)| *i < len) {
                mask[line_start + i * stride] = false;
            }
        }
    }
    Ok(mask)
}

/// Block sparsity: along `axis`, blocks of `block_size` consecutive channels (the axis
/// zero-padded to a multiple of it) at each other position are kept or zeroed together by the
/// magnitude rule applied to their L2 norms (each norm counted once per padded channel).
pub fn block_mask(
    values: &[f32],
    shape: &[usize],
    axis: usize,
    block_size: usize,
    target_sparsity: f64,
) -> Result<Vec<bool>, CompressError> {
    check_shape(shape, values.len())?;
    check_finite(values)?;
    let Some(&channels) = shape.get(axis) else {
        return Err(CompressError::Shape(format!(
            "axis {axis} is out of range for a rank-{} weight",
            shape.len()
        )));
    };
    if block_size < 2 || block_size > channels / 2 {
        return Err(CompressError::Parameter(format!(
            "block size {block_size} must be in 2..={} for {channels} channels",
            channels / 2
        )));
    }
    if !(0.0..=1.0).contains(&target_sparsity) {
        return Err(CompressError::Parameter(format!(
            "target sparsity {target_sparsity} is outside [0, 1]"
        )));
    }
    if target_sparsity == 1.0 {
        return Ok(vec![false; values.len()]);
    }
    let stride = row_major_strides(shape)[axis];
    let blocks = channels.div_ceil(block_size);
    let rest = values.len() / channels;
    // Block (b, position) where position enumerates the other axes in row-major order.
    let block_of = |flat: usize| {
        let c = (flat / stride) % channels;
        let position = (flat / (stride * channels)) * stride + flat % stride;
        (c / block_size) * rest + position
    };
    let mut squares = vec![0.0f64; blocks * rest];
    for (flat, &v) in values.iter().enumerate() {
        squares[block_of(flat)] += f64::from(v) * f64::from(v);
    }
    let norms: Vec<f64> = squares.iter().map(|s| s.sqrt()).collect();
    let broadcast: Vec<f64> = norms
        .iter()
        .flat_map(|&n| std::iter::repeat_n(n, block_size))
        .collect();
    let cut = percentile(&broadcast, target_sparsity * 100.0);
    Ok((0..values.len())
        .map(|f| norms[block_of(f)] > cut)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_numpy() {
        // np.percentile([1, 2, 3, 4], 50) = 2.5; 25 → 1.75; 100 → 4.
        assert_eq!(percentile(&[4.0, 1.0, 3.0, 2.0], 50.0), 2.5);
        assert_eq!(percentile(&[4.0, 1.0, 3.0, 2.0], 25.0), 1.75);
        assert_eq!(percentile(&[4.0, 1.0, 3.0, 2.0], 100.0), 4.0);
        assert_eq!(percentile(&[4.0, 1.0, 3.0, 2.0], 0.0), 1.0);
    }

    #[test]
    fn magnitude_half() {
        // |w| = [1, 2, 3, 4] → percentile 50 = 2.5 → keep 3 and -4.
        let mask = magnitude_mask(&[1.0, -2.0, 3.0, -4.0], 0.5).unwrap();
        assert_eq!(mask, vec![false, false, true, true]);
        // Ties: [1, 1, 1, 2] at 50% → cut 1 → three zeros.
        let mask = magnitude_mask(&[1.0, 1.0, 1.0, 2.0], 0.5).unwrap();
        assert_eq!(mask, vec![false, false, false, true]);
        assert_eq!(magnitude_mask(&[1.0, 2.0], 1.0).unwrap(), vec![false; 2]);
        assert!(magnitude_mask(&[1.0], 1.5).is_err());
        assert!(magnitude_mask(&[f32::NAN], 0.5).is_err());
    }

    #[test]
    fn threshold_keeps_strictly_larger() {
        assert_eq!(
            threshold_mask(&[0.5, -0.1, 0.1, 0.0], 0.1),
            vec![true, false, false, false]
        );
    }

    #[test]
    fn two_of_four_along_input_axis() {
        // Row 0: |.| = 1 4 2 3 → zero 1 and 2. Row 1: 5 0 -6 1 → zero 0 and 1.
        let w = [1.0, -4.0, 2.0, 3.0, 5.0, 0.0, -6.0, 1.0];
        let mask = n_m_mask(&w, &[2, 4], 1, 2, 4).unwrap();
        assert_eq!(
            mask,
            vec![false, true, false, true, true, false, true, false]
        );
    }

    #[test]
    fn n_m_padding_and_other_axis() {
        // Along axis 0 of [3, 1]: one run of 4 with one padding zero; 2:4 zeroes the pad and
        // the smallest real value.
        let mask = n_m_mask(&[3.0, -1.0, 2.0], &[3, 1], 0, 2, 4).unwrap();
        assert_eq!(mask, vec![true, false, true]);
        assert!(n_m_mask(&[1.0; 4], &[4], 1, 1, 2).is_err());
        assert!(n_m_mask(&[1.0; 4], &[4], 0, 3, 2).is_err());
    }

    #[test]
    fn block_pairs_by_norm() {
        // [4, 2] along axis 0 in blocks of 2: column 0 norms |(3,4)| = 5 and |(1,0)| = 1,
        // column 1 norms |(0,1)| = 1 and |(6,8)| = 10. Broadcast [5,5,1,1,1,1,10,10]: the
        // 50th percentile is 3, so the two norm-1 blocks go.
        let w = [3.0, 0.0, 4.0, 1.0, 1.0, 6.0, 0.0, 8.0];
        let mask = block_mask(&w, &[4, 2], 0, 2, 0.5).unwrap();
        assert_eq!(
            mask,
            vec![true, false, true, false, false, true, false, true]
        );
        assert!(block_mask(&w, &[4, 2], 0, 3, 0.5).is_err());
    }
}
