//! Rootless mode on the real kernel, through the real docker CLI: an ordinary user
//! (`berthrl`, made once with a subordinate id range of its own) starts `berth daemon`
//! with no flag but its XDG directories, and
//! - the daemon re-executes itself in a user namespace mapped by newuidmap/newgidmap,
//!   puts its socket at `$XDG_RUNTIME_DIR/berth.sock` and its data under
//!   `~/.local/share/berth`, and says `rootless` in `docker info`;
//! - `docker run --rm busybox id` is root inside, while on the host the container's
//!   init runs as the user's uid;
//! - a file made in a bind-mounted directory belongs to the user on the host;
//! - `-p 127.0.0.1:PORT:80` reaches busybox httpd through slirp4netns;
//! - a daemon killed with SIGKILL comes back in the namespaces its shims hold: running
//!   containers keep their port and take execs, new ones start;
//! - `--network none` and `--network host` work; a user-defined network and `--memory`
//!   are refused with one clear line;
//! - after `rm` and a daemon stop nothing is left: no slirp4netns, no process of the
//!   user, no mount in the host's table.
//!
//! The test binary runs as root (as in CI); the daemon runs as `berthrl` through
//! `setpriv`. Its files live in a 0755 temp dir of its own, with a copy of the `berth`
//! binary (the build tree may be under /root, closed to other users).

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_testutil::daemon::{docker_cli, run_ok};

const USER: &str = "berthrl";
/// berthrl's subordinate ids when useradd gave it none: far above what other tests
/// hand out (userns_remap's users take 1,900,000 + N * 65536 for small N).
const SUB_START: u32 = 4_200_000;
const SUB_COUNT: u32 = 65536;

/// berthrl's (first) subordinate uid range, as /etc/subuid says.
fn sub_range() -> (u32, u32) {
    let text = std::fs::read_to_string("/etc/subuid").unwrap();
    text.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() == 3 && f[0] == USER).then(|| (f[1].parse().unwrap(), f[2].parse().unwrap()))
        })
        .unwrap()
}
/// The lock every test's edit of /etc/passwd, /etc/subuid and /etc/subgid takes.
const LOCK: &str = "/run/berth-test-subid.lock";

fn locked<T>(f: impl FnOnce() -> T) -> T {
    let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(LOCK).unwrap();
    // SAFETY: flock on a descriptor we own; released when `lock` is closed.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let r = f();
    drop(lock);
    r
}

/// berthrl's uid and gid; the user and its ranges are made the first time.
fn ensure_user() -> (u32, u32) {
    locked(|| {
        let id = |flag: &str| Command::new("id").args([flag, USER]).output().ok().filter(|o| o.status.success()).and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<u32>().ok());
        if id("-u").is_none() {
            let mut ok = false;
            for _ in 0..50 {
                let out = Command::new("useradd").args(["-M", "-s", "/bin/sh", USER]).output().unwrap();
                if out.status.success() || String::from_utf8_lossy(&out.stderr).contains("already exists") {
                    ok = true;
                    break;
                }
                // /etc/passwd's lock may be held a moment by another test's useradd.
                std::thread::sleep(Duration::from_millis(100));
            }
            assert!(ok, "useradd {USER} kept failing");
        }
        for file in ["/etc/subuid", "/etc/subgid"] {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            if !text.lines().any(|l| l.split(':').next() == Some(USER)) {
                let mut t = text.clone();
                if !t.is_empty() && !t.ends_with('\n') {
                    t.push('\n');
                }
                t.push_str(&format!("{USER}:{SUB_START}:{SUB_COUNT}\n"));
                std::fs::write(file, t).unwrap();
            }
        }
        // slirp4netns, run by the user, opens /dev/net/tun: Debian's udev makes it 0666,
        // machines without udev leave it 0600 (scripts/setup.sh fixes that too).
        let tun = std::fs::metadata("/dev/net/tun").unwrap();
        if tun.permissions().mode() & 0o777 != 0o666 {
            std::fs::set_permissions("/dev/net/tun", std::fs::Permissions::from_mode(0o666)).unwrap();
        }
        (id("-u").unwrap(), id("-g").unwrap())
    })
}

/// One HTTP/1.0 exchange on the API socket: (status, body).
fn api(socket: &Path, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "{method} {path} HTTP/1.0\r\nHost: berth\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    (head[9..12].parse().unwrap(), body.to_string())
}

/// Pids of every process whose real uid is `uid` or whose command line names `needle`.
fn processes_of(uid: u32, needle: &str) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    let me = std::process::id() as i32;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        if pid == me {
            continue;
        }
        let cmd = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default()).replace('\0', " ");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let ruid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().next()).and_then(|u| u.parse::<u32>().ok());
        if ruid == Some(uid) || cmd.contains(needle) {
            out.push((pid, cmd));
        }
    }
    out
}

