//! A small cgroupfs writer: one [`Manager`] per container over either cgroup v1 (one
//! directory per controller hierarchy) or cgroup v2 (one unified directory), chosen from what
//! the host mounts. Every manager takes the hierarchy's mount path as a parameter, so the v2
//! manager is tested against a plain file tree and against a real cgroup2 mount.
//!
//! Nothing here forks: these calls are safe from a multi-threaded daemon.

pub mod devices;
mod fs;
pub mod stats;
pub mod v1;
pub mod v2;

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

use crate::error::{Error, Result};
use crate::rootfs::CgroupView;
pub use stats::Stats;

/// How the host mounts cgroups.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Layout {
    /// cgroup v1 hierarchies (a hybrid host may also have a controller-less cgroup2).
    V1 { hierarchies: Vec<V1Hierarchy>, unified: Option<PathBuf> },
    /// Pure cgroup v2 at `mount` (normally /sys/fs/cgroup).
    V2 { mount: PathBuf },
    /// No cgroup at all: a runtime in a user namespace (rootless) with no writable,
    /// delegated hierarchy and a spec that names no cgroup. As runc's rootless mode, the
    /// container runs where its caller's processes are; limits are refused, not ignored.
    Disabled,
}

/// One mounted v1 hierarchy.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct V1Hierarchy {
    pub mountpoint: PathBuf,
    /// The controllers bound to it (e.g. ["cpu", "cpuacct"]).
    pub controllers: Vec<String>,
}

impl Layout {
    /// Reads /proc/self/mountinfo.
    pub fn detect() -> Result<Layout> {
        let text = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| Error::io("read /proc/self/mountinfo", e))?;
        Layout::from_mountinfo(&text)
    }

    /// [`Layout::detect`] once per process: what a create uses. The shim zygote calls it
    /// before its first fork, so every shim inherits the answer instead of reading a
    /// mountinfo that grows with each running container's mounts. (A hierarchy mounted
    /// while the daemon runs is seen by containers created after its restart.)
    pub fn detect_once() -> Result<Layout> {
        static LAYOUT: std::sync::OnceLock<Layout> = std::sync::OnceLock::new();
        if let Some(l) = LAYOUT.get() {
            return Ok(l.clone());
        }
        let l = Layout::detect()?;
        Ok(LAYOUT.get_or_init(|| l).clone())
    }

    /// Picks v2 when /sys/fs/cgroup itself is cgroup2, v1 when controllers are mounted as
    /// v1 hierarchies.
    pub fn from_mountinfo(text: &str) -> Result<Layout> {
        let mut hierarchies = Vec::new();
        let mut unified = None;
        for line in text.lines() {
            let Some((left, right)) = line.split_once(" - ") else { continue };
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            if l.len() < 5 || r.len() < 3 {
                continue;
            }
            let mountpoint = PathBuf::from(unescape(l[4]));
            match r[0] {
                "cgroup2" => {
                    if mountpoint == Path::new("/sys/fs/cgroup") {
                        return Ok(Layout::V2 { mount: mountpoint });
                    }
                    if unified.is_none() {
                        unified = Some(mountpoint);
                    }
                }
                "cgroup" => {
                    let controllers: Vec<String> = r[2]
                        .split(',')
                        .filter(|o| {
                            !matches!(*o, "rw" | "ro" | "relatime" | "noatime" | "nosuid" | "nodev" | "noexec")
                                && !o.starts_with("name=")
                                && !o.starts_with("release_agent")
                                && *o != "clone_children"
                                && *o != "xattr"
                                && *o != "noprefix"
                                && *o != "cpuset_v2_mode"
                        })
                        .map(str::to_string)
                        .collect();
                    // Named hierarchies (name=systemd) carry no controller: not ours to manage.
                    if controllers.is_empty() {
                        continue;
                    }
                    if hierarchies.iter().any(|h: &V1Hierarchy| h.mountpoint == mountpoint) {
                        continue;
                    }
                    hierarchies.push(V1Hierarchy { mountpoint, controllers });
                }
                _ => {}
            }
        }
        if hierarchies.is_empty() {
            return match unified {
                Some(mount) => Ok(Layout::V2 { mount }),
                None => Err(Error::Unsupported("no cgroup filesystem is mounted".into())),
            };
        }
        Ok(Layout::V1 { hierarchies, unified })
    }
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

