//! The batch report: one entry per item, totals, and the merge of shard reports.

use crate::Error;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The report's `format` value.
const FORMAT: &str = "mlpack-batch-report";
/// The report version this build reads and writes.
const VERSION: u32 = 1;

/// What became of an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Made and written.
    Ok,
    /// Failed; the others still ran.
    Failed,
    /// Its output was already made from the same inputs and settings (not rewritten).
    Cached,
    /// Not started because an earlier item failed (`--fail-fast`).
    Skipped,
}

/// One item's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemReport {
    /// The model's path relative to the plan.
    pub model: String,
    /// The variant name.
    pub variant: String,
    /// The variant's command.
    pub command: String,
    /// What became of it.
    pub status: Status,
    /// The package it writes.
    pub output: PathBuf,
    /// Wall time spent on it.
    pub seconds: f64,
    /// The `verify` block of the command's report (ok and cached items that verified).
    pub verify: Option<Value>,
    /// What the command went on despite.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Why it failed or was skipped, on one line.
    pub error: Option<String>,
    /// For a failed item, the exit code the command alone would have ended with.
    pub exit_code: Option<u8>,
}

/// Item counts by status and the wall time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// All items.
    pub items: usize,
    /// Written.
    pub ok: usize,
    /// Up to date already.
    pub cached: usize,
    /// Failed.
    pub failed: usize,
    /// Not started.
    pub skipped: usize,
    /// Wall time of the whole run (for a merged report, the sum of the parts').
    pub seconds: f64,
}

/// The report of a batch run (or of several merged).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchReport {
    /// Always `mlpack-batch-report`.
    pub format: String,
    /// Report version.
    pub version: u32,
    /// The `--shard I/N` this run made, if any.
    pub shard: Option<String>,
    /// Items sorted by (model, variant).
    pub items: Vec<ItemReport>,
    /// Counts by status.
    pub totals: Totals,
}

impl BatchReport {
    /// A report of `items` (sorted here) that took `seconds`.
    pub fn new(shard: Option<String>, mut items: Vec<ItemReport>, seconds: f64) -> BatchReport {
        items.sort_by(|a, b| (&a.model, &a.variant).cmp(&(&b.model, &b.variant)));
        let count = |s: Status| items.iter().filter(|i| i.status == s).count();
        let totals = Totals {
            items: items.len(),
            ok: count(Status::Ok),
            cached: count(Status::Cached),
            failed: count(Status::Failed),
            skipped: count(Status::Skipped),
            seconds: round_ms(seconds),
        };
        BatchReport {
            format: FORMAT.into(),
            version: VERSION,
            shard,
            items,
            totals,
        }
    }

    /// True when every item is ok or cached.
    pub fn succeeded(&self) -> bool {
        self.totals.failed == 0 && self.totals.skipped == 0
    }

    /// Reads a report written by `--report`.
    pub fn read(path: &Path) -> Result<BatchReport, Error> {
        let bytes = crate::input_file::read(path).map_err(|e| crate::input_file::error(path, e))?;
        let report: BatchReport = serde_json::from_slice(&bytes)
            .map_err(|e| Error::invalid(path, format!("not a batch report: {e}")))?;
        if report.format != FORMAT || report.version != VERSION {
            return Err(Error::invalid(
                path,
                format!(
                    "format '{}' version {}; this mlpack reads '{FORMAT}' version {VERSION}",
                    report.format, report.version
                ),
            ));
        }
        Ok(report)
    }

    /// One report of the items of `parts` (the reports of the shards of one plan, read from
    /// `paths`): an item in two parts is invalid input naming the second file.
    pub fn merge(parts: Vec<(PathBuf, BatchReport)>) -> Result<BatchReport, Error> {
        let mut items: Vec<(ItemReport, PathBuf)> = Vec::new();
        let mut seconds = 0.0;
        for (path, part) in parts {
            seconds += part.totals.seconds;
            items.extend(part.items.into_iter().map(|i| (i, path.clone())));
        }
        items.sort_by(|(a, _), (b, _)| (&a.model, &a.variant).cmp(&(&b.model, &b.variant)));
        if let Some(pair) = items
            .windows(2)
            .find(|w| (&w[0].0.model, &w[0].0.variant) == (&w[1].0.model, &w[1].0.variant))
        {
            return Err(Error::invalid(
                &pair[1].1,
                format!(
                    "item {} [{}] is also in {}; merge the reports of disjoint shards",
                    pair[1].0.model,
                    pair[1].0.variant,
                    pair[0].1.display()
                ),
            ));
        }
        Ok(BatchReport::new(
            None,
            items.into_iter().map(|(i, _)| i).collect(),
            seconds,
        ))
    }
}

/// `seconds` rounded to milliseconds.
pub fn round_ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(model: &str, variant: &str, status: Status) -> ItemReport {
        ItemReport {
            model: model.into(),
            variant: variant.into(),
            command: "convert".into(),
            status,
            output: PathBuf::from(format!("out/{model}/{variant}.mlpackage")),
            seconds: 0.5,
            verify: None,
            warnings: Vec::new(),
            error: None,
            exit_code: None,
        }
    }

    #[test]
    fn totals_count_statuses_and_merge_refuses_overlaps() {
        let a = BatchReport::new(
            Some("1/2".into()),
            vec![
                item("b.onnx", "v", Status::Ok),
                item("a.onnx", "v", Status::Failed),
            ],
            1.23456,
        );
        assert_eq!(a.items[0].model, "a.onnx");
        assert_eq!((a.totals.items, a.totals.ok, a.totals.failed), (2, 1, 1));
        assert_eq!(a.totals.seconds, 1.235);
        assert!(!a.succeeded());
        let b = BatchReport::new(
            Some("2/2".into()),
            vec![item("a.onnx", "w", Status::Cached)],
            1.0,
        );
        let merged =
            BatchReport::merge(vec![("a.json".into(), a.clone()), ("b.json".into(), b)]).unwrap();
        let order: Vec<(&str, &str)> = merged
            .items
            .iter()
            .map(|i| (i.model.as_str(), i.variant.as_str()))
            .collect();
        assert_eq!(order, [("a.onnx", "v"), ("a.onnx", "w"), ("b.onnx", "v")]);
        assert_eq!(
            (
                merged.totals.items,
                merged.totals.cached,
                merged.shard.as_deref()
            ),
            (3, 1, None)
        );
        let e = BatchReport::merge(vec![("a.json".into(), a.clone()), ("c.json".into(), a)])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("c.json: item a.onnx [v] is also in a.json"),
            "{e}"
        );
    }
}
