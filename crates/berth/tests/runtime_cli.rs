//! `berth runtime` as a shim would drive it: runc's verbs, flags, state JSON and exit
//! codes, on the real kernel (root), side by side with runc where that proves compatibility.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

struct Env {
    tmp: tempfile::TempDir,
    root: PathBuf,
    bundle: PathBuf,
    id: String,
    cgroup_parent: String,
}

impl Env {
    fn new(args: &[&str]) -> Env {
        berth_testutil::require_root();
        let tmp = berth_testutil::short_tempdir("bcli");
        let bundle = tmp.path().join("b");
        berth_testutil::busybox_rootfs(&bundle.join("rootfs")).unwrap();
        let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let id = format!("cli-{}-{n}", std::process::id());
        let cgroup_parent = format!("/berth-test-cli-{}-{n}", std::process::id());
        let env = Env { root: tmp.path().join("state"), tmp, bundle, id, cgroup_parent };
        let out = env.berth(&["spec", "--bundle", env.bundle.to_str().unwrap()]);
        assert!(out.status.success(), "{out:?}");
        let mut c: Value = serde_json::from_slice(&std::fs::read(env.bundle.join("config.json")).unwrap()).unwrap();
        c["process"]["terminal"] = false.into();
        c["process"]["args"] = serde_json::json!(args);
        c["linux"]["cgroupsPath"] = format!("{}/{}", env.cgroup_parent, env.id).into();
        std::fs::write(env.bundle.join("config.json"), serde_json::to_vec(&c).unwrap()).unwrap();
        env
    }

    /// For create / run -d: the container keeps the CLI's stdio, so pipes would stay open
    /// (and `output()` would wait) until it exits.
    fn berth_detached(&self, args: &[&str]) -> std::process::ExitStatus {
        Command::new(BERTH)
            .arg("runtime")
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
    }