/// Normalises linux.cgroupsPath: absolute within the hierarchy, no `..`. Empty means
/// `/berth/<id>`.
pub fn normalize_path(spec_path: Option<&Path>, id: &str) -> Result<String> {
    let raw = match spec_path {
        Some(p) if !p.as_os_str().is_empty() => p.to_string_lossy().into_owned(),
        _ => format!("/berth/{id}"),
    };
    if raw.contains(':') {
        return Err(Error::Unsupported(format!(
            "cgroupsPath {raw:?} looks like a systemd slice path; berth's runtime drives cgroupfs only"
        )));
    }
    let mut parts = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err(Error::InvalidSpec(format!("cgroupsPath {raw:?} may not contain '..'")));
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(Error::InvalidSpec("cgroupsPath may not be the root cgroup".into()));
    }
    Ok(format!("/{}", parts.join("/")))
}

/// The cgroup of one container.
pub trait Manager: Send + Sync {
    /// The cgroup path inside the hierarchy ("/parent/id").
    fn path(&self) -> &str;
    /// Makes the directories (and on v2 enables controllers in the parents).
    fn create(&self) -> Result<()>;
    /// Whether the container's cgroup directory is already there.
    fn exists(&self) -> bool;
    /// Moves a process in.
    fn add(&self, pid: i32) -> Result<()>;
    /// Moves the calling, single-threaded process in from inside. On v1, a thread that
    /// writes "0" to `tasks` skips the global lock that moving a whole process through
    /// cgroup.procs takes, and with it an RCU grace period (~10 ms a container).
    /// False where there is no such way (v2): the parent uses [`Manager::add`].
    fn join_self(&self) -> Result<bool> {
        Ok(false)
    }
    /// The cgroup directory to start a child in with clone3(CLONE_INTO_CGROUP) (v2
    /// only); None where that does not exist.
    fn clone_target(&self) -> Option<std::os::fd::OwnedFd> {
        None
    }
    /// Applies limits (create and `update`).
    fn set(&self, resources: &LinuxResources) -> Result<()>;
    fn freeze(&self) -> Result<()>;
    fn thaw(&self) -> Result<()>;
    fn is_frozen(&self) -> Result<bool>;
    /// Host pids of every process in the cgroup.
    fn pids(&self) -> Result<Vec<i32>>;
    fn stats(&self) -> Result<Stats>;
    /// How many times the kernel OOM-killed a process of this cgroup.
    fn oom_kills(&self) -> Result<u64>;
    /// Kills everything at once where the kernel can (v2 cgroup.kill); false if it cannot.
    fn kill_all(&self) -> Result<bool>;
    /// Removes the directories; processes must be gone.
    fn destroy(&self) -> Result<()>;
    /// What a `cgroup` mount in the container shows.
    fn view(&self, own_namespace: bool) -> CgroupView;
}

/// The manager for `path` on this layout.
pub fn manager(layout: &Layout, path: &str) -> Box<dyn Manager> {
    match layout {
        Layout::V1 { hierarchies, .. } => Box::new(v1::V1Manager::new(hierarchies.clone(), path)),
        Layout::V2 { mount } => Box::new(v2::V2Manager::new(mount.clone(), path)),
        Layout::Disabled => Box::new(NoCgroup),
    }
}

/// True when the runtime itself runs in a user namespace other than the initial one
/// (the rootless daemon's): host cgroupfs, device numbers, sysfs and raising limits are
/// then out of reach, as for runc's rootless mode.
pub fn in_user_namespace() -> bool {
    static IN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IN.get_or_init(|| {
        let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
        let f: Vec<&str> = map.split_whitespace().collect();
        !(f.is_empty() || f == ["0", "0", "4294967295"])
    })
}

/// True when `r` asks for any limit a cgroup would have to enforce. Device rules do not
/// count: without a cgroup the container has no device nodes but the standard ones,
/// which a rootless runtime binds from the host (it cannot make them).
pub fn has_limits(r: &LinuxResources) -> bool {
    let mem = r.memory().as_ref().is_some_and(|m| {
        [m.limit(), m.reservation(), m.swap(), m.kernel(), m.kernel_tcp()].iter().any(|v| v.is_some_and(|v| v > 0)) || m.swappiness().is_some() || m.disable_oom_killer() == Some(true)
    });
    let cpu = r.cpu().as_ref().is_some_and(|c| {
        c.shares().is_some_and(|v| v > 0) || c.quota().is_some_and(|v| v > 0) || c.period().is_some_and(|v| v > 0) || c.cpus().as_ref().is_some_and(|v| !v.is_empty()) || c.mems().as_ref().is_some_and(|v| !v.is_empty()) || c.realtime_runtime().is_some_and(|v| v > 0)
    });
    let pids = r.pids().as_ref().is_some_and(|p| p.limit() > 0);
    let blkio = r.block_io().as_ref().is_some_and(|b| {
        b.weight().is_some_and(|w| w > 0) || b.throttle_read_bps_device().as_ref().is_some_and(|v| !v.is_empty()) || b.throttle_write_bps_device().as_ref().is_some_and(|v| !v.is_empty()) || b.throttle_read_iops_device().as_ref().is_some_and(|v| !v.is_empty()) || b.throttle_write_iops_device().as_ref().is_some_and(|v| !v.is_empty()) || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
    });
    let other = r.hugepage_limits().as_ref().is_some_and(|v| !v.is_empty()) || r.unified().as_ref().is_some_and(|v| !v.is_empty());
    mem || cpu || pids || blkio || other
}

