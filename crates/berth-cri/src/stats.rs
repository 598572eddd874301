//! ContainerStats, ListContainerStats, PodSandboxStats, ListPodSandboxStats: the engine's
//! cgroup samples in the CRI's terms. `usage_nano_cores` is a rate, so the last sample of
//! each container is kept to compute it from the next.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::Cri;
use crate::api;
use crate::error::{OrStatus, Result, not_found};
use crate::meta::{self, Ctr, Sandbox};

/// The previous CPU reading of each container: (when, total CPU ns).
#[derive(Default)]
pub struct CpuSamples(Mutex<HashMap<String, (Instant, u64)>>);

impl CpuSamples {
    /// CPU use since the last reading, in nanocores; None on the first reading.
    fn rate(&self, id: &str, total: u64) -> Option<u64> {
        let now = Instant::now();
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let prev = m.insert(id.to_string(), (now, total));
        let (t0, v0) = prev?;
        let dt = now.duration_since(t0).as_nanos() as u64;
        (dt > 0 && total >= v0).then(|| ((total - v0) as u128 * 1_000_000_000 / dt as u128) as u64)
    }

    fn forget_missing(&self, live: &[String]) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).retain(|k, _| live.contains(k));
    }
}

fn u64v(value: u64) -> Option<api::UInt64Value> {
    Some(api::UInt64Value { value })
}

fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

impl Cri {
    /// The container's stats and its number of processes.
    async fn stats_of(&self, c: &Ctr) -> Result<(api::ContainerStats, u64)> {
        let engine = self.engine();
        let attributes = Some(api::ContainerAttributes {
            id: c.rec.id.clone(),
            metadata: Some(c.metadata()),
            labels: c.meta.config.labels.clone(),
            annotations: c.meta.config.annotations.clone(),
        });
        let ts = now_nanos();
        let (bytes, inodes) = crate::images::du(&engine.data_root().join("containers").join(&c.rec.id).join("upper"));
        let writable_layer = Some(api::FilesystemUsage {
            timestamp: ts,
            fs_id: Some(api::FilesystemIdentifier { mountpoint: engine.data_root().join("containers").to_string_lossy().into_owned() }),
            used_bytes: u64v(bytes),
            inodes_used: u64v(inodes),
        });
        if !c.rec.state.status.is_alive() {
            return Ok((api::ContainerStats { attributes, writable_layer, ..Default::default() }, 0));
        }
        let s = engine.stats_sample(c.id(), None).await.or_status()?;
        let total = s.cpu_stats.cpu_usage.total_usage;
        let cpu = api::CpuUsage { timestamp: ts, usage_core_nano_seconds: u64v(total), usage_nano_cores: self.stats.rate(c.id(), total).and_then(u64v) };
        let raw = s.memory_stats.stats.clone().unwrap_or_default();
        let get = |keys: &[&str]| keys.iter().find_map(|k| raw.get(*k).copied()).unwrap_or(0);
        let usage = s.memory_stats.usage.unwrap_or(0);
        let inactive = get(&["total_inactive_file", "inactive_file"]);
        let memory = api::MemoryUsage {
            timestamp: ts,
            working_set_bytes: u64v(usage.saturating_sub(inactive)),
            available_bytes: s.memory_stats.limit.map(|l| l.saturating_sub(usage)).and_then(u64v),
            usage_bytes: u64v(usage),
            rss_bytes: u64v(get(&["total_rss", "rss", "anon"])),
            page_faults: u64v(get(&["total_pgfault", "pgfault"])),
            major_page_faults: u64v(get(&["total_pgmajfault", "pgmajfault"])),
        };
        let pids = s.pids_stats.current.unwrap_or(0);
        Ok((api::ContainerStats { attributes, cpu: Some(cpu), memory: Some(memory), writable_layer, swap: None }, pids))
    }

    pub async fn container_stats(&self, id: &str) -> Result<api::ContainerStats> {
        let c = meta::find_container(self.engine(), id).ok_or_else(|| not_found(format!("container {id} not found")))?;
        Ok(self.stats_of(&c).await?.0)
    }

    pub async fn list_container_stats(&self, filter: Option<api::ContainerStatsFilter>) -> Result<Vec<api::ContainerStats>> {
        let f = filter.unwrap_or_default();
        let all = meta::containers(self.engine());
        self.stats.forget_missing(&all.iter().map(|c| c.rec.id.clone()).collect::<Vec<_>>());
        let mut out = Vec::new();
        for c in all
            .iter()
            .filter(|c| c.rec.state.status.is_alive())
            .filter(|c| f.id.is_empty() || c.rec.id.starts_with(&f.id))
            .filter(|c| f.pod_sandbox_id.is_empty() || c.meta.sandbox_id.starts_with(&f.pod_sandbox_id))
            .filter(|c| meta::selector_matches(&f.label_selector, &c.meta.config.labels))
        {
            // A container that stops while we read it is left out, not an error.
            if let Ok((s, _)) = self.stats_of(c).await {
                out.push(s);
            }
        }
        Ok(out)
    }

