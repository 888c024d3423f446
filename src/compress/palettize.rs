//! Palettization of one group of values: a lookup table of `2^nbits` entries plus one index
//! per value (docs/format.md §7), and the grouped-channel split.

use super::kmeans1d::kmeans1d;
use super::kmeans_vector::{distinct_vectors, kmeans_vectors};
use super::{check_finite, round_half_even, CompressError, Precision};

/// How the lookup table is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaletteMode {
    /// Optimal 1-D k-means with `k = min(#unique, 2^nbits)`.
    Kmeans,
    /// `2^nbits` evenly spaced entries from `min` to `max`.
    Uniform,
    /// The sorted unique values; nbits is the smallest allowed width that holds them.
    Unique,
}

/// Bit widths coremltools accepts for palettization.
pub const ALLOWED_NBITS: [u32; 6] = [1, 2, 3, 4, 6, 8];

/// A palettized group: `values[i] ≈ lut[indices[i]]` (for vector palettes of width `dim`,
/// vector `i` ≈ row `indices[i]` of the LUT).
#[derive(Debug, Clone, PartialEq)]
pub struct Palette {
    /// Index width in bits.
    pub nbits: u32,
    /// `2^nbits` entries (rows of `dim` values for vector palettes, row-major) rounded to the
    /// weight precision; unused entries are 0.
    pub lut: Vec<f32>,
    /// One LUT index per input value (per vector for vector palettes).
    pub indices: Vec<u8>,
}

/// `nbits` if it is one of [`ALLOWED_NBITS`].
fn require_nbits(nbits: Option<u32>) -> Result<u32, CompressError> {
    match nbits {
        Some(n) if ALLOWED_NBITS.contains(&n) => Ok(n),
        _ => Err(CompressError::Parameter(format!(
            "nbits {nbits:?} is not one of {ALLOWED_NBITS:?}"
        ))),
    }
}

/// The smallest allowed width whose palette holds `count` entries.
fn unique_nbits(count: usize) -> Result<u32, CompressError> {
    ALLOWED_NBITS
        .into_iter()
        .find(|&n| count <= 1 << n)
        .ok_or_else(|| {
            CompressError::Parameter(format!("{count} unique values do not fit an 8-bit palette"))
        })
}

/// Palettize one group. `nbits` is required for kmeans/uniform and ignored for unique.
pub fn palettize_group(
    values: &[f32],
    mode: PaletteMode,
    nbits: Option<u32>,
    precision: Precision,
) -> Result<Palette, CompressError> {
    check_finite(values)?;
    if values.is_empty() {
        return Err(CompressError::Parameter(
            "cannot palettize an empty group".into(),
        ));
    }
    match mode {
        PaletteMode::Kmeans => {
            let nbits = require_nbits(nbits)?;
            let clustering = kmeans1d(values, 1 << nbits)?;
            let mut lut = vec![0.0; 1 << nbits];
            for (entry, &c) in lut.iter_mut().zip(&clustering.centroids) {
                *entry = precision.round(c as f32);
            }
            Ok(Palette {
                nbits,
                lut,
                indices: clustering.labels,
            })
        }
        PaletteMode::Uniform => {
            let nbits = require_nbits(nbits)?;
            let p = precision;
            let levels = ((1u32 << nbits) - 1) as f32;
            let lo = values.iter().copied().fold(f32::INFINITY, f32::min);
            let hi = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let width = p.round(hi - lo);
            let scale = p.round(width / levels);
            let lut = (0..1u32 << nbits)
                .map(|k| p.round(k as f32 * scale + lo))
                .collect();
            // A constant group (width 0) maps everything to entry 0 instead of dividing by 0.
            let indices = values
                .iter()
                .map(|&w| {
                    if width == 0.0 {
                        return 0;
                    }
                    let t = p.round(p.round(w - lo) / width);
                    round_half_even(p.round(t * levels)).clamp(0.0, levels) as u8
                })
                .collect();
            Ok(Palette {
                nbits,
                lut,
                indices,
            })
        }
        PaletteMode::Unique => {
            let mut uniques = values.to_vec();
            uniques.sort_unstable_by(f32::total_cmp);
            uniques.dedup_by(|a, b| a == b);
            let nbits = unique_nbits(uniques.len())?;
            let indices = values
                .iter()
                .map(|v| uniques.partition_point(|u| u < v) as u8)
                .collect();
            uniques.resize(1 << nbits, 0.0);
            Ok(Palette {
                nbits,
                lut: uniques,
                indices,
            })
        }
    }
}

