//! Reading and writing NumPy `.npy` files (format versions 1–3, C order, little-endian).

use crate::interp::Value;
use ndarray::{ArrayD, IxDyn};
use std::io::Write;

/// Why bytes are not an `.npy` array mlpack can read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NpyError(String);

const MAGIC: &[u8] = b"\x93NUMPY";

/// An `.npy` element type: its kind (`f`, `i`, `u` or `b`) and size in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dtype {
    /// `f` float, `i` signed integer, `u` unsigned integer, `b` bool.
    pub kind: char,
    /// Bytes per element.
    pub size: usize,
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bits = self.size * 8;
        match self.kind {
            'f' => write!(f, "float{bits}"),
            'i' => write!(f, "int{bits}"),
            'u' => write!(f, "uint{bits}"),
            _ => write!(f, "bool"),
        }
    }
}

/// Parses an `.npy` file's bytes into a run-time value. Floats of any width become f32,
/// integers i32 (values outside i32 are an error), booleans bool.
pub fn parse(bytes: &[u8]) -> Result<Value, NpyError> {
    parse_with_dtype(bytes).map(|(value, _)| value)
}

/// [`parse`], also returning the element type the file holds.
pub fn parse_with_dtype(bytes: &[u8]) -> Result<(Value, Dtype), NpyError> {
    let err = |m: &str| NpyError(m.to_string());
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(err("not an .npy file (bad magic)"));
    }
    let major = bytes[6];
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err(err("unsupported .npy format version")),
    };
    let header = bytes
        .get(start..start + header_len)
        .ok_or_else(|| err("truncated .npy header"))?;
    let header = std::str::from_utf8(header).map_err(|_| err("header is not text"))?;
    let descr = dict_value(header, "descr").ok_or_else(|| err("header has no 'descr'"))?;
    let fortran =
        dict_value(header, "fortran_order").ok_or_else(|| err("header has no 'fortran_order'"))?;
    if fortran.trim() != "False" {
        return Err(err(
            "Fortran-ordered arrays are not supported; save with np.ascontiguousarray",
        ));
    }
    let shape = parse_shape(header).ok_or_else(|| err("header has no valid 'shape'"))?;
    let data = &bytes[start + header_len..];
    let descr = descr.trim().trim_matches(|c| c == '\'' || c == '"');
    let (kind, size) =
        parse_descr(descr).ok_or_else(|| NpyError(format!("unsupported dtype '{descr}'")))?;
    let n =
        crate::ir::element_count(&shape).map_err(|m| NpyError(format!("shape {shape:?}: {m}")))?;
    let needed = n * size;
    if data.len() < needed {
        return Err(NpyError(format!(
            "data holds {} bytes, shape {shape:?} needs {needed}",
            data.len()
        )));
    }
    let chunks = data[..needed].chunks_exact(size);
    let dim = IxDyn(&shape);
    let value = match (kind, size) {
        ('f', 2) => Value::Float(build(ArrayD::from_shape_vec(
            dim,
            chunks
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        ))?),
        ('f', 4) => Value::Float(build(ArrayD::from_shape_vec(
            dim,
            chunks
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ))?),
        ('f', 8) => Value::Float(build(ArrayD::from_shape_vec(
            dim,
            chunks
                .map(|c| f64::from_le_bytes(c.try_into().expect("8-byte chunk")) as f32)
                .collect(),
        ))?),
        ('b', 1) => Value::Bool(build(ArrayD::from_shape_vec(
            dim,
            chunks.map(|c| c[0] != 0).collect(),
        ))?),
        ('i' | 'u', _) => {
            let signed = kind == 'i';
            let mut out = Vec::with_capacity(n);
            for c in chunks {
                let v: i64 = match (signed, size) {
                    (true, 1) => c[0] as i8 as i64,
                    (false, 1) => c[0] as i64,
                    (true, 2) => i16::from_le_bytes([c[0], c[1]]) as i64,
                    (false, 2) => u16::from_le_bytes([c[0], c[1]]) as i64,
                    (true, 4) => i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64,
                    (false, 4) => u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64,
                    (true, 8) => i64::from_le_bytes(c.try_into().expect("8-byte chunk")),
                    _ => return Err(NpyError(format!("unsupported dtype '{descr}'"))),
                };
                out.push(
                    i32::try_from(v)
                        .map_err(|_| NpyError(format!("integer {v} does not fit in int32")))?,
                );
            }
            Value::Int(build(ArrayD::from_shape_vec(dim, out))?)
        }
        _ => return Err(NpyError(format!("unsupported dtype '{descr}'"))),
    };
    Ok((value, Dtype { kind, size }))
}

