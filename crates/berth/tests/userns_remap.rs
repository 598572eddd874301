//! `berth daemon --userns-remap`, through the real docker CLI: containers run as a
//! subordinate uid of a host user (root inside), own what they write in their volumes,
//! cannot write root's host files bound in, `--userns=host` opts out, what dockerd
//! refuses is refused, and the mapping survives a daemon SIGKILL.
//!
//! Each test makes a host user of its own (`berthrmt<N>`) with a range of subordinate
//! ids no other test uses (1,900,000 + N * 65536), and removes both when it ends.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_testutil::daemon::{TestDaemon, mounts_under, run_ok};

const LOCK: &str = "/run/berth-test-subid.lock";

/// A host user with a subordinate uid and gid range, removed (with its ranges) on drop.
struct RemapUser {
    name: String,
    start: u32,
}

/// Runs `f` holding the lock that every test's edit of /etc/subuid and /etc/subgid takes.
fn locked<T>(f: impl FnOnce() -> T) -> T {
    let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(LOCK).unwrap();
    // SAFETY: flock on a descriptor we own; released when `lock` is closed.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let r = f();
    drop(lock);
    r
}

fn strip(file: &str, name: &str) {
    let Ok(text) = std::fs::read_to_string(file) else { return };
    let kept: String = text.lines().filter(|l| l.split(':').next() != Some(name)).map(|l| format!("{l}\n")).collect();
    if kept != text {
        std::fs::write(file, kept).unwrap();
    }
}

