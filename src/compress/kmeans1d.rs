//! Globally optimal 1-D k-means on weighted unique values, as coremltools' vendored `kmeans1d`
//! computes for fp16 weights: exact dynamic programming over the sorted distinct values, each
//! layer solved in linear time with SMAWK (O(k·n) after counting the values).

use std::cell::Cell;

use rayon::prelude::*;

use super::{check_finite, CompressError};

mod binned;

/// The most clusters a clustering can have (labels are bytes: palettes hold at most 256 entries).
pub const MAX_CLUSTERS: usize = 256;
/// Inputs at least this long are counted and labelled in parallel.
const PARALLEL_LEN: usize = 1 << 18;
/// Number of fp16 bit patterns (the size of a histogram over fp16 values).
const F16_PATTERNS: usize = 1 << 16;
/// Inputs at least this long that are not all fp16 values are clustered from a histogram
/// (see [`binned`]); shorter ones exactly, after sorting them.
const BINNED_LEN: usize = 1 << 18;

/// The result of clustering: centroids in ascending order and one label per input element.
#[derive(Debug, Clone, PartialEq)]
pub struct Clustering {
    /// Mean of each cluster, ascending; `min(k, #unique values)` entries (the histogram path
    /// for long fp32 inputs may return fewer if a cluster empties while it refines them).
    pub centroids: Vec<f64>,
    /// For each input element, the index of its cluster in `centroids`.
    pub labels: Vec<u8>,
}

/// Cluster `values` into at most `k ≤ 256` groups minimising the sum of squared distances.
///
/// Equal values are merged first and weighted by their count, so the cost is the same as
/// clustering every element. Ties between equally good partitions pick the earliest split.
/// Exact for fp16 values and for fewer than [`BINNED_LEN`] others; longer fp32 inputs go
/// through a histogram and Lloyd refinement ([`binned`]), optimal up to the bin width.
pub fn kmeans1d(values: &[f32], k: usize) -> Result<Clustering, CompressError> {
    if k == 0 || k > MAX_CLUSTERS {
        return Err(CompressError::Parameter(format!(
            "k-means needs 1 ≤ k ≤ {MAX_CLUSTERS}, not {k}"
        )));
    }
    if values.is_empty() {
        return Ok(Clustering {
            centroids: Vec::new(),
            labels: Vec::new(),
        });
    }
    match f16_histogram(values) {
        Some(histogram) => Ok(cluster_f16(values, histogram, k)),
        None if values.len() >= BINNED_LEN => match binned::cluster_binned(values, k)? {
            Some(clustering) => Ok(clustering),
            None => cluster_sorted(values, k),
        },
        None => cluster_sorted(values, k),
    }
}

/// An order-preserving 16-bit key of `v` when it is exactly an fp16 value (−0 folds into +0):
/// keys compare like the values. `None` for values fp16 cannot hold exactly (and NaN, ±∞).
#[inline(always)]
fn f16_order_key(v: f32) -> Option<u16> {
    let bits = v.to_bits();
    let magnitude = bits & 0x7fff_ffff;
    let exponent = (magnitude >> 23) as i32 - 127;
    let fraction = magnitude & 0x7f_ffff;
    let half = if magnitude == 0 {
        0
    } else if (-14..=15).contains(&exponent) {
        // Normal fp16: the 13 low fraction bits must be zero.
        if fraction & 0x1fff != 0 {
            return None;
        }
        (((exponent + 15) as u32) << 10) | (fraction >> 13)
    } else if (-24..-14).contains(&exponent) {
        // Subnormal fp16: value = m·2^-24 with the bits shifted out all zero.
        let full = fraction | 0x80_0000;
        let shift = (-1 - exponent) as u32;
        if full & ((1 << shift) - 1) != 0 {
            return None;
        }
        full >> shift
    } else {
        return None;
    };
    // Negative values (not −0) map below 0x8000 in reverse order, positive ones above.
    Some(if bits >> 31 == 1 && magnitude != 0 {
        !(half as u16 | 0x8000)
    } else {
        half as u16 | 0x8000
    })
}

