//! torch element types and the strided view of an untyped storage → IR [`Tensor`].
//!
//! A torch tensor is a view (`sizes`, `strides`, `storage_offset`, all in elements) of an
//! untyped byte storage; several tensors may share one storage (tied weights). Both weight
//! formats reduce to that: the raw `weight_<i>` members of a PT2 archive with their
//! `tensor_meta`, and `_rebuild_tensor_v2` calls in a `torch.save` pickle. Every number comes
//! from the file, so each is checked before anything is allocated.
//!
//! As in the ONNX frontend, floats become fp32 and integers int32 (values outside int32 are
//! clamped); a contiguous fp32 view of a mapped storage stays mapped, other conversions are
//! deferred until the weight is read ([`Tensor::defer`]).

use crate::ir::{DType, Tensor};
use bytes::Bytes;
use half::{bf16, f16};

/// Largest element count of one weight mlpack accepts (2^36, 256 GiB of fp32): a bound that
/// rejects absurd shapes before any arithmetic can overflow.
const MAX_ELEMENTS: u128 = 1 << 36;

/// Most bytes a view that repeats its storage's elements (zero strides) may expand to.
const MAX_REPEATED_BYTES: u128 = 1 << 28;

/// A torch element type (`torch.float32`, …) as the export schema numbers them
/// (`ScalarType` in `torch/_export/serde/schema.py`) or as a `torch.save` pickle names its
/// storage class (`FloatStorage`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TorchDType {
    /// uint8.
    U8,
    /// int8.
    I8,
    /// int16.
    I16,
    /// int32.
    I32,
    /// int64.
    I64,
    /// float16.
    F16,
    /// float32.
    F32,
    /// float64.
    F64,
    /// bool.
    Bool,
    /// bfloat16.
    BF16,
}

impl TorchDType {
    /// The dtype of export-schema `ScalarType` number `code`.
    pub fn from_schema(code: i64) -> Option<TorchDType> {
        Some(match code {
            1 => TorchDType::U8,
            2 => TorchDType::I8,
            3 => TorchDType::I16,
            4 => TorchDType::I32,
            5 => TorchDType::I64,
            6 => TorchDType::F16,
            7 => TorchDType::F32,
            8 => TorchDType::F64,
            12 => TorchDType::Bool,
            13 => TorchDType::BF16,
            _ => return None,
        })
    }

    /// The dtype of a `torch.save` storage class (`FloatStorage`, `HalfStorage`, …).
    pub fn from_storage_class(name: &str) -> Option<TorchDType> {
        Some(match name {
            "ByteStorage" => TorchDType::U8,
            "CharStorage" => TorchDType::I8,
            "ShortStorage" => TorchDType::I16,
            "IntStorage" => TorchDType::I32,
            "LongStorage" => TorchDType::I64,
            "HalfStorage" => TorchDType::F16,
            "FloatStorage" => TorchDType::F32,
            "DoubleStorage" => TorchDType::F64,
            "BoolStorage" => TorchDType::Bool,
            "BFloat16Storage" => TorchDType::BF16,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            TorchDType::U8 | TorchDType::I8 | TorchDType::Bool => 1,
            TorchDType::I16 | TorchDType::F16 | TorchDType::BF16 => 2,
            TorchDType::I32 | TorchDType::F32 => 4,
            TorchDType::I64 | TorchDType::F64 => 8,
        }
    }

    /// The IR dtype a tensor of this type becomes.
    pub fn ir_dtype(self) -> DType {
        match self {
            TorchDType::F16 | TorchDType::F32 | TorchDType::F64 | TorchDType::BF16 => DType::F32,
            TorchDType::Bool => DType::Bool,
            _ => DType::I32,
        }
    }
}

/// How a tensor views its storage, in elements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// Element type of the storage.
    pub dtype: TorchDType,
    /// Sizes, outermost first.
    pub sizes: Vec<i64>,
    /// Strides in elements.
    pub strides: Vec<i64>,
    /// Offset of the first element, in elements.
    pub offset: i64,
}

impl View {
    /// The sizes as `usize` and the element count, checked (no negative size, no absurd
    /// count, as many strides as sizes).
    fn checked_shape(&self) -> Result<(Vec<usize>, usize), String> {
        if self.strides.len() != self.sizes.len() {
            return Err(format!(
                "{} strides for {} dimensions",
                self.strides.len(),
                self.sizes.len()
            ));
        }
        let mut count: u128 = 1;
        let mut shape = Vec::with_capacity(self.sizes.len());
        for &s in &self.sizes {
            let s = usize::try_from(s).map_err(|_| format!("negative size in {:?}", self.sizes))?;
            count = count.saturating_mul(s as u128);
            shape.push(s);
        }
        if count > MAX_ELEMENTS {
            return Err(format!(
                "shape {:?} has {count} elements, more than mlpack accepts ({MAX_ELEMENTS})",
                self.sizes
            ));
        }
        Ok((shape, count as usize))
    }

