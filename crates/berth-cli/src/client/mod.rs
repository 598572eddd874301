//! The Engine API client: one HTTP/1.1 connection per request over a unix socket,
//! TCP or TLS (hyper), API version negotiated from `/_ping`, hijacked
//! (`Upgrade: tcp`) streams for attach and exec.

pub mod host;
pub mod ssh;
pub mod tls;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::error::{Error, Result};
use host::Endpoint;

/// The newest API version berth's client speaks.
pub const API_VERSION: &str = "1.51";
/// The oldest the client will negotiate down to.
pub const MIN_API_VERSION: &str = "1.24";

pub type Body = BoxBody<Bytes, std::io::Error>;

pub fn empty_body() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

pub fn bytes_body(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// Streams an `AsyncRead` (a file, stdin) as a request body without buffering it.
pub fn reader_body<R: AsyncRead + Send + Sync + 'static>(r: R) -> Body {
    let stream = tokio_util::io::ReaderStream::new(r).map(|r| r.map(Frame::data));
    BodyExt::boxed(StreamBody::new(stream))
}

/// Any byte stream to the daemon.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A hijacked connection: raw bytes both ways after `101 Switching Protocols`.
pub struct Hijacked {
    pub io: TokioIo<hyper::upgrade::Upgraded>,
    pub content_type: String,
}

impl AsyncRead for Hijacked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Hijacked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// One API request, built up then sent.
pub struct Call {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    body: Option<Body>,
}

impl Call {
    pub fn new(method: Method, path: impl Into<String>) -> Call {
        Call { method, path: path.into(), query: Vec::new(), headers: HeaderMap::new(), body: None }
    }
    pub fn get(path: impl Into<String>) -> Call {
        Call::new(Method::GET, path)
    }
    pub fn post(path: impl Into<String>) -> Call {
        Call::new(Method::POST, path)
    }
    pub fn delete(path: impl Into<String>) -> Call {
        Call::new(Method::DELETE, path)
    }
    pub fn head(path: impl Into<String>) -> Call {
        Call::new(Method::HEAD, path)
    }
    pub fn put(path: impl Into<String>) -> Call {
        Call::new(Method::PUT, path)
    }

    pub fn query(mut self, k: &str, v: impl Into<String>) -> Call {
        self.query.push((k.to_string(), v.into()));
        self
    }

    /// Adds `k` only when `v` is not empty (Go's client skips empty options).
    pub fn query_opt(self, k: &str, v: &str) -> Call {
        if v.is_empty() { self } else { self.query(k, v) }
    }

    /// Booleans go as `1` (docker sends `1`/`0`; only true flags are sent).
    pub fn flag(self, k: &str, on: bool) -> Call {
        if on { self.query(k, "1") } else { self }
    }

    pub fn header(mut self, k: &'static str, v: &str) -> Call {
        if let Ok(v) = header::HeaderValue::from_str(v) {
            self.headers.insert(k, v);
        }
        self
    }

    pub fn json<T: Serialize>(mut self, body: &T) -> Call {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        self.headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
        self.body = Some(bytes_body(bytes));
        self
    }

    pub fn body(mut self, body: Body, content_type: &'static str) -> Call {
        self.headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
        self.body = Some(body);
        self
    }
}

/// Go's `url.Values.Encode`: keys sorted, `QueryEscape`d.
pub fn encode_query(q: &[(String, String)]) -> String {
    let mut q: Vec<&(String, String)> = q.iter().collect();
    q.sort_by(|a, b| a.0.cmp(&b.0));
    q.iter().map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v))).collect::<Vec<_>>().join("&")
}

pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Compares dotted versions ("1.41" < "1.51").
pub fn version_lt(a: &str, b: &str) -> bool {
    let parse = |s: &str| s.split('.').map(|p| p.parse::<u32>().unwrap_or(0)).collect::<Vec<_>>();
    parse(a) < parse(b)
}

