//! cargo-fuzz target `pt2`: see [`mlpack_fuzz::pt2`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mlpack_fuzz::check(mlpack_fuzz::target("pt2"), data);
});
