//! Pruning masks (docs/format.md §8). A mask holds `true` for every element that is kept.

use super::{check_finite, check_shape, row_major_strides, CompressError};
use half::f16;
use rayon::prelude::*;

/// A weight element the pruning rules can rank: fp32 values, or fp16 values straight from the
/// stored weight (so pruning an fp16 weight needs no widened copy). Magnitudes of finite
/// values order like integer keys: the bit pattern without the sign.
pub trait Magnitude: Copy + Send + Sync {
    /// Bits in a key.
    const KEY_BITS: u32;
    /// A key ordering like `|v|` for finite `v` (equal magnitudes, equal keys).
    fn key(self) -> u32;
    /// `|v|` (exact in f32 for both element types).
    fn magnitude(self) -> f32;
    /// Whether `v` is neither infinite nor NaN.
    fn is_finite(self) -> bool;
    /// The magnitude whose key is `key`.
    fn from_key(key: u32) -> f32;
    /// `x` rounded to this element type, as numpy rounds each arithmetic result on an array
    /// of it.
    fn narrow(x: f64) -> f64;
}

impl Magnitude for f32 {
    const KEY_BITS: u32 = 31;
    fn key(self) -> u32 {
        self.to_bits() & 0x7fff_ffff
    }
    fn magnitude(self) -> f32 {
        self.abs()
    }
    fn is_finite(self) -> bool {
        f32::is_finite(self)
    }
    fn from_key(key: u32) -> f32 {
        f32::from_bits(key)
    }
    fn narrow(x: f64) -> f64 {
        f64::from(x as f32)
    }
}

impl Magnitude for f16 {
    const KEY_BITS: u32 = 15;
    fn key(self) -> u32 {
        u32::from(self.to_bits() & 0x7fff)
    }
    fn magnitude(self) -> f32 {
        self.to_f32().abs()
    }
    fn is_finite(self) -> bool {
        f16::is_finite(self)
    }
    fn from_key(key: u32) -> f32 {
        f16::from_bits(key as u16).to_f32()
    }
    fn narrow(x: f64) -> f64 {
        f16::from_f64(x).to_f64()
    }
}

/// numpy `percentile(values, q)` with the default linear method (`values` unsorted, non-empty).
pub fn percentile(values: &[f64], q: f64) -> f64 {
    // Two order statistics by selection (linear time), not a full sort.
    let mut work = values.to_vec();
    let (below, t) = percentile_position(work.len(), q);
    let (_, &mut a, rest) = work.select_nth_unstable_by(below, f64::total_cmp);
    let b = rest.iter().copied().min_by(f64::total_cmp).unwrap_or(a);
    numpy_lerp(a, b, t)
}

/// The lower order statistic's rank and the interpolation weight of `q`% among `len` values.
fn percentile_position(len: usize, q: f64) -> (usize, f64) {
    let position = (len - 1) as f64 * (q / 100.0);
    let below = position.floor() as usize;
    (below, position - below as f64)
}

/// numpy's `_lerp`: interpolates from the nearer end.
fn numpy_lerp(a: f64, b: f64, t: f64) -> f64 {
    lerp_rounded(a, b, t, |x| x)
}

/// numpy's `_lerp` on two order statistics of an array of `T`: `np.percentile` with a Python
/// float `q` keeps the array's dtype, so the weight and every intermediate are rounded to `T`
/// (for fp16 weights the cut can then land on a stored value, which is pruned with it).
fn numpy_lerp_in<T: Magnitude>(a: f64, b: f64, t: f64) -> f64 {
    lerp_rounded(a, b, t, T::narrow)
}

/// `_lerp` with `round` applied where numpy rounds to the array's dtype.
fn lerp_rounded(a: f64, b: f64, t: f64, round: impl Fn(f64) -> f64) -> f64 {
    let span = round(b - a);
    if t >= 0.5 {
        round(b - round(span * round(1.0 - t)))
    } else {
        round(a + round(span * round(t)))
    }
}

/// The keys of the `ranks`-th smallest (from 0) of `|values|`, by radix selection on the
/// magnitude keys, without copying the values. The first pass counts the top 18 key bits
/// (all of an fp16 key); a second pass over the low bits only runs for values that have any.
fn kth_keys<T: Magnitude, const N: usize>(values: &[T], ranks: [usize; N]) -> [u32; N] {
    let low_bits = T::KEY_BITS.saturating_sub(18);
    let low_mask = (1u32 << low_bits) - 1;
    let (high, low_bits_seen) = histogram(values, 1 << (T::KEY_BITS - low_bits), |v| {
        let k = v.key();
        (Some((k >> low_bits) as usize), k & low_mask)
    });
    ranks.map(|rank| {
        let (bucket, rank) = locate(&high, rank);
        if low_bits_seen == 0 {
            return bucket << low_bits;
        }
        let (low, _) = histogram(values, 1 << low_bits, |v| {
            let k = v.key();
            let digit = (k >> low_bits == bucket).then_some((k & low_mask) as usize);
            (digit, 0)
        });
        bucket << low_bits | locate(&low, rank).0
    })
}

