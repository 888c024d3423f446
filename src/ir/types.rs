//! Tensor types: a dtype plus a shape whose dimensions may be symbolic.

use super::DType;
use std::fmt;

/// The most elements one tensor may have (2^31, 8 GiB of fp32): shapes beyond it are refused
/// before anything is allocated for them.
pub const MAX_ELEMENTS: usize = 1 << 31;

/// The number of elements of `shape`, or why it exceeds [`MAX_ELEMENTS`].
pub fn element_count(shape: &[usize]) -> Result<usize, String> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| {
            format!(
                "more than {MAX_ELEMENTS} elements (2^31, the most mlpack handles in one tensor)"
            )
        })
}

/// One dimension of a tensor shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A size known at conversion time.
    Fixed(usize),
    /// A size only known at run time, named (e.g. ONNX `dim_param` "batch").
    Symbol(String),
}

impl Dim {
    /// The size, when known.
    pub fn fixed(&self) -> Option<usize> {
        match self {
            Dim::Fixed(n) => Some(*n),
            Dim::Symbol(_) => None,
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Symbol(s) => f.write_str(s),
        }
    }
}

/// The type of a tensor value: element type and shape (rank = `shape.len()`, 0 for scalars).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    /// Element type.
    pub dtype: DType,
    /// Dimensions, outermost first.
    pub shape: Vec<Dim>,
}

impl TensorType {
    /// A tensor type with a fully known shape.
    pub fn fixed(dtype: DType, shape: &[usize]) -> TensorType {
        TensorType {
            dtype,
            shape: shape.iter().map(|&d| Dim::Fixed(d)).collect(),
        }
    }

    /// A rank-0 tensor type.
    pub fn scalar(dtype: DType) -> TensorType {
        TensorType {
            dtype,
            shape: Vec::new(),
        }
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The shape as sizes, when every dimension is known.
    pub fn static_shape(&self) -> Option<Vec<usize>> {
        self.shape.iter().map(Dim::fixed).collect()
    }

    /// Why the known part of the shape holds more than [`MAX_ELEMENTS`] elements, if it does
    /// (symbolic dimensions count as 1).
    pub fn check_size(&self) -> Result<(), String> {
        let known: Vec<usize> = self.shape.iter().map(|d| d.fixed().unwrap_or(1)).collect();
        element_count(&known)
            .map(drop)
            .map_err(|m| format!("shape {self}: {m}"))
    }

    /// The same shape with another dtype.
    pub fn with_dtype(&self, dtype: DType) -> TensorType {
        TensorType {
            dtype,
            shape: self.shape.clone(),
        }
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tensor<{}, [", self.dtype)?;
        for (i, d) in self.shape.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]>")
    }
}
