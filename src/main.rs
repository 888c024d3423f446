//! The `mlpack` command.

mod huge_pages;

#[global_allocator]
static ALLOCATOR: huge_pages::HugePageAllocator = huge_pages::HugePageAllocator;

fn main() -> std::process::ExitCode {
    mlpack::cli::main()
}
