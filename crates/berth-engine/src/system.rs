//! System-wide answers (version, info, disk usage), prunes, and the volume and network
//! verbs of the API.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use berth_types::container::ContainerPruneResponse;
use berth_types::filters::Filters;
use berth_types::network::{Network, NetworkCreateRequest, NetworkCreateResponse, NetworkPruneResponse};
use berth_types::system::{ComponentVersion, DiskUsage, Info, PlatformName, RuntimeInfo, Version};
use berth_types::volume::{Volume, VolumeCreateRequest, VolumePruneResponse};

use crate::container::Status;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::network::net_err;
use crate::query::ListOptions;

pub const API_VERSION: &str = "1.51";
pub const MIN_API_VERSION: &str = "1.24";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn kernel_version() -> String {
    nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default()
}

fn os_name() -> (String, String) {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let get = |k: &str| text.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).map(|v| v.trim_matches('"').to_string()).unwrap_or_default();
    (get("PRETTY_NAME"), get("VERSION_ID"))
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

impl Engine {
    pub fn version(&self) -> Version {
        let kernel = kernel_version();
        let mut details = BTreeMap::new();
        details.insert("ApiVersion".to_string(), API_VERSION.to_string());
        details.insert("MinAPIVersion".to_string(), MIN_API_VERSION.to_string());
        details.insert("GitCommit".to_string(), String::new());
        details.insert("Os".to_string(), "linux".to_string());
        details.insert("Arch".to_string(), arch().to_string());
        details.insert("KernelVersion".to_string(), kernel.clone());
        Version {
            platform: PlatformName { name: format!("berth {VERSION}") },
            components: vec![ComponentVersion { name: "Engine".into(), version: VERSION.into(), details: Some(details) }],
            version: VERSION.into(),
            api_version: API_VERSION.into(),
            min_api_version: MIN_API_VERSION.into(),
            git_commit: String::new(),
            go_version: "rust".into(),
            os: "linux".into(),
            arch: arch().into(),
            kernel_version: kernel,
            experimental: false,
            build_time: String::new(),
        }
    }

