//! Error metrics between a reference tensor and a candidate tensor, accumulated over samples.
//!
//! Definitions (all in f64, over every element where the reference is finite):
//! - max / mean abs error: of |candidate − reference|;
//! - max relative error: max abs error ÷ max |reference| (the error relative to the output's
//!   scale; element-wise ratios explode near zero and say little);
//! - cosine similarity of the two tensors flattened (1 when both are all zeros);
//! - SNR dB = 10·log10(Σ reference² / Σ error²), +∞ when the error is zero;
//! - PSNR dB = 20·log10(max |reference| / RMSE), +∞ when the error is zero;
//! - for class scores (rank 1 with C ≥ 5 classes, or rank 2 `[N, C]` with C ≥ 5): top-1
//!   agreement (share of rows whose arg-max agrees) and top-5 agreement (mean share of the
//!   reference's five best classes that are also among the candidate's five best).

use ndarray::ArrayD;
use serde::{Serialize, Serializer};

/// Fewest classes for an output to count as class scores.
const MIN_CLASSES: usize = 5;

/// Running sums for one pair of tensors seen over one or more samples.
#[derive(Clone, Debug, Default)]
pub struct Accumulator {
    elements: usize,
    sum_abs: f64,
    max_abs: f64,
    max_ref: f64,
    sum_ref2: f64,
    sum_cand2: f64,
    sum_dot: f64,
    sum_err2: f64,
    reference_non_finite: usize,
    candidate_non_finite: usize,
    reference_range: Option<(f64, f64)>,
    candidate_range: Option<(f64, f64)>,
    rows: usize,
    top1_hits: usize,
    top5_overlap: usize,
}

/// The metrics of one compared tensor.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metrics {
    /// Elements compared per sample times samples (reference-finite elements only).
    pub elements: usize,
    /// Largest |candidate − reference|.
    pub max_abs: f64,
    /// Mean |candidate − reference|.
    pub mean_abs: f64,
    /// `max_abs` ÷ largest |reference| (0 when both are zero, +∞ when only the reference is).
    #[serde(serialize_with = "finite_or_string")]
    pub max_rel: f64,
    /// Cosine similarity of the flattened tensors.
    pub cosine: f64,
    /// Signal-to-noise ratio in dB.
    #[serde(serialize_with = "finite_or_string")]
    pub snr_db: f64,
    /// Peak signal-to-noise ratio in dB.
    #[serde(serialize_with = "finite_or_string")]
    pub psnr_db: f64,
    /// NaN/±inf elements in the reference (left out of every other metric).
    pub reference_non_finite: usize,
    /// NaN/±inf elements in the candidate where the reference is finite.
    pub candidate_non_finite: usize,
    /// Smallest and largest finite reference value.
    pub reference_range: Option<(f64, f64)>,
    /// Smallest and largest finite candidate value.
    pub candidate_range: Option<(f64, f64)>,
    /// Share of rows whose arg-max agrees (class-score outputs only).
    pub top1: Option<f64>,
    /// Mean share of the reference's top-5 classes among the candidate's top 5.
    pub top5: Option<f64>,
}

/// Writes ±∞ and NaN as the strings `"inf"`, `"-inf"`, `"nan"` (JSON has no such numbers).
fn finite_or_string<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() {
        s.serialize_f64(*v)
    } else if v.is_nan() {
        s.serialize_str("nan")
    } else if *v > 0.0 {
        s.serialize_str("inf")
    } else {
        s.serialize_str("-inf")
    }
}

/// True when a tensor of this shape looks like class scores: `[C]` or `[N, C]` with C ≥ 5.
pub fn is_class_scores(shape: &[usize]) -> bool {
    matches!(shape, [c] | [_, c] if *c >= MIN_CLASSES)
}

fn widen(range: &mut Option<(f64, f64)>, v: f64) {
    *range = Some(match *range {
        None => (v, v),
        Some((lo, hi)) => (lo.min(v), hi.max(v)),
    });
}