/// [`Layout::Disabled`]'s manager: nothing to make, nothing to read. Stats and freezing
/// are refused with a reason; signalling falls back to the init (see `signal_all`).
struct NoCgroup;

const NO_CGROUP: &str = "no cgroup: the runtime runs rootless without a delegated cgroup v2 hierarchy";

impl Manager for NoCgroup {
    fn path(&self) -> &str {
        ""
    }
    fn create(&self) -> Result<()> {
        Ok(())
    }
    fn exists(&self) -> bool {
        false
    }
    fn add(&self, _pid: i32) -> Result<()> {
        Ok(())
    }
    fn set(&self, resources: &LinuxResources) -> Result<()> {
        if has_limits(resources) {
            return Err(Error::Unsupported(format!("resource limits need a cgroup ({NO_CGROUP})")));
        }
        Ok(())
    }
    fn freeze(&self) -> Result<()> {
        Err(Error::Unsupported(format!("pause needs the freezer ({NO_CGROUP})")))
    }
    fn thaw(&self) -> Result<()> {
        Err(Error::Unsupported(format!("unpause needs the freezer ({NO_CGROUP})")))
    }
    fn is_frozen(&self) -> Result<bool> {
        Ok(false)
    }
    fn pids(&self) -> Result<Vec<i32>> {
        Ok(Vec::new())
    }
    fn stats(&self) -> Result<Stats> {
        Err(Error::Unsupported(format!("stats need a cgroup ({NO_CGROUP})")))
    }
    fn oom_kills(&self) -> Result<u64> {
        Ok(0)
    }
    fn kill_all(&self) -> Result<bool> {
        Ok(false)
    }
    fn destroy(&self) -> Result<()> {
        Ok(())
    }
    fn view(&self, _own_namespace: bool) -> CgroupView {
        CgroupView::V1 { hierarchies: Vec::new() }
    }
}

/// Checks values before anything is written, so bad input changes nothing.
pub fn validate(r: &LinuxResources) -> Result<()> {
    let bad = |what: &str, why: String| Err(Error::InvalidSpec(format!("linux.resources.{what}: {why}")));
    if let Some(m) = r.memory() {
        for (name, v) in [("memory.limit", m.limit()), ("memory.reservation", m.reservation()), ("memory.swap", m.swap())] {
            if let Some(v) = v
                && v < -1 {
                    return bad(name, format!("{v} is negative (use -1 for unlimited)"));
                }
        }
        if let (Some(l), Some(s)) = (m.limit(), m.swap())
            && l > 0 && s > 0 && s < l {
                return bad("memory.swap", format!("memory+swap {s} is below the memory limit {l}"));
            }
        if let Some(s) = m.swappiness()
            && s > 100 {
                return bad("memory.swappiness", format!("{s} is above 100"));
            }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares()
            && s != 0 && !(2..=262144).contains(&s) {
                return bad("cpu.shares", format!("{s} is outside 2..262144"));
            }
        if let Some(q) = c.quota()
            && (q < -1 || (q > 0 && q < 1000)) {
                return bad("cpu.quota", format!("{q} must be -1, 0 or at least 1000 microseconds"));
            }
        if let Some(p) = c.period()
            && p != 0 && !(1000..=1_000_000).contains(&p) {
                return bad("cpu.period", format!("{p} is outside 1000..1000000 microseconds"));
            }
        for (what, v) in [("cpu.cpus", c.cpus()), ("cpu.mems", c.mems())] {
            if let Some(v) = v
                && !valid_cpu_list(v) {
                    return bad(what, format!("{v:?} is not a list like 0-3,5"));
                }
        }
    }
    if let Some(b) = r.block_io()
        && let Some(w) = b.weight()
            && w != 0 && !(10..=1000).contains(&w) {
                return bad("blockIO.weight", format!("{w} is outside 10..1000"));
            }
    if let Some(u) = r.unified() {
        for k in u.keys() {
            if k.contains('/') || k.starts_with('.') || !k.contains('.') {
                return bad("unified", format!("{k:?} is not a cgroup interface file name"));
            }
        }
    }
    Ok(())
}