    async fn pod_stats_of(&self, sb: &Sandbox) -> Result<api::PodSandboxStats> {
        let mut containers = Vec::new();
        // The pause process counts too.
        let mut processes = u64::from(sb.ready());
        for c in meta::containers(self.engine()).iter().filter(|c| c.meta.sandbox_id == sb.rec.id && c.rec.state.status.is_alive()) {
            if let Ok((s, pids)) = self.stats_of(c).await {
                containers.push(s);
                processes += pids;
            }
        }
        let ts = now_nanos();
        let sum = |f: &dyn Fn(&api::ContainerStats) -> Option<u64>| containers.iter().filter_map(f).sum::<u64>();
        let cpu = api::CpuUsage {
            timestamp: ts,
            usage_core_nano_seconds: u64v(sum(&|c| c.cpu.as_ref()?.usage_core_nano_seconds.as_ref().map(|v| v.value))),
            usage_nano_cores: u64v(sum(&|c| c.cpu.as_ref()?.usage_nano_cores.as_ref().map(|v| v.value))),
        };
        let mem = |f: fn(&api::MemoryUsage) -> Option<&api::UInt64Value>| u64v(sum(&|c| f(c.memory.as_ref()?).map(|v| v.value)));
        let memory = api::MemoryUsage {
            timestamp: ts,
            working_set_bytes: mem(|m| m.working_set_bytes.as_ref()),
            available_bytes: None,
            usage_bytes: mem(|m| m.usage_bytes.as_ref()),
            rss_bytes: mem(|m| m.rss_bytes.as_ref()),
            page_faults: mem(|m| m.page_faults.as_ref()),
            major_page_faults: mem(|m| m.major_page_faults.as_ref()),
        };
        let pid = sb.rec.state.pid as i32;
        let network = (pid > 0 && !sb.host_network()).then(|| network_usage(pid, ts));
        let process = Some(api::ProcessUsage { timestamp: ts, process_count: u64v(processes) });
        Ok(api::PodSandboxStats {
            attributes: Some(api::PodSandboxAttributes {
                id: sb.rec.id.clone(),
                metadata: Some(sb.metadata()),
                labels: sb.meta.config.labels.clone(),
                annotations: sb.meta.config.annotations.clone(),
            }),
            linux: Some(api::LinuxPodSandboxStats { cpu: Some(cpu), memory: Some(memory), network, process, containers }),
            windows: None,
        })
    }

    pub async fn pod_sandbox_stats(&self, id: &str) -> Result<api::PodSandboxStats> {
        let sb = meta::find_sandbox(self.engine(), id).ok_or_else(|| not_found(format!("pod sandbox {id} not found")))?;
        self.pod_stats_of(&sb).await
    }

    pub async fn list_pod_sandbox_stats(&self, filter: Option<api::PodSandboxStatsFilter>) -> Result<Vec<api::PodSandboxStats>> {
        let f = filter.unwrap_or_default();
        let mut out = Vec::new();
        for sb in meta::sandboxes(self.engine())
            .iter()
            .filter(|s| s.ready())
            .filter(|s| f.id.is_empty() || s.rec.id.starts_with(&f.id))
            .filter(|s| meta::selector_matches(&f.label_selector, &s.meta.config.labels))
        {
            out.push(self.pod_stats_of(sb).await?);
        }
        Ok(out)
    }
}

/// Interface counters in the pod's network namespace, seen through its pause process.
fn network_usage(pid: i32, ts: i64) -> api::NetworkUsage {
    let mut interfaces = Vec::new();
    if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/dev")) {
        for line in text.lines().skip(2) {
            let Some((name, rest)) = line.split_once(':') else { continue };
            let name = name.trim();
            if name == "lo" {
                continue;
            }
            let v: Vec<u64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
            if v.len() >= 11 {
                interfaces.push(api::NetworkInterfaceUsage { name: name.into(), rx_bytes: u64v(v[0]), rx_errors: u64v(v[2]), tx_bytes: u64v(v[8]), tx_errors: u64v(v[10]) });
            }
        }
    }
    let default_interface = interfaces.iter().find(|i| i.name == "eth0").cloned().or_else(|| interfaces.first().cloned());
    api::NetworkUsage { timestamp: ts, default_interface, interfaces }
}