#[derive(Clone)]
pub struct Client {
    endpoint: Endpoint,
    /// The host as the user wrote it, for messages.
    host: String,
    tls: Option<(Arc<rustls::ClientConfig>, rustls::pki_types::ServerName<'static>)>,
    /// An ssh connection kept for the next request (each new one is an ssh login).
    idle: Arc<std::sync::Mutex<Option<hyper::client::conn::http1::SendRequest<Body>>>>,
    version: String,
    user_agent: String,
}

impl Client {
    pub fn new(host: &str, tls: Option<&tls::TlsOptions>) -> Result<Client> {
        let endpoint = host::parse_host(host, tls.is_some())?;
        let tls = match (tls, &endpoint) {
            (Some(opts), Endpoint::Tcp { host: name, .. }) => {
                let cfg = tls::client_config(opts)?;
                let server = rustls::pki_types::ServerName::try_from(name.clone())
                    .map_err(|e| Error::msg(format!("invalid TLS server name {name:?}: {e}")))?;
                Some((cfg, server))
            }
            _ => None,
        };
        let display = match &endpoint {
            Endpoint::Unix(p) => format!("unix://{}", p.display()),
            Endpoint::Tcp { host, port } if host.contains(':') => format!("tcp://[{host}]:{port}"),
            Endpoint::Tcp { host, port } => format!("tcp://{host}:{port}"),
            Endpoint::Ssh { user, host, port } => {
                format!("ssh://{}{host}{}", user.as_ref().map(|u| format!("{u}@")).unwrap_or_default(), port.map(|p| format!(":{p}")).unwrap_or_default())
            }
        };
        Ok(Client {
            endpoint,
            host: display,
            tls,
            idle: Arc::default(),
            version: API_VERSION.to_string(),
            user_agent: format!("berth-cli/{} (linux)", env!("CARGO_PKG_VERSION")),
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The API version requests use (after negotiation).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// True when the negotiated version is older than `v`.
    pub fn version_before(&self, v: &str) -> bool {
        version_lt(&self.version, v)
    }

    fn host_header(&self) -> String {
        match &self.endpoint {
            // What the docker CLI sends over a socket.
            Endpoint::Unix(_) | Endpoint::Ssh { .. } => "api.moby.localhost".into(),
            Endpoint::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            Endpoint::Tcp { host, port } => format!("{host}:{port}"),
        }
    }

    /// A byte stream to the daemon (for `system dial-stdio`, or HTTP).
    pub async fn connect(&self) -> Result<Box<dyn Io>> {
        let conn_err = |source| Error::Connect { host: self.host.clone(), source };
        match &self.endpoint {
            Endpoint::Ssh { user, host, port } => Ok(Box::new(ssh::SshStream::spawn(user.as_deref(), host, *port).map_err(conn_err)?)),
            Endpoint::Unix(p) => Ok(Box::new(UnixStream::connect(p).await.map_err(conn_err)?)),
            Endpoint::Tcp { host, port } => {
                let tcp = TcpStream::connect((host.as_str(), *port)).await.map_err(conn_err)?;
                let _ = tcp.set_nodelay(true);
                match &self.tls {
                    None => Ok(Box::new(tcp)),
                    Some((cfg, name)) => {
                        let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                            .connect(name.clone(), tcp)
                            .await
                            .map_err(|e| Error::Http(format!("TLS handshake with {}: {e}", self.host)))?;
                        Ok(Box::new(tls))
                    }
                }
            }
        }
    }

    fn build(&self, call: Call, versioned: bool) -> Result<Request<Body>> {
        let mut uri = if versioned { format!("/v{}{}", self.version, call.path) } else { call.path.clone() };
        if !call.query.is_empty() {
            uri.push('?');
            uri.push_str(&encode_query(&call.query));
        }
        let mut req = Request::builder()
            .method(call.method)
            .uri(uri)
            .header(header::HOST, self.host_header())
            .header(header::USER_AGENT, self.user_agent.as_str());
        for (k, v) in &call.headers {
            req = req.header(k, v);
        }
        let body = call.body.unwrap_or_else(empty_body);
        req.body(body).map_err(|e| Error::Http(e.to_string()))
    }

    async fn send_raw(&self, req: Request<Body>, upgrades: bool) -> Result<Response<Incoming>> {
        let ssh = matches!(self.endpoint, Endpoint::Ssh { .. });
        if ssh && !upgrades {
            let idle = self.idle.lock().ok().and_then(|mut i| i.take()).filter(|s| s.is_ready());
            if let Some(mut sender) = idle {
                let res = sender.send_request(req).await.map_err(|e| Error::Http(e.to_string()))?;
                if let Ok(mut i) = self.idle.lock() {
                    *i = Some(sender);
                }
                return Ok(res);
            }
        }
        let io = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| Error::Http(e.to_string()))?;
        if upgrades {
            tokio::spawn(async move {
                let _ = conn.with_upgrades().await;
            });
        } else {
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
        let res = sender.send_request(req).await.map_err(|e| Error::Http(e.to_string()))?;
        if ssh && !upgrades
            && let Ok(mut i) = self.idle.lock()
            && i.is_none()
        {
            *i = Some(sender);
        }
        Ok(res)
    }

    /// `HEAD /_ping` (falling back to `GET`), then uses min(server, ours) for every
    /// later request, like the docker CLI.
    pub async fn negotiate(&mut self) -> Result<()> {
        let mut res = self.send_raw(self.build(Call::head("/_ping"), false)?, false).await?;
        if res.status().is_server_error() || res.status() == StatusCode::NOT_FOUND || res.status() == StatusCode::METHOD_NOT_ALLOWED {
            res = self.send_raw(self.build(Call::get("/_ping"), false)?, false).await?;
        }
        if let Some(v) = res.headers().get("api-version").and_then(|v| v.to_str().ok())
            && version_lt(v, API_VERSION) {
                self.version = v.to_string();
            }
        Ok(())
    }

    /// Sends a call to the versioned path; any non-2xx answer becomes `Error::Api`.
    pub async fn send(&self, call: Call) -> Result<Response<Incoming>> {
        let res = self.send_raw(self.build(call, true)?, false).await?;
        check(res).await
    }

    pub async fn bytes(&self, call: Call) -> Result<Bytes> {
        let res = self.send(call).await?;
        read_body(res).await
    }

    pub async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T> {
        let body = self.bytes(call).await?;
        serde_json::from_slice(&body).map_err(|e| Error::msg(format!("unexpected answer from the daemon: {e}")))
    }

    /// Hijacks the connection (`Connection: Upgrade`, `Upgrade: tcp`) for attach and
    /// exec start.
    pub async fn hijack(&self, mut call: Call) -> Result<Hijacked> {
        if !call.headers.contains_key(header::CONTENT_TYPE) {
            call.headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain"));
        }
        call.headers.insert(header::CONNECTION, header::HeaderValue::from_static("Upgrade"));
        call.headers.insert(header::UPGRADE, header::HeaderValue::from_static("tcp"));
        let res = self.send_raw(self.build(call, true)?, true).await?;
        if res.status() != StatusCode::SWITCHING_PROTOCOLS {
            let res = check(res).await?;
            return Err(Error::Http(format!("the daemon did not switch protocols (status {})", res.status())));
        }
        let content_type = res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let upgraded = hyper::upgrade::on(res).await.map_err(|e| Error::Http(e.to_string()))?;
        Ok(Hijacked { io: TokioIo::new(upgraded), content_type })
    }
}

/// Turns error statuses into `Error::Api` with the daemon's message.
pub async fn check(res: Response<Incoming>) -> Result<Response<Incoming>> {
    let status = res.status();
    if status.is_success() || status == StatusCode::NOT_MODIFIED || status == StatusCode::SWITCHING_PROTOCOLS {
        return Ok(res);
    }
    let body = read_body(res).await.unwrap_or_default();
    let message = match serde_json::from_slice::<berth_types::ErrorResponse>(&body) {
        Ok(e) if !e.message.is_empty() => e.message,
        _ => {
            let text = String::from_utf8_lossy(&body).trim().to_string();
            if text.is_empty() { format!("{status}") } else { text }
        }
    };
    Err(Error::Api { status: status.as_u16(), message })
}

pub async fn read_body(res: Response<Incoming>) -> Result<Bytes> {
    Ok(res.into_body().collect().await.map_err(|e| Error::Http(e.to_string()))?.to_bytes())
}

/// Reads a streaming body chunk by chunk.
pub struct BodyStream {
    body: Incoming,
}

impl BodyStream {
    pub fn new(res: Response<Incoming>) -> BodyStream {
        BodyStream { body: res.into_body() }
    }

    /// The next data chunk, or None at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>> {
        loop {
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(Error::Http(e.to_string())),
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data()
                        && !d.is_empty() {
                            return Ok(Some(d));
                        }
                }
            }
        }
    }
}

/// Splits a streamed body into lines of JSON (events, progress, stats).
pub struct JsonLines {
    body: BodyStream,
    buf: Vec<u8>,
    done: bool,
}

impl JsonLines {
    pub fn new(res: Response<Incoming>) -> JsonLines {
        JsonLines { body: BodyStream::new(res), buf: Vec::new(), done: false }
    }

