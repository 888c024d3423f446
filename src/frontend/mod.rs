//! Source-model frontends.

pub mod onnx;
pub mod torch;
