//! Hijacked connections (`Connection: Upgrade`, `Upgrade: tcp`) for attach and exec:
//! output as stdcopy frames (or raw with a TTY), stdin from the client, detach keys.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::Response;
use berth_engine::{Engine, ExecOutput, ExecInput, Output, StdinMsg};
use berth_types::stdcopy::{self, Stream};
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast;

use crate::util::{ApiError, invalid};

pub const RAW_STREAM: &str = "application/vnd.docker.raw-stream";
pub const MULTIPLEXED_STREAM: &str = "application/vnd.docker.multiplexed-stream";

pub fn wants_upgrade(req: &Request) -> bool {
    req.headers().get(header::UPGRADE).is_some()
}

/// The 101 answer; the connection is ours once hyper has sent it.
pub fn switching(content_type: &str) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type.parse().unwrap_or(header::HeaderValue::from_static(RAW_STREAM)));
    h.insert(header::CONNECTION, header::HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, header::HeaderValue::from_static("tcp"));
    r
}

/// Docker's detach keys: comma-separated `ctrl-<x>` or single characters.
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>, ApiError> {
    let s = if s.is_empty() { "ctrl-p,ctrl-q" } else { s };
    let mut out = Vec::new();
    for key in s.split(',') {
        if let Some(c) = key.strip_prefix("ctrl-") {
            let b = match c.as_bytes() {
                [x] if x.is_ascii_lowercase() => x - b'a' + 1,
                [b'@'] => 0,
                [b'['] => 27,
                [b'\\'] => 28,
                [b']'] => 29,
                [b'^'] => 30,
                [b'_'] => 31,
                _ => return Err(invalid(format!("Invalid detach keys ({s}) provided"))),
            };
            out.push(b);
        } else if key.len() == 1 {
            out.push(key.as_bytes()[0]);
        } else {
            return Err(invalid(format!("Invalid detach keys ({s}) provided")));
        }
    }
    Ok(out)
}

/// Finds the detach sequence in stdin, holding back a partial match.
pub struct DetachScanner {
    keys: Vec<u8>,
    matched: usize,
}

pub enum Scan {
    Forward(Vec<u8>),
    Detach(Vec<u8>),
}

impl DetachScanner {
    pub fn new(keys: Vec<u8>) -> Self {
        DetachScanner { keys, matched: 0 }
    }

    pub fn feed(&mut self, data: &[u8]) -> Scan {
        let mut out = Vec::with_capacity(data.len());
        for &b in data {
            if !self.keys.is_empty() && b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return Scan::Detach(out);
                }
                continue;
            }
            // A broken partial match goes through after all.
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if !self.keys.is_empty() && b == self.keys[0] {
                self.matched = 1;
                if self.keys.len() == 1 {
                    self.matched = 0;
                    return Scan::Detach(out);
                }
                continue;
            }
            out.push(b);
        }
        Scan::Forward(out)
    }
}

fn frame(tty: bool, stream: Stream, data: &[u8]) -> Bytes {
    if tty { Bytes::copy_from_slice(data) } else { Bytes::from(stdcopy::encode(stream, data)) }
}

pub struct AttachSpec {
    pub id: String,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub logs: bool,
    pub stream: bool,
    pub stdin_once: bool,
    pub detach_keys: Vec<u8>,
}

/// Runs an attach session on an upgraded connection.
pub async fn run_attach(engine: Arc<Engine>, spec: AttachSpec, mut out_rx: broadcast::Receiver<Output>, io: TokioIo<hyper::upgrade::Upgraded>) {
    let (mut rd, mut wr) = tokio::io::split(io);
    let c = match engine.container(&spec.id) {
        Ok(c) => c,
        Err(_) => return,
    };
    let (detach_tx, mut detach_rx) = tokio::sync::oneshot::channel::<()>();
    let stdin_task = if spec.stdin {
        let engine = engine.clone();
        let c = c.clone();
        let keys = spec.detach_keys.clone();
        let stdin_once = spec.stdin_once;
        Some(tokio::spawn(async move {
            let mut scanner = DetachScanner::new(keys);
            let mut buf = vec![0u8; 32 * 1024];
            let mut sender = None;
            loop {
                let n = match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        if stdin_once {
                            if sender.is_none() {
                                sender = engine.stdin_of(&c).await;
                            }
                            if let Some(s) = &sender {
                                let _ = s.send(StdinMsg::Close).await;
                            }
                        }
                        return;
                    }
                    Ok(n) => n,
                };
                let (data, detach) = match scanner.feed(&buf[..n]) {
                    Scan::Forward(d) => (d, false),
                    Scan::Detach(d) => (d, true),
                };
                if !data.is_empty() {
                    if sender.is_none() {
                        sender = engine.stdin_of(&c).await;
                    }
                    if let Some(s) = &sender
                        && s.send(StdinMsg::Data(Bytes::from(data))).await.is_err() {
                            sender = None;
                        }
                }
                if detach {
                    engine.emit_container(&c.snapshot(), "detach", &[]);
                    let _ = detach_tx.send(());
                    return;
                }
            }
        }))
    } else {
        drop(detach_tx);
        None
    };

    if spec.logs {
        let opts = berth_engine::LogOptions { stdout: spec.stdout, stderr: spec.stderr, stdcopy: true, ..Default::default() };
        if let Ok((_, mut lines)) = engine.logs(&spec.id, opts) {
            while let Some(l) = lines.recv().await {
                if wr.write_all(&l.data).await.is_err() {
                    return;
                }
            }
        }
    }
    if spec.stream {
        // The stdin task ends at EOF too; only a detach (Ok) ends the output.
        let mut watching_detach = spec.stdin;
        loop {
            let msg = tokio::select! {
                m = out_rx.recv() => m,
                d = &mut detach_rx, if watching_detach => {
                    if d.is_ok() {
                        break;
                    }
                    watching_detach = false;
                    continue;
                }
            };
            let (stream, data) = match msg {
                Ok(Output::Stdout(d)) => (Stream::Stdout, d),
                Ok(Output::Stderr(d)) => (Stream::Stderr, d),
                Ok(Output::End) | Err(broadcast::error::RecvError::Closed) => break,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
            };
            let wanted = if stream == Stream::Stderr { spec.stderr } else { spec.stdout };
            if !wanted {
                continue;
            }
            if wr.write_all(&frame(spec.tty, stream, &data)).await.is_err() {
                break;
            }
        }
    }
    let _ = wr.flush().await;
    let _ = wr.shutdown().await;
    if let Some(t) = stdin_task {
        t.abort();
    }
}

