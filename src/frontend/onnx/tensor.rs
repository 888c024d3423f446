//! ONNX element types and `TensorProto` → IR [`Tensor`] conversion.
//!
//! The IR program is fp32 with int32 integers (Core ML has no int64 at run time): FLOAT16,
//! BFLOAT16 and DOUBLE become fp32; every integer type becomes int32, values outside the
//! int32 range being clamped to it (this only matters for sentinels such as INT64_MAX slice
//! ends, which are clamped again later anyway).

use super::reader::{external_ref, ExternalData};
use crate::ir::{DType, Tensor};
use crate::proto::onnx::{tensor_proto::DataType, TensorProto};
use crate::Error;
use bytes::Bytes;
use half::{bf16, f16};
use std::path::Path;

/// The ONNX name of element type `elem_type` (`FLOAT`, `INT64`, …).
pub fn elem_type_name(elem_type: i32) -> String {
    DataType::try_from(elem_type).map_or_else(
        |_| format!("type#{elem_type}"),
        |t| t.as_str_name().to_string(),
    )
}

/// Bytes per element of an ONNX element type as stored in `raw_data` (None for strings and
/// sub-byte types).
pub fn elem_size(elem_type: i32) -> Option<usize> {
    use DataType as D;
    match DataType::try_from(elem_type).ok()? {
        D::Float | D::Int32 | D::Uint32 => Some(4),
        D::Uint8 | D::Int8 | D::Bool => Some(1),
        D::Float8e4m3fn | D::Float8e4m3fnuz | D::Float8e5m2 | D::Float8e5m2fnuz => Some(1),
        D::Uint16 | D::Int16 | D::Float16 | D::Bfloat16 => Some(2),
        D::Int64 | D::Double | D::Uint64 | D::Complex64 => Some(8),
        D::Complex128 => Some(16),
        D::Undefined | D::String | D::Uint4 | D::Int4 | D::Float4e2m1 => None,
    }
}

/// The IR dtype an ONNX element type becomes, or None when mlpack cannot represent it.
pub fn ir_dtype(elem_type: i32) -> Option<DType> {
    use DataType as D;
    match DataType::try_from(elem_type).ok()? {
        D::Float | D::Float16 | D::Bfloat16 | D::Double => Some(DType::F32),
        D::Int64 | D::Int32 | D::Int16 | D::Int8 | D::Uint8 | D::Uint16 | D::Uint32 | D::Uint64 => {
            Some(DType::I32)
        }
        D::Bool => Some(DType::Bool),
        _ => None,
    }
}

