//! Shared pieces of the handlers: the error answer, query parameters, JSON and
//! streamed bodies, and bridges between HTTP bodies and the engine's blocking I/O.

use std::collections::HashMap;
use std::io;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_engine::{Error, ErrorKind};
use bytes::Bytes;
use futures_util::TryStreamExt;
use tokio::sync::mpsc;

/// An engine error as Docker answers it: status from the kind, `{"message": ...}`.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidParameter => StatusCode::BAD_REQUEST,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::NotModified => StatusCode::NOT_MODIFIED,
        ErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::System => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(self.0.kind);
        if status == StatusCode::NOT_MODIFIED {
            return status.into_response();
        }
        let body = serde_json::to_vec(&berth_types::ErrorResponse { message: self.0.message }).unwrap_or_default();
        (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

pub type ApiResult<T = Response> = Result<T, ApiError>;

pub const MAX_SMALL_BODY: usize = berth_types::system::MAX_SMALL_BODY as usize;
pub const MAX_CONTAINER_BODY: usize = berth_types::system::MAX_CONTAINER_BODY as usize;

/// A whole request body, at most `limit` bytes: a larger one (by its Content-Length, or
/// as it arrives when chunked) is refused with 413 before more of it is read.
pub async fn read_body(req: axum::extract::Request, limit: usize) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt;
    let what = format!("{} {}", req.method(), req.uri().path());
    let too_large = || ApiError(Error::too_large(format!("request body is larger than the limit of {} for {what}", mib(limit))));
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let mut body = req.into_body();
    let mut buf = bytes::BytesMut::new();
    let mut over = declared.is_some_and(|n| n > limit as u64);
    // Over the limit, the rest is read and dropped (up to DRAIN_CAP) before answering:
    // a client still writing its body would otherwise get a broken pipe, not the 413.
    let mut drained = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| invalid(format!("reading body: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        if over {
            drained += data.len();
            if drained > DRAIN_CAP {
                break;
            }
            continue;
        }
        if buf.len() + data.len() > limit {
            over = true;
            drained = buf.len() + data.len();
            buf = bytes::BytesMut::new();
            continue;
        }
        buf.extend_from_slice(&data);
    }
    if over {
        return Err(too_large());
    }
    Ok(buf.freeze())
}

/// How much of an oversized body is read (and dropped) so the client sees the 413;
/// past this the connection is closed on it.
const DRAIN_CAP: usize = 16 << 20;

/// A byte count as Docker's messages write sizes ("1MiB", "64MiB", "512KiB").
pub fn mib(n: usize) -> String {
    if n >= 1 << 20 && n % (1 << 20) == 0 { format!("{}MiB", n >> 20) } else if n >= 1 << 10 && n % (1 << 10) == 0 { format!("{}KiB", n >> 10) } else { format!("{n}B") }
}

pub fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError(Error::invalid(msg))
}

/// Query parameters (the last value of a repeated key wins, as Go's `Get`; `all`
/// keeps every value).
#[derive(Debug, Default, Clone)]
pub struct Params {
    all: Vec<(String, String)>,
    last: HashMap<String, String>,
}

impl Params {
    pub fn parse(query: Option<&str>) -> Params {
        let mut p = Params::default();
        if let Some(q) = query {
            for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                p.last.insert(k.to_string(), v.to_string());
                p.all.push((k.into_owned(), v.into_owned()));
            }
        }
        p
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.last.get(k).map(String::as_str)
    }

    pub fn str(&self, k: &str) -> &str {
        self.get(k).unwrap_or("")
    }

    pub fn values(&self, k: &str) -> Vec<String> {
        self.all.iter().filter(|(key, _)| key == k).map(|(_, v)| v.clone()).collect()
    }

    /// Go's ParseBool, and an empty or missing value is false... except that a present
    /// key with no value counts as true for a few flags, as Docker's `BoolValue`.
    pub fn bool(&self, k: &str) -> Result<bool, ApiError> {
        match self.get(k) {
            None | Some("") => Ok(false),
            Some(v) => berth_types::parse_bool(v).ok_or_else(|| invalid(format!("invalid value for {k}: {v:?}"))),
        }
    }

    pub fn bool_or(&self, k: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(k) {
            None | Some("") => Ok(default),
            Some(_) => self.bool(k),
        }
    }

    pub fn int(&self, k: &str) -> Result<Option<i64>, ApiError> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some(v) => v.parse::<i64>().map(Some).map_err(|_| invalid(format!("invalid value for {k}: {v:?}"))),
        }
    }

    pub fn filters(&self) -> Result<berth_types::filters::Filters, ApiError> {
        berth_types::filters::Filters::parse(self.str("filters")).map_err(|e| invalid(e.to_string()))
    }
}

