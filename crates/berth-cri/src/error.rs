//! Errors: the engine's kinds become gRPC codes in one place.

use tonic::{Code, Status};

/// Failures of the CRI server itself (binding, configuration).
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Config(String),
}

/// The gRPC status for an engine error, by its kind.
pub fn status(e: berth_engine::Error) -> Status {
    use berth_engine::ErrorKind as K;
    let code = match e.kind {
        K::InvalidParameter => Code::InvalidArgument,
        K::NotFound => Code::NotFound,
        K::Conflict => Code::FailedPrecondition,
        K::NotModified => Code::FailedPrecondition,
        K::Forbidden => Code::PermissionDenied,
        K::Unavailable => Code::Unavailable,
        K::TooLarge | K::TooManyRequests => Code::ResourceExhausted,
        K::NotImplemented => Code::Unimplemented,
        K::System => Code::Internal,
    };
    Status::new(code, e.message)
}

pub type Result<T> = std::result::Result<T, Status>;

pub fn invalid(msg: impl Into<String>) -> Status {
    Status::invalid_argument(msg.into())
}

pub fn not_found(msg: impl Into<String>) -> Status {
    Status::not_found(msg.into())
}

/// Extension to turn engine results into gRPC results with `?`.
pub trait OrStatus<T> {
    fn or_status(self) -> Result<T>;
}

impl<T> OrStatus<T> for berth_engine::Result<T> {
    fn or_status(self) -> Result<T> {
        self.map_err(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_codes() {
        assert_eq!(status(berth_engine::Error::not_found("x")).code(), Code::NotFound);
        assert_eq!(status(berth_engine::Error::invalid("x")).code(), Code::InvalidArgument);
        assert_eq!(status(berth_engine::Error::system("boom")).message(), "boom");
    }
}
