//! 1-D k-means of many arbitrary (fp32) values in time linear in their number: the values are
//! counted into at most [`MAX_BINS`] bins holding their exact moments, the exact dynamic
//! programme runs over the bins, then Lloyd passes over the real values move the cluster
//! boundaries off the bin edges (reading only the values of the bins around the boundaries,
//! gathered once). Each step keeps or lowers the sum of squared errors, so the result is at
//! least as good as the best partition whose boundaries fall on bin edges.
//!
//! Deterministic for any thread count: the values are cut into chunks whose length depends on
//! their number only, floating-point sums are merged in chunk order, and the gathered values
//! are sorted before they are summed.

use rayon::prelude::*;

use super::{optimal_cluster_starts, Clustering, Moments};
use crate::compress::CompressError;

/// The most bins a histogram has: the dynamic programme over the bins is most of the cost (a
/// quarter of 2^16 bins' on bert_base), and the Lloyd passes recover what coarser bins lose.
const MAX_BINS: usize = 1 << 14;
/// Values are cut into about this many chunks (fewer for short inputs)…
const CHUNKS: usize = 32;
/// …of at least this many values each.
const MIN_CHUNK: usize = 1 << 16;
/// Lloyd passes after the dynamic programme, at most (they stop as soon as no value changes
/// cluster; each reads only the values of the bins near the thresholds, see [`NearValues`]).
const MAX_LLOYD_PASSES: usize = 8;
/// A bin-table entry for bins whose values fall in more than one cluster.
const SPLIT: u16 = u16::MAX;
/// When a Lloyd pass splits a bin whose values are not held, the values of the bins this close
/// to it (either side) are gathered too, so that later passes, whose thresholds move a little,
/// need not read the input again.
const WINDOW: usize = 4;

/// Summary of the values: finite, their range, mean and root mean square.
struct Stats {
    lowest: f32,
    highest: f32,
    mean: f64,
    rms: f64,
}

/// One pass over the values for [`Stats`]; `NonFinite` if any is NaN or ±∞.
fn stats(chunks: &[&[f32]]) -> Result<Stats, CompressError> {
    let partial: Vec<Option<(f32, f32, f64, f64)>> = chunks
        .par_iter()
        .map(|chunk| {
            let (mut lo, mut hi, mut sum, mut squares) =
                (f32::INFINITY, f32::NEG_INFINITY, 0.0, 0.0);
            for &v in *chunk {
                lo = lo.min(v);
                hi = hi.max(v);
                let d = f64::from(v);
                sum += d;
                squares += d * d;
            }
            // A NaN or ±∞ makes the sum of squares NaN or +∞ (finite f32 squares cannot
            // overflow an f64).
            squares.is_finite().then_some((lo, hi, sum, squares))
        })
        .collect();
    let (mut lowest, mut highest, mut sum, mut squares) =
        (f32::INFINITY, f32::NEG_INFINITY, 0.0, 0.0);
    let mut count = 0usize;
    for (chunk, part) in chunks.iter().zip(partial) {
        let (lo, hi, s, q) = part.ok_or(CompressError::NonFinite)?;
        lowest = lowest.min(lo);
        highest = highest.max(hi);
        sum += s;
        squares += q;
        count += chunk.len();
    }
    let n = count as f64;
    Ok(Stats {
        lowest,
        highest,
        mean: sum / n,
        rms: (squares / n).sqrt(),
    })
}

/// A monotone map from values to bins: linear in the value near zero (within about the root
/// mean square `scale`), logarithmic beyond it, so that long tails do not leave the bulk of
/// the values in a handful of bins. Built from the fp32 bit pattern of `|v| + scale`, whose
/// integer order is the value order.
struct Grid {
    scale: f32,
    scale_bits: i64,
    lowest_key: i64,
    shift: u32,
    bins: usize,
}

impl Grid {
    /// The finest grid over `stats.lowest..=stats.highest` with at most [`MAX_BINS`] bins.
    fn new(stats: &Stats) -> Grid {
        // A zero scale (all values 0) still gives a monotone key: the value's own bits.
        let scale = stats.rms as f32;
        let mut grid = Grid {
            scale,
            scale_bits: i64::from(scale.to_bits()),
            lowest_key: 0,
            shift: 0,
            bins: 1,
        };
        let lowest_key = grid.key(stats.lowest);
        let span = (grid.key(stats.highest) - lowest_key) as u64;
        let mut shift = 0;
        while (span >> shift) as usize >= MAX_BINS {
            shift += 1;
        }
        grid.lowest_key = lowest_key;
        grid.shift = shift;
        grid.bins = (span >> shift) as usize + 1;
        grid
    }