/// The fp16 value of an order key.
fn key_value(key: u16) -> f64 {
    let bits = if key & 0x8000 != 0 {
        key & 0x7fff
    } else {
        !key
    };
    f64::from(half::f16::from_bits(bits).to_f32())
}

thread_local! {
    /// A zeroed 65 536-entry buffer reused across calls on the same thread (taken while in use,
    /// so a nested call on the same thread simply allocates its own).
    static SCRATCH: Cell<Vec<u32>> = const { Cell::new(Vec::new()) };
}

/// A zeroed histogram over fp16 order keys, reusing this thread's scratch buffer if free.
fn zeroed_table() -> Vec<u32> {
    let table = SCRATCH.with(Cell::take);
    if table.len() == F16_PATTERNS {
        table
    } else {
        vec![0; F16_PATTERNS]
    }
}

/// Counts of each fp16 order key with the lowest and highest key present, or `None` if some
/// value is not exactly an fp16 value.
struct Histogram {
    counts: Vec<u32>,
    lowest: usize,
    highest: usize,
}

/// Count `values` by fp16 order key in one pass (in parallel for long inputs).
fn f16_histogram(values: &[f32]) -> Option<Histogram> {
    /// Add `chunk` to `counts`; false when a value is not fp16-exact.
    fn count(chunk: &[f32], counts: &mut [u32], range: &mut (usize, usize)) -> bool {
        for &v in chunk {
            let Some(key) = f16_order_key(v) else {
                return false;
            };
            let key = usize::from(key);
            counts[key] += 1;
            range.0 = range.0.min(key);
            range.1 = range.1.max(key);
        }
        true
    }
    if values.len() < PARALLEL_LEN {
        let mut counts = zeroed_table();
        let mut range = (usize::MAX, 0);
        if !count(values, &mut counts, &mut range) {
            counts.fill(0);
            SCRATCH.with(|s| s.set(counts));
            return None;
        }
        return Some(Histogram {
            counts,
            lowest: range.0,
            highest: range.1,
        });
    }
    // Integer counts add up the same in any order, so the split does not matter.
    let merged = values
        .par_chunks(PARALLEL_LEN)
        .map(|chunk| {
            let mut counts = vec![0u32; F16_PATTERNS];
            let mut range = (usize::MAX, 0);
            count(chunk, &mut counts, &mut range).then_some((counts, range))
        })
        .reduce(
            || Some((vec![0; F16_PATTERNS], (usize::MAX, 0))),
            |a, b| {
                let ((mut counts, a_range), (other, b_range)) = (a?, b?);
                counts.iter_mut().zip(&other).for_each(|(x, y)| *x += y);
                Some((counts, (a_range.0.min(b_range.0), a_range.1.max(b_range.1))))
            },
        )?;
    let (counts, (lowest, highest)) = merged;
    Some(Histogram {
        counts,
        lowest,
        highest,
    })
}

/// Cluster fp16-exact `values` from their histogram; labels come from a key → cluster table.
fn cluster_f16(values: &[f32], histogram: Histogram, k: usize) -> Clustering {
    let Histogram {
        mut counts,
        lowest,
        highest,
    } = histogram;
    let mut keys = Vec::new();
    let mut weights = Vec::new();
    for (key, count) in counts.iter().enumerate().take(highest + 1).skip(lowest) {
        if *count > 0 {
            keys.push(key);
            weights.push(f64::from(*count));
        }
    }
    let xs: Vec<f64> = keys.iter().map(|&key| key_value(key as u16)).collect();
    let (centroids, cluster_of_unique) = clusters_from_starts(&xs, &weights, k);
    // Reuse the histogram as the key → cluster table (only present keys are ever looked up).
    for (&key, &c) in keys.iter().zip(&cluster_of_unique) {
        counts[key] = u32::from(c);
    }
    let label = |&v: &f32| f16_order_key(v).map_or(0, |key| counts[usize::from(key)] as u8);
    let labels = if values.len() < PARALLEL_LEN {
        values.iter().map(label).collect()
    } else {
        values.par_iter().with_min_len(1 << 14).map(label).collect()
    };
    for &key in &keys {
        counts[key] = 0;
    }
    if values.len() < PARALLEL_LEN {
        SCRATCH.with(|s| s.set(counts));
    }
    Clustering { centroids, labels }
}

