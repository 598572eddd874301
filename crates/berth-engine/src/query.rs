//! Reading containers: inspect, list (with filters), top, stats, diff, port; and the
//! image-making verbs on a container: commit and export.

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_types::container::{
    ContainerInspect, ContainerSummary, FilesystemChange, GraphDriver, NetworkSettings, Port, State, StatsResponse, SummaryHostConfig,
    SummaryNetworkSettings, TopResponse,
};
use berth_types::filters::Filters;

use crate::container::{ContainerRecord, Status};
use crate::engine::Engine;
use crate::error::{Error, Result};

/// `docker ps` options.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub all: bool,
    pub limit: Option<usize>,
    pub size: bool,
    pub filters: Filters,
}

fn state_of(rec: &ContainerRecord) -> State {
    let s = &rec.state;
    State {
        status: s.status.as_str().into(),
        running: s.status.is_alive() || s.status == Status::Restarting,
        paused: s.status == Status::Paused,
        restarting: s.status == Status::Restarting,
        oom_killed: s.oom_killed,
        dead: s.status == Status::Dead,
        pid: s.pid,
        exit_code: s.exit_code,
        error: s.error.clone(),
        started_at: s.started_at.clone(),
        finished_at: s.finished_at.clone(),
        health: s.health.clone(),
    }
}

/// Docker's "Up 3 minutes", "Exited (0) 2 seconds ago", "Created"...
pub fn status_text(rec: &ContainerRecord) -> String {
    let now = chrono::Utc::now();
    let since = |t: &str| crate::util::parse_rfc3339(t).map(|t| human_duration(now - t)).unwrap_or_default();
    let s = &rec.state;
    match s.status {
        Status::Running | Status::Paused => {
            let mut out = format!("Up {}", since(&s.started_at));
            if s.status == Status::Paused {
                out.push_str(" (Paused)");
            }
            if let Some(h) = &s.health {
                match h.status.as_str() {
                    "starting" => out.push_str(" (health: starting)"),
                    "healthy" => out.push_str(" (healthy)"),
                    "unhealthy" => out.push_str(" (unhealthy)"),
                    _ => {}
                }
            }
            out
        }
        Status::Restarting => format!("Restarting ({}) {} ago", s.exit_code, since(&s.finished_at)),
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
        Status::Created => "Created".into(),
        Status::Exited => {
            if s.finished_at == crate::util::ZERO_TIME {
                "Created".into()
            } else {
                format!("Exited ({}) {} ago", s.exit_code, since(&s.finished_at))
            }
        }
    }
}

/// Go's units.HumanDuration, which Docker uses (negative spans, from clock skew, are 0).
pub fn human_duration(d: chrono::Duration) -> String {
    berth_types::units::human_duration(d.to_std().unwrap_or_default())
}

/// A container's ports in `GET /containers/json`: those of its running network
/// (exposed ones without a binding, and the published ones). A container that is not
/// running has no network and so lists none, as dockerd clears them at stop.
fn ports_of(rec: &ContainerRecord) -> Vec<Port> {
    let mut out = Vec::new();
    let running = rec.state.status.is_alive();
    if !running {
        return out;
    }
    let mut keys: Vec<String> = rec.config.exposed_ports.as_ref().map(|e| e.keys().cloned().collect()).unwrap_or_default();
    for k in rec.network.ports.keys() {
        if !keys.contains(k) {
            keys.push(k.clone());
        }
    }
    for k in keys {
        let (port, proto) = k.split_once('/').unwrap_or((k.as_str(), "tcp"));
        let Ok(private) = port.parse::<u16>() else { continue };
        let bindings = if running { rec.network.ports.get(&k).cloned().flatten().unwrap_or_default() } else { Vec::new() };
        if bindings.is_empty() {
            out.push(Port { ip: String::new(), private_port: private, public_port: 0, kind: proto.into() });
        }
        for b in bindings {
            out.push(Port { ip: b.host_ip.clone(), private_port: private, public_port: b.host_port.parse().unwrap_or(0), kind: proto.into() });
        }
    }
    out
}