fn clamp_i32(v: i64) -> i32 {
    v.clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// Converts an initializer or constant to an IR tensor; external data is read through `data`.
/// Errors name the tensor and the model file `path`.
pub fn to_ir_tensor(
    t: &TensorProto,
    path: &Path,
    data: &mut ExternalData,
) -> Result<Tensor, Error> {
    let unsupported = |what: String| Error::Unsupported {
        path: path.to_path_buf(),
        message: format!("tensor '{}': {what}", t.name),
    };
    let invalid = |what: String| Error::invalid(path, format!("tensor '{}': {what}", t.name));
    let mut shape = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        shape.push(
            usize::try_from(d)
                .map_err(|_| invalid(format!("negative dimension {d} in {:?}", t.dims)))?,
        );
    }
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| invalid(format!("dimensions {:?} are too large", t.dims)))?;
    if t.segment.is_some() {
        return Err(unsupported("segmented tensors are not supported".into()));
    }
    let dtype = DataType::try_from(t.data_type)
        .map_err(|_| invalid(format!("unknown element type {}", t.data_type)))?;
    let raw: Option<Bytes> = match external_ref(t, path)? {
        Some(r) => Some(data.slice(&t.name, &r)?),
        None if !t.raw_data.is_empty() => Some(t.raw_data.clone()),
        None => None,
    };
    if matches!(dtype, DataType::Int4 | DataType::Uint4) {
        let packed: Vec<u8> = match &raw {
            Some(raw) => raw.to_vec(),
            None => t.int32_data.iter().map(|&v| v as u8).collect(),
        };
        if packed.len() != count.div_ceil(2) {
            return Err(invalid(format!(
                "{} tensor of shape {shape:?} needs {} packed bytes, has {}",
                dtype.as_str_name(),
                count.div_ceil(2),
                packed.len()
            )));
        }
        return Ok(Tensor::from_i32(
            &shape,
            &unpack_int4(&packed, count, dtype == DataType::Int4),
        ));
    }
    if let Some(raw) = &raw {
        let size = elem_size(t.data_type).ok_or_else(|| {
            unsupported(format!("{} tensors are not supported", dtype.as_str_name()))
        })?;
        let needed = count
            .checked_mul(size)
            .ok_or_else(|| invalid(format!("dimensions {:?} are too large", t.dims)))?;
        if raw.len() != needed {
            return Err(invalid(format!(
                "{} tensor of shape {shape:?} needs {needed} bytes, has {}",
                dtype.as_str_name(),
                raw.len()
            )));
        }
    }
    let check_len = |n: usize| {
        if n == count {
            Ok(())
        } else {
            Err(invalid(format!(
                "shape {shape:?} holds {count} elements but the tensor stores {n}"
            )))
        }
    };
    use DataType as D;
    let tensor = match dtype {
        D::Float => match raw {
            Some(raw) if data.is_mapped(&raw) => {
                // SAFETY: the bytes lie inside a read-only map of the model or an external-data
                // file, which the `Bytes` slice keeps mapped.
                unsafe { Tensor::from_mapped_bytes(DType::F32, &shape, raw) }
                    .map_err(|e| invalid(e.to_string()))?
            }
            Some(raw) => {
                Tensor::from_bytes(DType::F32, &shape, raw).map_err(|e| invalid(e.to_string()))?
            }
            None => {
                check_len(t.float_data.len())?;
                Tensor::from_f32(&shape, &t.float_data)
            }
        },
        D::Float16 | D::Bfloat16 => {
            let bits: Vec<u16> = match raw {
                Some(raw) => raw
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect(),
                None => t.int32_data.iter().map(|&v| v as u16).collect(),
            };
            check_len(bits.len())?;
            let values: Vec<f32> = if dtype == D::Float16 {
                bits.iter().map(|&b| f16::from_bits(b).to_f32()).collect()
            } else {
                bits.iter().map(|&b| bf16::from_bits(b).to_f32()).collect()
            };
            Tensor::from_f32(&shape, &values)
        }
        D::Double => {
            let values: Vec<f32> = match raw {
                Some(raw) => raw
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(le8(c)) as f32)
                    .collect(),
                None => t.double_data.iter().map(|&v| v as f32).collect(),
            };
            check_len(values.len())?;
            Tensor::from_f32(&shape, &values)
        }
        D::Int64 | D::Int32 | D::Int16 | D::Int8 | D::Uint8 | D::Uint16 | D::Uint32 | D::Uint64 => {
            let values: Vec<i64> = match raw {
                Some(raw) => decode_ints(dtype, &raw),
                None => match dtype {
                    D::Int64 => t.int64_data.clone(),
                    D::Uint32 | D::Uint64 => t
                        .uint64_data
                        .iter()
                        .map(|&v| v.min(i64::MAX as u64) as i64)
                        .collect(),
                    _ => t.int32_data.iter().map(|&v| v as i64).collect(),
                },
            };
            check_len(values.len())?;
            Tensor::from_i32(
                &shape,
                &values.into_iter().map(clamp_i32).collect::<Vec<_>>(),
            )
        }
        D::Bool => {
            let values: Vec<bool> = match raw {
                Some(raw) => raw.iter().map(|&b| b != 0).collect(),
                None => t.int32_data.iter().map(|&v| v != 0).collect(),
            };
            check_len(values.len())?;
            Tensor::from_bool(&shape, &values)
        }
        other => {
            return Err(unsupported(format!(
                "{} tensors are not supported",
                other.as_str_name()
            )))
        }
    };
    Ok(tensor)
}

/// The `count` 4-bit values packed two per byte (the first in the low nibble), sign-extended
/// when `signed`.
fn unpack_int4(packed: &[u8], count: usize, signed: bool) -> Vec<i32> {
    (0..count)
        .map(|i| {
            let nibble = (packed[i / 2] >> (4 * (i % 2))) & 0x0f;
            if signed {
                i32::from(((nibble << 4) as i8) >> 4)
            } else {
                i32::from(nibble)
            }
        })
        .collect()
}