/// Cluster arbitrary finite values: sort to find the distinct ones, binary-search the labels.
fn cluster_sorted(values: &[f32], k: usize) -> Result<Clustering, CompressError> {
    check_finite(values)?;
    // Short inputs (a group of a grouped palette, itself clustered in parallel with the other
    // groups) are sorted and labelled on this thread.
    let parallel = values.len() >= PARALLEL_LEN;
    let mut sorted: Vec<f32> = values.iter().map(|&v| v + 0.0).collect();
    if parallel {
        sorted.par_sort_unstable_by(f32::total_cmp);
    } else {
        sorted.sort_unstable_by(f32::total_cmp);
    }
    let mut uniques: Vec<f32> = Vec::new();
    let mut weights: Vec<f64> = Vec::new();
    for v in sorted {
        match (uniques.last(), weights.last_mut()) {
            (Some(&last), Some(w)) if last == v => *w += 1.0,
            _ => {
                uniques.push(v);
                weights.push(1.0);
            }
        }
    }
    let xs: Vec<f64> = uniques.iter().map(|&v| f64::from(v)).collect();
    let (centroids, cluster_of_unique) = clusters_from_starts(&xs, &weights, k);
    let label = |v: &f32| {
        let u = uniques.partition_point(|&x| x < *v);
        cluster_of_unique[u.min(uniques.len() - 1)]
    };
    let labels = if parallel {
        values.par_iter().with_min_len(1 << 14).map(label).collect()
    } else {
        values.iter().map(label).collect()
    };
    Ok(Clustering { centroids, labels })
}

/// The optimal clustering of sorted distinct `xs` weighted by `ws`: the centroids and the
/// cluster of each distinct value.
fn clusters_from_starts(xs: &[f64], ws: &[f64], k: usize) -> (Vec<f64>, Vec<u8>) {
    let total: f64 = ws.iter().sum();
    let mean = xs.iter().zip(ws).map(|(x, w)| x * w).sum::<f64>() / total;
    let points: Vec<Moments> = xs
        .iter()
        .zip(ws)
        .map(|(&x, &w)| Moments::of(x - mean, w))
        .collect();
    let starts = optimal_cluster_starts(&points, k);
    let mut centroids = Vec::with_capacity(starts.len());
    let mut cluster_of_unique = vec![0u8; xs.len()];
    for (c, &start) in starts.iter().enumerate() {
        let end = starts.get(c + 1).copied().unwrap_or(xs.len());
        let weight: f64 = ws[start..end].iter().sum();
        let sum: f64 = (start..end).map(|i| xs[i] * ws[i]).sum();
        centroids.push(sum / weight);
        cluster_of_unique[start..end].fill(c as u8);
    }
    (centroids, cluster_of_unique)
}

/// The weight, weighted sum and weighted sum of squares of some values, measured from a
/// centre shared by every point of one clustering (so that sums of squares stay well
/// conditioned).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Moments {
    /// Total weight (number of values).
    pub w: f64,
    /// Weighted sum of the values minus the centre.
    pub s: f64,
    /// Weighted sum of the squares of the values minus the centre.
    pub q: f64,
}

impl Moments {
    /// The moments of value `d` (minus the centre) with weight `w`.
    pub fn of(d: f64, w: f64) -> Moments {
        Moments {
            w,
            s: w * d,
            q: w * d * d,
        }
    }

    /// Add one value `d` (minus the centre) of weight 1.
    #[inline(always)]
    pub fn push(&mut self, d: f64) {
        self.w += 1.0;
        self.s += d;
        self.q += d * d;
    }

