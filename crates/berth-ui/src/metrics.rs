//! `GET /metrics`: the engine's own metrics under dockerd's names (`engine_daemon_*`),
//! berth's API, pull and image-store metrics, the daemon process (`process_*`), and
//! every running container's cgroup numbers under cAdvisor's names (`container_*`,
//! labelled id, name and image), so no cAdvisor is needed beside berth.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_engine::Engine;
use berth_engine::metrics::{ContainerMetrics, Metrics};

use crate::expo::{Exposition, Kind};

/// How often the containers' cgroups are read while someone scrapes (cAdvisor's
/// "housekeeping"): a scrape answers from the last reading, at most this old.
pub const REFRESH: Duration = Duration::from_secs(5);
/// Without a scrape for this long, the readings stop (an unwatched daemon stays idle).
const KEEP_READING_FOR: Duration = Duration::from_secs(120);

/// The containers' last reading, refreshed in the background while scrapes come.
pub struct Readings {
    engine: Arc<Engine>,
    last: Mutex<Option<(Instant, Arc<Vec<ContainerMetrics>>)>>,
    scraped: Mutex<Option<Instant>>,
    refreshing: std::sync::atomic::AtomicBool,
}

impl Readings {
    pub fn new(engine: Arc<Engine>) -> Arc<Readings> {
        Arc::new(Readings { engine, last: Mutex::new(None), scraped: Mutex::new(None), refreshing: Default::default() })
    }

    /// A reading at most [`REFRESH`] old (twice that while a refresh is late); the first
    /// scrape after a quiet spell reads the cgroups there and then.
    pub async fn get(self: &Arc<Self>) -> Arc<Vec<ContainerMetrics>> {
        *self.scraped.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        self.keep_refreshing();
        let fresh = self.last.lock().unwrap_or_else(|p| p.into_inner()).as_ref().filter(|(at, _)| at.elapsed() < REFRESH * 2).map(|(_, r)| r.clone());
        match fresh {
            Some(r) => r,
            None => self.read().await,
        }
    }

    async fn read(&self) -> Arc<Vec<ContainerMetrics>> {
        let r = Arc::new(self.engine.container_metrics(None).await);
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), r.clone()));
        r
    }

    /// Starts the background refresh unless it runs; it ends when scrapes stop.
    fn keep_refreshing(self: &Arc<Self>) {
        use std::sync::atomic::Ordering;
        if self.refreshing.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH).await;
                let quiet = me.scraped.lock().unwrap_or_else(|p| p.into_inner()).is_none_or(|t| t.elapsed() > KEEP_READING_FOR);
                if quiet {
                    *me.last.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    me.refreshing.store(false, Ordering::SeqCst);
                    return;
                }
                me.read().await;
            }
        });
    }
}

/// The whole exposition: the engine now, the containers from `readings`.
pub async fn render(engine: &Arc<Engine>, readings: &Arc<Readings>) -> String {
    let containers = readings.get().await;
    let (images, image_bytes) = engine.image_store_usage().await;
    let mut e = Exposition::new();
    engine_families(&mut e, engine, images, image_bytes);
    container_families(&mut e, &containers);
    process_families(&mut e);
    e.finish()
}