fn useradd(args: &[&str]) {
    // useradd and userdel take /etc/passwd's lock: another test's may hold it a moment.
    for _ in 0..50 {
        let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
        if out.status.success() || String::from_utf8_lossy(&out.stderr).contains("does not exist") {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{args:?} kept failing");
}

impl RemapUser {
    fn new(n: u32, with_ranges: bool) -> RemapUser {
        let u = RemapUser { name: format!("berthrmt{n}"), start: 1_900_000 + n * 65536 };
        u.remove();
        useradd(&["useradd", "-r", "-M", "-s", "/bin/false", &u.name]);
        if with_ranges {
            locked(|| {
                for f in ["/etc/subuid", "/etc/subgid"] {
                    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(f).unwrap();
                    writeln!(file, "{}:{}:65536", u.name, u.start).unwrap();
                }
            });
        }
        u
    }

    fn remove(&self) {
        locked(|| {
            strip("/etc/subuid", &self.name);
            strip("/etc/subgid", &self.name);
        });
        if std::fs::read_to_string("/etc/passwd").unwrap_or_default().lines().any(|l| l.starts_with(&format!("{}:", self.name))) {
            useradd(&["userdel", &self.name]);
        }
    }
}

impl Drop for RemapUser {
    fn drop(&mut self) {
        self.remove();
    }
}

fn daemon(user: &RemapUser) -> TestDaemon {
    let d = TestDaemon::start_with(Path::new(env!("CARGO_BIN_EXE_berth")), &["--userns-remap", &user.name]);
    d.busybox_image("busybox:latest");
    d
}

fn fails(d: &TestDaemon, args: &[&str]) -> String {
    let out = d.docker().args(args).output().unwrap();
    assert!(!out.status.success(), "{args:?} should fail: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The host's view of a process: its `Uid:` line's real uid.
fn host_uid(pid: &str) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn container_root_is_the_first_subordinate_uid_and_owns_its_volume() {
    let user = RemapUser::new(1, true);
    let d = daemon(&user);
    let info = run_ok(d.docker().args(["info", "--format", "{{json .SecurityOptions}}"]));
    assert!(info.contains("name=userns"), "{info}");
    // Root inside, mapped to the range's first id; the image's files are root's inside.
    let out = run_ok(d.docker().args([
        "run", "--rm", "-v", "data:/data", "busybox", "sh", "-c",
        "id -u; cat /proc/self/uid_map /proc/self/gid_map; stat -c %u /bin/busybox; touch /data/made /made && echo wrote; echo 10.1.2.3 x >> /etc/hosts && echo hosts",
    ]));
    let words: Vec<&str> = out.split_whitespace().collect();
    let start = user.start.to_string();
    assert_eq!(words, ["0", "0", &start, "65536", "0", &start, "65536", "0", "wrote", "hosts"], "{out}");
    // The volume's data and what the container wrote there belong to the mapped root.
    let data = d.data_root.join("volumes/data/_data");
    for p in [data.clone(), data.join("made")] {
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!((m.uid(), m.gid()), (user.start, user.start), "{}", p.display());
    }
    // A running container: its process on the host is the subordinate uid; exec joins
    // the same namespace; logs work.
    run_ok(d.docker().args(["run", "-d", "--name", "app", "--memory", "64m", "--pids-limit", "50", "busybox", "sh", "-c", "echo started; sleep 300"]));
    let pid = run_ok(d.docker().args(["inspect", "-f", "{{.State.Pid}}", "app"]));
    assert_eq!(host_uid(&pid), user.start);
    // It is in its own cgroup in every hierarchy (the runtime's helper joins it before it
    // enters the user namespace, so the init is born there), and its limits hold there.
    let id = run_ok(d.docker().args(["inspect", "-f", "{{.Id}}", "app"]));
    let groups = std::fs::read_to_string(format!("/proc/{}/cgroup", pid.trim())).unwrap();
    let mut memory = None;
    for line in groups.lines() {
        let f: Vec<&str> = line.splitn(3, ':').collect();
        if f[1].starts_with("name=") || (f[1].is_empty() && groups.lines().count() > 1) {
            continue; // named hierarchies (systemd's) and the hybrid layout's empty v2 one
        }
        assert!(f[2].ends_with(id.trim()), "{line} is not the container's cgroup:\n{groups}");
        if f[1].split(',').any(|c| c == "memory") {
            memory = Some(format!("/sys/fs/cgroup/memory{}/memory.limit_in_bytes", f[2]));
        }
    }
    if let Some(limit) = memory {
        assert_eq!(std::fs::read_to_string(&limit).unwrap().trim(), "67108864", "{limit}");
    }
    assert_eq!(run_ok(d.docker().args(["exec", "app", "id", "-u"])).trim(), "0");
    let map = run_ok(d.docker().args(["exec", "app", "cat", "/proc/self/uid_map"]));
    assert_eq!(map.split_whitespace().collect::<Vec<_>>(), ["0", &start, "65536"]);
    let logs = eventually("the container's log", || Some(run_ok(d.docker().args(["logs", "app"]))).filter(|l| l.contains("started")));
    assert_eq!(logs, "started\n");
    // docker cp into it: the file is its root's (with -a: the archive's ids, mapped).
    let src = d.dir.join("to-copy");
    std::fs::write(&src, "copied\n").unwrap();
    std::os::unix::fs::chown(&src, Some(1234), Some(1235)).unwrap();
    run_ok(d.docker().arg("cp").arg(&src).arg("app:/tmp/plain"));
    run_ok(d.docker().args(["cp", "-a"]).arg(&src).arg("app:/tmp/archived"));
    assert_eq!(run_ok(d.docker().args(["exec", "app", "stat", "-c", "%u %g", "/tmp/plain", "/tmp/archived"])), "0 0\n1234 1235\n");
    // And out of it: the owners it sees, not the subordinate ids.
    let tar = d.docker().args(["cp", "app:/tmp", "-"]).output().unwrap();
    assert!(tar.status.success(), "{}", String::from_utf8_lossy(&tar.stderr));
    let listing = tar_listing(&tar.stdout);
    for (name, want) in [("tmp/plain", "0/0"), ("tmp/archived", "1234/1235")] {
        assert!(listing.iter().any(|(n, o)| n == name && o == want), "{name} {want}: {listing:?}");
    }
    // The inspect still says what was asked (nothing).
    assert_eq!(run_ok(d.docker().args(["inspect", "-f", "[{{.HostConfig.UsernsMode}}]", "app"])).trim(), "[]");
    run_ok(d.docker().args(["rm", "-f", "app"]));
}

#[test]
fn breakout_through_a_bind_of_roots_files_is_denied() {
    let user = RemapUser::new(2, true);
    let d = daemon(&user);
    let secret = d.dir.join("secret");
    std::fs::write(&secret, "host secret\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let world = d.dir.join("world-readable");
    std::fs::write(&world, "host file\n").unwrap();
    std::fs::set_permissions(&world, std::fs::Permissions::from_mode(0o644)).unwrap();
    let dir = d.dir.join("rootdir");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let binds = [format!("{}:/secret", secret.display()), format!("{}:/world", world.display()), format!("{}:/rootdir", dir.display())];
    let out = run_ok(d.docker().args([
        "run", "--rm", "-v", &binds[0], "-v", &binds[1], "-v", &binds[2], "busybox", "sh", "-c",
        "cat /secret >/dev/null 2>&1 || echo no-read; echo pwned > /secret 2>/dev/null || echo no-write; \
         echo pwned >> /world 2>/dev/null || echo no-append; cat /world; \
         touch /rootdir/x 2>/dev/null || echo no-create; chmod 777 /rootdir 2>/dev/null || echo no-chmod; \
         chown 0:0 /secret 2>/dev/null || echo no-chown; stat -c %u /secret",
    ]));
    // Root inside is nobody to root's host files: unmapped owner (65534), no access.
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["no-read", "no-write", "no-append", "host file", "no-create", "no-chmod", "no-chown", "65534"],
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host secret\n");
    assert_eq!(std::fs::read_to_string(&world).unwrap(), "host file\n");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    let m = std::fs::metadata(&secret).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o7777), (0, 0o600));
    assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o7777, 0o755);
}

#[test]
fn userns_host_opts_out_and_what_dockerd_refuses_is_refused() {
    let user = RemapUser::new(3, true);
    let d = daemon(&user);
    // --userns=host: the host's root, no mapping.
    let out = run_ok(d.docker().args(["run", "--rm", "--userns=host", "busybox", "cat", "/proc/self/uid_map"]));
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["0", "0", "4294967295"]);
    run_ok(d.docker().args(["run", "-d", "--name", "hostroot", "--userns=host", "busybox", "sleep", "300"]));
    let pid = run_ok(d.docker().args(["inspect", "-f", "{{.State.Pid}}", "hostroot"]));
    assert_eq!(host_uid(&pid), 0);
    run_ok(d.docker().args(["rm", "-f", "hostroot"]));
    // Privileged, the host's network or PID namespace: refused unless --userns=host.
    let err = fails(&d, &["run", "--rm", "--privileged", "busybox", "true"]);
    assert!(
        err.contains("privileged mode is incompatible with user namespaces.  You must run the container in the host namespace when running privileged mode"),
        "{err}"
    );
    assert_eq!(run_ok(d.docker().args(["run", "--rm", "--privileged", "--userns=host", "busybox", "id", "-u"])).trim(), "0");
    let err = fails(&d, &["run", "--rm", "--net=host", "busybox", "true"]);
    assert!(err.contains("cannot share the host's network namespace when user namespaces are enabled"), "{err}");
    let err = fails(&d, &["run", "--rm", "--pid=host", "busybox", "true"]);
    assert!(err.contains("cannot share the host PID namespace when user namespaces are enabled"), "{err}");
    run_ok(d.docker().args(["run", "--rm", "--net=host", "--pid=host", "--userns=host", "busybox", "true"]));
    // A UsernsMode other than "" and "host" (the docker CLI refuses it itself): 400.
    let (status, body) = post(&d, "/v1.47/containers/create", r#"{"Image":"busybox","HostConfig":{"UsernsMode":"private"}}"#);
    assert!(status.starts_with("HTTP/1.1 400"), "{status} {body}");
    assert!(body.contains("invalid USER mode: private"), "{body}");
    // A container sharing another's PID namespace shares its user namespace too.
    run_ok(d.docker().args(["run", "-d", "--name", "first", "busybox", "sleep", "300"]));
    let out = run_ok(d.docker().args(["run", "--rm", "--pid=container:first", "busybox", "sh", "-c", "cat /proc/self/uid_map; ps -o comm | grep -c sleep"]));
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["0", &user.start.to_string(), "65536", "1"], "{out}");
    run_ok(d.docker().args(["rm", "-f", "first"]));
}

#[test]
fn the_mapping_survives_a_daemon_sigkill_and_a_restart() {
    let user = RemapUser::new(4, true);
    let mut d = daemon(&user);
    run_ok(d.docker().args(["run", "-d", "--name", "app", "-v", "keep:/data", "busybox", "sh", "-c", "touch /data/before; sleep 300"]));
    d.restart();
    assert_eq!(run_ok(d.docker().args(["inspect", "-f", "{{.State.Running}}", "app"])).trim(), "true");
    assert_eq!(run_ok(d.docker().args(["exec", "app", "cat", "/proc/self/uid_map"])).split_whitespace().collect::<Vec<_>>(), [
        "0",
        &user.start.to_string(),
        "65536"
    ]);
    // Restarted by the new daemon: made again in the same mapping.
    run_ok(d.docker().args(["restart", "-t", "1", "app"]));
    let pid = run_ok(d.docker().args(["inspect", "-f", "{{.State.Pid}}", "app"]));
    assert_eq!(host_uid(&pid), user.start);
    assert_eq!(run_ok(d.docker().args(["exec", "app", "sh", "-c", "touch /data/after && stat -c %u /data/before /data/after"])), "0\n0\n");
    run_ok(d.docker().args(["rm", "-f", "app"]));
    assert!(!d.exec_root.join("userns").read_dir().map(|mut r| r.next().is_some()).unwrap_or(false), "a user namespace file was left");
}

/// Files in `dir` (none if it is not there).
fn files_in(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path().display().to_string()).collect();
    out.sort();
    out
}