    /// Add the moments of other values.
    #[inline(always)]
    pub fn merge(&mut self, other: &Moments) {
        self.w += other.w;
        self.s += other.s;
        self.q += other.q;
    }
}

/// Everything one DP evaluation reads at a boundary `j` (0..=n), in one cache line: prefix
/// sums over points `0..j` of their [`Moments`], and the best cost of points `0..j` in the
/// previous layer's clusters.
struct Prefix {
    lanes: Vec<[f64; 4]>,
}

impl Prefix {
    /// The prefix sums of `points`, with one cluster as the previous layer.
    fn new(points: &[Moments]) -> Prefix {
        let mut lanes = vec![[0.0; 4]; points.len() + 1];
        for (i, p) in points.iter().enumerate() {
            let [w, s, q, _] = lanes[i];
            lanes[i + 1] = [w + p.w, s + p.s, q + p.q, 0.0];
        }
        let mut prefix = Prefix { lanes };
        for i in 0..points.len() {
            prefix.lanes[i + 1][3] = prefix.cost(0, i);
        }
        prefix
    }

    /// Within-cluster sum of squares of points `first..=last`.
    #[inline(always)]
    fn cost(&self, first: usize, last: usize) -> f64 {
        let [w0, s0, q0, _] = self.lanes[first];
        let [w1, s1, q1, _] = self.lanes[last + 1];
        let (w, s, q) = (w1 - w0, s1 - s0, q1 - q0);
        (q - s * s / w).max(0.0)
    }

    /// The best cost of points `0..=last` whose last cluster starts at `first` ≥ 1.
    #[inline(always)]
    fn value(&self, first: usize, last: usize) -> f64 {
        self.lanes[first][3] + self.cost(first, last)
    }

    /// The best cost of points `0..=i` in the previous layer (the DP row just computed).
    fn set_previous(&mut self, best: &[f64]) {
        for (lane, &b) in self.lanes[1..].iter_mut().zip(best) {
            lane[3] = b;
        }
    }
}

/// Start index of each cluster in an optimal partition of `points` (in ascending order of
/// value, each a value or a run of values given by its moments) into `min(k, n)` runs.
pub(super) fn optimal_cluster_starts(points: &[Moments], k: usize) -> Vec<usize> {
    let n = points.len();
    if n == 0 {
        return Vec::new();
    }
    let k = k.min(n);
    if k == n {
        return (0..n).collect();
    }
    let mut prefix = Prefix::new(points);
    // argmins[m][i]: start of the last of m + 1 clusters over points 0..=i.
    let mut argmins: Vec<Vec<u32>> = vec![vec![0; n]];
    let mut scratch = Smawk::default();
    let mut cur = vec![0f64; n];
    for m in 1..k {
        // Row i (points 0..=i, i ≥ m) picks the start j ∈ m..=i of its last cluster; the last
        // layer only needs its final row.
        let first_row = if m + 1 == k { n - 1 } else { m };
        let rows: Vec<u32> = (first_row as u32..n as u32).collect();
        let cols: Vec<u32> = (m as u32..n as u32).collect();
        let value = |i: usize, j: usize| {
            if j > i {
                f64::INFINITY
            } else {
                prefix.value(j, i)
            }
        };
        let mut arg = vec![0u32; n];
        scratch.solve(&rows, &cols, &value, &mut arg);
        for (i, c) in cur.iter_mut().enumerate() {
            *c = if i < first_row {
                f64::INFINITY
            } else {
                value(i, arg[i] as usize)
            };
        }
        prefix.set_previous(&cur);
        argmins.push(arg);
    }
    let mut starts = vec![0; k];
    let mut end = n - 1;
    for m in (1..k).rev() {
        let start = argmins[m][end] as usize;
        starts[m] = start;
        end = start - 1;
    }
    starts
}

