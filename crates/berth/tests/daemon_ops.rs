//! The daemon for people and log systems: its log in logrus' text (no colours off a
//! terminal) or JSON, its level changed by SIGHUP re-reading daemon.json, systemd's
//! readiness protocol; and `berth stats`: block I/O in the API's stats, containers
//! that start joining a running `berth stats`.

use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use berth_testutil::daemon::{TestDaemon, run_ok};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("a notification");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn signal(d: &TestDaemon, sig: i32) {
    // SAFETY: sending a signal to the daemon this test started.
    unsafe { libc::kill(d.pid().unwrap() as i32, sig) };
}

fn wait_log(d: &TestDaemon, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.log().contains(what) {
        assert!(Instant::now() < deadline, "no {what:?} in the log:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn text_log_sighup_reload_and_sd_notify() {
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("notify");
    let sock = UnixDatagram::bind(&notify).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let d = TestDaemon::start_with_env(bin(), &[], &[("NOTIFY_SOCKET", notify.to_str().unwrap())]);
    let ready = recv(&sock);
    assert!(ready.starts_with("READY=1\n") && ready.contains(&format!("MAINPID={}", d.pid().unwrap())), "{ready:?}");
    d.busybox_image("busybox:latest");
    run_ok(d.docker().args(["run", "--rm", "busybox", "true"]));
    let log = d.log();
    assert!(!log.contains('\x1b'), "no colour codes in a file:\n{log}");
    let serving = log.lines().find(|l| l.contains("berth daemon serving")).expect("the serving line");
    assert!(serving.starts_with("time=\"") && serving.contains("\" level=info msg=\"berth daemon serving"), "{serving}");
    assert!(!log.contains("level=debug"), "info by default");

    // debug through daemon.json and SIGHUP, without a restart.
    std::fs::write(d.dir.join("daemon.json"), r#"{"debug": true}"#).unwrap();
    signal(&d, libc::SIGHUP);
    assert_eq!(recv(&sock), "RELOADING=1");
    assert_eq!(recv(&sock), "READY=1");
    wait_log(&d, "msg=\"configuration reloaded\" log_level=debug");
    run_ok(d.docker().args(["run", "--rm", "busybox", "true"]));
    wait_log(&d, "level=debug");
    // A bad file is reported and changes nothing.
    std::fs::write(d.dir.join("daemon.json"), r#"{"log-level": "loud"}"#).unwrap();
    signal(&d, libc::SIGHUP);
    wait_log(&d, "level=error msg=\"reloading the configuration: invalid log level");
    let pid = d.pid().unwrap();
    signal(&d, libc::SIGTERM);
    let mut stopping = String::new();
    for _ in 0..3 {
        stopping = recv(&sock);
        if stopping == "STOPPING=1" {
            break;
        }
    }
    assert_eq!(stopping, "STOPPING=1");
    let _ = pid;
}

#[test]
fn json_log_format() {
    let d = TestDaemon::start_with(bin(), &["--log-format", "json", "--log-level", "debug"]);
    d.busybox_image("busybox:latest");
    run_ok(d.docker().args(["run", "--rm", "busybox", "true"]));
    let log = d.log();
    let mut levels = std::collections::BTreeSet::new();
    for l in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["msg"].is_string() && v["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{l}");
        levels.insert(v["level"].as_str().unwrap().to_string());
    }
    assert!(levels.contains("info") && levels.contains("debug"), "{levels:?}");
    let out = std::process::Command::new(bin()).args(["daemon", "--log-format", "yaml"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid log format"));
}

#[test]
fn stats_block_io_and_containers_joining_a_live_view() {
    let d = TestDaemon::start(bin());
    d.busybox_image("busybox:latest");
    run_ok(d.docker().args(["run", "-d", "--name", "io", "busybox", "sh", "-c", "dd if=/dev/zero of=/io bs=1M count=16 conv=fsync 2>/dev/null; sleep 300"]));
    // Block I/O is in the API's stats, read from the cgroup (whether the kernel counts a
    // virtual disk's writes there depends on the host: this checks the shape, and the
    // numbers when there are some).
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    std::io::Write::write_all(&mut s, b"GET /containers/io/stats?stream=0&one-shot=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let v: serde_json::Value = serde_json::from_slice(&berth_testutil::http::read_response(&mut s).unwrap().body).unwrap();
    let list = v["blkio_stats"]["io_service_bytes_recursive"].as_array().expect("a list of block I/O entries");
    for e in list {
        assert!(e["major"].is_u64() && e["op"].is_string() && e["value"].is_u64(), "{e}");
    }
    let out = run_ok(d.docker().args(["stats", "--no-stream", "--format", "{{.BlockIO}}", "io"]));
    assert!(out.trim().contains(" / "), "{out}");
    // A live `berth stats` picks up a container started after it.
    let mut live = d.berth().args(["stats", "--format", "{{.Name}} {{.PIDs}}"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut out = live.stdout.take().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    run_ok(d.docker().args(["run", "-d", "--name", "late", "busybox", "sleep", "300"]));
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen.rsplit("\x1b[2J").next().unwrap_or("").contains("late 1") {
        assert!(Instant::now() < deadline, "late never joined: {seen:?}");
        let n = out.read(&mut buf).unwrap();
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // And leaves when it stops.
    run_ok(d.docker().args(["stop", "-t", "0", "late"]));
    let mut frames_without = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while frames_without < 2 {
        assert!(Instant::now() < deadline, "late never left: {seen:?}");
        let n = out.read(&mut buf).unwrap();
        let chunk = String::from_utf8_lossy(&buf[..n]).into_owned();
        if chunk.contains("io ") && !chunk.contains("late") {
            frames_without += 1;
        }
        seen.push_str(&chunk);
    }
    let _ = live.kill();
}

/// The daemon's children that are zombies, and its threads blocked in wait().
fn zombies_and_waiters(pid: u32) -> (usize, usize) {
    let mut zombies = 0;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 2 && f[1] == pid.to_string() && f[0] == "Z" {
            zombies += 1;
        }
    }
    let waiters = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("wchan")).unwrap_or_default() == "do_wait")
        .count();
    (zombies, waiters)
}

#[test]
fn shims_are_reaped_without_a_thread_each() {
    let d = TestDaemon::start(bin());
    d.busybox_image("busybox:latest");
    for i in 0..6 {
        run_ok(d.docker().args(["run", "-d", "--name", &format!("r{i}"), "busybox", "sleep", "300"]));
    }
    for i in 0..4 {
        run_ok(d.docker().args(["run", "--rm", "--name", &format!("q{i}"), "busybox", "true"]));
    }
    // The shims (and their zygote) run from the small `berth-shim` beside `berth`.
    let prefix = format!("berth shim {}/", d.exec_root.display());
    let shims: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
        .filter(|e| String::from_utf8_lossy(&std::fs::read(e.path().join("cmdline")).unwrap_or_default()).replace('\0', " ").starts_with(&prefix))
        .map(|e| std::fs::read_link(e.path().join("exe")).unwrap().display().to_string())
        .collect();
    assert_eq!(shims.len(), 6, "{shims:?}");
    assert!(shims.iter().all(|exe| exe == &bin().with_file_name("berth-shim").display().to_string()), "{shims:?}");
    let pid = d.pid().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (zombies, waiters) = zombies_and_waiters(pid);
        if zombies == 0 {
            assert_eq!(waiters, 0, "no thread waits for a shim");
            break;
        }
        assert!(Instant::now() < deadline, "{zombies} zombie shims");
        std::thread::sleep(Duration::from_millis(100));
    }
    run_ok(d.docker().args(["rm", "-f", "r0", "r1", "r2"]));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(zombies_and_waiters(pid).0, 0);
}