    /// The element range `[first, last + 1)` of the storage the view reads (empty views read
    /// nothing); an error when a stride or the offset is negative.
    fn span(&self, count: usize) -> Result<(u128, u128), String> {
        let offset = u128::try_from(self.offset)
            .map_err(|_| format!("negative storage offset {}", self.offset))?;
        if count == 0 {
            return Ok((offset, offset));
        }
        let mut last = offset;
        for (&size, &stride) in self.sizes.iter().zip(&self.strides) {
            let stride = u128::try_from(stride)
                .map_err(|_| format!("negative stride in {:?}", self.strides))?;
            last += (size as u128 - 1) * stride;
        }
        Ok((offset, last + 1))
    }

    /// True when the view reads consecutive elements in row-major order.
    fn is_contiguous(&self) -> bool {
        let mut expected = 1i64;
        for (&size, &stride) in self.sizes.iter().zip(&self.strides).rev() {
            if size != 1 && stride != expected {
                return false;
            }
            expected = expected.saturating_mul(size);
        }
        true
    }
}

/// The tensor `view` reads from `storage` (raw little-endian bytes; `mapped`: they lie in a
/// read-only file mapping). Errors say what is wrong with the view in one line.
pub fn tensor_from_storage(storage: &Bytes, mapped: bool, view: &View) -> Result<Tensor, String> {
    let size = view.dtype.size();
    if storage.len() % size != 0 {
        return Err(format!(
            "storage of {} bytes is not a whole number of {}-byte elements",
            storage.len(),
            size
        ));
    }
    let (shape, count) = view.checked_shape()?;
    let (first, end) = view.span(count)?;
    let available = (storage.len() / size) as u128;
    if end > available {
        return Err(format!(
            "view (sizes {:?}, strides {:?}, offset {}) reads element {} of a storage of {available}",
            view.sizes,
            view.strides,
            view.offset,
            end - 1
        ));
    }
    // Zero strides (an expanded tensor) let a view read more elements than its storage
    // holds; copying such a view must stay proportionate to the file.
    let bytes = count as u128 * size as u128;
    if count as u128 > available && bytes > MAX_REPEATED_BYTES {
        return Err(format!(
            "view (sizes {:?}, strides {:?}) repeats a storage of {available} elements into \
             {count}, more than mlpack copies ({MAX_REPEATED_BYTES} bytes)",
            view.sizes, view.strides
        ));
    }
    let elements = if view.is_contiguous() {
        let start = first as usize * size;
        storage.slice(start..start + count * size)
    } else {
        Bytes::from(gather(storage, view, &shape, count, size))
    };
    let mapped = mapped && view.is_contiguous();
    Ok(convert(elements, mapped, view.dtype, &shape))
}

