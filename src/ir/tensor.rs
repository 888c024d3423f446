//! Constant tensor values whose bytes are borrowed (memory-mapped), owned, or computed from a
//! mapped source when they are read.

use super::{DType, TensorType};
use bytes::Bytes;
use half::f16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;
use std::sync::{Arc, OnceLock};

/// A constant tensor: dtype, static shape and its elements.
///
/// Numeric elements are stored little-endian in a [`Bytes`] buffer, which may be a slice of a
/// memory-mapped model file; cloning a tensor never copies its elements. Booleans take one byte
/// each and so do sub-byte integers as [`Tensor::bytes`] shows them; a sub-byte tensor built
/// from its packed bits ([`Tensor::from_packed_bits`]) keeps them packed until something asks
/// for the bytes. Strings are held as Rust strings. A weight transformed from a mapped file
/// ([`Tensor::defer`]) is computed when its elements are read.
#[derive(Clone, Debug)]
pub struct Tensor {
    dtype: DType,
    shape: Vec<usize>,
    data: TensorData,
}

#[derive(Clone, Debug)]
enum TensorData {
    Bytes(Bytes),
    /// Bytes inside a read-only file mapping that the `Bytes` keeps alive; their resident
    /// pages may be dropped ([`Tensor::release_pages`]) and are read again on next use.
    Mapped(Bytes),
    /// Sub-byte elements packed LSB-first (the weight.bin layout), unpacked on first use.
    Packed {
        bits: Bytes,
        unpacked: Arc<OnceLock<Vec<u8>>>,
    },
    Strings(Arc<[String]>),
    /// Elements computed from a source tensor when read (see [`Tensor::defer`]).
    Deferred(Arc<Deferred>),
}

/// How a deferred tensor's elements are computed from its source.
type Compute = Arc<dyn Fn(&Tensor) -> Tensor + Send + Sync>;

/// A tensor computed from `source` by `compute`: kept once [`Tensor::bytes`] asks for it, or
/// computed for one use and dropped by [`Tensor::with_elements`].
struct Deferred {
    source: Tensor,
    compute: Compute,
    cache: OnceLock<Tensor>,
}

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deferred")
            .field("source", &self.source)
            .field("cached", &self.cache.get().is_some())
            .finish()
    }
}

impl PartialEq for Tensor {
    fn eq(&self, other: &Tensor) -> bool {
        if self.dtype != other.dtype || self.shape != other.shape {
            return false;
        }
        self.with_elements(|a| {
            other.with_elements(|b| match (a.packed_bits(), b.packed_bits()) {
                (Some(a), Some(b)) => a == b,
                _ => a.bytes() == b.bytes() && a.strings() == b.strings(),
            })
        })
    }
}

/// Why raw bytes cannot form a tensor of the requested type.
#[derive(Debug, thiserror::Error)]
#[error("{dtype} tensor of shape {shape:?} needs {expected} bytes, got {actual}")]
pub struct TensorSizeError {
    dtype: DType,
    shape: Vec<usize>,
    expected: usize,
    actual: usize,
}

macro_rules! from_slice_le {
    ($name:ident, $t:ty, $dtype:expr) => {
        #[doc = concat!("A `", stringify!($t), "` tensor from elements in row-major order.")]
        pub fn $name(shape: &[usize], values: &[$t]) -> Tensor {
            const WIDTH: usize = std::mem::size_of::<$t>();
            let mut bytes = vec![0u8; values.len() * WIDTH];
            for (out, v) in bytes.chunks_exact_mut(WIDTH).zip(values) {
                out.copy_from_slice(&v.to_le_bytes());
            }
            Tensor::from_vec_bytes($dtype, shape, bytes)
        }
    };
}

/// The IR byte of an int4 element: its low nibble, sign-extended.
fn int4_byte(nibble: u8) -> u8 {
    (((nibble & 0xf) ^ 0x8) as i8 - 0x8) as u8
}

/// Elements per parallel work item of fp16 conversions.
const WIDEN_TASK: usize = 1 << 16;