    /// The next non-empty line, or None at the end of the stream.
    pub async fn next_line(&mut self) -> Result<Option<Vec<u8>>> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                let line = line[..line.len() - 1].to_vec();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Ok(Some(line));
            }
            if self.done {
                if self.buf.iter().all(u8::is_ascii_whitespace) {
                    return Ok(None);
                }
                return Ok(Some(std::mem::take(&mut self.buf)));
            }
            match self.body.chunk().await? {
                Some(c) => self.buf.extend_from_slice(&c),
                None => self.done = true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_sorted_and_escaped_like_go() {
        let q = vec![
            ("t".to_string(), "trace-built:1".to_string()),
            ("dockerfile".to_string(), "Dockerfile".to_string()),
            ("version".to_string(), "1".to_string()),
        ];
        assert_eq!(encode_query(&q), "dockerfile=Dockerfile&t=trace-built%3A1&version=1");
        assert_eq!(query_escape(r#"{"type":{"container":true}}"#), "%7B%22type%22%3A%7B%22container%22%3Atrue%7D%7D");
        assert_eq!(query_escape("a b/c"), "a+b%2Fc");
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(version_lt("1.41", "1.51"));
        assert!(version_lt("1.9", "1.41"));
        assert!(!version_lt("1.51", "1.51"));
    }
}
