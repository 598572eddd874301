//! `berth run -it` driven through a real pseudo-terminal against a small mock daemon:
//! raw mode (keys reach the container one by one, no local echo), the TTY size sent
//! at create and on every window change (SIGWINCH → resize), the detach keys, signal
//! forwarding, and the container's exit code.

use berth_testutil::pty::Pty;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ID: &str = "4f9dbf1cb169ad94b5e7fc5cad4c3f6e8c63ac9c7921ab644473e498c30e694f";

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<(String, Vec<u8>)>>>);

impl Log {
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().iter().map(|(l, _)| l.clone()).collect()
    }
    fn body(&self, prefix: &str) -> Option<Vec<u8>> {
        self.0.lock().unwrap().iter().find(|(l, _)| l.starts_with(prefix)).map(|(_, b)| b.clone())
    }
    fn wait_for(&self, what: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.lines().iter().any(|l| l.contains(what)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

/// A daemon whose one container is a TTY that echoes input upper-cased, exits with
/// status 3 when it reads "exit\r", and records every request (with bodies).
struct MockDaemon {
    _dir: tempfile::TempDir,
    host: String,
    log: Log,
    /// What reached the container's stdin over the attach connection.
    stdin: Arc<Mutex<Vec<u8>>>,
    /// While set, the first resize is answered only when this sender is dropped.
    hold_first_resize: Arc<Mutex<Option<Receiver<()>>>>,
}

fn read_request(s: &mut UnixStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let line = head.lines().next()?.rsplit_once(' ')?.0.to_string();
    let len = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0)))
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some((line, body))
}

