//! Details clients rely on, each as dockerd behaves (issue 18): the exec framing is
//! decided by the start request's Tty, a container its restart policy is restarting
//! cannot be removed without force.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use berth_testutil::daemon::{TestDaemon, run_ok};

fn daemon() -> TestDaemon {
    let d = TestDaemon::start(Path::new(env!("CARGO_BIN_EXE_berth")));
    d.busybox_image("busybox:latest");
    d
}

/// A raw HTTP/1.1 exchange; returns (status, headers, body bytes, de-chunked).
fn http(d: &TestDaemon, method: &str, path: &str, body: &str) -> (u16, String, Vec<u8>) {
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: berth\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let status = head[9..12].parse().unwrap();
    let mut body = out[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        let mut plain = Vec::new();
        let mut rest = &body[..];
        loop {
            let Some(nl) = rest.windows(2).position(|w| w == b"\r\n") else { break };
            let n = usize::from_str_radix(String::from_utf8_lossy(&rest[..nl]).trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            plain.extend_from_slice(&rest[nl + 2..nl + 2 + n]);
            rest = &rest[nl + 2 + n + 2..];
        }
        body = plain;
    }
    (status, head, body)
}

#[test]
fn exec_framing_follows_the_start_requests_tty() {
    let d = daemon();
    let id = run_ok(d.docker().args(["run", "-d", "busybox", "sleep", "300"])).trim().to_string();
    for create_tty in [false, true] {
        for start_tty in [false, true] {
            let (st, _, body) = http(&d, "POST", &format!("/v1.51/containers/{id}/exec"), &format!(r#"{{"Cmd":["echo","hello"],"AttachStdout":true,"AttachStderr":true,"Tty":{create_tty}}}"#));
            assert_eq!(st, 201);
            let exec: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let eid = exec["Id"].as_str().unwrap();
            let (st, head, out) = http(&d, "POST", &format!("/v1.51/exec/{eid}/start"), &format!(r#"{{"Detach":false,"Tty":{start_tty}}}"#));
            assert_eq!(st, 200, "create {create_tty} start {start_tty}");
            // A process with a terminal writes CRLF; without one, LF.
            let line: &[u8] = if create_tty { b"hello\r\n" } else { b"hello\n" };
            if start_tty {
                assert!(head.contains("application/vnd.docker.raw-stream"), "{head}");
                assert_eq!(out, line, "create {create_tty} start {start_tty}");
            } else {
                assert!(head.contains("application/vnd.docker.multiplexed-stream"), "{head}");
                let mut want = vec![1u8, 0, 0, 0, 0, 0, 0, line.len() as u8];
                want.extend_from_slice(line);
                assert_eq!(out, want, "create {create_tty} start {start_tty}");
            }
        }
    }
}

#[test]
fn a_restarting_container_needs_force_to_be_removed() {
    let d = daemon();
    let id = run_ok(d.docker().args(["run", "-d", "--restart", "always", "busybox", "sh", "-c", "sleep 0.2; exit 1"])).trim().to_string();
    // Within a few restarts the back-off keeps it in `restarting` for a while.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let st = run_ok(d.docker().args(["inspect", "-f", "{{.State.Status}}", &id]));
        if st.trim() == "restarting" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never restarting");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (st, _, body) = http(&d, "DELETE", &format!("/v1.51/containers/{id}"), "");
    // Either it is still restarting (refused) or it already runs again (refused too).
    assert_eq!(st, 409, "{}", String::from_utf8_lossy(&body));
    let msg = String::from_utf8_lossy(&body);
    assert!(msg.contains("container is restarting") || msg.contains("container is running"), "{msg}");
    run_ok(d.docker().args(["rm", "-f", &id]));
    assert_eq!(run_ok(d.docker().args(["ps", "-aq"])).trim(), "");
}