/// SMAWK row minima of a totally monotone matrix, with buffers reused across calls.
#[derive(Default)]
struct Smawk {
    /// Per recursion level: the surviving columns, the value of each at the row it would
    /// serve, and the odd rows.
    levels: Vec<Level>,
}

/// The buffers of one SMAWK recursion level.
#[derive(Default)]
struct Level {
    kept: Vec<u32>,
    kept_values: Vec<f64>,
    odd: Vec<u32>,
}

impl Smawk {
    /// For each row `r` of `rows`, store in `argmin[r]` the leftmost column of `cols` minimising
    /// `value(r, c)`. Rows and columns ascend; minima positions must not decrease with the row.
    fn solve(
        &mut self,
        rows: &[u32],
        cols: &[u32],
        value: &impl Fn(usize, usize) -> f64,
        argmin: &mut [u32],
    ) {
        self.level(0, rows, cols, value, argmin);
    }

    fn level(
        &mut self,
        depth: usize,
        rows: &[u32],
        cols: &[u32],
        value: &impl Fn(usize, usize) -> f64,
        argmin: &mut [u32],
    ) {
        if rows.is_empty() {
            return;
        }
        if self.levels.len() <= depth {
            self.levels.push(Level::default());
        }
        let Level {
            mut kept,
            mut kept_values,
            mut odd,
        } = std::mem::take(&mut self.levels[depth]);
        // REDUCE: keep at most one column per row; a column beaten (strictly) by a later one at
        // the row it would serve can be no row's leftmost minimum. The kept column at position
        // p serves row p; its value there is computed once, when it is pushed.
        kept.clear();
        kept_values.clear();
        if cols.len() <= rows.len() {
            // Nothing to reduce: every column may serve a row.
            kept.extend_from_slice(cols);
        }
        for &c in cols.iter().filter(|_| cols.len() > rows.len()) {
            while let Some(&top_value) = kept_values.last() {
                let r = rows[kept.len() - 1] as usize;
                if value(r, c as usize) < top_value {
                    kept.pop();
                    kept_values.pop();
                } else {
                    break;
                }
            }
            if kept.len() < rows.len() {
                kept_values.push(value(rows[kept.len()] as usize, c as usize));
                kept.push(c);
            }
        }
        odd.clear();
        odd.extend(rows.iter().skip(1).step_by(2));
        self.level(depth + 1, &odd, &kept, value, argmin);
        // INTERPOLATE: each even row searches between its neighbours' minima.
        let mut start = 0;
        for t in (0..rows.len()).step_by(2) {
            let r = rows[t] as usize;
            let stop = match rows.get(t + 1) {
                Some(&next) => argmin[next as usize],
                None => kept[kept.len() - 1],
            };
            let mut best = start;
            let mut best_value = value(r, kept[start] as usize);
            let mut p = start + 1;
            while p < kept.len() && kept[p] <= stop {
                let v = value(r, kept[p] as usize);
                if v < best_value {
                    best = p;
                    best_value = v;
                }
                p += 1;
            }
            argmin[r] = kept[best];
            start = p - 1;
        }
        self.levels[depth] = Level {
            kept,
            kept_values,
            odd,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(values: &[f32], clustering: &Clustering) -> f64 {
        values
            .iter()
            .zip(&clustering.labels)
            .map(|(&v, &l)| (f64::from(v) - clustering.centroids[l as usize]).powi(2))
            .sum()
    }

    /// Best cost over every assignment of labels 0..k (exhaustive, tiny inputs only).
    fn brute_force(values: &[f32], k: usize) -> f64 {
        let n = values.len();
        let mut best = f64::INFINITY;
        let mut labels = vec![0usize; n];
        loop {
            let mut total = 0.0;
            for c in 0..k {
                let members: Vec<f64> = (0..n)
                    .filter(|&i| labels[i] == c)
                    .map(|i| f64::from(values[i]))
                    .collect();
                if !members.is_empty() {
                    let mean = members.iter().sum::<f64>() / members.len() as f64;
                    total += members.iter().map(|x| (x - mean).powi(2)).sum::<f64>();
                }
            }
            best = best.min(total);
            let mut pos = 0;
            while pos < n && labels[pos] == k - 1 {
                labels[pos] = 0;
                pos += 1;
            }
            if pos == n {
                return best;
            }
            labels[pos] += 1;
        }
    }

    #[test]
    fn matches_brute_force_on_random_inputs() {
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) % 8) as f32 * 0.5
        };
        for trial in 0..60 {
            let n = 2 + trial % 6;
            let k = 1 + trial % 4;
            let values: Vec<f32> = (0..n).map(|_| next()).collect();
            let result = kmeans1d(&values, k).unwrap();
            let expected = brute_force(&values, k);
            assert!(
                (cost(&values, &result) - expected).abs() < 1e-9,
                "{values:?} k={k}: {} vs {expected}",
                cost(&values, &result)
            );
            assert!(result.centroids.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn hand_computed_two_clusters() {
        // {0, 1} and {10, 11, 12}: centroids 0.5 and 11.
        let r = kmeans1d(&[11.0, 0.0, 12.0, 1.0, 10.0], 2).unwrap();
        assert_eq!(r.centroids, vec![0.5, 11.0]);
        assert_eq!(r.labels, vec![1, 0, 1, 0, 1]);
    }

    #[test]
    fn k_at_least_unique_count_keeps_every_value() {
        let r = kmeans1d(&[3.0, 1.0, 3.0, 2.0], 8).unwrap();
        assert_eq!(r.centroids, vec![1.0, 2.0, 3.0]);
        assert_eq!(r.labels, vec![2, 0, 2, 1]);
    }

    #[test]
    fn counts_weight_the_centroids() {
        // Nine 0s and one 10 with k = 1 → mean 1; with k = 2 each value alone.
        let mut v = vec![0.0f32; 9];
        v.push(10.0);
        assert_eq!(kmeans1d(&v, 1).unwrap().centroids, vec![1.0]);
        // Ties: {0,1,2} into 2 clusters costs 0.5 either way; the earliest split wins.
        let r = kmeans1d(&[0.0, 1.0, 2.0], 2).unwrap();
        assert_eq!(r.centroids, vec![0.0, 1.5]);
    }

    #[test]
    fn large_input_is_consistent() {
        // 4096 distinct values, k = 16: every cluster is a contiguous run of 256 values.
        let v: Vec<f32> = (0..4096).map(|i| i as f32).collect();
        let r = kmeans1d(&v, 16).unwrap();
        assert_eq!(r.centroids.len(), 16);
        assert_eq!(r.centroids[0], 127.5);
        assert_eq!(r.labels[4095], 15);
    }

    #[test]
    fn every_finite_f16_into_256_clusters() {
        // The largest case coremltools sends: all 63 488 finite fp16 values, k = 256.
        let v: Vec<f32> = (0..=u16::MAX)
            .map(|bits| half::f16::from_bits(bits).to_f32())
            .filter(|x| x.is_finite())
            .collect();
        let r = kmeans1d(&v, 256).unwrap();
        assert_eq!(r.centroids.len(), 256);
        assert!(r.centroids.windows(2).all(|w| w[0] < w[1]));
        let most_negative = v.iter().position(|&x| x == -65504.0).unwrap();
        let most_positive = v.iter().position(|&x| x == 65504.0).unwrap();
        assert_eq!(r.labels[most_negative], 0);
        assert_eq!(r.labels[most_positive], 255);
    }

    #[test]
    fn rejects_nan_and_bad_k() {
        assert_eq!(kmeans1d(&[f32::NAN], 2), Err(CompressError::NonFinite));
        assert_eq!(
            kmeans1d(&[1.0, f32::INFINITY], 2),
            Err(CompressError::NonFinite)
        );
        assert!(kmeans1d(&[1.0], 0).is_err());
        assert!(kmeans1d(&[1.0], 257).is_err());
    }

    #[test]
    fn order_keys_match_f16_conversion() {
        // Every fp16 value round-trips through its key, and keys sort like the values.
        let mut previous: Option<(u16, f32)> = None;
        let mut finite: Vec<f32> = (0..=u16::MAX)
            .map(|bits| half::f16::from_bits(bits).to_f32())
            .filter(|x| x.is_finite())
            .collect();
        finite.sort_by(f32::total_cmp);
        for &x in &finite {
            let key = f16_order_key(x).unwrap();
            assert_eq!(key_value(key), f64::from(x + 0.0), "{x}");
            if let Some((k, v)) = previous {
                assert!(key > k || (v == x), "{v} {x}");
            }
            previous = Some((key, x));
        }
        assert_eq!(f16_order_key(-0.0), f16_order_key(0.0));
        // f32 values between fp16 values, and out of range, have no key.
        let mut state = 99u32;
        for _ in 0..200_000 {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let x = f32::from_bits(state);
            let exact = x.is_finite() && half::f16::from_f32(x).to_f32() == x;
            assert_eq!(f16_order_key(x).is_some(), exact, "{x:e}");
        }
        for x in [f32::NAN, f32::INFINITY, 65520.0, 1e-8, 2.0f32.powi(-25)] {
            assert_eq!(f16_order_key(x), None, "{x:e}");
        }
        assert!(f16_order_key(2.0f32.powi(-24)).is_some());
    }

    /// Plain O(k·n²) dynamic programme: the optimal cost of sorted weighted values.
    fn quadratic_dp(xs: &[f64], ws: &[f64], k: usize) -> f64 {
        let n = xs.len();
        let cost = |a: usize, b: usize| {
            let w: f64 = ws[a..=b].iter().sum();
            let mean = (a..=b).map(|i| xs[i] * ws[i]).sum::<f64>() / w;
            (a..=b).map(|i| ws[i] * (xs[i] - mean).powi(2)).sum::<f64>()
        };
        let mut best: Vec<f64> = (0..n).map(|i| cost(0, i)).collect();
        for _ in 1..k.min(n) {
            best = (0..n)
                .map(|i| {
                    (1..=i)
                        .map(|j| best[j - 1] + cost(j, i))
                        .fold(best[i], f64::min)
                })
                .collect();
        }
        best[n - 1]
    }

    #[test]
    fn matches_quadratic_dp_on_weighted_inputs() {
        let mut state = 777u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            state >> 33
        };
        for trial in 0..40 {
            let n = 20 + trial * 3;
            let k = 2 + trial % 9;
            // fp16-exact values (histogram path) and their thirds (sorted path).
            let base: Vec<f32> = (0..n)
                .map(|_| half::f16::from_f32((next() % 2000) as f32 / 64.0 - 15.0).to_f32())
                .collect();
            for values in [base.clone(), base.iter().map(|v| v / 3.0).collect()] {
                let r = kmeans1d(&values, k).unwrap();
                let mut sorted = values.clone();
                sorted.sort_by(f32::total_cmp);
                let (mut xs, mut ws) = (Vec::new(), Vec::new());
                for v in sorted {
                    if xs.last() == Some(&f64::from(v)) {
                        *ws.last_mut().unwrap() += 1.0;
                    } else {
                        xs.push(f64::from(v));
                        ws.push(1.0);
                    }
                }
                let expected = quadratic_dp(&xs, &ws, k);
                let got = cost(&values, &r);
                assert!(
                    (got - expected).abs() <= 1e-9 * expected.max(1.0),
                    "trial {trial}: {got} vs {expected}"
                );
            }
        }
    }

    #[test]
    fn same_result_for_any_thread_count() {
        // Long enough for the parallel histogram and labelling.
        let mut state = 5u64;
        let values: Vec<f32> = (0..PARALLEL_LEN * 3 + 17)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                half::f16::from_f32(((state >> 40) as f32 / 16_777_216.0 - 0.5) * 0.1).to_f32()
            })
            .collect();
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| kmeans1d(&values, 16).unwrap())
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one.centroids.len(), 16);
    }
}