    pub fn info(self: &Arc<Self>) -> Info {
        let recs: Vec<_> = self.containers.list().iter().map(|c| c.snapshot()).collect();
        let running = recs.iter().filter(|r| r.state.status == Status::Running || r.state.status == Status::Restarting).count() as i64;
        let paused = recs.iter().filter(|r| r.state.status == Status::Paused).count() as i64;
        let (os, os_version) = os_name();
        let mut runtimes = BTreeMap::new();
        runtimes.insert("berth".to_string(), RuntimeInfo { path: format!("{} runtime", self.exe.display()) });
        for (n, r) in &self.cfg.runtimes {
            runtimes.insert(n.clone(), RuntimeInfo { path: r.path.display().to_string() });
        }
        for n in ["runc", "crun"] {
            if let Some(p) = crate::runtimes::which(n) {
                runtimes.entry(n.to_string()).or_insert(RuntimeInfo { path: p.display().to_string() });
            }
        }
        let v1 = !self.cgroup_v2;
        let mut insecure = vec!["127.0.0.0/8".to_string()];
        insecure.extend(self.cfg.insecure_registries.iter().filter(|r| r.contains('/')).cloned());
        let mut index_configs = serde_json::Map::new();
        index_configs.insert(
            "docker.io".into(),
            serde_json::json!({"Name": "docker.io", "Mirrors": self.cfg.registry_mirrors, "Secure": true, "Official": true}),
        );
        for r in self.cfg.insecure_registries.iter().filter(|r| !r.contains('/')) {
            index_configs.insert(r.clone(), serde_json::json!({"Name": r, "Mirrors": [], "Secure": false, "Official": false}));
        }
        Info {
            id: self.engine_id.clone(),
            containers: recs.len() as i64,
            containers_running: running,
            containers_paused: paused,
            containers_stopped: recs.len() as i64 - running - paused,
            images: self.images.count(),
            driver: "overlay2".into(),
            driver_status: vec![
                ["Backing Filesystem".into(), backing_fs(&self.cfg.data_root)],
                ["Supports d_type".into(), "true".into()],
                ["Using metacopy".into(), "false".into()],
                ["Native Overlay Diff".into(), "true".into()],
            ],
            // Rootless: no cgroup, so no limit is available (and each is refused).
            memory_limit: !self.cfg.rootless,
            swap_limit: !self.cfg.rootless && (std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists() || self.cgroup_v2),
            cpu_cfs_period: !self.cfg.rootless,
            cpu_cfs_quota: !self.cfg.rootless,
            cpu_shares: !self.cfg.rootless,
            cpu_set: !self.cfg.rootless,
            pids_limit: !self.cfg.rootless,
            ipv4_forwarding: std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").map(|s| s.trim() == "1").unwrap_or(false),
            debug: self.cfg.debug,
            n_fd: std::fs::read_dir("/proc/self/fd").map(|d| d.count() as i64).unwrap_or(0),
            oom_kill_disable: v1 && !self.cfg.rootless,
            n_goroutines: 0,
            system_time: crate::util::now_rfc3339(),
            logging_driver: self.cfg.log_driver.clone(),
            cgroup_driver: if self.cfg.rootless { "none".into() } else { "cgroupfs".into() },
            cgroup_version: if v1 { "1".into() } else { "2".into() },
            n_events_listener: self.events.listeners() as i64,
            kernel_version: kernel_version(),
            operating_system: os,
            os_version,
            os_type: "linux".into(),
            architecture: std::env::consts::ARCH.into(),
            ncpu: std::thread::available_parallelism().map(|n| n.get() as i64).unwrap_or(1),
            mem_total: crate::query::host_memory() as i64,
            index_server_address: "https://index.docker.io/v1/".into(),
            registry_config: serde_json::json!({
                "AllowNondistributableArtifactsCIDRs": null,
                "AllowNondistributableArtifactsHostnames": null,
                "InsecureRegistryCIDRs": insecure,
                "IndexConfigs": index_configs,
                "Mirrors": self.cfg.registry_mirrors,
            }),
            generic_resources: None,
            http_proxy: std::env::var("HTTP_PROXY").unwrap_or_default(),
            https_proxy: std::env::var("HTTPS_PROXY").unwrap_or_default(),
            no_proxy: std::env::var("NO_PROXY").unwrap_or_default(),
            name: nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default(),
            labels: self.cfg.labels.clone(),
            experimental_build: false,
            server_version: VERSION.into(),
            runtimes,
            default_runtime: self.cfg.default_runtime.clone(),
            swarm: serde_json::json!({"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": null}),
            live_restore_enabled: true,
            isolation: String::new(),
            init_binary: String::new(),
            // As dockerd: `name=userns` when containers run remapped.
            security_options: {
                let mut v = vec!["name=seccomp,profile=builtin".to_string()];
                if self.remap.is_some() {
                    v.push("name=userns".into());
                }
                // As rootless dockerd (the CLI prints "rootless" under Security Options).
                if self.cfg.rootless {
                    v.push("name=rootless".into());
                }
                if self.cfg.no_new_privileges {
                    v.push("name=no-new-privileges".into());
                }
                v
            },
            warnings: Some(crate::network::Networking::host_warnings(self)).filter(|w| !w.is_empty()),
            docker_root_dir: self.cfg.data_root.display().to_string(),
            limits: Some(self.limits()),
        }
    }

    /// The bounds in force (docs/security.md), as `/info` reports them.
    pub fn limits(&self) -> berth_types::system::Limits {
        use berth_types::system as t;
        let unpack = self.images.unpack_limit();
        t::Limits {
            max_json_body: t::MAX_SMALL_BODY,
            max_container_body: t::MAX_CONTAINER_BODY,
            max_http1_header_bytes: t::MAX_HTTP1_HEADERS,
            max_http2_header_bytes: t::MAX_HTTP2_HEADER_LIST as u64,
            max_http2_streams_per_connection: t::MAX_HTTP2_STREAMS as u64,
            max_connections_per_client: self.cfg.max_connections_per_client as u64,
            max_layer_size: unpack.max_layer_bytes.unwrap_or(0),
            min_free_space: unpack.min_free_bytes,
            max_log_line: t::MAX_LOG_LINE,
        }
    }

    pub async fn disk_usage(&self) -> Result<DiskUsage> {
        let (layers_size, mut images) = self.images.disk_usage().await?;
        let recs: Vec<_> = self.containers.list().iter().map(|c| c.snapshot()).collect();
        for i in images.iter_mut() {
            i.containers = recs.iter().filter(|r| r.image_id == i.id).count() as i64;
        }
        let containers = self.list_containers(&ListOptions { all: true, size: true, ..Default::default() })?;
        let mut volumes = Vec::new();
        for v in self.volumes.list() {
            let refs = self.volume_users(&v.name).len() as i64;
            let size = crate::volumes::dir_size(&self.volumes.data_path(&v.name));
            volumes.push(self.volumes.to_api(&v, Some((size, refs))));
        }
        let build_cache = self.build_cache_usage().await?;
        Ok(DiskUsage { layers_size, images, containers, volumes, build_cache })
    }

