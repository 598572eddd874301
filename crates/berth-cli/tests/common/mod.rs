//! Test helpers: the recorded docker ↔ dockerd traces as data, and a mock daemon on a
//! unix socket (or TLS over TCP) that answers each request with the exact bytes
//! dockerd sent in the trace, recording what the client asked.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// One request in a trace with the response bytes that followed it (for a hijacked
/// connection, everything the daemon sent afterwards too).
#[derive(Debug, Clone)]
pub struct Exchange {
    pub conn: u32,
    pub method: String,
    pub uri: String,
    pub request_head: String,
    pub response: Vec<u8>,
    /// Offsets of newlines the tracer may have added at read boundaries.
    cuts: Vec<usize>,
}

fn decode(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'r') {
            out.push(b'\r');
            i += 2;
        } else if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') && i + 3 < b.len() + 1 {
            match u8::from_str_radix(std::str::from_utf8(&b[i + 2..(i + 4).min(b.len())]).unwrap_or("zz"), 16) {
                Ok(v) => {
                    out.push(v);
                    i += 4;
                }
                Err(_) => {
                    out.push(b[i]);
                    i += 1;
                }
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

pub fn trace_text(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/api-traces").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What the user saw, from the trace's header comment (without the `[exit N]` line).
pub fn user_saw(name: &str) -> (String, i32) {
    let text = trace_text(name);
    let mut out = String::new();
    let mut code = 0;
    let mut started = false;
    for l in text.lines() {
        if l.starts_with("#   $ ") {
            started = true;
            continue;
        }
        if !started {
            continue;
        }
        if let Some(rest) = l.strip_prefix("#   [exit ") {
            code = rest.trim_end_matches(']').parse().unwrap_or(-1);
            break;
        }
        match l.strip_prefix("#   ") {
            Some(x) => {
                out.push_str(x);
                out.push('\n');
            }
            None if l == "#" || l == "#  " => out.push('\n'),
            None => break,
        }
    }
    (out, code)
}

/// Parses a trace into its exchanges, in the order the requests were made.
pub fn exchanges(name: &str) -> Vec<Exchange> {
    let text = trace_text(name);
    // Split into events: "#N > data" / "#N < data", data running to the next marker.
    let mut events: Vec<(u32, char, String)> = Vec::new();
    for line in text.split_inclusive('\n') {
        let marker = line
            .strip_prefix('#')
            .and_then(|r| {
                let digits: String = r.chars().take_while(char::is_ascii_digit).collect();
                if digits.is_empty() {
                    return None;
                }
                let rest = &r[digits.len()..];
                let dir = if rest.starts_with(" > ") {
                    '>'
                } else if rest.starts_with(" < ") {
                    '<'
                } else {
                    return None;
                };
                Some((digits.parse::<u32>().ok()?, dir, rest[3..].to_string()))
            });
        match marker {
            Some(ev) => events.push(ev),
            None => {
                if let Some(last) = events.last_mut() {
                    last.2.push_str(line);
                }
                // Lines before the first event are the header comment.
            }
        }
    }
    let mut out: Vec<Exchange> = Vec::new();
    let mut hijacked: Vec<u32> = Vec::new();
    for (conn, dir, data) in events {
        let bytes = decode(&data);
        if dir == '>' {
            if hijacked.contains(&conn) {
                continue; // stdin sent over a hijacked connection
            }
            let starts_request = ["GET ", "POST ", "HEAD ", "PUT ", "DELETE "].iter().any(|m| data.starts_with(m));
            if starts_request {
                let first = data.lines().next().unwrap_or("");
                let mut parts = first.split(' ');
                let method = parts.next().unwrap_or("").to_string();
                let uri = parts.next().unwrap_or("").to_string();
                out.push(Exchange { conn, method, uri, request_head: String::from_utf8_lossy(&bytes).into_owned(), response: Vec::new(), cuts: Vec::new() });
            }
        } else if let Some(x) = out.iter_mut().rev().find(|x| x.conn == conn) {
            if x.response.is_empty() && bytes.starts_with(b"HTTP/1.1 101") {
                hijacked.push(conn);
            }
            // The tracer ends every event with a newline; when the data itself did not
            // (a read that stopped mid-line), that newline is not data. Remember where
            // such a newline could be, and let the HTTP framing decide below.
            if bytes.ends_with(b"\n") && !bytes.ends_with(b"\r\n") {
                x.cuts.push(x.response.len() + bytes.len() - 1);
            }
            x.response.extend_from_slice(&bytes);
        }
    }
    for x in &mut out {
        if !x.cuts.is_empty() && !framing_ok(&x.response) {
            let mut fixed = x.response.clone();
            for &c in x.cuts.iter().rev() {
                fixed.remove(c);
            }
            if framing_ok(&fixed) {
                x.response = fixed;
            }
        }
    }
    out
}

/// True when an HTTP response's body length agrees with its framing
/// (Content-Length or chunked); hijacked (101) responses are not checked.
pub fn framing_ok(r: &[u8]) -> bool {
    let Some(end) = r.windows(4).position(|w| w == b"\r\n\r\n") else { return false };
    let head = String::from_utf8_lossy(&r[..end]).to_ascii_lowercase();
    let body = &r[end + 4..];
    if head.starts_with("http/1.1 101") {
        return true;
    }
    if let Some(l) = head.lines().find_map(|l| l.strip_prefix("content-length:")) {
        return l.trim().parse::<usize>().is_ok_and(|n| n == body.len());
    }
    if head.contains("transfer-encoding: chunked") {
        let mut b = body;
        loop {
            let Some(i) = b.windows(2).position(|w| w == b"\r\n") else { return false };
            let Ok(size) = usize::from_str_radix(String::from_utf8_lossy(&b[..i]).trim(), 16) else { return false };
            b = &b[i + 2..];
            if size == 0 {
                return b == b"\r\n";
            }
            if b.len() < size + 2 || &b[size..size + 2] != b"\r\n" {
                return false;
            }
            b = &b[size + 2..];
        }
    }
    true
}

/// A request the mock received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub struct Mock {
    _dir: tempfile::TempDir,
    pub host: String,
    pub log: Arc<Mutex<Vec<Received>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Mock {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Mock {
    pub fn requests(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// "METHOD URI" of every request, in order.
    pub fn request_lines(&self) -> Vec<String> {
        self.requests().iter().map(|r| format!("{} {}", r.method, r.uri)).collect()
    }
}

type Responder = Arc<dyn Fn(&Received) -> Option<Vec<u8>> + Send + Sync>;

/// Serves the trace's responses over a unix socket. Requests not in the trace get a
/// 404 `{"message": "mock: ..."}`.
pub fn replay(name: &str) -> Mock {
    let ex = Arc::new(Mutex::new(exchanges(name)));
    serve_unix(Arc::new(move |r: &Received| {
        let mut ex = ex.lock().unwrap();
        let i = ex.iter().position(|x| x.method == r.method && x.uri == r.uri)?;
        Some(ex.remove(i).response)
    }))
}

/// A mock daemon answering with a closure (None → 404).
pub fn serve_unix(responder: Responder) -> Mock {
    let dir = tempfile::Builder::new().prefix("bcm").tempdir_in("/tmp").unwrap();
    let sock = dir.path().join("d.sock");
    let log: Arc<Mutex<Vec<Received>>> = Arc::default();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let log2 = log.clone();
    let sock2 = sock.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::UnixListener::bind(&sock2).unwrap();
            ready_tx.send(()).unwrap();
            loop {
                tokio::select! {
                    _ = &mut stop_rx => break,
                    r = listener.accept() => {
                        let Ok((s, _)) = r else { break };
                        tokio::spawn(handle(s, responder.clone(), log2.clone()));
                    }
                }
            }
        });
    });
    ready_rx.recv().unwrap();
    Mock { host: format!("unix://{}", sock.display()), _dir: dir, log, stop: Some(stop_tx), thread: Some(thread) }
}

