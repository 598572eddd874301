//! The engine's own counters for `/metrics` (dockerd's `--metrics-addr`): container
//! actions and their latency, API requests, pulls, health checks. Plain numbers here;
//! the exposition format is written by berth-ui. Per-container cgroup numbers are not
//! kept: they are read when asked ([`Engine::container_metrics`]).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::engine::Engine;

/// Prometheus' default buckets (seconds), as dockerd's timers use.
pub const DEFAULT_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A cumulative histogram over fixed upper bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    pub bounds: &'static [f64],
    /// Observations ≤ each bound (cumulative, as exposed).
    pub buckets: Vec<u64>,
    pub count: u64,
    pub sum: f64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram { bounds, buckets: vec![0; bounds.len()], count: 0, sum: 0.0 }
    }

    pub fn observe(&mut self, v: f64) {
        for (i, b) in self.bounds.iter().enumerate() {
            if v <= *b {
                self.buckets[i] += 1;
            }
        }
        self.count += 1;
        self.sum += v;
    }
}

/// One API route and method: answers by status, and how long they took.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteStats {
    pub by_status: BTreeMap<u16, u64>,
    pub duration: Histogram,
}

#[derive(Debug, Default)]
pub struct Metrics {
    /// (route pattern, method) → stats.
    api: Mutex<BTreeMap<(String, String), RouteStats>>,
    /// Container actions (create, start, stop, restart, delete) → latency.
    actions: Mutex<BTreeMap<&'static str, Histogram>>,
    /// Failed container actions by action.
    action_failures: Mutex<BTreeMap<&'static str, u64>>,
    pub pulls: AtomicU64,
    pub pull_failures: AtomicU64,
    pub pull_bytes: AtomicU64,
    pub health_checks: AtomicU64,
    pub health_checks_failed: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Metrics {
    pub fn observe_request(&self, route: &str, method: &str, status: u16, took: Duration) {
        let mut api = lock(&self.api);
        let r = api
            .entry((route.to_string(), method.to_string()))
            .or_insert_with(|| RouteStats { by_status: BTreeMap::new(), duration: Histogram::new(DEFAULT_BUCKETS) });
        *r.by_status.entry(status).or_insert(0) += 1;
        r.duration.observe(took.as_secs_f64());
    }

    pub fn observe_action(&self, action: &'static str, took: Duration, ok: bool) {
        if ok {
            lock(&self.actions).entry(action).or_insert_with(|| Histogram::new(DEFAULT_BUCKETS)).observe(took.as_secs_f64());
        } else {
            *lock(&self.action_failures).entry(action).or_insert(0) += 1;
        }
    }

    pub fn api_requests(&self) -> BTreeMap<(String, String), RouteStats> {
        lock(&self.api).clone()
    }

    pub fn actions(&self) -> BTreeMap<&'static str, Histogram> {
        lock(&self.actions).clone()
    }

    pub fn action_failures(&self) -> BTreeMap<&'static str, u64> {
        lock(&self.action_failures).clone()
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// One running container's resource usage, for `/metrics` (cAdvisor's metric set).
#[derive(Debug, Clone, Default)]
pub struct ContainerMetrics {
    pub id: String,
    pub name: String,
    pub image: String,
    /// Unix seconds.
    pub started_at: f64,
    pub stats: berth_runtime::Stats,
    /// Per interface (lo excluded).
    pub networks: Vec<(String, berth_types::container::NetworkStats)>,
}

/// Counts of containers by Docker's three states (running, paused, stopped).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    pub running: u64,
    pub paused: u64,
    pub stopped: u64,
}

impl Engine {
    /// Resource usage of every running container (or of those in `only`), read now from
    /// the cgroups (through each container's runtime) and its network namespace.
    /// Containers that stop while this runs are left out.
    pub async fn container_metrics(&self, only: Option<&std::collections::HashSet<String>>) -> Vec<ContainerMetrics> {
        let mut jobs = Vec::new();
        for c in self.containers.list() {
            if only.is_some_and(|o| !o.contains(&c.id)) {
                continue;
            }
            let rec = c.snapshot();
            if !rec.state.status.is_alive() {
                continue;
            }
            let Ok(rt) = self.runtime_of(&rec) else { continue };
            let pid = c.live().map(|l| l.init_pid);
            let started_at = crate::util::parse_rfc3339(&rec.state.started_at).map(|t| t.timestamp_millis() as f64 / 1000.0).unwrap_or(0.0);
            jobs.push((rec.id.clone(), rec.bare_name().to_string(), rec.config.image.clone(), started_at, rt, pid));
        }
        // Two halves on the blocking pool: the reads are many small files.
        let half = jobs.len().div_ceil(2).max(1);
        let mut tasks = Vec::new();
        while !jobs.is_empty() {
            let chunk: Vec<_> = jobs.drain(..half.min(jobs.len())).collect();
            tasks.push(tokio::task::spawn_blocking(move || {
                chunk
                    .into_iter()
                    .filter_map(|(id, name, image, started_at, rt, pid)| {
                        let stats = rt.stats(&id).ok()?;
                        let networks = pid.map(crate::query::net_stats_of).unwrap_or_default();
                        Some(ContainerMetrics { id, name, image, started_at, stats, networks })
                    })
                    .collect::<Vec<_>>()
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            if let Ok(v) = t.await {
                out.extend(v);
            }
        }
        out
    }

    /// Images and the bytes of their unpacked layers (each layer counted once).
    pub async fn image_store_usage(&self) -> (u64, u64) {
        match self.images.disk_usage().await {
            Ok((layers, images)) => (images.len() as u64, layers.max(0) as u64),
            Err(_) => (0, 0),
        }
    }

    pub fn container_states(&self) -> StateCounts {
        let mut s = StateCounts::default();
        for c in self.containers.list() {
            match c.status() {
                crate::container::Status::Running | crate::container::Status::Restarting => s.running += 1,
                crate::container::Status::Paused => s.paused += 1,
                _ => s.stopped += 1,
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let mut h = Histogram::new(&[0.1, 1.0]);
        h.observe(0.05);
        h.observe(0.5);
        h.observe(5.0);
        assert_eq!(h.buckets, vec![1, 2]);
        assert_eq!(h.count, 3);
        assert!((h.sum - 5.55).abs() < 1e-9);
    }

    #[test]
    fn requests_by_route_and_status() {
        let m = Metrics::default();
        m.observe_request("/containers/{id}/json", "GET", 200, Duration::from_millis(2));
        m.observe_request("/containers/{id}/json", "GET", 404, Duration::from_millis(1));
        m.observe_action("start", Duration::from_millis(40), true);
        m.observe_action("start", Duration::from_millis(40), false);
        let api = m.api_requests();
        let r = &api[&("/containers/{id}/json".to_string(), "GET".to_string())];
        assert_eq!(r.by_status.get(&200), Some(&1));
        assert_eq!(r.by_status.get(&404), Some(&1));
        assert_eq!(r.duration.count, 2);
        assert_eq!(m.actions()["start"].count, 1);
        assert_eq!(m.action_failures()["start"], 1);
    }
}