fn engine_families(e: &mut Exposition, engine: &Arc<Engine>, images: u64, image_bytes: u64) {
    let m = &engine.metrics;
    let info = engine.info();
    e.family("engine_daemon_engine_info", Kind::Gauge, "The information related to the engine and the OS it is running on")
        .sample(
            &[
                ("architecture", &info.architecture),
                ("commit", ""),
                ("daemon_id", &info.id),
                ("graphdriver", &info.driver),
                ("kernel", &info.kernel_version),
                ("os", &info.operating_system),
                ("os_type", &info.os_type),
                ("version", &info.server_version),
            ],
            1.0,
        );
    e.family("engine_daemon_engine_cpus_cpus", Kind::Gauge, "The number of cpus that the host system of the engine has").sample(&[], info.ncpu as f64);
    e.family("engine_daemon_engine_memory_bytes", Kind::Gauge, "The number of bytes of memory that the host system of the engine has").sample(&[], info.mem_total as f64);

    let states = engine.container_states();
    let mut f = e.family("engine_daemon_container_states_containers", Kind::Gauge, "The count of containers in various states");
    f.sample(&[("state", "paused")], states.paused as f64);
    f.sample(&[("state", "running")], states.running as f64);
    f.sample(&[("state", "stopped")], states.stopped as f64);

    let actions = m.actions();
    let mut f = e.family("engine_daemon_container_actions_seconds", Kind::Histogram, "The number of seconds it takes to process each container action");
    for (action, h) in &actions {
        f.histogram(&[("action", action)], h);
    }
    let failures = m.action_failures();
    let mut f = e.family("berth_container_action_failures_total", Kind::Counter, "Container actions that failed, by action");
    for (action, n) in &failures {
        f.sample(&[("action", action)], *n as f64);
    }

    e.family("engine_daemon_events_total", Kind::Counter, "The number of events logged").sample(&[], engine.events.emitted() as f64);
    e.family("engine_daemon_events_subscribers", Kind::Gauge, "The number of current subscribers to events").sample(&[], engine.events.listeners() as f64);
    e.family("engine_daemon_health_checks_total", Kind::Counter, "The total number of health checks").sample(&[], Metrics::get(&m.health_checks) as f64);
    e.family("engine_daemon_health_checks_failed_total", Kind::Counter, "The total number of failed health checks").sample(&[], Metrics::get(&m.health_checks_failed) as f64);

    let api = m.api_requests();
    let mut f = e.family("berth_api_requests_total", Kind::Counter, "Engine API requests answered, by route, method and status code");
    for ((route, method), r) in &api {
        for (status, n) in &r.by_status {
            f.sample(&[("endpoint", route), ("method", method), ("status", &status.to_string())], *n as f64);
        }
    }
    let mut f = e.family("berth_api_request_duration_seconds", Kind::Histogram, "Time to answer Engine API requests (to the response head for streams), by route and method");
    for ((route, method), r) in &api {
        f.histogram(&[("endpoint", route), ("method", method)], &r.duration);
    }

    e.family("berth_image_pulls_total", Kind::Counter, "Image pulls that succeeded").sample(&[], Metrics::get(&m.pulls) as f64);
    e.family("berth_image_pull_failures_total", Kind::Counter, "Image pulls that failed").sample(&[], Metrics::get(&m.pull_failures) as f64);
    e.family("berth_image_pull_bytes_total", Kind::Counter, "Compressed layer bytes downloaded by pulls").sample(&[], Metrics::get(&m.pull_bytes) as f64);
    e.family("berth_images", Kind::Gauge, "Images in the image store").sample(&[], images as f64);
    e.family("berth_image_store_bytes", Kind::Gauge, "Bytes of the unpacked layers in the image store, each layer counted once").sample(&[], image_bytes as f64);
}

/// Sums of a blkio list by (device, op).
fn blkio(entries: &[berth_runtime::cgroups::stats::BlkioEntry], op: &str) -> Vec<(String, u64)> {
    let mut by_dev: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for x in entries.iter().filter(|x| x.op.eq_ignore_ascii_case(op)) {
        *by_dev.entry(format!("{}:{}", x.major, x.minor)).or_insert(0) += x.value;
    }
    by_dev.into_iter().collect()
}