/// A rootless daemon of berthrl's, killed with its whole tree on drop.
struct Rootless {
    dir: tempfile::TempDir,
    uid: u32,
    gid: u32,
    child: Option<Child>,
    started: bool,
}

impl Rootless {
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    fn socket(&self) -> PathBuf {
        self.path("run/berth.sock")
    }
    fn docker(&self) -> Command {
        let mut c = Command::new(docker_cli());
        c.env("DOCKER_HOST", format!("unix://{}", self.socket().display())).env("DOCKER_CONFIG", self.path("docker-config")).env_remove("DOCKER_CONTEXT");
        c
    }
    fn log(&self) -> String {
        std::fs::read_to_string(self.path("daemon.log")).unwrap_or_default()
    }

    /// Makes the directories (owned by berthrl) and copies the binary.
    fn new() -> Rootless {
        let (uid, gid) = ensure_user();
        let dir = tempfile::Builder::new().prefix("berth-rl-").tempdir_in("/tmp").unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let r = Rootless { dir, uid, gid, child: None, started: false };
        std::fs::create_dir(r.path("bin")).unwrap();
        std::fs::copy(env!("CARGO_BIN_EXE_berth"), r.path("bin/berth")).unwrap();
        std::fs::set_permissions(r.path("bin"), std::fs::Permissions::from_mode(0o755)).unwrap();
        for (d, mode) in [("home", 0o755), ("run", 0o700), ("shared", 0o755)] {
            std::fs::create_dir(r.path(d)).unwrap();
            std::fs::set_permissions(r.path(d), std::fs::Permissions::from_mode(mode)).unwrap();
            std::os::unix::fs::chown(r.path(d), Some(uid), Some(gid)).unwrap();
        }
        r
    }

    /// `berth daemon ARGS` as `user`, with only its XDG environment.
    fn command(&self, user: &str, args: &[&str]) -> Command {
        let mut c = self.berth_as(user);
        c.arg("daemon").args(args);
        c
    }

    /// `berth ...` as `user`, with only its XDG environment (no DOCKER_HOST).
    fn berth_as(&self, user: &str) -> Command {
        let gid = String::from_utf8(Command::new("id").args(["-g", user]).output().unwrap().stdout).unwrap();
        let mut c = Command::new("setpriv");
        c.args(["--reuid", user, "--regid", gid.trim(), "--init-groups", "--"])
            .arg(self.path("bin/berth"))
            .env_clear()
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", self.path("home"))
            .env("XDG_RUNTIME_DIR", self.path("run"));
        c
    }

