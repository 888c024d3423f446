//! cargo-fuzz target `npy`: see [`mlpack_fuzz::npy`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mlpack_fuzz::check(mlpack_fuzz::target("npy"), data);
});
