//! cargo-fuzz target `npz`: see [`mlpack_fuzz::npz`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mlpack_fuzz::check(mlpack_fuzz::target("npz"), data);
});
