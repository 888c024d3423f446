//! Package backends: the Core ML `.mlpackage` writer and reader.

pub mod mlpackage;

pub use mlpackage::{read_package, stored_in_blob, write_package};