fn start_mock() -> MockDaemon {
    let dir = tempfile::Builder::new().prefix("bpt").tempdir_in("/tmp").unwrap();
    let sock = dir.path().join("d.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let log = Log::default();
    let stdin: Arc<Mutex<Vec<u8>>> = Arc::default();
    let (exit_tx, exit_rx): (Sender<i32>, Receiver<i32>) = channel();
    let exit_rx = Arc::new(Mutex::new(exit_rx));
    let hold_first_resize: Arc<Mutex<Option<Receiver<()>>>> = Arc::default();
    let (log2, stdin2, hold2) = (log.clone(), stdin.clone(), hold_first_resize.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { break };
            let (log, stdin, exit_tx, exit_rx, hold) = (log2.clone(), stdin2.clone(), exit_tx.clone(), exit_rx.clone(), hold2.clone());
            std::thread::spawn(move || {
                let Some((line, body)) = read_request(&mut s) else { return };
                log.0.lock().unwrap().push((line.clone(), body));
                let ok = |s: &mut UnixStream, status: &str, body: &str| {
                    let _ = write!(s, "HTTP/1.1 {status}\r\nApi-Version: 1.51\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                };
                if line.starts_with("HEAD /_ping") {
                    ok(&mut s, "200 OK", "");
                } else if line.contains("/containers/create") {
                    ok(&mut s, "201 Created", &format!("{{\"Id\":\"{ID}\",\"Warnings\":[]}}"));
                } else if line.contains("/attach") {
                    let _ = s.write_all(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n");
                    let mut buf = [0u8; 1024];
                    loop {
                        let n = match s.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let mut all = stdin.lock().unwrap();
                        all.extend_from_slice(&buf[..n]);
                        if all.ends_with(b"exit\r") {
                            let _ = exit_tx.send(3);
                            break;
                        }
                        let _ = s.write_all(&buf[..n].to_ascii_uppercase());
                    }
                } else if line.contains("/wait") {
                    // Headers at once (the daemon has the waiter), the status at exit.
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nApi-Version: 1.51\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
                    let _ = s.flush();
                    if let Ok(code) = exit_rx.lock().unwrap().recv_timeout(Duration::from_secs(30)) {
                        let body = format!("{{\"Error\":null,\"StatusCode\":{code}}}\n");
                        let _ = write!(s, "{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
                    }
                } else if line.contains("/kill") {
                    ok(&mut s, "204 No Content", "");
                    // SIGTERM forwarded: the container "dies" of it.
                    let _ = exit_tx.send(143);
                } else {
                    if line.contains("/resize") {
                        let held = hold.lock().unwrap().take();
                        if let Some(rx) = held {
                            let _ = rx.recv_timeout(Duration::from_secs(20));
                        }
                    }
                    ok(&mut s, "204 No Content", "");
                }
            });
        }
    });
    MockDaemon { host: format!("unix://{}", sock.display()), _dir: dir, log, stdin, hold_first_resize }
}

/// Starts `berth args` with a new pty as its controlling terminal and stdio.
fn spawn_in_pty(args: &[&str], rows: u16, cols: u16) -> Pty {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.args(args).env("DOCKER_CONFIG", "/nonexistent-berth-test-config");
    Pty::spawn(cmd, rows, cols)
}

#[test]
fn run_it_is_raw_sized_and_returns_the_exit_code() {
    let mock = start_mock();
    let mut pty = spawn_in_pty(&["-H", &mock.host, "run", "-it", "--rm", "busybox", "sh"], 30, 100);
    assert!(mock.log.wait_for("/resize", Duration::from_secs(10)), "no resize: {:?}", mock.log.lines());
    let create: serde_json::Value = serde_json::from_slice(&mock.log.body("POST /v1.51/containers/create").unwrap()).unwrap();
    assert_eq!(create["Tty"], true);
    assert_eq!(create["OpenStdin"], true);
    assert_eq!(create["AttachStdin"], true);
    assert_eq!(create["StdinOnce"], true);
    assert_eq!(create["HostConfig"]["ConsoleSize"], serde_json::json!([30, 100]));
    assert!(mock.log.lines().iter().any(|l| l.ends_with("/resize?h=30&w=100")), "{:?}", mock.log.lines());

    // Raw mode: each key goes through at once and our terminal does not echo it; what
    // shows is the container's (upper-cased) echo.
    pty.type_keys(b"hello");
    assert!(pty.wait_output("HELLO"), "output: {:?}", pty.text());
    assert!(!pty.text().contains("hello"), "local echo means the terminal is not raw: {:?}", pty.text());

    // A window change reaches the container as a resize.
    pty.resize(40, 120);
    assert!(mock.log.wait_for("/resize?h=40&w=120", Duration::from_secs(10)), "{:?}", mock.log.lines());

    pty.type_keys(b"exit\r");
    assert_eq!(pty.wait_exit(), 3);
    let order: Vec<String> = mock.log.lines().into_iter().filter(|l| !l.contains("/resize")).collect();
    assert_eq!(
        order,
        vec![
            "HEAD /_ping".to_string(),
            "POST /v1.51/containers/create".to_string(),
            format!("POST /v1.51/containers/{ID}/attach?stderr=1&stdin=1&stdout=1&stream=1"),
            format!("POST /v1.51/containers/{ID}/wait?condition=removed"),
            format!("POST /v1.51/containers/{ID}/start"),
        ]
    );
}

#[test]
fn a_window_change_while_the_first_resize_is_on_its_way_is_not_lost() {
    let mock = start_mock();
    let (release, held) = channel::<()>();
    *mock.hold_first_resize.lock().unwrap() = Some(held);
    let mut pty = spawn_in_pty(&["-H", &mock.host, "run", "-it", "--rm", "busybox", "sh"], 30, 100);
    assert!(mock.log.wait_for("/resize?h=30&w=100", Duration::from_secs(10)), "{:?}", mock.log.lines());
    // The first resize is not answered yet: the window changes now.
    pty.resize(40, 120);
    std::thread::sleep(Duration::from_millis(200));
    drop(release);
    assert!(mock.log.wait_for("/resize?h=40&w=120", Duration::from_secs(10)), "the window change was lost: {:?}", mock.log.lines());
    pty.type_keys(b"exit\r");
    assert_eq!(pty.wait_exit(), 3);
}

#[test]
fn ctrl_p_ctrl_q_detaches_and_leaves_the_container_running() {
    let mock = start_mock();
    let mut pty = spawn_in_pty(&["-H", &mock.host, "run", "-it", "busybox", "sh"], 24, 80);
    assert!(mock.log.wait_for("/start", Duration::from_secs(10)));
    pty.type_keys(b"ab");
    assert!(pty.wait_output("AB"));
    pty.type_keys(&[16]);
    std::thread::sleep(Duration::from_millis(100));
    pty.type_keys(&[17]);
    assert_eq!(pty.wait_exit(), 0);
    // The sequence itself never reached the container, and nothing was killed.
    assert_eq!(mock.stdin.lock().unwrap().as_slice(), b"ab");
    assert!(!mock.log.lines().iter().any(|l| l.contains("/kill")));
}

#[test]
fn custom_detach_keys_and_a_broken_prefix() {
    let mock = start_mock();
    let mut pty = spawn_in_pty(&["-H", &mock.host, "run", "-it", "--detach-keys", "ctrl-x,y", "busybox", "sh"], 24, 80);
    assert!(mock.log.wait_for("/start", Duration::from_secs(10)));
    // ctrl-x followed by something else is passed through as typed.
    pty.type_keys(&[24, b'a']);
    assert!(pty.wait_output("A"));
    pty.type_keys(&[24, b'y']);
    assert_eq!(pty.wait_exit(), 0);
    assert_eq!(mock.stdin.lock().unwrap().as_slice(), &[24, b'a']);
    assert!(mock.log.lines().iter().any(|l| l.contains("detachKeys=ctrl-x%2Cy")), "{:?}", mock.log.lines());
}

#[test]
fn signals_are_forwarded_to_the_container() {
    let mock = start_mock();
    let mut pty = spawn_in_pty(&["-H", &mock.host, "run", "busybox", "sleep", "100"], 24, 80);
    assert!(mock.log.wait_for("/start", Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(pty.pid(), libc::SIGTERM) };
    assert!(mock.log.wait_for("/kill?signal=15", Duration::from_secs(10)), "{:?}", mock.log.lines());
    assert_eq!(pty.wait_exit(), 143);
}

#[test]
fn it_without_a_terminal_is_refused() {
    let mock = start_mock();
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["-H", &mock.host, "run", "-it", "busybox", "sh"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "the input device is not a TTY\n");
    assert!(!mock.log.lines().iter().any(|l| l.contains("create")), "nothing is created");
}
