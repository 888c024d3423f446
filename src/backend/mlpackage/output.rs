//! The weight file's sink: an append-only file written with direct I/O where the platform
//! and filesystem allow it, buffered otherwise.
//!
//! The file is synced to disk when it is finished, so passing it through the page cache
//! would only add a copy and fill memory with pages nothing reads back; for a model of
//! several gigabytes that is also what evicts the user's other work. Direct writes go from
//! an aligned staging buffer in whole blocks; the last block is zero-padded and the file cut
//! back to its length at the end.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Alignment of direct writes: buffer address, file offset and length (a multiple of every
/// common logical block size).
const BLOCK: usize = 4096;
/// Bytes staged between direct writes.
const STAGE: usize = 8 << 20;

/// An output file being appended to.
pub struct OutputFile {
    path: PathBuf,
    sink: Sink,
}

enum Sink {
    Buffered(BufWriter<File>),
    Direct(DirectWriter),
}

/// Appends through an aligned staging buffer that is written out whole.
struct DirectWriter {
    file: File,
    /// Backing storage; `stage` starts at an aligned offset inside it.
    buffer: Vec<u8>,
    start: usize,
    /// Bytes staged.
    staged: usize,
    /// Bytes already written to the file (a multiple of [`STAGE`]).
    written: u64,
}

impl OutputFile {
    /// Creates (or truncates) the file at `path`.
    pub fn create(path: &Path) -> io::Result<OutputFile> {
        let sink = match open_direct(path) {
            Some(file) => Sink::Direct(DirectWriter::new(file)),
            None => Sink::Buffered(BufWriter::new(File::create(path)?)),
        };
        Ok(OutputFile {
            path: path.to_path_buf(),
            sink,
        })
    }

    /// Appends `bytes`.
    pub fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let direct = match &mut self.sink {
                Sink::Buffered(file) => return file.write_all(bytes),
                Sink::Direct(direct) => direct,
            };
            let taken = direct.stage(bytes);
            bytes = &bytes[taken..];
            if direct.staged == STAGE {
                self.flush_stage()?;
            }
        }
        Ok(())
    }

    /// Writes everything appended, overwrites the start of the file with `head` (a header
    /// whose counts are only known at the end) and syncs the file to disk.
    pub fn finish(mut self, head: &[u8]) -> io::Result<()> {
        self.flush_stage()?;
        let file = match self.sink {
            Sink::Buffered(file) => file.into_inner().map_err(|e| e.into_error())?,
            Sink::Direct(direct) => {
                // Cut the padding of the last block; the header is patched through the page
                // cache, where the sync below picks it up.
                drop(direct.file);
                let file = OpenOptions::new().write(true).open(&self.path)?;
                file.set_len(direct.written)?;
                file
            }
        };
        patch_and_sync(file, head)
    }

    /// Writes the staged bytes (the last, partial stage zero-padded to whole blocks). On a
    /// filesystem that refuses direct writes, switches to buffered writing instead.
    fn flush_stage(&mut self) -> io::Result<()> {
        let Sink::Direct(direct) = &mut self.sink else {
            return Ok(());
        };
        match direct.write_stage() {
            Ok(()) => Ok(()),
            Err(e) if direct.written == 0 && e.raw_os_error() == Some(EINVAL) => {
                let mut file = BufWriter::new(OpenOptions::new().write(true).open(&self.path)?);
                file.write_all(direct.staged_bytes())?;
                self.sink = Sink::Buffered(file);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// Overwrites the start of `file` with `head` and syncs it.
fn patch_and_sync(mut file: File, head: &[u8]) -> io::Result<()> {
    file.seek(SeekFrom::Start(0))?;
    file.write_all(head)?;
    file.sync_all()
}

impl DirectWriter {
    fn new(file: File) -> DirectWriter {
        let buffer = vec![0u8; STAGE + BLOCK];
        let start = buffer.as_ptr().align_offset(BLOCK);
        DirectWriter {
            file,
            buffer,
            start,
            staged: 0,
            written: 0,
        }
    }

    /// Copies as much of `bytes` as fits into the stage; returns how much that was.
    fn stage(&mut self, bytes: &[u8]) -> usize {
        let taken = bytes.len().min(STAGE - self.staged);
        let at = self.start + self.staged;
        self.buffer[at..at + taken].copy_from_slice(&bytes[..taken]);
        self.staged += taken;
        taken
    }

    fn staged_bytes(&self) -> &[u8] {
        &self.buffer[self.start..self.start + self.staged]
    }

    /// Writes the stage at the end of the file, padded to whole blocks, and empties it. Only
    /// the last stage may be partial.
    fn write_stage(&mut self) -> io::Result<()> {
        if self.staged == 0 {
            return Ok(());
        }
        let padded = self.staged.next_multiple_of(BLOCK);
        self.buffer[self.start + self.staged..self.start + padded].fill(0);
        write_all_at(
            &self.file,
            &self.buffer[self.start..self.start + padded],
            self.written,
        )?;
        self.written += self.staged as u64;
        self.staged = 0;
        Ok(())
    }
}

#[cfg(unix)]
fn write_all_at(file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
}

#[cfg(not(unix))]
fn write_all_at(mut file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(bytes)
}

/// The error code of a filesystem that does not take direct I/O.
#[cfg(target_os = "linux")]
const EINVAL: i32 = libc::EINVAL;
#[cfg(not(target_os = "linux"))]
const EINVAL: i32 = 22;

/// Creates `path` for direct writes, or `None` where that is not available.
#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_path: &Path) -> Option<File> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic filler bytes.
    fn bytes(len: usize, seed: u32) -> Vec<u8> {
        let mut state = seed;
        (0..len)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn appends_across_stages_and_patches_the_head() {
        let dir = tempfile::tempdir().unwrap();
        for total in [
            1,
            BLOCK - 1,
            BLOCK,
            STAGE - 1,
            STAGE,
            STAGE + 5,
            2 * STAGE + BLOCK + 3,
        ] {
            let path = dir.path().join(format!("out-{total}.bin"));
            let data = bytes(total, total as u32);
            let mut file = OutputFile::create(&path).unwrap();
            // Irregular pieces, some larger than a stage.
            let mut rest = &data[..];
            for piece in [7, 4096, 3 << 20, 9 << 20].into_iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (now, later) = rest.split_at(piece.min(rest.len()));
                file.write_all(now).unwrap();
                rest = later;
            }
            let head = [0xAB; 1];
            file.finish(&head).unwrap();
            let mut expected = data.clone();
            expected[0] = 0xAB;
            assert_eq!(std::fs::read(&path).unwrap(), expected, "{total} bytes");
        }
    }

    #[test]
    fn recreating_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        let mut file = OutputFile::create(&path).unwrap();
        file.write_all(&bytes(3 * BLOCK, 1)).unwrap();
        file.finish(&[1, 2]).unwrap();
        let mut file = OutputFile::create(&path).unwrap();
        file.write_all(&[9; 10]).unwrap();
        file.finish(&[3]).unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            [3, 9, 9, 9, 9, 9, 9, 9, 9, 9]
        );
    }
}
