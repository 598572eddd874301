//! Attach over a WebSocket (`/containers/{id}/attach/ws`) — a round trip, streams as
//! the API version says, frames, detach keys, errors — and the real docker CLI's
//! `docker attach` detach keys on a terminal.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use berth_testutil::daemon::{TestDaemon, run_ok};
use berth_testutil::pty::Pty;
use berth_testutil::ws::{Frame, WsClient};

fn daemon() -> TestDaemon {
    let d = TestDaemon::start(Path::new(env!("CARGO_BIN_EXE_berth")));
    d.busybox_image("busybox:latest");
    d
}

fn ws(d: &TestDaemon, path: &str) -> Result<WsClient<UnixStream>, (u16, String)> {
    let s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    WsClient::connect(s, "localhost", path, &[])
}

fn inspect(d: &TestDaemon, f: &str, name: &str) -> String {
    run_ok(d.docker().args(["inspect", "-f", f, name])).trim().to_string()
}

#[test]
fn websocket_attach_round_trip() {
    let d = daemon();
    run_ok(d.docker().args(["run", "-di", "--name", "echo", "busybox", "sh", "-c", "while read l; do echo \"out $l\"; echo \"err $l\" >&2; done"]));
    // Binary frames (API ≥ 1.28); stdin in, output back, raw (no stdcopy headers).
    let mut c = ws(&d, "/v1.51/containers/echo/attach/ws?stream=1&stdin=1&stdout=1&stderr=1").unwrap();
    c.send_binary(b"one\n");
    let got = c.read_until("err one");
    assert!(got.contains("out one\n") && got.contains("err one\n"), "{got:?}");
    assert!(!got.as_bytes().contains(&0u8), "no stdcopy framing: {got:?}");
    c.close();
    // Only stdout when only stdout is asked (1.42+)...
    let mut c = ws(&d, "/v1.51/containers/echo/attach/ws?stream=1&stdin=1&stdout=1").unwrap();
    c.send_text("two\n");
    let got = c.read_until("out two");
    std::thread::sleep(Duration::from_millis(300));
    c.send_text("three\n");
    let got = got + &c.read_until("out three");
    assert!(!got.contains("err "), "{got:?}");
    c.close();
    // ...but every stream before 1.42, and text frames before 1.28.
    let mut c = ws(&d, "/v1.27/containers/echo/attach/ws?stream=1&stdout=1").unwrap();
    c.send_text("four\n");
    let mut got = String::new();
    while !got.contains("err four") {
        match c.next() {
            Some(Frame::Text(t)) => got.push_str(&t),
            other => panic!("expected text frames, got {other:?} after {got:?}"),
        }
    }
    c.close();
    // The detach keys end the session and leave the container running.
    let mut c = ws(&d, "/v1.51/containers/echo/attach/ws?stream=1&stdin=1&stdout=1&detachKeys=ctrl-x,y").unwrap();
    c.send_binary(b"five\n");
    assert!(c.read_until("out five").contains("out five"));
    c.send_binary(&[24, b'y']);
    assert!(matches!(c.next(), Some(Frame::Close(..)) | None), "the session ends");
    assert_eq!(inspect(&d, "{{.State.Running}}", "echo"), "true");
    // (The API rather than `docker events --until`: the docker CLI sends whole seconds,
    // which would leave out this second's events.)
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut s = UnixStream::connect(&d.socket).unwrap();
    let req = format!("GET /events?since={}&until={}&filters=%7B%22event%22%3A%5B%22detach%22%5D%7D HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", now - 300, now + 1);
    std::io::Write::write_all(&mut s, req.as_bytes()).unwrap();
    let events = berth_testutil::http::read_response(&mut s).unwrap().text();
    assert!(events.contains("\"Action\":\"detach\""), "{events:?}");
    // Errors are answered before the upgrade, with Docker's codes.
    assert_eq!(ws(&d, "/containers/nosuch/attach/ws?stream=1").err().map(|e| e.0), Some(404));
    let (code, body) = ws(&d, "/containers/echo/attach/ws?detachKeys=ctrl-ab").err().unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("Invalid detach keys"), "{body}");
    let mut s = UnixStream::connect(&d.socket).unwrap();
    std::io::Write::write_all(&mut s, b"GET /containers/echo/attach/ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!(berth_testutil::http::read_response(&mut s).unwrap().status, 400);
    // With logs=1 the past output comes first.
    let mut c = ws(&d, "/containers/echo/attach/ws?logs=1&stream=1&stdout=1").unwrap();
    let got = c.read_until("out five");
    assert!(got.contains("out one"), "{got:?}");
    c.close();
}

#[test]
fn docker_attach_detach_keys_leave_the_container_running() {
    let d = daemon();
    run_ok(d.docker().args(["run", "-dit", "--name", "att", "busybox", "sh"]));
    for (flag, keys) in [(Some("ctrl-x,y"), vec![24u8, b'y']), (None, vec![16u8, 17])] {
        let mut c = d.docker();
        c.arg("attach");
        if let Some(f) = flag {
            c.args(["--detach-keys", f]);
        }
        c.arg("att");
        let mut pty = Pty::spawn(c, 24, 80);
        std::thread::sleep(Duration::from_millis(300));
        pty.type_keys(b"echo a-$((40+2))\r");
        assert!(pty.wait_output("a-42"), "{:?}\n{}", pty.text(), d.log());
        pty.type_keys(&keys);
        // The docker CLI sees the keys itself and ends as it does against dockerd.
        let code = pty.wait_exit();
        assert!(pty.text().contains("read escape sequence") && (code == 0 || code == 1), "{code} {:?}", pty.text());
        assert_eq!(inspect(&d, "{{.State.Running}}", "att"), "true", "detaching leaves it running");
    }
    // And it still answers.
    let mut c = d.docker();
    c.args(["attach", "att"]);
    let mut pty = Pty::spawn(c, 24, 80);
    std::thread::sleep(Duration::from_millis(300));
    pty.type_keys(b"exit 3\r");
    assert_eq!(pty.wait_exit(), 3);
}
