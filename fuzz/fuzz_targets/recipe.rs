//! cargo-fuzz target `recipe`: see [`mlpack_fuzz::recipe`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mlpack_fuzz::check(mlpack_fuzz::target("recipe"), data);
});
