//! The `mlpack` command.

fn main() -> std::process::ExitCode {
    keep_freed_memory_for_reuse();
    mlpack::cli::main()
}

/// Compression allocates and frees weight-sized buffers over and over. glibc serves large
/// blocks with fresh `mmap`s and unmaps them on free, so every buffer costs page faults and
/// kernel page zeroing; raising the mmap threshold to its maximum (32 MiB) and the trim
/// threshold keeps freed blocks up to that size for reuse.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory_for_reuse() {
    extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    const M_TRIM_THRESHOLD: i32 = -1;
    const M_MMAP_THRESHOLD: i32 = -3;
    // SAFETY: mallopt only changes allocator tuning; called before any other thread exists.
    unsafe {
        mallopt(M_MMAP_THRESHOLD, 32 << 20);
        mallopt(M_TRIM_THRESHOLD, 1 << 30);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory_for_reuse() {}
