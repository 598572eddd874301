//! The remotecommand protocol (exec and attach) as the kubelet serves it: the client's
//! stdin, the process's stdout and stderr, terminal resizes (JSON `{"Width","Height"}`
//! objects), and at the end one status on the error channel — a Kubernetes `Status` in
//! v4 and later (`NonZeroExitCode` with the code as its cause), plain text before.
//!
//! [`run`] does the work over transport-neutral channels; `serve_spdy` and the WebSocket
//! side only map them onto streams or channel bytes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use berth_engine::{Engine, Output, StdinMsg};
use berth_types::exec::ExecCreateRequest;
use bytes::Bytes;
use tokio::sync::mpsc;

use super::Session;
use super::spdy::{IncomingStream, Writer};

/// Over SPDY, in the order berth prefers them.
pub const SPDY_PROTOCOLS: &[&str] = &["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"];

/// How long the client may take to open the streams it asked for (the kubelet's).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// How the command ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Exit(i64),
    Error(String),
}

/// What the command produces, for the transport to send.
#[derive(Debug)]
pub enum Out {
    Stdout(Bytes),
    Stderr(Bytes),
    Done(Outcome),
}

/// The client's side: stdin (None or closed: no more input) and resize events (raw
/// bytes of a JSON object stream).
pub struct Input {
    pub stdin: Option<mpsc::Receiver<Bytes>>,
    pub resize: Option<mpsc::Receiver<Bytes>>,
}

/// The status the error channel carries at the end, in the protocol's version.
pub fn status_message(outcome: &Outcome, cmd: &[String], v4: bool) -> Option<String> {
    match (outcome, v4) {
        (Outcome::Exit(0), true) => Some(r#"{"metadata":{},"status":"Success"}"#.to_string()),
        (Outcome::Exit(0), false) => None,
        (Outcome::Exit(code), true) => Some(
            serde_json::json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("command terminated with non-zero exit code: error executing command {cmd:?}, exit code {code}"),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
            })
            .to_string(),
        ),
        (Outcome::Exit(code), false) => Some(format!("command terminated with non-zero exit code: error executing command {cmd:?}, exit code {code}")),
        (Outcome::Error(msg), true) => Some(
            serde_json::json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("Internal error occurred: {msg}"),
                "reason": "InternalError",
                "details": {"causes": [{"message": msg}]},
                "code": 500,
            })
            .to_string(),
        ),
        (Outcome::Error(msg), false) => Some(msg.clone()),
    }
}

/// Splits a byte stream of concatenated JSON objects into terminal sizes (rows, cols).
#[derive(Default)]
pub struct ResizeParser {
    buf: Vec<u8>,
}

impl ResizeParser {
    pub fn push(&mut self, data: &[u8]) -> Vec<(u16, u16)> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<serde_json::Value>();
        let mut used = 0;
        while let Some(Ok(v)) = it.next() {
            used = it.byte_offset();
            let w = v.get("Width").or_else(|| v.get("width")).and_then(|x| x.as_u64()).unwrap_or(0);
            let h = v.get("Height").or_else(|| v.get("height")).and_then(|x| x.as_u64()).unwrap_or(0);
            if w > 0 && h > 0 {
                out.push((h.min(u16::MAX as u64) as u16, w.min(u16::MAX as u64) as u16));
            }
        }
        self.buf.drain(..used);
        out
    }
}

/// Runs the session's command (or attaches) until it ends, feeding `out`.
pub async fn run(engine: Arc<Engine>, session: Session, input: Input, out: mpsc::Sender<Out>) {
    let outcome = match session {
        Session::Exec { container_id, cmd, tty, stdin, stdout, stderr } => exec(&engine, &container_id, cmd, tty, stdin, stdout, stderr, input, &out).await,
        Session::Attach { container_id, tty, stdout, stderr, .. } => attach(&engine, &container_id, tty, stdout, stderr, input, &out).await,
        Session::PortForward { .. } => Outcome::Error("not a remotecommand session".into()),
    };
    let _ = out.send(Out::Done(outcome)).await;
}