    pub async fn prune_containers(self: &Arc<Self>, filters: &Filters) -> Result<ContainerPruneResponse> {
        filters.validate(&["until", "label", "label!"]).map_err(|e| Error::invalid(e.to_string()))?;
        let until = filters.get("until").first().and_then(|u| crate::util::parse_timestamp(u, chrono::Utc::now()));
        let mut deleted = Vec::new();
        let mut reclaimed = 0u64;
        for c in self.containers.list() {
            let rec = c.snapshot();
            if !matches!(rec.state.status, Status::Exited | Status::Created | Status::Dead) {
                continue;
            }
            if let Some(u) = until
                && crate::util::parse_rfc3339(&rec.created).is_some_and(|t| t >= u) {
                    continue;
                }
            let labels = rec.config.labels.clone().unwrap_or_default();
            if !filters.matches_labels("label", &labels) || negated_label_match(filters, &labels) {
                continue;
            }
            let size = crate::volumes::dir_size(&crate::container::ContainerRecord::dir(&self.cfg.data_root, &rec.id).join("upper"));
            if self.remove_container(&rec.id, false, false).await.is_ok() {
                deleted.push(rec.id.clone());
                reclaimed += size as u64;
            }
        }
        self.events.emit("container", "prune", "", [("reclaimed".to_string(), reclaimed.to_string())].into_iter().collect());
        Ok(ContainerPruneResponse { containers_deleted: if deleted.is_empty() { None } else { Some(deleted) }, space_reclaimed: reclaimed })
    }

    // ---- volumes --------------------------------------------------------------

    pub fn volume_create(&self, req: VolumeCreateRequest) -> Result<Volume> {
        let name = if req.name.is_empty() { None } else { Some(req.name.as_str()) };
        let existed = name.is_some_and(|n| self.volumes.get(n).is_ok());
        let v = self.volumes.create(name, &req.driver, req.driver_opts.unwrap_or_default(), req.labels.unwrap_or_default(), false)?;
        if !existed {
            self.events.emit("volume", "create", &v.name, [("driver".to_string(), "local".to_string())].into_iter().collect());
        }
        Ok(self.volumes.to_api(&v, None))
    }

    pub fn volume_inspect(&self, name: &str) -> Result<Volume> {
        let v = self.volumes.get(name)?;
        Ok(self.volumes.to_api(&v, None))
    }

    pub fn volume_list(&self, filters: &Filters) -> Result<Vec<Volume>> {
        filters.validate(&["name", "label", "dangling", "driver"]).map_err(|e| Error::invalid(e.to_string()))?;
        let mut out = Vec::new();
        for v in self.volumes.list() {
            if !filters.get("name").is_empty() && !filters.get("name").iter().any(|n| v.name.contains(n.as_str())) {
                continue;
            }
            if !filters.matches_labels("label", &v.labels) {
                continue;
            }
            if !filters.get("driver").is_empty() && !filters.get("driver").iter().any(|d| d == "local") {
                continue;
            }
            if let Some(d) = filters.get("dangling").first() {
                let dangling = matches!(d.as_str(), "true" | "1");
                if !matches!(d.as_str(), "true" | "1" | "false" | "0") {
                    return Err(Error::invalid(format!("invalid filter 'dangling={d}'")));
                }
                if self.volume_users(&v.name).is_empty() != dangling {
                    continue;
                }
            }
            out.push(self.volumes.to_api(&v, None));
        }
        Ok(out)
    }

