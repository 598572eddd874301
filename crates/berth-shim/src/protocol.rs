//! The daemon ↔ shim protocol, over the shim's unix socket.
//!
//! Each connection starts with one JSON [`Request`] line from the daemon and one JSON
//! [`Response`] line from the shim. `Attach` and `Exec` connections then carry binary
//! frames both ways, with stdcopy's header: `[kind u8, 0, 0, 0, len u32 BE]` + payload.
//! Shim → daemon: kind 1 stdout, 2 stderr, then one kind 3 frame with an [`ExitStatus`]
//! JSON payload when the process has exited, after all of its output. Daemon → shim:
//! kind 0 stdin bytes; an empty kind 0 frame closes the process's stdin.

use serde::{Deserialize, Serialize};

pub const FRAME_STDIN: u8 = 0;
pub const FRAME_STDOUT: u8 = 1;
pub const FRAME_STDERR: u8 = 2;
pub const FRAME_EXIT: u8 = 3;
pub const HEADER_LEN: usize = 8;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Release the created container's init (runtime start).
    Start,
    /// Stream the container's output (and optionally feed its stdin).
    Attach { stdin: bool, stdout: bool, stderr: bool },
    /// Run a process in the container and stream it on this connection.
    Exec { exec_id: String, process: serde_json::Value, tty: bool, stdin: bool },
    /// Send a signal to the container's init (all = to every process).
    Kill { signal: i32, all: bool },
    /// Send a signal to an exec'd process.
    KillExec { exec_id: String, signal: i32 },
    /// Set the terminal size of the container (exec_id: None) or of an exec.
    Resize { exec_id: Option<String>, height: u16, width: u16 },
    /// Current state: init pid and, once known, its exit.
    State,
    /// Open the log file again at its path (it was renamed away to rotate it).
    ReopenLog,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// Init pid (State, Start) or exec pid (Exec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitStatus>,
}

impl Response {
    pub fn ok() -> Self {
        Response { ok: true, ..Default::default() }
    }

    pub fn err(msg: impl Into<String>) -> Self {
        Response { ok: false, error: msg.into(), ..Default::default() }
    }
}

/// How a process ended. Written by the shim to `exit.json` for the container init, so
/// that a daemon that was down when it happened still learns it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// The exit code, or 128 + signal number when killed by a signal.
    pub exit_code: i32,
    #[serde(default)]
    pub oom_killed: bool,
    /// RFC 3339 time of the exit.
    pub finished_at: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// What the shim writes on its ready pipe once the container is created (or failed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ready {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    #[serde(default)]
    pub pid: i32,
    /// Where the create's time went (`berth_runtime::phases`: the shim's setup, the
    /// runtime's plan, cgroup, clone, the init's own setup, ...), in ms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<(String, f64)>,
}

pub fn frame_header(kind: u8, len: usize) -> [u8; HEADER_LEN] {
    let n = (len as u32).to_be_bytes();
    [kind, 0, 0, 0, n[0], n[1], n[2], n[3]]
}

pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN + payload.len());
    v.extend_from_slice(&frame_header(kind, payload.len()));
    v.extend_from_slice(payload);
    v
}

/// Splits complete frames off the front of `buf`.
pub fn take_frame(buf: &mut Vec<u8>) -> Option<(u8, Vec<u8>)> {
    if buf.len() < HEADER_LEN {
        return None;
    }
    let len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
    if buf.len() < HEADER_LEN + len {
        return None;
    }
    let kind = buf[0];
    let payload = buf[HEADER_LEN..HEADER_LEN + len].to_vec();
    buf.drain(..HEADER_LEN + len);
    Some((kind, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_json() {
        let r = Request::Attach { stdin: true, stdout: true, stderr: false };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(s, r#"{"op":"attach","stdin":true,"stdout":true,"stderr":false}"#);
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), r);
        assert_eq!(serde_json::from_str::<Request>(r#"{"op":"start"}"#).unwrap(), Request::Start);
    }

    #[test]
    fn frames_split() {
        let mut b = frame(FRAME_STDOUT, b"abc");
        b.extend(frame(FRAME_STDIN, b""));
        b.push(9);
        assert_eq!(take_frame(&mut b), Some((FRAME_STDOUT, b"abc".to_vec())));
        assert_eq!(take_frame(&mut b), Some((FRAME_STDIN, vec![])));
        assert_eq!(take_frame(&mut b), None);
        assert_eq!(b, vec![9]);
    }
}