#[test]
fn each_container_gets_namespaces_of_its_own_from_the_pool_and_nothing_is_left() {
    let user = RemapUser::new(7, true);
    let mut d = daemon(&user);
    let pool = d.exec_root.join("userns-pool");
    // The pool is made ahead (a user and a network namespace per entry, both mounted).
    let settled = || {
        eventually("the pool's namespaces", || {
            let (files, mounts) = (files_in(&pool), mounts_under(&pool));
            (files.len() == 4 && mounts.len() == 4).then_some(())
        });
    };
    settled();
    for n in ["one", "two"] {
        run_ok(d.docker().args(["run", "-d", "--name", n, "busybox", "sleep", "300"]));
    }
    // Two containers, two user and network namespaces, none the host's, none shared.
    let ns = |name: &str, kind: &str| {
        let pid = run_ok(d.docker().args(["inspect", "-f", "{{.State.Pid}}", name]));
        std::fs::read_link(format!("/proc/{}/ns/{kind}", pid.trim())).unwrap()
    };
    for kind in ["user", "net"] {
        let (a, b) = (ns("one", kind), ns("two", kind));
        let host = std::fs::read_link(format!("/proc/self/ns/{kind}")).unwrap();
        assert!(a != b && a != host && b != host, "{kind}: {a:?} {b:?} {host:?}");
    }
    // Still mapped as the remap says, loopback up, and the network works.
    let start = user.start.to_string();
    assert_eq!(run_ok(d.docker().args(["exec", "one", "cat", "/proc/self/uid_map"])).split_whitespace().collect::<Vec<_>>(), ["0", &start, "65536"]);
    let lo = run_ok(d.docker().args(["exec", "one", "cat", "/sys/class/net/lo/operstate", "/sys/class/net/eth0/operstate"]));
    assert!(!lo.contains("down"), "{lo}");
    // A container that joins one's network leaves the network namespace made for it unused:
    // it is dropped, not left mounted.
    run_ok(d.docker().args(["run", "--rm", "--network", "container:one", "busybox", "true"]));
    run_ok(d.docker().args(["run", "--rm", "--network", "none", "busybox", "true"]));
    settled();
    assert_eq!(files_in(&d.exec_root.join("netns")).len(), 2, "{:?}", files_in(&d.exec_root.join("netns")));
    // A SIGKILLed daemon's pool is cleared and made again by the next one.
    d.restart();
    settled();
    run_ok(d.docker().args(["rm", "-f", "one", "two"]));
    assert_eq!(files_in(&d.exec_root.join("netns")), Vec::<String>::new());
    assert_eq!(files_in(&d.exec_root.join("userns")), Vec::<String>::new());
    // A daemon that stops takes what it made ahead with it.
    d.stop();
    assert_eq!(mounts_under(&d.exec_root), Vec::<String>::new());
    assert_eq!(files_in(&pool), Vec::<String>::new());
}