/// Palettize one group of vectors (each run of `dim` consecutive values is one vector):
/// the LUT holds `2^nbits` rows of `dim` values. Only kmeans (`k = min(#distinct vectors,
/// 2^nbits)`) and unique (distinct vectors in lexicographic order) have a vector form;
/// `dim = 1` is the scalar [`palettize_group`].
pub fn palettize_group_vectors(
    values: &[f32],
    dim: usize,
    mode: PaletteMode,
    nbits: Option<u32>,
    precision: Precision,
) -> Result<Palette, CompressError> {
    if dim == 1 {
        return palettize_group(values, mode, nbits, precision);
    }
    let (nbits, entries, indices) = match mode {
        PaletteMode::Kmeans => {
            let nbits = require_nbits(nbits)?;
            let clustering = kmeans_vectors(values, dim, 1 << nbits)?;
            (nbits, clustering.centroids, clustering.labels)
        }
        PaletteMode::Unique => {
            let distinct = distinct_vectors(values, dim)?;
            let nbits = unique_nbits(distinct.counts.len())?;
            // At most 256 distinct rows (checked above), so every index fits a u8.
            let indices = distinct.inverse.iter().map(|&u| u as u8).collect();
            (nbits, distinct.values, indices)
        }
        PaletteMode::Uniform => {
            return Err(CompressError::Parameter(
                "uniform palettization has no vector (cluster_dim > 1) form".into(),
            ))
        }
    };
    let mut lut = vec![0.0; (1 << nbits) * dim];
    for (entry, &c) in lut.iter_mut().zip(&entries) {
        *entry = precision.round(c);
    }
    Ok(Palette {
        nbits,
        lut,
        indices,
    })
}

/// The split of a weight into groups of `group_size` consecutive channels along `axis`: each
/// group is a set of contiguous element runs, one per index of the axes before `axis`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelGroups {
    outer: usize,
    channels: usize,
    inner: usize,
    group_size: usize,
}

impl ChannelGroups {
    /// Groups of `group_size` channels (0 = the whole axis) along `axis` of `shape`.
    pub fn new(
        shape: &[usize],
        axis: usize,
        group_size: usize,
    ) -> Result<ChannelGroups, CompressError> {
        let Some(&channels) = shape.get(axis) else {
            return Err(CompressError::Shape(format!(
                "axis {axis} is out of range for a rank-{} weight",
                shape.len()
            )));
        };
        let group_size = if group_size == 0 {
            channels
        } else {
            group_size
        };
        if group_size == 0 || channels % group_size != 0 {
            return Err(CompressError::Shape(format!(
                "group size {group_size} does not divide {channels} channels"
            )));
        }
        Ok(ChannelGroups {
            outer: shape[..axis].iter().product(),
            channels,
            inner: shape[axis + 1..].iter().product(),
            group_size,
        })
    }

    /// Number of groups.
    pub fn count(&self) -> usize {
        self.channels / self.group_size
    }