/// Little-endian fp16 `bytes` widened into `out` (vector conversions where the CPU has them).
fn widen_f16(bytes: &[u8], out: &mut [f32]) {
    if cfg!(target_endian = "little") {
        if let Ok(halves) = bytemuck::try_cast_slice::<u8, f16>(bytes) {
            if halves.len() == out.len() {
                halves.convert_to_f32_slice(out);
                return;
            }
        }
    }
    let mut halves = [f16::ZERO; 256];
    for (bytes, out) in bytes
        .chunks(2 * halves.len())
        .zip(out.chunks_mut(halves.len()))
    {
        let halves = &mut halves[..out.len()];
        for (h, b) in halves.iter_mut().zip(bytes.chunks_exact(2)) {
            *h = f16::from_le_bytes([b[0], b[1]]);
        }
        halves.convert_to_f32_slice(out);
    }
}

/// Side of the square tiles a matrix transpose copies at a time (so that a tile's reads and
/// writes both stay in cache).
const TRANSPOSE_TILE: usize = 64;

/// Transposes the `[rows, cols]` matrix of `W`-byte elements in `src` into `dst`, in
/// parallel over bands of output rows, tile by tile.
fn transpose_elements<const W: usize>(src: &[u8], dst: &mut [u8], rows: usize, cols: usize) {
    if rows == 0 || cols == 0 {
        return;
    }
    dst.par_chunks_mut(TRANSPOSE_TILE * rows * W)
        .enumerate()
        .for_each(|(band, out)| {
            let c0 = band * TRANSPOSE_TILE;
            let band_cols = out.len() / (rows * W);
            for r0 in (0..rows).step_by(TRANSPOSE_TILE) {
                for c in c0..c0 + band_cols {
                    for r in r0..(r0 + TRANSPOSE_TILE).min(rows) {
                        let from = (r * cols + c) * W;
                        let to = ((c - c0) * rows + r) * W;
                        out[to..to + W].copy_from_slice(&src[from..from + W]);
                    }
                }
            }
        });
}

/// `values` rounded to fp16, written little-endian into `out`.
fn narrow_to_f16(values: &[f32], out: &mut [u8]) {
    let mut halves = [f16::ZERO; 256];
    for (values, out) in values
        .chunks(halves.len())
        .zip(out.chunks_mut(2 * halves.len()))
    {
        let halves = &mut halves[..values.len()];
        halves.convert_from_f32_slice(values);
        for (b, h) in out.chunks_exact_mut(2).zip(halves.iter()) {
            b.copy_from_slice(&h.to_le_bytes());
        }
    }
}

impl Tensor {
    /// Builds a tensor over raw little-endian bytes; fails if the length does not match.
    pub fn from_bytes(
        dtype: DType,
        shape: &[usize],
        bytes: Bytes,
    ) -> Result<Tensor, TensorSizeError> {
        let expected = shape.iter().product::<usize>() * dtype.ir_bytes();
        if dtype == DType::String || bytes.len() != expected {
            return Err(TensorSizeError {
                dtype,
                shape: shape.to_vec(),
                expected,
                actual: bytes.len(),
            });
        }
        Ok(Tensor {
            dtype,
            shape: shape.to_vec(),
            data: TensorData::Bytes(bytes),
        })
    }

    /// Like [`Tensor::from_bytes`], for bytes of a file mapping whose pages
    /// [`Tensor::release_pages`] may drop once they have been read.
    ///
    /// # Safety
    ///
    /// `bytes` must lie inside a read-only memory mapping of a file that its owner keeps
    /// mapped (so that dropping its pages only means reading them from the file again), never
    /// inside heap or other anonymous memory, where dropping pages would zero them.
    pub unsafe fn from_mapped_bytes(
        dtype: DType,
        shape: &[usize],
        bytes: Bytes,
    ) -> Result<Tensor, TensorSizeError> {
        let checked = Tensor::from_bytes(dtype, shape, bytes)?;
        Ok(Tensor {
            data: match checked.data {
                TensorData::Bytes(b) => TensorData::Mapped(b),
                other => other,
            },
            ..checked
        })
    }

