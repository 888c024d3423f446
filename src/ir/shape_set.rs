//! The sizes a flexible function input accepts: a range per dimension, or a list of shapes.

use std::fmt;

/// The shapes a function input with symbolic dimensions accepts (Core ML `shapeRange` or
/// `enumeratedShapes`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShapeSet {
    /// One inclusive range per dimension; `None` as upper bound means unbounded. Fixed
    /// dimensions have equal bounds.
    Ranges(Vec<(usize, Option<usize>)>),
    /// Exactly these shapes (at least one, all of the input's rank); the first is the default.
    Enumerated(Vec<Vec<usize>>),
}

impl ShapeSet {
    /// The default shape: the lower bounds, or the first enumerated shape.
    pub fn default_shape(&self) -> Vec<usize> {
        match self {
            ShapeSet::Ranges(r) => r.iter().map(|&(lo, _)| lo).collect(),
            ShapeSet::Enumerated(shapes) => shapes[0].clone(),
        }
    }

    /// The smallest accepted shape: the lower bounds, or the enumerated shape with the fewest
    /// elements (the first of equals).
    pub fn smallest(&self) -> Vec<usize> {
        match self {
            ShapeSet::Ranges(_) => self.default_shape(),
            ShapeSet::Enumerated(shapes) => shapes
                .iter()
                .min_by_key(|s| s.iter().product::<usize>())
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// The largest accepted shape, an unbounded dimension taken as `max(lower bound, cap)`:
    /// the upper bounds, or the enumerated shape with the most elements (the last of equals).
    pub fn largest(&self, cap: usize) -> Vec<usize> {
        match self {
            ShapeSet::Ranges(r) => r
                .iter()
                .map(|&(lo, hi)| hi.unwrap_or(cap.max(lo)))
                .collect(),
            ShapeSet::Enumerated(shapes) => shapes
                .iter()
                .max_by_key(|s| s.iter().product::<usize>())
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// The accepted shapes whose dimension `axis` is at most `max` (None when there are none).
    pub fn limit(&self, axis: usize, max: usize) -> Option<ShapeSet> {
        match self {
            ShapeSet::Ranges(r) => {
                let (lo, hi) = *r.get(axis)?;
                if lo > max {
                    return None;
                }
                let mut r = r.clone();
                r[axis] = (lo, Some(hi.map_or(max, |hi| hi.min(max))));
                Some(ShapeSet::Ranges(r))
            }
            ShapeSet::Enumerated(shapes) => {
                let kept: Vec<Vec<usize>> = shapes
                    .iter()
                    .filter(|s| s.get(axis).is_some_and(|&n| n <= max))
                    .cloned()
                    .collect();
                (!kept.is_empty()).then_some(ShapeSet::Enumerated(kept))
            }
        }
    }

    /// Whether `shape` is one of the accepted shapes.
    pub fn admits(&self, shape: &[usize]) -> bool {
        match self {
            ShapeSet::Ranges(r) => {
                r.len() == shape.len()
                    && r.iter()
                        .zip(shape)
                        .all(|(&(lo, hi), &n)| n >= lo && hi.is_none_or(|hi| n <= hi))
            }
            ShapeSet::Enumerated(shapes) => shapes.iter().any(|s| s == shape),
        }
    }
}

impl fmt::Display for ShapeSet {
    /// `1,1..512` for ranges (`LO..` when unbounded), `1,64|1,128` for enumerated shapes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |s: &[usize]| s.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
        match self {
            ShapeSet::Ranges(r) => {
                let dims: Vec<String> = r
                    .iter()
                    .map(|&(lo, hi)| match hi {
                        Some(hi) if hi == lo => lo.to_string(),
                        Some(hi) => format!("{lo}..{hi}"),
                        None => format!("{lo}.."),
                    })
                    .collect();
                f.write_str(&dims.join(","))
            }
            ShapeSet::Enumerated(shapes) => {
                let shapes: Vec<String> = shapes.iter().map(|s| join(s)).collect();
                f.write_str(&shapes.join("|"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_narrow_ranges_and_drop_enumerated_shapes() {
        let r = ShapeSet::Ranges(vec![(1, Some(1)), (1, Some(512)), (4, None)]);
        assert_eq!(
            r.limit(1, 64),
            Some(ShapeSet::Ranges(vec![
                (1, Some(1)),
                (1, Some(64)),
                (4, None)
            ]))
        );
        assert_eq!(
            r.limit(2, 8),
            Some(ShapeSet::Ranges(vec![
                (1, Some(1)),
                (1, Some(512)),
                (4, Some(8))
            ]))
        );
        assert_eq!(r.limit(1, 600), Some(r.clone()));
        assert_eq!(r.limit(2, 3), None);
        let e = ShapeSet::Enumerated(vec![vec![1, 16], vec![1, 128], vec![1, 32]]);
        assert_eq!(
            e.limit(1, 64),
            Some(ShapeSet::Enumerated(vec![vec![1, 16], vec![1, 32]]))
        );
        assert_eq!(e.limit(1, 8), None);
    }

    #[test]
    fn ranges_bound_and_admit_shapes() {
        let s = ShapeSet::Ranges(vec![(1, Some(1)), (2, Some(64)), (4, None)]);
        assert_eq!(s.default_shape(), [1, 2, 4]);
        assert_eq!(s.smallest(), [1, 2, 4]);
        assert_eq!(s.largest(512), [1, 64, 512]);
        assert!(s.admits(&[1, 64, 10_000]));
        assert!(!s.admits(&[1, 65, 4]) && !s.admits(&[1, 2, 3]) && !s.admits(&[1, 2]));
        assert_eq!(s.to_string(), "1,2..64,4..");
    }

    #[test]
    fn enumerated_shapes_pick_by_element_count() {
        let s = ShapeSet::Enumerated(vec![vec![1, 64], vec![1, 16], vec![1, 128]]);
        assert_eq!(s.default_shape(), [1, 64]);
        assert_eq!(s.smallest(), [1, 16]);
        assert_eq!(s.largest(8), [1, 128]);
        assert!(s.admits(&[1, 16]) && !s.admits(&[1, 17]));
        assert_eq!(s.to_string(), "1,64|1,16|1,128");
    }
}
