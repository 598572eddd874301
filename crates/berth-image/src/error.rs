//! The crate's error type. Every error carries a [`ErrorKind`] so that the engine can
//! map it to an API status code in one place (moby's errdefs idea): not found → 404,
//! invalid → 400, conflict → 409, everything else → 500.

use std::io;

/// What kind of failure an [`ImageError`] is, for the engine's status-code mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The image, reference, blob, layer or snapshot does not exist.
    NotFound,
    /// The caller's input is malformed or refused (bad reference, bad archive, unsafe
    /// layer, digest mismatch, unknown media type...).
    InvalidArgument,
    /// The request conflicts with the current state (image in use, ambiguous prefix,
    /// locked ingest, already exists).
    Conflict,
    /// A resource limit was hit (decompression bomb stopped, disk space margin).
    ResourceExhausted,
    /// The host failed us (I/O, syscalls).
    System,
}

/// Errors of the image store.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// `No such image: busybox:latest` — Docker's wording, which users grep for.
    #[error("No such image: {0}")]
    ImageNotFound(String),

    #[error("blob {0} not found")]
    BlobNotFound(String),

    #[error("layer {0} not found")]
    LayerNotFound(String),

    #[error("snapshot {0} not found")]
    SnapshotNotFound(String),

    #[error("ingest {0} not found")]
    IngestNotFound(String),

    /// Docker's wording: `invalid reference format`, optionally followed by a reason.
    #[error("{0}")]
    InvalidReference(String),

    #[error("{0}")]
    InvalidArgument(String),

    /// A layer tar that would write outside its directory or is otherwise unsafe.
    #[error("unsafe layer: {0}")]
    UnsafeLayer(String),

    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },

    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },

    #[error("unsupported media type {0:?}")]
    UnsupportedMediaType(String),

    #[error("invalid archive: {0}")]
    InvalidArchive(String),

    #[error("invalid image config: {0}")]
    InvalidConfig(String),

    #[error("invalid manifest: {0}")]
    InvalidManifest(String),

    /// A Dockerfile-style `--change` instruction that is unknown or malformed.
    #[error("invalid change {0:?}: {1}")]
    InvalidChange(String, String),

    #[error("{0}")]
    Conflict(String),

    #[error("ingest {0} is locked by another writer")]
    IngestLocked(String),

    /// A layer (or the disk) reached the configured unpack limit: a decompression bomb
    /// or simply not enough room.
    #[error("layer too large: {0}")]
    LimitExceeded(String),

    #[error("{context}: {}", io_text(source))]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    #[error("{0}")]
    System(String),
}

/// An I/O error as dockerd words it where clients look for the words: a full disk is
/// Go's "no space left on device" (what scripts and the docker CLI's users grep for),
/// not Rust's "No space left on device (os error 28)". Other errors keep Rust's text.
pub fn io_text(e: &io::Error) -> String {
    berth_types::iotext::io_text(e)
}

