//! Helpers for the runtime's real-kernel tests: a busybox bundle per test, unique ids and
//! cgroup paths, output capture, and guards that remove everything a test made.

#![allow(dead_code)]

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use berth_runtime::{CreateOptions, Runtime};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// create/run/exec clone from the calling thread: with `cargo test`'s thread pool every
/// test holds this lock so no other test thread is mid-allocation at a clone.
pub static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

static N: AtomicU32 = AtomicU32::new(0);

/// A test-unique name: "<prefix>-<pid>-<n>".
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A bundle (rootfs + config.json) and a state root in one short temp dir. Drop deletes
/// the container (force) and the test's cgroup parent on every hierarchy.
pub struct TestBundle {
    pub tmp: tempfile::TempDir,
    pub bundle: PathBuf,
    pub rt: Runtime,
    pub id: String,
    pub cgroup_parent: String,
    pub config: Value,
}

impl TestBundle {
    pub fn new(args: &[&str]) -> Self {
        berth_testutil::require_root();
        let tmp = berth_testutil::short_tempdir("brt");
        // A mapped (unprivileged) container root must be able to reach the rootfs.
        std::fs::set_permissions(tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let bundle = tmp.path().join("b");
        berth_testutil::busybox_rootfs(&bundle.join("rootfs")).unwrap();
        let id = unique("c");
        let cgroup_parent = format!("/{}", unique("berth-test"));
        let mut config = serde_json::to_value(berth_runtime::default_spec()).unwrap();
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(args);
        config["linux"]["cgroupsPath"] = json!(format!("{cgroup_parent}/{id}"));
        config["hostname"] = json!("berth-test");
        let rt = Runtime::new(tmp.path().join("state"));
        TestBundle { tmp, bundle, rt, id, cgroup_parent, config }
    }

    pub fn write(&self) {
        std::fs::write(self.bundle.join("config.json"), serde_json::to_vec_pretty(&self.config).unwrap()).unwrap();
    }

    /// Runs the container to completion; returns (exit code or 128+signal, stdout+stderr).
    pub fn run(&self) -> (i32, String) {
        self.write();
        let (r, w) = pipe();
        let w2 = w.try_clone().unwrap();
        let opts = CreateOptions { stdio: Some([devnull(), w, w2]), ..Default::default() };
        let st = self.rt.run(&self.id, &self.bundle, opts).unwrap_or_else(|e| panic!("run failed: {e}"));
        // Even a process that is already gone is reported with its pid, to be reaped.
        assert!(st.pid > 0, "run returned pid {}", st.pid);
        let out = read_all(r);
        let code = wait(st.pid);
        (code, out)
    }

    pub fn cgroup_dir(&self, controller: &str) -> PathBuf {
        Path::new("/sys/fs/cgroup").join(controller).join(format!("{}/{}", self.cgroup_parent, self.id).trim_start_matches('/'))
    }
}

impl Drop for TestBundle {
    fn drop(&mut self) {
        let _ = self.rt.delete(&self.id, true);
        // Every hierarchy the host mounts (hugetlb may be mounted by the benchmark).
        let hierarchies = std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten();
        for h in hierarchies {
            let p = h.path().join(self.cgroup_parent.trim_start_matches('/'));
            let _ = std::fs::remove_dir(p.join(&self.id));
            let _ = std::fs::remove_dir(p);
        }
    }
}

pub fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap()
}

pub fn devnull() -> OwnedFd {
    std::fs::File::open("/dev/null").unwrap().into()
}

pub fn read_all(fd: OwnedFd) -> String {
    let mut f = std::fs::File::from(fd);
    let mut s = String::new();
    let _ = f.read_to_string(&mut s);
    s
}

/// waitpid -> exit code, or 128+signal like a shell.
pub fn wait(pid: i32) -> i32 {
    match waitpid(Pid::from_raw(pid), None).unwrap() {
        WaitStatus::Exited(_, c) => c,
        WaitStatus::Signaled(_, s, _) => 128 + s as i32,
        other => panic!("unexpected wait status {other:?}"),
    }
}

pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
        .unwrap_or(false)
}

pub fn fd_num(fd: &OwnedFd) -> i32 {
    fd.as_raw_fd()
}
