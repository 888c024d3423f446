//! cargo-fuzz target `plan`: see [`mlpack_fuzz::plan`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mlpack_fuzz::check(mlpack_fuzz::target("plan"), data);
});