#[test]
fn commit_export_and_build_record_owners_as_the_container_saw_them() {
    let user = RemapUser::new(6, true);
    let d = daemon(&user);
    // On disk the container's files are the subordinate ids'; in an image or an export
    // they are what the container saw.
    run_ok(d.docker().args(["run", "--name", "cm", "busybox", "sh", "-c", "echo hi > /made; mkdir /dir; chown 5:6 /dir"]));
    run_ok(d.docker().args(["commit", "cm", "committed:1"]));
    let out = run_ok(d.docker().args(["run", "--rm", "committed:1", "stat", "-c", "%n %u %g", "/made", "/dir", "/bin/busybox"]));
    assert_eq!(out, "/made 0 0\n/dir 5 6\n/bin/busybox 0 0\n");
    let tar = d.docker().args(["export", "cm"]).output().unwrap();
    assert!(tar.status.success());
    let listing = tar_listing(&tar.stdout);
    for (name, want) in [("made", "0/0"), ("dir/", "5/6"), ("bin/busybox", "0/0")] {
        assert!(listing.iter().any(|(n, o)| n.trim_start_matches("./") == name && o == want), "{name} {want}: {listing:?}");
    }
    let ctx = d.dir.join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN echo x > /built && chown 7:8 /built\n").unwrap();
    let out = d.docker().args(["build", "-q", "-t", "built:1"]).arg(&ctx).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(run_ok(d.docker().args(["run", "--rm", "built:1", "stat", "-c", "%u %g", "/built"])), "7 8\n");
    // And the same image run with --userns=host: the real ids.
    assert_eq!(run_ok(d.docker().args(["run", "--rm", "--userns=host", "built:1", "stat", "-c", "%u %g", "/built"])), "7 8\n");
}