    /// An integer that never decreases as `v` increases.
    #[inline(always)]
    fn key(&self, v: f32) -> i64 {
        let magnitude = i64::from((v.abs() + self.scale).to_bits()) - self.scale_bits;
        if v < 0.0 {
            -magnitude
        } else {
            magnitude
        }
    }

    /// The bin of `v` (values in `lowest..=highest` only).
    #[inline(always)]
    fn bin(&self, v: f32) -> usize {
        ((self.key(v) - self.lowest_key) >> self.shift) as usize
    }
}

/// The values of one bin: their moments from the mean of all values, smallest and largest.
#[derive(Clone, Copy)]
struct Bin {
    moments: Moments,
    lowest: f32,
    highest: f32,
}

impl Bin {
    /// A bin holding no value.
    const EMPTY: Bin = Bin {
        moments: Moments {
            w: 0.0,
            s: 0.0,
            q: 0.0,
        },
        lowest: f32::INFINITY,
        highest: f32::NEG_INFINITY,
    };

    /// Add the values of `other`.
    fn merge(&mut self, other: &Bin) {
        self.moments.merge(&other.moments);
        self.lowest = self.lowest.min(other.lowest);
        self.highest = self.highest.max(other.highest);
    }
}

/// The histogram of all values: per chunk in parallel, merged in chunk order.
fn histogram(chunks: &[&[f32]], grid: &Grid, centre: f64) -> Vec<Bin> {
    let mut total = vec![Bin::EMPTY; grid.bins];
    // At most one table per thread is alive; merging in chunk order keeps sums reproducible.
    for batch in chunks.chunks(rayon::current_num_threads().max(1)) {
        let tables: Vec<Vec<Bin>> = batch
            .par_iter()
            .map(|chunk| {
                let mut bins = vec![Bin::EMPTY; grid.bins];
                for &v in *chunk {
                    let bin = &mut bins[grid.bin(v)];
                    bin.moments.push(f64::from(v) - centre);
                    bin.lowest = bin.lowest.min(v);
                    bin.highest = bin.highest.max(v);
                }
                bins
            })
            .collect();
        for table in tables {
            total.iter_mut().zip(&table).for_each(|(t, b)| t.merge(b));
        }
    }
    total
}

/// Clusters separated by thresholds: a value `v` belongs to the number of thresholds below it.
struct Assignment {
    thresholds: Vec<f64>,
    /// Per bin: its cluster when all its values share one, else [`SPLIT`].
    bin_cluster: Vec<u16>,
}

impl Assignment {
    /// Thresholds halfway between consecutive `centroids` (ascending).
    fn nearest(centroids: &[f64], bins: &[Bin]) -> Assignment {
        let thresholds: Vec<f64> = centroids.windows(2).map(|w| 0.5 * (w[0] + w[1])).collect();
        let cluster = |v: f32| thresholds.partition_point(|&t| t < f64::from(v));
        let bin_cluster = bins
            .iter()
            .map(|bin| {
                if bin.moments.w == 0.0 {
                    return 0;
                }
                let (lo, hi) = (cluster(bin.lowest), cluster(bin.highest));
                if lo == hi {
                    lo as u16
                } else {
                    SPLIT
                }
            })
            .collect();
        Assignment {
            thresholds,
            bin_cluster,
        }
    }

    /// The cluster of `v`.
    #[inline(always)]
    fn cluster(&self, grid: &Grid, v: f32) -> u8 {
        match self.bin_cluster[grid.bin(v)] {
            SPLIT => self.thresholds.partition_point(|&t| t < f64::from(v)) as u8,
            c => c as u8,
        }
    }

    /// The moments of each cluster: bins not held from the histogram (each wholly in one
    /// cluster: every split bin is held), the held values one by one.
    fn moments(&self, bins: &[Bin], near: &NearValues, centre: f64) -> Vec<Moments> {
        let mut clusters = vec![Moments::default(); self.thresholds.len() + 1];
        for ((bin, &c), &held) in bins.iter().zip(&self.bin_cluster).zip(&near.held) {
            if !held && bin.moments.w > 0.0 {
                clusters[usize::from(c)].merge(&bin.moments);
            }
        }
        // Held values ascend, so their cluster only grows.
        let mut c = 0;
        for &v in &near.values {
            let v = f64::from(v);
            while c < self.thresholds.len() && self.thresholds[c] < v {
                c += 1;
            }
            clusters[c].push(v - centre);
        }
        clusters
    }

