//! `weight.bin` ("MIL blob storage v2"): a 64-byte file header, then per blob a 64-byte
//! metadata record at a 64-aligned offset followed directly by its payload; sub-byte element
//! types are bit-packed LSB-first.
//!
//! The writer stores identical blobs once: a blob with the dtype and payload bytes of one
//! already written (tied embeddings, repeated LayerNorm vectors, identical palettes) gets that
//! blob's offset, so several constants may refer to one record. The first occurrence in
//! writing order keeps its place; the reader needs nothing special for shared offsets.

use super::output::OutputFile;
use crate::ir::bits::{pack_bits, unpack_bits};
use crate::ir::{DType, Tensor};
use crate::Error;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Size of the file header and of each metadata record; also the alignment of records.
const RECORD_SIZE: u64 = 64;
/// First word of every metadata record.
const SENTINEL: u32 = 0xDEAD_BEEF;
/// The only storage version mlpack reads and writes.
const VERSION: u32 = 2;

/// The blob-storage dtype code of `dtype`, or `None` when weight.bin cannot hold it.
pub fn blob_code(dtype: DType) -> Option<u32> {
    Some(match dtype {
        DType::F16 => 1,
        DType::F32 => 2,
        DType::U8 => 3,
        DType::I8 => 4,
        DType::I16 => 6,
        DType::U16 => 7,
        DType::I4 => 8,
        DType::U1 => 9,
        DType::U2 => 10,
        DType::U4 => 11,
        DType::U3 => 12,
        DType::U6 => 13,
        DType::I32 => 14,
        DType::U32 => 15,
        _ => return None,
    })
}

/// The payload size and trailing pad bits of a blob of `count` elements of `dtype`.
fn payload_size(dtype: DType, count: usize) -> Option<(u64, u64)> {
    if dtype.is_sub_byte() {
        let bits = count.checked_mul(dtype.bits())?;
        Some((bits.div_ceil(8) as u64, ((8 - bits % 8) % 8) as u64))
    } else {
        Some((count.checked_mul(dtype.ir_bytes())? as u64, 0))
    }
}

/// Bytes of weight.bin a blob of `tensor` takes at most: its 64-byte metadata record, the
/// padding before that record, and its payload (the file also has a 64-byte header).
pub fn stored_size(tensor: &Tensor) -> u64 {
    let payload = payload_size(tensor.dtype(), tensor.len()).map_or(u64::MAX, |(size, _)| size);
    RECORD_SIZE.saturating_add(payload.saturating_add(RECORD_SIZE - 1) / RECORD_SIZE * RECORD_SIZE)
}

/// Bytes of the weight.bin header.
pub const HEADER_SIZE: u64 = RECORD_SIZE;

/// The bytes of `tensor` as weight.bin stores them (sub-byte elements bit-packed).
fn payload(tensor: &Tensor) -> Cow<'_, [u8]> {
    match tensor.packed_bits() {
        Some(bits) => Cow::Borrowed(bits),
        None if tensor.dtype().is_sub_byte() => {
            Cow::Owned(pack_bits(tensor.bytes(), tensor.dtype().bits()))
        }
        None => Cow::Borrowed(tensor.bytes()),
    }
}

/// What identifies a blob's content: dtype code, element count (which settles the pad bits
/// the record holds) and SHA-256 of the payload.
type BlobKey = (u32, usize, [u8; 32]);

/// Writes blobs into weight.bin as they are appended, through an [`OutputFile`] that is only
/// created for the first blob; a blob identical to one already written is not written again.
///
/// The tensors appended are borrowed for the writer's lifetime `'a`: a digest match is
/// confirmed by comparing the payloads themselves, so a hash collision can never merge two
/// different blobs.
pub struct BlobWriter<'a> {
    path: PathBuf,
    file: Option<OutputFile>,
    /// Current length of the file.
    end: u64,
    count: u32,
    /// Blobs written so far by content, with their offsets and the tensors they hold.
    written: HashMap<BlobKey, Vec<(u64, &'a Tensor)>>,
}

