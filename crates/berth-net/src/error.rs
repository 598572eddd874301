//! Typed errors. The engine maps [`ErrorKind`] to HTTP status codes in one place
//! (not found → 404, invalid → 400, conflict → 409, forbidden → 403, unavailable → 503,
//! system → 500); the message is Docker's wording so clients that match on it keep working.

use std::fmt;

/// What kind of failure this is; decides the API status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No such network, endpoint or container attachment.
    NotFound,
    /// Bad input: malformed CIDR, address outside the subnet, unknown option...
    InvalidParameter,
    /// The name or resource is taken (duplicate network name, port already allocated).
    Conflict,
    /// Not allowed in this state (removing a predefined network, overlapping pool,
    /// removing a network that has endpoints).
    Forbidden,
    /// Resources exhausted (no free subnet, no free address, no free port).
    Unavailable,
    /// The kernel, the filesystem or a helper program failed.
    System,
}

/// The error every public function of this crate returns.
#[derive(Debug, thiserror::Error)]
pub struct NetError {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl NetError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        NetError { kind, message: message.into(), source: None }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The user-facing message (Docker's wording where Docker has one).
    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParameter, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// A system failure with its cause kept as the error source.
    pub fn system(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        let context = context.into();
        // An I/O error in dockerd's words (a full disk reads as users match it).
        let cause = match (&source as &dyn std::error::Error).downcast_ref::<std::io::Error>() {
            Some(io) => berth_types::iotext::io_text(io),
            None => source.to_string(),
        };
        let message = format!("{context}: {cause}");
        NetError { kind: ErrorKind::System, message, source: Some(Box::new(source)) }
    }

    /// A system failure without an underlying error value.
    pub fn system_msg(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::System, message)
    }

    /// Docker's "network X not found".
    pub fn no_such_network(name_or_id: &str) -> Self {
        Self::not_found(format!("network {name_or_id} not found"))
    }
}

pub type Result<T, E = NetError> = std::result::Result<T, E>;
