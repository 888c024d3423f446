//! IR dtypes, tensor types and constant tensors ⇄ their MIL protobuf forms (immediate values;
//! blob values are handled by the writer and reader with [`super::blob`]).

use super::Problem;
use crate::ir::bits::{pack_bits, unpack_bits};
use crate::ir::{DType, Dim, Target, Tensor, TensorType};
use crate::proto::coreml::mil_spec as mil;
use mil::tensor_value::Value as Field;
use mil::value::immediate_value::Value as Immediate;

/// The protobuf `DataType` of `dtype`.
pub fn data_type(dtype: DType) -> mil::DataType {
    match dtype {
        DType::Bool => mil::DataType::Bool,
        DType::String => mil::DataType::String,
        DType::F16 => mil::DataType::Float16,
        DType::F32 => mil::DataType::Float32,
        DType::F64 => mil::DataType::Float64,
        DType::I4 => mil::DataType::Int4,
        DType::I8 => mil::DataType::Int8,
        DType::I16 => mil::DataType::Int16,
        DType::I32 => mil::DataType::Int32,
        DType::I64 => mil::DataType::Int64,
        DType::U1 => mil::DataType::Uint1,
        DType::U2 => mil::DataType::Uint2,
        DType::U3 => mil::DataType::Uint3,
        DType::U4 => mil::DataType::Uint4,
        DType::U6 => mil::DataType::Uint6,
        DType::U8 => mil::DataType::Uint8,
        DType::U16 => mil::DataType::Uint16,
        DType::U32 => mil::DataType::Uint32,
        DType::U64 => mil::DataType::Uint64,
    }
}

/// The IR dtype of a protobuf `DataType` code.
pub fn dtype_from_proto(code: i32) -> Result<DType, Problem> {
    let found = mil::DataType::try_from(code)
        .map_err(|_| Problem::Invalid(format!("unknown dtype code {code}")))?;
    DType::ALL
        .into_iter()
        .find(|&d| data_type(d) == found)
        .ok_or_else(|| match found {
            mil::DataType::UnusedType => Problem::Invalid("missing dtype".into()),
            other => {
                Problem::Unsupported(format!("dtype {} is not supported", other.as_str_name()))
            }
        })
}

/// The protobuf `ValueType` of a tensor type (fixed dimensions → constant, symbols → unknown).
pub fn value_type(ty: &TensorType) -> mil::ValueType {
    use mil::dimension::{ConstantDimension, Dimension, UnknownDimension};
    let dimensions = ty
        .shape
        .iter()
        .map(|d| mil::Dimension {
            dimension: Some(match d {
                Dim::Fixed(n) => Dimension::Constant(ConstantDimension { size: *n as u64 }),
                Dim::Symbol(_) => Dimension::Unknown(UnknownDimension { variadic: false }),
            }),
        })
        .collect();
    mil::ValueType {
        r#type: Some(mil::value_type::Type::TensorType(mil::TensorType {
            data_type: data_type(ty.dtype) as i32,
            rank: ty.rank() as i64,
            dimensions,
            attributes: Default::default(),
        })),
    }
}

/// The MIL type of a state holding tensors of type `ty` (`StateType` wrapping the tensor type).
pub fn state_value_type(ty: &TensorType) -> mil::ValueType {
    mil::ValueType {
        r#type: Some(mil::value_type::Type::StateType(Box::new(mil::StateType {
            wrapped_type: Some(Box::new(value_type(ty))),
        }))),
    }
}

/// The tensor type a `StateType` wraps, or `None` when `value_type` is not a state.
pub fn state_tensor_type(
    value_type: Option<&mil::ValueType>,
    var: &str,
) -> Option<Result<TensorType, Problem>> {
    match value_type.and_then(|v| v.r#type.as_ref()) {
        Some(mil::value_type::Type::StateType(s)) => {
            Some(tensor_type(s.wrapped_type.as_deref(), var))
        }
        _ => None,
    }
}

