//! The shim driving a real runtime — berth's own (in-process) and runc — through
//! create, attach, stdin, start, exit, exec, tty and the log.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use berth_shim::client;
use berth_shim::protocol::{self, Request};
use berth_shim::{LogConfig, RuntimeKind, ShimConfig};
use berth_testutil::{busybox_rootfs, require_root, short_tempdir};

static N: AtomicU32 = AtomicU32::new(0);

struct Fixture {
    _tmp: tempfile::TempDir,
    cfg: ShimConfig,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Whatever a failed test left: the container, then its cgroup parent.
        let _ = std::process::Command::new("runc")
            .arg("--root")
            .arg(self.cfg.bundle.join("runc"))
            .args(["delete", "--force", &self.cfg.id])
            .output();
        let _ = berth_runtime::Runtime::new(self.cfg.bundle.join("brt")).delete(&self.cfg.id, true);
        berth_testutil::remove_cgroup_tree(&cgroup_parent(&self.cfg.id));
    }
}

fn cgroup_parent(id: &str) -> String {
    format!("bt-shim-{id}")
}

fn fixture(builtin: bool, args: &[&str], tty: bool) -> Fixture {
    require_root();
    let tmp = short_tempdir("bt-shim");
    let dir = tmp.path().to_path_buf();
    busybox_rootfs(&dir.join("rootfs")).unwrap();
    let st = std::process::Command::new("runc").args(["spec", "--bundle"]).arg(&dir).status().unwrap();
    assert!(st.success());
    let id = format!("bt-shim-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
    let mut spec: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    spec["process"]["args"] = serde_json::json!(args);
    spec["process"]["terminal"] = serde_json::json!(tty);
    spec["root"]["readonly"] = serde_json::json!(false);
    spec["linux"]["cgroupsPath"] = serde_json::json!(format!("/{}/{id}", cgroup_parent(&id)));
    std::fs::write(dir.join("config.json"), serde_json::to_vec(&spec).unwrap()).unwrap();
    let cfg = ShimConfig {
        id,
        bundle: dir.clone(),
        state_dir: dir.join("state"),
        socket: dir.join("s.sock"),
        runtime: if builtin {
            RuntimeKind::Builtin { root: dir.join("brt") }
        } else {
            RuntimeKind::Binary { path: PathBuf::from("/usr/sbin/runc"), args: vec![], root: dir.join("runc") }
        },
        tty,
        open_stdin: true,
        log: LogConfig { path: Some(dir.join("ctr-json.log")), max_size: 1 << 20, max_files: 2, ..Default::default() },
        console_size: Some((24, 80)),
    };
    Fixture { _tmp: tmp, cfg }
}

/// The shims' own binary, as the daemon runs them (`berth shim` is the same code).
fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth-shim"))
}

fn write_stdin(stream: &mut std::os::unix::net::UnixStream, data: &[u8]) {
    stream.write_all(&protocol::frame(protocol::FRAME_STDIN, data)).unwrap();
}

/// Closes stdin of a program that reads one line and exits: it may have exited and the
/// shim closed the stream already (seen once in CI), so a broken pipe is fine; what it
/// wrote is still there to collect.
fn close_stdin_after_a_line(stream: &mut std::os::unix::net::UnixStream) {
    if let Err(e) = stream.write_all(&protocol::frame(protocol::FRAME_STDIN, b"")) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "closing stdin: {e}");
    }
}

/// What the shim said on its stderr (for failures).
fn shim_log(cfg: &ShimConfig) -> String {
    std::fs::read_to_string(cfg.state_dir.join("shim.log")).unwrap_or_default()
}

