//! Globally optimal 1-D k-means on weighted unique values (exact dynamic programming with the
//! divide-and-conquer optimisation, O(k·n log n) after sorting), as coremltools' vendored
//! `kmeans1d` computes for fp16 weights.

use rayon::prelude::*;

use super::{check_finite, CompressError};

/// Below this many DP cells a divide-and-conquer range is solved on one thread.
const PARALLEL_CUTOFF: usize = 4096;

/// The result of clustering: centroids in ascending order and one label per input element.
#[derive(Debug, Clone, PartialEq)]
pub struct Clustering {
    /// Weighted mean of each cluster, ascending; `min(k, #unique values)` entries.
    pub centroids: Vec<f64>,
    /// For each input element, the index of its cluster in `centroids`.
    pub labels: Vec<u32>,
}

/// Cluster `values` into at most `k` groups minimising the sum of squared distances.
///
/// Equal values are merged first and weighted by their count, so the cost is the same as
/// clustering every element. Ties between equally good partitions pick the earliest split.
pub fn kmeans1d(values: &[f32], k: usize) -> Result<Clustering, CompressError> {
    check_finite(values)?;
    if k == 0 {
        return Err(CompressError::Parameter("k-means needs k ≥ 1".into()));
    }
    let (uniques, counts) = weighted_uniques(values);
    let xs: Vec<f64> = uniques.iter().map(|&v| f64::from(v)).collect();
    let starts = optimal_cluster_starts(&xs, &counts, k);

    let mut centroids = Vec::with_capacity(starts.len());
    let mut cluster_of_unique = vec![0u32; xs.len()];
    for (c, &start) in starts.iter().enumerate() {
        let end = starts.get(c + 1).copied().unwrap_or(xs.len());
        let weight: f64 = counts[start..end].iter().sum();
        let sum: f64 = (start..end).map(|i| xs[i] * counts[i]).sum();
        centroids.push(sum / weight);
        cluster_of_unique[start..end].fill(c as u32);
    }
    let labels = if all_f16(values) {
        // One table entry per fp16 bit pattern: O(1) per element instead of a binary search.
        let mut table = vec![0u32; 1 << 16];
        for (u, &x) in uniques.iter().enumerate() {
            table[f16_key(x)] = cluster_of_unique[u];
        }
        values.par_iter().map(|&v| table[f16_key(v)]).collect()
    } else {
        values
            .par_iter()
            .map(|v| {
                let u = uniques.partition_point(|&x| x < *v);
                cluster_of_unique[u.min(uniques.len() - 1)]
            })
            .collect()
    };
    Ok(Clustering { centroids, labels })
}

/// True when every value is exactly an fp16 value (the usual case: weights of fp16 models).
fn all_f16(values: &[f32]) -> bool {
    values
        .par_iter()
        .all(|&v| half::f16::from_f32(v).to_f32() == v)
}

/// The fp16 bit pattern of an fp16-exact value, with −0 folded into +0.
fn f16_key(v: f32) -> usize {
    let v = if v == 0.0 { 0.0 } else { v };
    usize::from(half::f16::from_f32(v).to_bits())
}

/// The distinct values in ascending order with their counts. fp16-exact inputs are counted in
/// a 65 536-entry histogram (linear time); others are sorted.
fn weighted_uniques(values: &[f32]) -> (Vec<f32>, Vec<f64>) {
    let mut uniques: Vec<f32> = Vec::new();
    let mut counts: Vec<f64> = Vec::new();
    if all_f16(values) {
        let histogram = values
            .par_chunks(1 << 16)
            .fold(
                || vec![0u64; 1 << 16],
                |mut h, chunk| {
                    for &v in chunk {
                        h[f16_key(v)] += 1;
                    }
                    h
                },
            )
            .reduce(
                || vec![0u64; 1 << 16],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                    a
                },
            );
        let mut present: Vec<(f32, u64)> = histogram
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(bits, &c)| (half::f16::from_bits(bits as u16).to_f32(), c))
            .collect();
        present.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        for (v, c) in present {
            uniques.push(v);
            counts.push(c as f64);
        }
        return (uniques, counts);
    }
    let mut sorted = values.to_vec();
    sorted.par_sort_unstable_by(f32::total_cmp);
    for v in sorted {
        match uniques.last() {
            Some(&last) if last == v => {
                if let Some(c) = counts.last_mut() {
                    *c += 1.0;
                }
            }
            _ => {
                uniques.push(v);
                counts.push(1.0);
            }
        }
    }
    (uniques, counts)
}

