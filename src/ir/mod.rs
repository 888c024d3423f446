//! The MIL-style intermediate representation every frontend produces and every pass,
//! backend and the interpreter consume.

pub mod bits;
mod builder;
mod description;
mod dtype;
mod names;
pub mod ops;
mod print;
mod program;
mod shape_set;
mod symbolic;
mod target;
mod tensor;
mod types;
mod validate;

pub use builder::{BuildError, Builder};
pub use description::{image_preprocessing, Classifier, ColorLayout, Description};
pub use dtype::DType;
pub use names::{glob, sanitize_name, NameTable};
pub use print::print_program;
pub use program::{Argument, Block, Function, Operation, Program, Var};
pub use shape_set::ShapeSet;
pub use symbolic::SymInt;
pub use target::{Target, UnknownTarget};
pub use tensor::{Tensor, TensorSizeError};
pub use types::{element_count, Dim, TensorType, MAX_ELEMENTS};
pub use validate::{infer_op, validate_program, ValidationError};