    pub fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        let users = self.volume_users(name);
        // Docker: force removes a volume not in use even if the driver fails; a volume in
        // use by a container is never removed from under it.
        self.volumes.remove(name, &users, force)?;
        self.events.emit("volume", "destroy", name, Default::default());
        Ok(())
    }

    pub fn volume_prune(&self, filters: &Filters) -> Result<VolumePruneResponse> {
        filters.validate(&["label", "label!", "all"]).map_err(|e| Error::invalid(e.to_string()))?;
        let all = filters.get("all").first().is_some_and(|v| v == "true" || v == "1");
        let mut deleted = Vec::new();
        let mut reclaimed = 0u64;
        for v in self.volumes.list() {
            // Docker (API ≥ 1.42) prunes only anonymous volumes unless all=true.
            if (!all && !v.anonymous) || !self.volume_users(&v.name).is_empty() {
                continue;
            }
            if !filters.matches_labels("label", &v.labels) || negated_label_match(filters, &v.labels) {
                continue;
            }
            let size = crate::volumes::dir_size(&self.volumes.data_path(&v.name)) as u64;
            if self.volumes.remove(&v.name, &[], false).is_ok() {
                self.events.emit("volume", "destroy", &v.name, Default::default());
                deleted.push(v.name.clone());
                reclaimed += size;
            }
        }
        Ok(VolumePruneResponse { volumes_deleted: if deleted.is_empty() { None } else { Some(deleted) }, space_reclaimed: reclaimed })
    }

    // ---- networks -------------------------------------------------------------

    pub async fn network_create(&self, req: NetworkCreateRequest) -> Result<NetworkCreateResponse> {
        let name = req.name.clone();
        let driver = if req.driver.is_empty() { "bridge".to_string() } else { req.driver.clone() };
        let resp: NetworkCreateResponse = self.net.mgr.create_network(req).await.map_err(net_err)?;
        self.events.emit("network", "create", &resp.id, [("name".to_string(), name), ("type".to_string(), driver)].into_iter().collect());
        Ok(resp)
    }

    pub async fn network_inspect(&self, key: &str) -> Result<Network> {
        let mut out: Network = self.net.mgr.inspect_network(key).await.map_err(net_err)?;
        self.fill_network_containers(&mut out);
        Ok(out)
    }

    pub async fn network_list(&self, filters: &Filters) -> Result<Vec<Network>> {
        let nf: berth_net::NetworkFilters = filters_map(filters);
        self.net.mgr.list_networks(&nf).await.map_err(net_err)
    }

    fn fill_network_containers(&self, n: &mut Network) {
        for c in self.containers.list() {
            let rec = c.snapshot();
            if !rec.state.status.is_alive() {
                continue;
            }
            if let Some(es) = rec.network.networks.get(&n.name) {
                n.containers.insert(
                    rec.id.clone(),
                    berth_types::network::NetworkContainer {
                        name: rec.bare_name().to_string(),
                        endpoint_id: es.endpoint_id.clone(),
                        mac_address: es.mac_address.clone(),
                        ipv4_address: if es.ip_address.is_empty() { String::new() } else { format!("{}/{}", es.ip_address, es.ip_prefix_len) },
                        ipv6_address: if es.global_ipv6_address.is_empty() {
                            String::new()
                        } else {
                            format!("{}/{}", es.global_ipv6_address, es.global_ipv6_prefix_len)
                        },
                    },
                );
            }
        }
    }

    pub async fn network_remove(&self, key: &str) -> Result<()> {
        let n = self.net.mgr.inspect_network(key).await.map_err(net_err)?;
        // Stopped containers keep their attachment in their config: Docker refuses too.
        let users: Vec<String> = self
            .containers
            .list()
            .iter()
            .filter(|c| c.with(|r| r.state.status.is_alive() && r.network.networks.contains_key(&n.name)))
            .map(|c| c.id.clone())
            .collect();
        if !users.is_empty() {
            return Err(Error::forbidden(format!("error while removing network: network {} id {} has active endpoints", n.name, n.id)));
        }
        self.net.mgr.remove_network(key).await.map_err(net_err)?;
        self.events.emit("network", "destroy", &n.id, [("name".to_string(), n.name.clone()), ("type".to_string(), n.driver.clone())].into_iter().collect());
        Ok(())
    }

    pub async fn network_prune(&self, filters: &Filters) -> Result<NetworkPruneResponse> {
        let nf: berth_net::NetworkFilters = filters_map(filters);
        let in_use: HashSet<String> = self.containers.list().iter().flat_map(|c| c.with(|r| r.network.networks.keys().cloned().collect::<Vec<_>>())).collect();
        let list = self.net.mgr.list_networks(&nf).await.map_err(net_err)?;
        let mut deleted = Vec::new();
        for n in list {
            if ["bridge", "host", "none"].contains(&n.name.as_str()) || in_use.contains(&n.name) {
                continue;
            }
            if self.net.mgr.remove_network(&n.id).await.is_ok() {
                self.events.emit("network", "destroy", &n.id, [("name".to_string(), n.name.clone())].into_iter().collect());
                deleted.push(n.name.clone());
            }
        }
        Ok(NetworkPruneResponse { networks_deleted: if deleted.is_empty() { None } else { Some(deleted) } })
    }
}

fn filters_map(f: &Filters) -> BTreeMap<String, Vec<String>> {
    f.keys().map(|k| (k.to_string(), f.get(k).to_vec())).collect()
}

fn negated_label_match(f: &Filters, labels: &BTreeMap<String, String>) -> bool {
    f.get("label!").iter().any(|l| match l.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(l.as_str()),
    })
}

fn backing_fs(p: &std::path::Path) -> String {
    match rustix::fs::statfs(p) {
        Ok(s) => match s.f_type {
            0xEF53 => "extfs".into(),
            0x58465342 => "xfs".into(),
            0x9123683E => "btrfs".into(),
            0x01021994 => "tmpfs".into(),
            0x794c7630 => "overlayfs".into(),
            _ => "unknown".into(),
        },
        Err(_) => "unknown".into(),
    }
}
