//! cgroup v2: one directory in the unified hierarchy. Controllers must be enabled in every
//! ancestor's cgroup.subtree_control; those the root does not offer are reported by name.

use std::collections::BTreeSet;
use std::path::PathBuf;

use oci_spec::runtime::LinuxResources;

use super::fs;
use super::stats::{BlkioEntry, Stats};
use super::Manager;
use crate::error::{Error, Result};
use crate::rootfs::CgroupView;

pub struct V2Manager {
    mount: PathBuf,
    path: String,
}

/// runc's cpu.shares (2..262144) to cpu.weight (1..10000) mapping.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + ((shares.clamp(2, 262144) - 2) * 9999) / 262142
}

/// blkio.weight (10..1000) to io.weight (1..10000).
pub fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + ((w.clamp(10, 1000) as u64 - 10) * 9999) / 990
}

impl V2Manager {
    pub fn new(mount: PathBuf, path: &str) -> Self {
        V2Manager {
            mount,
            path: path.to_string(),
        }
    }

    fn dir(&self) -> PathBuf {
        self.mount.join(self.path.trim_start_matches('/'))
    }

    /// Controllers the hierarchy's root offers.
    fn available(&self) -> BTreeSet<String> {
        fs::read(&self.mount, "cgroup.controllers")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    fn need(&self, controller: &str, what: &str) -> Result<PathBuf> {
        if !self.available().contains(controller) {
            return Err(Error::Unsupported(format!(
                "{what} needs the cgroup v2 {controller} controller, which {} does not offer",
                self.mount.display()
            )));
        }
        Ok(self.dir())
    }

    fn set_memory(&self, r: &LinuxResources) -> Result<()> {
        let Some(m) = r.memory() else { return Ok(()) };
        let limit = m.limit().filter(|v| *v != 0);
        let swap = m.swap().filter(|v| *v != 0);
        let reservation = m.reservation().filter(|v| *v != 0);
        if limit.is_none() && swap.is_none() && reservation.is_none() {
            return Ok(());
        }
        let dir = self.need("memory", "a memory limit")?;
        let fmt = |v: i64| if v < 0 { "max".to_string() } else { v.to_string() };
        // OCI swap means memory+swap (the v1 meaning); v2 limits swap alone.
        if let Some(s) = swap {
            let swap_only = match (s, limit) {
                (-1, _) => "max".to_string(),
                (s, Some(l)) if l > 0 => (s - l).max(0).to_string(),
                (_, _) => {
                    return Err(Error::InvalidSpec(
                        "linux.resources.memory.swap needs a memory limit on cgroup v2".into(),
                    ));
                }
            };
            fs::write(&dir, "memory.swap.max", &swap_only)?;
        }
        if let Some(l) = limit {
            fs::write(&dir, "memory.max", &fmt(l))?;
        }
        if let Some(v) = reservation {
            fs::write(&dir, "memory.low", &fmt(v))?;
        }
        Ok(())
    }

    fn set_cpu(&self, r: &LinuxResources) -> Result<()> {
        let Some(c) = r.cpu() else { return Ok(()) };
        if let Some(s) = c.shares().filter(|v| *v != 0) {
            let dir = self.need("cpu", "cpu shares")?;
            fs::write(&dir, "cpu.weight", &shares_to_weight(s).to_string())?;
        }
        let quota = c.quota().filter(|v| *v != 0);
        let period = c.period().filter(|v| *v != 0);
        if quota.is_some() || period.is_some() {
            let dir = self.need("cpu", "a cpu quota")?;
            let q = match quota {
                Some(q) if q > 0 => q.to_string(),
                _ => "max".to_string(),
            };
            fs::write(&dir, "cpu.max", &format!("{q} {}", period.unwrap_or(100_000)))?;
        }
        if let Some(b) = c.burst() {
            let dir = self.need("cpu", "a cpu burst")?;
            fs::write(&dir, "cpu.max.burst", &b.to_string())?;
        }
        if let Some(i) = c.idle() {
            let dir = self.need("cpu", "cpu idle")?;
            fs::write(&dir, "cpu.idle", &i.to_string())?;
        }
        for (file, v) in [("cpuset.cpus", c.cpus()), ("cpuset.mems", c.mems())] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                let dir = self.need("cpuset", "a cpuset")?;
                fs::write(&dir, file, v)?;
            }
        }
        Ok(())
    }

    fn set_io(&self, r: &LinuxResources) -> Result<()> {
        let Some(b) = r.block_io() else { return Ok(()) };
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            let dir = self.need("io", "a block IO weight")?;
            if dir.join("io.bfq.weight").exists() {
                fs::write(&dir, "io.bfq.weight", &w.to_string())?;
            } else {
                fs::write(&dir, "io.weight", &blkio_to_io_weight(w).to_string())?;
            }
        }
        for (key, list) in [
            ("rbps", b.throttle_read_bps_device()),
            ("wbps", b.throttle_write_bps_device()),
            ("riops", b.throttle_read_iops_device()),
            ("wiops", b.throttle_write_iops_device()),
        ] {
            for t in list.iter().flatten() {
                let dir = self.need("io", "a block IO limit")?;
                fs::write(&dir, "io.max", &format!("{}:{} {key}={}", t.major(), t.minor(), t.rate()))?;
            }
        }
        Ok(())
    }
}