impl<'a> BlobWriter<'a> {
    /// A writer for the file at `path` (not created until the first blob).
    pub fn new(path: PathBuf) -> BlobWriter<'a> {
        BlobWriter {
            path,
            file: None,
            end: 0,
            count: 0,
            written: HashMap::new(),
        }
    }

    /// Appends `tensor` (whose dtype must have a [`blob_code`]) unless a blob with the same
    /// dtype code and payload is already in the file, and returns the offset of the metadata
    /// record holding it, which is what a `BlobFileValue` refers to.
    pub fn append(&mut self, tensor: &'a Tensor) -> Result<u64, Error> {
        // A deferred weight is computed here, written, and dropped.
        tensor.with_elements(|elements| self.append_elements(tensor, elements))
    }

    /// [`BlobWriter::append`] of `tensor`, whose elements are `elements`.
    fn append_elements(&mut self, tensor: &'a Tensor, elements: &Tensor) -> Result<u64, Error> {
        let dtype = tensor.dtype();
        let code = blob_code(dtype)
            .ok_or_else(|| Error::Internal(format!("{dtype} cannot be stored in weight.bin")))?;
        let bytes = payload(elements);
        let (size, pad_bits) = payload_size(dtype, tensor.len()).ok_or_else(|| {
            Error::Internal(format!("blob of {} elements is too large", tensor.len()))
        })?;
        if size != bytes.len() as u64 {
            return Err(Error::Internal(format!(
                "{dtype} blob of {} elements has {} bytes",
                tensor.len(),
                bytes.len()
            )));
        }
        let key: BlobKey = (code, tensor.len(), Sha256::digest(&bytes).into());
        let same = self.written.get(&key).and_then(|blobs| {
            blobs
                .iter()
                .find(|(_, earlier)| earlier.with_elements(|e| payload(e) == bytes))
        });
        if let Some(&(offset, _)) = same {
            tensor.release_pages();
            return Ok(offset);
        }
        self.count = self
            .count
            .checked_add(1)
            .ok_or_else(|| Error::Internal("more than 2^32 blobs".into()))?;
        let io = |e| Error::io(&self.path, e);
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                let mut file = OutputFile::create(&self.path).map_err(io)?;
                file.write_all(&header(0)).map_err(io)?;
                self.end = RECORD_SIZE;
                self.file.insert(file)
            }
        };
        let record_offset = self.end.next_multiple_of(RECORD_SIZE);
        let data_offset = record_offset + RECORD_SIZE;
        let gap = vec![0u8; (record_offset - self.end) as usize];
        file.write_all(&gap).map_err(io)?;
        file.write_all(&record(code, size, data_offset, pad_bits))
            .map_err(io)?;
        file.write_all(&bytes).map_err(io)?;
        tensor.release_pages();
        self.end = data_offset + size;
        self.written
            .entry(key)
            .or_default()
            .push((record_offset, tensor));
        Ok(record_offset)
    }

    /// Writes the final blob count into the header and flushes the file (if one was created).
    pub fn finish(self) -> Result<(), Error> {
        let io = |e| Error::io(&self.path, e);
        if let Some(file) = self.file {
            file.finish(&header(self.count)).map_err(io)?;
        }
        Ok(())
    }
}

/// The file header for `count` blobs.
fn header(count: u32) -> [u8; RECORD_SIZE as usize] {
    let mut h = [0u8; RECORD_SIZE as usize];
    h[0..4].copy_from_slice(&count.to_le_bytes());
    h[4..8].copy_from_slice(&VERSION.to_le_bytes());
    h
}

/// A metadata record (reserved fields zero).
fn record(code: u32, size: u64, data_offset: u64, pad_bits: u64) -> [u8; RECORD_SIZE as usize] {
    let mut r = [0u8; RECORD_SIZE as usize];
    r[0..4].copy_from_slice(&SENTINEL.to_le_bytes());
    r[4..8].copy_from_slice(&code.to_le_bytes());
    r[8..16].copy_from_slice(&size.to_le_bytes());
    r[16..24].copy_from_slice(&data_offset.to_le_bytes());
    r[24..32].copy_from_slice(&pad_bits.to_le_bytes());
    r
}

/// A weight file held in memory (normally a memory map); tensors read from it borrow its bytes.
pub struct BlobFile {
    path: PathBuf,
    data: Bytes,
    /// Whether `data` is a read-only map of the file (so tensors may release its pages).
    mapped: bool,
}