fn command_line(rec: &ContainerRecord) -> String {
    let mut parts = vec![rec.path.clone()];
    parts.extend(rec.args.iter().cloned());
    parts.iter().map(|p| if p.contains(' ') || p.is_empty() { shell_quote(p) } else { p.clone() }).collect::<Vec<_>>().join(" ")
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

impl Engine {
    pub fn inspect_container(&self, key: &str, size: bool) -> Result<ContainerInspect> {
        let c = self.container(key)?;
        let rec = c.snapshot();
        let mut networks = rec.network.networks.clone();
        if !rec.state.status.is_alive() {
            for es in networks.values_mut() {
                es.endpoint_id.clear();
                es.gateway.clear();
                es.ip_address.clear();
                es.ip_prefix_len = 0;
                es.mac_address.clear();
                es.global_ipv6_address.clear();
                es.global_ipv6_prefix_len = 0;
                es.ipv6_gateway.clear();
            }
        }
        let primary = networks.get(if rec.host_config.network_mode == "default" { "bridge" } else { rec.host_config.network_mode.as_str() }).cloned().unwrap_or_default();
        let running = rec.state.status.is_alive();
        let mut graph = BTreeMap::new();
        let cdir = ContainerRecord::dir(&self.cfg.data_root, &rec.id);
        // Docker's LowerDir: the init layer, then the image's layers, topmost first.
        if let Ok(snap) = self.images.store().snapshot(&rec.id) {
            let lowers: Vec<String> = snap.lowers.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            graph.insert("LowerDir".to_string(), lowers.join(":"));
        }
        graph.insert("MergedDir".to_string(), self.rootfs_of(&rec.id).to_string_lossy().into_owned());
        graph.insert("UpperDir".to_string(), cdir.join("upper").to_string_lossy().into_owned());
        graph.insert("WorkDir".to_string(), cdir.join("work").to_string_lossy().into_owned());
        let (size_rw, size_root) = if size {
            let rw = crate::volumes::dir_size(&cdir.join("upper"));
            (Some(rw), Some(rw))
        } else {
            (None, None)
        };
        let execs = self.exec_ids_of(&rec.id);
        Ok(ContainerInspect {
            id: rec.id.clone(),
            created: rec.created.clone(),
            path: rec.path.clone(),
            args: rec.args.clone(),
            state: state_of(&rec),
            image: rec.image_id.clone(),
            resolv_conf_path: rec.resolv_conf_path.clone(),
            hostname_path: rec.hostname_path.clone(),
            hosts_path: rec.hosts_path.clone(),
            log_path: crate::logconfig::shown_path(&rec, &self.cfg.data_root),
            name: rec.name.clone(),
            restart_count: rec.restart_count,
            driver: "overlay2".into(),
            platform: "linux".into(),
            mount_label: String::new(),
            process_label: String::new(),
            app_armor_profile: String::new(),
            exec_ids: if execs.is_empty() { None } else { Some(execs) },
            host_config: rec.host_config.clone(),
            graph_driver: GraphDriver { data: graph, name: "overlay2".into() },
            size_rw,
            size_root_fs: size_root,
            mounts: rec.mounts.iter().map(|m| m.to_api()).collect(),
            config: rec.config.clone(),
            network_settings: NetworkSettings {
                sandbox_id: if running { rec.id.clone() } else { String::new() },
                sandbox_key: if running { rec.network.sandbox_key.clone() } else { String::new() },
                ports: if running { rec.network.ports.clone() } else { Default::default() },
                endpoint_id: primary.endpoint_id.clone(),
                gateway: primary.gateway.clone(),
                ip_address: primary.ip_address.clone(),
                ip_prefix_len: primary.ip_prefix_len,
                mac_address: primary.mac_address.clone(),
                global_ipv6_address: primary.global_ipv6_address.clone(),
                global_ipv6_prefix_len: primary.global_ipv6_prefix_len,
                ipv6_gateway: primary.ipv6_gateway.clone(),
                networks,
                ..Default::default()
            },
        })
    }

    pub fn list_containers(&self, opts: &ListOptions) -> Result<Vec<ContainerSummary>> {
        let f = &opts.filters;
        f.validate(&["id", "name", "status", "label", "ancestor", "exited", "before", "since", "volume", "network", "health", "is-task", "publish", "expose"])
            .map_err(|e| Error::invalid(e.to_string()))?;
        for s in f.get("status") {
            if !["created", "restarting", "running", "removing", "paused", "exited", "dead"].contains(&s.as_str()) {
                return Err(Error::invalid(format!("invalid filter 'status={s}'")));
            }
        }
        // Each record is read in place, under its own lock, and only what the summary
        // shows is copied: a copy of a thousand whole records was most of `ps`.
        let mut all: Vec<(String, Arc<crate::container::Container>)> = self.containers.list().into_iter().map(|c| (c.with(|r| r.created.clone()), c)).collect();
        all.sort_by(|a, b| b.0.cmp(&a.0));
        let created_of = |key: &str| -> Result<String> { Ok(self.container(key)?.with(|r| r.created.clone())) };
        let before = f.get("before").first().map(|k| created_of(k)).transpose()?;
        let since = f.get("since").first().map(|k| created_of(k)).transpose()?;
        let ancestors: Vec<String> = f
            .get("ancestor")
            .iter()
            .map(|a| self.images.store().resolve(a).map(|d| d.to_string()).unwrap_or_else(|_| a.clone()))
            .collect();
        let show_all = opts.all || !f.get("status").is_empty() || !f.get("exited").is_empty() || opts.limit.is_some() || before.is_some() || since.is_some();
        let summary = |rec: &ContainerRecord| -> Option<ContainerSummary> {
            let status = rec.state.status;
            if !show_all && !(status.is_alive() || status == Status::Restarting) {
                return None;
            }
            if !f.get("id").is_empty() && !f.get("id").iter().any(|i| rec.id.starts_with(i.as_str())) {
                return None;
            }
            if !f.get("name").is_empty() && !f.get("name").iter().any(|n| name_matches(rec.bare_name(), n)) {
                return None;
            }
            if !f.matches_exact("status", status.as_str()) {
                return None;
            }
            if !f.get("exited").is_empty() && (status != Status::Exited || !f.get("exited").iter().any(|e| e.parse::<i64>().ok() == Some(rec.state.exit_code))) {
                return None;
            }
            if !f.matches_labels("label", rec.config.labels.as_ref().unwrap_or(&Default::default())) {
                return None;
            }
            if !ancestors.is_empty() && !ancestors.iter().any(|a| *a == rec.image_id || *a == rec.config.image) {
                return None;
            }
            if let Some(b) = &before
                && rec.created >= *b {
                    return None;
                }
            if let Some(s) = &since
                && rec.created <= *s {
                    return None;
                }
            if !f.get("volume").is_empty() && !f.get("volume").iter().any(|v| rec.mounts.iter().any(|m| &m.name == v || &m.destination == v || &m.source == v)) {
                return None;
            }
            if !f.get("network").is_empty() && !f.get("network").iter().any(|n| rec.network.networks.iter().any(|(name, es)| name == n || es.network_id.starts_with(n.as_str()))) {
                return None;
            }
            if !f.get("health").is_empty() {
                let h = rec.state.health.as_ref().map(|h| h.status.as_str()).unwrap_or("none");
                if !f.get("health").iter().any(|x| x == h) {
                    return None;
                }
            }
            Some(ContainerSummary {
                id: rec.id.clone(),
                names: vec![rec.name.clone()],
                image: rec.config.image.clone(),
                image_id: rec.image_id.clone(),
                command: command_line(rec),
                created: crate::util::parse_rfc3339(&rec.created).map(|t| t.timestamp()).unwrap_or(0),
                ports: ports_of(rec),
                size_rw: None,
                size_root_fs: None,
                labels: rec.config.labels.clone().unwrap_or_default(),
                state: status.as_str().into(),
                status: status_text(rec),
                host_config: SummaryHostConfig { network_mode: rec.host_config.network_mode.clone(), annotations: None },
                network_settings: SummaryNetworkSettings { networks: rec.network.networks.clone() },
                mounts: rec.mounts.iter().map(|m| m.to_api()).collect(),
            })
        };
        let mut out = Vec::new();
        for (_, c) in all {
            let Some(mut s) = c.with(&summary) else { continue };
            if opts.size {
                // Outside the record's lock: a walk of the container's upper layer.
                let size = crate::volumes::dir_size(&ContainerRecord::dir(&self.cfg.data_root, &s.id).join("upper"));
                (s.size_rw, s.size_root_fs) = (Some(size), Some(size));
            }
            out.push(s);
            if opts.limit.is_some_and(|l| l > 0 && out.len() >= l) {
                break;
            }
        }
        Ok(out)
    }

    /// `docker top`: `ps` of the container's processes (default `-ef`).
    pub async fn top(&self, key: &str, ps_args: &str) -> Result<TopResponse> {
        let c = self.container(key)?;
        let rec = c.snapshot();
        if !rec.state.status.is_alive() {
            return Err(Error::conflict(format!("container {} is not running", rec.id)));
        }
        let rt = self.runtime_of(&rec)?;
        let id = rec.id.clone();
        validate_ps_args(ps_args)?;
        let pids = tokio::task::spawn_blocking(move || rt.processes(&id)).await.map_err(|e| Error::system(e.to_string()))??;
        let args: Vec<String> = if ps_args.is_empty() { vec!["-ef".into()] } else { ps_args.split(' ').filter(|a| !a.is_empty()).map(String::from).collect() };
        // As dockerd: ps over the container's processes (`-q pid,...`), so that options
        // which select no processes by themselves (`-o pid,args`) still list them;
        // options that cannot go with -q (such as `f`) are retried without it.
        let q = format!("-q{}", pids.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(","));
        let mut out = tokio::process::Command::new("ps").args(&args).arg(&q).output().await.map_err(|e| Error::system(format!("ps: {e}")))?;
        if !out.status.success() {
            out = tokio::process::Command::new("ps").args(&args).output().await.map_err(|e| Error::system(format!("ps: {e}")))?;
            if !out.status.success() {
                let err = String::from_utf8_lossy(&out.stderr);
                let first = err.lines().next().unwrap_or("").to_string();
                let why = if first.is_empty() { format!("exit status {}", out.status.code().unwrap_or(-1)) } else { first };
                // ps refusing its arguments is the caller's bad input: 400, not the
                // 500 dockerd answers (found by scripts/fuzz-api.sh; docs/testing.md).
                return Err(Error::invalid(format!("ps: {why}")));
            }
        }
        parse_ps(&String::from_utf8_lossy(&out.stdout), &pids)
    }

    pub async fn container_changes(&self, key: &str) -> Result<Vec<FilesystemChange>> {
        let c = self.container(key)?;
        self.images.changes(&c.id).await
    }

    /// One stats sample (`docker stats --no-stream` takes two, `precpu` from the first).
    pub async fn stats_sample(&self, key: &str, prev: Option<&StatsResponse>) -> Result<StatsResponse> {
        let c = self.container(key)?;
        let rec = c.snapshot();
        let mut out = StatsResponse {
            name: rec.name.clone(),
            id: rec.id.clone(),
            read: crate::util::now_rfc3339(),
            preread: prev.map(|p| p.read.clone()).unwrap_or_else(|| crate::util::ZERO_TIME.into()),
            ..Default::default()
        };
        if let Some(p) = prev {
            out.precpu_stats = p.cpu_stats.clone();
        }
        if !rec.state.status.is_alive() {
            return Ok(out);
        }
        let rt = self.runtime_of(&rec)?;
        let id = rec.id.clone();
        let st = tokio::task::spawn_blocking(move || rt.stats(&id)).await.map_err(|e| Error::system(e.to_string()))??;
        let ncpu = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
        out.cpu_stats = berth_types::container::CpuStats {
            cpu_usage: berth_types::container::CpuUsage {
                total_usage: st.cpu.usage.total,
                percpu_usage: if st.cpu.usage.percpu.is_empty() { None } else { Some(st.cpu.usage.percpu.clone()) },
                usage_in_kernelmode: st.cpu.usage.kernel,
                usage_in_usermode: st.cpu.usage.user,
            },
            system_cpu_usage: Some(system_cpu_usage()),
            online_cpus: Some(ncpu),
            throttling_data: berth_types::container::ThrottlingData {
                periods: st.cpu.throttling.periods,
                throttled_periods: st.cpu.throttling.throttled_periods,
                throttled_time: st.cpu.throttling.throttled_time,
            },
        };
        let mem: serde_json::Value = serde_json::to_value(&st.memory).unwrap_or_default();
        let usage = |k: &str| mem.get("usage").and_then(|u| u.get(k)).and_then(|v| v.as_u64());
        let mut raw: BTreeMap<String, u64> = mem
            .get("raw")
            .and_then(|r| serde_json::from_value(r.clone()).ok())
            .unwrap_or_default();
        raw.retain(|_, v| *v < u64::MAX / 2);
        let host_mem = host_memory();
        out.memory_stats = berth_types::container::MemoryStats {
            usage: usage("usage"),
            max_usage: usage("max"),
            limit: usage("limit").map(|l| if l == 0 || l > host_mem { host_mem } else { l }).or(Some(host_mem)),
            failcnt: usage("failcnt"),
            stats: Some(raw),
        };
        let pids: serde_json::Value = serde_json::to_value(&st.pids).unwrap_or_default();
        out.pids_stats = berth_types::container::PidsStats {
            current: pids.get("current").and_then(|v| v.as_u64()),
            limit: pids.get("limit").and_then(|v| v.as_u64()).filter(|l| *l > 0),
        };
        let blk = |v: &[berth_runtime::cgroups::stats::BlkioEntry]| {
            Some(v.iter().map(|e| berth_types::container::BlkioStatEntry { major: e.major, minor: e.minor, op: e.op.clone(), value: e.value }).collect())
        };
        out.blkio_stats = berth_types::container::BlkioStats {
            io_service_bytes_recursive: blk(&st.blkio.io_service_bytes_recursive),
            io_serviced_recursive: blk(&st.blkio.io_serviced_recursive),
            ..Default::default()
        };
        out.num_procs = 0;
        if let Some(l) = c.live() {
            out.networks = Some(net_stats(l.init_pid));
        }
        Ok(out)
    }

    pub async fn export_container<W: std::io::Write + Send + 'static>(&self, key: &str, out: W) -> Result<()> {
        let c = self.container(key)?;
        let unmap = c.with(|r| r.ext.userns.as_ref().map(|u| u.unmap()));
        self.images.export(&c.id, out, unmap).await?;
        self.emit_container(&c.snapshot(), "export", &[]);
        Ok(())
    }

    /// `docker commit`: the container's changes as a new image.
    pub async fn commit_container(self: &Arc<Self>, key: &str, repo_tag: Option<String>, author: String, comment: String, changes: Vec<String>, config: Option<berth_types::container::Config>, pause: bool) -> Result<String> {
        let c = self.container(key)?;
        let rec = c.snapshot();
        let cancel = tokio_util::sync::CancellationToken::new();
        let _cancel_on_drop = cancel.clone().drop_guard();
        let paused_here = pause && rec.state.status == Status::Running;
        if paused_here {
            let _ = self.runtime_of(&rec)?.pause(&rec.id);
        }
        let mut cfg = rec.config.clone();
        if let Some(over) = config {
            if over.cmd.is_some() {
                cfg.cmd = over.cmd;
            }
            if over.entrypoint.is_some() {
                cfg.entrypoint = over.entrypoint;
            }
            if let Some(env) = over.env {
                cfg.env = Some(env);
            }
            if let Some(l) = over.labels {
                cfg.labels.get_or_insert_with(Default::default).extend(l);
            }
        }
        let opts = berth_image::CommitOptions {
            config: Some(crate::util::convert(&cfg)?),
            changes,
            author,
            comment,
            tag: repo_tag,
            container_id: rec.id.clone(),
            unmap: rec.ext.userns.as_ref().map(|u| u.unmap()),
            cancel: Some(cancel.clone()),
        };
        let cancel = cancel.clone();
        // The commit and the resume run to their end on a task of their own: a client
        // that goes away drops this future (and sets `cancel` through the guard), which
        // must neither leave the container paused nor keep writing an image nobody waits
        // for. The image store's error path keeps nothing of a cancelled commit.
        let engine = self.clone();
        let task = tokio::spawn(async move {
            let r = engine.images.commit(&rec.id, opts).await;
            if let Err(e) = &r
                && cancel.is_cancelled()
            {
                tracing::info!("commit of {} stopped, its client went away: {}", rec.id, e.message);
            }
            if paused_here && let Ok(rt) = engine.runtime_of(&rec) {
                let _ = rt.resume(&rec.id);
            }
            let id = r?;
            engine.emit_container(&rec, "commit", &[]);
            Ok(id)
        });
        task.await.map_err(|e| Error::system(format!("commit: {e}")))?
    }
}

