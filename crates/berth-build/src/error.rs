//! The builder's error: a message as dockerd words it, an optional exit code (a
//! failed RUN: the docker CLI exits with it), and a kind the engine maps to an HTTP
//! status when the error comes before the stream starts.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request or the Dockerfile is wrong.
    Invalid,
    /// An image, stage or file named by the build does not exist.
    NotFound,
    /// The client went away or cancelled.
    Cancelled,
    /// Something failed on the daemon's side.
    System,
}

#[derive(Debug, Clone)]
pub struct BuildError {
    pub kind: ErrorKind,
    pub message: String,
    /// A RUN step's exit code (Docker's `errorDetail.code`).
    pub code: Option<i64>,
}

impl BuildError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> BuildError {
        BuildError { kind, message: message.into(), code: None }
    }
    pub fn invalid(message: impl Into<String>) -> BuildError {
        BuildError::new(ErrorKind::Invalid, message)
    }
    pub fn not_found(message: impl Into<String>) -> BuildError {
        BuildError::new(ErrorKind::NotFound, message)
    }
    pub fn system(message: impl Into<String>) -> BuildError {
        BuildError::new(ErrorKind::System, message)
    }
    pub fn cancelled() -> BuildError {
        BuildError::new(ErrorKind::Cancelled, "the build was cancelled")
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BuildError {}

impl From<std::io::Error> for BuildError {
    fn from(e: std::io::Error) -> Self {
        BuildError::system(e.to_string())
    }
}
