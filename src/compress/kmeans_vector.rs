//! Weighted k-means on `dim`-dimensional vectors, for vector palettization (`cluster_dim > 1`,
//! docs/format.md §7), where coremltools runs scikit-learn's k-means++ once.
//!
//! Identical vectors are merged first and weighted by their count (fp16 weights repeat a lot).
//! Each of [`RESTARTS`] runs seeds with greedy k-means++ from a fixed pseudo-random stream and
//! refines with Lloyd iterations; the lowest inertia wins (ties: the earlier restart). Every
//! parallel loop works on fixed-size chunks whose partial results are combined in chunk order,
//! so the result does not depend on the number of threads.

use crate::util::rng::SplitMix64;
use rayon::prelude::*;

use super::{check_finite, CompressError};

/// Independent seedings; the best refined one is kept (coremltools runs a single one, to a
/// looser tolerance).
const RESTARTS: u64 = 2;
/// Upper bound on Lloyd iterations per restart.
const MAX_ITERATIONS: usize = 300;
/// Lloyd stops once an iteration lowers the inertia by less than this fraction.
const RELATIVE_TOLERANCE: f64 = 1e-5;
/// Points per parallel work item (fixed, so the reduction order never changes).
const CHUNK: usize = 4096;
/// Above `4 ×` this many vectors, the restarts run on a random sample of this size and only the
/// winner is refined on all vectors.
const SAMPLE: usize = 1 << 14;
/// Vectors per parallel work item of the refinement on all vectors.
const FULL_CHUNK: usize = 1 << 15;
/// Upper bound on Lloyd iterations over all vectors (the sampled seeds are already close).
const FULL_ITERATIONS: usize = 30;
/// The refinement stops once an iteration lowers the inertia by less than this fraction.
const FULL_TOLERANCE: f64 = 1e-4;
/// The most clusters (labels are bytes: palettes hold at most 256 entries).
pub const MAX_CLUSTERS: usize = 256;
/// Base seed of the pseudo-random stream used for k-means++ sampling.
const SEED: u64 = 0x6b6d_6561_6e73_2b2b;

/// Result: `centroids` is k×dim row-major (k = min(#distinct vectors, requested k)), sorted
/// lexicographically; `labels` holds one centroid index per input vector, in [0, k).
#[derive(Debug, Clone, PartialEq)]
pub struct VectorClustering {
    /// Cluster means, k rows of `dim` values.
    pub centroids: Vec<f32>,
    /// For each input vector, the row of its centroid.
    pub labels: Vec<u8>,
}

/// The distinct vectors of a flat row-major list, in lexicographic order.
#[derive(Debug, Clone, PartialEq)]
pub struct DistinctVectors {
    /// Distinct vectors, row-major (`-0.0` is stored as `0.0`).
    pub values: Vec<f32>,
    /// How often each distinct vector occurs.
    pub counts: Vec<u32>,
    /// For each input vector, the row of its distinct vector.
    pub inverse: Vec<u32>,
}

/// Split `points` into vectors of `dim` values and list the distinct ones (numeric
/// lexicographic order, as numpy's `unique(axis=0)`), with counts and the inverse map.
pub fn distinct_vectors(points: &[f32], dim: usize) -> Result<DistinctVectors, CompressError> {
    check_vectors(points, dim)?;
    // Order-preserving integer image of each coordinate: comparing keys compares values.
    let keys: Vec<u32> = points
        .par_iter()
        .map(|&x| {
            let bits = (x + 0.0).to_bits();
            if bits >> 31 == 1 {
                !bits
            } else {
                bits | 0x8000_0000
            }
        })
        .collect();
    let row = |i: u32| &keys[i as usize * dim..(i as usize + 1) * dim];
    let count = points.len() / dim;
    // Sort (first two keys packed into a u64, index) pairs: contiguous and cheap to compare;
    // only vectors longer than 2 that share the prefix look at the rest of their row.
    let mut order: Vec<(u64, u32)> = (0..count as u32)
        .into_par_iter()
        .map(|i| {
            let r = row(i);
            let second = r.get(1).copied().unwrap_or(0);
            ((u64::from(r[0]) << 32) | u64::from(second), i)
        })
        .collect();
    order.par_sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| row(a.1)[dim.min(2)..].cmp(&row(b.1)[dim.min(2)..]))
    });

    let mut values = Vec::new();
    let mut counts: Vec<u32> = Vec::new();
    let mut inverse = vec![0u32; count];
    let mut previous: Option<u32> = None;
    for &(_, i) in &order {
        match (previous, counts.last_mut()) {
            (Some(p), Some(c)) if row(p) == row(i) => *c += 1,
            _ => {
                let start = i as usize * dim;
                values.extend(points[start..start + dim].iter().map(|&x| x + 0.0));
                counts.push(1);
            }
        }
        inverse[i as usize] = counts.len() as u32 - 1;
        previous = Some(i);
    }
    Ok(DistinctVectors {
        values,
        counts,
        inverse,
    })
}

