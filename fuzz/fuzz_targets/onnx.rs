//! cargo-fuzz target `onnx`: see [`mlpack_fuzz::onnx`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mlpack_fuzz::check(mlpack_fuzz::target("onnx"), data);
});