/// A test for `|v| > limit` (`limit` finite) as a key comparison: the first key whose
/// magnitude exceeds `limit`, found by bisection over the ordered keys.
fn exceeds<T: Magnitude>(limit: f64) -> impl Fn(T) -> bool + Sync {
    let (mut first, mut end) = (0u32, 1u32 << T::KEY_BITS);
    while first < end {
        let mid = first + (end - first) / 2;
        if f64::from(T::from_key(mid)) <= limit {
            first = mid + 1;
        } else {
            end = mid;
        }
    }
    move |v: T| v.key() >= first
}

/// Counts of the digits (below `bins`) `digit` gives the values, skipping `None`, plus the OR
/// of the flags it returns; in parallel over fixed chunks.
fn histogram<T: Magnitude>(
    values: &[T],
    bins: usize,
    digit: impl Fn(T) -> (Option<usize>, u32) + Sync,
) -> (Vec<u32>, u32) {
    // Four interleaved tables: neighbouring values often share a bucket, and one table would
    // make each increment wait for the previous one.
    const WAYS: usize = 4;
    values
        .par_chunks(1 << 20)
        .map(|chunk| {
            let mut counts = zeroed_counts(WAYS * bins);
            let mut flags = 0;
            let ways = chunk.chunks_exact(WAYS);
            let rest = ways.remainder();
            for group in ways {
                for (way, &v) in group.iter().enumerate() {
                    let (d, flag) = digit(v);
                    flags |= flag;
                    if let Some(d) = d {
                        counts[way * bins + d] += 1;
                    }
                }
            }
            for &v in rest {
                let (d, flag) = digit(v);
                flags |= flag;
                if let Some(d) = d {
                    counts[d] += 1;
                }
            }
            let (first, others) = counts.split_at_mut(bins);
            for other in others.chunks_exact(bins) {
                first.iter_mut().zip(other).for_each(|(x, y)| *x += y);
            }
            counts.truncate(bins);
            (counts, flags)
        })
        .reduce(
            || (zeroed_counts(bins), 0),
            |(mut a, fa), (b, fb)| {
                a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                (a, fa | fb)
            },
        )
}

/// `bins` zero counts, written rather than allocated zeroed: a calloc'd block maps the
/// shared zero page, and every first increment would then pay a copy-on-write fault with a
/// TLB flush on the other threads.
#[allow(clippy::slow_vector_initialization)] // the point: no calloc'd zero-page mapping
fn zeroed_counts(bins: usize) -> Vec<u32> {
    let mut counts = Vec::with_capacity(bins);
    counts.resize(bins, 0);
    counts
}

/// The bucket of a histogram holding the `rank`-th smallest value, and the rank within it.
fn locate(counts: &[u32], mut rank: usize) -> (u32, usize) {
    for (bucket, &count) in counts.iter().enumerate() {
        let count = count as usize;
        if rank < count {
            return (bucket as u32, rank);
        }
        rank -= count;
    }
    (counts.len() as u32 - 1, 0)
}

/// `keep(v)` for every value, in parallel.
fn mask_where<T: Magnitude>(values: &[T], keep: impl Fn(T) -> bool + Sync) -> Vec<bool> {
    let mut mask = vec![false; values.len()];
    mask.par_chunks_mut(1 << 16)
        .zip(values.par_chunks(1 << 16))
        .for_each(|(mask, values)| {
            for (m, &v) in mask.iter_mut().zip(values) {
                *m = keep(v);
            }
        });
    mask
}

/// Keep elements with `|w| > threshold` (coremltools `OpThresholdPrunerConfig`).
pub fn threshold_mask<T: Magnitude>(values: &[T], threshold: f32) -> Vec<bool> {
    mask_where(values, exceeds(f64::from(threshold)))
}

/// Unstructured magnitude pruning to `target_sparsity` in [0, 1]: zero every `|w|` at or
/// below the numpy percentile of `|w|`; a sparsity of 1 zeroes everything.
pub fn magnitude_mask<T: Magnitude>(
    values: &[T],
    target_sparsity: f64,
) -> Result<Vec<bool>, CompressError> {
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
    let (below, t) = percentile_position(values.len(), q);
    let [a, b] = kth_keys(values, [below, (below + 1).min(values.len() - 1)])
        .map(|key| f64::from(T::from_key(key)));
    Ok(mask_where(values, exceeds(numpy_lerp_in::<T>(a, b, t))))
}