fn attach_stdin_output_exit_code_and_log(builtin: bool) {
    let f = fixture(builtin, &["sh", "-c", "read x; echo got $x; echo oops >&2; exit 3"], false);
    let berth_shim::spawn::Spawned { child, pid, .. } = berth_shim::spawn::spawn(exe(), &f.cfg, None).unwrap();
    let mut child = child.expect("an exec'd shim is our child");
    assert!(pid > 0);
    let (resp, mut attach) = client::open(&f.cfg.socket, &Request::Attach { stdin: true, stdout: true, stderr: true }).unwrap();
    assert!(resp.ok, "{resp:?}");
    let started = client::call(&f.cfg.socket, &Request::Start).unwrap();
    assert!(started.ok, "{started:?}");
    if let Err(e) = attach.get_mut().write_all(&protocol::frame(protocol::FRAME_STDIN, b"hello\n")) {
        panic!("writing stdin: {e}; shim log: {}; exit: {:?}", shim_log(&f.cfg), std::fs::read_to_string(f.cfg.exit_file()));
    }
    close_stdin_after_a_line(attach.get_mut());
    let out = client::collect(&mut attach).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got hello\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    assert_eq!(out.exit.as_ref().unwrap().exit_code, 3);
    assert!(child.wait().unwrap().success());
    let exit: protocol::ExitStatus = serde_json::from_slice(&std::fs::read(f.cfg.exit_file()).unwrap()).unwrap();
    assert_eq!(exit.exit_code, 3);
    let log = std::fs::read_to_string(f.cfg.log.path.as_ref().unwrap()).unwrap();
    assert!(log.contains(r#""log":"got hello\n","stream":"stdout""#), "{log}");
    assert!(log.contains(r#""log":"oops\n","stream":"stderr""#), "{log}");
    // The runtime's record and the cgroup are gone.
    assert!(!Path::new(&format!("/sys/fs/cgroup/memory/{}/{}", cgroup_parent(&f.cfg.id), f.cfg.id)).exists());
    assert!(!f.cfg.socket.exists());
}

fn exec_runs_in_the_container_and_kill_reports_the_signal(builtin: bool) {
    let f = fixture(builtin, &["sh", "-c", "echo ready; sleep 1000"], false);
    let child = berth_shim::spawn::spawn(exe(), &f.cfg, None).unwrap().child;
    let mut child = child.expect("an exec'd shim is our child");
    let (_, mut attach) = client::open(&f.cfg.socket, &Request::Attach { stdin: false, stdout: true, stderr: true }).unwrap();
    assert!(client::call(&f.cfg.socket, &Request::Start).unwrap().ok);
    let (kind, first) = client::read_frame(&mut attach).unwrap().unwrap();
    assert_eq!((kind, first.as_slice()), (protocol::FRAME_STDOUT, &b"ready\n"[..]));

    let process = serde_json::json!({
        "terminal": false, "user": {"uid": 0, "gid": 0}, "cwd": "/",
        "args": ["sh", "-c", "echo in $(hostname); cat; exit 7"],
        "env": ["PATH=/bin:/usr/bin"]
    });
    let (resp, mut ex) = client::open(&f.cfg.socket, &Request::Exec { exec_id: "e1".into(), process, tty: false, stdin: true }).unwrap();
    assert!(resp.ok, "{resp:?}");
    write_stdin(ex.get_mut(), b"piped\n");
    write_stdin(ex.get_mut(), b"");
    let out = client::collect(&mut ex).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "in runc\npiped\n"); // runc spec sets hostname "runc"
    assert_eq!(out.exit.unwrap().exit_code, 7);

    // A bad exec is an error, and the container is still fine.
    let bad = serde_json::json!({"terminal": false, "user": {"uid": 0, "gid": 0}, "cwd": "/", "args": ["/no/such"], "env": []});
    let (resp, _) = client::open(&f.cfg.socket, &Request::Exec { exec_id: "e2".into(), process: bad, tty: false, stdin: false }).unwrap();
    assert!(!resp.ok);
    assert!(resp.error.contains("no such") || resp.error.contains("not found"), "{}", resp.error);

    let st = client::call(&f.cfg.socket, &Request::State).unwrap();
    assert!(st.exit.is_none());
    assert!(client::call(&f.cfg.socket, &Request::Kill { signal: 9, all: false }).unwrap().ok);
    let rest = client::collect(&mut attach).unwrap();
    assert_eq!(rest.exit.unwrap().exit_code, 137);
    assert!(child.wait().unwrap().success());
}

fn tty_container_with_resize(builtin: bool) {
    let f = fixture(builtin, &["sh", "-c", "stty size; read x; echo you said $x"], true);
    let child = berth_shim::spawn::spawn(exe(), &f.cfg, None).unwrap().child;
    let mut child = child.expect("an exec'd shim is our child");
    let (_, mut attach) = client::open(&f.cfg.socket, &Request::Attach { stdin: true, stdout: true, stderr: true }).unwrap();
    assert!(client::call(&f.cfg.socket, &Request::Start).unwrap().ok);
    // Wait for the first line, then answer.
    let (kind, first) = client::read_frame(&mut attach).unwrap().unwrap();
    assert_eq!(kind, protocol::FRAME_STDOUT);
    assert_eq!(String::from_utf8_lossy(&first), "24 80\r\n");
    let r = client::call(&f.cfg.socket, &Request::Resize { exec_id: None, height: 40, width: 100 }).unwrap();
    assert!(r.ok, "{r:?}");
    write_stdin(attach.get_mut(), b"hi\n");
    let out = client::collect(&mut attach).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("you said hi"), "{text}");
    assert!(out.stderr.is_empty());
    assert_eq!(out.exit.unwrap().exit_code, 0);
    assert!(child.wait().unwrap().success());
}

fn create_failure_is_reported_and_leaves_nothing(builtin: bool) {
    let f = fixture(builtin, &["/does/not/exist"], false);
    let mut cfg = f.cfg.clone();
    // A bundle whose rootfs is missing.
    cfg.bundle = f.cfg.bundle.join("nope");
    std::fs::create_dir_all(&cfg.bundle).unwrap();
    std::fs::copy(f.cfg.bundle.join("config.json"), cfg.bundle.join("config.json")).unwrap();
    let err = berth_shim::spawn::spawn(exe(), &cfg, None).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("rootfs") || msg.contains("no such file"), "{msg}");
    assert!(!cfg.socket.exists());
    assert!(!Path::new(&format!("/sys/fs/cgroup/memory/{}/{}", cgroup_parent(&cfg.id), cfg.id)).exists());
}

// Each scenario runs on both runtimes.
#[test]
fn attach_stdin_output_exit_code_and_log_builtin() {
    attach_stdin_output_exit_code_and_log(true);
}

#[test]
fn attach_stdin_output_exit_code_and_log_runc() {
    attach_stdin_output_exit_code_and_log(false);
}

#[test]
fn exec_runs_in_the_container_and_kill_reports_the_signal_builtin() {
    exec_runs_in_the_container_and_kill_reports_the_signal(true);
}

#[test]
fn exec_runs_in_the_container_and_kill_reports_the_signal_runc() {
    exec_runs_in_the_container_and_kill_reports_the_signal(false);
}

#[test]
fn tty_container_with_resize_builtin() {
    tty_container_with_resize(true);
}

#[test]
fn tty_container_with_resize_runc() {
    tty_container_with_resize(false);
}

#[test]
fn create_failure_is_reported_and_leaves_nothing_builtin() {
    create_failure_is_reported_and_leaves_nothing(true);
}

#[test]
fn create_failure_is_reported_and_leaves_nothing_runc() {
    create_failure_is_reported_and_leaves_nothing(false);
}

/// The zygote's pid, and a guard that retires it however the test ends.
struct Zygote(PathBuf, i32);

impl Drop for Zygote {
    fn drop(&mut self) {
        let _ = berth_shim::zygote::call(&self.0, &berth_shim::zygote::ZygoteRequest::Quit, None);
        // SAFETY: SIGKILL to the zygote this test started (if it still runs).
        unsafe { libc::kill(self.1, libc::SIGKILL) };
    }
}

fn cmdline(pid: i32) -> String {
    String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default()).replace('\0', " ").trim_end().to_string()
}

