//! Where a command may write: never onto, inside or above a file or folder it reads, and no
//! two outputs in the same place. One check shared by every command that writes.

use crate::{temp_paths, Error};
use std::path::{Component, Path, PathBuf};

/// Refuses every output (`flag`, path) that is an input, lies inside one or contains one,
/// and any two outputs that are the same or nested: a usage error naming the flag and both
/// paths. Paths are compared after resolving symlinks of their existing part.
pub fn check_outputs(inputs: &[&Path], outputs: &[(&str, &Path)]) -> Result<(), Error> {
    let inputs: Vec<(&Path, PathBuf)> = inputs.iter().map(|p| (*p, resolved(p))).collect();
    let outputs: Vec<(&str, &Path, PathBuf)> = outputs
        .iter()
        .map(|(flag, p)| (*flag, *p, resolved(p)))
        .collect();
    for (k, (flag, shown, out)) in outputs.iter().enumerate() {
        let refuse = |what: String| {
            Err(Error::Usage(format!(
                "{flag} {}: {what}; choose another path (mlpack never writes over what it reads)",
                shown.display()
            )))
        };
        for (input, resolved_input) in &inputs {
            if out == resolved_input {
                return refuse(format!("the output is the input {}", input.display()));
            }
            if out.starts_with(resolved_input) {
                return refuse(format!("lies inside the input {}", input.display()));
            }
            if resolved_input.starts_with(out) {
                return refuse(format!("contains the input {}", input.display()));
            }
        }
        for (other_flag, other, resolved_other) in &outputs[..k] {
            if out.starts_with(resolved_other) || resolved_other.starts_with(out) {
                return refuse(format!(
                    "overlaps the {other_flag} output {}",
                    other.display()
                ));
            }
        }
    }
    Ok(())
}

/// Checks that a report file can be written at `path` before anything else is: its folder
/// exists and the path is not a folder. A usage error naming `flag`.
pub fn check_report_path(flag: &str, path: &Path) -> Result<(), Error> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(Error::Usage(format!(
            "{flag} {}: the folder {} does not exist",
            path.display(),
            parent.display()
        )));
    }
    if path.is_dir() {
        return Err(Error::Usage(format!(
            "{flag} {}: is a folder",
            path.display()
        )));
    }
    Ok(())
}

/// Writes `text` to `path` through a hidden temporary file beside it (see
/// [`crate::temp_paths`]), renamed into place, so that the file is either complete or absent.
pub fn write_atomically(path: &Path, text: &[u8]) -> Result<(), Error> {
    temp_paths::remove_stale(path)?;
    let temp = temp_paths::sibling(path, "tmp")?;
    temp_paths::register(&temp);
    let written = std::fs::write(&temp, text).and_then(|()| std::fs::rename(&temp, path));
    if written.is_err() {
        // Best effort: the error being returned matters more than a failed cleanup.
        let _ = std::fs::remove_file(&temp);
    }
    temp_paths::unregister(&temp);
    written.map_err(|e| Error::io(path, e))
}

/// `path` made absolute, its longest existing prefix canonicalised (symlinks resolved) and
/// the rest normalised (`.` dropped, `..` taking off a component).
fn resolved(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest: Vec<Component> = Vec::new();
    let base = loop {
        if let Ok(real) = existing.canonicalize() {
            break real;
        }
        match (existing.parent(), existing.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                existing = parent;
            }
            _ => break existing.to_path_buf(),
        }
    };
    let mut out = base;
    for c in rest.into_iter().rev() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_outputs_on_inside_or_above_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let input = d.join("outer.mlpackage/inner/p.mlpackage");
        std::fs::create_dir_all(&input).unwrap();
        let model = d.join("m.onnx");
        std::fs::write(&model, b"x").unwrap();
        let check = |out: PathBuf| check_outputs(&[&input, &model], &[("-o", &out)]);
        assert!(check(input.clone()).is_err());
        assert!(check(input.join("x.mlpackage")).is_err());
        assert!(check(d.join("outer.mlpackage")).is_err());
        assert!(check(d.join("outer.mlpackage/inner/../inner/p.mlpackage/y.npy")).is_err());
        assert!(check(d.join("m.onnx")).is_err());
        assert!(check(d.join("./other/../m.onnx")).is_err());
        assert!(check(d.join("new.mlpackage")).is_ok());
        assert!(check(d.join("outer.mlpackage.json")).is_ok());
        let a = d.join("a.mlpackage");
        let same = check_outputs(&[&model], &[("-o", &a), ("--report", &a)]);
        assert!(same.unwrap_err().to_string().contains("--report"));
        #[cfg(unix)]
        {
            let link = d.join("link");
            std::os::unix::fs::symlink(d.join("outer.mlpackage"), &link).unwrap();
            assert!(check(link.join("inner/p.mlpackage/z")).is_err());
        }
    }

    #[test]
    fn writes_whole_files_and_removes_stale_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = dir.path().join(format!(".r.json.tmp-{dead}"));
        std::fs::write(&stale, b"half").unwrap();
        write_atomically(&path, b"{}").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "temporary files left beside the report");
    }

    #[test]
    fn report_folder_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_report_path("--report", &dir.path().join("r.json")).is_ok());
        assert!(check_report_path("--report", &dir.path().join("no/r.json")).is_err());
        assert!(check_report_path("--report", dir.path()).is_err());
    }
}