fn valid_cpu_list(s: &str) -> bool {
    let s = s.trim();
    if s.is_empty() {
        return true;
    }
    s.split(',').all(|part| {
        let mut it = part.splitn(2, '-');
        let a = it.next().unwrap_or("");
        let ok_a = !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit());
        match it.next() {
            None => ok_a,
            Some(b) => ok_a && !b.is_empty() && b.bytes().all(|x| x.is_ascii_digit()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_cgroup_device_rules_pass_and_limits_are_refused() {
        use oci_spec::runtime::{LinuxDeviceCgroupBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder};
        let devices = LinuxResourcesBuilder::default().devices(vec![LinuxDeviceCgroupBuilder::default().allow(false).access("rwm").build().unwrap()]).build().unwrap();
        assert!(!has_limits(&devices));
        let m = manager(&Layout::Disabled, "");
        m.create().unwrap();
        m.set(&devices).unwrap();
        assert!(m.pids().unwrap().is_empty() && !m.exists());
        let mem = LinuxResourcesBuilder::default().memory(LinuxMemoryBuilder::default().limit(10 << 20).build().unwrap()).build().unwrap();
        assert!(has_limits(&mem));
        assert!(matches!(m.set(&mem), Err(Error::Unsupported(_))));
        let pids = LinuxResourcesBuilder::default().pids(LinuxPidsBuilder::default().limit(5).build().unwrap()).build().unwrap();
        assert!(has_limits(&pids));
        assert!(matches!(m.stats(), Err(Error::Unsupported(_))));
    }

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn detects_hybrid_v1() {
        let l = Layout::from_mountinfo(HYBRID).unwrap();
        let Layout::V1 { hierarchies, unified } = l else { panic!("not v1") };
        assert_eq!(hierarchies.len(), 3);
        assert_eq!(hierarchies[0].controllers, vec!["cpu"]);
        assert_eq!(hierarchies[2].mountpoint, PathBuf::from("/sys/fs/cgroup/memory"));
        assert_eq!(unified, Some(PathBuf::from("/sys/fs/cgroup/unified")));
    }

    #[test]
    fn detects_pure_v2() {
        let l = Layout::from_mountinfo("30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n").unwrap();
        assert_eq!(l, Layout::V2 { mount: "/sys/fs/cgroup".into() });
        let combined = "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
        let Layout::V1 { hierarchies, .. } = Layout::from_mountinfo(combined).unwrap() else { panic!() };
        assert_eq!(hierarchies[0].controllers, vec!["cpu", "cpuacct"]);
        assert!(Layout::from_mountinfo("").is_err());
    }

    #[test]
    fn paths_are_normalized() {
        assert_eq!(normalize_path(Some(Path::new("a/b")), "x").unwrap(), "/a/b");
        assert_eq!(normalize_path(None, "x").unwrap(), "/berth/x");
        assert!(normalize_path(Some(Path::new("/a/../b")), "x").is_err());
        assert!(normalize_path(Some(Path::new("system.slice:docker:x")), "x").is_err());
        assert!(normalize_path(Some(Path::new("/")), "x").is_err());
    }

    #[test]
    fn validation_rejects_bad_values() {
        use oci_spec::runtime::{LinuxCpuBuilder, LinuxMemoryBuilder, LinuxResourcesBuilder};
        let r = LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().limit(-5i64).build().unwrap())
            .build()
            .unwrap();
        assert!(validate(&r).unwrap_err().to_string().contains("memory.limit"));
        let r = LinuxResourcesBuilder::default()
            .cpu(LinuxCpuBuilder::default().shares(1u64).build().unwrap())
            .build()
            .unwrap();
        assert!(validate(&r).is_err());
        let r = LinuxResourcesBuilder::default()
            .cpu(LinuxCpuBuilder::default().cpus("0-x").build().unwrap())
            .build()
            .unwrap();
        assert!(validate(&r).is_err());
        let r = LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().limit(1 << 30).swap(1i64 << 29).build().unwrap())
            .build()
            .unwrap();
        assert!(validate(&r).is_err());
        let ok = LinuxResourcesBuilder::default()
            .cpu(LinuxCpuBuilder::default().shares(512u64).quota(50000i64).period(100000u64).cpus("0-1").build().unwrap())
            .build()
            .unwrap();
        validate(&ok).unwrap();
    }
}