    /// Whether some bin this assignment splits is not held in `near`.
    fn needs_values(&self, near: &NearValues) -> bool {
        self.bin_cluster
            .iter()
            .zip(&near.held)
            .any(|(&c, &held)| c == SPLIT && !held)
    }

    /// The bins held in `near`, plus those within [`WINDOW`] of a bin this assignment splits.
    fn wanted_bins(&self, near: &NearValues) -> Vec<bool> {
        let mut wanted = near.held.clone();
        let last = wanted.len() - 1;
        for (b, &c) in self.bin_cluster.iter().enumerate() {
            if c == SPLIT {
                wanted[b.saturating_sub(WINDOW)..=(b + WINDOW).min(last)].fill(true);
            }
        }
        wanted
    }
}

/// The values of some bins, ascending: what the Lloyd passes read instead of the whole input,
/// as long as every bin their thresholds split is held.
struct NearValues {
    /// Per bin: whether its values are in `values`.
    held: Vec<bool>,
    values: Vec<f32>,
}

impl NearValues {
    /// Hold the values of the bins marked in `wanted`: one pass over `chunks`. Sorting makes
    /// the order (and so every later sum) independent of the chunking.
    fn gather(chunks: &[&[f32]], grid: &Grid, wanted: Vec<bool>) -> NearValues {
        let parts: Vec<Vec<f32>> = chunks
            .par_iter()
            .map(|chunk| {
                chunk
                    .iter()
                    .copied()
                    .filter(|&v| wanted[grid.bin(v)])
                    .collect()
            })
            .collect();
        let mut values = parts.concat();
        values.sort_unstable_by(f32::total_cmp);
        NearValues {
            held: wanted,
            values,
        }
    }
}

/// Cluster finite `values` (`NonFinite` otherwise) into at most `k` groups. `None`
/// when the histogram cannot separate them: fewer occupied bins than `k` while some bin holds
/// different values (the exact path must decide those).
pub(super) fn cluster_binned(
    values: &[f32],
    k: usize,
) -> Result<Option<Clustering>, CompressError> {
    let chunk_len = values.len().div_ceil(CHUNKS).max(MIN_CHUNK);
    let chunks: Vec<&[f32]> = values.chunks(chunk_len).collect();
    let stats = stats(&chunks)?;
    let grid = Grid::new(&stats);
    let centre = stats.mean;
    let bins = histogram(&chunks, &grid, centre);
    let occupied: Vec<usize> = (0..bins.len())
        .filter(|&b| bins[b].moments.w > 0.0)
        .collect();
    if occupied.len() <= k && occupied.iter().any(|&b| bins[b].lowest < bins[b].highest) {
        return Ok(None);
    }
    let points: Vec<Moments> = occupied.iter().map(|&b| bins[b].moments).collect();
    let starts = optimal_cluster_starts(&points, k);
    let mut weights = Vec::with_capacity(starts.len());
    let mut centroids = Vec::with_capacity(starts.len());
    for (c, &start) in starts.iter().enumerate() {
        let end = starts.get(c + 1).copied().unwrap_or(points.len());
        let mut sum = Moments::default();
        points[start..end].iter().for_each(|p| sum.merge(p));
        weights.push(sum.w);
        centroids.push(centre + sum.s / sum.w);
    }
    // Lloyd: give each value to its nearest centroid, then move each centroid to the mean of
    // its values, until no value moves (clusters are runs of the sorted values, so equal
    // sizes mean equal clusters). The labels are those of the last assignment, whose means
    // the centroids are; an emptied cluster is dropped (`renumber` skips it).
    let mut last = None;
    let mut near = NearValues {
        held: vec![false; bins.len()],
        values: Vec::new(),
    };
    for _ in 0..MAX_LLOYD_PASSES {
        let assignment = Assignment::nearest(&centroids, &bins);
        if assignment.needs_values(&near) {
            near = NearValues::gather(&chunks, &grid, assignment.wanted_bins(&near));
        }
        let clusters = assignment.moments(&bins, &near, centre);
        let mut renumber = Vec::with_capacity(clusters.len());
        let (mut next_centroids, mut next_weights) = (Vec::new(), Vec::new());
        for m in &clusters {
            renumber.push(next_centroids.len() as u8);
            if m.w > 0.0 {
                next_centroids.push(centre + m.s / m.w);
                next_weights.push(m.w);
            }
        }
        let unchanged = next_weights == weights;
        (centroids, weights) = (next_centroids, next_weights);
        last = Some((assignment, renumber));
        if unchanged {
            break;
        }
    }
    let (assignment, renumber) = last.expect("at least one Lloyd pass");
    let labels = values
        .par_iter()
        .with_min_len(1 << 14)
        .map(|&v| renumber[usize::from(assignment.cluster(&grid, v))])
        .collect();
    Ok(Some(Clustering { centroids, labels }))
}

