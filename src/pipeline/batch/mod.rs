//! `batch`: every variant of a plan applied to every model it names, items run in parallel
//! and isolated from each other, optionally sharded across CI jobs and cached. How one item
//! is made is the caller's closure (the CLI maps variants onto its commands), so this driver
//! knows nothing of flags.

mod cache;
mod glob;
mod junit;
mod plan;
mod report;
mod shard;

pub use cache::{item_key, model_digest, path_digest, Cache, CacheEntry};
pub use junit::junit;
pub use plan::{Model, Plan, VariantSpec};
pub use report::{round_ms, BatchReport, ItemReport, Status, Totals};
pub use shard::Shard;

use crate::Error;
use rayon::prelude::*;
use serde_json::Value;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// A variant ready to run, as the driver sees it.
#[derive(Clone, Debug)]
pub struct Variant {
    /// Its name in the plan.
    pub name: String,
    /// The command it runs.
    pub command: String,
    /// Its settings as normalized text (part of the cache key).
    pub settings: String,
    /// Files and folders it reads besides the model (recipe, calibration), hashed into the
    /// cache key.
    pub inputs: Vec<PathBuf>,
}

/// One model × variant of a batch.
#[derive(Clone, Debug)]
pub struct Item {
    /// The model.
    pub model: Model,
    /// The variant's name.
    pub variant: String,
    /// The variant's position in the variant list.
    pub variant_index: usize,
    /// The package to write: `<out dir>/<model stem>/<variant>.mlpackage`.
    pub output: PathBuf,
}

/// What a successful item reports.
#[derive(Clone, Debug, Default)]
pub struct ItemOutcome {
    /// The `verify` block of the command's report.
    pub verify: Option<Value>,
    /// What the command went on despite.
    pub warnings: Vec<String>,
}

/// How to run the items.
#[derive(Clone, Debug)]
pub struct BatchOptions {
    /// Items run at the same time.
    pub jobs: usize,
    /// After a failure, start no more items (they are `skipped`).
    pub fail_fast: bool,
    /// Where finished items are remembered (`None`: every item is made).
    pub cache: Option<Cache>,
}

/// Makes one item: writes `item.output` (replacing it) or returns why not.
pub type ItemRunner<'a> = dyn Fn(&Item) -> Result<ItemOutcome, Error> + Sync + 'a;

/// Every (model, variant) pair sorted by (model name, variant name), outputs under
/// `out_dir`; with a shard, only the items that shard holds.
pub fn items(
    models: &[Model],
    variants: &[Variant],
    out_dir: &Path,
    shard: Option<Shard>,
) -> Vec<Item> {
    let mut order: Vec<(usize, &Variant)> = variants.iter().enumerate().collect();
    order.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    let mut models: Vec<&Model> = models.iter().collect();
    models.sort_by(|a, b| a.name.cmp(&b.name));
    models
        .iter()
        .flat_map(|m| order.iter().map(move |(k, v)| (*m, *k, *v)))
        .enumerate()
        .filter(|(k, _)| shard.is_none_or(|s| s.holds(*k)))
        .map(|(_, (model, variant_index, variant))| Item {
            model: model.clone(),
            variant: variant.name.clone(),
            variant_index,
            output: out_dir
                .join(&model.stem)
                .join(format!("{}.mlpackage", variant.name)),
        })
        .collect()
}