/// Runs an exec session on an upgraded connection.
pub async fn run_exec(engine: Arc<Engine>, tty: bool, stdin: bool, detach_keys: Vec<u8>, mut out: ExecOutput, mut input: ExecInput, io: TokioIo<hyper::upgrade::Upgraded>) {
    let (mut rd, mut wr) = tokio::io::split(io);
    let (detach_tx, mut detach_rx) = tokio::sync::oneshot::channel::<()>();
    let stdin_task = if stdin {
        Some(tokio::spawn(async move {
            let mut scanner = DetachScanner::new(detach_keys);
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                let n = match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = input.close().await;
                        return;
                    }
                    Ok(n) => n,
                };
                match scanner.feed(&buf[..n]) {
                    Scan::Forward(d) => {
                        if !d.is_empty() && input.send(&d).await.is_err() {
                            return;
                        }
                    }
                    Scan::Detach(d) => {
                        if !d.is_empty() {
                            let _ = input.send(&d).await;
                        }
                        let _ = detach_tx.send(());
                        return;
                    }
                }
            }
        }))
    } else {
        drop(detach_tx);
        None
    };
    // Frame reads are not cancel-safe: read them in their own task.
    // After a detach the process goes on: keep draining its output (dropped) until
    // it exits, so that its exit is recorded.
    let (ftx, mut frames) = tokio::sync::mpsc::channel(16);
    let finisher = engine.clone();
    let reader = tokio::spawn(async move {
        while let Some(f) = out.next().await {
            let _ = ftx.send(f).await;
        }
        finisher.exec_finished(&out.instance);
    });
    let mut detached = false;
    let mut watching_detach = stdin;
    loop {
        let next = tokio::select! {
            f = frames.recv() => f,
            d = &mut detach_rx, if watching_detach => {
                if d.is_ok() {
                    detached = true;
                    break;
                }
                watching_detach = false;
                continue;
            }
        };
        let Some((kind, data)) = next else { break };
        let stream = if kind == 2 { Stream::Stderr } else { Stream::Stdout };
        if wr.write_all(&frame(tty, stream, &data)).await.is_err() {
            break;
        }
    }
    if !detached {
        // The exit is recorded before the client sees the end (it inspects next).
        let _ = reader.await;
    }
    let _ = wr.flush().await;
    let _ = wr.shutdown().await;
    if let Some(t) = stdin_task {
        t.abort();
    }
}

/// An error that happens after the hijack goes into the stream, as dockerd does.
pub async fn write_error(tty: bool, msg: &str, io: TokioIo<hyper::upgrade::Upgraded>) {
    let (_, mut wr) = tokio::io::split(io);
    let text = format!("{msg}\r\n");
    let _ = wr.write_all(&frame(tty, Stream::Stdout, text.as_bytes())).await;
    let _ = wr.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys() {
        assert_eq!(parse_detach_keys("").unwrap_or_default(), vec![16, 17]);
        assert_eq!(parse_detach_keys("ctrl-a,x").unwrap_or_default(), vec![1, b'x']);
        assert!(parse_detach_keys("ctrl-ab").is_err());
        let mut s = DetachScanner::new(vec![16, 17]);
        match s.feed(&[b'a', 16]) {
            Scan::Forward(d) => assert_eq!(d, b"a"),
            Scan::Detach(_) => panic!(),
        }
        match s.feed(b"b") {
            Scan::Forward(d) => assert_eq!(d, vec![16, b'b']),
            Scan::Detach(_) => panic!(),
        }
        match s.feed(&[b'c', 16, 17, b'z']) {
            Scan::Detach(d) => assert_eq!(d, b"c"),
            Scan::Forward(_) => panic!(),
        }
    }
}
