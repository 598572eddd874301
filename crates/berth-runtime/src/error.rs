//! The runtime's error type. Kinds map onto what a caller does next (moby style): a bad
//! spec is the user's to fix, a missing container is a 404, a busy id a conflict, a
//! missing privilege names the privilege.

use std::path::PathBuf;

/// Everything the runtime can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bundle's config.json (or an option) is not something we can run.
    #[error("invalid configuration: {0}")]
    InvalidSpec(String),
    /// config.json could not be read or parsed.
    #[error("cannot load {path}: {reason}")]
    LoadSpec { path: PathBuf, reason: String },
    /// A container id that is not allowed (empty, path separators, ...).
    #[error("invalid container id {0:?}: ids are 1-1024 characters of [A-Za-z0-9_+.-] and may not start with '.'")]
    InvalidId(String),
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("container with id {0} already exists")]
    AlreadyExists(String),
    /// The operation does not fit the container's current status.
    #[error("container {id} is {status}: {what}")]
    WrongState {
        id: String,
        status: String,
        what: &'static str,
    },
    /// The host does not grant something the spec needs; the message names it.
    #[error("missing privilege or host feature: {0}")]
    Unsupported(String),
    /// A cgroup value the kernel (or our validation) refused.
    #[error("cgroup {file}: {reason}")]
    Cgroup { file: PathBuf, reason: String },
    /// The container's init failed while setting up (the message comes from inside).
    #[error("container init failed: {0}")]
    Init(String),
    /// The process of an exec failed before running its command.
    #[error("exec failed: {0}")]
    Exec(String),
    /// An OS call failed; `context` says what we were doing.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        Error::Io {
            context: context.into(),
            source: source.into(),
        }
    }

    pub(crate) fn errno(context: impl Into<String>, errno: nix::errno::Errno) -> Self {
        Error::Io {
            context: context.into(),
            source: std::io::Error::from_raw_os_error(errno as i32),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds what we were doing to io / errno results.
pub(crate) trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(what(), e))
    }
}

impl<T> Context<T> for nix::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::errno(what(), e))
    }
}