/// Serialises a run-time value as `.npy` bytes (floats as `<f4`, ints as `<i4`, bools as `|b1`).
pub fn serialize(value: &Value) -> Result<Vec<u8>, NpyError> {
    let (descr, body): (&str, Vec<u8>) = match value {
        Value::Float(a) => ("<f4", a.iter().flat_map(|v| v.to_le_bytes()).collect()),
        Value::Int(a) => ("<i4", a.iter().flat_map(|v| v.to_le_bytes()).collect()),
        Value::Bool(a) => ("|b1", a.iter().map(|&v| v as u8).collect()),
        Value::Str(_) => return Err(NpyError("string tensors cannot be written as .npy".into())),
    };
    let shape = value.shape();
    let shape_text = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    let unpadded = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.write_all(header.as_bytes())
        .expect("writing to a Vec cannot fail");
    out.extend_from_slice(&body);
    Ok(out)
}

fn build<T>(r: Result<ArrayD<T>, ndarray::ShapeError>) -> Result<ArrayD<T>, NpyError> {
    r.map_err(|e| NpyError(e.to_string()))
}

fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let start = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[start..].trim_start().strip_prefix(':')?;
    let end = if rest.trim_start().starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find(',').unwrap_or(rest.len())
    };
    Some(rest[..end].trim())
}

fn parse_shape(header: &str) -> Option<Vec<usize>> {
    let text = dict_value(header, "shape")?;
    let inner = text.strip_prefix('(')?.strip_suffix(')')?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse().ok())
        .collect()
}

fn parse_descr(descr: &str) -> Option<(char, usize)> {
    let mut chars = descr.chars();
    let order = chars.next()?;
    if order == '>' {
        return None;
    }
    let kind = chars.next()?;
    let size: usize = chars.as_str().parse().ok()?;
    let known = match kind {
        'f' => matches!(size, 2 | 4 | 8),
        'i' | 'u' => matches!(size, 1 | 2 | 4 | 8),
        'b' => size == 1,
        _ => false,
    };
    known.then_some((kind, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_numpy_writes() {
        // np.save of np.arange(6, dtype=np.float32).reshape(2, 3), header as numpy 1.x/2.x writes it.
        let mut bytes = b"\x93NUMPY\x01\x00v\x00".to_vec();
        let mut header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }".to_string();
        header.push_str(&" ".repeat(118 - header.len() - 1));
        header.push('\n');
        bytes.extend_from_slice(header.as_bytes());
        for v in 0..6 {
            bytes.extend_from_slice(&(v as f32).to_le_bytes());
        }
        let value = parse(&bytes).unwrap();
        assert_eq!(value.shape(), &[2, 3]);
        assert_eq!(
            value.float().unwrap().iter().copied().collect::<Vec<_>>(),
            vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
        );
    }

    #[test]
    fn round_trips_ints_bools_and_scalars() {
        for v in [
            Value::Int(ArrayD::from_shape_vec(IxDyn(&[3]), vec![-1, 0, 7]).unwrap()),
            Value::Bool(ArrayD::from_shape_vec(IxDyn(&[2, 1]), vec![true, false]).unwrap()),
            Value::Float(ArrayD::from_shape_vec(IxDyn(&[]), vec![2.5]).unwrap()),
        ] {
            let bytes = serialize(&v).unwrap();
            let data_offset = 10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
            assert_eq!(data_offset % 64, 0, "numpy aligns the data to 64 bytes");
            assert_eq!(parse(&bytes).unwrap(), v);
        }
    }

    #[test]
    fn rejects_fortran_order_and_big_endian() {
        let make = |descr: &str, fortran: &str| {
            let h =
                format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': (1,), }}\n");
            let mut b = b"\x93NUMPY\x01\x00".to_vec();
            b.extend_from_slice(&(h.len() as u16).to_le_bytes());
            b.extend_from_slice(h.as_bytes());
            b.extend_from_slice(&[0; 4]);
            b
        };
        assert!(parse(&make("<f4", "True")).is_err());
        assert!(parse(&make(">f4", "False")).is_err());
        assert!(parse(&make("<f4", "False")).is_ok());
    }

    /// An `.npy` file with `descr` and `shape_text` (a Python tuple) and `data` as payload.
    fn npy_bytes(descr: &str, shape_text: &str, data: &[u8]) -> Vec<u8> {
        let h =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}\n");
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(h.len() as u16).to_le_bytes());
        b.extend_from_slice(h.as_bytes());
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn rejects_zero_size_dtypes_and_huge_shapes() {
        for descr in ["<f0", "<i0", "|u0", "|b0", "<f3", "|b2"] {
            let e = parse(&npy_bytes(descr, "(2,)", &[0; 8])).unwrap_err();
            assert!(e.to_string().contains("unsupported dtype"), "{descr}: {e}");
        }
        for shape in [
            "(18446744073709551615, 2)",
            "(4294967296, 4294967296)",
            "(4294967296,)",
        ] {
            let e = parse(&npy_bytes("<f4", shape, &[0; 8])).unwrap_err();
            assert!(e.to_string().contains("elements"), "{shape}: {e}");
        }
    }
}
