//! The driver with stand-in item runners: isolation, fail-fast, panics, the cache.

use super::*;
use std::sync::atomic::AtomicUsize;

/// Models `names` (files holding their own name) in `dir`, and a plan-like model list.
fn models(dir: &Path, names: &[&str]) -> Vec<Model> {
    names
        .iter()
        .map(|n| {
            let path = dir.join(n);
            std::fs::write(&path, n.as_bytes()).unwrap();
            Model {
                name: n.to_string(),
                stem: Path::new(n)
                    .file_stem()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                path,
            }
        })
        .collect()
}

fn variant(name: &str, settings: &str) -> Variant {
    Variant {
        name: name.into(),
        command: "convert".into(),
        settings: settings.into(),
        inputs: Vec::new(),
    }
}

/// Writes a one-file "package" at the output, failing for models called `bad*`.
fn fake(item: &Item) -> Result<ItemOutcome, Error> {
    if item.model.name.starts_with("bad") {
        return Err(Error::invalid(&item.model.path, "broken\nsecond line"));
    }
    if item.model.name.starts_with("panic") {
        panic!("kernel bug");
    }
    std::fs::create_dir_all(&item.output).unwrap();
    std::fs::write(item.output.join("f"), item.model.name.as_bytes()).unwrap();
    Ok(ItemOutcome {
        verify: Some(serde_json::json!({"passed": true})),
        warnings: Vec::new(),
    })
}

fn options(jobs: usize, fail_fast: bool, cache: Option<Cache>) -> BatchOptions {
    BatchOptions {
        jobs,
        fail_fast,
        cache,
    }
}

fn statuses(reports: &[ItemReport]) -> Vec<(String, String, Status)> {
    reports
        .iter()
        .map(|r| (r.model.clone(), r.variant.clone(), r.status))
        .collect()
}

#[test]
fn items_are_sorted_and_sharded() {
    let dir = tempfile::tempdir().unwrap();
    let m = models(dir.path(), &["b.onnx", "a.pt2"]);
    let v = [variant("z", ""), variant("y", "")];
    let all = items(&m, &v, Path::new("out"), None);
    let names: Vec<String> = all
        .iter()
        .map(|i| format!("{}:{}", i.model.name, i.variant))
        .collect();
    assert_eq!(names, ["a.pt2:y", "a.pt2:z", "b.onnx:y", "b.onnx:z"]);
    assert_eq!(all[1].output, Path::new("out/a/z.mlpackage"));
    let second = items(&m, &v, Path::new("out"), Some(Shard { index: 2, count: 3 }));
    let names: Vec<String> = second
        .iter()
        .map(|i| format!("{}:{}", i.model.name, i.variant))
        .collect();
    assert_eq!(names, ["a.pt2:z"]);
}

#[test]
fn failures_and_panics_are_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let m = models(dir.path(), &["a.onnx", "bad.onnx", "panic.onnx", "z.onnx"]);
    let v = [variant("v", "")];
    let all = items(&m, &v, &dir.path().join("out"), None);
    let reports = run_batch(&all, &v, &options(3, false, None), &fake, &|_| {});
    let s: Vec<Status> = reports.iter().map(|r| r.status).collect();
    assert_eq!(s, [Status::Ok, Status::Failed, Status::Failed, Status::Ok]);
    assert_eq!(
        reports[1].error.as_deref(),
        Some(&*format!("{}: broken; second line", m[1].path.display()))
    );
    assert_eq!(reports[1].exit_code, Some(4));
    assert!(reports[2]
        .error
        .as_deref()
        .unwrap()
        .contains("panicked: kernel bug"));
    assert_eq!(reports[2].exit_code, Some(1));
    assert!(dir.path().join("out/z/v.mlpackage/f").is_file());
    assert!(!dir.path().join("out/bad").exists());
    assert_eq!(reports[0].verify, Some(serde_json::json!({"passed": true})));
}

#[test]
fn fail_fast_skips_the_items_not_started() {
    let dir = tempfile::tempdir().unwrap();
    let m = models(dir.path(), &["a.onnx", "bad.onnx", "c.onnx", "d.onnx"]);
    let v = [variant("v", "")];
    let all = items(&m, &v, &dir.path().join("out"), None);
    let seen = AtomicUsize::new(0);
    let reports = run_batch(&all, &v, &options(1, true, None), &fake, &|_| {
        seen.fetch_add(1, Ordering::SeqCst);
    });
    let s: Vec<Status> = reports.iter().map(|r| r.status).collect();
    assert_eq!(
        s,
        [Status::Ok, Status::Failed, Status::Skipped, Status::Skipped]
    );
    assert_eq!(seen.load(Ordering::SeqCst), 4);
    assert!(!dir.path().join("out/c").exists());
}

#[test]
fn the_cache_skips_finished_items_until_an_input_changes() {
    let dir = tempfile::tempdir().unwrap();
    let m = models(dir.path(), &["a.onnx", "b.onnx"]);
    let v = [variant("p", "nbits=4"), variant("q", "nbits=6")];
    let out = dir.path().join("out");
    let cache = || Some(Cache::open(&dir.path().join("cache")).unwrap());
    let all = items(&m, &v, &out, None);
    let first = run_batch(&all, &v, &options(2, false, cache()), &fake, &|_| {});
    assert!(first.iter().all(|r| r.status == Status::Ok));
    let second = run_batch(&all, &v, &options(2, false, cache()), &fake, &|_| {});
    assert!(
        second.iter().all(|r| r.status == Status::Cached),
        "{:?}",
        statuses(&second)
    );
    assert_eq!(second[0].verify, first[0].verify);
    // A changed model reruns only its own items; a changed output reruns only itself.
    std::fs::write(&m[0].path, b"new weights").unwrap();
    std::fs::write(out.join("b/q.mlpackage/f"), b"tampered").unwrap();
    let third = run_batch(&all, &v, &options(2, false, cache()), &fake, &|_| {});
    let s: Vec<Status> = third.iter().map(|r| r.status).collect();
    assert_eq!(s, [Status::Ok, Status::Ok, Status::Cached, Status::Ok]);
    // Other settings are another key.
    let changed = [variant("p", "nbits=2"), variant("q", "nbits=6")];
    let fourth = run_batch(&all, &changed, &options(2, false, cache()), &fake, &|_| {});
    let s: Vec<Status> = fourth.iter().map(|r| r.status).collect();
    assert_eq!(s, [Status::Ok, Status::Cached, Status::Ok, Status::Cached]);
}
