//! mlpack: convert ONNX models to Core ML ML Program packages, compress and verify them.
//!
//! The crate is laid out as the pipeline runs: [`frontend`] turns a source model into an
//! [`ir::Program`], [`passes`] transform programs, [`backend`] writes and reads `.mlpackage`
//! directories, [`interp`] runs programs on the CPU, [`verify`] compares a program with its
//! source, and [`cli`] is the command-line tool.

pub mod backend;
pub mod cli;
pub mod compress;
pub mod error;
pub mod frontend;
pub mod image_file;
pub mod input_file;
pub mod interp;
pub mod ir;
pub mod npy;
pub mod passes;
pub mod pipeline;
pub mod proto;
pub mod temp_paths;
pub mod util;
pub mod verify;

pub use error::{Error, ExitCode};
