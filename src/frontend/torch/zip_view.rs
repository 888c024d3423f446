//! Read-only access to the members of a zip held in memory (a file mapping, or a member of an
//! outer zip): stored members are slices of the same bytes, never copies.
//!
//! torch writes its archives (the PT2 archive and `torch.save` zips) with stored, 64-byte
//! aligned members so that readers can map weights in place (docs/pt2.md). Members are looked
//! up by name only; nothing is ever extracted to disk, and member names that could escape a
//! folder (`..`, absolute paths) make the whole archive invalid rather than being skipped.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use zip::CompressionMethod;

/// Largest member mlpack inflates (a compressed member bigger than this is refused rather
/// than decompressed into memory); stored members have no such limit.
const MAX_INFLATED: u64 = 1 << 32;

/// One member: where its data lies and how it is stored.
#[derive(Clone, Debug)]
struct Member {
    index: usize,
    stored: bool,
    data_start: u64,
    size: u64,
    compressed_size: u64,
}

/// The members of a zip, by name.
pub struct ZipView {
    bytes: Bytes,
    mapped: bool,
    members: BTreeMap<String, Member>,
}

impl ZipView {
    /// Indexes the zip in `bytes` (`mapped`: the bytes lie in a read-only file mapping, so
    /// stored members can become mapped tensors). Errors are one-line descriptions.
    pub fn new(bytes: Bytes, mapped: bool) -> Result<ZipView, String> {
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes.clone()))
            .map_err(|e| format!("not a zip archive ({e})"))?;
        let mut members = BTreeMap::new();
        for index in 0..archive.len() {
            let file = archive
                .by_index_raw(index)
                .map_err(|e| format!("zip member #{index}: {e}"))?;
            let name = file
                .name()
                .map_err(|e| format!("zip member #{index}: unreadable name ({e})"))?
                .to_string();
            if file.enclosed_name().is_none() || name.starts_with('/') || name.contains('\\') {
                return Err(format!(
                    "zip member '{name}' has a path that leaves the archive"
                ));
            }
            if file.encrypted() {
                return Err(format!("zip member '{name}' is encrypted"));
            }
            let stored = match file.compression() {
                CompressionMethod::Stored => true,
                CompressionMethod::Deflated => false,
                other => {
                    return Err(format!(
                        "zip member '{name}' uses unsupported compression {other}"
                    ))
                }
            };
            let data_start = file
                .data_start()
                .ok_or_else(|| format!("zip member '{name}': no data offset"))?;
            let member = Member {
                index,
                stored,
                data_start,
                size: file.size(),
                compressed_size: file.compressed_size(),
            };
            let end = data_start.checked_add(member.compressed_size);
            if end.is_none_or(|end| end > bytes.len() as u64)
                || (stored && member.size != member.compressed_size)
            {
                return Err(format!(
                    "zip member '{name}' claims {} bytes past the end of the archive",
                    member.compressed_size
                ));
            }
            if file.is_dir() {
                continue;
            }
            if members.insert(name.clone(), member).is_some() {
                return Err(format!("zip member '{name}' appears twice"));
            }
        }
        Ok(ZipView {
            bytes,
            mapped,
            members,
        })
    }

    /// True when a member is called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.members.contains_key(name)
    }

    /// The first path component shared by every member (`archive` in `archive/data.pkl`), or
    /// None when some member lies at the top level or the members disagree.
    pub fn common_root(&self) -> Option<&str> {
        let mut root: Option<&str> = None;
        for name in self.members.keys() {
            let (first, _) = name.split_once('/')?;
            match root {
                None => root = Some(first),
                Some(r) if r == first => {}
                Some(_) => return None,
            }
        }
        root
    }

    /// The bytes of member `name` and whether they lie in a file mapping: a slice of the
    /// archive's bytes for a stored member, an inflated copy otherwise.
    pub fn read(&self, name: &str) -> Result<(Bytes, bool), String> {
        let member = self
            .members
            .get(name)
            .ok_or_else(|| format!("the archive has no member '{name}'"))?;
        if member.stored {
            let start = member.data_start as usize;
            let end = start + member.size as usize;
            return Ok((self.bytes.slice(start..end), self.mapped));
        }
        if member.size > MAX_INFLATED {
            return Err(format!(
                "zip member '{name}' inflates to {} bytes, more than mlpack reads compressed",
                member.size
            ));
        }
        let mut archive = zip::ZipArchive::new(Cursor::new(self.bytes.clone()))
            .map_err(|e| format!("not a zip archive ({e})"))?;
        let file = archive
            .by_index(member.index)
            .map_err(|e| format!("zip member '{name}': {e}"))?;
        // The header's size is only a claim: reserve at most 64 MiB up front and let the
        // vector grow with what actually inflates (bounded by `take` below).
        let mut out = Vec::with_capacity(member.size.min(1 << 26) as usize);
        file.take(member.size + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("zip member '{name}': {e}"))?;
        if out.len() as u64 != member.size {
            return Err(format!(
                "zip member '{name}' inflates to {} bytes, its header says {}",
                out.len(),
                member.size
            ));
        }
        Ok((Bytes::from(out), false))
    }

    /// Member `name` as UTF-8 text.
    pub fn read_text(&self, name: &str) -> Result<String, String> {
        let (bytes, _) = self.read(name)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("member '{name}' is not UTF-8 text"))
    }
}
