//! cgroup v1: one directory per mounted hierarchy (cpu, cpuacct, memory, pids, ...).

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use super::fs;
use super::stats::{BlkioEntry, Stats};
use super::{Manager, V1Hierarchy};
use crate::error::{Error, Result};
use crate::rootfs::CgroupView;

pub struct V1Manager {
    hierarchies: Vec<V1Hierarchy>,
    path: String,
}

/// USER_HZ: cpuacct.stat counts in clock ticks of 1/100 s on every Linux we run on.
const NS_PER_TICK: u64 = 10_000_000;

impl V1Manager {
    pub fn new(hierarchies: Vec<V1Hierarchy>, path: &str) -> Self {
        V1Manager {
            hierarchies,
            path: path.to_string(),
        }
    }

    /// The container's directory in the hierarchy holding `controller`.
    fn dir(&self, controller: &str) -> Option<PathBuf> {
        self.hierarchies
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
            .map(|h| h.mountpoint.join(self.path.trim_start_matches('/')))
    }

    fn need(&self, controller: &str, what: &str) -> Result<PathBuf> {
        self.dir(controller).ok_or_else(|| {
            Error::Unsupported(format!(
                "{what} needs the cgroup v1 {controller} controller, which this host does not mount"
            ))
        })
    }

    fn dirs(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.hierarchies
            .iter()
            .map(|h| h.mountpoint.join(self.path.trim_start_matches('/')))
    }

    /// cpuset refuses tasks in a cgroup whose cpus/mems are empty: copy them down from
    /// the parent at every level we create.
    fn create_cpuset(&self, mountpoint: &Path) -> Result<()> {
        let mut cur = mountpoint.to_path_buf();
        for part in self.path.split('/').filter(|p| !p.is_empty()) {
            let parent = cur.clone();
            cur.push(part);
            mkdir(&cur)?;
            for f in ["cpuset.cpus", "cpuset.mems"] {
                let mine = fs::read(&cur, f).unwrap_or_default();
                if mine.trim().is_empty() {
                    let theirs = fs::read(&parent, f)?;
                    fs::write(&cur, f, theirs.trim())?;
                }
            }
        }
        Ok(())
    }

    fn set_memory(&self, r: &LinuxResources) -> Result<()> {
        let Some(m) = r.memory() else { return Ok(()) };
        let dir = self.need("memory", "a memory limit")?;
        let has_memsw = dir.join("memory.memsw.limit_in_bytes").exists();
        let limit = m.limit().filter(|v| *v != 0);
        let mut swap = m.swap().filter(|v| *v != 0);
        if let Some(s) = swap
            && !has_memsw {
                // Without swap accounting only "no swap beyond memory" or "unlimited" is
                // expressible; anything else must not silently vanish.
                if s == -1 || Some(s) == limit {
                    swap = None;
                } else {
                    return Err(Error::Unsupported(format!(
                        "memory+swap limit {s}: swap accounting is disabled on this host (no memory.memsw.limit_in_bytes)"
                    )));
                }
            }
        match (limit, swap) {
            (Some(l), Some(s)) => {
                // memsw must always stay >= limit, so the order depends on the direction.
                let cur = fs::read_u64(&dir, "memory.limit_in_bytes")?;
                if s == -1 || (cur as i128) < s as i128 {
                    fs::write(&dir, "memory.memsw.limit_in_bytes", &s.to_string())?;
                    fs::write(&dir, "memory.limit_in_bytes", &l.to_string())?;
                } else {
                    fs::write(&dir, "memory.limit_in_bytes", &l.to_string())?;
                    fs::write(&dir, "memory.memsw.limit_in_bytes", &s.to_string())?;
                }
            }
            (Some(l), None) => fs::write(&dir, "memory.limit_in_bytes", &l.to_string())?,
            (None, Some(s)) => fs::write(&dir, "memory.memsw.limit_in_bytes", &s.to_string())?,
            (None, None) => {}
        }
        if let Some(v) = m.reservation().filter(|v| *v != 0) {
            fs::write(&dir, "memory.soft_limit_in_bytes", &v.to_string())?;
        }
        if let Some(v) = m.swappiness() {
            fs::write(&dir, "memory.swappiness", &v.to_string())?;
        }
        if m.disable_oom_killer() == Some(true) {
            fs::write(&dir, "memory.oom_control", "1")?;
        }
        Ok(())
    }

