//! A berth daemon for one test: its own data root, exec root, socket, bridge, subnets,
//! nftables table and cgroup parent, all torn down on drop — even after a failed test,
//! and (through the slot files) after a test process that was killed outright.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SLOTS: u32 = 120;
const SLOT_DIR: &str = "/tmp/berth-test-slots";

/// A slot gives non-overlapping names and subnets to concurrently running daemons.
struct Slot {
    n: u32,
    path: PathBuf,
}

impl Slot {
    fn acquire(dir: &Path) -> Slot {
        std::fs::create_dir_all(SLOT_DIR).expect("slot dir");
        let start = std::process::id() % SLOTS;
        for i in 0..SLOTS * 4 {
            let n = (start + i) % SLOTS;
            let path = PathBuf::from(SLOT_DIR).join(n.to_string());
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    std::fs::write(path.join("owner"), format!("{}\n{}\n", std::process::id(), dir.display())).expect("slot owner");
                    return Slot { n, path };
                }
                Err(_) => {
                    // A slot whose owner process is gone: clean what it left and take it.
                    let owner = std::fs::read_to_string(path.join("owner")).unwrap_or_default();
                    let mut lines = owner.lines();
                    let pid: i32 = lines.next().and_then(|p| p.parse().ok()).unwrap_or(0);
                    let old_dir = lines.next().map(PathBuf::from);
                    // SAFETY: kill with signal 0 only checks whether the process exists.
                    let alive = pid > 0 && unsafe { libc::kill(pid, 0) } == 0;
                    let fresh = std::fs::metadata(&path).and_then(|m| m.modified()).map(|t| t.elapsed().unwrap_or_default() < Duration::from_secs(2)).unwrap_or(false);
                    if !alive && !fresh {
                        cleanup_slot(n, old_dir.as_deref());
                        let _ = std::fs::remove_dir_all(&path);
                    }
                }
            }
            if i % SLOTS == SLOTS - 1 {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        panic!("no free test daemon slot under {SLOT_DIR}");
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

pub fn bridge_name(slot: u32) -> String {
    format!("btd{slot}")
}

pub fn nft_table(slot: u32) -> String {
    format!("btd{slot}")
}

pub fn cgroup_parent(slot: u32) -> String {
    format!("/btd{slot}")
}

/// Removes everything a daemon in `slot` (with its files under `dir`) may have left.
fn cleanup_slot(slot: u32, dir: Option<&Path>) {
    if let Some(dir) = dir {
        kill_processes_mentioning(dir);
    }
    kill_cgroup_tree(&cgroup_parent(slot));
    if let Some(dir) = dir {
        unmount_under(dir);
    }
    let _ = Command::new("ip").args(["link", "del", &bridge_name(slot)]).stderr(Stdio::null()).status();
    // User networks' bridges and veths carry the daemon's tag in their alias.
    for link in tagged_links(&format!("berth:{}:", nft_table(slot))) {
        let _ = Command::new("ip").args(["link", "del", &link]).stderr(Stdio::null()).status();
    }
    for family in ["inet", "ip"] {
        let _ = Command::new("nft").args(["delete", "table", family, &nft_table(slot)]).stderr(Stdio::null()).status();
    }
    crate::net::remove_berth_iptables(&nft_table(slot));
    crate::remove_cgroup_tree(&cgroup_parent(slot));
    if let Some(dir) = dir {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Host interfaces whose alias starts with `prefix` (`ip -o link` prints it last).
fn tagged_links(prefix: &str) -> Vec<String> {
    let out = Command::new("ip").args(["-o", "link", "show"]).output().map(|o| o.stdout).unwrap_or_default();
    String::from_utf8_lossy(&out)
        .lines()
        .filter(|l| l.split(" alias ").nth(1).is_some_and(|a| a.trim().starts_with(prefix)))
        .filter_map(|l| l.split(": ").nth(1).map(|n| n.split('@').next().unwrap_or(n).to_string()))
        .collect()
}

/// Shims and daemons of this test: their command lines name its directory.
fn kill_processes_mentioning(dir: &Path) {
    let needle = dir.to_string_lossy().into_owned();
    let Ok(rd) = std::fs::read_dir("/proc") else { return };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        if pid == std::process::id() as i32 {
            continue;
        }
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(&needle) {
            // SAFETY: sending SIGKILL to a process id; no memory is involved.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Kills every process in a cgroup tree (containers of this daemon).
fn kill_cgroup_tree(rel: &str) {
    let rel = rel.trim_start_matches('/');
    for _ in 0..3 {
        let mut any = false;
        for root in ["/sys/fs/cgroup/pids", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/freezer", "/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
            let base = Path::new(root).join(rel);
            // Thaw first: a frozen process cannot die.
            for_each_dir(&base, &mut |d| {
                let _ = std::fs::write(d.join("freezer.state"), "THAWED");
                let _ = std::fs::write(d.join("cgroup.freeze"), "0");
            });
            for_each_dir(&base, &mut |d| {
                if let Ok(procs) = std::fs::read_to_string(d.join("cgroup.procs")) {
                    for p in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                        any = true;
                        // SAFETY: sending SIGKILL to a process id.
                        unsafe { libc::kill(p, libc::SIGKILL) };
                    }
                }
            });
        }
        if !any {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn for_each_dir(d: &Path, f: &mut dyn FnMut(&Path)) {
    if !d.is_dir() {
        return;
    }
    f(d);
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                for_each_dir(&e.path(), f);
            }
        }
    }
}

/// The superblock options of the mount at `target` (the last field of its mountinfo
/// line), if something is mounted there.
pub fn mount_options(target: &Path) -> Option<String> {
    let t = target.to_string_lossy().into_owned();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines().find(|l| l.split(' ').nth(4) == Some(t.as_str())).and_then(|l| l.rsplit(' ').next()).map(str::to_string)
}

/// Mount points at or below `dir`, as this process's mount namespace has them.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.to_string_lossy().into_owned();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| p.replace("\\040", " "))
        .filter(|p| p == &prefix || p.starts_with(&format!("{prefix}/")))
        .collect()
}

/// [`mounts_under`] less the namespaces a running daemon keeps made ahead for starts
/// (`<exec-root>/netns-pool/`, and `userns-pool/` with `--userns-remap`): what
/// containers left, not the daemon's own.
pub fn container_mounts_under(dir: &Path) -> Vec<String> {
    mounts_under(dir).into_iter().filter(|p| !p.contains("/netns-pool/") && !p.contains("/userns-pool/")).collect()
}

/// Lazily unmounts every mount at or below `dir`, deepest first.
pub fn unmount_under(dir: &Path) {
    for _ in 0..3 {
        let mut points = mounts_under(dir);
        if points.is_empty() {
            return;
        }
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let c = std::ffi::CString::new(p).unwrap_or_default();
            // SAFETY: c is a valid NUL-terminated path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

pub struct DaemonOptions {
    pub extra_args: Vec<String>,
}

pub struct TestDaemon {
    bin: PathBuf,
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub slot: u32,
    args: Vec<String>,
    /// The network namespace the daemon runs in (None: the host's).
    netns: Option<PathBuf>,
    envs: Vec<(String, String)>,
    child: Option<Child>,
    _slot: Slot,
}

impl TestDaemon {
    /// A raw HTTP/1.1 exchange on the API socket, for what the docker CLI hides (status
    /// codes, headers, bodies of old API versions): (status, head, body de-chunked).
    pub fn raw_http(&self, method: &str, path: &str, body: &str) -> (u16, String, Vec<u8>) {
        self.raw_http_with(method, path, &[], body)
    }

    /// [`TestDaemon::raw_http`] with more request headers (a client's `User-Agent`).
    pub fn raw_http_with(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String, Vec<u8>) {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&self.socket).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
        let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
        write!(s, "{method} {path} HTTP/1.1\r\nHost: berth\r\nConnection: close\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
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

    /// Starts `bin daemon` and waits until it answers.
    pub fn start(bin: &Path) -> TestDaemon {
        TestDaemon::start_with(bin, &[])
    }

    pub fn start_with(bin: &Path, extra: &[&str]) -> TestDaemon {
        TestDaemon::start_full(bin, None, extra, &[], false)
    }

    /// A daemon that also serves the Kubernetes CRI on [`TestDaemon::cri_socket`].
    pub fn start_cri(bin: &Path, extra: &[&str]) -> TestDaemon {
        TestDaemon::start_full(bin, None, extra, &[], true)
    }

    /// With environment variables for the daemon (and so its shims).
    pub fn start_with_env(bin: &Path, extra: &[&str], envs: &[(&str, &str)]) -> TestDaemon {
        TestDaemon::start_full(bin, None, extra, envs, false)
    }

    /// Starts the daemon inside the network namespace at `netns` (a path such as
    /// /run/netns/<name>), so that its bridges and rules land there.
    pub fn start_in(bin: &Path, netns: Option<&Path>, extra: &[&str]) -> TestDaemon {
        TestDaemon::start_full(bin, netns, extra, &[], false)
    }

    fn start_full(bin: &Path, netns: Option<&Path>, extra: &[&str], envs: &[(&str, &str)], cri: bool) -> TestDaemon {
        crate::require_root();
        let dir = tempfile::Builder::new().prefix("btd").tempdir_in("/tmp").expect("temp dir").keep();
        let slot = Slot::acquire(&dir);
        cleanup_slot(slot.n, None);
        let n = slot.n;
        let data_root = dir.join("data");
        let exec_root = dir.join("run");
        let socket = exec_root.join("berth.sock");
        let mut args: Vec<String> = vec![
            "daemon".into(),
            "--data-root".into(),
            data_root.display().to_string(),
            "--exec-root".into(),
            exec_root.display().to_string(),
            "-H".into(),
            format!("unix://{}", socket.display()),
            "--bridge".into(),
            bridge_name(n),
            "--bip".into(),
            format!("172.29.{n}.1/24"),
            "--default-address-pool".into(),
            format!("base=10.{}.0.0/16,size=24", 100 + n),
            "--nft-table".into(),
            nft_table(n),
            "--cgroup-parent".into(),
            cgroup_parent(n),
            "--config-file".into(),
            dir.join("daemon.json").display().to_string(),
        ];
        std::fs::write(dir.join("daemon.json"), "{}").expect("daemon.json");
        if cri {
            args.extend(["--cri-socket".to_string(), format!("unix://{}", exec_root.join("cri.sock").display())]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let envs = envs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut d = TestDaemon {
            bin: bin.to_path_buf(),
            dir,
            socket,
            data_root,
            exec_root,
            slot: n,
            args,
            netns: netns.map(Path::to_path_buf),
            envs,
            child: None,
            _slot: slot,
        };
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("daemon.log")).expect("daemon log");
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.display())).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        let child = cmd
            .args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start berth daemon");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let cri = self.args.iter().any(|a| a == "--cri-socket");
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(st)) = c.try_wait()
            {
                panic!("berth daemon exited ({st}) before answering:\n{}", self.log());
            }
            if ping(&self.socket) && (!cri || self.cri_socket().exists()) {
                return;
            }
            if Instant::now() > deadline {
                panic!("berth daemon did not answer in 30s:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// `unix:///...`, for DOCKER_HOST.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The real docker CLI, pointed at this daemon (with its own config dir).
    pub fn docker(&self) -> Command {
        let mut c = Command::new(docker_cli());
        c.env("DOCKER_HOST", self.host()).env("DOCKER_CONFIG", self.dir.join("docker-config")).env_remove("DOCKER_CONTEXT");
        c
    }

    /// berth's own CLI, pointed at this daemon.
    pub fn berth(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.env("BERTH_HOST", self.host()).env("DOCKER_HOST", self.host()).env("DOCKER_CONFIG", self.dir.join("docker-config"));
        c
    }

    /// The CRI socket of a daemon made by [`TestDaemon::start_cri`].
    pub fn cri_socket(&self) -> PathBuf {
        self.exec_root.join("cri.sock")
    }

    /// crictl (cri-tools), pointed at this daemon's CRI socket.
    pub fn crictl(&self) -> Command {
        let ep = format!("unix://{}", self.cri_socket().display());
        // A config of its own, so crictl looks for no /etc/crictl.yaml.
        let cfg = self.dir.join("crictl.yaml");
        if !cfg.exists() {
            std::fs::write(&cfg, format!("runtime-endpoint: {ep}\nimage-endpoint: {ep}\ntimeout: 60\n")).expect("crictl.yaml");
        }
        let mut c = Command::new(crate::cri_tool("crictl"));
        c.arg("--config").arg(cfg);
        c
    }

    /// Kills the daemon with SIGKILL (containers and shims live on).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the daemon again on the same directories.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Stops the daemon as a service manager would (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: sending SIGTERM to our own child's pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(20);
            while c.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = c.kill();
                    panic!("berth daemon did not stop on SIGTERM:\n{}", self.log());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Starts the daemon again after [`TestDaemon::stop`] or [`TestDaemon::kill9`].
    pub fn start_again(&mut self) {
        self.spawn();
    }

    /// The daemon's arguments (to start another one like it).
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Replaces the daemon's arguments for the next start.
    pub fn set_args(&mut self, args: Vec<String>) {
        self.args = args;
    }

    /// Imports a busybox root filesystem as image `name` (e.g. "busybox:latest") with
    /// `CMD ["sh"]`, through the docker CLI.
    pub fn busybox_image(&self, name: &str) {
        let rootfs = self.dir.join("bb-rootfs");
        if !rootfs.exists() {
            crate::busybox_rootfs(&rootfs).expect("busybox rootfs");
        }
        let mut tar = Command::new("tar").arg("-C").arg(&rootfs).args(["-cf", "-", "."]).stdout(Stdio::piped()).spawn().expect("tar");
        let out = self
            .docker()
            .args(["import", "-c", "CMD [\"sh\"]", "-", name])
            .stdin(tar.stdout.take().expect("tar stdout"))
            .output()
            .expect("docker import");
        let _ = tar.wait();
        assert!(out.status.success(), "docker import failed: {}\n{}", String::from_utf8_lossy(&out.stderr), self.log());
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        self.kill9();
        cleanup_slot(self.slot, Some(&self.dir));
    }
}

/// A free TCP port on 127.0.0.1, for a daemon started with
/// `TestDaemon::start_with(bin, &["-H", &format!("tcp://127.0.0.1:{port}"), "--insecure-plain-tcp"])`
/// (plain HTTP for tools such as schemathesis; loopback only).
pub fn free_loopback_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// The docker CLI binary (28.x at /usr/local/bin/docker on these machines).
pub fn docker_cli() -> PathBuf {
    for p in ["/usr/local/bin/docker", "/usr/bin/docker"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    PathBuf::from("docker")
}

/// GET /_ping over the socket.
pub fn ping(socket: &Path) -> bool {
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(socket) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /_ping HTTP/1.1\r\nHost: berth\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    use std::io::Read;
    matches!(s.read(&mut buf), Ok(n) if n > 12 && buf.starts_with(b"HTTP/1.1 200"))
}

/// Output of a command, checked.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run command");
    assert!(
        out.status.success(),
        "{:?} failed ({}):\nstdout: {}\nstderr: {}",
        cmd,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