fn name_matches(name: &str, pat: &str) -> bool {
    let pat = pat.trim_start_matches('/');
    if let Ok(re) = regex_lite(pat) {
        return re(name);
    }
    name.contains(pat)
}

/// Docker matches name filters as regular expressions; berth supports the common
/// forms: anchors ^ and $, otherwise substring.
fn regex_lite(pat: &str) -> std::result::Result<Box<dyn Fn(&str) -> bool>, ()> {
    let starts = pat.starts_with('^');
    let ends = pat.ends_with('$') && !pat.ends_with("\\$");
    let core = pat.trim_start_matches('^').trim_end_matches('$').to_string();
    if core.chars().any(|c| "*+?[](){}|\\.".contains(c) && c != '.') {
        return Err(());
    }
    Ok(Box::new(move |n: &str| match (starts, ends) {
        (true, true) => n == core,
        (true, false) => n.starts_with(&core),
        (false, true) => n.ends_with(&core),
        (false, false) => n.contains(&core),
    }))
}

/// dockerd refuses ps options that would rename the PID column (`-o x=PID`), since
/// the rows are matched to the container by that column.
fn validate_ps_args(args: &str) -> Result<()> {
    // `\s+([^\s]*)=\s*(PID[^\s]*)` as dockerd's check.
    let bytes: Vec<&str> = args.split(char::is_whitespace).collect();
    for (i, word) in bytes.iter().enumerate() {
        if i == 0 {
            continue;
        }
        if let Some((k, v)) = word.split_once('=') {
            let v = if v.is_empty() { bytes.get(i + 1).copied().unwrap_or("") } else { v };
            if v.starts_with("PID") && k != "pid" {
                return Err(Error::invalid(format!("specifying \"{k}={v}\" is not allowed")));
            }
        }
    }
    Ok(())
}

