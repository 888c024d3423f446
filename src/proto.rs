//! Protobuf messages generated from `proto/` at build time (see `build.rs`).
#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// ONNX model messages (package `onnx`).
pub mod onnx {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

/// Core ML messages (package `CoreML.Specification` and its `MILSpec` sub-package).
pub mod coreml {
    include!(concat!(env!("OUT_DIR"), "/core_ml.specification.rs"));

    /// ML Program messages (package `CoreML.Specification.MILSpec`).
    pub mod mil_spec {
        include!(concat!(
            env!("OUT_DIR"),
            "/core_ml.specification.mil_spec.rs"
        ));
    }
}
