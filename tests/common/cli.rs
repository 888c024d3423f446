//! Running the `mlpack` binary from a test.

use std::process::{Command, Output};

/// Runs the `mlpack` binary built for these tests with `args`.
pub fn mlpack(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mlpack"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// A run's stdout followed by its stderr.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