/// The same over TLS on 127.0.0.1 with the given server config.
pub fn serve_tls(responder: Responder, config: Arc<rustls::ServerConfig>) -> Mock {
    let dir = tempfile::Builder::new().prefix("bcm").tempdir_in("/tmp").unwrap();
    let log: Arc<Mutex<Vec<Received>>> = Arc::default();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let log2 = log.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            ready_tx.send(listener.local_addr().unwrap().port()).unwrap();
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            loop {
                tokio::select! {
                    _ = &mut stop_rx => break,
                    r = listener.accept() => {
                        let Ok((s, _)) = r else { break };
                        let acceptor = acceptor.clone();
                        let responder = responder.clone();
                        let log = log2.clone();
                        tokio::spawn(async move {
                            if let Ok(tls) = acceptor.accept(s).await {
                                handle(tls, responder, log).await;
                            }
                        });
                    }
                }
            }
        });
    });
    let port = ready_rx.recv().unwrap();
    Mock { host: format!("tcp://127.0.0.1:{port}"), _dir: dir, log, stop: Some(stop_tx), thread: Some(thread) }
}

async fn read_until(s: &mut (impl AsyncRead + Unpin), buf: &mut Vec<u8>, pat: &[u8]) -> Option<usize> {
    loop {
        if let Some(i) = buf.windows(pat.len()).position(|w| w == pat) {
            return Some(i);
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn handle(mut s: impl AsyncRead + AsyncWrite + Unpin, responder: Responder, log: Arc<Mutex<Vec<Received>>>) {
    let mut buf = Vec::new();
    let Some(end) = read_until(&mut s, &mut buf, b"\r\n\r\n").await else { return };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut rest = buf[end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or("");
    let mut parts = first.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let uri = parts.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let get = |n: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        while rest.len() < len {
            let mut chunk = [0u8; 4096];
            let Ok(n) = s.read(&mut chunk).await else { return };
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&chunk[..n]);
        }
        body = rest[..len.min(rest.len())].to_vec();
    } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let Some(i) = read_until(&mut s, &mut rest, b"\r\n").await else { break };
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..i]).trim(), 16).unwrap_or(0);
            rest.drain(..i + 2);
            while rest.len() < size + 2 {
                let mut chunk = [0u8; 4096];
                let Ok(n) = s.read(&mut chunk).await else { return };
                if n == 0 {
                    break;
                }
                rest.extend_from_slice(&chunk[..n]);
            }
            if size == 0 {
                break;
            }
            body.extend_from_slice(&rest[..size]);
            rest.drain(..size + 2);
        }
    }
    let req = Received { method, uri, headers, body };
    log.lock().unwrap().push(req.clone());
    let response = responder(&req).unwrap_or_else(|| {
        let msg = format!("{{\"message\":\"mock: no such request in the trace: {} {}\"}}\n", req.method, req.uri);
        format!("HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{msg}", msg.len()).into_bytes()
    });
    let _ = s.write_all(&response).await;
    let _ = s.flush().await;
    let _ = s.shutdown().await;
}

/// Runs the client in-process with captured output: (exit code, stdout, stderr).
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let (io, out, err) = berth_cli::io::Streams::captured();
    let mut e: std::collections::HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    // A private config dir, so a user's ~/.docker cannot leak in.
    let cfg = tempfile::tempdir().unwrap();
    e.entry("DOCKER_CONFIG".into()).or_insert_with(|| cfg.path().display().to_string());
    e.entry("HOME".into()).or_insert_with(|| cfg.path().display().to_string());
    let argv: Vec<std::ffi::OsString> = std::iter::once("berth").chain(args.iter().copied()).map(Into::into).collect();
    let code = berth_cli::run(argv, e, io);
    let o = String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
    let r = String::from_utf8_lossy(&err.lock().unwrap()).into_owned();
    (code, o, r)
}

/// The "METHOD URI" lines of a trace, in order.
pub fn trace_lines(name: &str) -> Vec<String> {
    exchanges(name).iter().map(|x| format!("{} {}", x.method, x.uri)).collect()
}