    /// Drops the resident pages wholly inside a mapped tensor's bytes (see
    /// [`Tensor::from_mapped_bytes`]) from this process's memory: for a weight that has been
    /// converted or written, so that a large model is never resident all at once. The bytes
    /// stay readable (from the file). Does nothing for other tensors or off Linux.
    pub fn release_pages(&self) {
        if let TensorData::Deferred(d) = &self.data {
            return d.source.release_pages();
        }
        #[cfg(target_os = "linux")]
        if let TensorData::Mapped(bytes) = &self.data {
            // SAFETY: `sysconf` has no preconditions.
            let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(0);
            if page == 0 {
                return;
            }
            let start = (bytes.as_ptr() as usize).next_multiple_of(page);
            let end = (bytes.as_ptr() as usize + bytes.len()) / page * page;
            if start < end {
                // SAFETY: whole pages inside a read-only file mapping kept alive by `bytes`
                // (the contract of `from_mapped_bytes`); MADV_DONTNEED drops them and a later
                // read faults them in again from the file. A failure only keeps them resident.
                unsafe {
                    libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
                }
            }
        }
    }

    /// `compute(self)`, which must give a tensor of `dtype` and `shape`. For a tensor read
    /// from a file mapping (or one already deferred) the result is not computed now but when
    /// its elements are read, from the mapped bytes: a converted weight need not be resident
    /// until it is written, and [`Tensor::with_elements`] computes it without keeping it.
    /// Any other tensor is computed now.
    pub fn defer(
        &self,
        dtype: DType,
        shape: &[usize],
        compute: impl Fn(&Tensor) -> Tensor + Send + Sync + 'static,
    ) -> Tensor {
        let (source, compute): (Tensor, Compute) = match &self.data {
            TensorData::Mapped(_) => (self.clone(), Arc::new(compute)),
            TensorData::Deferred(d) => {
                let first = d.compute.clone();
                (d.source.clone(), Arc::new(move |s| compute(&first(s))))
            }
            _ => return compute(self),
        };
        Tensor {
            dtype,
            shape: shape.to_vec(),
            data: TensorData::Deferred(Arc::new(Deferred {
                source,
                compute,
                cache: OnceLock::new(),
            })),
        }
    }

    /// Calls `f` with a tensor holding this one's elements: itself, or for a deferred tensor
    /// that nothing has kept yet, its elements computed for this call and dropped after it
    /// (the source's mapped pages are released too).
    pub fn with_elements<R>(&self, f: impl FnOnce(&Tensor) -> R) -> R {
        match &self.data {
            TensorData::Deferred(d) => match d.cache.get() {
                Some(kept) => f(&kept.reshaped(&self.shape)),
                None => {
                    let computed = (d.compute)(&d.source);
                    d.source.release_pages();
                    debug_assert_eq!(computed.dtype, self.dtype);
                    f(&computed.reshaped(&self.shape))
                }
            },
            _ => f(self),
        }
    }

    /// The `[cols, rows]` transpose of a `[rows, cols]` matrix of a whole-byte dtype;
    /// deferred (computed when read) for a weight mapped from the model file.
    pub fn transposed_matrix(&self) -> Tensor {
        assert!(self.shape.len() == 2 && self.dtype != DType::String && !self.dtype.is_sub_byte());
        let (rows, cols) = (self.shape[0], self.shape[1]);
        self.defer(self.dtype, &[cols, rows], move |t| {
            let src = t.bytes();
            let mut dst = vec![0u8; src.len()];
            match t.dtype.ir_bytes() {
                1 => transpose_elements::<1>(src, &mut dst, rows, cols),
                2 => transpose_elements::<2>(src, &mut dst, rows, cols),
                4 => transpose_elements::<4>(src, &mut dst, rows, cols),
                _ => transpose_elements::<8>(src, &mut dst, rows, cols),
            }
            Tensor::from_vec_bytes(t.dtype, &[cols, rows], dst)
        })
    }

