//! Typed engine errors. The kind decides the HTTP status in one place (berth-api), as
//! moby's errdefs do; the message is what the user reads.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400
    InvalidParameter,
    /// 403
    Forbidden,
    /// 404
    NotFound,
    /// 409
    Conflict,
    /// 304
    NotModified,
    /// 501
    NotImplemented,
    /// 503
    Unavailable,
    /// 413: a request body over its limit.
    TooLarge,
    /// 429: a client over its share of the daemon (connections per client).
    TooManyRequests,
    /// 500
    System,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error { kind, message: message.into() }
    }
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidParameter, message)
    }
    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::NotFound, message)
    }
    pub fn conflict(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Conflict, message)
    }
    pub fn not_modified(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::NotModified, message)
    }
    pub fn system(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::System, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Forbidden, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Unavailable, message)
    }
    pub fn too_large(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::TooLarge, message)
    }
    pub fn not_implemented(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::NotImplemented, message)
    }

    /// Prefixes the message with context, keeping the kind.
    pub fn context(self, what: impl fmt::Display) -> Error {
        Error { kind: self.kind, message: format!("{what}: {}", self.message) }
    }

    pub fn no_such_container(name: &str) -> Error {
        Error::not_found(format!("No such container: {name}"))
    }

    pub fn no_such_image(name: &str) -> Error {
        Error::not_found(format!("No such image: {name}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::PermissionDenied => ErrorKind::Forbidden,
            std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => ErrorKind::InvalidParameter,
            _ => ErrorKind::System,
        };
        Error::new(kind, berth_image::error::io_text(&e))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::system(format!("json: {e}"))
    }
}

/// `map_err(sys("writing config"))`
pub fn sys<E: fmt::Display>(what: &'static str) -> impl Fn(E) -> Error {
    move |e| Error::system(format!("{what}: {e}"))
}

impl From<rustix::io::Errno> for Error {
    fn from(e: rustix::io::Errno) -> Error {
        Error::from(std::io::Error::from(e))
    }
}
