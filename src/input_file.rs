//! Opening the files mlpack reads. Only regular files are read: a FIFO, device or folder is
//! refused before it is opened for reading, so nothing blocks or reads forever. Files a model
//! names (external data, package members) must also resolve inside the model's folder, so a
//! symlink cannot lead out of it.

use crate::Error;
use std::fs::File;
use std::io::{self, ErrorKind};
use std::path::Path;

/// The message of the error [`open`] returns for anything but a regular file.
const NOT_REGULAR: &str = "not a regular file (a FIFO, device or folder is not read)";

/// Opens the regular file at `path` for reading (symlinks followed). Anything else is an
/// [`ErrorKind::InvalidInput`] error, which [`error`] turns into invalid input.
pub fn open(path: &Path) -> io::Result<File> {
    if !std::fs::metadata(path)?.is_file() {
        return Err(io::Error::new(ErrorKind::InvalidInput, NOT_REGULAR));
    }
    // Checked again on the open file: the path may have been replaced since. Opening without
    // blocking keeps a FIFO put there meanwhile from stalling the open.
    let file = open_nonblocking(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(ErrorKind::InvalidInput, NOT_REGULAR));
    }
    Ok(file)
}

/// The whole regular file at `path` (see [`open`]).
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut open(path)?, &mut bytes)?;
    Ok(bytes)
}

/// The crate error for a failure of [`open`] or [`read`] on `path`: a file that is not
/// regular is invalid input, anything else an I/O error.
pub fn error(path: &Path, e: io::Error) -> Error {
    if e.kind() == ErrorKind::InvalidInput {
        Error::invalid(path, e.to_string())
    } else {
        Error::io(path, e)
    }
}

/// Checks that `path`, with every symlink resolved, lies inside the folder `root`; the error
/// says where it leads instead.
pub fn check_inside(root: &Path, path: &Path) -> Result<(), String> {
    let real_root = root
        .canonicalize()
        .map_err(|e| format!("{}: {e}", root.display()))?;
    let real = match path.canonicalize() {
        Ok(real) => real,
        // A missing file is reported by whoever opens it.
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    if real.starts_with(&real_root) {
        Ok(())
    } else {
        Err(format!(
            "{} leads outside {} (to {}); files a model names must stay in its folder",
            path.display(),
            root.display(),
            real.display()
        ))
    }
}

#[cfg(target_os = "linux")]
fn open_nonblocking(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(target_os = "linux"))]
fn open_nonblocking(path: &Path) -> io::Result<File> {
    File::open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_inside_the_root_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.bin");
        std::fs::write(&file, b"abc").unwrap();
        assert_eq!(read(&file).unwrap(), b"abc");
        let e = read(dir.path()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(
            error(dir.path(), e).exit_code(),
            crate::ExitCode::InvalidInput
        );
        assert!(read(Path::new("/dev/zero")).is_err());
        assert!(check_inside(dir.path(), &file).is_ok());
        assert!(check_inside(dir.path(), &dir.path().join("missing")).is_ok());
        let inner = dir.path().join("inner");
        std::fs::create_dir(&inner).unwrap();
        #[cfg(unix)]
        {
            let link = inner.join("link.bin");
            std::os::unix::fs::symlink(&file, &link).unwrap();
            assert!(check_inside(&inner, &link)
                .unwrap_err()
                .contains("leads outside"));
            assert!(check_inside(dir.path(), &link).is_ok());
        }
    }
}