/// The tensor type described by `value_type`; unknown dimensions become symbols named
/// `<var>_dim<i>` (symbol names are not stored in a package).
pub fn tensor_type(value_type: Option<&mil::ValueType>, var: &str) -> Result<TensorType, Problem> {
    use mil::dimension::Dimension;
    use mil::value_type::Type;
    let t = match value_type.and_then(|v| v.r#type.as_ref()) {
        Some(Type::TensorType(t)) => t,
        None => return Err(Problem::Invalid("has no type".into())),
        Some(Type::ListType(_)) => {
            return Err(Problem::Unsupported("list types are not supported".into()))
        }
        Some(Type::TupleType(_)) => {
            return Err(Problem::Unsupported("tuple types are not supported".into()))
        }
        Some(Type::DictionaryType(_)) => {
            return Err(Problem::Unsupported(
                "dictionary types are not supported".into(),
            ))
        }
        Some(Type::StateType(_)) => {
            return Err(Problem::Unsupported("state types are not supported".into()))
        }
    };
    let dtype = dtype_from_proto(t.data_type)?;
    if t.rank < 0 {
        return Err(Problem::Unsupported(
            "tensors of unknown rank are not supported".into(),
        ));
    }
    if t.rank as u64 != t.dimensions.len() as u64 {
        return Err(Problem::Invalid(format!(
            "rank {} but {} dimensions",
            t.rank,
            t.dimensions.len()
        )));
    }
    let shape = t
        .dimensions
        .iter()
        .enumerate()
        .map(|(i, d)| match &d.dimension {
            Some(Dimension::Constant(c)) => usize::try_from(c.size).map(Dim::Fixed).map_err(|_| {
                Problem::Invalid(format!("dimension {i} of size {} is too large", c.size))
            }),
            Some(Dimension::Unknown(u)) if !u.variadic => Ok(Dim::Symbol(format!("{var}_dim{i}"))),
            Some(Dimension::Unknown(_)) => Err(Problem::Unsupported(
                "variadic dimensions are not supported".into(),
            )),
            None => Err(Problem::Invalid(format!("dimension {i} is empty"))),
        })
        .collect::<Result<_, _>>()?;
    Ok(TensorType { dtype, shape })
}

/// The static shape of a constant's declared type.
pub fn static_shape(ty: &TensorType) -> Result<Vec<usize>, Problem> {
    ty.static_shape()
        .ok_or_else(|| Problem::Invalid(format!("constant has a symbolic shape {ty}")))
}

/// True when a constant `tensor` is stored in weight.bin rather than in the protobuf for
/// `target`: numeric, at least 10 elements, and a storage dtype Core ML reads from blobs at
/// that target (int16/uint16/int32/uint32 only from iOS18 on).
pub fn stored_in_blob(tensor: &Tensor, target: Target) -> bool {
    let dtype = tensor.dtype();
    let storable = match dtype {
        DType::F16 | DType::F32 | DType::I8 | DType::U8 => true,
        DType::I16 | DType::U16 | DType::I32 | DType::U32 => target >= Target::IOS18,
        d => d.is_sub_byte(),
    };
    storable && tensor.len() >= 10
}

/// `tensor` as an immediate `Value`, with the `TensorValue` field Core ML expects per dtype.
pub fn immediate(tensor: &Tensor) -> mil::Value {
    let bytes = || tensor.shared_bytes().cloned().unwrap_or_default();
    let field = match tensor.dtype() {
        DType::Bool => Field::Bools(mil::tensor_value::RepeatedBools {
            values: tensor.bytes().iter().map(|&b| b != 0).collect(),
        }),
        DType::String => Field::Strings(mil::tensor_value::RepeatedStrings {
            values: tensor.strings().to_vec(),
        }),
        DType::F32 => Field::Floats(mil::tensor_value::RepeatedFloats {
            values: tensor.to_f32_vec(),
        }),
        DType::F64 => Field::Doubles(mil::tensor_value::RepeatedDoubles {
            values: tensor.to_f64_vec(),
        }),
        DType::F16 | DType::I8 | DType::U8 | DType::U32 => {
            Field::Bytes(mil::tensor_value::RepeatedBytes { values: bytes() })
        }
        DType::I16 | DType::U16 | DType::I32 => Field::Ints(mil::tensor_value::RepeatedInts {
            values: tensor.to_i64_vec().into_iter().map(|v| v as i32).collect(),
        }),
        DType::I64 => Field::LongInts(mil::tensor_value::RepeatedLongInts {
            values: tensor.to_i64_vec(),
        }),
        DType::U64 => Field::LongInts(mil::tensor_value::RepeatedLongInts {
            values: tensor
                .bytes()
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(le_array(c)))
                .collect(),
        }),
        d => Field::Bytes(mil::tensor_value::RepeatedBytes {
            values: match tensor.packed_bits() {
                Some(bits) => bits.to_vec(),
                None => pack_bits(tensor.bytes(), d.bits()),
            }
            .into(),
        }),
    };
    mil::Value {
        doc_string: String::new(),
        r#type: Some(value_type(&tensor.ty())),
        value: Some(mil::value::Value::ImmediateValue(
            mil::value::ImmediateValue {
                value: Some(Immediate::Tensor(mil::TensorValue { value: Some(field) })),
            },
        )),
    }
}