/// For a full run of `M` magnitudes, whether each one survives n:m pruning: an element goes
/// when fewer than `n` others come before it in (|w|, index) order. Unrolled for fixed `M`.
fn keep_largest<const M: usize>(run: [u32; M], n: usize) -> [bool; M] {
    let mut keep = [false; M];
    for i in 0..M {
        let mut before = 0;
        for (j, &other) in run.iter().enumerate() {
            // Ties count for the lower index; `j < i` is known once the loop is unrolled.
            let ahead = if j < i {
                other <= run[i]
            } else {
                other < run[i]
            };
            before += usize::from(ahead);
        }
        keep[i] = before >= n;
    }
    keep
}

/// Runs up to this length are ranked by comparisons instead of sorting.
const SHORT_RUN: usize = 16;

/// n:m structured pruning: along `axis`, in each run of `m` consecutive elements (the axis
/// zero-padded to a multiple of `m`), zero the `n` smallest `|w|` (ties: lower index first).
pub fn n_m_mask<T: Magnitude>(
    values: &[T],
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
    // Each slice of the weight at one index of the axes before `axis` holds whole lines.
    mask.par_chunks_mut(len * stride)
        .zip(values.par_chunks(len * stride))
        .for_each(|(mask, values)| {
            let mut run: Vec<(u32, usize)> = Vec::with_capacity(m);
            let mut magnitudes = [0u32; SHORT_RUN];
            for position in 0..stride {
                for run_start in (0..len).step_by(m) {
                    let at = |i: usize| position + (run_start + i) * stride;
                    // Padding entries (index ≥ len) have magnitude 0 and count towards the n
                    // zeroed.
                    let real = m.min(len - run_start);
                    if m == 4 && real == 4 {
                        let run = [0, 1, 2, 3].map(|i| values[at(i)].key());
                        for (i, keep) in keep_largest(run, n).into_iter().enumerate() {
                            mask[at(i)] = keep;
                        }
                        continue;
                    }
                    if m <= SHORT_RUN {
                        // An element goes when fewer than n others come before it in
                        // (|w|, index) order: m² comparisons, cheaper than sorting.
                        let run = &mut magnitudes[..m];
                        for (i, slot) in run.iter_mut().enumerate() {
                            *slot = if i < real { values[at(i)].key() } else { 0 };
                        }
                        for (i, &own) in run.iter().enumerate().take(real) {
                            let before: usize = run
                                .iter()
                                .enumerate()
                                .map(|(j, &other)| {
                                    usize::from(other < own || (other == own && j < i))
                                })
                                .sum();
                            mask[at(i)] = before >= n;
                        }
                        continue;
                    }
                    run.clear();
                    run.extend((0..m).map(|i| {
                        let magnitude = if i < real { values[at(i)].key() } else { 0 };
                        (magnitude, i)
                    }));
                    run.sort_unstable();
                    for &(_, i) in run.iter().take(n).filter(|&&(_, i)| i < real) {
                        mask[at(i)] = false;
                    }
                }
            }
        });
    Ok(mask)
}