#[cfg(test)]
mod tests {
    use super::super::{cluster_sorted, kmeans1d, BINNED_LEN};
    use super::*;

    /// Sum of squared distances of each value to its centroid.
    fn sse(values: &[f32], clustering: &Clustering) -> f64 {
        values
            .iter()
            .zip(&clustering.labels)
            .map(|(&v, &l)| (f64::from(v) - clustering.centroids[usize::from(l)]).powi(2))
            .sum()
    }

    /// Seeded pseudo-random values: a normal bulk with a few far outliers when `tail`.
    fn random_values(n: usize, seed: u64, tail: bool) -> Vec<f32> {
        let mut state = seed;
        let mut uniform = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| {
                // Box–Muller.
                let (a, b) = (uniform(), uniform());
                let normal = (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos();
                let v = 0.02 * normal;
                if tail && uniform() < 1e-4 {
                    (v * 400.0) as f32
                } else {
                    v as f32
                }
            })
            .collect()
    }

    #[test]
    fn histogram_path_is_within_a_ten_thousandth_of_the_optimum() {
        for (seed, tail, k) in [(1, false, 16), (2, true, 16), (3, false, 4), (4, true, 64)] {
            let values = random_values(BINNED_LEN + 1000, seed, tail);
            let binned = cluster_binned(&values, k).unwrap().unwrap();
            let exact = cluster_sorted(&values, k).unwrap();
            let (got, best) = (sse(&values, &binned), sse(&values, &exact));
            assert!(
                got <= best * (1.0 + 1e-4) && got >= best * (1.0 - 1e-9),
                "seed {seed} k {k}: {got} vs optimum {best}"
            );
            assert_eq!(binned.centroids.len(), k);
            assert!(binned.centroids.windows(2).all(|w| w[0] < w[1]));
            // Each centroid is the mean of its values.
            for (c, &centroid) in binned.centroids.iter().enumerate() {
                let members: Vec<f64> = values
                    .iter()
                    .zip(&binned.labels)
                    .filter(|(_, &l)| usize::from(l) == c)
                    .map(|(&v, _)| f64::from(v))
                    .collect();
                let mean = members.iter().sum::<f64>() / members.len() as f64;
                assert!((mean - centroid).abs() <= 1e-12 * mean.abs().max(1e-3));
            }
        }
    }

    #[test]
    fn long_fp32_inputs_take_the_histogram_path_in_kmeans1d() {
        let values = random_values(BINNED_LEN, 9, false);
        let direct = cluster_binned(&values, 16).unwrap().unwrap();
        assert_eq!(kmeans1d(&values, 16).unwrap(), direct);
    }

    #[test]
    fn same_result_for_any_thread_count() {
        let values = random_values(BINNED_LEN * 3 + 17, 5, true);
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| cluster_binned(&values, 16).unwrap().unwrap())
        };
        let one = run(1);
        assert_eq!(one, run(3));
        assert_eq!(one.centroids.len(), 16);
    }

    #[test]
    fn clumps_narrower_than_a_bin_go_to_the_exact_path() {
        // Two values one ulp apart, BINNED_LEN / 2 times each: one bin, two clusters.
        let (a, b) = (1.0f32, 1.0f32.next_up());
        let values: Vec<f32> = (0..BINNED_LEN)
            .map(|i| if i % 2 == 0 { a } else { b })
            .collect();
        assert_eq!(cluster_binned(&values, 4), Ok(None));
        let r = kmeans1d(&values, 4).unwrap();
        assert_eq!(r.centroids, vec![f64::from(a), f64::from(b)]);
        // Constant input: one cluster.
        let constant = vec![0.25f32 / 3.0; BINNED_LEN];
        let r = kmeans1d(&constant, 4).unwrap();
        assert_eq!(r.centroids, vec![f64::from(0.25f32 / 3.0)]);
        assert!(r.labels.iter().all(|&l| l == 0));
    }

    #[test]
    fn rejects_non_finite_values() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut values = random_values(BINNED_LEN, 6, false);
            values[BINNED_LEN / 2] = bad;
            assert_eq!(cluster_binned(&values, 16), Err(CompressError::NonFinite));
        }
    }
}
