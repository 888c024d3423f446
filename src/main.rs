//! The `mlpack` command.

fn main() -> std::process::ExitCode {
    mlpack::cli::main()
}