impl V2Manager {
    /// Enables one controller in every ancestor of the container's cgroup.
    fn enable_along_path(&self, controller: &str) -> Result<()> {
        let mut cur = self.mount.clone();
        for part in self.path.split('/').filter(|p| !p.is_empty()) {
            fs::write(&cur, "cgroup.subtree_control", &format!("+{controller}"))?;
            cur.push(part);
        }
        Ok(())
    }
}

impl Manager for V2Manager {
    fn path(&self) -> &str {
        &self.path
    }

    fn exists(&self) -> bool {
        self.dir().exists()
    }

    fn create(&self) -> Result<()> {
        // The controllers a container's limits and stats use. Others (hugetlb, rdma, misc)
        // stay untouched: enabling a controller in a subtree_control claims it for v2,
        // which on a hybrid host takes it away from v1 for good.
        let want: Vec<String> = self
            .available()
            .into_iter()
            .filter(|c| matches!(c.as_str(), "cpu" | "cpuset" | "io" | "memory" | "pids"))
            .collect();
        let enable: String = want.iter().map(|c| format!("+{c} ")).collect();
        let mut cur = self.mount.clone();
        for part in self.path.split('/').filter(|p| !p.is_empty()) {
            if !enable.is_empty() {
                // Already-enabled controllers are accepted again; failures here surface
                // later as a precise error on the interface file that is missing.
                let _ = fs::write(&cur, "cgroup.subtree_control", enable.trim_end());
            }
            cur.push(part);
            match std::fs::create_dir(&cur) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                    return Err(Error::Cgroup {
                        file: cur,
                        reason: format!("cannot create: {e}"),
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn add(&self, pid: i32) -> Result<()> {
        fs::write(&self.dir(), "cgroup.procs", &pid.to_string())
    }

    fn clone_target(&self) -> Option<std::os::fd::OwnedFd> {
        use nix::fcntl::{OFlag, open};
        open(&self.dir(), OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty()).ok()
    }

    fn set(&self, r: &LinuxResources) -> Result<()> {
        self.set_memory(r)?;
        self.set_cpu(r)?;
        if let Some(p) = r.pids() {
            let dir = self.need("pids", "a pids limit")?;
            let v = if p.limit() > 0 { p.limit().to_string() } else { "max".into() };
            fs::write(&dir, "pids.max", &v)?;
        }
        self.set_io(r)?;
        for l in r.hugepage_limits().iter().flatten() {
            let dir = self.need("hugetlb", "a hugepage limit")?;
            self.enable_along_path("hugetlb")?;
            fs::write(&dir, &format!("hugetlb.{}.max", l.page_size()), &l.limit().to_string())?;
        }
        if let Some(n) = r.network()
            && (n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty())) {
                return Err(Error::Unsupported(
                    "linux.resources.network (net_cls/net_prio) does not exist on cgroup v2".into(),
                ));
            }
        for (k, v) in r.unified().iter().flatten() {
            fs::write(&self.dir(), k, v)?;
        }
        if let Some(rules) = r.devices().as_ref().filter(|d| !d.is_empty()) {
            super::devices::apply(&self.dir(), rules)?;
        }
        Ok(())
    }

    fn freeze(&self) -> Result<()> {
        let dir = self.dir();
        fs::write(&dir, "cgroup.freeze", "1")?;
        for _ in 0..2000 {
            if fs::read_keyed(&dir, "cgroup.events")?.get("frozen") == Some(&1) {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let _ = fs::write(&dir, "cgroup.freeze", "0");
        Err(Error::Cgroup {
            file: dir.join("cgroup.freeze"),
            reason: "the cgroup did not freeze".into(),
        })
    }

    fn thaw(&self) -> Result<()> {
        fs::write(&self.dir(), "cgroup.freeze", "0")
    }

    fn is_frozen(&self) -> Result<bool> {
        Ok(fs::read(&self.dir(), "cgroup.freeze")
            .map(|s| s.trim() == "1")
            .unwrap_or(false))
    }

    fn pids(&self) -> Result<Vec<i32>> {
        fs::read_pids(&self.dir())
    }

    fn stats(&self) -> Result<Stats> {
        let d = self.dir();
        let mut s = Stats::default();
        let m = &mut s.memory;
        m.raw = fs::read_keyed(&d, "memory.stat").unwrap_or_default();
        m.cache = m.raw.get("file").copied().unwrap_or(0);
        m.usage.usage = fs::read_u64_or_zero(&d, "memory.current");
        m.usage.max = fs::read_u64_or_zero(&d, "memory.peak");
        m.usage.limit = fs::read_u64_or_zero(&d, "memory.max");
        m.usage.failcnt = fs::read_keyed(&d, "memory.events")
            .ok()
            .and_then(|e| e.get("max").copied())
            .unwrap_or(0);
        m.swap.usage = fs::read_u64_or_zero(&d, "memory.swap.current");
        m.swap.limit = fs::read_u64_or_zero(&d, "memory.swap.max");
        m.swap.max = fs::read_u64_or_zero(&d, "memory.swap.peak");
        let cpu = fs::read_keyed(&d, "cpu.stat").unwrap_or_default();
        let us = |k: &str| cpu.get(k).copied().unwrap_or(0);
        s.cpu.usage.total = us("usage_usec") * 1000;
        s.cpu.usage.user = us("user_usec") * 1000;
        s.cpu.usage.kernel = us("system_usec") * 1000;
        s.cpu.throttling.periods = us("nr_periods");
        s.cpu.throttling.throttled_periods = us("nr_throttled");
        s.cpu.throttling.throttled_time = us("throttled_usec") * 1000;
        s.pids.current = fs::read_u64_or_zero(&d, "pids.current");
        let max = fs::read_u64_or_zero(&d, "pids.max");
        s.pids.limit = if max == u64::MAX { 0 } else { max };
        if let Ok(io) = fs::read(&d, "io.stat") {
            for line in io.lines() {
                let mut it = line.split_whitespace();
                let Some((ma, mi)) = it.next().and_then(|d| d.split_once(':')) else { continue };
                let (Ok(major), Ok(minor)) = (ma.parse(), mi.parse()) else { continue };
                for kv in it {
                    let Some((k, v)) = kv.split_once('=') else { continue };
                    let Ok(value) = v.parse() else { continue };
                    let (list, op) = match k {
                        "rbytes" => (&mut s.blkio.io_service_bytes_recursive, "Read"),
                        "wbytes" => (&mut s.blkio.io_service_bytes_recursive, "Write"),
                        "rios" => (&mut s.blkio.io_serviced_recursive, "Read"),
                        "wios" => (&mut s.blkio.io_serviced_recursive, "Write"),
                        _ => continue,
                    };
                    list.push(BlkioEntry { major, minor, op: op.into(), value });
                }
            }
        }
        Ok(s)
    }

    fn oom_kills(&self) -> Result<u64> {
        Ok(fs::read_keyed(&self.dir(), "memory.events")
            .ok()
            .and_then(|e| e.get("oom_kill").copied())
            .unwrap_or(0))
    }

    fn kill_all(&self) -> Result<bool> {
        let dir = self.dir();
        if !dir.join("cgroup.kill").exists() {
            return Ok(false);
        }
        fs::write(&dir, "cgroup.kill", "1")?;
        Ok(true)
    }

    fn destroy(&self) -> Result<()> {
        fs::remove_dir(&self.dir())
    }

    fn view(&self, own_namespace: bool) -> CgroupView {
        CgroupView::Unified {
            host_dir: self.dir(),
            own_namespace,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder};

    /// A plain directory standing in for a cgroup2 mount whose root offers controllers.
    fn tree(controllers: &str) -> (tempfile::TempDir, V2Manager) {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("cgroup.controllers"), controllers).unwrap();
        let m = V2Manager::new(t.path().to_path_buf(), "/parent/c1");
        (t, m)
    }

    #[test]
    fn conversions_match_runc() {
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262144), 10000);
        assert_eq!(blkio_to_io_weight(500), 4950);
        assert_eq!(blkio_to_io_weight(10), 1);
    }

    #[test]
    fn writes_controller_files_and_enables_them_in_ancestors() {
        let (t, m) = tree("cpuset cpu io memory pids");
        m.create().unwrap();
        let r = LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().limit(1i64 << 26).reservation(1i64 << 25).swap(1i64 << 27).build().unwrap())
            .cpu(LinuxCpuBuilder::default().shares(1024u64).quota(50_000i64).period(100_000u64).cpus("0").mems("0").build().unwrap())
            .pids(LinuxPidsBuilder::default().limit(-1).build().unwrap())
            .block_io(LinuxBlockIoBuilder::default().weight(500u16).build().unwrap())
            .build()
            .unwrap();
        m.set(&r).unwrap();
        let rd = |p: &str| std::fs::read_to_string(t.path().join(p)).unwrap();
        assert_eq!(rd("cgroup.subtree_control"), "+cpu +cpuset +io +memory +pids");
        assert_eq!(rd("parent/cgroup.subtree_control"), "+cpu +cpuset +io +memory +pids");
        assert_eq!(rd("parent/c1/memory.max"), "67108864");
        assert_eq!(rd("parent/c1/memory.low"), "33554432");
        assert_eq!(rd("parent/c1/memory.swap.max"), "67108864");
        assert_eq!(rd("parent/c1/cpu.weight"), "39");
        assert_eq!(rd("parent/c1/cpu.max"), "50000 100000");
        assert_eq!(rd("parent/c1/cpuset.cpus"), "0");
        assert_eq!(rd("parent/c1/pids.max"), "max");
        assert_eq!(rd("parent/c1/io.weight"), "4950");
    }

    #[test]
    fn missing_controller_is_named_and_stats_parse() {
        let (t, m) = tree("pids");
        m.create().unwrap();
        let r = LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().limit(1i64 << 26).build().unwrap())
            .build()
            .unwrap();
        let e = m.set(&r).unwrap_err().to_string();
        assert!(e.contains("memory controller"), "{e}");
        let d = t.path().join("parent/c1");
        std::fs::write(d.join("memory.current"), "4096\n").unwrap();
        std::fs::write(d.join("memory.max"), "max\n").unwrap();
        std::fs::write(d.join("memory.stat"), "anon 100\nfile 200\n").unwrap();
        std::fs::write(d.join("memory.events"), "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n").unwrap();
        std::fs::write(d.join("cpu.stat"), "usage_usec 10\nuser_usec 6\nsystem_usec 4\nnr_periods 2\nnr_throttled 1\nthrottled_usec 5\n").unwrap();
        std::fs::write(d.join("pids.current"), "3\n").unwrap();
        std::fs::write(d.join("pids.max"), "max\n").unwrap();
        std::fs::write(d.join("io.stat"), "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n").unwrap();
        let s = m.stats().unwrap();
        assert_eq!(s.memory.usage.usage, 4096);
        assert_eq!(s.memory.usage.limit, u64::MAX);
        assert_eq!(s.memory.cache, 200);
        assert_eq!(s.memory.usage.failcnt, 3);
        assert_eq!(s.cpu.usage.total, 10_000);
        assert_eq!(s.cpu.throttling.throttled_time, 5000);
        assert_eq!(s.pids.current, 3);
        assert_eq!(s.pids.limit, 0);
        assert_eq!(s.blkio.io_service_bytes_recursive.len(), 2);
        assert_eq!(m.oom_kills().unwrap(), 1);
    }
}
