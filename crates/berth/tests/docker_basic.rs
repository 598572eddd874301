//! The real docker CLI against a berth daemon: the everyday commands.

use std::path::Path;

use berth_testutil::daemon::{TestDaemon, run_ok};

fn daemon() -> TestDaemon {
    let d = TestDaemon::start(Path::new(env!("CARGO_BIN_EXE_berth")));
    d.busybox_image("busybox:latest");
    d
}

#[test]
fn run_foreground_prints_and_returns_exit_code() {
    let d = daemon();
    let out = run_ok(d.docker().args(["run", "--rm", "busybox", "echo", "hello"]));
    assert_eq!(out, "hello\n");
    let st = d.docker().args(["run", "--rm", "busybox", "sh", "-c", "exit 7"]).status().unwrap();
    assert_eq!(st.code(), Some(7));
    // --rm removed them.
    let ps = run_ok(d.docker().args(["ps", "-aq"]));
    assert_eq!(ps.trim(), "", "{}", d.log());
}

#[test]
fn detached_logs_ps_inspect_stop_rm() {
    let d = daemon();
    let id = run_ok(d.docker().args(["run", "-d", "--name", "web", "busybox", "sh", "-c", "echo started; echo to-stderr >&2; sleep 300"])).trim().to_string();
    assert_eq!(id.len(), 64);
    // logs (both streams), after the container has printed.
    let mut logs = String::new();
    for _ in 0..50 {
        let out = d.docker().args(["logs", "web"]).output().unwrap();
        logs = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if logs.contains("to-stderr") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(logs.contains("started") && logs.contains("to-stderr"), "{logs}");
    let ps = run_ok(d.docker().args(["ps"]));
    assert!(ps.contains("web") && ps.contains("Up "), "{ps}");
    assert!(ps.starts_with("CONTAINER ID"), "{ps}");
    let status = run_ok(d.docker().args(["inspect", "-f", "{{.State.Status}} {{.State.Running}} {{.Name}}", "web"]));
    assert_eq!(status.trim(), "running true /web");
    let fmt = run_ok(d.docker().args(["ps", "--format", "{{.Names}} {{.Image}}"]));
    assert_eq!(fmt.trim(), "web busybox");
    run_ok(d.docker().args(["stop", "-t", "1", "web"]));
    let status = run_ok(d.docker().args(["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "web"]));
    assert_eq!(status.trim(), "exited 137", "sleep ignores SIGTERM as PID 1, so stop kills it");
    let ps = run_ok(d.docker().args(["ps", "-a", "--filter", "status=exited", "--format", "{{.Names}}"]));
    assert_eq!(ps.trim(), "web");
    assert_eq!(run_ok(d.docker().args(["ps", "-q"])).trim(), "");
    run_ok(d.docker().args(["rm", "web"]));
    let out = d.docker().args(["inspect", "web"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("No such"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn stdin_is_piped_with_dash_i() {
    let d = daemon();
    let mut child = d
        .docker()
        .args(["run", "--rm", "-i", "busybox", "sh", "-c", "tr a-z A-Z; echo done"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"hello from stdin\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "HELLO FROM STDIN\ndone\n");
}

#[test]
fn exec_kill_restart_pause_wait_rename_top() {
    let d = daemon();
    run_ok(d.docker().args(["run", "-d", "--name", "c1", "busybox", "sleep", "300"]));
    let out = d.docker().args(["exec", "c1", "sh", "-c", "echo in-exec; exit 3"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "in-exec\n");
    // exec -i with stdin
    let mut child = d.docker().args(["exec", "-i", "c1", "cat"]).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"echoed\n").unwrap();
    assert_eq!(String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout), "echoed\n");
    // a missing command: 127 like docker
    let out = d.docker().args(["exec", "c1", "no-such-cmd"]).output().unwrap();
    assert_eq!(out.status.code(), Some(127), "{}", String::from_utf8_lossy(&out.stderr));
    let top = run_ok(d.docker().args(["top", "c1"]));
    assert!(top.contains("sleep 300"), "{top}");
    run_ok(d.docker().args(["pause", "c1"]));
    assert_eq!(run_ok(d.docker().args(["inspect", "-f", "{{.State.Status}}", "c1"])).trim(), "paused");
    let out = d.docker().args(["pause", "c1"]).output().unwrap();
    assert!(!out.status.success());
    run_ok(d.docker().args(["unpause", "c1"]));
    assert_eq!(run_ok(d.docker().args(["inspect", "-f", "{{.State.Status}}", "c1"])).trim(), "running");
    run_ok(d.docker().args(["rename", "c1", "c2"]));
    let pid1 = run_ok(d.docker().args(["inspect", "-f", "{{.State.Pid}}", "c2"]));
    run_ok(d.docker().args(["restart", "-t", "1", "c2"]));
    let pid2 = run_ok(d.docker().args(["inspect", "-f", "{{.State.Pid}} {{.State.Status}}", "c2"]));
    assert_ne!(pid1.trim(), pid2.split(' ').next().unwrap());
    assert!(pid2.trim().ends_with("running"));
    // wait returns the exit code after a kill.
    let waiter = d.docker().args(["wait", "c2"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    run_ok(d.docker().args(["kill", "c2"]));
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "137");
    let stats = d.docker().args(["stats", "--no-stream", "c2"]).output().unwrap();
    assert!(stats.status.success());
    run_ok(d.docker().args(["rm", "-f", "c2"]));
}

#[test]
fn init_runs_as_pid_1_and_exit_codes_follow() {
    let d = daemon();
    let ps = run_ok(d.docker().args(["run", "--rm", "--init", "busybox", "ps", "-o", "pid,args"]));
    let pid1 = ps.lines().find(|l| l.trim_start().starts_with("1 ")).unwrap_or_default();
    assert!(pid1.contains("init"), "{ps}");
    assert!(ps.lines().any(|l| l.trim_start().starts_with("2 ") && l.contains("ps")), "{ps}");
    let out = d.docker().args(["run", "--rm", "--init", "busybox", "sh", "-c", "exit 9"]).output().unwrap();
    assert_eq!(out.status.code(), Some(9), "{}\n{}", String::from_utf8_lossy(&out.stderr), d.log());
    // A directory is not executable: docker's 126; a missing file: 127.
    let out = d.docker().args(["run", "--rm", "busybox", "/etc"]).output().unwrap();
    assert_eq!(out.status.code(), Some(126), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("Error waiting"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = d.docker().args(["run", "--rm", "busybox", "/no/such"]).output().unwrap();
    assert_eq!(out.status.code(), Some(127), "{}", String::from_utf8_lossy(&out.stderr));
    // The two failed starts took network namespaces made ahead: the pool is made full
    // again without waiting for a start that succeeds.
    let pool = d.exec_root.join("netns-pool");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_dir(&pool).map(|r| r.count()).unwrap_or(0) < 2 {
        assert!(std::time::Instant::now() < deadline, "the namespace pool was not refilled after failed starts");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
