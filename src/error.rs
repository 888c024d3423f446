//! The crate-level error and the process exit codes it maps to.

use std::path::{Path, PathBuf};

/// Process exit codes (documented in README.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// Success.
    Ok = 0,
    /// An internal error: a bug in mlpack.
    Internal = 1,
    /// Bad command-line usage (unknown flag or value, output exists, output equals input).
    Usage = 2,
    /// The model uses operators or features mlpack cannot convert.
    Unsupported = 3,
    /// The input file is invalid, corrupt or inconsistent.
    InvalidInput = 4,
    /// Reading or writing a file failed.
    Io = 5,
    /// Verification failed: the candidate's outputs break a threshold.
    VerificationFailed = 6,
    /// Some items of a batch failed (or were skipped after a failure); the others were made.
    ItemsFailed = 7,
    /// `lint --deny`: a finding at or above the denied severity.
    LintDenied = 8,
}

/// Everything that can go wrong in a command, with the file, node or flag it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad usage: a flag value, an output path that exists, …
    #[error("{0}")]
    Usage(String),
    /// The model needs something mlpack does not support; the message lists all of it.
    #[error("{path}: {message}")]
    Unsupported {
        /// The model file.
        path: PathBuf,
        /// What is unsupported.
        message: String,
    },
    /// A converter needs constant a value the model computes at run time (an axes, pads or
    /// shape input…); `inputs` are the graph inputs it is computed from, which binding to
    /// constants (`--freeze`) makes it one. Exit code as [`Error::Unsupported`].
    #[error("{path}: {message}")]
    NeedsConstant {
        /// The model file.
        path: PathBuf,
        /// Which node needs which input constant.
        message: String,
        /// The graph inputs the value is computed from (not empty).
        inputs: Vec<String>,
    },
    /// The input is malformed or inconsistent.
    #[error("{path}: {message}")]
    Invalid {
        /// The offending file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A bug: an invariant mlpack relies on does not hold.
    #[error("internal error: {0}")]
    Internal(String),
    /// A verified program's outputs break a threshold; the message is the one-line summary.
    #[error("verification failed: {0}")]
    VerificationFailed(String),
    /// Some items of a batch failed; each is in the batch report.
    #[error("{0}")]
    ItemsFailed(String),
    /// `lint --deny` found findings at or above the denied severity; the message counts them.
    #[error("lint: {0}")]
    LintDenied(String),
}

impl Error {
    /// The message on one line (embedded newlines become "; ").
    pub fn one_line(&self) -> String {
        self.to_string()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Usage(_) => ExitCode::Usage,
            Error::Unsupported { .. } | Error::NeedsConstant { .. } => ExitCode::Unsupported,
            Error::Invalid { .. } => ExitCode::InvalidInput,
            Error::Io { .. } => ExitCode::Io,
            Error::Internal(_) => ExitCode::Internal,
            Error::VerificationFailed(_) => ExitCode::VerificationFailed,
            Error::ItemsFailed(_) => ExitCode::ItemsFailed,
            Error::LintDenied(_) => ExitCode::LintDenied,
        }
    }

    /// An [`Error::Invalid`] for `path`.
    pub fn invalid(path: &Path, message: impl Into<String>) -> Error {
        Error::Invalid {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    /// An [`Error::Io`] for `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