/// Runs `items` on `options.jobs` threads with `run_item`, each isolated: a failure (or a
/// panic) is that item's `failed` report and the others still run. `on_done` sees each report
/// as it is made; the result holds them in item order.
pub fn run_batch(
    items: &[Item],
    variants: &[Variant],
    options: &BatchOptions,
    run_item: &ItemRunner,
    on_done: &(dyn Fn(&ItemReport) + Sync),
) -> Vec<ItemReport> {
    let keys = options
        .cache
        .as_ref()
        .map(|_| cache_keys(items, variants))
        .unwrap_or_else(|| vec![None; items.len()]);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let done: Mutex<Vec<Option<ItemReport>>> = Mutex::new(vec![None; items.len()]);
    std::thread::scope(|s| {
        for _ in 0..options.jobs.clamp(1, items.len().max(1)) {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = items.get(k) else { break };
                let command = &variants[item.variant_index].command;
                let report = if stop.load(Ordering::SeqCst) {
                    let mut r = report(item, command, Status::Skipped, 0.0);
                    r.error = Some("not started: an earlier item failed (--fail-fast)".into());
                    r
                } else {
                    let cache = options.cache.as_ref().zip(keys[k].as_deref());
                    run_one(item, command, cache, run_item)
                };
                if report.status == Status::Failed && options.fail_fast {
                    stop.store(true, Ordering::SeqCst);
                }
                on_done(&report);
                done.lock().unwrap_or_else(|p| p.into_inner())[k] = Some(report);
            });
        }
    });
    // The model folders of items that all failed are left empty: removed (best effort;
    // `remove_dir` only removes an empty folder).
    for dir in items.iter().filter_map(|i| i.output.parent()) {
        let _ = std::fs::remove_dir(dir);
    }
    done.into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|r| r.expect("every item index is taken by one worker"))
        .collect()
}

/// Makes one item (or finds it in `cache` under its key).
fn run_one(
    item: &Item,
    command: &str,
    cache: Option<(&Cache, &str)>,
    run_item: &ItemRunner,
) -> ItemReport {
    let start = Instant::now();
    if let Some(entry) = cache.and_then(|(c, key)| c.lookup(item, key)) {
        let mut r = report(item, command, Status::Cached, start.elapsed().as_secs_f64());
        r.verify = entry.verify;
        r.warnings = entry.warnings;
        return r;
    }
    let made = item
        .output
        .parent()
        .map_or(Ok(()), |dir| {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
        })
        .and_then(|()| {
            catch_unwind(AssertUnwindSafe(|| run_item(item))).unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(Error::Internal(format!("panicked: {what}")))
            })
        });
    match made {
        Ok(outcome) => {
            let mut r = report(item, command, Status::Ok, 0.0);
            r.warnings = outcome.warnings;
            if let Some((cache, key)) = cache {
                if let Err(e) = cache.store(item, key, outcome.verify.clone(), &r.warnings) {
                    r.warnings.push(format!("not cached: {}", e.one_line()));
                }
            }
            r.verify = outcome.verify;
            r.seconds = round_ms(start.elapsed().as_secs_f64());
            r
        }
        Err(e) => {
            let mut r = report(item, command, Status::Failed, start.elapsed().as_secs_f64());
            r.error = Some(e.one_line());
            r.exit_code = Some(e.exit_code() as u8);
            r
        }
    }
}

/// Each item's cache key; `None` where an input cannot be read (the item then runs and
/// reports that itself).
fn cache_keys(items: &[Item], variants: &[Variant]) -> Vec<Option<String>> {
    let mut models: Vec<&Path> = items.iter().map(|i| i.model.path.as_path()).collect();
    models.sort();
    models.dedup();
    let model_digests: HashMap<&Path, String> = models
        .par_iter()
        .filter_map(|p| Some((*p, model_digest(p).ok()?)))
        .collect();
    let variant_digests: Vec<Option<Vec<String>>> = variants
        .par_iter()
        .map(|v| v.inputs.iter().map(|p| path_digest(p).ok()).collect())
        .collect();
    items
        .iter()
        .map(|item| {
            let v = &variants[item.variant_index];
            let model = model_digests.get(item.model.path.as_path())?;
            let inputs = variant_digests[item.variant_index].as_ref()?;
            Some(item_key(&v.command, &v.settings, model, inputs))
        })
        .collect()
}

/// A report of `item` with `status`, no verify figures and no error.
fn report(item: &Item, command: &str, status: Status, seconds: f64) -> ItemReport {
    ItemReport {
        model: item.model.name.clone(),
        variant: item.variant.clone(),
        command: command.to_string(),
        status,
        output: item.output.clone(),
        seconds: round_ms(seconds),
        verify: None,
        warnings: Vec::new(),
        error: None,
        exit_code: None,
    }
}

#[cfg(test)]
mod tests;