/// Cluster the vectors of `points` (consecutive runs of `dim` values) into at most `k ≤ 256`
/// clusters, minimising the sum of squared Euclidean distances to the cluster means.
///
/// Up to `4 × SAMPLE` vectors, identical vectors are merged and every restart runs on all of
/// them. Above that, the restarts run on a random sample and the winner is refined with Lloyd
/// iterations over every vector (no merging: large weights rarely repeat a vector).
pub fn kmeans_vectors(
    points: &[f32],
    dim: usize,
    k: usize,
) -> Result<VectorClustering, CompressError> {
    if k == 0 || k > MAX_CLUSTERS {
        return Err(CompressError::Parameter(format!(
            "k-means needs 1 ≤ k ≤ {MAX_CLUSTERS}, not {k}"
        )));
    }
    check_vectors(points, dim)?;
    if points.len() / dim > 4 * SAMPLE {
        if let Some(result) = cluster_large(points, dim, k) {
            return Ok(result);
        }
    }
    let distinct = distinct_vectors(points, dim)?;
    let data = WeightedPoints {
        points: distinct.values.iter().map(|&x| f64::from(x)).collect(),
        weights: distinct.counts.iter().map(|&c| f64::from(c)).collect(),
        dim,
    };
    let solution = if data.len() <= k {
        Solution {
            centroids: data.points.clone(),
            labels: (0..data.len() as u32).collect(),
            inertia: 0.0,
        }
    } else {
        match dim {
            1 => best_of_restarts::<1>(&data, k),
            2 => best_of_restarts::<2>(&data, k),
            3 => best_of_restarts::<3>(&data, k),
            4 => best_of_restarts::<4>(&data, k),
            8 => best_of_restarts::<8>(&data, k),
            _ => best_of_restarts::<0>(&data, k),
        }
    };
    let centroids: Vec<f32> = solution.centroids.iter().map(|&x| x as f32).collect();
    let rank = lexicographic_rank(&centroids, dim);
    let centroids = reorder_rows(&centroids, dim, &rank);
    let labels = distinct
        .inverse
        .par_iter()
        .map(|&u| rank[solution.labels[u as usize] as usize])
        .collect();
    Ok(VectorClustering { centroids, labels })
}