/// dockerd's parsePSOutput: rows of the container's processes (and, with `m`, the
/// thread rows under them), the last column keeping its spaces.
fn parse_ps(text: &str, pids: &[i32]) -> Result<TopResponse> {
    let mut lines = text.split('\n');
    let header = lines.next().unwrap_or("");
    let titles: Vec<String> = header.split_ascii_whitespace().map(String::from).collect();
    let pid_col = titles.iter().position(|t| t == "PID").ok_or_else(|| Error::invalid("Couldn't find PID field in ps output"))?;
    let mut processes = Vec::new();
    let mut in_container = false;
    let row = |fields: &[&str]| -> Vec<String> {
        let n = titles.len().max(1);
        let mut row: Vec<String> = fields[..(n - 1).min(fields.len())].iter().map(|s| s.to_string()).collect();
        if fields.len() >= n {
            row.push(fields[n - 1..].join(" "));
        }
        row
    };
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        if fields.len() <= pid_col {
            continue;
        }
        if fields[pid_col] == "-" {
            if in_container {
                processes.push(row(&fields));
            }
            continue;
        }
        let pid: i32 = fields[pid_col].parse().map_err(|e| Error::system(format!("Unexpected pid '{}': {e}", fields[pid_col])))?;
        in_container = pids.contains(&pid);
        if in_container {
            processes.push(row(&fields));
        }
    }
    Ok(TopResponse { titles, processes })
}