    /// The elements of a deferred tensor, computed once and kept.
    fn kept(d: &Deferred) -> &Tensor {
        d.cache.get_or_init(|| {
            let computed = (d.compute)(&d.source);
            d.source.release_pages();
            computed
        })
    }

    fn from_vec_bytes(dtype: DType, shape: &[usize], bytes: Vec<u8>) -> Tensor {
        debug_assert_eq!(
            bytes.len(),
            shape.iter().product::<usize>() * dtype.ir_bytes()
        );
        Tensor {
            dtype,
            shape: shape.to_vec(),
            data: TensorData::Bytes(Bytes::from(bytes)),
        }
    }

    from_slice_le!(from_f32, f32, DType::F32);
    from_slice_le!(from_f16, f16, DType::F16);
    from_slice_le!(from_f64, f64, DType::F64);
    from_slice_le!(from_i32, i32, DType::I32);
    from_slice_le!(from_i64, i64, DType::I64);
    from_slice_le!(from_i16, i16, DType::I16);
    from_slice_le!(from_u16, u16, DType::U16);
    from_slice_le!(from_u32, u32, DType::U32);
    from_slice_le!(from_u64, u64, DType::U64);

    /// A tensor of a one-byte dtype (int8/uint8/bool or an unpacked sub-byte type).
    pub fn from_byte_elements(dtype: DType, shape: &[usize], values: Vec<u8>) -> Tensor {
        assert_eq!(dtype.ir_bytes(), 1, "{dtype} is not a one-byte type");
        Tensor::from_vec_bytes(dtype, shape, values)
    }

    /// A sub-byte tensor (uint1–uint6, int4) from its elements packed LSB-first, as
    /// [`pack_bits`](super::bits::pack_bits) lays them out; they stay packed until
    /// [`Tensor::bytes`] is called.
    /// Bits past the last element are cleared.
    pub fn from_packed_bits(dtype: DType, shape: &[usize], mut bits: Vec<u8>) -> Tensor {
        assert!(dtype.is_sub_byte(), "{dtype} is not a sub-byte type");
        let used = shape.iter().product::<usize>() * dtype.bits();
        assert_eq!(bits.len(), used.div_ceil(8), "packed {dtype} size");
        if let Some(last) = bits.last_mut().filter(|_| used % 8 != 0) {
            *last &= (1u8 << (used % 8)) - 1;
        }
        Tensor {
            dtype,
            shape: shape.to_vec(),
            data: TensorData::Packed {
                bits: Bytes::from(bits),
                unpacked: Arc::default(),
            },
        }
    }

    /// A boolean tensor.
    pub fn from_bool(shape: &[usize], values: &[bool]) -> Tensor {
        Tensor::from_vec_bytes(
            DType::Bool,
            shape,
            values.iter().map(|&b| b as u8).collect(),
        )
    }

    /// A string tensor.
    pub fn from_strings(shape: &[usize], values: Vec<String>) -> Tensor {
        assert_eq!(shape.iter().product::<usize>(), values.len());
        Tensor {
            dtype: DType::String,
            shape: shape.to_vec(),
            data: TensorData::Strings(values.into()),
        }
    }

    /// A rank-0 string tensor.
    pub fn scalar_string(value: &str) -> Tensor {
        Tensor::from_strings(&[], vec![value.to_string()])
    }

    /// A rank-0 fp32 tensor.
    pub fn scalar_f32(value: f32) -> Tensor {
        Tensor::from_f32(&[], &[value])
    }

    /// A rank-0 int32 tensor.
    pub fn scalar_i32(value: i32) -> Tensor {
        Tensor::from_i32(&[], &[value])
    }

    /// A rank-0 bool tensor.
    pub fn scalar_bool(value: bool) -> Tensor {
        Tensor::from_bool(&[], &[value])
    }

