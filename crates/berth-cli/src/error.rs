//! The client's errors and the exit codes docker gives them.

use crate::client::host::HostError;
use crate::client::tls::TlsError;
use crate::format::TemplateError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The daemon is not there (or refuses the connection).
    #[error("Cannot connect to the berth daemon at {host}. Is the berth daemon running?\n(start it with `berth daemon`, as root; choose another with -H, BERTH_HOST or DOCKER_HOST)")]
    Connect { host: String, source: std::io::Error },
    /// An error answer from the daemon (`{"message": ...}`).
    #[error("Error response from daemon: {message}")]
    Api { status: u16, message: String },
    #[error("error during connect: {0}")]
    Http(String),
    #[error("{0}")]
    Tls(#[from] TlsError),
    #[error("{0}")]
    Host(#[from] HostError),
    #[error("{0}")]
    Template(#[from] TemplateError),
    /// Bad flags or arguments found after parsing (docker exits 125 for these).
    #[error("{0}")]
    Usage(String),
    /// Any other failure with its message (exit 1).
    #[error("{0}")]
    Msg(String),
    /// Exit with this status and print nothing (a container's exit code, or an
    /// error already reported).
    #[error("exit status {0}")]
    Status(i32),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    pub fn msg(s: impl Into<String>) -> Error {
        Error::Msg(s.into())
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 125,
            Error::Status(c) => *c,
            // The reader of our output went away (`berth logs -f | head`): docker dies of
            // SIGPIPE, which a shell reports as 128 + 13.
            e if e.is_broken_pipe() => 141,
            _ => 1,
        }
    }

    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// True for "no such container/image/..." answers.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Api { status: 404, .. })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
