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

/// Reconstruction error of `approx` against `exact`: (SNR in dB or `None` if exact, max abs).
pub fn reconstruction_error(exact: &[f32], approx: &[f32]) -> (Option<f64>, f64) {
    let mut signal = 0.0f64;
    let mut noise = 0.0f64;
    let mut max_abs = 0.0f64;
    for (&a, &b) in exact.iter().zip(approx) {
        let (a, b) = (f64::from(a), f64::from(b));
        signal += a * a;
        noise += (a - b) * (a - b);
        max_abs = max_abs.max((a - b).abs());
    }
    let snr = if noise == 0.0 {
        None
    } else if signal == 0.0 {
        Some(f64::NEG_INFINITY)
    } else {
        Some(10.0 * (signal / noise).log10())
    };
    (snr, max_abs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snr_and_max_error() {
        // Signal energy 1 + 4 = 5, noise 0.01 + 0 = 0.01: SNR = 10·log10(500) ≈ 26.99 dB.
        let (snr, max_abs) = reconstruction_error(&[1.0, 2.0], &[1.1, 2.0]);
        assert!((snr.unwrap() - 26.9897).abs() < 1e-3);
        assert!((max_abs - 0.1).abs() < 1e-6);
        assert_eq!(reconstruction_error(&[1.0], &[1.0]), (None, 0.0));
    }
}