fn parent_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat[stat.rfind(')').unwrap() + 2..].split(' ').nth(1).unwrap().parse().unwrap()
}

#[test]
fn shims_forked_from_the_zygote_behave_as_exec_d_ones() {
    let f = fixture(true, &["sh", "-c", "read x; echo got $x; exit 4"], false);
    let zsock = f.cfg.bundle.join("zygote.sock");
    let spawned = berth_shim::spawn::spawn(exe(), &f.cfg, Some(&zsock)).unwrap();
    // The shim reports where its create went, step by step, for --trace-phases.
    let steps: Vec<&str> = spawned.phases.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        steps,
        [
            "setup", "plan", "cgroup", "clone", "init", "init.join", "init.namespaces", "init.mounts", "init.pivot", "init.cwd", "init.finalize",
            "init.process", "record", "done"
        ],
        "{:?}",
        spawned.phases
    );
    assert!(spawned.phases.iter().all(|(_, ms)| *ms >= 0.0) && spawned.phases.iter().any(|(_, ms)| *ms > 0.0));
    let child = spawned.child;
    let hello = berth_shim::zygote::call(&zsock, &berth_shim::zygote::ZygoteRequest::Hello, None).unwrap();
    // Forked, not exec'd: the child handed back to be reaped is the zygote just started.
    assert_eq!(child.as_ref().map(|c| c.id() as i32), Some(hello.pid));
    let _z = Zygote(zsock.clone(), hello.pid);
    assert_eq!(hello.exe, berth_shim::zygote::exe_identity(exe()));
    assert!(cmdline(hello.pid).ends_with(&format!("shim-zygote {}", zsock.display())), "{}", cmdline(hello.pid));

    // The shim: the zygote's child, in its own session, named as an exec'd shim is.
    let title = format!("berth shim {}", f.cfg.state_dir.display());
    let shim = std::fs::read_dir("/proc").unwrap().flatten().filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok()).find(|p| cmdline(*p) == title).expect("the shim by its title");
    assert_eq!(parent_of(shim), hello.pid);
    assert_eq!(std::fs::read_to_string(format!("/proc/{shim}/comm")).unwrap().trim(), "berth-shim");
    // SAFETY: getsid reads a process's session id.
    assert_eq!(unsafe { libc::getsid(shim) }, shim);

    let (_, mut attach) = client::open(&f.cfg.socket, &Request::Attach { stdin: true, stdout: true, stderr: true }).unwrap();
    assert!(client::call(&f.cfg.socket, &Request::Start).unwrap().ok);
    write_stdin(attach.get_mut(), b"zygote\n");
    close_stdin_after_a_line(attach.get_mut());
    let out = client::collect(&mut attach).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got zygote\n");
    assert_eq!(out.exit.unwrap().exit_code, 4);

    // A container that cannot be made is reported as such; the same zygote serves on.
    let g = fixture(true, &["true"], false);
    let mut bad = g.cfg.clone();
    bad.bundle = g.cfg.bundle.join("nope");
    std::fs::create_dir_all(&bad.bundle).unwrap();
    std::fs::copy(g.cfg.bundle.join("config.json"), bad.bundle.join("config.json")).unwrap();
    let err = berth_shim::spawn::spawn(exe(), &bad, Some(&zsock)).unwrap_err();
    assert!(matches!(err, berth_shim::spawn::SpawnError::Create(_)), "{err}");
    assert!(!bad.socket.exists());
    let again = berth_shim::zygote::call(&zsock, &berth_shim::zygote::ZygoteRequest::Hello, None).unwrap();
    assert_eq!(again.pid, hello.pid);

    // Told to quit, it goes; the shims it forked are not its to take along.
    assert!(berth_shim::zygote::call(&zsock, &berth_shim::zygote::ZygoteRequest::Quit, None).unwrap().ok);
    // (It is this process's child here, as it is the daemon's: reaped by its parent.)
    child.expect("the zygote").wait().unwrap();
    assert!(!Path::new(&format!("/proc/{}", hello.pid)).exists(), "the zygote quit");
    assert!(!zsock.exists());
}