    fn set_cpu(&self, r: &LinuxResources) -> Result<()> {
        let Some(c) = r.cpu() else { return Ok(()) };
        let wants_cpu = c.shares().is_some_and(|v| v != 0)
            || c.quota().is_some_and(|v| v != 0)
            || c.period().is_some_and(|v| v != 0)
            || c.realtime_runtime().is_some()
            || c.realtime_period().is_some();
        if wants_cpu {
            let dir = self.need("cpu", "a cpu limit")?;
            if let Some(v) = c.shares().filter(|v| *v != 0) {
                fs::write(&dir, "cpu.shares", &v.to_string())?;
            }
            if let Some(v) = c.period().filter(|v| *v != 0) {
                fs::write(&dir, "cpu.cfs_period_us", &v.to_string())?;
            }
            if let Some(v) = c.quota().filter(|v| *v != 0) {
                fs::write(&dir, "cpu.cfs_quota_us", &v.to_string())?;
            }
            if let Some(v) = c.realtime_period() {
                fs::write(&dir, "cpu.rt_period_us", &v.to_string())?;
            }
            if let Some(v) = c.realtime_runtime() {
                fs::write(&dir, "cpu.rt_runtime_us", &v.to_string())?;
            }
        }
        for (file, v) in [("cpuset.cpus", c.cpus()), ("cpuset.mems", c.mems())] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                let dir = self.need("cpuset", "a cpuset")?;
                fs::write(&dir, file, v)?;
            }
        }
        Ok(())
    }

    fn set_blkio(&self, r: &LinuxResources) -> Result<()> {
        let Some(b) = r.block_io() else { return Ok(()) };
        let needs = b.weight().is_some_and(|w| w != 0)
            || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
            || [
                b.throttle_read_bps_device(),
                b.throttle_write_bps_device(),
                b.throttle_read_iops_device(),
                b.throttle_write_iops_device(),
            ]
            .iter()
            .any(|v| v.as_ref().is_some_and(|v| !v.is_empty()));
        if !needs {
            return Ok(());
        }
        let dir = self.need("blkio", "a block IO limit")?;
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            let file = ["blkio.weight", "blkio.bfq.weight"]
                .into_iter()
                .find(|f| dir.join(f).exists())
                .ok_or_else(|| {
                    Error::Unsupported(
                        "blkio weight: this host's I/O scheduler offers no blkio.weight or blkio.bfq.weight".into(),
                    )
                })?;
            fs::write(&dir, file, &w.to_string())?;
        }
        for wd in b.weight_device().iter().flatten() {
            if let Some(w) = wd.weight() {
                fs::write(&dir, "blkio.weight_device", &format!("{}:{} {w}", wd.major(), wd.minor()))?;
            }
        }
        for (file, list) in [
            ("blkio.throttle.read_bps_device", b.throttle_read_bps_device()),
            ("blkio.throttle.write_bps_device", b.throttle_write_bps_device()),
            ("blkio.throttle.read_iops_device", b.throttle_read_iops_device()),
            ("blkio.throttle.write_iops_device", b.throttle_write_iops_device()),
        ] {
            for t in list.iter().flatten() {
                fs::write(&dir, file, &format!("{}:{} {}", t.major(), t.minor(), t.rate()))?;
            }
        }
        Ok(())
    }

    fn set_devices(&self, rules: &[LinuxDeviceCgroup]) -> Result<()> {
        let dir = self.need("devices", "device rules")?;
        for rule in rules {
            let file = if rule.allow() { "devices.allow" } else { "devices.deny" };
            fs::write(&dir, file, &device_rule(rule))?;
        }
        Ok(())
    }
}