    /// The flat element ranges of group `g`, in row-major order.
    pub fn ranges(&self, g: usize) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        let run = self.group_size * self.inner;
        (0..self.outer).map(move |o| {
            let start = (o * self.channels + g * self.group_size) * self.inner;
            start..start + run
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_two_bits() {
        // lo 0, hi 3, scale 1: lut [0, 1, 2, 3]; 1.5 → 2 (half to even), 0.4 → 0.
        let p = palettize_group(
            &[0.0, 3.0, 1.5, 0.4],
            PaletteMode::Uniform,
            Some(2),
            Precision::F32,
        )
        .unwrap();
        assert_eq!(p.lut, vec![0.0, 1.0, 2.0, 3.0]);
        assert_eq!(p.indices, vec![0, 3, 2, 0]);
    }

    #[test]
    fn unique_picks_smallest_width() {
        let p = palettize_group(
            &[5.0, -1.0, 5.0, 2.0, 7.0],
            PaletteMode::Unique,
            None,
            Precision::F32,
        )
        .unwrap();
        assert_eq!(p.nbits, 2);
        assert_eq!(p.lut, vec![-1.0, 2.0, 5.0, 7.0]);
        assert_eq!(p.indices, vec![2, 0, 2, 1, 3]);
        let three = palettize_group(
            &[1.0, 2.0, 3.0, 4.0, 5.0],
            PaletteMode::Unique,
            None,
            Precision::F32,
        )
        .unwrap();
        assert_eq!(three.nbits, 3);
        assert_eq!(three.lut[5..], [0.0, 0.0, 0.0]);
        let many: Vec<f32> = (0..300).map(|i| i as f32).collect();
        assert!(palettize_group(&many, PaletteMode::Unique, None, Precision::F32).is_err());
    }

    #[test]
    fn kmeans_one_bit_pads_nothing_and_rounds_to_f16() {
        // {0, 0.1} and {1, 1.1}: centroids 0.05 and 1.05, rounded to f16.
        let p = palettize_group(
            &[0.0, 1.0, 0.1, 1.1],
            PaletteMode::Kmeans,
            Some(1),
            Precision::F16,
        )
        .unwrap();
        assert_eq!(
            p.lut,
            vec![Precision::F16.round(0.05), Precision::F16.round(1.05)]
        );
        assert_eq!(p.indices, vec![0, 1, 0, 1]);
        let padded =
            palettize_group(&[2.0, 2.0], PaletteMode::Kmeans, Some(2), Precision::F32).unwrap();
        assert_eq!(padded.lut, vec![2.0, 0.0, 0.0, 0.0]);
        assert!(palettize_group(&[1.0], PaletteMode::Kmeans, Some(5), Precision::F32).is_err());
    }

    #[test]
    fn vector_kmeans_pads_rows_and_rounds() {
        // Vectors (0,1), (5,5), (0.1,1) in one bit: clusters (0.05, 1) and (5, 5).
        let p = palettize_group_vectors(
            &[0.0, 1.0, 5.0, 5.0, 0.1, 1.0],
            2,
            PaletteMode::Kmeans,
            Some(1),
            Precision::F16,
        )
        .unwrap();
        assert_eq!(p.nbits, 1);
        assert_eq!(p.lut, vec![Precision::F16.round(0.05), 1.0, 5.0, 5.0]);
        assert_eq!(p.indices, vec![0, 1, 0]);
        // One distinct vector in two bits: rows 1..4 stay 0.
        let padded = palettize_group_vectors(
            &[2.0, 3.0, 2.0, 3.0],
            2,
            PaletteMode::Kmeans,
            Some(2),
            Precision::F32,
        )
        .unwrap();
        assert_eq!(padded.lut, vec![2.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(padded.indices, vec![0, 0]);
        let err =
            palettize_group_vectors(&[1.0; 4], 2, PaletteMode::Kmeans, Some(5), Precision::F32);
        assert!(err.is_err());
    }

    #[test]
    fn vector_unique_and_uniform() {
        // Distinct rows (1,2), (1,3), (4,0): 3 rows → 2 bits, sorted lexicographically.
        let p = palettize_group_vectors(
            &[4.0, 0.0, 1.0, 3.0, 1.0, 2.0, 4.0, 0.0],
            2,
            PaletteMode::Unique,
            None,
            Precision::F32,
        )
        .unwrap();
        assert_eq!(p.nbits, 2);
        assert_eq!(p.lut, vec![1.0, 2.0, 1.0, 3.0, 4.0, 0.0, 0.0, 0.0]);
        assert_eq!(p.indices, vec![2, 1, 0, 2]);
        let uniform =
            palettize_group_vectors(&[1.0; 4], 2, PaletteMode::Uniform, Some(2), Precision::F32);
        assert!(uniform.is_err());
        // dim 1 is the scalar path.
        let scalar =
            palettize_group_vectors(&[3.0, 1.0], 1, PaletteMode::Unique, None, Precision::F32)
                .unwrap();
        assert_eq!(scalar.lut, vec![1.0, 3.0]);
    }

    #[test]
    fn grouped_channels() {
        let flat = |g: &ChannelGroups, i: usize| g.ranges(i).flatten().collect::<Vec<_>>();
        // Shape [4, 2], axis 0, groups of 2 rows.
        let g = ChannelGroups::new(&[4, 2], 0, 2).unwrap();
        assert_eq!(
            (flat(&g, 0), flat(&g, 1)),
            (vec![0, 1, 2, 3], vec![4, 5, 6, 7])
        );
        // Axis 1 of [2, 4], groups of 2 columns: row-major within each sub-tensor.
        let g = ChannelGroups::new(&[2, 4], 1, 2).unwrap();
        assert_eq!(
            (flat(&g, 0), flat(&g, 1)),
            (vec![0, 1, 4, 5], vec![2, 3, 6, 7])
        );
        // Axis 1 of [2, 2, 2], one group: everything.
        let g = ChannelGroups::new(&[2, 2, 2], 1, 0).unwrap();
        assert_eq!((g.count(), flat(&g, 0)), (1, (0..8).collect()));
        assert!(ChannelGroups::new(&[3, 2], 0, 2).is_err());
    }
}
