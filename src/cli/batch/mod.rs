//! `mlpack batch`: a plan's variants made of each of its models (see
//! [`crate::pipeline::batch`]), its JSON schema, and the merge of shard reports.

mod schema;
mod variant;

use super::progress::Progress;
use super::{print_json, Cli};
use crate::pipeline::batch::{
    self, junit, BatchOptions, BatchReport, Cache, ItemReport, Plan, Shard, Status,
};
use crate::pipeline::{check_outputs, check_report_path, write_atomically};
use crate::Error;
use clap::{Args, CommandFactory};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Flags of `mlpack batch`.
#[derive(Debug, Args)]
pub struct BatchArgs {
    /// The plan: JSON with `models` (paths or globs relative to it) and `variants` (name →
    /// {"command": ..., flags of that command}); see --schema.
    #[arg(required_unless_present_any = ["schema", "merge_reports"])]
    plan: Option<PathBuf>,
    /// Write DIR/<model stem>/<variant>.mlpackage [default: out/ beside the plan].
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// Make only part I of N: item k (sorted by model, variant; from 0) is in part k mod N + 1.
    #[arg(long, value_name = "I/N", value_parser = clap::value_parser!(Shard))]
    shard: Option<Shard>,
    /// Items made at the same time [default: the number of cores].
    #[arg(long, value_name = "J", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
    /// Write the report (one entry per item, totals) to FILE as JSON.
    #[arg(long, value_name = "FILE.json")]
    report: Option<PathBuf>,
    /// Write the report as JUnit XML (one testcase per item) to FILE.
    #[arg(long, value_name = "FILE.xml")]
    junit: Option<PathBuf>,
    /// Remember finished items in DIR: an item whose model, files and settings (and mlpack
    /// version) are unchanged and whose output is intact is `cached`, not rebuilt.
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// After an item fails, start no more (they are reported `skipped`).
    #[arg(long)]
    fail_fast: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Print the JSON Schema of a plan and exit.
    #[arg(long, exclusive = true)]
    schema: bool,
    /// Merge the --report files of shards into one report (with --report, --junit, --json).
    #[arg(
        long,
        value_name = "REPORT.json",
        num_args = 1..,
        conflicts_with_all = ["plan", "out_dir", "shard", "jobs", "cache", "fail_fast"]
    )]
    merge_reports: Vec<PathBuf>,
}

/// Runs `mlpack batch`.
pub fn execute(args: &BatchArgs, progress: &Progress, quiet: bool) -> Result<(), Error> {
    let cli = Cli::command();
    if args.schema {
        return print_json(&schema::plan_schema(&cli));
    }
    for (flag, path) in report_files(args) {
        check_report_path(flag, path)?;
    }
    if !args.merge_reports.is_empty() {
        return merge(args, quiet);
    }
    let plan = Plan::load(args.plan.as_deref().expect("clap requires PLAN"))?;
    let parsed = plan
        .variants
        .iter()
        .map(|(name, spec)| variant::parse(&plan, name, spec, &cli))
        .collect::<Result<Vec<_>, Error>>()?;
    let variants: Vec<batch::Variant> = parsed.iter().map(|p| p.variant.clone()).collect();
    let out_dir = match &args.out_dir {
        Some(dir) => dir.clone(),
        None if plan.dir == Path::new(".") => PathBuf::from("out"),
        None => plan.dir.join("out"),
    };
    let exclude: Vec<&Path> = std::iter::once(out_dir.as_path())
        .chain(args.cache.as_deref())
        .collect();
    let models = plan.models(&exclude)?;
    let items = batch::items(&models, &variants, &out_dir, args.shard);
    check_paths(args, &plan, &variants, &items)?;
    let options = BatchOptions {
        jobs: args.jobs.map_or_else(
            || std::thread::available_parallelism().map_or(1, usize::from),
            usize::from,
        ),
        fail_fast: args.fail_fast,
        cache: args.cache.as_deref().map(Cache::open).transpose()?,
    };
    let start = Instant::now();
    let reports = batch::run_batch(
        &items,
        &variants,
        &options,
        &|item| parsed[item.variant_index].run(item),
        &|r| show(r, progress),
    );
    let shard = args.shard.map(|s| s.to_string());
    let report = BatchReport::new(shard, reports, start.elapsed().as_secs_f64());
    finish(args, &report, quiet)
}