    /// A rank-1 int32 tensor.
    pub fn vec_i32(values: &[i32]) -> Tensor {
        Tensor::from_i32(&[values.len()], values)
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Shape, outermost dimension first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The tensor's type.
    pub fn ty(&self) -> TensorType {
        TensorType::fixed(self.dtype, &self.shape)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same elements viewed with another shape of equal element count.
    pub fn reshaped(&self, shape: &[usize]) -> Tensor {
        assert_eq!(shape.iter().product::<usize>(), self.len());
        Tensor {
            dtype: self.dtype,
            shape: shape.to_vec(),
            data: self.data.clone(),
        }
    }

    /// The elements of an fp16 tensor, borrowed, when its bytes are 2-aligned on a
    /// little-endian machine (weights read from weight.bin always are: payloads are 64-aligned).
    pub fn as_f16(&self) -> Option<&[f16]> {
        if self.dtype != DType::F16 || cfg!(target_endian = "big") {
            return None;
        }
        bytemuck::try_cast_slice(self.bytes()).ok()
    }

    /// The raw little-endian element bytes, one per element for sub-byte types (empty for
    /// string tensors).
    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            TensorData::Bytes(b) | TensorData::Mapped(b) => b,
            TensorData::Packed { bits, unpacked } => unpacked.get_or_init(|| {
                let mut values = super::bits::unpack_bits(bits, self.dtype.bits(), self.len())
                    .expect("checked when the tensor was built");
                if self.dtype == DType::I4 {
                    values.iter_mut().for_each(|v| *v = int4_byte(*v));
                }
                values
            }),
            TensorData::Strings(_) => &[],
            TensorData::Deferred(d) => Tensor::kept(d).bytes(),
        }
    }

    /// The packed bits of a sub-byte tensor built from them, without unpacking.
    pub fn packed_bits(&self) -> Option<&[u8]> {
        match &self.data {
            TensorData::Packed { bits, .. } => Some(bits),
            TensorData::Deferred(d) => d.cache.get().and_then(Tensor::packed_bits),
            _ => None,
        }
    }

    /// The shared byte buffer, for writers that want to avoid a copy.
    pub fn shared_bytes(&self) -> Option<&Bytes> {
        match &self.data {
            TensorData::Bytes(b) | TensorData::Mapped(b) => Some(b),
            TensorData::Deferred(d) => Tensor::kept(d).shared_bytes(),
            TensorData::Packed { .. } | TensorData::Strings(_) => None,
        }
    }

    /// The string elements (empty for numeric tensors).
    pub fn strings(&self) -> &[String] {
        match &self.data {
            TensorData::Strings(s) => s,
            TensorData::Bytes(_)
            | TensorData::Mapped(_)
            | TensorData::Packed { .. }
            | TensorData::Deferred(_) => &[],
        }
    }

    /// The single string of a rank-0 (or one-element) string tensor.
    pub fn as_string(&self) -> Option<&str> {
        match self.strings() {
            [s] => Some(s.as_str()),
            _ => None,
        }
    }