/// "c 1:3 rwm" as devices.allow / devices.deny take it.
pub(crate) fn device_rule(rule: &LinuxDeviceCgroup) -> String {
    let t = match rule.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::C | LinuxDeviceType::U => 'c',
        LinuxDeviceType::B => 'b',
        LinuxDeviceType::P => 'p',
        LinuxDeviceType::A => 'a',
    };
    let num = |v: Option<i64>| v.filter(|n| *n >= 0).map(|n| n.to_string()).unwrap_or_else(|| "*".into());
    let access = rule.access().clone().filter(|a| !a.is_empty()).unwrap_or_else(|| "rwm".into());
    format!("{t} {}:{} {access}", num(rule.major()), num(rule.minor()))
}

fn mkdir(p: &Path) -> Result<()> {
    match std::fs::create_dir(p) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(Error::Cgroup {
            file: p.to_path_buf(),
            reason: format!("cannot create: {e}"),
        }),
        _ => Ok(()),
    }
}

fn blkio_entries(dir: &Path, file: &str) -> Vec<BlkioEntry> {
    let Ok(text) = fs::read(dir, file) else { return vec![] };
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let dev = it.next()?;
            let op = it.next()?;
            let value = it.next()?.parse().ok()?;
            let (ma, mi) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: ma.parse().ok()?,
                minor: mi.parse().ok()?,
                op: op.to_string(),
                value,
            })
        })
        .collect()
}

impl Manager for V1Manager {
    fn path(&self) -> &str {
        &self.path
    }

    fn exists(&self) -> bool {
        self.dirs().any(|d| d.exists())
    }

    fn create(&self) -> Result<()> {
        for h in &self.hierarchies {
            if h.controllers.iter().any(|c| c == "cpuset") {
                self.create_cpuset(&h.mountpoint)?;
            } else {
                let dir = h.mountpoint.join(self.path.trim_start_matches('/'));
                std::fs::create_dir_all(&dir).map_err(|e| Error::Cgroup {
                    file: dir.clone(),
                    reason: format!("cannot create: {e}"),
                })?;
            }
        }
        Ok(())
    }

    fn add(&self, pid: i32) -> Result<()> {
        let p = pid.to_string();
        for dir in self.dirs() {
            fs::write(&dir, "cgroup.procs", &p)?;
        }
        Ok(())
    }

    fn join_self(&self) -> Result<bool> {
        for dir in self.dirs() {
            fs::write(&dir, "tasks", "0")?;
        }
        Ok(true)
    }