/// The `--report` and `--junit` files asked for, with their flags.
fn report_files(args: &BatchArgs) -> Vec<(&'static str, &Path)> {
    [("--report", &args.report), ("--junit", &args.junit)]
        .into_iter()
        .filter_map(|(flag, p)| Some((flag, p.as_deref()?)))
        .collect()
}

/// Refuses outputs (packages, report files) onto, inside or above anything the plan reads.
fn check_paths(
    args: &BatchArgs,
    plan: &Plan,
    variants: &[batch::Variant],
    items: &[batch::Item],
) -> Result<(), Error> {
    let mut inputs: Vec<&Path> = vec![plan.path.as_path()];
    inputs.extend(items.iter().map(|i| i.model.path.as_path()));
    inputs.extend(
        variants
            .iter()
            .flat_map(|v| v.inputs.iter().map(PathBuf::as_path)),
    );
    inputs.sort();
    inputs.dedup();
    let mut outputs = report_files(args);
    outputs.extend(items.iter().map(|i| ("--out-dir", i.output.as_path())));
    check_outputs(&inputs, &outputs)
}

/// On a terminal, one line per finished item; a failure is an error line in any case.
fn show(r: &ItemReport, progress: &Progress) {
    let what = format!("{} [{}]", r.model, r.variant);
    match r.status {
        Status::Failed => {
            progress.clear();
            eprintln!(
                "mlpack: error: {what}: {}",
                r.error.as_deref().unwrap_or("failed")
            );
        }
        status => {
            let verdict = r
                .verify
                .as_ref()
                .and_then(|v| v.get("verdict"))
                .and_then(|v| v.as_str())
                .map(|v| format!(", verify {v}"))
                .unwrap_or_default();
            progress.line(&format!(
                "{:<7} {what} ({:.1}s{verdict})",
                status_name(status),
                r.seconds
            ));
        }
    }
}

fn status_name(status: Status) -> &'static str {
    match status {
        Status::Ok => "ok",
        Status::Failed => "failed",
        Status::Cached => "cached",
        Status::Skipped => "skipped",
    }
}

/// `--merge-reports`: one report of the shards' reports.
fn merge(args: &BatchArgs, quiet: bool) -> Result<(), Error> {
    let inputs: Vec<&Path> = args.merge_reports.iter().map(PathBuf::as_path).collect();
    check_outputs(&inputs, &report_files(args))?;
    let parts = args
        .merge_reports
        .iter()
        .map(|p| Ok((p.clone(), BatchReport::read(p)?)))
        .collect::<Result<Vec<_>, Error>>()?;
    finish(args, &BatchReport::merge(parts)?, quiet)
}

/// Writes the report files, prints the report or its summary, and fails (exit 7) when an
/// item did not succeed.
fn finish(args: &BatchArgs, report: &BatchReport, quiet: bool) -> Result<(), Error> {
    if let Some(path) = &args.report {
        let text =
            serde_json::to_string_pretty(report).map_err(|e| Error::Internal(e.to_string()))?;
        write_atomically(path, (text + "\n").as_bytes())?;
    }
    if let Some(path) = &args.junit {
        write_atomically(path, junit(report).as_bytes())?;
    }
    let t = &report.totals;
    if args.json {
        print_json(report)?;
    } else if !quiet {
        println!(
            "batch: {} items{}: {} ok, {} cached, {} failed, {} skipped ({:.1}s)",
            t.items,
            report
                .shard
                .as_deref()
                .map(|s| format!(" in shard {s}"))
                .unwrap_or_default(),
            t.ok,
            t.cached,
            t.failed,
            t.skipped,
            t.seconds
        );
    }
    if report.succeeded() {
        return Ok(());
    }
    Err(Error::ItemsFailed(format!(
        "{} of {} batch items failed{}",
        t.failed,
        t.items,
        if t.skipped > 0 {
            format!(" and {} were skipped", t.skipped)
        } else {
            String::new()
        }
    )))
}