/// Copies the elements of a strided view into row-major order.
fn gather(storage: &[u8], view: &View, shape: &[usize], count: usize, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(count * size);
    let mut index = vec![0usize; shape.len()];
    for _ in 0..count {
        let element: i64 = view.offset
            + index
                .iter()
                .zip(&view.strides)
                .map(|(&i, &s)| i as i64 * s)
                .sum::<i64>();
        let at = element as usize * size;
        out.extend_from_slice(&storage[at..at + size]);
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            if index[axis] < shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    out
}

/// Row-major elements of `dtype` as an IR tensor: fp32 and int32 kept as they are (an
/// aligned mapped weight stays mapped), bool normalised to 0/1, other types converted when
/// read (deferred for a mapped weight).
fn convert(elements: Bytes, mapped: bool, dtype: TorchDType, shape: &[usize]) -> Tensor {
    let ir = dtype.ir_dtype();
    let aligned = (elements.as_ptr() as usize) % dtype.size() == 0;
    match dtype {
        TorchDType::Bool => Tensor::from_byte_elements(
            DType::Bool,
            shape,
            elements.iter().map(|&b| (b != 0) as u8).collect(),
        ),
        TorchDType::F32 | TorchDType::I32 if mapped && aligned => {
            // SAFETY: `mapped` says the bytes lie in a read-only file mapping they keep alive.
            unsafe { Tensor::from_mapped_bytes(ir, shape, elements) }
                .expect("length checked against the view")
        }
        TorchDType::F32 | TorchDType::I32 => {
            let owned = if aligned {
                elements
            } else {
                Bytes::copy_from_slice(&elements)
            };
            Tensor::from_bytes(ir, shape, owned).expect("length checked against the view")
        }
        _ => {
            let raw_shape = [elements.len()];
            let raw = if mapped {
                // SAFETY: as above.
                unsafe { Tensor::from_mapped_bytes(DType::U8, &raw_shape, elements) }
            } else {
                Tensor::from_bytes(DType::U8, &raw_shape, elements)
            }
            .expect("length matches the shape");
            let out_shape = shape.to_vec();
            raw.defer(ir, shape, move |t| widen(t.bytes(), dtype, &out_shape))
        }
    }
}

/// Converts raw little-endian elements of `dtype` to fp32 or int32.
fn widen(bytes: &[u8], dtype: TorchDType, shape: &[usize]) -> Tensor {
    let clamp = |v: i64| v.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
    match dtype {
        TorchDType::F16 => Tensor::from_f32(
            shape,
            &bytes
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect::<Vec<_>>(),
        ),
        TorchDType::BF16 => Tensor::from_f32(
            shape,
            &bytes
                .chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect::<Vec<_>>(),
        ),
        TorchDType::F64 => Tensor::from_f32(
            shape,
            &bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                .collect::<Vec<_>>(),
        ),
        TorchDType::I64 => Tensor::from_i32(
            shape,
            &bytes
                .chunks_exact(8)
                .map(|c| clamp(i64::from_le_bytes(c.try_into().expect("8 bytes"))))
                .collect::<Vec<_>>(),
        ),
        TorchDType::I16 => Tensor::from_i32(
            shape,
            &bytes
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as i32)
                .collect::<Vec<_>>(),
        ),
        TorchDType::I8 => Tensor::from_i32(
            shape,
            &bytes.iter().map(|&b| b as i8 as i32).collect::<Vec<_>>(),
        ),
        TorchDType::U8 => {
            Tensor::from_i32(shape, &bytes.iter().map(|&b| b as i32).collect::<Vec<_>>())
        }
        TorchDType::F32 | TorchDType::I32 | TorchDType::Bool => {
            unreachable!("{dtype:?} is kept without conversion")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(dtype: TorchDType, sizes: &[i64], strides: &[i64], offset: i64) -> View {
        View {
            dtype,
            sizes: sizes.to_vec(),
            strides: strides.to_vec(),
            offset,
        }
    }

    fn f32_storage(values: &[f32]) -> Bytes {
        Bytes::from(
            values
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn contiguous_view_with_offset_reads_its_slice() {
        let storage = f32_storage(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let t = tensor_from_storage(&storage, false, &view(TorchDType::F32, &[2, 3], &[3, 1], 1))
            .unwrap();
        assert_eq!(t.shape(), &[2, 3]);
        assert_eq!(t.to_f32_vec(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn transposed_view_is_gathered_row_major() {
        let storage = f32_storage(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        let t = tensor_from_storage(&storage, false, &view(TorchDType::F32, &[3, 2], &[1, 3], 0))
            .unwrap();
        assert_eq!(t.to_f32_vec(), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }

    #[test]
    fn int64_is_narrowed_with_clamping_and_half_widened() {
        let longs: Vec<u8> = [5i64, -7, i64::MAX]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let t = tensor_from_storage(
            &Bytes::from(longs),
            false,
            &view(TorchDType::I64, &[3], &[1], 0),
        )
        .unwrap();
        assert_eq!(t.dtype(), DType::I32);
        assert_eq!(t.to_i64_vec(), vec![5, -7, i32::MAX as i64]);
        let halves: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect();
        let t = tensor_from_storage(
            &Bytes::from(halves),
            false,
            &view(TorchDType::F16, &[2], &[1], 0),
        )
        .unwrap();
        assert_eq!(t.to_f32_vec(), vec![1.5, -2.0]);
    }

    #[test]
    fn hostile_views_are_refused_before_reading() {
        let storage = f32_storage(&[0.0; 6]);
        let past_end = view(TorchDType::F32, &[2, 3], &[3, 1], 1);
        assert!(tensor_from_storage(&storage, false, &past_end)
            .unwrap_err()
            .contains("reads element 6"));
        let huge = view(TorchDType::F32, &[1 << 40, 1 << 40], &[1, 1], 0);
        assert!(tensor_from_storage(&storage, false, &huge)
            .unwrap_err()
            .contains("more than mlpack accepts"));
        let negative = view(TorchDType::F32, &[2], &[-1], 1);
        assert!(tensor_from_storage(&storage, false, &negative)
            .unwrap_err()
            .contains("negative stride"));
        let ragged = Bytes::from(vec![0u8; 7]);
        assert!(
            tensor_from_storage(&ragged, false, &view(TorchDType::F32, &[1], &[1], 0))
                .unwrap_err()
                .contains("whole number")
        );
        let expanded = view(TorchDType::F32, &[1 << 30], &[0], 0);
        assert!(tensor_from_storage(&storage, false, &expanded)
            .unwrap_err()
            .contains("repeats a storage of 6 elements"));
        let small_expand = view(TorchDType::F32, &[2, 3], &[0, 1], 0);
        assert_eq!(
            tensor_from_storage(&f32_storage(&[1.0, 2.0, 3.0]), false, &small_expand)
                .unwrap()
                .to_f32_vec(),
            vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0]
        );
        let wrong_rank = view(TorchDType::F32, &[2, 3], &[1], 0);
        assert!(tensor_from_storage(&storage, false, &wrong_rank).is_err());
    }

    #[test]
    fn empty_view_reads_nothing() {
        let t = tensor_from_storage(
            &Bytes::new(),
            false,
            &view(TorchDType::F32, &[0, 4], &[4, 1], 0),
        )
        .unwrap();
        assert_eq!(t.shape(), &[0, 4]);
    }
}
