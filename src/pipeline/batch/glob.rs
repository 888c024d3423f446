//! Model paths and globs of a plan, relative to its folder: `*` and `?` match within one
//! path component, `**` matches any number of folders. A glob yields the `.onnx` and `.pt2`
//! files and `.mlpackage` folders it matches; a literal path yields itself if it exists.

use crate::ir::glob;
use crate::pipeline::ModelKind;
use std::path::{Path, PathBuf};

/// The models `pattern` names under `dir`, as (name relative to `dir` with `/` separators,
/// path) pairs in sorted order. Matches of a wildcard inside one of `exclude` are left out.
pub fn expand(
    dir: &Path,
    pattern: &str,
    exclude: &[&Path],
) -> Result<Vec<(String, PathBuf)>, String> {
    let parts: Vec<&str> = pattern
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.is_empty() {
        return Err(format!("'{pattern}' names no file"));
    }
    let (start, prefix) = if pattern.starts_with('/') {
        (PathBuf::from("/"), "/".to_string())
    } else {
        (dir.to_path_buf(), String::new())
    };
    if !parts.iter().any(|p| is_wild(p)) {
        let path = parts.iter().fold(start, |p, c| p.join(c));
        let found = path.symlink_metadata().is_ok();
        return Ok(found
            .then(|| (format!("{prefix}{}", parts.join("/")), path))
            .into_iter()
            .collect());
    }
    let exclude: Vec<PathBuf> = exclude.iter().map(|p| resolved(p)).collect();
    let mut found = Vec::new();
    walk(&start, prefix, &parts, &exclude, &mut found);
    found.sort();
    found.dedup();
    Ok(found)
}

fn is_wild(component: &str) -> bool {
    component.contains(['*', '?'])
}

/// Appends to `found` the matches of `parts` below `path` (named `name`).
fn walk(
    path: &Path,
    name: String,
    parts: &[&str],
    exclude: &[PathBuf],
    found: &mut Vec<(String, PathBuf)>,
) {
    let Some((first, rest)) = parts.split_first() else {
        let excluded = exclude.iter().any(|e| resolved(path).starts_with(e));
        let model = match ModelKind::of(path) {
            Ok(ModelKind::Package) => path.is_dir(),
            Ok(_) => path.is_file(),
            Err(_) => false,
        };
        if model && !excluded {
            found.push((name, path.to_path_buf()));
        }
        return;
    };
    let child = |entry: &str| {
        if name.is_empty() || name.ends_with('/') {
            format!("{name}{entry}")
        } else {
            format!("{name}/{entry}")
        }
    };
    if !is_wild(first) {
        walk(&path.join(first), child(first), rest, exclude, found);
        return;
    }
    // A package is a model, not a folder to search in.
    let searchable = path.is_dir() && !matches!(ModelKind::of(path), Ok(ModelKind::Package));
    if !searchable {
        return;
    }
    if *first == "**" {
        walk(path, name.clone(), rest, exclude, found);
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    for entry in entries.flatten() {
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        // Hidden entries (work-in-progress outputs among them) only match a pattern that
        // names them.
        if entry_name.starts_with('.') && !first.starts_with('.') {
            continue;
        }
        if *first == "**" {
            if entry.path().is_dir() {
                walk(&entry.path(), child(&entry_name), parts, exclude, found);
            }
        } else if glob(first, &entry_name) {
            walk(&entry.path(), child(&entry_name), rest, exclude, found);
        }
    }
}

/// `path` with symlinks resolved as far as it exists.
fn resolved(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_models_within_and_across_folders() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in [
            "a.onnx",
            "b.pt2",
            "c.txt",
            "m/x.onnx",
            "m/n/y.onnx",
            ".hidden.onnx",
        ] {
            std::fs::create_dir_all(d.join(f).parent().unwrap()).unwrap();
            std::fs::write(d.join(f), b"x").unwrap();
        }
        std::fs::create_dir_all(d.join("p.mlpackage/Data")).unwrap();
        std::fs::write(d.join("p.mlpackage/Data/inner.onnx"), b"x").unwrap();
        let names = |pattern: &str, exclude: &[&Path]| -> Vec<String> {
            expand(d, pattern, exclude)
                .unwrap()
                .into_iter()
                .map(|(n, _)| n)
                .collect()
        };
        assert_eq!(names("*", &[]), ["a.onnx", "b.pt2", "p.mlpackage"]);
        assert_eq!(names("*.onnx", &[]), ["a.onnx"]);
        assert_eq!(names("?.pt2", &[]), ["b.pt2"]);
        assert_eq!(
            names("**/*.onnx", &[]),
            ["a.onnx", "m/n/y.onnx", "m/x.onnx"]
        );
        assert_eq!(names("m/**/*.onnx", &[&d.join("m/n")]), ["m/x.onnx"]);
        assert_eq!(names("./m/x.onnx", &[]), ["m/x.onnx"]);
        assert_eq!(names(".*.onnx", &[]), [".hidden.onnx"]);
        assert!(names("nothing/*.onnx", &[]).is_empty());
        assert!(names("missing.onnx", &[]).is_empty());
    }
}