#[allow(clippy::too_many_arguments)]
async fn exec(engine: &Arc<Engine>, id: &str, cmd: Vec<String>, tty: bool, stdin: bool, stdout: bool, stderr: bool, input: Input, out: &mpsc::Sender<Out>) -> Outcome {
    let req = ExecCreateRequest { cmd: Some(cmd), tty, attach_stdin: stdin, attach_stdout: stdout, attach_stderr: stderr, ..Default::default() };
    let exec_id = match engine.exec_create(id, req).await {
        Ok(x) => x,
        Err(e) => return Outcome::Error(e.message),
    };
    let inst = match engine.exec_prepare(&exec_id) {
        Ok(i) => i,
        Err(e) => return Outcome::Error(e.message),
    };
    let session = match engine.exec_run(&inst).await {
        Ok(s) => s,
        Err(e) => {
            engine.exec_forget(&exec_id);
            return Outcome::Error(e.message);
        }
    };
    let (mut output, mut stdin_w) = session.split();
    let Input { stdin: stdin_rx, resize } = input;
    let pump = tokio::spawn(async move {
        if let Some(mut rx) = stdin_rx {
            while let Some(d) = rx.recv().await {
                if stdin_w.send(&d).await.is_err() {
                    return;
                }
            }
        }
        let _ = stdin_w.close().await;
    });
    let resizer = resize.map(|mut rx| {
        let engine = engine.clone();
        let exec_id = exec_id.clone();
        tokio::spawn(async move {
            let mut p = ResizeParser::default();
            while let Some(d) = rx.recv().await {
                for (h, w) in p.push(&d) {
                    let _ = engine.exec_resize(&exec_id, h, w).await;
                }
            }
        })
    });
    while let Some((stream, data)) = output.next().await {
        let o = if stream == 2 && !tty { Out::Stderr(data) } else { Out::Stdout(data) };
        if out.send(o).await.is_err() {
            // The client is gone: the command does not outlive its connection.
            let _ = engine.exec_kill(&exec_id, libc::SIGKILL).await;
            break;
        }
    }
    let code = inst.wait().await;
    pump.abort();
    if let Some(r) = resizer {
        r.abort();
    }
    engine.exec_forget(&exec_id);
    Outcome::Exit(code)
}

async fn attach(engine: &Arc<Engine>, id: &str, tty: bool, stdout: bool, stderr: bool, input: Input, out: &mpsc::Sender<Out>) -> Outcome {
    let (c, mut rx) = match engine.attach_output(id) {
        Ok(x) => x,
        Err(e) => return Outcome::Error(e.message),
    };
    if !c.status().is_alive() {
        return Outcome::Exit(0);
    }
    let Input { stdin: stdin_rx, resize } = input;
    let stdin_once = c.with(|r| r.config.stdin_once);
    let pump = match (stdin_rx, engine.stdin_of(&c).await) {
        (Some(mut rx), Some(tx)) => Some(tokio::spawn(async move {
            while let Some(d) = rx.recv().await {
                if tx.send(StdinMsg::Data(d)).await.is_err() {
                    return;
                }
            }
            if stdin_once {
                let _ = tx.send(StdinMsg::Close).await;
            }
        })),
        _ => None,
    };
    let resizer = resize.map(|mut rx| {
        let engine = engine.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            let mut p = ResizeParser::default();
            while let Some(d) = rx.recv().await {
                for (h, w) in p.push(&d) {
                    let _ = engine.resize_container(&id, h, w).await;
                }
            }
        })
    });
    loop {
        let o = match rx.recv().await {
            Ok(Output::Stdout(d)) if stdout || tty => Out::Stdout(d),
            Ok(Output::Stderr(d)) if tty && stdout => Out::Stdout(d),
            Ok(Output::Stderr(d)) if stderr => Out::Stderr(d),
            Ok(Output::End) | Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
        };
        if out.send(o).await.is_err() {
            break;
        }
    }
    if let Some(p) = pump {
        p.abort();
    }
    if let Some(r) = resizer {
        r.abort();
    }
    Outcome::Exit(0)
}

/// The command line of a session (for the status message).
fn session_cmd(s: &Session) -> Vec<String> {
    match s {
        Session::Exec { cmd, .. } => cmd.clone(),
        _ => Vec::new(),
    }
}

