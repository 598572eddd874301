//! The client's errors: one enum, messages in Docker's words where Docker has words,
//! and a [`ErrorKind`] the engine maps to an HTTP status in one place.

use crate::digest::Digest;
use crate::manifest::ManifestError;
use crate::reference::ReferenceError;
use crate::store::StoreError;

use super::credentials::CredentialError;

/// The class of an error, for the API layer (moby's errdefs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad reference, platform or option: 400.
    InvalidParameter,
    /// The registry refused our credentials: 401 (Docker answers /auth with 401; pulls
    /// with "pull access denied" as 404).
    Unauthorized,
    /// The image, tag or repository does not exist: 404.
    NotFound,
    /// The registry is unreachable, overloaded or failing: 503/500.
    Unavailable,
    /// Everything else (corrupt content, local store failure): 500.
    System,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),

    #[error("cannot connect to registry {registry}: {message}")]
    Connect { registry: String, message: String },

    /// `message` reads like Docker's: `unauthorized: authentication required`.
    #[error("{message}")]
    Unauthorized { registry: String, message: String },

    #[error("{what} not found: {message}")]
    NotFound { what: String, message: String },

    #[error("{message}{}", retry_after.map(|s| format!(" (retry after {s} s)")).unwrap_or_default())]
    TooManyRequests {
        message: String,
        retry_after: Option<u64>,
    },

    #[error("{what}: registry {registry} answered {status}: {message}")]
    Status {
        registry: String,
        what: String,
        status: u16,
        message: String,
    },

    #[error("unsupported media type {media_type:?} for {what}")]
    UnsupportedMediaType { what: String, media_type: String },

    #[error("invalid manifest for {what}: {source}")]
    Manifest {
        what: String,
        source: ManifestError,
    },

    #[error("invalid image config {digest}: {message}")]
    Config { digest: Digest, message: String },

    #[error("digest mismatch for {what}: expected {expected}, got {actual}; nothing was stored")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: String,
    },

    #[error("size mismatch for {what}: expected {expected} bytes, got more or fewer ({actual})")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },

    #[error("no matching manifest for {platform} in the manifest list entries")]
    NoMatchingPlatform { platform: String },

    #[error("invalid platform: {0}")]
    Platform(#[from] crate::manifest::PlatformError),

    #[error("download of {what} failed: {message}")]
    Transfer { what: String, message: String },

    #[error(transparent)]
    Store(#[from] StoreError),

    #[error(transparent)]
    Credentials(#[from] CredentialError),

    #[error("registry {registry}: {message}")]
    Protocol { registry: String, message: String },

    #[error("TLS configuration for {registry}: {message}")]
    Tls { registry: String, message: String },
}

impl RegistryError {
    pub fn kind(&self) -> ErrorKind {
        use RegistryError::*;
        match self {
            Reference(_) | Platform(_) | NoMatchingPlatform { .. } => ErrorKind::InvalidParameter,
            Unauthorized { .. } => ErrorKind::Unauthorized,
            NotFound { .. } => ErrorKind::NotFound,
            Connect { .. } | TooManyRequests { .. } | Transfer { .. } | Tls { .. } => ErrorKind::Unavailable,
            Status { status, .. } if *status >= 500 => ErrorKind::Unavailable,
            Status { status: 404, .. } => ErrorKind::NotFound,
            Status { status: 401 | 403, .. } => ErrorKind::Unauthorized,
            Status { .. } => ErrorKind::System,
            Credentials(_) => ErrorKind::InvalidParameter,
            UnsupportedMediaType { .. }
            | Manifest { .. }
            | Config { .. }
            | DigestMismatch { .. }
            | SizeMismatch { .. }
            | Store(_)
            | Protocol { .. } => ErrorKind::System,
        }
    }

    /// Whether trying the next endpoint (a mirror's fallback) could help.
    pub(crate) fn try_next_endpoint(&self) -> bool {
        matches!(
            self,
            RegistryError::Connect { .. }
                | RegistryError::NotFound { .. }
                | RegistryError::Status { .. }
                | RegistryError::TooManyRequests { .. }
                | RegistryError::Unauthorized { .. }
                | RegistryError::Tls { .. }
        )
    }
}

/// Formats a distribution error body (`{"errors":[{"code","message"}]}`) the way
/// Docker's errcode does: `manifest unknown: manifest unknown`.
pub(crate) fn describe_error_body(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Body {
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        code: Option<String>,
        message: Option<String>,
    }
    let b: Body = serde_json::from_slice(body).ok()?;
    let parts: Vec<String> = b
        .errors
        .into_iter()
        .map(|e| {
            let code = e.code.unwrap_or_default().to_lowercase().replace('_', " ");
            match e.message {
                Some(m) if !m.is_empty() && !code.is_empty() => format!("{code}: {m}"),
                Some(m) if !m.is_empty() => m,
                _ => code,
            }
        })
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_read_like_docker() {
        let b = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#;
        assert_eq!(describe_error_body(b).unwrap(), "manifest unknown: manifest unknown");
        let b = br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"},{"code":"DENIED","message":"no"}]}"#;
        assert_eq!(describe_error_body(b).unwrap(), "toomanyrequests: slow down, denied: no");
        assert_eq!(describe_error_body(b"<html>"), None);
    }

    #[test]
    fn kinds() {
        let e = RegistryError::NotFound { what: "manifest".into(), message: "m".into() };
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let e = RegistryError::Status { registry: "r".into(), what: "w".into(), status: 500, message: "m".into() };
        assert_eq!(e.kind(), ErrorKind::Unavailable);
    }
}