/// A 1-D string or integer constant as a MIL list of scalar immediates (how coremltools binds
/// `classify.classes`): type `list<tensor<dtype, []>, N>`.
pub fn list_value(tensor: &Tensor) -> mil::Value {
    use mil::dimension::{ConstantDimension, Dimension};
    let n = tensor.len();
    let elements = match tensor.dtype() {
        DType::String => tensor
            .strings()
            .iter()
            .map(|s| immediate(&Tensor::scalar_string(s)))
            .collect(),
        _ => tensor
            .to_i64_vec()
            .into_iter()
            .map(|v| immediate(&Tensor::from_i64(&[], &[v])))
            .collect(),
    };
    mil::Value {
        doc_string: String::new(),
        r#type: Some(mil::ValueType {
            r#type: Some(mil::value_type::Type::ListType(Box::new(mil::ListType {
                r#type: Some(Box::new(value_type(&TensorType::scalar(tensor.dtype())))),
                length: Some(mil::Dimension {
                    dimension: Some(Dimension::Constant(ConstantDimension { size: n as u64 })),
                }),
            }))),
        }),
        value: Some(mil::value::Value::ImmediateValue(
            mil::value::ImmediateValue {
                value: Some(Immediate::List(mil::ListValue { values: elements })),
            },
        )),
    }
}