fn le8(c: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(c);
    a
}

/// Little-endian integers of ONNX type `dtype` from raw bytes, widened to i64.
fn decode_ints(dtype: DataType, raw: &[u8]) -> Vec<i64> {
    use DataType as D;
    match dtype {
        D::Int64 => raw
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(le8(c)))
            .collect(),
        D::Uint64 => raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(le8(c)).min(i64::MAX as u64) as i64)
            .collect(),
        D::Int32 => raw
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
            .collect(),
        D::Uint32 => raw
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
            .collect(),
        D::Int16 => raw
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]) as i64)
            .collect(),
        D::Uint16 => raw
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]) as i64)
            .collect(),
        D::Int8 => raw.iter().map(|&b| b as i8 as i64).collect(),
        _ => raw.iter().map(|&b| b as i64).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(data_type: DataType, dims: &[i64]) -> TensorProto {
        TensorProto {
            name: "w".into(),
            data_type: data_type as i32,
            dims: dims.to_vec(),
            ..Default::default()
        }
    }

    fn convert(t: &TensorProto) -> Result<Tensor, Error> {
        to_ir_tensor(
            t,
            Path::new("m.onnx"),
            &mut ExternalData::new(Path::new("m.onnx"), Bytes::new()),
        )
    }

    #[test]
    fn float_raw_data_is_borrowed_not_copied() {
        let mut t = tensor(DataType::Float, &[2]);
        t.raw_data = Bytes::from([1.5f32.to_le_bytes(), (-2.0f32).to_le_bytes()].concat());
        let ir = convert(&t).unwrap();
        assert_eq!(ir.to_f32_vec(), vec![1.5, -2.0]);
        assert_eq!(ir.bytes().as_ptr(), t.raw_data.as_ptr());
    }

    #[test]
    fn int64_becomes_int32_with_clamping() {
        let mut t = tensor(DataType::Int64, &[3]);
        t.int64_data = vec![-5, i64::MAX, i64::MIN];
        let ir = convert(&t).unwrap();
        assert_eq!(ir.dtype(), DType::I32);
        assert_eq!(ir.to_i64_vec(), vec![-5, i32::MAX as i64, i32::MIN as i64]);
    }

    #[test]
    fn half_and_double_become_fp32() {
        let mut h = tensor(DataType::Float16, &[2]);
        h.int32_data = vec![0x3c00, 0xc000]; // 1.0, -2.0
        assert_eq!(convert(&h).unwrap().to_f32_vec(), vec![1.0, -2.0]);
        let mut d = tensor(DataType::Double, &[1]);
        d.raw_data = Bytes::from(0.25f64.to_le_bytes().to_vec());
        assert_eq!(convert(&d).unwrap().to_f32_vec(), vec![0.25]);
    }

    #[test]
    fn uint8_raw_and_bool_convert() {
        let mut u = tensor(DataType::Uint8, &[2]);
        u.raw_data = Bytes::from(vec![200u8, 3]);
        assert_eq!(convert(&u).unwrap().to_i64_vec(), vec![200, 3]);
        let mut b = tensor(DataType::Bool, &[2]);
        b.int32_data = vec![1, 0];
        assert_eq!(convert(&b).unwrap().dtype(), DType::Bool);
    }

    #[test]
    fn int4_unpacks_low_nibble_first() {
        let mut t = tensor(DataType::Int4, &[3]);
        t.raw_data = Bytes::from(vec![0x8f, 0x07]);
        assert_eq!(convert(&t).unwrap().to_i64_vec(), vec![-1, -8, 7]);
        let mut u = tensor(DataType::Uint4, &[3]);
        u.raw_data = Bytes::from(vec![0x8f, 0x07]);
        assert_eq!(convert(&u).unwrap().to_i64_vec(), vec![15, 8, 7]);
    }

    #[test]
    fn rejects_strings_and_wrong_lengths() {
        let s = tensor(DataType::String, &[1]);
        assert!(matches!(convert(&s), Err(Error::Unsupported { .. })));
        let mut f = tensor(DataType::Float, &[3]);
        f.float_data = vec![1.0];
        let err = convert(&f).unwrap_err().to_string();
        assert!(
            err.contains("tensor 'w'") && err.contains("3 elements"),
            "{err}"
        );
    }
}