    fn set(&self, r: &LinuxResources) -> Result<()> {
        if let Some(d) = r.devices()
            && !d.is_empty() {
                self.set_devices(d)?;
            }
        self.set_memory(r)?;
        self.set_cpu(r)?;
        if let Some(p) = r.pids() {
            let dir = self.need("pids", "a pids limit")?;
            let v = if p.limit() > 0 { p.limit().to_string() } else { "max".into() };
            fs::write(&dir, "pids.max", &v)?;
        }
        self.set_blkio(r)?;
        if let Some(h) = r.hugepage_limits() {
            for l in h {
                let dir = self.need("hugetlb", "a hugepage limit")?;
                fs::write(&dir, &format!("hugetlb.{}.limit_in_bytes", l.page_size()), &l.limit().to_string())?;
            }
        }
        if let Some(n) = r.network() {
            if let Some(id) = n.class_id() {
                let dir = self.need("net_cls", "a network class id")?;
                fs::write(&dir, "net_cls.classid", &id.to_string())?;
            }
            for p in n.priorities().iter().flatten() {
                let dir = self.need("net_prio", "a network priority")?;
                fs::write(&dir, "net_prio.ifpriomap", &format!("{} {}", p.name(), p.priority()))?;
            }
        }
        if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
            return Err(Error::Unsupported(
                "linux.resources.unified needs cgroup v2; this host runs cgroup v1".into(),
            ));
        }
        Ok(())
    }

    fn freeze(&self) -> Result<()> {
        let dir = self.need("freezer", "pause")?;
        for _ in 0..1000 {
            fs::write(&dir, "freezer.state", "FROZEN")?;
            if fs::read(&dir, "freezer.state")?.trim() == "FROZEN" {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let _ = fs::write(&dir, "freezer.state", "THAWED");
        Err(Error::Cgroup {
            file: dir.join("freezer.state"),
            reason: "the cgroup did not freeze".into(),
        })
    }

    fn thaw(&self) -> Result<()> {
        let dir = self.need("freezer", "resume")?;
        fs::write(&dir, "freezer.state", "THAWED")
    }

    fn is_frozen(&self) -> Result<bool> {
        let Some(dir) = self.dir("freezer") else { return Ok(false) };
        match fs::read(&dir, "freezer.state") {
            Ok(s) => Ok(s.trim() == "FROZEN"),
            Err(_) => Ok(false),
        }
    }

    fn pids(&self) -> Result<Vec<i32>> {
        let dir = ["pids", "freezer", "memory", "cpu", "devices"]
            .iter()
            .find_map(|c| self.dir(c))
            .or_else(|| self.dirs().next())
            .ok_or_else(|| Error::Unsupported("no cgroup hierarchy is mounted".into()))?;
        fs::read_pids(&dir)
    }

    fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        if let Some(d) = self.dir("memory") {
            let m = &mut s.memory;
            m.raw = fs::read_keyed(&d, "memory.stat").unwrap_or_default();
            m.cache = m.raw.get("cache").copied().unwrap_or(0);
            m.usage.usage = fs::read_u64_or_zero(&d, "memory.usage_in_bytes");
            m.usage.max = fs::read_u64_or_zero(&d, "memory.max_usage_in_bytes");
            m.usage.limit = fs::read_u64_or_zero(&d, "memory.limit_in_bytes");
            m.usage.failcnt = fs::read_u64_or_zero(&d, "memory.failcnt");
            m.swap.usage = fs::read_u64_or_zero(&d, "memory.memsw.usage_in_bytes");
            m.swap.max = fs::read_u64_or_zero(&d, "memory.memsw.max_usage_in_bytes");
            m.swap.limit = fs::read_u64_or_zero(&d, "memory.memsw.limit_in_bytes");
            m.swap.failcnt = fs::read_u64_or_zero(&d, "memory.memsw.failcnt");
            m.kernel.usage = fs::read_u64_or_zero(&d, "memory.kmem.usage_in_bytes");
            m.kernel.max = fs::read_u64_or_zero(&d, "memory.kmem.max_usage_in_bytes");
            m.kernel.limit = fs::read_u64_or_zero(&d, "memory.kmem.limit_in_bytes");
            m.kernel.failcnt = fs::read_u64_or_zero(&d, "memory.kmem.failcnt");
        }
        if let Some(d) = self.dir("cpuacct") {
            let u = &mut s.cpu.usage;
            u.total = fs::read_u64_or_zero(&d, "cpuacct.usage");
            u.percpu = fs::read(&d, "cpuacct.usage_percpu")
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            let st = fs::read_keyed(&d, "cpuacct.stat").unwrap_or_default();
            u.user = st.get("user").copied().unwrap_or(0) * NS_PER_TICK;
            u.kernel = st.get("system").copied().unwrap_or(0) * NS_PER_TICK;
        }
        if let Some(d) = self.dir("cpu") {
            let st = fs::read_keyed(&d, "cpu.stat").unwrap_or_default();
            s.cpu.throttling.periods = st.get("nr_periods").copied().unwrap_or(0);
            s.cpu.throttling.throttled_periods = st.get("nr_throttled").copied().unwrap_or(0);
            s.cpu.throttling.throttled_time = st.get("throttled_time").copied().unwrap_or(0);
        }
        if let Some(d) = self.dir("pids") {
            s.pids.current = fs::read_u64_or_zero(&d, "pids.current");
            let max = fs::read_u64_or_zero(&d, "pids.max");
            s.pids.limit = if max == u64::MAX { 0 } else { max };
        }
        if let Some(d) = self.dir("blkio") {
            s.blkio.io_service_bytes_recursive = blkio_entries(&d, "blkio.throttle.io_service_bytes_recursive");
            s.blkio.io_serviced_recursive = blkio_entries(&d, "blkio.throttle.io_serviced_recursive");
        }
        Ok(s)
    }

    fn oom_kills(&self) -> Result<u64> {
        let Some(d) = self.dir("memory") else { return Ok(0) };
        Ok(fs::read_keyed(&d, "memory.oom_control")?
            .get("oom_kill")
            .copied()
            .unwrap_or(0))
    }

    fn kill_all(&self) -> Result<bool> {
        Ok(false)
    }

    fn destroy(&self) -> Result<()> {
        let mut first_err = None;
        for dir in self.dirs() {
            if let Err(e) = fs::remove_dir(&dir) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn view(&self, _own_namespace: bool) -> CgroupView {
        CgroupView::V1 {
            hierarchies: self
                .hierarchies
                .iter()
                .filter_map(|h| {
                    let name = h.mountpoint.file_name()?.to_string_lossy().into_owned();
                    Some((name, h.mountpoint.join(self.path.trim_start_matches('/'))))
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxDeviceCgroupBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder};

    fn tree() -> (tempfile::TempDir, V1Manager) {
        let t = tempfile::tempdir().unwrap();
        let mut hs = vec![];
        for c in ["memory", "pids", "cpuset", "devices"] {
            let mp = t.path().join(c);
            std::fs::create_dir_all(&mp).unwrap();
            hs.push(V1Hierarchy { mountpoint: mp, controllers: vec![c.into()] });
        }
        std::fs::write(t.path().join("cpuset/cpuset.cpus"), "0-1\n").unwrap();
        std::fs::write(t.path().join("cpuset/cpuset.mems"), "0\n").unwrap();
        (t, V1Manager::new(hs, "/a/b"))
    }

    #[test]
    fn writes_limits_into_each_controller() {
        let (t, m) = tree();
        m.create().unwrap();
        assert_eq!(std::fs::read_to_string(t.path().join("cpuset/a/b/cpuset.cpus")).unwrap(), "0-1");
        std::fs::write(t.path().join("memory/a/b/memory.limit_in_bytes"), "9223372036854771712").unwrap();
        let r = LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().limit(1i64 << 26).reservation(1i64 << 25).build().unwrap())
            .pids(LinuxPidsBuilder::default().limit(20).build().unwrap())
            .devices(vec![
                LinuxDeviceCgroupBuilder::default().allow(false).access("rwm").build().unwrap(),
                LinuxDeviceCgroupBuilder::default().allow(true).typ(LinuxDeviceType::C).major(1).minor(3).access("rwm").build().unwrap(),
            ])
            .build()
            .unwrap();
        m.set(&r).unwrap();
        let rd = |p: &str| std::fs::read_to_string(t.path().join(p)).unwrap();
        assert_eq!(rd("memory/a/b/memory.limit_in_bytes"), "67108864");
        assert_eq!(rd("memory/a/b/memory.soft_limit_in_bytes"), "33554432");
        assert_eq!(rd("pids/a/b/pids.max"), "20");
        assert_eq!(rd("devices/a/b/devices.allow"), "c 1:3 rwm");
        assert_eq!(rd("devices/a/b/devices.deny"), "a *:* rwm");
    }

    #[test]
    fn swap_without_accounting_is_refused_unless_equal() {
        let (_t, m) = tree();
        m.create().unwrap();
        let r = |swap: i64| {
            LinuxResourcesBuilder::default()
                .memory(LinuxMemoryBuilder::default().limit(1i64 << 26).swap(swap).build().unwrap())
                .build()
                .unwrap()
        };
        m.set(&r(1 << 26)).unwrap();
        m.set(&r(-1)).unwrap();
        let e = m.set(&r(1 << 27)).unwrap_err().to_string();
        assert!(e.contains("swap accounting"), "{e}");
    }

    #[test]
    fn missing_controller_is_named() {
        let (_t, m) = tree();
        let r = LinuxResourcesBuilder::default()
            .hugepage_limits(vec![oci_spec::runtime::LinuxHugepageLimitBuilder::default().page_size("2MB").limit(1i64 << 21).build().unwrap()])
            .build()
            .unwrap();
        let e = m.set(&r).unwrap_err().to_string();
        assert!(e.contains("hugetlb"), "{e}");
    }
}
