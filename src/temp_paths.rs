//! Hidden work-in-progress paths beside an output, `.<name>.<tag>-<pid>`: a package or chain
//! is built there and renamed into place. They are removed on failure, on SIGINT/SIGTERM
//! (see [`remove_on_signals`]), and, when a process was killed outright, by the next write to
//! the same output once that process is gone (see [`remove_stale`]).

use crate::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The work-in-progress paths of this process that a signal must remove.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The hidden path `.<name>.<tag>-<pid>` beside `dest` for this process.
pub fn sibling(dest: &Path, tag: &str) -> Result<PathBuf, Error> {
    let name = dest
        .file_name()
        .ok_or_else(|| Error::Usage(format!("{}: not a valid output path", dest.display())))?
        .to_string_lossy();
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok(parent.join(format!(".{name}.{tag}-{}", std::process::id())))
}

/// Marks `path` as this process's work in progress, removed if a signal ends the process.
pub fn register(path: &Path) {
    live().push(path.to_path_buf());
}

/// `path` is finished (renamed into place or removed).
pub fn unregister(path: &Path) {
    live().retain(|p| p != path);
}

fn live() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Removes the work-in-progress paths beside `dest` (`.<name>.tmp-<pid>`, `.<name>.old-<pid>`)
/// left by processes that no longer run.
pub fn remove_stale(dest: &Path) -> Result<(), Error> {
    let Some(name) = dest.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Ok(());
    };
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Ok(entries) = fs::read_dir(parent) else {
        return Ok(());
    };
    let own = std::process::id();
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file_name.strip_prefix(&format!(".{name}.")) else {
            continue;
        };
        let pid = ["tmp-", "old-"]
            .iter()
            .find_map(|tag| rest.strip_prefix(tag))
            .and_then(|pid| pid.parse::<u32>().ok());
        match pid {
            Some(pid) if pid != own && !process_runs(pid) => remove_any(&entry.path())?,
            _ => {}
        }
    }
    Ok(())
}

/// Removes a file or directory tree if it exists.
pub fn remove_any(path: &Path) -> Result<(), Error> {
    let removed = match path.symlink_metadata() {
        Err(_) => return Ok(()),
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
    };
    removed.map_err(|e| Error::io(path, e))
}

/// True when process `pid` exists (or cannot be told apart from one that does).
#[cfg(target_os = "linux")]
fn process_runs(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let sent = unsafe { libc::kill(pid, 0) };
    sent == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[cfg(not(target_os = "linux"))]
fn process_runs(_pid: u32) -> bool {
    true
}

/// Makes SIGINT and SIGTERM remove this process's work-in-progress paths before it ends (by
/// the same signal, so the exit status still tells). Call before any other thread starts:
/// the signals are blocked in every thread and taken by one that waits for them.
#[cfg(target_os = "linux")]
pub fn remove_on_signals() {
    // SAFETY: plain libc signal-set calls on a zeroed, initialised sigset_t owned here.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return;
        }
        let waiter = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let mut signal: libc::c_int = 0;
                if libc::sigwait(&set, &mut signal) != 0 {
                    return;
                }
                for path in live().drain(..) {
                    // Best effort: the process is ending either way.
                    let _ = remove_any(&path);
                }
                libc::signal(signal, libc::SIG_DFL);
                libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
                libc::raise(signal);
            });
        if waiter.is_err() {
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        }
    }
}

/// Elsewhere the default signal behaviour stays.
#[cfg(not(target_os = "linux"))]
pub fn remove_on_signals() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_paths_of_ended_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("m.mlpackage");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = dir.path().join(format!(".m.mlpackage.tmp-{dead}"));
        let old = dir.path().join(format!(".m.mlpackage.old-{dead}"));
        let own = sibling(&dest, "tmp").unwrap();
        let other = dir.path().join(format!(".n.mlpackage.tmp-{dead}"));
        for p in [&stale, &old, &own, &other] {
            fs::create_dir(p).unwrap();
        }
        remove_stale(&dest).unwrap();
        assert!(!stale.exists() && !old.exists());
        assert!(own.exists(), "this process's own work was removed");
        assert!(other.exists(), "another output's work was removed");
    }
}
