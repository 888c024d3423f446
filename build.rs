//! Compiles the protobuf schemas under `proto/` with a pure-Rust compiler (protox), so a
//! fresh machine needs no system `protoc`. Maps become `BTreeMap` so encoding is deterministic,
//! and `bytes` fields become `bytes::Bytes` so tensor payloads decoded from a memory-mapped
//! file are slices of that map rather than copies.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/onnx.proto", "proto/Model.proto"];
    for file in [
        "proto/onnx.proto",
        "proto/Model.proto",
        "proto/MIL.proto",
        "proto/FeatureTypes.proto",
    ] {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    prost_build::Config::new()
        .btree_map(["."])
        .bytes(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