/// Decodes a list of scalar string or int64 immediates (see [`list_value`]) into a 1-D
/// tensor; `None` when `value` is not a list.
pub fn decode_list(value: &mil::Value) -> Option<Result<Tensor, Problem>> {
    let Some(mil::value_type::Type::ListType(list)) =
        value.r#type.as_ref().and_then(|t| t.r#type.as_ref())
    else {
        return None;
    };
    Some((|| {
        let element = tensor_type(list.r#type.as_deref(), "list element")?;
        if element.rank() != 0 || !matches!(element.dtype, DType::String | DType::I64) {
            return Err(Problem::Unsupported(format!(
                "lists of {element} are not supported (only of string or int64 scalars)"
            )));
        }
        let Some(mil::value::Value::ImmediateValue(mil::value::ImmediateValue {
            value: Some(Immediate::List(items)),
        })) = &value.value
        else {
            return Err(Problem::Invalid("a list-typed value is not a list".into()));
        };
        let scalars = items
            .values
            .iter()
            .map(|v| match &v.value {
                Some(mil::value::Value::ImmediateValue(imm)) => {
                    decode_immediate(imm, element.dtype, &[])
                }
                _ => Err(Problem::Invalid(
                    "a list element is not an immediate".into(),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let n = scalars.len();
        Ok(match element.dtype {
            DType::String => Tensor::from_strings(
                &[n],
                scalars.iter().map(|t| t.strings()[0].clone()).collect(),
            ),
            _ => Tensor::from_i64(
                &[n],
                &scalars
                    .iter()
                    .flat_map(|t| t.to_i64_vec())
                    .collect::<Vec<_>>(),
            ),
        })
    })())
}

/// The MIL `dict<key, value>` type of scalar keys and values (the probabilities output of
/// `classify`).
pub fn dictionary_type(key: DType, value: DType) -> mil::ValueType {
    mil::ValueType {
        r#type: Some(mil::value_type::Type::DictionaryType(Box::new(
            mil::DictionaryType {
                key_type: Some(Box::new(value_type(&TensorType::scalar(key)))),
                value_type: Some(Box::new(value_type(&TensorType::scalar(value)))),
            },
        ))),
    }
}

/// The key dtype of a MIL `dict` type, `None` when `value_type` is not a dictionary.
pub fn dictionary_key(value_type: Option<&mil::ValueType>) -> Option<Result<DType, Problem>> {
    match value_type.and_then(|v| v.r#type.as_ref()) {
        Some(mil::value_type::Type::DictionaryType(d)) => {
            Some(tensor_type(d.key_type.as_deref(), "dictionary key").map(|t| t.dtype))
        }
        _ => None,
    }
}

/// A rank-0 string immediate (used for the `name` attribute of every op).
pub fn string_value(s: &str) -> mil::Value {
    immediate(&Tensor::scalar_string(s))
}

/// Decodes an immediate value of declared type `dtype`/`shape`.
pub fn decode_immediate(
    value: &mil::value::ImmediateValue,
    dtype: DType,
    shape: &[usize],
) -> Result<Tensor, Problem> {
    match &value.value {
        Some(Immediate::Tensor(t)) => decode_tensor(t, dtype, shape),
        Some(Immediate::Tuple(_)) => Err(Problem::Unsupported(
            "tuple values are not supported".into(),
        )),
        Some(Immediate::List(_)) => {
            Err(Problem::Unsupported("list values are not supported".into()))
        }
        Some(Immediate::Dictionary(_)) => Err(Problem::Unsupported(
            "dictionary values are not supported".into(),
        )),
        None => Err(Problem::Invalid("immediate value is empty".into())),
    }
}

/// Decodes a `TensorValue` of declared type `dtype`/`shape`.
fn decode_tensor(
    value: &mil::TensorValue,
    dtype: DType,
    shape: &[usize],
) -> Result<Tensor, Problem> {
    let count = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| Problem::Invalid(format!("shape {shape:?} is too large")))?;
    let check_len = |found: usize| {
        if found == count {
            Ok(())
        } else {
            Err(Problem::Invalid(format!(
                "{dtype} value of shape {shape:?} holds {found} elements, expected {count}"
            )))
        }
    };
    let Some(field) = &value.value else {
        // An empty wrapper may be dropped by some writers; it stands for an empty tensor.
        check_len(0)?;
        return empty_tensor(dtype, shape);
    };
    let mismatch = || {
        Problem::Invalid(format!(
            "{dtype} value stored in the wrong TensorValue field"
        ))
    };
    match (dtype, field) {
        (DType::Bool, Field::Bools(v)) => {
            check_len(v.values.len())?;
            Ok(Tensor::from_bool(shape, &v.values))
        }
        (DType::String, Field::Strings(v)) => {
            check_len(v.values.len())?;
            Ok(Tensor::from_strings(shape, v.values.clone()))
        }
        (DType::F32, Field::Floats(v)) => {
            check_len(v.values.len())?;
            Ok(Tensor::from_f32(shape, &v.values))
        }
        (DType::F64, Field::Doubles(v)) => {
            check_len(v.values.len())?;
            Ok(Tensor::from_f64(shape, &v.values))
        }
        (DType::I64, Field::LongInts(v)) => {
            check_len(v.values.len())?;
            Ok(Tensor::from_i64(shape, &v.values))
        }
        (DType::U64, Field::LongInts(v)) => {
            check_len(v.values.len())?;
            Ok(Tensor::from_u64(
                shape,
                &v.values.iter().map(|&x| x as u64).collect::<Vec<_>>(),
            ))
        }
        (DType::I16 | DType::U16 | DType::I32, Field::Ints(v)) => {
            check_len(v.values.len())?;
            let (lo, hi) = match dtype {
                DType::I16 => (i16::MIN as i64, i16::MAX as i64),
                DType::U16 => (0, u16::MAX as i64),
                _ => (i32::MIN as i64, i32::MAX as i64),
            };
            let values: Vec<i64> = v.values.iter().map(|&x| i64::from(x)).collect();
            if let Some(bad) = values.iter().find(|&&x| x < lo || x > hi) {
                return Err(Problem::Invalid(format!(
                    "{bad} is out of range for {dtype}"
                )));
            }
            Ok(Tensor::from_i64_as(dtype, shape, &values))
        }
        (d, Field::Bytes(b)) if d.is_sub_byte() => {
            let expected = count.checked_mul(d.bits()).map(|bits| bits.div_ceil(8));
            if expected != Some(b.values.len()) {
                return Err(Problem::Invalid(format!(
                    "{d} value of shape {shape:?} needs {} packed bytes, found {}",
                    expected.unwrap_or(usize::MAX),
                    b.values.len()
                )));
            }
            let values = unpack_bits(&b.values, d.bits(), count).ok_or_else(mismatch)?;
            Ok(Tensor::from_i64_as(
                d,
                shape,
                &values.into_iter().map(i64::from).collect::<Vec<_>>(),
            ))
        }
        // int16/uint16 are written as `ints` today; accept raw bytes as well.
        (
            DType::F16 | DType::I8 | DType::U8 | DType::U32 | DType::I16 | DType::U16,
            Field::Bytes(b),
        ) => Tensor::from_bytes(dtype, shape, b.values.clone())
            .map_err(|e| Problem::Invalid(e.to_string())),
        _ => Err(mismatch()),
    }
}

/// An empty tensor of `dtype`.
fn empty_tensor(dtype: DType, shape: &[usize]) -> Result<Tensor, Problem> {
    match dtype {
        DType::String => Ok(Tensor::from_strings(shape, Vec::new())),
        _ => Tensor::from_bytes(dtype, shape, Default::default())
            .map_err(|e| Problem::Invalid(e.to_string())),
    }
}

/// The first eight bytes of `chunk` as an array (callers pass 8-byte chunks).
fn le_array(chunk: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(&chunk[..8]);
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    fn field(v: &mil::Value) -> Field {
        match &v.value {
            Some(mil::value::Value::ImmediateValue(mil::value::ImmediateValue {
                value: Some(Immediate::Tensor(mil::TensorValue { value: Some(f) })),
            })) => f.clone(),
            other => panic!("not an immediate tensor: {other:?}"),
        }
    }

    fn round_trip(t: &Tensor) -> Tensor {
        let v = immediate(t);
        let ty = tensor_type(v.r#type.as_ref(), "c").unwrap();
        assert_eq!(ty, t.ty());
        let Some(mil::value::Value::ImmediateValue(imm)) = &v.value else {
            panic!()
        };
        decode_immediate(imm, ty.dtype, &static_shape(&ty).unwrap()).unwrap()
    }

    #[test]
    fn fp16_immediates_are_raw_half_bytes() {
        let t = Tensor::from_f16(&[2], &[f16::from_f32(1.0), f16::from_f32(-2.0)]);
        let Field::Bytes(b) = field(&immediate(&t)) else {
            panic!()
        };
        assert_eq!(&b.values[..], [0x00, 0x3c, 0x00, 0xc0]);
        assert_eq!(round_trip(&t), t);
    }

    #[test]
    fn sub_byte_immediates_are_packed() {
        let t = Tensor::from_i64_as(
            DType::I4,
            &[2, 6],
            &[-8, -7, -1, 0, 1, 7, 3, -2, 5, 6, -3, 2],
        );
        let Field::Bytes(b) = field(&immediate(&t)) else {
            panic!()
        };
        assert_eq!(&b.values[..], [0x98, 0x0f, 0x71, 0xe3, 0x65, 0x2d]);
        assert_eq!(round_trip(&t), t);
        let mask = Tensor::from_i64_as(DType::U1, &[11], &[1, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1]);
        let Field::Bytes(b) = field(&immediate(&mask)) else {
            panic!()
        };
        assert_eq!(&b.values[..], [0x8d, 0x07]);
        assert_eq!(round_trip(&mask), mask);
    }

    #[test]
    fn integer_immediates_use_the_coremltools_fields() {
        let i16s = Tensor::from_i16(&[2], &[-300, 7]);
        let Field::Ints(v) = field(&immediate(&i16s)) else {
            panic!()
        };
        assert_eq!(v.values, [-300, 7]);
        let u32s = Tensor::from_u32(&[1], &[0x0102_0304]);
        let Field::Bytes(b) = field(&immediate(&u32s)) else {
            panic!()
        };
        assert_eq!(&b.values[..], [4, 3, 2, 1]);
        let i64s = Tensor::from_i64(&[2], &[-1, 1 << 40]);
        let Field::LongInts(v) = field(&immediate(&i64s)) else {
            panic!()
        };
        assert_eq!(v.values, [-1, 1 << 40]);
        let u64s = Tensor::from_u64(&[1], &[u64::MAX]);
        let Field::LongInts(v) = field(&immediate(&u64s)) else {
            panic!()
        };
        assert_eq!(v.values, [-1]);
        let u8s = Tensor::from_byte_elements(DType::U8, &[3], vec![1, 2, 255]);
        let Field::Bytes(b) = field(&immediate(&u8s)) else {
            panic!()
        };
        assert_eq!(&b.values[..], [1, 2, 255]);
        for t in [
            i16s,
            u32s,
            i64s,
            u64s,
            u8s,
            Tensor::from_u16(&[2], &[65535, 0]),
            Tensor::vec_i32(&[-5, 9]),
        ] {
            assert_eq!(round_trip(&t), t);
        }
    }

    #[test]
    fn scalars_strings_bools_and_empty_tensors() {
        let name = string_value("conv_1");
        let Field::Strings(s) = field(&name) else {
            panic!()
        };
        assert_eq!(s.values, ["conv_1"]);
        let Some(mil::value_type::Type::TensorType(t)) =
            name.r#type.as_ref().and_then(|v| v.r#type.as_ref())
        else {
            panic!()
        };
        assert_eq!(
            (t.data_type, t.rank, t.dimensions.len()),
            (mil::DataType::String as i32, 0, 0)
        );
        let f = Tensor::scalar_f32(1.5);
        let Field::Floats(v) = field(&immediate(&f)) else {
            panic!()
        };
        assert_eq!(v.values, [1.5]);
        let b = Tensor::from_bool(&[3], &[true, false, true]);
        let Field::Bools(v) = field(&immediate(&b)) else {
            panic!()
        };
        assert_eq!(v.values, [true, false, true]);
        let empty = Tensor::from_f32(&[2, 0], &[]);
        let Field::Floats(v) = field(&immediate(&empty)) else {
            panic!()
        };
        assert!(v.values.is_empty());
        for t in [
            f,
            b,
            empty,
            Tensor::from_f64(&[2], &[0.1, -3.0]),
            Tensor::from_strings(&[0], vec![]),
        ] {
            assert_eq!(round_trip(&t), t);
        }
    }

    #[test]
    fn blob_rule_follows_size_dtype_and_target() {
        let f32s = |n: usize| Tensor::from_f32(&[n], &vec![0.0; n]);
        let i32s = Tensor::from_i32(&[10], &[0; 10]);
        assert!(stored_in_blob(&f32s(10), Target::IOS15));
        assert!(!stored_in_blob(&f32s(9), Target::IOS15));
        assert!(!stored_in_blob(&i32s, Target::IOS17));
        assert!(stored_in_blob(&i32s, Target::IOS18));
        let u4s = Tensor::from_i64_as(DType::U4, &[10], &[0; 10]);
        assert!(stored_in_blob(&u4s, Target::IOS18));
        assert!(!stored_in_blob(
            &Tensor::from_i64(&[10], &[0; 10]),
            Target::IOS18
        ));
        assert!(!stored_in_blob(
            &Tensor::from_bool(&[10], &[true; 10]),
            Target::IOS18
        ));
    }

    #[test]
    fn rejects_malformed_immediates() {
        let v = immediate(&Tensor::from_f32(&[3], &[1.0, 2.0, 3.0]));
        let Some(mil::value::Value::ImmediateValue(imm)) = &v.value else {
            panic!()
        };
        assert!(
            matches!(decode_immediate(imm, DType::F32, &[4]), Err(Problem::Invalid(m)) if m.contains("3 elements"))
        );
        assert!(
            matches!(decode_immediate(imm, DType::I32, &[3]), Err(Problem::Invalid(m)) if m.contains("wrong"))
        );
        let big = immediate(&Tensor::vec_i32(&[70000]));
        let Some(mil::value::Value::ImmediateValue(imm)) = &big.value else {
            panic!()
        };
        assert!(
            matches!(decode_immediate(imm, DType::I16, &[1]), Err(Problem::Invalid(m)) if m.contains("out of range"))
        );
        assert!(
            matches!(dtype_from_proto(13), Err(Problem::Unsupported(m)) if m.contains("BFLOAT16"))
        );
        assert!(matches!(dtype_from_proto(99), Err(Problem::Invalid(_))));
    }

    #[test]
    fn symbolic_dims_become_unknown_and_back() {
        let ty = TensorType {
            dtype: DType::F32,
            shape: vec![Dim::Symbol("batch".into()), Dim::Fixed(3)],
        };
        let back = tensor_type(Some(&value_type(&ty)), "x").unwrap();
        assert_eq!(
            back.shape,
            vec![Dim::Symbol("x_dim0".into()), Dim::Fixed(3)]
        );
    }
}