pub fn json<T: serde::Serialize>(status: StatusCode, v: &T) -> Response {
    match serde_json::to_vec(v) {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => ApiError(Error::system(e.to_string())).into_response(),
    }
}

pub fn ok_json<T: serde::Serialize>(v: &T) -> ApiResult {
    Ok(json(StatusCode::OK, v))
}

/// 200 with an empty body.
pub fn ok_empty() -> ApiResult {
    Ok(StatusCode::OK.into_response())
}

pub fn no_content() -> ApiResult {
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Parses a JSON request body with Docker's error for bad input.
pub fn parse_body<T: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(T::default());
    }
    // Through a Value so that null members mean "not set", as Go reads them.
    let mut v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| invalid(format!("invalid JSON: {e}")))?;
    berth_types::json::strip_nulls(&mut v);
    serde_json::from_value(v).map_err(|e| invalid(format!("invalid JSON: {e}")))
}

/// A JSON request body as a value (an empty body is `{}`), for the per-version rules
/// to adjust before it is read with [`from_value`].
pub fn parse_value(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(serde_json::Value::Object(Default::default()));
    }
    serde_json::from_slice(bytes).map_err(|e| invalid(format!("invalid JSON: {e}")))
}

/// Reads a (possibly adjusted) JSON body into a type, `null` members as "not set".
pub fn from_value<T: serde::de::DeserializeOwned>(mut v: serde_json::Value) -> Result<T, ApiError> {
    berth_types::json::strip_nulls(&mut v);
    serde_json::from_value(v).map_err(|e| invalid(format!("invalid JSON: {e}")))
}

/// A value serialised, adjusted by a per-version rule, and answered as JSON.
pub fn ok_json_with<T: serde::Serialize>(v: &T, adjust: impl FnOnce(&mut serde_json::Value)) -> ApiResult {
    let mut value = serde_json::to_value(v).map_err(|e| ApiError(Error::system(e.to_string())))?;
    adjust(&mut value);
    ok_json(&value)
}

/// A streamed response body fed by a channel.
pub fn stream_response(content_type: &str, rx: mpsc::Receiver<Result<Bytes, io::Error>>) -> Response {
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut r = Response::new(body);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("application/octet-stream")));
    r
}

/// `std::io::Write` into a response channel, for the engine's blocking writers.
pub struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    pub fn new(tx: mpsc::Sender<Result<Bytes, io::Error>>) -> Self {
        ChannelWriter { tx, buf: Vec::with_capacity(64 * 1024) }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(64 * 1024)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 64 * 1024 {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        let _ = self.send();
    }
}

/// A request body as a blocking reader (use it on the blocking pool only).
pub fn body_reader(body: Body) -> BodyReader {
    let stream: BodyStream = Box::pin(body.into_data_stream().map_err(io::Error::other));
    BodyReader(Some(tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream))))
}

type BodyStream = std::pin::Pin<Box<dyn futures_util::Stream<Item = io::Result<Bytes>> + Send>>;

/// [`body_reader`]'s reader. Dropped before the body's end (the engine stopped at an
/// error, or a tar reader at the archive's first end block), it has the rest read and
/// dropped by a task, up to [`DRAIN_CAP`]: a body left unread makes the server close
/// the connection once the answer is out, and a client still writing its body then
/// reports a broken pipe instead of the answer.
pub struct BodyReader(Option<tokio_util::io::SyncIoBridge<tokio_util::io::StreamReader<BodyStream, Bytes>>>);

impl io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.0 {
            Some(r) => r.read(buf),
            None => Ok(0),
        }
    }
}

impl Drop for BodyReader {
    fn drop(&mut self) {
        let (Some(bridge), Ok(rt)) = (self.0.take(), tokio::runtime::Handle::try_current()) else { return };
        let mut rest = bridge.into_inner();
        rt.spawn(async move {
            use tokio::io::AsyncReadExt;
            let _ = tokio::io::copy(&mut (&mut rest).take(DRAIN_CAP as u64), &mut tokio::io::sink()).await;
        });
    }
}

/// A JSON line (Docker's progress streams).
pub fn line<T: serde::Serialize>(v: &T) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}