/// The rank of each centroid row in lexicographic order (the output order: independent of
/// the seeding order).
fn lexicographic_rank(centroids: &[f32], dim: usize) -> Vec<u8> {
    let clusters = centroids.len() / dim;
    let row = |c: usize| &centroids[c * dim..(c + 1) * dim];
    let mut order: Vec<usize> = (0..clusters).collect();
    order.sort_by(|&a, &b| {
        row(a)
            .iter()
            .zip(row(b))
            .map(|(x, y)| x.total_cmp(y))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut rank = vec![0u8; clusters];
    for (new, &old) in order.iter().enumerate() {
        rank[old] = new as u8;
    }
    rank
}

/// The rows of `centroids` moved to the positions `rank` gives them.
fn reorder_rows(centroids: &[f32], dim: usize, rank: &[u8]) -> Vec<f32> {
    let mut sorted = vec![0.0; centroids.len()];
    for (old, &new) in rank.iter().enumerate() {
        let new = usize::from(new);
        sorted[new * dim..(new + 1) * dim].copy_from_slice(&centroids[old * dim..(old + 1) * dim]);
    }
    sorted
}

/// Many vectors: restarts on a sample, then Lloyd on every vector. `None` when the sample has
/// at most `k` distinct vectors (then merging duplicates is cheap and exact).
fn cluster_large(points: &[f32], dim: usize, k: usize) -> Option<VectorClustering> {
    let count = points.len() / dim;
    let mut rng = SplitMix64::new(SEED);
    let mut drawn: Vec<usize> = (0..SAMPLE)
        .map(|_| (rng.next_u64() % count as u64) as usize)
        .collect();
    drawn.sort_unstable();
    let sampled: Vec<f32> = drawn
        .iter()
        .flat_map(|&i| points[i * dim..(i + 1) * dim].iter().copied())
        .collect();
    let distinct = distinct_vectors(&sampled, dim).ok()?;
    if distinct.counts.len() <= k {
        return None;
    }
    let sample = WeightedPoints {
        points: distinct.values.iter().map(|&x| f64::from(x)).collect(),
        weights: distinct.counts.iter().map(|&c| f64::from(c)).collect(),
        dim,
    };
    let (centroids, labels) = match dim {
        1 => refine::<1>(points, best_of_restarts::<1>(&sample, k).centroids, dim),
        2 => refine::<2>(points, best_of_restarts::<2>(&sample, k).centroids, dim),
        3 => refine::<3>(points, best_of_restarts::<3>(&sample, k).centroids, dim),
        4 => refine::<4>(points, best_of_restarts::<4>(&sample, k).centroids, dim),
        8 => refine::<8>(points, best_of_restarts::<8>(&sample, k).centroids, dim),
        _ => refine::<0>(points, best_of_restarts::<0>(&sample, k).centroids, dim),
    };
    let rank = lexicographic_rank(&centroids, dim);
    let centroids = reorder_rows(&centroids, dim, &rank);
    let labels = labels
        .par_iter()
        .with_min_len(1 << 14)
        .map(|&l| rank[usize::from(l)])
        .collect();
    Some(VectorClustering { centroids, labels })
}

/// Lloyd iterations over every vector from `seeds` (f32 distances, f64 sums per fixed-size
/// chunk added in chunk order) until the inertia improves by less than [`FULL_TOLERANCE`];
/// returns the centroids and the labels of the last assignment, which match them.
fn refine<const D: usize>(points: &[f32], seeds: Vec<f64>, dim: usize) -> (Vec<f32>, Vec<u8>) {
    let k = seeds.len() / dim;
    let mut centroids: Vec<f32> = seeds.iter().map(|&x| x as f32).collect();
    let mut labels = vec![0u8; points.len() / dim];
    let mut previous = f64::INFINITY;
    for iteration in 1.. {
        let current = &centroids;
        let partials: Vec<Partial> = points
            .par_chunks(FULL_CHUNK * dim)
            .zip(labels.par_chunks_mut(FULL_CHUNK))
            .map(|(chunk, labels)| {
                let mut part = Partial::zero(k, dim);
                let mut chunk_inertia = 0.0f32;
                for (p, label) in chunk.chunks_exact(dim).zip(labels) {
                    let (mut best, mut best_d) = (0, f32::INFINITY);
                    for (c, centroid) in current.chunks_exact(dim).enumerate() {
                        // Selects rather than branches: which centroid wins is unpredictable.
                        let d = dist2::<D, f32>(p, centroid);
                        let closer = d < best_d;
                        best = if closer { c } else { best };
                        best_d = if closer { d } else { best_d };
                    }
                    part.changed += usize::from(*label != best as u8);
                    *label = best as u8;
                    chunk_inertia += best_d;
                    part.weights[best] += 1.0;
                    for (s, &x) in part.sums[best * dim..(best + 1) * dim].iter_mut().zip(p) {
                        *s += f64::from(x);
                    }
                }
                part.inertia = f64::from(chunk_inertia);
                part
            })
            .collect();
        let mut total = Partial::zero(k, dim);
        for part in &partials {
            total.add(part);
        }
        let stalled = previous - total.inertia <= FULL_TOLERANCE * previous;
        if (iteration > 1 && total.changed == 0) || stalled || iteration >= FULL_ITERATIONS {
            break;
        }
        previous = total.inertia;
        // An empty cluster keeps its centroid.
        for c in 0..k {
            if total.weights[c] > 0.0 {
                for (x, s) in centroids[c * dim..(c + 1) * dim]
                    .iter_mut()
                    .zip(&total.sums[c * dim..(c + 1) * dim])
                {
                    *x = (s / total.weights[c]) as f32;
                }
            }
        }
    }
    (centroids, labels)
}

/// Reject an empty list, a zero or non-dividing `dim`, too many vectors, or non-finite values.
fn check_vectors(points: &[f32], dim: usize) -> Result<(), CompressError> {
    if dim == 0 || points.len() % dim != 0 {
        return Err(CompressError::Shape(format!(
            "{} values do not split into vectors of {dim}",
            points.len()
        )));
    }
    if points.is_empty() {
        return Err(CompressError::Parameter(
            "cannot cluster zero vectors".into(),
        ));
    }
    if points.len() / dim > u32::MAX as usize {
        return Err(CompressError::Parameter(format!(
            "{} vectors are too many to cluster",
            points.len() / dim
        )));
    }
    check_finite(points)
}

/// Distinct points (row-major, `dim` wide) with their multiplicities.
struct WeightedPoints {
    points: Vec<f64>,
    weights: Vec<f64>,
    dim: usize,
}

impl WeightedPoints {
    fn len(&self) -> usize {
        self.weights.len()
    }

    /// Parallel work items: (first point index, points, weights) of each fixed-size chunk.
    fn chunks(&self) -> impl IndexedParallelIterator<Item = (usize, &[f64], &[f64])> {
        self.points
            .par_chunks(CHUNK * self.dim)
            .zip(self.weights.par_chunks(CHUNK))
            .enumerate()
            .map(|(c, (p, w))| (c * CHUNK, p, w))
    }

    fn point(&self, i: usize) -> &[f64] {
        &self.points[i * self.dim..(i + 1) * self.dim]
    }
}

/// Centroids (k×dim), a label per distinct point and the weighted inertia.
struct Solution {
    centroids: Vec<f64>,
    labels: Vec<u32>,
    inertia: f64,
}

/// Squared distance; `D > 0` fixes the length at compile time (unrolled), `D = 0` uses the
/// slice length. Both sum the coordinates in the same order, so they agree bit for bit.
/// Used in f64 for the seeding and restarts, in f32 for the refinement over all vectors.
#[inline(always)]
fn dist2<const D: usize, T>(a: &[T], b: &[T]) -> T
where
    T: Copy + Default + std::ops::Sub<Output = T> + std::ops::Mul<Output = T> + std::ops::AddAssign,
{
    let mut sum = T::default();
    if D > 0 {
        for i in 0..D {
            let t = a[i] - b[i];
            sum += t * t;
        }
    } else {
        for (x, y) in a.iter().zip(b) {
            let t = *x - *y;
            sum += t * t;
        }
    }
    sum
}

/// Index and squared distance of the nearest centroid (ties: the lower index), and the
/// squared distance of the second nearest (infinite when there is one centroid).
#[inline(always)]
fn nearest_two<const D: usize>(point: &[f64], centroids: &[f64], dim: usize) -> (u32, f64, f64) {
    let (mut best, mut best_d, mut second) = (0, f64::INFINITY, f64::INFINITY);
    for (c, centroid) in centroids.chunks_exact(dim).enumerate() {
        let d = dist2::<D, f64>(point, centroid);
        if d < best_d {
            second = best_d;
            (best, best_d) = (c as u32, d);
        } else if d < second {
            second = d;
        }
    }
    (best, best_d, second)
}

/// Run every restart (in parallel) and keep the lowest inertia, earliest restart on ties.
fn best_of_restarts<const D: usize>(data: &WeightedPoints, k: usize) -> Solution {
    let solutions: Vec<Solution> = (0..RESTARTS)
        .into_par_iter()
        .map(|restart| {
            let mut rng = SplitMix64::new(SEED ^ restart.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let seeds = seed_plus_plus::<D>(data, k, &mut rng);
            lloyd::<D>(data, seeds)
        })
        .collect();
    let mut best: Option<Solution> = None;
    for solution in solutions {
        if best.as_ref().is_none_or(|b| solution.inertia < b.inertia) {
            best = Some(solution);
        }
    }
    // RESTARTS ≥ 1, so `best` is always set; the fallback only keeps this panic-free.
    best.unwrap_or(Solution {
        centroids: Vec::new(),
        labels: Vec::new(),
        inertia: 0.0,
    })
}

/// Draw an index with probability proportional to `mass(i)`, given per-chunk mass totals.
fn sample(rng: &mut SplitMix64, totals: &[f64], mass: impl Fn(usize) -> f64, len: usize) -> usize {
    let total: f64 = totals.iter().sum();
    let target = rng.next_unit() * total;
    let mut before = 0.0;
    for (c, &chunk_total) in totals.iter().enumerate() {
        if target < before + chunk_total {
            let mut acc = before;
            let end = ((c + 1) * CHUNK).min(len);
            for i in c * CHUNK..end {
                acc += mass(i);
                if target < acc {
                    return i;
                }
            }
        }
        before += chunk_total;
    }
    // Rounding pushed the target past the end: take the last point with any mass.
    (0..len).rev().find(|&i| mass(i) > 0.0).unwrap_or(0)
}

/// Greedy k-means++ seeding on weighted points: each new centre is the best (lowest potential)
/// of `2 + ⌊ln k⌋` candidates drawn with probability ∝ weight × squared distance.
fn seed_plus_plus<const D: usize>(
    data: &WeightedPoints,
    k: usize,
    rng: &mut SplitMix64,
) -> Vec<f64> {
    let dim = data.dim;
    let len = data.len();
    let candidates_per_step = 2 + (k as f64).ln() as usize;
    let weight_totals: Vec<f64> = data.chunks().map(|(_, _, w)| w.iter().sum()).collect();
    let first = sample(rng, &weight_totals, |i| data.weights[i], len);
    let mut centroids = data.point(first).to_vec();
    let mut closest: Vec<f64> = data
        .points
        .par_chunks(dim)
        .map(|p| dist2::<D, f64>(p, data.point(first)))
        .collect();
    let mut totals = mass_totals(data, &closest);

    while centroids.len() < k * dim {
        let candidates: Vec<usize> = (0..candidates_per_step)
            .map(|_| sample(rng, &totals, |i| data.weights[i] * closest[i], len))
            .collect();
        // Potential after adding each candidate, summed per chunk then in chunk order.
        let partials: Vec<Vec<f64>> = data
            .chunks()
            .map(|(start, points, weights)| {
                let mut sums = vec![0.0; candidates.len()];
                for (j, (p, &w)) in points.chunks_exact(dim).zip(weights).enumerate() {
                    let current = closest[start + j];
                    for (sum, &c) in sums.iter_mut().zip(&candidates) {
                        *sum += w * current.min(dist2::<D, f64>(p, data.point(c)));
                    }
                }
                sums
            })
            .collect();
        let mut potentials = vec![0.0; candidates.len()];
        for sums in &partials {
            for (total, s) in potentials.iter_mut().zip(sums) {
                *total += s;
            }
        }
        let mut best = 0;
        for (j, &p) in potentials.iter().enumerate() {
            if p < potentials[best] {
                best = j;
            }
        }
        let chosen = data.point(candidates[best]);
        centroids.extend_from_slice(chosen);
        closest
            .par_iter_mut()
            .zip(data.points.par_chunks(dim))
            .for_each(|(d, p)| *d = d.min(dist2::<D, f64>(p, chosen)));
        totals = mass_totals(data, &closest);
    }
    centroids
}

/// Per-chunk sums of weight × squared distance.
fn mass_totals(data: &WeightedPoints, closest: &[f64]) -> Vec<f64> {
    data.weights
        .par_chunks(CHUNK)
        .zip(closest.par_chunks(CHUNK))
        .map(|(w, d)| w.iter().zip(d).map(|(w, d)| w * d).sum())
        .collect()
}

/// Per-chunk results of one assignment step.
struct Partial {
    sums: Vec<f64>,
    weights: Vec<f64>,
    inertia: f64,
    changed: usize,
}

impl Partial {
    fn zero(k: usize, dim: usize) -> Partial {
        Partial {
            sums: vec![0.0; k * dim],
            weights: vec![0.0; k],
            inertia: 0.0,
            changed: 0,
        }
    }

    fn add(&mut self, other: &Partial) {
        self.inertia += other.inertia;
        self.changed += other.changed;
        for (t, s) in self.sums.iter_mut().zip(&other.sums) {
            *t += s;
        }
        for (t, w) in self.weights.iter_mut().zip(&other.weights) {
            *t += w;
        }
    }
}

/// Lloyd iterations from `centroids` until the inertia stalls; labels match the centroids.
///
/// Hamerly's bounds skip the full nearest-centroid search for a point whose distance to its
/// own centroid is below both half the gap to that centroid's nearest neighbour and a lower
/// bound on its distance to every other centroid; the own distance is always recomputed, so
/// the inertia is exact.
fn lloyd<const D: usize>(data: &WeightedPoints, mut centroids: Vec<f64>) -> Solution {
    let dim = data.dim;
    let k = centroids.len() / dim;
    let mut labels = vec![u32::MAX; data.len()];
    // Lower bound on the distance from each point to every centroid but its own.
    let mut lower = vec![0.0f64; data.len()];
    let mut half_gap = vec![0.0f64; k];
    let mut previous = f64::INFINITY;
    let mut iteration = 0;
    loop {
        iteration += 1;
        let partials: Vec<Partial> = data
            .chunks()
            .zip(labels.par_chunks_mut(CHUNK))
            .zip(lower.par_chunks_mut(CHUNK))
            .map(|(((_, points, weights), labels), lower)| {
                let mut part = Partial::zero(k, dim);
                let rows = points.chunks_exact(dim).zip(weights);
                for (((p, &w), label), low) in rows.zip(labels).zip(lower) {
                    let mut own = f64::INFINITY;
                    if *label != u32::MAX {
                        let a = *label as usize;
                        own = dist2::<D, f64>(p, &centroids[a * dim..(a + 1) * dim]);
                    }
                    let bound = half_gap.get(*label as usize).map_or(0.0, |g| g.max(*low));
                    if own.sqrt() > bound {
                        let (c, d, second) = nearest_two::<D>(p, &centroids, dim);
                        if *label != c {
                            part.changed += 1;
                            *label = c;
                        }
                        own = d;
                        *low = second.sqrt();
                    }
                    let c = *label as usize;
                    part.inertia += w * own;
                    part.weights[c] += w;
                    for (s, &x) in part.sums[c * dim..(c + 1) * dim].iter_mut().zip(p) {
                        *s += w * x;
                    }
                }
                part
            })
            .collect();
        let mut total = Partial::zero(k, dim);
        for part in &partials {
            total.add(part);
        }
        let stalled =
            previous.is_finite() && previous - total.inertia <= RELATIVE_TOLERANCE * previous;
        if total.changed == 0 || stalled || iteration >= MAX_ITERATIONS {
            return Solution {
                centroids,
                labels,
                inertia: total.inertia,
            };
        }
        previous = total.inertia;
        let old = centroids.clone();
        let mut empty = Vec::new();
        for c in 0..k {
            if total.weights[c] > 0.0 {
                for (x, s) in centroids[c * dim..(c + 1) * dim]
                    .iter_mut()
                    .zip(&total.sums[c * dim..(c + 1) * dim])
                {
                    *x = s / total.weights[c];
                }
            } else {
                empty.push(c);
            }
        }
        if !empty.is_empty() {
            reseed_empty::<D>(data, &mut centroids, &labels, &empty);
        }
        let max_shift = old
            .chunks_exact(dim)
            .zip(centroids.chunks_exact(dim))
            .map(|(a, b)| dist2::<D, f64>(a, b).sqrt())
            .fold(0.0, f64::max);
        lower.par_iter_mut().for_each(|l| *l -= max_shift);
        for (c, gap) in half_gap.iter_mut().enumerate() {
            let own = &centroids[c * dim..(c + 1) * dim];
            *gap = (0..k)
                .filter(|&o| o != c)
                .map(|o| dist2::<D, f64>(own, &centroids[o * dim..(o + 1) * dim]))
                .fold(f64::INFINITY, f64::min)
                .sqrt()
                / 2.0;
        }
    }
}

/// Move each empty cluster's centroid onto the point farthest from its (updated) cluster
/// centroid; ties: the lower index; each point used once.
fn reseed_empty<const D: usize>(
    data: &WeightedPoints,
    centroids: &mut [f64],
    labels: &[u32],
    empty: &[usize],
) {
    let dim = data.dim;
    let distances: Vec<f64> = data
        .points
        .par_chunks(dim)
        .zip(labels)
        .map(|(p, &l)| {
            let c = l as usize;
            dist2::<D, f64>(p, &centroids[c * dim..(c + 1) * dim])
        })
        .collect();
    let mut order: Vec<usize> = (0..data.len()).collect();
    order.sort_by(|&a, &b| distances[b].total_cmp(&distances[a]).then(a.cmp(&b)));
    for (&c, &i) in empty.iter().zip(&order) {
        centroids[c * dim..(c + 1) * dim].copy_from_slice(data.point(i));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Weighted sum of squared distances of every input vector to its centroid.
    fn inertia(points: &[f32], dim: usize, clustering: &VectorClustering) -> f64 {
        points
            .chunks_exact(dim)
            .zip(&clustering.labels)
            .map(|(p, &l)| {
                let c = &clustering.centroids[l as usize * dim..(l as usize + 1) * dim];
                p.iter()
                    .zip(c)
                    .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
                    .sum::<f64>()
            })
            .sum()
    }

    /// `count` vectors of standard normal values (Box–Muller), rounded to f16.
    fn gaussian_f16(count: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = SplitMix64::new(seed);
        (0..count * dim)
            .map(|_| {
                let u = 1.0 - rng.next_unit();
                let v = rng.next_unit();
                let z = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
                half::f16::from_f64(z).to_f32()
            })
            .collect()
    }

    #[test]
    fn well_separated_clusters_are_recovered() {
        // Each blob is its centre plus offsets (0,0), (1,0), (0,1), (-1,-1): mean = centre.
        let centres = [(10.0, 10.0), (-10.0, 10.0), (10.0, -10.0), (-10.0, -10.0)];
        let offsets = [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (-1.0, -1.0)];
        let mut points = Vec::new();
        for (o_x, o_y) in offsets {
            for (c_x, c_y) in centres {
                points.extend([c_x + o_x, c_y + o_y]);
            }
        }
        let result = kmeans_vectors(&points, 2, 4).unwrap();
        assert_eq!(
            result.centroids,
            vec![-10.0, -10.0, -10.0, 10.0, 10.0, -10.0, 10.0, 10.0]
        );
        // Blob order in `centres` maps to sorted centroid rows 3, 1, 2, 0.
        assert_eq!(result.labels, [3, 1, 2, 0].repeat(4));
    }

    #[test]
    fn duplicates_weight_the_means() {
        // {(0,0)×3, (4,0)} → mean (1,0), inertia 3·1 + 9 = 12; (100,0) alone.
        let points = [0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 100.0, 0.0, -0.0, 0.0];
        let result = kmeans_vectors(&points, 2, 2).unwrap();
        assert_eq!(result.centroids, vec![1.0, 0.0, 100.0, 0.0]);
        assert_eq!(result.labels, vec![0, 0, 0, 1, 0]);
        assert_eq!(inertia(&points, 2, &result), 12.0);
    }

    #[test]
    fn k_at_least_distinct_count_is_exact() {
        let points = [3.0, 1.0, 2.0, 1.0, 3.0, 2.0, 2.0, 5.0, 2.0, 3.0, 1.0, 2.0];
        let result = kmeans_vectors(&points, 3, 7).unwrap();
        // Distinct vectors (3,1,2), (1,3,2), (2,5,2), sorted lexicographically.
        assert_eq!(
            result.centroids,
            vec![1.0, 3.0, 2.0, 2.0, 5.0, 2.0, 3.0, 1.0, 2.0]
        );
        assert_eq!(result.labels, vec![2, 0, 1, 2]);
        assert_eq!(inertia(&points, 3, &result), 0.0);
    }

    #[test]
    fn distinct_vectors_sorted_with_counts() {
        let d = distinct_vectors(&[1.0, -0.0, -2.0, 7.0, 1.0, 0.0, -2.0, 3.0], 2).unwrap();
        assert_eq!(d.values, vec![-2.0, 3.0, -2.0, 7.0, 1.0, 0.0]);
        assert!(d.values[5].is_sign_positive());
        assert_eq!(d.counts, vec![1, 1, 2]);
        assert_eq!(d.inverse, vec![2, 1, 2, 0]);
    }

    #[test]
    fn same_result_for_any_thread_count() {
        // 300 000 points take the sampled-restarts path (more than 4 × SAMPLE distinct).
        for (count, dim, k) in [
            (20_000, 2, 16),
            (20_000, 4, 8),
            (20_000, 5, 6),
            (300_000, 2, 4),
        ] {
            let points = gaussian_f16(count, dim, 7 + dim as u64);
            let run = |threads| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap()
                    .install(|| kmeans_vectors(&points, dim, k).unwrap())
            };
            assert_eq!(run(1), run(2), "dim {dim}, k {k}");
        }
    }

    /// Lloyd from `k` distinct random points, as a simple independent reference.
    fn random_init_lloyd(points: &[f32], dim: usize, k: usize, seed: u64) -> f64 {
        let n = points.len() / dim;
        let mut rng = SplitMix64::new(seed);
        let mut chosen: Vec<usize> = Vec::new();
        while chosen.len() < k {
            let i = (rng.next_u64() % n as u64) as usize;
            if !chosen.contains(&i) {
                chosen.push(i);
            }
        }
        let mut centroids: Vec<f64> = chosen
            .iter()
            .flat_map(|&i| points[i * dim..(i + 1) * dim].iter().map(|&x| f64::from(x)))
            .collect();
        let mut cost = f64::INFINITY;
        for _ in 0..100 {
            let mut sums = vec![0.0; k * dim];
            let mut counts = vec![0.0; k];
            cost = 0.0;
            for p in points.chunks_exact(dim) {
                let p: Vec<f64> = p.iter().map(|&x| f64::from(x)).collect();
                let (c, d, _) = nearest_two::<0>(&p, &centroids, dim);
                cost += d;
                counts[c as usize] += 1.0;
                for (s, x) in sums[c as usize * dim..].iter_mut().zip(&p) {
                    *s += x;
                }
            }
            for c in 0..k {
                if counts[c] > 0.0 {
                    for j in 0..dim {
                        centroids[c * dim + j] = sums[c * dim + j] / counts[c];
                    }
                }
            }
        }
        cost
    }

    #[test]
    fn at_least_as_good_as_random_init_lloyd() {
        // Nine blobs on a 3×3 grid plus Gaussian noise: random starts often merge two blobs.
        let noise = gaussian_f16(3_000, 2, 11);
        let points: Vec<f32> = noise
            .chunks_exact(2)
            .enumerate()
            .flat_map(|(i, p)| {
                let blob = i % 9;
                [
                    p[0] * 0.5 + 6.0 * (blob % 3) as f32,
                    p[1] * 0.5 + 6.0 * (blob / 3) as f32,
                ]
            })
            .collect();
        let ours = inertia(&points, 2, &kmeans_vectors(&points, 2, 9).unwrap());
        let reference = (0..10)
            .map(|seed| random_init_lloyd(&points, 2, 9, seed))
            .fold(f64::INFINITY, f64::min);
        assert!(ours <= reference * (1.0 + 1e-9), "{ours} vs {reference}");
        // The 9 true blobs: inertia ≈ n·2·0.25 = 1500.
        assert!(ours < 1600.0, "{ours}");
    }

    #[test]
    fn rejects_bad_input() {
        assert!(kmeans_vectors(&[1.0, f32::NAN], 2, 1).is_err());
        assert!(kmeans_vectors(&[1.0, 2.0, 3.0], 2, 1).is_err());
        assert!(kmeans_vectors(&[1.0, 2.0], 0, 1).is_err());
        assert!(kmeans_vectors(&[1.0, 2.0], 2, 0).is_err());
        assert!(kmeans_vectors(&[], 2, 1).is_err());
    }
}
