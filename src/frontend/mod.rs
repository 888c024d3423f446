//! Source-model frontends.

pub mod onnx;