/// Exec or attach over SPDY: waits for the streams the request implies (error always;
/// stdin, stdout, stderr as asked; resize with a terminal), answers each, then runs.
pub async fn serve_spdy<W>(engine: Arc<Engine>, session: Session, proto: &str, writer: Arc<Writer<W>>, mut incoming: mpsc::Receiver<IncomingStream>)
where
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (want_stdin, want_stdout, want_stderr, tty) = match &session {
        Session::Exec { stdin, stdout, stderr, tty, .. } | Session::Attach { stdin, stdout, stderr, tty, .. } => (*stdin, *stdout, *stderr, *tty),
        Session::PortForward { .. } => return,
    };
    let mut expected: Vec<&str> = vec!["error"];
    if want_stdin {
        expected.push("stdin");
    }
    if want_stdout {
        expected.push("stdout");
    }
    if want_stderr && !tty {
        expected.push("stderr");
    }
    let mut streams: HashMap<String, IncomingStream> = HashMap::new();
    let deadline = tokio::time::Instant::now() + STREAM_CREATION_TIMEOUT;
    while !expected.iter().all(|k| streams.contains_key(*k)) {
        let s = match tokio::time::timeout_at(deadline, incoming.recv()).await {
            Ok(Some(s)) => s,
            // Timed out, or the client hung up, before opening its streams.
            _ => return,
        };
        if writer.reply(s.id, &Vec::new(), false).await.is_err() {
            return;
        }
        let kind = s.header("streamtype").unwrap_or("").to_ascii_lowercase();
        streams.insert(kind, s);
    }
    // Streams opened later (a resize stream, say) are answered and used if they are.
    let late_resize: Option<mpsc::Receiver<Bytes>> = if tty && !streams.contains_key("resize") {
        let (tx, rx) = mpsc::channel(8);
        let w = writer.clone();
        tokio::spawn(async move {
            let mut tx = Some(tx);
            while let Some(mut s) = incoming.recv().await {
                let _ = w.reply(s.id, &Vec::new(), false).await;
                if s.header("streamtype").is_some_and(|k| k.eq_ignore_ascii_case("resize"))
                    && let Some(tx) = tx.take()
                {
                    tokio::spawn(async move {
                        while let Some(d) = s.data.recv().await {
                            if tx.send(d).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        Some(rx)
    } else {
        let w = writer.clone();
        tokio::spawn(async move {
            while let Some(s) = incoming.recv().await {
                let _ = w.reply(s.id, &Vec::new(), false).await;
            }
        });
        None
    };
    let id_of = |k: &str| streams.get(k).map(|s| s.id);
    let (err_id, out_id, errout_id) = (id_of("error"), id_of("stdout"), id_of("stderr"));
    let input = Input {
        stdin: streams.remove("stdin").map(|s| s.data),
        resize: streams.remove("resize").map(|s| s.data).or(late_resize),
    };
    let cmd = session_cmd(&session);
    let (tx, mut rx) = mpsc::channel(32);
    tokio::spawn(run(engine, session, input, tx));
    let v4 = proto.starts_with("v4.") || proto.starts_with("v5.");
    while let Some(o) = rx.recv().await {
        tracing::debug!("remotecommand: {o:?}");
        let sent = match o {
            Out::Stdout(d) => match out_id {
                Some(id) => writer.data(id, &d, false).await,
                None => Ok(()),
            },
            Out::Stderr(d) => match errout_id.or(out_id) {
                Some(id) => writer.data(id, &d, false).await,
                None => Ok(()),
            },
            Out::Done(outcome) => {
                for id in [out_id, errout_id].into_iter().flatten() {
                    let _ = writer.data(id, &[], true).await;
                }
                if let Some(id) = err_id {
                    let msg = status_message(&outcome, &cmd, v4).unwrap_or_default();
                    let _ = writer.data(id, msg.as_bytes(), true).await;
                }
                let _ = writer.go_away(0).await;
                return;
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_by_version() {
        let cmd = vec!["sh".to_string(), "-c".to_string(), "exit 3".to_string()];
        assert_eq!(status_message(&Outcome::Exit(0), &cmd, true).unwrap(), r#"{"metadata":{},"status":"Success"}"#);
        assert_eq!(status_message(&Outcome::Exit(0), &cmd, false), None);
        let v: serde_json::Value = serde_json::from_str(&status_message(&Outcome::Exit(3), &cmd, true).unwrap()).unwrap();
        assert_eq!(v["reason"], "NonZeroExitCode");
        assert_eq!(v["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(v["details"]["causes"][0]["message"], "3");
        let v: serde_json::Value = serde_json::from_str(&status_message(&Outcome::Error("boom".into()), &cmd, true).unwrap()).unwrap();
        assert_eq!(v["status"], "Failure");
        assert!(status_message(&Outcome::Exit(2), &cmd, false).unwrap().contains("exit code 2"));
    }

    #[test]
    fn resize_objects_may_arrive_in_pieces() {
        let mut p = ResizeParser::default();
        assert_eq!(p.push(br#"{"Width":80,"Hei"#), vec![]);
        assert_eq!(p.push(br#"ght":24}{"Width":100,"Height":40}"#), vec![(24, 80), (40, 100)]);
        assert_eq!(p.push(br#"{"Width":0,"Height":0}"#), vec![]);
    }
}