impl BlobFile {
    /// Memory-maps the weight file at `path` and checks its header.
    pub fn open(path: &Path) -> Result<BlobFile, Error> {
        let file = crate::input_file::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::invalid(path, "missing (model.mlmodel refers to it)")
            }
            _ => crate::input_file::error(path, e),
        })?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len < RECORD_SIZE {
            return Err(Error::invalid(
                path,
                format!("{len} bytes is too short for a weight file header"),
            ));
        }
        // SAFETY: the map is read-only; mlpack never writes a package while reading it, and
        // another process truncating the file meanwhile is outside what a reader can guard.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let blob = BlobFile::from_bytes(path, Bytes::from_owner(map))?;
        Ok(BlobFile {
            mapped: true,
            ..blob
        })
    }

    /// A weight file whose contents are `data`; checks the header.
    pub fn from_bytes(path: &Path, data: Bytes) -> Result<BlobFile, Error> {
        let blob = BlobFile {
            path: path.to_path_buf(),
            data,
            mapped: false,
        };
        let version = blob
            .u32_at(4)
            .ok_or_else(|| blob.invalid("too short for a weight file header".into()))?;
        if version != VERSION {
            return Err(blob.invalid(format!(
                "blob storage version {version} is not supported (expected {VERSION})"
            )));
        }
        Ok(blob)
    }

    /// The tensor of `dtype` and `shape` whose metadata record is at `offset`. Byte-aligned
    /// dtypes borrow the file's bytes; sub-byte dtypes are unpacked. `context` names the value
    /// for error messages.
    pub fn tensor(
        &self,
        offset: u64,
        dtype: DType,
        shape: &[usize],
        context: &str,
    ) -> Result<Tensor, Error> {
        let fail = |message: String| {
            self.invalid(format!("{context}: blob at offset {offset}: {message}"))
        };
        let code = blob_code(dtype)
            .ok_or_else(|| fail(format!("{dtype} values cannot be stored in a blob")))?;
        let count = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        let (expected_size, expected_pad) = count
            .and_then(|n| payload_size(dtype, n))
            .ok_or_else(|| fail(format!("shape {shape:?} is too large")))?;
        let record = usize::try_from(offset)
            .ok()
            .filter(|&o| o >= RECORD_SIZE as usize)
            .and_then(|o| self.data.get(o..o.checked_add(RECORD_SIZE as usize)?))
            .ok_or_else(|| {
                fail(format!(
                    "no metadata record there (file is {} bytes)",
                    self.data.len()
                ))
            })?;
        let le32 = |at: usize| {
            u32::from_le_bytes([record[at], record[at + 1], record[at + 2], record[at + 3]])
        };
        let le64 = |at: usize| u64::from(le32(at)) | (u64::from(le32(at + 4)) << 32);
        let (sentinel, found_code, size, data_offset, pad) =
            (le32(0), le32(4), le64(8), le64(16), le64(24));
        if sentinel != SENTINEL {
            return Err(fail(format!(
                "bad sentinel 0x{sentinel:08x} (expected 0x{SENTINEL:08x})"
            )));
        }
        if found_code != code {
            return Err(fail(format!(
                "blob dtype code {found_code} does not match the declared {dtype} (code {code})"
            )));
        }
        if size != expected_size || pad != expected_pad {
            return Err(fail(format!(
                "{size} bytes with {pad} pad bits, but a {dtype} tensor of shape {shape:?} needs {expected_size} \
                 bytes with {expected_pad} pad bits"
            )));
        }
        let range = usize::try_from(data_offset)
            .ok()
            .and_then(|s| Some(s..s.checked_add(usize::try_from(size).ok()?)?))
            .filter(|r| r.end <= self.data.len())
            .ok_or_else(|| {
                fail(format!("payload at {data_offset} ({size} bytes) runs past the end of the file ({} bytes)", self.data.len()))
            })?;
        let payload = self.data.slice(range);
        if dtype.is_sub_byte() {
            let values = unpack_bits(&payload, dtype.bits(), count.unwrap_or(0))
                .ok_or_else(|| fail("packed payload is too short".into()))?;
            let values: Vec<i64> = values.into_iter().map(i64::from).collect();
            Ok(Tensor::from_i64_as(dtype, shape, &values))
        } else if self.mapped {
            // SAFETY: `payload` lies inside the read-only file map this blob file owns and
            // the `Bytes` keeps alive (see `BlobFile::open`).
            unsafe { Tensor::from_mapped_bytes(dtype, shape, payload) }
                .map_err(|e| fail(e.to_string()))
        } else {
            Tensor::from_bytes(dtype, shape, payload).map_err(|e| fail(e.to_string()))
        }
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        self.data
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn invalid(&self, message: String) -> Error {
        Error::invalid(&self.path, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    /// Writes `tensors` through a [`BlobWriter`] and returns the offsets and the file bytes.
    fn write_blobs(tensors: &[Tensor]) -> (Vec<u64>, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weight.bin");
        let mut writer = BlobWriter::new(path.clone());
        let offsets = tensors.iter().map(|t| writer.append(t).unwrap()).collect();
        writer.finish().unwrap();
        (offsets, std::fs::read(&path).unwrap())
    }

    fn u64_at(bytes: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn lays_out_linear_weight_and_bias_like_coremltools() {
        // §3.5: W[20,4] = arange(80)/8 and b[20] = arange(20), fp32 → 592-byte file.
        let w: Vec<f32> = (0..80).map(|i| i as f32 / 8.0).collect();
        let b: Vec<f32> = (0..20).map(|i| i as f32).collect();
        let (offsets, file) =
            write_blobs(&[Tensor::from_f32(&[20, 4], &w), Tensor::from_f32(&[20], &b)]);
        assert_eq!(offsets, [64, 0x1c0]);
        assert_eq!(file.len(), 592);
        assert_eq!(file[0..8], [2, 0, 0, 0, 2, 0, 0, 0]);
        assert!(file[8..64].iter().all(|&x| x == 0));
        assert_eq!(file[0x40..0x48], [0xef, 0xbe, 0xad, 0xde, 2, 0, 0, 0]);
        assert_eq!(u64_at(&file, 0x48), 320);
        assert_eq!(u64_at(&file, 0x50), 0x80);
        assert_eq!(u64_at(&file, 0x58), 0);
        assert!(file[0x60..0x80].iter().all(|&x| x == 0));
        assert_eq!(
            file[0x80..0x90],
            [0, 0, 0, 0, 0, 0, 0, 0x3e, 0, 0, 0x80, 0x3e, 0, 0, 0xc0, 0x3e]
        );
        assert_eq!(file[0x1c0..0x1c8], [0xef, 0xbe, 0xad, 0xde, 2, 0, 0, 0]);
        assert_eq!(u64_at(&file, 0x1c8), 80);
        assert_eq!(u64_at(&file, 0x1d0), 0x200);
        assert_eq!(
            file[0x200..0x210],
            [0, 0, 0, 0, 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 0, 0, 0x40, 0x40]
        );
    }

    #[test]
    fn lays_out_sub_byte_blobs_with_pad_bits() {
        let u4 = Tensor::from_i64_as(DType::U4, &[21], &(0..16).chain(1..6).collect::<Vec<_>>());
        let u3 = Tensor::from_i64_as(DType::U3, &[13], &[0, 1, 2, 3, 4, 5, 6, 7, 7, 6, 5, 4, 3]);
        let (offsets, file) = write_blobs(&[u4, u3]);
        assert_eq!(offsets, [0x40, 0xc0]);
        assert_eq!(file[0x44..0x48], [11, 0, 0, 0]);
        assert_eq!(u64_at(&file, 0x48), 11);
        assert_eq!(u64_at(&file, 0x58), 4);
        assert_eq!(
            file[0x80..0x8b],
            [0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe, 0x21, 0x43, 0x05]
        );
        assert_eq!(file[0xc4..0xc8], [12, 0, 0, 0]);
        assert_eq!(u64_at(&file, 0xc8), 5);
        assert_eq!(u64_at(&file, 0xd0), 0x100);
        assert_eq!(u64_at(&file, 0xd8), 1);
        assert_eq!(file[0x100..], [0x88, 0xc6, 0xfa, 0x77, 0x39]);
    }

    #[test]
    fn identical_blobs_are_written_once() {
        let w: Vec<f32> = (0..24).map(|i| i as f32 - 3.5).collect();
        let tied = Tensor::from_f32(&[6, 4], &w);
        // Same bytes, other shape: still the same blob (a record holds no shape).
        let flat = Tensor::from_f32(&[24], &w);
        let other = Tensor::from_f32(&[24], &[1.0; 24]);
        // Same bytes under other dtype codes: separate blobs.
        let as_i32 = Tensor::from_bytes(DType::I32, &[24], tied.bytes().to_vec().into()).unwrap();
        let halves = [0x3c00u16, 0x4000, 0x0001];
        let (f, i) = (
            Tensor::from_f16(&[3], &halves.map(f16::from_bits)),
            Tensor::from_i16(&[3], &halves.map(|h| h as i16)),
        );
        let (offsets, file) = write_blobs(&[
            tied.clone(),
            other.clone(),
            flat,
            as_i32,
            tied.clone(),
            f.clone(),
            i,
            f,
            other,
        ]);
        // Five records, each at the next 64-aligned offset after the previous payload.
        assert_eq!(offsets, [64, 256, 64, 448, 64, 640, 768, 640, 256]);
        assert_eq!(file.len(), 768 + 64 + 6);
        assert_eq!(file[0..4], [5, 0, 0, 0]);
        let blobs = BlobFile::from_bytes(Path::new("weight.bin"), Bytes::from(file)).unwrap();
        assert_eq!(blobs.tensor(64, DType::F32, &[6, 4], "w").unwrap(), tied);
        assert_eq!(
            blobs
                .tensor(64, DType::F32, &[24], "w")
                .unwrap()
                .to_f32_vec(),
            w
        );
    }

    #[test]
    fn sub_byte_blobs_differing_in_pad_bits_stay_apart() {
        // 3 and 4 four-bit elements both pack into the same 2 bytes, with 4 and 0 pad bits.
        let three = Tensor::from_i64_as(DType::U4, &[3], &[1, 2, 3]);
        let four = Tensor::from_i64_as(DType::U4, &[4], &[1, 2, 3, 0]);
        let packed = Tensor::from_packed_bits(DType::U4, &[3], vec![0x21, 0x03]);
        let (offsets, _) = write_blobs(&[three, four, packed]);
        assert_ne!(offsets[0], offsets[1]);
        assert_eq!(offsets[2], offsets[0]);
    }

    #[test]
    fn no_blobs_means_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weight.bin");
        BlobWriter::new(path.clone()).finish().unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn reads_back_borrowed_and_unpacked_tensors() {
        let halves: Vec<f16> = (0..12).map(|i| f16::from_f32(i as f32 * 0.5)).collect();
        let h = Tensor::from_f16(&[3, 4], &halves);
        let i4 = Tensor::from_i64_as(DType::I4, &[12], &[-8, -7, -1, 0, 1, 7, 3, -2, 5, 6, -3, 2]);
        let (offsets, file) = write_blobs(&[h.clone(), i4.clone()]);
        let data = Bytes::from(file);
        let blobs = BlobFile::from_bytes(Path::new("weight.bin"), data.clone()).unwrap();
        let back = blobs.tensor(offsets[0], DType::F16, &[3, 4], "w").unwrap();
        assert_eq!(back, h);
        // The fp16 payload is a slice of the file's buffer, not a copy.
        assert_eq!(back.bytes().as_ptr(), data[0x80..].as_ptr());
        assert_eq!(blobs.tensor(offsets[1], DType::I4, &[12], "q").unwrap(), i4);
    }

    #[test]
    fn rejects_corrupt_records() {
        let (offsets, mut file) = write_blobs(&[Tensor::from_f32(&[10], &[1.0; 10])]);
        let check = |file: &[u8], dtype, shape: &[usize], offset, needle: &str| {
            let blobs = BlobFile::from_bytes(Path::new("weight.bin"), Bytes::copy_from_slice(file))
                .unwrap();
            let err = blobs.tensor(offset, dtype, shape, "op 'w'").unwrap_err();
            assert!(matches!(err, Error::Invalid { .. }), "{err}");
            assert!(err.to_string().contains(needle), "{err}");
            assert!(err.to_string().starts_with("weight.bin: op 'w'"), "{err}");
        };
        check(
            &file,
            DType::F16,
            &[10],
            offsets[0],
            "does not match the declared fp16",
        );
        check(&file, DType::F32, &[11], offsets[0], "needs 44 bytes");
        check(&file, DType::F32, &[10], 4096, "no metadata record");
        check(&file, DType::F32, &[10], u64::MAX - 3, "no metadata record");
        check(
            &file[..file.len() - 1],
            DType::F32,
            &[10],
            offsets[0],
            "runs past the end",
        );
        file[0x40] = 0;
        check(
            &file,
            DType::F32,
            &[10],
            offsets[0],
            "bad sentinel 0xdeadbe00",
        );
        file[4] = 1;
        let err = BlobFile::from_bytes(Path::new("weight.bin"), Bytes::from(file))
            .err()
            .unwrap();
        assert!(err.to_string().contains("version 1"), "{err}");
    }
}