/// Indices of the `k` largest values, largest first (NaN ranks lowest; ties keep index order).
fn top_k(row: &[f32], k: usize) -> Vec<usize> {
    let key = |v: f32| if v.is_nan() { f32::NEG_INFINITY } else { v };
    let mut idx: Vec<usize> = (0..row.len()).collect();
    idx.sort_by(|&a, &b| key(row[b]).total_cmp(&key(row[a])).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

impl Accumulator {
    /// Adds one sample. The shapes must agree (checked by the caller, which knows the names).
    pub fn add(&mut self, reference: &ArrayD<f32>, candidate: &ArrayD<f32>) {
        for (&r, &c) in reference.iter().zip(candidate.iter()) {
            if !r.is_finite() {
                self.reference_non_finite += 1;
                continue;
            }
            let r = r as f64;
            widen(&mut self.reference_range, r);
            if !c.is_finite() {
                self.candidate_non_finite += 1;
                continue;
            }
            let c = c as f64;
            widen(&mut self.candidate_range, c);
            let e = c - r;
            self.elements += 1;
            self.sum_abs += e.abs();
            self.max_abs = self.max_abs.max(e.abs());
            self.max_ref = self.max_ref.max(r.abs());
            self.sum_ref2 += r * r;
            self.sum_cand2 += c * c;
            self.sum_dot += r * c;
            self.sum_err2 += e * e;
        }
        if is_class_scores(reference.shape()) {
            let classes = reference.shape()[reference.ndim() - 1];
            let (r, c): (Vec<f32>, Vec<f32>) = (
                reference.iter().copied().collect(),
                candidate.iter().copied().collect(),
            );
            for (rr, cr) in r.chunks(classes).zip(c.chunks(classes)) {
                let (tr, tc) = (top_k(rr, MIN_CLASSES), top_k(cr, MIN_CLASSES));
                self.rows += 1;
                self.top1_hits += (tr[0] == tc[0]) as usize;
                self.top5_overlap += tr.iter().filter(|i| tc.contains(i)).count();
            }
        }
    }

    /// The metrics over every sample added.
    pub fn finish(&self) -> Metrics {
        let n = self.elements.max(1) as f64;
        let rmse = (self.sum_err2 / n).sqrt();
        let ratio_db = |num: f64, den: f64, factor: f64| {
            if den == 0.0 {
                f64::INFINITY
            } else {
                factor * (num / den).log10()
            }
        };
        let cosine = match (self.sum_ref2 == 0.0, self.sum_cand2 == 0.0) {
            _ if self.sum_err2 == 0.0 => 1.0,
            (true, false) | (false, true) => 0.0,
            _ => (self.sum_dot / (self.sum_ref2.sqrt() * self.sum_cand2.sqrt())).clamp(-1.0, 1.0),
        };
        let max_rel = match (self.max_abs == 0.0, self.max_ref == 0.0) {
            (true, _) => 0.0,
            (false, true) => f64::INFINITY,
            _ => self.max_abs / self.max_ref,
        };
        let rows = (self.rows > 0).then_some(self.rows as f64);
        Metrics {
            elements: self.elements,
            max_abs: self.max_abs,
            mean_abs: self.sum_abs / n,
            max_rel,
            cosine,
            snr_db: ratio_db(self.sum_ref2, self.sum_err2, 10.0),
            psnr_db: ratio_db(self.max_ref, rmse, 20.0),
            reference_non_finite: self.reference_non_finite,
            candidate_non_finite: self.candidate_non_finite,
            reference_range: self.reference_range,
            candidate_range: self.candidate_range,
            top1: rows.map(|r| self.top1_hits as f64 / r),
            top5: rows.map(|r| self.top5_overlap as f64 / (r * MIN_CLASSES as f64)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::IxDyn;

    fn arr(shape: &[usize], v: &[f32]) -> ArrayD<f32> {
        ArrayD::from_shape_vec(IxDyn(shape), v.to_vec()).unwrap()
    }

    fn metrics(r: &[f32], c: &[f32]) -> Metrics {
        let mut a = Accumulator::default();
        a.add(&arr(&[r.len()], r), &arr(&[c.len()], c));
        a.finish()
    }

    #[test]
    fn hand_computed_errors() {
        // ref (3, 4), cand (3, 4.5): err (0, 0.5).
        // SNR = 10·log10(25 / 0.25) = 20 dB; RMSE = √(0.25/2); PSNR = 20·log10(4 / 0.35355) = 21.072 dB;
        // cosine = (9 + 18) / (5 · √(9 + 20.25)) = 27 / 27.0416 = 0.998460.
        let m = metrics(&[3.0, 4.0], &[3.0, 4.5]);
        assert_eq!(m.elements, 2);
        assert!((m.max_abs - 0.5).abs() < 1e-12);
        assert!((m.mean_abs - 0.25).abs() < 1e-12);
        assert!((m.max_rel - 0.125).abs() < 1e-12);
        assert!((m.snr_db - 20.0).abs() < 1e-9, "{}", m.snr_db);
        assert!((m.psnr_db - 21.0721).abs() < 1e-3, "{}", m.psnr_db);
        assert!((m.cosine - 0.998460).abs() < 1e-6, "{}", m.cosine);
        assert_eq!(m.top1, None, "2 classes are not class scores");
    }

    #[test]
    fn identical_and_zero_tensors() {
        let m = metrics(&[1.0, -2.0], &[1.0, -2.0]);
        assert_eq!(
            (m.snr_db, m.psnr_db, m.cosine, m.max_rel),
            (f64::INFINITY, f64::INFINITY, 1.0, 0.0)
        );
        let z = metrics(&[0.0, 0.0], &[0.0, 0.0]);
        assert_eq!((z.cosine, z.max_rel), (1.0, 0.0));
        let off = metrics(&[0.0, 0.0], &[1.0, 0.0]);
        assert_eq!(
            (off.cosine, off.max_rel, off.snr_db),
            (0.0, f64::INFINITY, f64::NEG_INFINITY)
        );
        let opposite = metrics(&[1.0, 2.0], &[-1.0, -2.0]);
        assert!((opposite.cosine + 1.0).abs() < 1e-12);
    }

    #[test]
    fn non_finite_values_are_counted_not_averaged() {
        let m = metrics(
            &[f32::NAN, 1.0, 2.0, 3.0],
            &[f32::NAN, f32::INFINITY, 2.0, 3.5],
        );
        assert_eq!(m.reference_non_finite, 1);
        assert_eq!(m.candidate_non_finite, 1);
        assert_eq!(m.elements, 2);
        assert!((m.max_abs - 0.5).abs() < 1e-12);
        assert_eq!(m.reference_range, Some((1.0, 3.0)));
        assert_eq!(m.candidate_range, Some((2.0, 3.5)));
    }

    #[test]
    fn top_k_agreement_over_rows() {
        // Row 0: same order → top-1 agrees, top-5 overlap 5/5.
        // Row 1: reference best is 0, candidate best is 6; reference top 5 = {0,1,2,3,4},
        // candidate top 5 = {6,0,1,2,3} → overlap 4/5.
        let r = [
            9.0, 8.0, 7.0, 6.0, 5.0, 0.0, 0.0, 9.0, 8.0, 7.0, 6.0, 5.0, 0.0, 0.0,
        ];
        let c = [
            9.0, 8.0, 7.0, 6.0, 5.0, 0.0, 0.0, 9.0, 8.0, 7.0, 6.0, 0.0, 0.0, 10.0,
        ];
        let mut a = Accumulator::default();
        a.add(&arr(&[2, 7], &r), &arr(&[2, 7], &c));
        let m = a.finish();
        assert_eq!(m.top1, Some(0.5));
        assert_eq!(m.top5, Some(0.9));
        assert!(is_class_scores(&[1000]) && is_class_scores(&[4, 5]));
        assert!(!is_class_scores(&[4]) && !is_class_scores(&[1, 3, 8]) && !is_class_scores(&[]));
    }

    #[test]
    fn samples_accumulate() {
        let mut a = Accumulator::default();
        a.add(&arr(&[1], &[3.0]), &arr(&[1], &[3.0]));
        a.add(&arr(&[1], &[4.0]), &arr(&[1], &[4.5]));
        let m = a.finish();
        assert_eq!(m, metrics(&[3.0, 4.0], &[3.0, 4.5]));
    }

    #[test]
    fn infinities_serialise_as_strings() {
        let json = serde_json::to_value(metrics(&[1.0], &[1.0])).unwrap();
        assert_eq!(json["snr_db"], "inf");
        assert_eq!(json["max_rel"], 0.0);
    }
}
