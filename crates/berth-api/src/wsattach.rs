//! An attach session on a WebSocket (`/containers/{id}/attach/ws`): the container's
//! output as messages, messages as its stdin, the detach keys ending the session.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use berth_engine::{Engine, Output, StdinMsg};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::broadcast;

use crate::hijack::{AttachSpec, DetachScanner, Scan};

fn message(binary: bool, data: Bytes) -> Message {
    if binary { Message::Binary(data) } else { Message::Text(String::from_utf8_lossy(&data).into_owned().into()) }
}

pub async fn run(engine: Arc<Engine>, spec: AttachSpec, mut out_rx: broadcast::Receiver<Output>, socket: WebSocket, binary: bool) {
    let Ok(c) = engine.container(&spec.id) else { return };
    let (mut tx, mut rx) = socket.split();
    if spec.logs {
        let opts = berth_engine::LogOptions { stdout: spec.stdout, stderr: spec.stderr, ..Default::default() };
        if let Ok((_, mut lines)) = engine.logs(&spec.id, opts) {
            while let Some(l) = lines.recv().await {
                if tx.send(message(binary, l.data)).await.is_err() {
                    return;
                }
            }
        }
    }
    if !spec.stream {
        let _ = tx.send(Message::Close(None)).await;
        return;
    }
    let mut scanner = DetachScanner::new(spec.detach_keys.clone());
    let mut stdin: Option<tokio::sync::mpsc::Sender<StdinMsg>> = None;
    let mut reading = spec.stdin;
    loop {
        tokio::select! {
            m = rx.next(), if reading => {
                let data = match m {
                    Some(Ok(Message::Binary(b))) => b,
                    Some(Ok(Message::Text(t))) => Bytes::copy_from_slice(t.as_bytes()),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        // The client is gone: its EOF closes stdin only for StdinOnce.
                        if spec.stdin_once {
                            if stdin.is_none() {
                                stdin = engine.stdin_of(&c).await;
                            }
                            if let Some(s) = &stdin {
                                let _ = s.send(StdinMsg::Close).await;
                            }
                        }
                        reading = false;
                        continue;
                    }
                    Some(Ok(_)) => continue,
                };
                let (fwd, detach) = match scanner.feed(&data) {
                    Scan::Forward(d) => (d, false),
                    Scan::Detach(d) => (d, true),
                };
                if !fwd.is_empty() {
                    if stdin.is_none() {
                        stdin = engine.stdin_of(&c).await;
                    }
                    if let Some(s) = &stdin
                        && s.send(StdinMsg::Data(Bytes::from(fwd))).await.is_err() {
                            stdin = None;
                        }
                }
                if detach {
                    engine.emit_container(&c.snapshot(), "detach", &[]);
                    break;
                }
            }
            o = out_rx.recv() => {
                let data = match o {
                    Ok(Output::Stdout(d)) if spec.stdout => d,
                    Ok(Output::Stderr(d)) if spec.stderr => d,
                    Ok(Output::End) | Err(broadcast::error::RecvError::Closed) => break,
                    _ => continue,
                };
                if tx.send(message(binary, data)).await.is_err() {
                    return;
                }
            }
        }
    }
    let _ = tx.send(Message::Close(None)).await;
}
