//! Stage messages on stderr while a long command runs: shown on a terminal, silent with
//! `--quiet` or when stderr is not a terminal.

use std::io::{IsTerminal, Write};
use std::time::Instant;

/// Reports the stages of a command.
pub struct Progress {
    enabled: bool,
    start: Instant,
}

impl Progress {
    /// A reporter; `quiet` silences it.
    pub fn new(quiet: bool) -> Progress {
        Progress {
            enabled: !quiet && std::io::stderr().is_terminal(),
            start: Instant::now(),
        }
    }

    /// Shows the stage now running, replacing the previous one.
    pub fn stage(&self, message: &str) {
        if self.enabled {
            let mut err = std::io::stderr().lock();
            let _ = write!(
                err,
                "\r\x1b[2K[{:>5.1}s] {message}…",
                self.start.elapsed().as_secs_f64()
            );
            let _ = err.flush();
        }
    }

    /// Prints `message` as a line of its own (replacing the stage line), with the time.
    pub fn line(&self, message: &str) {
        if self.enabled {
            let _ = writeln!(
                std::io::stderr().lock(),
                "\r\x1b[2K[{:>5.1}s] {message}",
                self.start.elapsed().as_secs_f64()
            );
        }
    }

    /// Clears the stage line.
    pub fn clear(&self) {
        if self.enabled {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
        }
    }
}
