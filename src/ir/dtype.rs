//! Element types of MIL tensors.

use std::fmt;

/// Element type of a tensor value, named as MIL names them (`fp16`, `int32`, …).
///
/// Sub-byte integer types (`int4`, `uint1`…`uint6`) are held unpacked, one element per byte,
/// inside the IR; packing happens only when a package is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    Bool,
    String,
    F16,
    F32,
    F64,
    I4,
    I8,
    I16,
    I32,
    I64,
    U1,
    U2,
    U3,
    U4,
    U6,
    U8,
    U16,
    U32,
    U64,
}

impl DType {
    /// Every dtype, in declaration order.
    pub const ALL: [DType; 19] = [
        DType::Bool,
        DType::String,
        DType::F16,
        DType::F32,
        DType::F64,
        DType::I4,
        DType::I8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::U1,
        DType::U2,
        DType::U3,
        DType::U4,
        DType::U6,
        DType::U8,
        DType::U16,
        DType::U32,
        DType::U64,
    ];

    /// The MIL name of this dtype, as used in `cast(dtype=…)` and in the text dump.
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::String => "string",
            DType::F16 => "fp16",
            DType::F32 => "fp32",
            DType::F64 => "fp64",
            DType::I4 => "int4",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::U1 => "uint1",
            DType::U2 => "uint2",
            DType::U3 => "uint3",
            DType::U4 => "uint4",
            DType::U6 => "uint6",
            DType::U8 => "uint8",
            DType::U16 => "uint16",
            DType::U32 => "uint32",
            DType::U64 => "uint64",
        }
    }

    /// Parses a MIL dtype name (`"fp16"`, `"int32"`, …).
    pub fn from_name(name: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Bits per element in a packed representation (1 for bool; 0 for strings).
    pub fn bits(self) -> usize {
        match self {
            DType::Bool => 8,
            DType::String => 0,
            DType::U1 => 1,
            DType::U2 => 2,
            DType::U3 => 3,
            DType::I4 | DType::U4 => 4,
            DType::U6 => 6,
            DType::I8 | DType::U8 => 8,
            DType::F16 | DType::I16 | DType::U16 => 16,
            DType::F32 | DType::I32 | DType::U32 => 32,
            DType::F64 | DType::I64 | DType::U64 => 64,
        }
    }

    /// Bytes per element as held in the IR (sub-byte types take one byte each; strings 0).
    pub fn ir_bytes(self) -> usize {
        match self {
            DType::String => 0,
            _ => self.bits().div_ceil(8),
        }
    }

    /// True for fp16, fp32 and fp64.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F16 | DType::F32 | DType::F64)
    }

    /// True for signed and unsigned integers of any width.
    pub fn is_int(self) -> bool {
        !self.is_float() && !matches!(self, DType::Bool | DType::String)
    }

    /// True for the integer types narrower than a byte.
    pub fn is_sub_byte(self) -> bool {
        self.bits() < 8 && self != DType::String
    }

    /// True for signed integer types.
    pub fn is_signed_int(self) -> bool {
        matches!(
            self,
            DType::I4 | DType::I8 | DType::I16 | DType::I32 | DType::I64
        )
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