/// Host CPU time in nanoseconds, as Docker's `system_cpu_usage`.
fn system_cpu_usage() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else { return 0 };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else { return 0 };
    let ticks: u64 = line.split_whitespace().skip(1).take(7).filter_map(|v| v.parse::<u64>().ok()).sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * (1_000_000_000 / hz)
}

pub(crate) fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<u64>().ok()))
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Interface counters seen from the container's network namespace.
/// The interfaces of a process's network namespace, sorted by name.
pub(crate) fn net_stats_of(pid: i32) -> Vec<(String, berth_types::container::NetworkStats)> {
    let mut v: Vec<_> = net_stats(pid).into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn net_stats(pid: i32) -> std::collections::HashMap<String, berth_types::container::NetworkStats> {
    let mut out = std::collections::HashMap::new();
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/dev")) else { return out };
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else { continue };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let v: Vec<u64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        if v.len() < 16 {
            continue;
        }
        out.insert(
            name.to_string(),
            berth_types::container::NetworkStats {
                rx_bytes: v[0],
                rx_packets: v[1],
                rx_errors: v[2],
                rx_dropped: v[3],
                tx_bytes: v[8],
                tx_packets: v[9],
                tx_errors: v[10],
                tx_dropped: v[11],
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_like_docker() {
        assert_eq!(human_duration(chrono::Duration::milliseconds(300)), "Less than a second");
        assert_eq!(human_duration(chrono::Duration::seconds(3)), "3 seconds");
        assert_eq!(human_duration(chrono::Duration::seconds(75)), "About a minute");
        assert_eq!(human_duration(chrono::Duration::minutes(3)), "3 minutes");
        assert_eq!(human_duration(chrono::Duration::minutes(61)), "About an hour");
        assert_eq!(human_duration(chrono::Duration::hours(5)), "5 hours");
    }

    #[test]
    fn ps_output_is_filtered_to_the_container() {
        let text = "UID PID PPID C STIME TTY TIME CMD\nroot 10 1 0 10:00 ? 00:00:00 sleep 100\nroot 11 1 0 10:00 ? 00:00:00 other thing\n";
        let t = parse_ps(text, &[10]).unwrap();
        assert_eq!(t.processes.len(), 1);
        assert_eq!(t.processes[0].last().unwrap(), "sleep 100");
    }
}