    fn berth(&self, args: &[&str]) -> Output {
        Command::new(BERTH)
            .arg("runtime")
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.berth(&["delete", "--force", &self.id]);
        for h in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
            let p = h.path().join(self.cgroup_parent.trim_start_matches('/'));
            let _ = std::fs::remove_dir(p.join(&self.id));
            let _ = std::fs::remove_dir(p);
        }
    }
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn create_start_state_list_ps_events_pause_kill_delete() {
    let e = Env::new(&["sleep", "60"]);
    let pid_file = e.tmp.path().join("pid");
    let b = e.bundle.to_str().unwrap();
    assert!(e.berth_detached(&["create", "--bundle", b, "--pid-file", pid_file.to_str().unwrap(), &e.id]).success());
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();

    let o = e.berth(&["state", &e.id]);
    assert!(o.status.success(), "{}", text(&o));
    let st: Value = serde_json::from_slice(&o.stdout).unwrap();
    let keys: Vec<&str> = st.as_object().unwrap().keys().map(String::as_str).collect();
    for k in ["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"] {
        assert!(keys.contains(&k), "state lacks {k}: {st}");
    }
    assert_eq!(st["status"], "created");
    assert_eq!(st["pid"], pid);

    assert!(e.berth(&["start", &e.id]).status.success());
    let o = e.berth(&["list", "--format", "json"]);
    let list: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(list[0]["id"], e.id.as_str());
    assert_eq!(list[0]["status"], "running");
    let o = e.berth(&["list"]);
    assert!(text(&o).starts_with("ID "), "{}", text(&o));
    let o = e.berth(&["list", "-q"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), e.id);

    let o = e.berth(&["ps", "--format", "json", &e.id]);
    let pids: Vec<i32> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(pids, vec![pid]);
    let o = e.berth(&["ps", &e.id]);
    assert!(text(&o).contains("sleep 60"), "{}", text(&o));

    let o = e.berth(&["events", "--stats", &e.id]);
    let ev: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["data"]["pids"]["current"], 1);
    assert!(ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap() > 0);

    assert!(e.berth(&["pause", &e.id]).status.success());
    let st: Value = serde_json::from_slice(&e.berth(&["state", &e.id]).stdout).unwrap();
    assert_eq!(st["status"], "paused");
    assert!(e.berth(&["resume", &e.id]).status.success());

    let o = e.berth(&["update", "--pids-limit", "50", &e.id]);
    assert!(o.status.success(), "{}", text(&o));
    let max = std::fs::read_to_string(format!("/sys/fs/cgroup/pids{}/{}/pids.max", e.cgroup_parent, e.id)).unwrap();
    assert_eq!(max.trim(), "50");

    // Not stopped: delete without --force refuses, exit 1.
    let o = e.berth(&["delete", &e.id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(e.berth(&["kill", &e.id, "KILL"]).status.success());
    for _ in 0..200 {
        let st: Value = serde_json::from_slice(&e.berth(&["state", &e.id]).stdout).unwrap();
        if st["status"] == "stopped" {
            assert_eq!(st["pid"], 0);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let o = e.berth(&["delete", &e.id]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!Path::new(&format!("/sys/fs/cgroup/memory{}/{}", e.cgroup_parent, e.id)).exists());
    let o = e.berth(&["state", &e.id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("does not exist"), "{}", text(&o));
    assert!(e.berth(&["delete", "--force", &e.id]).status.success());
}

#[test]
fn run_and_exec_return_the_process_exit_code() {
    let e = Env::new(&["sh", "-c", "echo hello from $(hostname); exit 3"]);
    let o = e.berth(&["run", "--bundle", e.bundle.to_str().unwrap(), &e.id]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("hello from runc"), "{}", text(&o));
    // run without --keep deletes the container.
    assert_eq!(e.berth(&["state", &e.id]).status.code(), Some(1));

    let e = Env::new(&["sleep", "60"]);
    assert!(e.berth_detached(&["run", "-d", "--bundle", e.bundle.to_str().unwrap(), &e.id]).success());
    let o = e.berth(&["exec", &e.id, "sh", "-c", "echo in=$(cat /proc/1/comm); exit 4"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(text(&o).contains("in=sleep"), "{}", text(&o));
    let o = e.berth(&["exec", "--user", "1000:1000", "--env", "X=y", "--cwd", "/tmp", &e.id, "sh", "-c", "id -u; echo $X; pwd"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "1000\ny\n/tmp\n", "{}", text(&o));
    assert!(e.berth(&["kill", "--all", &e.id, "9"]).status.success());
}

#[test]
fn events_streams_stats_and_reports_an_oom_kill() {
    let e = Env::new(&["sh", "-c", "sleep 0.5; dd if=/dev/zero of=/dev/null bs=128M count=1"]);
    let mut c: Value = serde_json::from_slice(&std::fs::read(e.bundle.join("config.json")).unwrap()).unwrap();
    c["linux"]["resources"]["memory"] = serde_json::json!({"limit": 32 << 20, "swap": 32 << 20});
    std::fs::write(e.bundle.join("config.json"), serde_json::to_vec(&c).unwrap()).unwrap();
    assert!(e.berth_detached(&["run", "-d", "--bundle", e.bundle.to_str().unwrap(), &e.id]).success());
    // Streams until the container stops (dd is OOM-killed, sh exits).
    let o = e.berth(&["events", "--interval", "100ms", &e.id]);
    assert!(o.status.success(), "{}", text(&o));
    let events: Vec<Value> = String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(events.iter().any(|e| e["type"] == "stats"), "{events:?}");
    assert!(events.iter().any(|e| e["type"] == "oom"), "no oom event: {events:?}");
}

#[test]
fn foreground_run_proxies_a_terminal() {
    let e = Env::new(&["sh", "-c", "tty; echo on-a-tty; exit 2"]);
    let mut c: Value = serde_json::from_slice(&std::fs::read(e.bundle.join("config.json")).unwrap()).unwrap();
    c["process"]["terminal"] = true.into();
    std::fs::write(e.bundle.join("config.json"), serde_json::to_vec(&c).unwrap()).unwrap();
    // No --console-socket and not detached: berth makes the pty and copies it to stdout.
    let o = e.berth(&["run", "--bundle", e.bundle.to_str().unwrap(), &e.id]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert!(out.contains("on-a-tty"), "{out}");
    // Detached with a terminal needs a console socket (runc's rule).
    let o = e.berth(&["run", "-d", "--bundle", e.bundle.to_str().unwrap(), &e.id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("console socket"), "{}", text(&o));
}

#[test]
fn errors_exit_1_with_a_message_like_runc() {
    let e = Env::new(&["true"]);
    for args in [
        vec!["state", "nope"],
        vec!["kill", "nope"],
        vec!["start", "nope"],
        vec!["delete", "nope"],
        vec!["no-such-command"],
    ] {
        let o = e.berth(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o));
        assert!(!o.stderr.is_empty(), "{args:?} printed no error");
    }
    // runc agrees on the same calls.
    let runc_root = e.tmp.path().join("runc");
    let o = Command::new("runc").arg("--root").arg(&runc_root).args(["state", "nope"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    // spec refuses to overwrite an existing config.json.
    let o = e.berth(&["spec", "--bundle", e.bundle.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    // --log gets the error in runc's JSON log format.
    let log = e.tmp.path().join("log.json");
    let o = e.berth(&["--log", log.to_str().unwrap(), "--log-format", "json", "state", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    let line: Value = serde_json::from_str(std::fs::read_to_string(&log).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(line["level"], "error");
    assert!(line["msg"].as_str().unwrap().contains("nope"));
}

#[test]
fn state_json_has_the_same_keys_as_runc() {
    let e = Env::new(&["sleep", "60"]);
    let b = e.bundle.to_str().unwrap();
    assert!(e.berth_detached(&["create", "--bundle", b, &e.id]).success());
    let ours: Value = serde_json::from_slice(&e.berth(&["state", &e.id]).stdout).unwrap();
    let runc_root = e.tmp.path().join("runc");
    let rid = format!("{}-runc", e.id);
    let mut c: Value = serde_json::from_slice(&std::fs::read(e.bundle.join("config.json")).unwrap()).unwrap();
    c["linux"]["cgroupsPath"] = format!("{}/{rid}", e.cgroup_parent).into();
    std::fs::write(e.bundle.join("config.json"), serde_json::to_vec(&c).unwrap()).unwrap();
    let runc = |args: &[&str]| Command::new("runc").arg("--root").arg(&runc_root).args(args).output().unwrap();
    // runc's init keeps runc's stdio: a file, not a pipe we would wait on.
    let errf = e.tmp.path().join("runc.err");
    let st = Command::new("runc")
        .arg("--root")
        .arg(&runc_root)
        .args(["create", "--bundle", b, &rid])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&errf).unwrap())
        .status()
        .unwrap();
    if !st.success() {
        // runc refuses some hybrid layouts (hugetlb not mounted): then only our own
        // shape is checked (above).
        let err = std::fs::read_to_string(&errf).unwrap_or_default();
        assert!(err.contains("hugetlb") || err.contains("cgroup"), "{err}");
        return;
    }
    let theirs: Value = serde_json::from_slice(&runc(&["state", &rid]).stdout).unwrap();
    let _ = runc(&["delete", "--force", &rid]);
    // runc also makes its cgroup in the named systemd and the unified hierarchies.
    for c in ["cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd", "unified", "hugetlb"] {
        let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/{c}{}/{rid}", e.cgroup_parent));
    }
    let k = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(k(&ours), k(&theirs));
    assert_eq!(ours["status"], theirs["status"]);
}

#[test]
fn a_command_that_cannot_run_is_worded_as_runc_words_it() {
    let e = Env::new(&["true"]);
    let runc_root = e.tmp.path().join("runc");
    for (i, cmd) in ["nosuch", "/no/such", "/etc/passwd", "/etc"].into_iter().enumerate() {
        let mut c: Value = serde_json::from_slice(&std::fs::read(e.bundle.join("config.json")).unwrap()).unwrap();
        c["process"]["args"] = serde_json::json!([cmd]);
        let rid = format!("{}-runc{i}", e.id);
        c["linux"]["cgroupsPath"] = format!("{}/{rid}", e.cgroup_parent).into();
        std::fs::write(e.bundle.join("config.json"), serde_json::to_vec(&c).unwrap()).unwrap();
        let ours = e.berth(&["run", "--bundle", e.bundle.to_str().unwrap(), &format!("{}-{i}", e.id)]);
        assert_eq!(ours.status.code(), Some(1), "{}", text(&ours));
        let ours = String::from_utf8_lossy(&ours.stderr).trim().to_string();
        let theirs = Command::new("runc").arg("--root").arg(&runc_root).args(["run", "--bundle", e.bundle.to_str().unwrap(), &rid]).output().unwrap();
        for c in ["cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd", "unified", "hugetlb", "net_cls", "perf_event"] {
            let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/{c}{}/{rid}", e.cgroup_parent));
        }
        let theirs = String::from_utf8_lossy(&theirs.stderr).to_string();
        // runc: `... msg="runc run failed: unable to start container process: exec: ..."`;
        // berth: `berth runtime: unable to start container process: exec: ...`.
        let want = theirs.split("runc run failed: ").nth(1).map(|m| m.trim_end().trim_end_matches('"').replace("\\\"", "\""));
        let Some(want) = want else {
            // runc refuses this host's cgroup layout (hugetlb not mounted): check our own words.
            assert!(ours.contains(&format!("exec: \"{cmd}\"")), "{ours}");
            continue;
        };
        assert_eq!(ours, format!("berth runtime: {want}"), "runc said: {theirs}");
    }
}

/// The docker CLI against berth's daemon: `--init` gives the container berth's PID 1, and a
/// command that cannot run exits 127 / 126 as with dockerd (the CLI reads runc's words).
#[test]
fn docker_run_init_and_the_exit_codes_of_commands_that_cannot_run() {
    let d = berth_testutil::daemon::TestDaemon::start(Path::new(BERTH));
    d.busybox_image("busybox:latest");
    let out = d.docker().args(["run", "--rm", "--init", "busybox", "sh", "-c", "echo self=$$; ps -o pid,comm"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "berth-init"]), "{text}");
    assert!(!text.contains("self=1\n"), "{text}");
    // docker stop sends SIGTERM to PID 1, which forwards it: the trap's exit code, at once.
    let id = run_ok_text(d.docker().args(["run", "-d", "--init", "busybox", "sh", "-c", "trap 'exit 7' TERM; while true; do sleep 0.1; done"]));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let t = std::time::Instant::now();
    run_ok_text(d.docker().args(["stop", "-t", "20", id.trim()]));
    assert!(t.elapsed() < std::time::Duration::from_secs(10), "SIGTERM did not reach the command");
    assert_eq!(run_ok_text(d.docker().args(["inspect", "-f", "{{.State.ExitCode}}", id.trim()])).trim(), "7");
    for (cmd, code) in [("nosuch", 127), ("/no/such", 127), ("/etc/passwd", 126), ("/etc", 126)] {
        let out = d.docker().args(["run", "--rm", "busybox", cmd]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{cmd}: {err}");
        assert!(err.contains(&format!("exec: \"{cmd}\"")), "{cmd}: {err}");
    }
    // The same through docker exec, in a running container.
    let id = run_ok_text(d.docker().args(["run", "-d", "busybox", "sleep", "60"]));
    for (cmd, code) in [("nosuch", 127), ("/etc/passwd", 126)] {
        let out = d.docker().args(["exec", id.trim(), cmd]).output().unwrap();
        assert_eq!(out.status.code(), Some(code), "exec {cmd}: {}", String::from_utf8_lossy(&out.stderr));
    }
    run_ok_text(d.docker().args(["rm", "-f", id.trim()]));
}

fn run_ok_text(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(out.status.success(), "{:?}: {}", c, String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
