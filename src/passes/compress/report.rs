//! What a compression pass did to each weight, and the totals.

use serde::Serialize;

/// One candidate weight: how it was compressed (or why not) and what it cost.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WeightReport {
    /// The weight's variable name.
    pub name: String,
    /// The ops reading it (names), comma-separated.
    pub op: String,
    /// Their op types, comma-separated.
    pub op_type: String,
    /// Weight shape.
    pub shape: Vec<usize>,
    /// Stored float type before compression (`fp16` or `fp32`).
    pub dtype: String,
    /// Compression scheme, e.g. `palettize kmeans 4-bit per-tensor`.
    pub scheme: String,
    /// Stored bits per weight element after compression (all parameters included).
    pub bits_per_weight: f64,
    /// Bytes stored before.
    pub bytes_before: usize,
    /// Bytes stored after (equal to `bytes_before` when skipped).
    pub bytes_after: usize,
    /// Reconstruction signal-to-noise ratio in dB (`None`: exact reconstruction).
    pub snr_db: Option<f64>,
    /// Largest absolute reconstruction error.
    pub max_abs_error: f64,
    /// Why the weight was left uncompressed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// The pass outcome for a whole program.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CompressReport {
    /// Every weight a spec was chosen for, in program order.
    pub weights: Vec<WeightReport>,
    /// Weights compressed.
    pub compressed: usize,
    /// Weights left as they were (see each `skipped`).
    pub skipped: usize,
    /// Bytes of all reported weights before.
    pub bytes_before: usize,
    /// Bytes of all reported weights after.
    pub bytes_after: usize,
}

impl CompressReport {
    /// Builds the totals from per-weight entries.
    pub fn from_weights(weights: Vec<WeightReport>) -> CompressReport {
        let skipped = weights.iter().filter(|w| w.skipped.is_some()).count();
        CompressReport {
            compressed: weights.len() - skipped,
            skipped,
            bytes_before: weights.iter().map(|w| w.bytes_before).sum(),
            bytes_after: weights.iter().map(|w| w.bytes_after).sum(),
            weights,
        }
    }

    /// `bytes_before / bytes_after` (1 when nothing was stored).
    pub fn ratio(&self) -> f64 {
        if self.bytes_after == 0 {
            1.0
        } else {
            self.bytes_before as f64 / self.bytes_after as f64
        }
    }
}

/// Running sums for the reconstruction error of a weight: signal and noise energy, largest
/// absolute error.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ErrorSums {
    signal: f64,
    noise: f64,
    max_abs: f64,
}

impl ErrorSums {
    /// Adds the elements of `exact` and their reconstructions `approx` (a row: partial sums
    /// run in f32 lanes and are added to the f64 totals once per call).
    pub fn add(&mut self, exact: &[f32], approx: &[f32]) {
        const LANES: usize = 8;
        let mut signal = [0f32; LANES];
        let mut noise = [0f32; LANES];
        let mut max_abs = [0f32; LANES];
        let pairs = exact.chunks_exact(LANES).zip(approx.chunks_exact(LANES));
        for (e, a) in pairs {
            for lane in 0..LANES {
                let d = (e[lane] - a[lane]).abs();
                signal[lane] += e[lane] * e[lane];
                noise[lane] += d * d;
                max_abs[lane] = if d > max_abs[lane] { d } else { max_abs[lane] };
            }
        }
        let tail = exact.len() / LANES * LANES;
        for (&e, &a) in exact[tail..].iter().zip(&approx[tail..]) {
            let d = (e - a).abs();
            signal[0] += e * e;
            noise[0] += d * d;
            max_abs[0] = max_abs[0].max(d);
        }
        self.signal += signal.iter().map(|&s| f64::from(s)).sum::<f64>();
        self.noise += noise.iter().map(|&n| f64::from(n)).sum::<f64>();
        self.max_abs = max_abs
            .iter()
            .fold(self.max_abs, |m, &v| m.max(f64::from(v)));
    }

    /// The sums of both parts.
    pub fn merge(self, other: ErrorSums) -> ErrorSums {
        ErrorSums {
            signal: self.signal + other.signal,
            noise: self.noise + other.noise,
            max_abs: self.max_abs.max(other.max_abs),
        }
    }

    /// SNR in dB (`None` for an exact reconstruction, −∞ for a zero signal).
    pub fn snr_db(&self) -> Option<f64> {
        if self.noise == 0.0 {
            None
        } else if self.signal == 0.0 {
            Some(f64::NEG_INFINITY)
        } else {
            Some(10.0 * (self.signal / self.noise).log10())
        }
    }

    /// The largest absolute error.
    pub fn max_abs(&self) -> f64 {
        self.max_abs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snr_and_max_error() {
        // Signal energy 1 + 4 = 5, noise 0.01 + 0 = 0.01: SNR = 10·log10(500) ≈ 26.99 dB.
        let mut sums = ErrorSums::default();
        sums.add(&[1.0, 2.0], &[1.1, 2.0]);
        assert!((sums.snr_db().unwrap() - 26.9897).abs() < 1e-3);
        assert!((sums.max_abs() - 0.1).abs() < 1e-6);
        // Lanes and tail: nine elements, one error of 3 in the tail.
        let exact = [1.0f32; 9];
        let mut approx = exact;
        approx[8] = 4.0;
        let mut sums = ErrorSums::default();
        sums.add(&exact, &approx);
        assert!((sums.snr_db().unwrap() - 10.0 * (9.0f64 / 9.0).log10()).abs() < 1e-12);
        assert_eq!(sums.max_abs(), 3.0);
        let mut exact_copy = ErrorSums::default();
        exact_copy.add(&[1.0], &[1.0]);
        assert_eq!((exact_copy.snr_db(), exact_copy.max_abs()), (None, 0.0));
    }
}
