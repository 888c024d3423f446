//! Parsers of numeric flag values: a NaN, an infinity or an absurd count is a usage error
//! naming the value, before any work starts.

use crate::verify::inputs::MAX_SAMPLES;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use serde::de::DeserializeOwned;

/// A parser of one of `names`, each the serde name of a value of the library's `T` (so the
/// library's option types need no clap derive); `--help` lists the names.
pub fn named<T>(names: &'static [&'static str]) -> impl TypedValueParser<Value = T>
where
    T: DeserializeOwned + Clone + Send + Sync + 'static,
{
    PossibleValuesParser::new(names).map(|name| {
        serde_json::from_value(serde_json::Value::String(name))
            .expect("every listed name is the serde name of a value")
    })
}

/// A count of input sets or steps: an integer from 1 to [`MAX_SAMPLES`].
pub fn count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_SAMPLES).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a count from 1 to {MAX_SAMPLES}, got '{s}'"
        )),
    }
}

/// A finite number.
pub fn finite(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("expected a finite number, got '{s}'")),
    }
}

/// A finite number ≥ 0.
pub fn non_negative(s: &str) -> Result<f64, String> {
    match finite(s) {
        Ok(v) if v >= 0.0 => Ok(v),
        _ => Err(format!("expected a finite number >= 0, got '{s}'")),
    }
}

/// A finite number ≥ 0 as f32 (a weight magnitude).
pub fn non_negative_f32(s: &str) -> Result<f32, String> {
    let v = non_negative(s)?;
    let narrow = v as f32;
    if narrow.is_finite() {
        Ok(narrow)
    } else {
        Err(format!("'{s}' is beyond the float32 range"))
    }
}

/// A cosine similarity: a number from -1 to 1.
pub fn cosine(s: &str) -> Result<f64, String> {
    match finite(s) {
        Ok(v) if (-1.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "expected a cosine similarity from -1 to 1, got '{s}'"
        )),
    }
}

/// A fraction from 0 to 1.
pub fn fraction(s: &str) -> Result<f64, String> {
    match finite(s) {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("expected a fraction from 0 to 1, got '{s}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::compress::{
        PaletteGranularity, PaletteModeArg, QuantDtypeArg, QuantGranularity, QuantModeArg,
    };
    use crate::passes::mixed_precision::Fp32Pattern;
    use crate::pipeline::Precision;

    /// Every name a flag lists parses into the library type (a wrong name would panic).
    fn parses_all<T: DeserializeOwned + Clone + Send + Sync + 'static>(names: &[&str]) {
        for name in names {
            serde_json::from_value::<T>(serde_json::Value::String(name.to_string()))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn listed_names_are_the_library_names() {
        parses_all::<Precision>(&["fp16", "fp32", "auto"]);
        parses_all::<Fp32Pattern>(&["layer-norm"]);
        parses_all::<PaletteModeArg>(&["kmeans", "uniform", "unique"]);
        parses_all::<PaletteGranularity>(&["per-tensor", "per-grouped-channel"]);
        parses_all::<QuantDtypeArg>(&["int8", "uint8", "int4", "uint4"]);
        parses_all::<QuantModeArg>(&["symmetric", "affine"]);
        parses_all::<QuantGranularity>(&["per-tensor", "per-channel", "per-block"]);
    }

    #[test]
    fn refuses_nan_infinity_and_absurd_counts() {
        for bad in ["nan", "NaN", "inf", "-inf", "infinity", "1e999", "", "x"] {
            assert!(finite(bad).is_err(), "{bad}");
            assert!(non_negative(bad).is_err(), "{bad}");
            assert!(cosine(bad).is_err(), "{bad}");
            assert!(fraction(bad).is_err(), "{bad}");
        }
        assert!(non_negative("-0.5").is_err());
        assert!(non_negative_f32("1e300").is_err());
        assert!(cosine("1.5").is_err());
        assert!(fraction("-0.1").is_err());
        assert_eq!(cosine("0.99"), Ok(0.99));
        assert_eq!(non_negative("0"), Ok(0.0));
        for bad in [
            "0",
            "-1",
            "18446744073709551615",
            "1000000000000",
            "10001",
            "2.5",
        ] {
            assert!(count(bad).is_err(), "{bad}");
        }
        assert_eq!(count("3"), Ok(3));
        assert_eq!(count("10000"), Ok(10_000));
    }
}