/// Block sparsity: along `axis`, blocks of `block_size` consecutive channels (the axis
/// zero-padded to a multiple of it) at each other position are kept or zeroed together by the
/// magnitude rule applied to their L2 norms (each norm counted once per padded channel).
pub fn block_mask<T: Magnitude>(
    values: &[T],
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
        let v = f64::from(v.magnitude());
        squares[block_of(flat)] += v * v;
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
    fn fp16_cut_is_rounded_like_numpy() {
        // np.percentile(np.float16([0, 1, 1.0 + 1.0 / 1024.0, 3]), 60) is float16(1.001), the third
        // value itself (exact arithmetic gives 1.00078125), so numpy prunes three, not two.
        let stored = [0.0, 1.0, 1.0 + 1.0 / 1024.0, 3.0].map(f16::from_f32);
        let mask = magnitude_mask(&stored, 0.6).unwrap();
        assert_eq!(mask, vec![false, false, false, true]);
        let wide = [0.0f32, 1.0, 1.0 + 1.0 / 1024.0, 3.0];
        assert_eq!(
            magnitude_mask(&wide, 0.6).unwrap(),
            [false, false, true, true]
        );
    }

    #[test]
    fn radix_selection_matches_sorting() {
        let mut state = 3u32;
        let values: Vec<f32> = (0..200_003)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                // Many repeats (a coarse grid) plus zeros of both signs.
                ((state >> 20) as f32 - 2048.0) / 64.0 * if state & 1 == 0 { -1.0 } else { 1.0 }
            })
            .chain([0.0, -0.0, 1e-30])
            .collect();
        let mut sorted: Vec<f32> = values.iter().map(|v| v.abs()).collect();
        sorted.sort_by(f32::total_cmp);
        for rank in [0, 1, 2, 1000, 100_001, 150_000, values.len() - 1] {
            assert_eq!(
                kth_keys(&values, [rank]).map(f32::from_key),
                [sorted[rank]],
                "rank {rank}"
            );
            let halves: Vec<f32> = values
                .iter()
                .map(|&v| half::f16::from_f32(v).to_f32())
                .collect();
            let mut sorted_halves: Vec<f32> = halves.iter().map(|v| v.abs()).collect();
            sorted_halves.sort_by(f32::total_cmp);
            assert_eq!(
                kth_keys(&halves, [rank]).map(f32::from_key),
                [sorted_halves[rank]],
                "fp16 rank {rank}"
            );
            let stored: Vec<f16> = halves.iter().map(|&v| f16::from_f32(v)).collect();
            assert_eq!(
                kth_keys(&stored, [rank]).map(f16::from_key),
                [sorted_halves[rank]],
                "stored fp16 rank {rank}"
            );
        }
        for sparsity in [0.0, 0.3, 0.5, 0.75, 0.999] {
            let magnitudes: Vec<f64> = values.iter().map(|v| f64::from(v.abs())).collect();
            let cut = percentile(&magnitudes, sparsity * 100.0);
            let expected: Vec<bool> = magnitudes.iter().map(|&m| m > cut).collect();
            assert_eq!(
                magnitude_mask(&values, sparsity).unwrap(),
                expected,
                "{sparsity}"
            );
        }
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
        // Long runs (sorted) and short runs (counted) agree: 10 of 20 vs 1 of 2 on pairs.
        let w: Vec<f32> = (0..40).map(|i| ((i * 7919) % 41) as f32 - 20.0).collect();
        let long = n_m_mask(&w, &[2, 20], 1, 10, 20).unwrap();
        assert_eq!(long.iter().filter(|&&k| !k).count(), 20);
        for row in 0..2 {
            let kept: Vec<f32> = (0..20)
                .filter(|&i| long[row * 20 + i])
                .map(|i| w[row * 20 + i].abs())
                .collect();
            let dropped: Vec<f32> = (0..20)
                .filter(|&i| !long[row * 20 + i])
                .map(|i| w[row * 20 + i].abs())
                .collect();
            assert!(dropped.iter().all(|d| kept.iter().all(|k| d <= k)));
        }
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

    #[test]
    fn fp16_values_prune_like_their_widened_copies() {
        let mut state = 11u32;
        let halves: Vec<f16> = (0..6 * 40)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                // A coarse grid: many equal magnitudes, zeros of both signs.
                let v = ((state >> 26) as f32 - 32.0) / 8.0;
                f16::from_f32(if state & 1 == 0 { v } else { -v })
            })
            .collect();
        let widened: Vec<f32> = halves.iter().map(|h| h.to_f32()).collect();
        let shape = [6, 40];
        for (n, m) in [(2, 4), (3, 8), (10, 20)] {
            for axis in [0, 1] {
                assert_eq!(
                    n_m_mask(&halves, &shape, axis, n, m).unwrap(),
                    n_m_mask(&widened, &shape, axis, n, m).unwrap(),
                    "{n}:{m} along {axis}"
                );
            }
        }
        for sparsity in [0.0, 0.25, 0.5, 0.9, 1.0] {
            assert_eq!(
                magnitude_mask(&halves, sparsity).unwrap(),
                magnitude_mask(&widened, sparsity).unwrap(),
                "{sparsity}"
            );
            assert_eq!(
                block_mask(&halves, &shape, 1, 4, sparsity).unwrap(),
                block_mask(&widened, &shape, 1, 4, sparsity).unwrap(),
                "blocks {sparsity}"
            );
        }
        assert_eq!(threshold_mask(&halves, 1.5), threshold_mask(&widened, 1.5));
        let mut bad = halves.clone();
        bad[17] = f16::INFINITY;
        assert!(n_m_mask(&bad, &shape, 1, 2, 4).is_err());
        bad[17] = f16::NAN;
        assert!(magnitude_mask(&bad, 0.5).is_err());
    }
}
