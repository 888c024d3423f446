//! cargo-fuzz target `mlpackage`: see [`mlpack_fuzz::mlpackage`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mlpack_fuzz::check(mlpack_fuzz::target("mlpackage"), data);
});