/// Prefix sums of weights, weighted values and weighted squares (values centred on their mean).
struct Prefix {
    weights: Vec<f64>,
    sums: Vec<f64>,
    squares: Vec<f64>,
}

impl Prefix {
    fn new(xs: &[f64], ws: &[f64]) -> Prefix {
        let total: f64 = ws.iter().sum();
        let mean = xs.iter().zip(ws).map(|(x, w)| x * w).sum::<f64>() / total;
        let mut prefix = Prefix {
            weights: vec![0.0; xs.len() + 1],
            sums: vec![0.0; xs.len() + 1],
            squares: vec![0.0; xs.len() + 1],
        };
        for i in 0..xs.len() {
            let d = xs[i] - mean;
            prefix.weights[i + 1] = prefix.weights[i] + ws[i];
            prefix.sums[i + 1] = prefix.sums[i] + ws[i] * d;
            prefix.squares[i + 1] = prefix.squares[i] + ws[i] * d * d;
        }
        prefix
    }

    /// Within-cluster sum of squares of points `first..=last`.
    fn cost(&self, first: usize, last: usize) -> f64 {
        let w = self.weights[last + 1] - self.weights[first];
        let s = self.sums[last + 1] - self.sums[first];
        let q = self.squares[last + 1] - self.squares[first];
        (q - s * s / w).max(0.0)
    }
}

/// Start index of each cluster in an optimal partition of sorted `xs` into `min(k, n)` runs.
fn optimal_cluster_starts(xs: &[f64], ws: &[f64], k: usize) -> Vec<usize> {
    let n = xs.len();
    if n == 0 {
        return Vec::new();
    }
    let k = k.min(n);
    if k == n {
        return (0..n).collect();
    }
    let prefix = Prefix::new(xs, ws);
    // prev[i]: best cost of points 0..=i in `m` clusters; argmins[m][i]: start of the last one.
    let mut prev: Vec<f64> = (0..n).map(|i| prefix.cost(0, i)).collect();
    let mut argmins: Vec<Vec<u32>> = vec![vec![0; n]];
    for m in 1..k {
        let mut cur = vec![f64::INFINITY; n];
        let mut arg = vec![0u32; n];
        let task = Layer {
            prefix: &prefix,
            prev: &prev,
            first_cluster: m,
        };
        task.solve(m, &mut cur[m..], &mut arg[m..], m, n - 1);
        prev = cur;
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

/// One DP layer: the best cost when the last cluster starts at `j ≥ first_cluster`.
struct Layer<'a> {
    prefix: &'a Prefix,
    prev: &'a [f64],
    first_cluster: usize,
}

impl Layer<'_> {
    /// Fill `cur`/`arg` for points `lo..lo + cur.len()` knowing the argmin lies in
    /// `opt_lo..=opt_hi` (argmins are monotone in the point index).
    fn solve(&self, lo: usize, cur: &mut [f64], arg: &mut [u32], opt_lo: usize, opt_hi: usize) {
        if cur.is_empty() {
            return;
        }
        let mid = cur.len() / 2;
        let i = lo + mid;
        let mut best = f64::INFINITY;
        let mut best_j = opt_lo.max(self.first_cluster);
        for j in opt_lo.max(self.first_cluster)..=opt_hi.min(i) {
            let c = self.prev[j - 1] + self.prefix.cost(j, i);
            if c < best {
                best = c;
                best_j = j;
            }
        }
        cur[mid] = best;
        arg[mid] = best_j as u32;
        let parallel = (opt_hi - opt_lo + 1) * cur.len() > PARALLEL_CUTOFF;
        let (cur_left, cur_rest) = cur.split_at_mut(mid);
        let (arg_left, arg_rest) = arg.split_at_mut(mid);
        let (cur_right, arg_right) = (&mut cur_rest[1..], &mut arg_rest[1..]);
        let mut left = move || self.solve(lo, cur_left, arg_left, opt_lo, best_j);
        let mut right = move || self.solve(i + 1, cur_right, arg_right, best_j, opt_hi);
        if parallel {
            rayon::join(left, right);
        } else {
            left();
            right();
        }
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
    fn rejects_nan_and_zero_k() {
        assert_eq!(kmeans1d(&[f32::NAN], 2), Err(CompressError::NonFinite));
        assert!(kmeans1d(&[1.0], 0).is_err());
    }
}
