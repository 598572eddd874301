//! The distribution API's error answers: `{"errors":[{"code","message","detail"}]}`
//! with the status code the spec pairs with each code.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::storage::StorageError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub detail: Option<serde_json::Value>,
    /// Set on 401s: the challenge to send back.
    pub www_authenticate: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            detail: None,
            www_authenticate: None,
        }
    }

    pub fn with_detail(mut self, detail: serde_json::Value) -> ApiError {
        self.detail = Some(detail);
        self
    }

    pub fn blob_unknown(digest: &str) -> ApiError {
        Self::new(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", "blob unknown to registry")
            .with_detail(json!({ "digest": digest }))
    }
    pub fn upload_unknown() -> ApiError {
        Self::new(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry")
    }
    pub fn upload_invalid(msg: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID", msg)
    }
    pub fn digest_invalid(msg: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", msg)
    }
    pub fn manifest_unknown(reference: &str) -> ApiError {
        Self::new(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", "manifest unknown")
            .with_detail(json!({ "Tag": reference }))
    }
    pub fn manifest_invalid(msg: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", msg)
    }
    pub fn manifest_blob_unknown(digest: &str) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN", "blob unknown to registry")
            .with_detail(json!({ "digest": digest }))
    }
    pub fn name_invalid(name: &str) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, "NAME_INVALID", "invalid repository name")
            .with_detail(json!({ "name": name }))
    }
    pub fn name_unknown(name: &str) -> ApiError {
        Self::new(StatusCode::NOT_FOUND, "NAME_UNKNOWN", "repository name not known to registry")
            .with_detail(json!({ "name": name }))
    }
    pub fn tag_invalid(tag: &str) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, "TAG_INVALID", "manifest tag did not match URI")
            .with_detail(json!({ "tag": tag }))
    }
    pub fn pagination_invalid(n: &str) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, "PAGINATION_NUMBER_INVALID", "invalid number of results requested")
            .with_detail(json!({ "n": n }))
    }
    pub fn range_invalid(msg: impl Into<String>) -> ApiError {
        Self::new(StatusCode::RANGE_NOT_SATISFIABLE, "RANGE_INVALID", msg)
    }
    pub fn unauthorized(challenge: String) -> ApiError {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "authentication required");
        e.www_authenticate = Some(challenge);
        e
    }
    pub fn unsupported(msg: impl Into<String>) -> ApiError {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", msg)
    }
    pub fn not_found() -> ApiError {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", "not found")
    }
    pub fn internal(msg: impl Into<String>) -> ApiError {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", msg)
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> ApiError {
        tracing::error!("storage error: {e}");
        ApiError::internal(format!("storage error: {e}"))
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> ApiError {
        match e {
            StorageError::Io(io) => io.into(),
            StorageError::UploadUnknown => ApiError::upload_unknown(),
            StorageError::DigestMismatch { expected, actual } => {
                ApiError::digest_invalid("provided digest did not match uploaded content")
                    .with_detail(json!({ "expected": expected, "actual": actual }))
            }
            StorageError::ManifestInvalid(m) => ApiError::manifest_invalid(m),
            StorageError::ManifestBlobUnknown(d) => ApiError::manifest_blob_unknown(&d.to_string()),
            StorageError::NameUnknown => ApiError::name_unknown(""),
            StorageError::TagInvalid(t) => ApiError::tag_invalid(&t),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut err = json!({ "code": self.code, "message": self.message });
        if let Some(d) = self.detail {
            err["detail"] = d;
        }
        let body = json!({ "errors": [err] }).to_string();
        let mut resp = Response::new(Body::from(body));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
        if let Some(c) = self.www_authenticate
            && let Ok(v) = HeaderValue::from_str(&c)
        {
            h.insert(header::WWW_AUTHENTICATE, v);
        }
        resp
    }
}