/// (name, "uid/gid") of each entry of a tar stream (`tar -tv`'s owner column).
fn tar_listing(data: &[u8]) -> Vec<(String, String)> {
    let mut child = Command::new("tar").args(["--numeric-owner", "-tvf", "-"]).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.last().unwrap_or(&"").to_string(), f.get(1).unwrap_or(&"").to_string())
        })
        .collect()
}

#[test]
fn a_bad_remap_user_stops_the_daemon_with_one_line() {
    let no_ranges = RemapUser::new(5, false);
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("daemon")
            .args(["--data-root", &dir.path().join("data").display().to_string()])
            .args(["--exec-root", &dir.path().join("run").display().to_string()])
            .args(["-H", &format!("unix://{}", dir.path().join("run/berth.sock").display())])
            .args(["--bridge", "brmtnone", "--nft-table", "brmtnone", "--cgroup-parent", "/brmtnone"])
            .args(extra)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let lines: Vec<&str> = err.lines().filter(|l| !l.contains("level=")).collect();
        assert_eq!(lines.len(), 1, "{err}");
        lines[0].to_string()
    };
    let e = run(&["--userns-remap", "berthrmt-nobody", "--config-file", "/dev/null"]);
    assert!(e.contains("Error during uid lookup for \"berthrmt-nobody\""), "{e}");
    // A user without subordinate ranges, named in daemon.json.
    let cfg = dir.path().join("daemon.json");
    std::fs::write(&cfg, format!(r#"{{"userns-remap": "{}"}}"#, no_ranges.name)).unwrap();
    let e = run(&["--config-file", &cfg.display().to_string()]);
    assert!(e.contains(&format!("Can't create ID mappings: no subuid ranges found for user \"{}\"", no_ranges.name)), "{e}");
}

/// A raw HTTP POST over the daemon's socket: the status line and the body.
fn post(d: &TestDaemon, path: &str, body: &str) -> (String, String) {
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    write!(s, "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.lines().next().unwrap_or_default().to_string();
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} did not come");
        std::thread::sleep(Duration::from_millis(100));
    }
}
