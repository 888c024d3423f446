//! The `mlpack` command.

fn main() -> std::process::ExitCode {
    // Like other Unix tools, stop quietly when the reader of stdout goes away
    // (`mlpack inspect M | head`) instead of failing on the next print.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    mlpack::cli::main()
}