impl ImageError {
    pub fn kind(&self) -> ErrorKind {
        use ImageError::*;
        match self {
            ImageNotFound(_) | BlobNotFound(_) | LayerNotFound(_) | SnapshotNotFound(_)
            | IngestNotFound(_) => ErrorKind::NotFound,
            InvalidReference(_)
            | InvalidArgument(_)
            | UnsafeLayer(_)
            | DigestMismatch { .. }
            | SizeMismatch { .. }
            | UnsupportedMediaType(_)
            | InvalidArchive(_)
            | InvalidConfig(_)
            | InvalidManifest(_)
            | InvalidChange(..) => ErrorKind::InvalidArgument,
            Conflict(_) | IngestLocked(_) => ErrorKind::Conflict,
            LimitExceeded(_) => ErrorKind::ResourceExhausted,
            Io { .. } | System(_) => ErrorKind::System,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        ImageError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn io_path(op: &str, path: &std::path::Path, source: io::Error) -> Self {
        ImageError::Io {
            context: format!("{op} {}", path.display()),
            source,
        }
    }

    /// Turns an `io::Error` that came out of a reader chain back into our error when it
    /// wraps one of ours (readers can only return `io::Error`, so the unpacker smuggles
    /// typed errors through them).
    pub(crate) fn from_io_chain(context: &str, e: io::Error) -> Self {
        if e.get_ref().is_some_and(|inner| inner.is::<ImageError>()) {
            if let Some(inner) = e.into_inner() {
                if let Ok(ours) = inner.downcast::<ImageError>() {
                    return *ours;
                }
                return ImageError::System(format!("{context}: unknown error"));
            }
            return ImageError::System(format!("{context}: unknown error"));
        }
        // Real OS errors carry an errno; everything else a reader chain produces
        // (tar format errors, corrupt compression, short streams) is bad input.
        if e.raw_os_error().is_some() {
            return ImageError::io(context, e);
        }
        let msg = e.to_string();
        if e.kind() == io::ErrorKind::UnexpectedEof
            || msg.contains("unexpected EOF")
            || msg.contains("failed to read entire block")
        {
            ImageError::InvalidArchive(format!("{context}: unexpected end of data (truncated?)"))
        } else if msg.contains("when getting cksum") || msg.contains("checksum mismatch") || msg.contains("numeric field") {
            // The tar crate quotes the header's raw bytes: say what Go's archive/tar says.
            ImageError::InvalidArchive(format!("{context}: invalid tar header"))
        } else {
            ImageError::InvalidArchive(format!("{context}: {}", printable(&msg)))
        }
    }

    /// Wraps this error into an `io::Error` so it can travel through `Read`/`Write`.
    pub(crate) fn into_io(self) -> io::Error {
        io::Error::other(self)
    }
}

/// Recovers the typed error from an `io::Error` that went through one of this crate's
/// `Read`/`Write` implementations (e.g. `io::copy` into a [`crate::LayerWriter`]).
impl From<io::Error> for ImageError {
    fn from(e: io::Error) -> Self {
        ImageError::from_io_chain("i/o", e)
    }
}

pub type Result<T, E = ImageError> = std::result::Result<T, E>;

/// Extension to attach a path to `io::Result`s.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &str, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &str, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| ImageError::io_path(op, path, e))
    }
}

/// `msg` with control characters and undecodable bytes escaped: an archive's bytes that
/// reach an error message must not reach a terminal as they are.
fn printable(msg: &str) -> String {
    msg.chars().map(|c| if c.is_control() || c == char::REPLACEMENT_CHARACTER { c.escape_default().to_string() } else { c.to_string() }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_errors_survive_a_trip_through_io_error() {
        let e = ImageError::LimitExceeded("x".into()).into_io();
        let back = ImageError::from_io_chain("ctx", e);
        assert!(matches!(back, ImageError::LimitExceeded(_)));
        assert_eq!(back.kind(), ErrorKind::ResourceExhausted);
    }

    #[test]
    fn a_garbage_header_is_named_without_its_bytes() {
        let e = io::Error::other("numeric field did not have utf-8 text: \u{fffd}\u{1b}[2J when getting cksum for \u{7}x");
        assert_eq!(ImageError::from_io_chain("read archive", e).to_string(), "invalid archive: read archive: invalid tar header");
        let e = io::Error::other("bad entry \u{1b}[31mred");
        let msg = ImageError::from_io_chain("read archive", e).to_string();
        assert!(!msg.chars().any(|c| c.is_control()), "{msg}");
    }

    #[test]
    fn eof_becomes_a_truncation_error() {
        let e = io::Error::new(io::ErrorKind::UnexpectedEof, "eof");
        let back = ImageError::from_io_chain("layer", e);
        assert!(back.to_string().contains("truncated"), "{back}");
        assert_eq!(back.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn not_found_uses_dockers_wording() {
        assert_eq!(
            ImageError::ImageNotFound("busybox:latest".into()).to_string(),
            "No such image: busybox:latest"
        );
    }
}

