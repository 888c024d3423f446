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

/// A run's stderr.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The one-line error of a failed run, checked to be exactly one `mlpack: error: ` line.
pub fn error_line(o: &Output) -> String {
    let text = stderr(o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "expected a one-line error, got:\n{text}");
    assert!(lines[0].starts_with("mlpack: error: "), "{text}");
    lines[0].to_string()
}

/// Runs `mlpack args` and checks it fails with `code` and a one-line error holding every one
/// of `needles`; returns the line.
pub fn fails_with(args: &[&str], code: i32, needles: &[&str]) -> String {
    let o = mlpack(args);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
    let line = error_line(&o);
    for needle in needles {
        assert!(line.contains(needle), "{args:?}: '{needle}' not in: {line}");
    }
    line
}