    /// Every element converted to f64 (strings give an empty vector).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        let b = self.bytes();
        macro_rules! conv {
            ($t:ty, $n:expr) => {
                b.chunks_exact($n)
                    .map(|c| <$t>::from_le_bytes(c.try_into().unwrap()) as f64)
                    .collect()
            };
        }
        match self.dtype {
            DType::String => Vec::new(),
            DType::Bool | DType::U1 | DType::U2 | DType::U3 | DType::U4 | DType::U6 | DType::U8 => {
                b.iter().map(|&v| v as f64).collect()
            }
            DType::I4 | DType::I8 => b.iter().map(|&v| v as i8 as f64).collect(),
            DType::F16 => b
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f64())
                .collect(),
            DType::F32 => conv!(f32, 4),
            DType::F64 => conv!(f64, 8),
            DType::I16 => conv!(i16, 2),
            DType::U16 => conv!(u16, 2),
            DType::I32 => conv!(i32, 4),
            DType::U32 => conv!(u32, 4),
            DType::I64 => conv!(i64, 8),
            DType::U64 => conv!(u64, 8),
        }
    }

    /// Every element converted to f32.
    pub fn to_f32_vec(&self) -> Vec<f32> {
        let mut out = Vec::new();
        self.to_f32_into(&mut out);
        out
    }

    /// Every element converted to f32, into `out` (replacing its contents; reusing its
    /// allocation avoids faulting in fresh pages for each large tensor).
    pub fn to_f32_into(&self, out: &mut Vec<f32>) {
        if self.dtype == DType::F16 {
            // Every element is overwritten: only a longer buffer's new part gets zeroed.
            out.resize(self.len(), 0.0);
            out.par_chunks_mut(WIDEN_TASK)
                .zip(self.bytes().par_chunks(2 * WIDEN_TASK))
                .for_each(|(out, bytes)| widen_f16(bytes, out));
            return;
        }
        out.clear();
        match self.dtype {
            DType::F32 => out.extend(
                self.bytes()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap())),
            ),
            DType::I4 | DType::I8 => out.extend(self.bytes().iter().map(|&v| v as i8 as f32)),
            d if d.ir_bytes() == 1 => out.extend(self.bytes().iter().map(|&v| v as f32)),
            _ => out.extend(self.to_f64_vec().into_iter().map(|v| v as f32)),
        }
    }

    /// Every element converted to i64 (floats truncate toward zero).
    pub fn to_i64_vec(&self) -> Vec<i64> {
        match self.dtype {
            DType::I64 => self
                .bytes()
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            DType::I32 => self
                .bytes()
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
            DType::I4 | DType::I8 => self.bytes().iter().map(|&v| v as i8 as i64).collect(),
            d if d.ir_bytes() == 1 && d != DType::String => {
                self.bytes().iter().map(|&v| v as i64).collect()
            }
            _ => self.to_f64_vec().into_iter().map(|v| v as i64).collect(),
        }
    }

    /// The value of a one-element numeric tensor as i64.
    pub fn scalar_i64(&self) -> Option<i64> {
        (self.len() == 1 && self.dtype != DType::String).then(|| self.to_i64_vec()[0])
    }

    /// The value of a one-element numeric tensor as f64.
    pub fn scalar_f64(&self) -> Option<f64> {
        (self.len() == 1 && self.dtype != DType::String).then(|| self.to_f64_vec()[0])
    }

    /// Converts every element to another numeric dtype (floats to ints truncate; fp16 rounds
    /// to nearest even; ints wrap as two's complement).
    pub fn cast(&self, dtype: DType) -> Tensor {
        if dtype == self.dtype {
            return self.clone();
        }
        let shape = &self.shape;
        match dtype {
            DType::F32 => Tensor::from_f32(shape, &self.to_f32_vec()),
            DType::F16 => {
                let wide = self.to_f32_vec();
                let mut bytes = vec![0u8; wide.len() * 2];
                bytes
                    .par_chunks_mut(2 * WIDEN_TASK)
                    .zip(wide.par_chunks(WIDEN_TASK))
                    .for_each(|(bytes, wide)| narrow_to_f16(wide, bytes));
                Tensor::from_vec_bytes(DType::F16, shape, bytes)
            }
            DType::F64 => Tensor::from_f64(shape, &self.to_f64_vec()),
            DType::Bool => Tensor::from_bool(
                shape,
                &self
                    .to_f64_vec()
                    .into_iter()
                    .map(|v| v != 0.0)
                    .collect::<Vec<_>>(),
            ),
            DType::String => panic!("cannot cast a numeric tensor to string"),
            _ => {
                let ints: Vec<i64> = if self.dtype.is_float() {
                    self.to_f64_vec().into_iter().map(|v| v as i64).collect()
                } else {
                    self.to_i64_vec()
                };
                Tensor::from_i64_as(dtype, shape, &ints)
            }
        }
    }

    /// An integer tensor of `dtype` from i64 values (wrapping to the type's width).
    pub fn from_i64_as(dtype: DType, shape: &[usize], values: &[i64]) -> Tensor {
        match dtype {
            DType::I64 => Tensor::from_i64(shape, values),
            DType::I32 => {
                Tensor::from_i32(shape, &values.iter().map(|&v| v as i32).collect::<Vec<_>>())
            }
            DType::I16 => {
                Tensor::from_i16(shape, &values.iter().map(|&v| v as i16).collect::<Vec<_>>())
            }
            DType::U16 => {
                Tensor::from_u16(shape, &values.iter().map(|&v| v as u16).collect::<Vec<_>>())
            }
            DType::U32 => {
                Tensor::from_u32(shape, &values.iter().map(|&v| v as u32).collect::<Vec<_>>())
            }
            DType::U64 => {
                Tensor::from_u64(shape, &values.iter().map(|&v| v as u64).collect::<Vec<_>>())
            }
            DType::Bool => {
                Tensor::from_bool(shape, &values.iter().map(|&v| v != 0).collect::<Vec<_>>())
            }
            DType::F32 => {
                Tensor::from_f32(shape, &values.iter().map(|&v| v as f32).collect::<Vec<_>>())
            }
            DType::F16 => Tensor::from_f16(
                shape,
                &values
                    .iter()
                    .map(|&v| f16::from_f32(v as f32))
                    .collect::<Vec<_>>(),
            ),
            DType::F64 => {
                Tensor::from_f64(shape, &values.iter().map(|&v| v as f64).collect::<Vec<_>>())
            }
            DType::String => panic!("cannot build a string tensor from integers"),
            DType::I8 => Tensor::from_byte_elements(
                dtype,
                shape,
                values.iter().map(|&v| v as i8 as u8).collect(),
            ),
            DType::I4 => {
                let wrapped = values.iter().map(|&v| int4_byte(v as u8)).collect();
                Tensor::from_byte_elements(dtype, shape, wrapped)
            }
            unsigned => {
                let mask = (1i64 << unsigned.bits()) - 1;
                Tensor::from_byte_elements(
                    unsigned,
                    shape,
                    values.iter().map(|&v| (v & mask) as u8).collect(),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn released_pages_read_back_and_heap_tensors_are_untouched() {
        use std::io::Write;
        let values: Vec<f32> = (0..40_000).map(|i| i as f32 * 0.5).collect();
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&bytes).unwrap();
        // SAFETY: a private temporary file nothing else writes.
        let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
        let mapped = Bytes::from_owner(map).slice(4..);
        // SAFETY: a slice of a read-only file map that the `Bytes` keeps alive.
        let t = unsafe { Tensor::from_mapped_bytes(DType::F32, &[39_999], mapped) }.unwrap();
        assert_eq!(t.to_f32_vec()[..], values[1..]);
        t.release_pages();
        assert_eq!(t.to_f32_vec()[..], values[1..], "read again from the file");
        // Heap memory is never released (dropping its pages would zero them).
        let heap = Tensor::from_f32(&[40_000], &values);
        heap.release_pages();
        assert_eq!(heap.to_f32_vec(), values);
    }

    #[test]
    fn transposes_matrices_of_every_width_across_tiles() {
        let t = Tensor::from_f32(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let tt = t.transposed_matrix();
        assert_eq!(tt.shape(), &[3, 2]);
        assert_eq!(tt.to_f32_vec(), [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        // Larger than a tile both ways, with partial tiles at the edges.
        let (rows, cols) = (TRANSPOSE_TILE + 7, 2 * TRANSPOSE_TILE + 3);
        let values: Vec<i64> = (0..(rows * cols) as i64).collect();
        for dtype in [DType::I8, DType::I16, DType::I32, DType::I64] {
            let t = Tensor::from_i64_as(dtype, &[rows, cols], &values);
            let got = t.transposed_matrix().to_i64_vec();
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(got[c * rows + r], t.to_i64_vec()[r * cols + c], "{dtype}");
                }
            }
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_mapped_weight_is_transformed_when_read_and_not_kept_by_a_single_use() {
        use std::io::Write;
        let values: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&bytes).unwrap();
        // SAFETY: a private temporary file nothing else writes.
        let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
        // SAFETY: the whole of a read-only file map that the `Bytes` keeps alive.
        let t = unsafe { Tensor::from_mapped_bytes(DType::F32, &[3, 4], Bytes::from_owner(map)) }
            .unwrap();
        let deferred = t
            .transposed_matrix()
            .defer(DType::F16, &[4, 3], |t| t.cast(DType::F16));
        assert!(matches!(deferred.data, TensorData::Deferred(_)));
        let wanted: Vec<f32> = (0..4)
            .flat_map(|c| (0..3).map(move |r| (r * 4 + c) as f32))
            .collect();
        deferred.with_elements(|e| assert_eq!(e.to_f32_vec(), wanted));
        let TensorData::Deferred(d) = &deferred.data else {
            unreachable!()
        };
        assert!(
            d.cache.get().is_none(),
            "one use does not keep the elements"
        );
        assert_eq!(deferred.dtype(), DType::F16);
        assert_eq!(deferred.to_f32_vec(), wanted);
        assert!(d.cache.get().is_some(), "bytes() keeps them");
        assert_eq!(
            deferred,
            Tensor::from_f32(&[4, 3], &wanted).cast(DType::F16)
        );
    }

    #[test]
    fn casts_round_fp16_and_truncate_ints() {
        let t = Tensor::from_f32(&[3], &[1.0, 65520.0, -2.7]);
        assert_eq!(
            t.cast(DType::F16).to_f32_vec(),
            vec![1.0, f32::INFINITY, -2.699_218_8]
        );
        assert_eq!(t.cast(DType::I32).to_i64_vec(), vec![1, 65520, -2]);
    }

    #[test]
    fn rejects_byte_length_mismatch() {
        assert!(Tensor::from_bytes(DType::F32, &[2, 2], Bytes::from(vec![0u8; 15])).is_err());
        assert!(Tensor::from_bytes(DType::F32, &[2, 2], Bytes::from(vec![0u8; 16])).is_ok());
    }

    #[test]
    fn sub_byte_values_wrap_to_their_width() {
        let t = Tensor::from_i64_as(DType::I4, &[2], &[-1, 7]);
        assert_eq!(t.to_i64_vec(), vec![-1, 7]);
        assert_eq!(
            Tensor::from_i64_as(DType::I4, &[1], &[9]).to_i64_vec(),
            vec![-7]
        );
        assert_eq!(Tensor::from_i64_as(DType::U8, &[1], &[300]).bytes(), &[44]);
    }

    #[test]
    fn packed_sub_byte_tensors_read_like_unpacked_ones() {
        let values = [3u8, 0, 1, 2, 3, 3, 0, 1, 2];
        let unpacked = Tensor::from_byte_elements(DType::U2, &[3, 3], values.to_vec());
        let mut bits = crate::ir::bits::pack_bits(&values, 2);
        // Stray bits past the last element are cleared.
        *bits.last_mut().unwrap() |= 0b1111_1100;
        let packed = Tensor::from_packed_bits(DType::U2, &[3, 3], bits);
        assert_eq!(
            packed.packed_bits(),
            Some(&crate::ir::bits::pack_bits(&values, 2)[..])
        );
        assert_eq!(packed.bytes(), &values);
        assert_eq!(packed, unpacked);
        assert_eq!(packed.reshaped(&[9]).bytes(), &values);
        assert_eq!(unpacked.packed_bits(), None);
        let signed = [-8i64, -1, 0, 7, 3];
        let int4 = Tensor::from_i64_as(DType::I4, &[5], &signed);
        let packed =
            Tensor::from_packed_bits(DType::I4, &[5], crate::ir::bits::pack_bits(int4.bytes(), 4));
        assert_eq!(packed.to_i64_vec(), signed);
        assert_eq!(packed, int4);
    }
}