fn container_families(e: &mut Exposition, cs: &[ContainerMetrics]) {
    let labels = |c: &ContainerMetrics| [("id", c.id.clone()), ("image", c.image.clone()), ("name", c.name.clone())];
    // One family at a time: every container's sample of it.
    let simple: &[(&'static str, Kind, &str, fn(&ContainerMetrics) -> f64)] = &[
        ("container_cpu_usage_seconds_total", Kind::Counter, "Cumulative cpu time consumed in seconds", |c| c.stats.cpu.usage.total as f64 / 1e9),
        ("container_cpu_user_seconds_total", Kind::Counter, "Cumulative user cpu time consumed in seconds", |c| c.stats.cpu.usage.user as f64 / 1e9),
        ("container_cpu_system_seconds_total", Kind::Counter, "Cumulative system cpu time consumed in seconds", |c| c.stats.cpu.usage.kernel as f64 / 1e9),
        ("container_cpu_cfs_periods_total", Kind::Counter, "Number of elapsed enforcement period intervals", |c| c.stats.cpu.throttling.periods as f64),
        ("container_cpu_cfs_throttled_periods_total", Kind::Counter, "Number of throttled period intervals", |c| c.stats.cpu.throttling.throttled_periods as f64),
        ("container_cpu_cfs_throttled_seconds_total", Kind::Counter, "Total time duration the container has been throttled", |c| c.stats.cpu.throttling.throttled_time as f64 / 1e9),
        ("container_memory_usage_bytes", Kind::Gauge, "Current memory usage in bytes, including all memory regardless of when it was accessed", |c| c.stats.memory.usage.usage as f64),
        ("container_memory_working_set_bytes", Kind::Gauge, "Current working set in bytes (usage less inactive file pages)", working_set),
        ("container_memory_rss", Kind::Gauge, "Size of RSS in bytes", |c| raw(c, &["total_rss", "rss", "anon"])),
        ("container_memory_cache", Kind::Gauge, "Number of bytes of page cache memory", |c| c.stats.memory.cache as f64),
        ("container_memory_swap", Kind::Gauge, "Container swap usage in bytes", |c| raw(c, &["total_swap", "swap"])),
        ("container_memory_max_usage_bytes", Kind::Gauge, "Maximum memory usage recorded in bytes", |c| c.stats.memory.usage.max as f64),
        ("container_spec_memory_limit_bytes", Kind::Gauge, "Memory limit for the container (0 when unlimited)", |c| limit_or_zero(c.stats.memory.usage.limit)),
        ("container_oom_events_total", Kind::Counter, "Count of out of memory events observed for the container", |c| c.stats.oom_kills as f64),
        ("container_processes", Kind::Gauge, "Number of processes running inside the container", |c| c.stats.pids.current as f64),
        ("container_spec_pids_limit", Kind::Gauge, "Limit of processes in the container (0 when unlimited)", |c| c.stats.pids.limit as f64),
        ("container_start_time_seconds", Kind::Gauge, "Start time of the container since unix epoch in seconds", |c| c.started_at),
    ];
    for (name, kind, help, get) in simple {
        let mut f = e.family(name, *kind, help);
        for c in cs {
            let l = labels(c);
            f.sample(&l.each_ref().map(|(k, v)| (*k, v.as_str())), get(c));
        }
    }
    type NetGet = fn(&berth_types::container::NetworkStats) -> u64;
    let net: &[(&'static str, &str, NetGet)] = &[
        ("container_network_receive_bytes_total", "Cumulative count of bytes received", |n| n.rx_bytes),
        ("container_network_receive_packets_total", "Cumulative count of packets received", |n| n.rx_packets),
        ("container_network_receive_errors_total", "Cumulative count of errors encountered while receiving", |n| n.rx_errors),
        ("container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving", |n| n.rx_dropped),
        ("container_network_transmit_bytes_total", "Cumulative count of bytes transmitted", |n| n.tx_bytes),
        ("container_network_transmit_packets_total", "Cumulative count of packets transmitted", |n| n.tx_packets),
        ("container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting", |n| n.tx_errors),
        ("container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting", |n| n.tx_dropped),
    ];
    for (name, help, get) in net {
        let mut f = e.family(name, Kind::Counter, help);
        for c in cs {
            let [a, b, d] = labels(c);
            for (iface, n) in &c.networks {
                f.sample(&[(a.0, &a.1), (b.0, &b.1), ("interface", iface), (d.0, &d.1)], get(n) as f64);
            }
        }
    }
    let io: &[(&'static str, &str, bool, &str)] = &[
        ("container_fs_reads_bytes_total", "Cumulative count of bytes read", true, "read"),
        ("container_fs_writes_bytes_total", "Cumulative count of bytes written", true, "write"),
        ("container_fs_reads_total", "Cumulative count of reads completed", false, "read"),
        ("container_fs_writes_total", "Cumulative count of writes completed", false, "write"),
    ];
    for (name, help, bytes, op) in io {
        let mut f = e.family(name, Kind::Counter, help);
        for c in cs {
            let [a, b, d] = labels(c);
            let list = if *bytes { &c.stats.blkio.io_service_bytes_recursive } else { &c.stats.blkio.io_serviced_recursive };
            for (dev, v) in blkio(list, op) {
                f.sample(&[("device", &dev), (a.0, &a.1), (b.0, &b.1), (d.0, &d.1)], v as f64);
            }
        }
    }
}

fn raw(c: &ContainerMetrics, keys: &[&str]) -> f64 {
    keys.iter().find_map(|k| c.stats.memory.raw.get(*k)).copied().unwrap_or(0) as f64
}

/// Usage less inactive file pages, as cAdvisor and `docker stats` compute it.
fn working_set(c: &ContainerMetrics) -> f64 {
    let usage = c.stats.memory.usage.usage;
    let inactive = ["total_inactive_file", "inactive_file"].iter().find_map(|k| c.stats.memory.raw.get(*k)).copied().unwrap_or(0);
    usage.saturating_sub(inactive) as f64
}

/// The kernel reports "no limit" as a huge number.
fn limit_or_zero(l: u64) -> f64 {
    if l >= (1u64 << 62) { 0.0 } else { l as f64 }
}

/// The daemon process itself, as Prometheus' client libraries report it.
fn process_families(e: &mut Exposition) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command (which may hold spaces) start at field 3.
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as f64;
    let boot = std::fs::read_to_string("/proc/stat")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse::<f64>().ok()))
        .unwrap_or(0.0);
    e.family("process_cpu_seconds_total", Kind::Counter, "Total user and system CPU time spent in seconds").sample(&[], (field(14) + field(15)) / ticks);
    e.family("process_resident_memory_bytes", Kind::Gauge, "Resident memory size in bytes").sample(&[], field(24) * page);
    e.family("process_virtual_memory_bytes", Kind::Gauge, "Virtual memory size in bytes").sample(&[], field(23));
    e.family("process_start_time_seconds", Kind::Gauge, "Start time of the process since unix epoch in seconds").sample(&[], boot + field(22) / ticks);
    let fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0);
    e.family("process_open_fds", Kind::Gauge, "Number of open file descriptors").sample(&[], fds as f64);
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    e.family("process_max_fds", Kind::Gauge, "Maximum number of open file descriptors").sample(&[], lim.rlim_cur as f64);
}