    fn start(&mut self) {
        let log = std::fs::File::create(self.path("daemon.log")).unwrap();
        let child = self.command(USER, &[]).stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log).spawn().unwrap();
        self.child = Some(child);
        self.started = true;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !berth_testutil::daemon::ping(&self.socket()) {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the rootless daemon exited ({st}):\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "the rootless daemon did not answer:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM to the daemon (its re-exec parent forwards it), then wait.
    fn stop(&mut self) {
        let Some(mut c) = self.child.take() else { return };
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while c.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the rootless daemon did not stop on SIGTERM:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Processes of this daemon: those naming its directory, and (once it was started)
    /// every process of berthrl's uid, which only this test's daemon runs.
    /// SIGKILL to both daemon processes (the re-exec parent and the daemon): shims,
    /// containers, slirp4netns and the shim zygote live on.
    fn kill9(&mut self) {
        let daemon = format!("{} daemon", self.path("bin/berth").display());
        for (pid, _) in processes_of(u32::MAX, &daemon) {
            // SAFETY: SIGKILL to a process id.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    fn leftovers(&self) -> Vec<(i32, String)> {
        processes_of(if self.started { self.uid } else { u32::MAX }, &self.dir.path().to_string_lossy())
    }
}

impl Drop for Rootless {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // The daemon's tree: shims, slirp4netns, containers (all run as berthrl's uid
        // or name this directory).
        for _ in 0..20 {
            let left = self.leftovers();
            if left.is_empty() {
                break;
            }
            for (pid, _) in left {
                // SAFETY: SIGKILL to a process id.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        berth_testutil::daemon::unmount_under(self.dir.path());
    }
}

fn http_get(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn an_ordinary_user_runs_containers_rootless() {
    berth_testutil::require_root();
    let mut d = Rootless::new();
    // daemon.json at its rootless default, ~/.config/berth/daemon.json.
    std::fs::create_dir_all(d.path("home/.config/berth")).unwrap();
    std::fs::write(d.path("home/.config/berth/daemon.json"), r#"{"labels": ["from=rootless-daemon-json"]}"#).unwrap();
    for p in ["home/.config", "home/.config/berth", "home/.config/berth/daemon.json"] {
        std::os::unix::fs::chown(d.path(p), Some(d.uid), Some(d.gid)).unwrap();
    }
    d.start();

    // Docker's rootless defaults: socket in XDG_RUNTIME_DIR, data under ~/.local/share.
    let info = run_ok(d.docker().args(["info", "--format", "{{json .SecurityOptions}} {{.DockerRootDir}} {{.CgroupDriver}} {{.Labels}}"]));
    assert!(info.contains("from=rootless-daemon-json"), "{info}");
    assert!(info.contains("name=rootless"), "{info}");
    assert!(info.contains(&d.path("home/.local/share/berth").display().to_string()), "{info}");
    assert!(info.contains("none"), "{info}");
    let sock = std::fs::metadata(d.socket()).unwrap();
    assert_eq!(sock.uid(), d.uid, "the socket belongs to the user");

    // An image through `docker import`; its layer is unpacked in the user namespace.
    let scratch = d.path("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let tar = scratch.join("busybox.tar");
    std::fs::write(&tar, berth_testutil::busybox_rootfs_tar(&scratch)).unwrap();
    let out = d.docker().args(["import", "-c", "CMD [\"sh\"]"]).arg(&tar).arg("busybox:latest").output().unwrap();
    assert!(out.status.success(), "docker import: {}\n{}", String::from_utf8_lossy(&out.stderr), d.log());
    // On disk the layer's root-owned files belong to the user (uid 0 inside).
    let data = d.path("home/.local/share/berth");
    let busybox_on_disk = walk_find(&data.join("layers"), "busybox").unwrap_or_else(|| panic!("no busybox under {}", data.display()));
    assert_eq!(std::fs::symlink_metadata(&busybox_on_disk).unwrap().uid(), d.uid, "{}", busybox_on_disk.display());

    // Root inside.
    let id = run_ok(d.docker().args(["run", "--rm", "busybox", "id"]));
    assert!(id.starts_with("uid=0(root) gid=0(root)"), "{id}");
    let map = run_ok(d.docker().args(["run", "--rm", "busybox", "cat", "/proc/self/uid_map"]));
    let rows: Vec<Vec<String>> = map.lines().map(|l| l.split_whitespace().map(str::to_string).collect()).collect();
    let (start, count) = sub_range();
    assert_eq!(rows, vec![vec!["0".to_string(), d.uid.to_string(), "1".into()], vec!["1".into(), start.to_string(), count.to_string()]], "{map}");

    // berth's own CLI, run by the user with no host given, finds the rootless daemon.
    assert_eq!(run_ok(d.berth_as(USER).args(["run", "--rm", "busybox", "echo", "via-berth"])).trim(), "via-berth");

    // The user's uid on the host.
    run_ok(d.docker().args(["run", "-d", "--name", "sleeper", "busybox", "sleep", "1000"]));
    let pid: i32 = run_ok(d.docker().args(["inspect", "-f", "{{.State.Pid}}", "sleeper"])).trim().parse().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uids: Vec<u32> = status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap().split_whitespace().map(|u| u.parse().unwrap()).collect();
    assert_eq!(uids, vec![d.uid; 4], "{status}");
    assert!(std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap().starts_with("sleep"));
    // exec joins it.
    assert_eq!(run_ok(d.docker().args(["exec", "sleeper", "id", "-u"])).trim(), "0");

    // A bind mount: what the container's root writes is the user's on the host.
    let shared = d.path("shared");
    run_ok(d.docker().args(["run", "--rm", "-v", &format!("{}:/data", shared.display()), "busybox", "sh", "-c", "echo hi > /data/made-inside"]));
    let m = std::fs::metadata(shared.join("made-inside")).unwrap();
    assert_eq!((m.uid(), m.gid()), (d.uid, d.gid));

    // -p through slirp4netns, reachable on the host's loopback.
    let port = free_port();
    run_ok(d.docker().args([
        "run", "-d", "--name", "web", "-p", &format!("127.0.0.1:{port}:80"), "busybox", "sh", "-c",
        "mkdir -p /www && echo hello-rootless > /www/index.html && exec httpd -f -p 80 -h /www",
    ]));
    let deadline = Instant::now() + Duration::from_secs(15);
    let body = loop {
        match http_get(port) {
            Some(b) if b.contains("hello-rootless") => break b,
            other => {
                assert!(Instant::now() < deadline, "no answer on 127.0.0.1:{port}: {other:?}\n{}", d.log());
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    assert!(body.starts_with("HTTP/1."), "{body}");
    let ports = run_ok(d.docker().args(["port", "web"]));
    assert!(ports.contains(&format!("80/tcp -> 127.0.0.1:{port}")), "{ports}");
    let ip = run_ok(d.docker().args(["inspect", "-f", "{{.NetworkSettings.Networks.bridge.IPAddress}}", "web"]));
    assert_eq!(ip.trim(), "10.0.2.100");
    let slirps = |d: &Rootless| d.leftovers().into_iter().filter(|(_, c)| c.starts_with("slirp4netns")).count();
    assert_eq!(slirps(&d), 2, "one slirp4netns for each of `sleeper` and `web`");
    // The container reaches the outside world's DNS forwarder address; its resolv.conf says so.
    let resolv = run_ok(d.docker().args(["exec", "web", "cat", "/etc/resolv.conf"]));
    assert!(resolv.contains("nameserver 10.0.2.3"), "{resolv}");

    // Live restore: a daemon killed outright comes back in the same user and mount
    // namespaces (it joins those its shims and zygote hold), so running containers
    // keep their network and take execs, and new ones start.
    d.kill9();
    d.start();
    assert_eq!(run_ok(d.docker().args(["exec", "sleeper", "id", "-u"])).trim(), "0");
    assert!(http_get(port).is_some_and(|b| b.contains("hello-rootless")), "web lost its port over the restart");
    assert_eq!(run_ok(d.docker().args(["run", "--rm", "busybox", "echo", "after-restart"])).trim(), "after-restart");
    let ps = run_ok(d.docker().args(["ps", "--format", "{{.Names}}"]));
    assert!(ps.contains("sleeper") && ps.contains("web"), "{ps}");

    // --network none and host.
    let links = run_ok(d.docker().args(["run", "--rm", "--network", "none", "busybox", "ip", "-o", "link"]));
    assert_eq!(links.lines().count(), 1, "only lo: {links}");
    run_ok(d.docker().args(["run", "--rm", "--network", "host", "busybox", "true"]));

    // Refusals: one line, status 125 from the CLI (a 400 from the API).
    let out = d.docker().args(["run", "--rm", "--memory", "10m", "busybox", "true"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    // The daemon's message is one line, whole (the CLI adds its own usage hint below).
    assert!(err.lines().any(|l| l.contains("--memory: resource limits are not supported in rootless mode") && l.trim_end().ends_with("(docs/rootless.md)")), "{err}");
    let (status, body) = api(&d.socket(), "POST", "/v1.45/containers/create", r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"PidsLimit":10}}"#);
    assert_eq!(status, 400, "{body}");
    let msg = serde_json::from_str::<serde_json::Value>(&body).unwrap()["message"].as_str().unwrap().to_string();
    assert!(msg.starts_with("--pids-limit: resource limits are not supported in rootless mode") && !msg.contains('\n'), "{msg}");
    let out = d.docker().args(["network", "create", "mynet"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("not supported in rootless mode"), "{err}");
    let names = run_ok(d.docker().args(["ps", "-a", "--format", "{{.Names}}"]));
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(names, ["sleeper", "web"], "the refused run made no container");

    // Cleanup: rm takes slirp4netns along; a stopped daemon leaves nothing.
    run_ok(d.docker().args(["rm", "-f", "sleeper", "web"]));
    assert_eq!(slirps(&d), 0, "slirp4netns outlived its container");
    assert!(http_get(port).is_none(), "the published port is still served");
    d.stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = d.leftovers();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = d.dir.path().to_string_lossy().into_owned();
    assert!(!mounts.lines().any(|l| l.contains(&dir)), "mounts of the rootless daemon in the host's table:\n{mounts}");
}

/// Starting rootless needs subordinate ids: a user without any gets one line saying so.
#[test]
fn a_user_without_subordinate_ids_is_told_what_to_do() {
    berth_testutil::require_root();
    let d = Rootless::new();
    // `nobody` has no ranges in /etc/subuid on these machines (and none is added here).
    let subuid = std::fs::read_to_string("/etc/subuid").unwrap_or_default();
    assert!(!subuid.lines().any(|l| l.starts_with("nobody:") || l.starts_with("65534:")), "nobody has ranges here");
    let out = d.command("nobody", &[]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no subordinate uid range for user \"nobody\"") && err.contains("docs/rootless.md"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // And --rootless as root is refused rather than half-done.
    let out = Command::new(d.path("bin/berth")).args(["daemon", "--rootless"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--rootless is for an ordinary user"), "{err}");
}

fn walk_find(dir: &Path, name: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        let t = e.file_type().ok()?;
        if t.is_file() && e.file_name() == name {
            return Some(p);
        }
        if t.is_dir()
            && let Some(f) = walk_find(&p, name)
        {
            return Some(f);
        }
    }
    None
}
