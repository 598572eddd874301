//! `/ui/exec?id=CONTAINER&cmd=sh&rows=R&cols=C`: a shell in a running container, on a
//! WebSocket. The exec is made through the engine exactly as `docker exec -it` makes
//! it (a TTY, stdin open); binary messages are keystrokes one way and terminal output
//! the other, a text message `{"resize":[rows,cols]}` resizes the terminal. When the
//! process ends the socket closes with its exit code in the reason (`exit 0`).

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use berth_engine::Engine;
use berth_types::exec::ExecCreateRequest;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;

use crate::Ui;

#[derive(Debug, Deserialize)]
pub struct ExecQuery {
    id: String,
    #[serde(default)]
    cmd: Option<String>,
    #[serde(default)]
    rows: Option<u16>,
    #[serde(default)]
    cols: Option<u16>,
}

fn resize_of(text: &str) -> Option<(u16, u16)> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let r = v.get("resize")?.as_array()?;
    let rows = u16::try_from(r.first()?.as_u64()?).ok()?;
    let cols = u16::try_from(r.get(1)?.as_u64()?).ok()?;
    (rows > 0 && cols > 0).then_some((rows, cols))
}

pub async fn upgrade(State(ui): State<Arc<Ui>>, Query(q): Query<ExecQuery>, ws: WebSocketUpgrade) -> Response {
    let engine = ui.engine.clone();
    // `sh` unless told; a command line is split as a shell would not: words only.
    let cmd: Vec<String> = q.cmd.as_deref().unwrap_or("sh").split_whitespace().map(str::to_string).collect();
    if cmd.is_empty() {
        return berth_api::util::ApiError(berth_engine::Error::invalid("no command given")).into_response();
    }
    let req = ExecCreateRequest {
        attach_stdin: true,
        attach_stdout: true,
        attach_stderr: true,
        tty: true,
        cmd: Some(cmd),
        env: Some(vec!["TERM=xterm".into()]),
        console_size: q.rows.zip(q.cols).map(|(r, c)| [r as u32, c as u32]),
        ..Default::default()
    };
    // Errors (no such container, not running) are answered before the upgrade, with
    // the API's status and message.
    let exec_id = match engine.exec_create(&q.id, req).await {
        Ok(id) => id,
        Err(e) => return berth_api::util::ApiError(e).into_response(),
    };
    let size = q.rows.zip(q.cols);
    ws.on_upgrade(move |socket| bridge(engine, exec_id, size, socket))
}

async fn bridge(engine: Arc<Engine>, exec_id: String, size: Option<(u16, u16)>, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    let session = match engine.exec_prepare(&exec_id) {
        Ok(inst) => engine.exec_run(&inst).await,
        Err(e) => Err(e),
    };
    let session = match session {
        Ok(s) => s,
        Err(e) => {
            let _ = tx.send(Message::Close(Some(CloseFrame { code: 1011, reason: e.message.chars().take(120).collect::<String>().into() }))).await;
            return;
        }
    };
    if let Some((r, c)) = size {
        let _ = engine.exec_resize(&exec_id, r, c).await;
    }
    let (mut out, mut input) = session.split();
    // Frame reads are not cancel-safe: they run in their own task.
    let (ftx, mut frames) = tokio::sync::mpsc::channel::<bytes::Bytes>(32);
    let finisher = engine.clone();
    let reader = tokio::spawn(async move {
        // After the page goes the process may go on: drain it until it exits, so
        // that its exit is recorded.
        while let Some((_, data)) = out.next().await {
            let _ = ftx.send(data).await;
        }
        finisher.exec_finished(&out.instance);
        out.instance.clone()
    });
    loop {
        tokio::select! {
            f = frames.recv() => match f {
                Some(data) => {
                    if tx.send(Message::Binary(data)).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
            m = rx.next() => match m {
                Some(Ok(Message::Binary(b))) => {
                    if input.send(&b).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Text(t))) => {
                    if let Some((r, c)) = resize_of(t.as_str()) {
                        let _ = engine.exec_resize(&exec_id, r, c).await;
                    } else if input.send(t.as_bytes()).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    // The page went away: hang up the shell (its TTY sees EOF).
                    let _ = input.close().await;
                    return;
                }
                _ => {}
            },
        }
    }
    let code = match reader.await {
        Ok(inst) => inst.wait().await,
        Err(_) => -1,
    };
    let _ = tx.send(Message::Close(Some(CloseFrame { code: 1000, reason: format!("exit {code}").into() }))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_messages() {
        assert_eq!(resize_of(r#"{"resize":[24,80]}"#), Some((24, 80)));
        assert_eq!(resize_of(r#"{"resize":[0,80]}"#), None);
        assert_eq!(resize_of("ls\n"), None);
    }
}
