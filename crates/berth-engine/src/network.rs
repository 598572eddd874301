//! The engine's side of networking: container network modes (bridge networks, host,
//! none, container:<x>) wired to berth-net's NetworkManager, and the container's
//! /etc/hosts, /etc/resolv.conf and /etc/hostname.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;

use berth_net::{EndpointRequest, FilesRequest, NetConfig, NetError, NetworkManager, NetworkMode};
use berth_types::container::{HostConfig, NetworkingConfig, PortMap};
use berth_types::network::EndpointSettings;

use crate::config::EngineConfig;
use crate::container::record::{ContainerRecord, NetworkRecord};
use crate::container::{ContainerStore, Status};
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};

pub struct Networking {
    pub(crate) mgr: NetworkManager,
    netns_dir: PathBuf,
    /// The host's networking warnings as last checked (`/info` shows them and
    /// refreshes them in the background: the checks run firewall tools).
    warnings: Arc<std::sync::Mutex<Vec<String>>>,
    /// The daemon's `--dns`, `--dns-search`, `--dns-opt`: every container's defaults.
    dns_defaults: berth_net::files::DnsSettings,
    /// Rootless: containers on the default network get slirp4netns, not a bridge.
    rootless: bool,
    exec_root: PathBuf,
    slirps: crate::slirp::Slirps,
    /// Network namespaces made ahead for starts (none rootless, where slirp4netns's
    /// namespaces are made otherwise, or with `--userns-remap`, whose pool makes each
    /// with its user namespace).
    netns_pool: Option<Arc<berth_net::netns::NetnsPool>>,
}

/// How many network namespaces are kept ready: enough for a burst of two starts.
const NETNS_POOL_SIZE: usize = 2;

/// What start needs from the network: the namespace to join and the files' contents.
pub struct Attachment {
    pub record: NetworkRecord,
    pub netns: Option<PathBuf>,
    pub files: berth_net::ContainerFiles,
    /// Rootless: slirp4netns on its way up; [`Networking::ready`] waits for it before
    /// the container's process starts.
    pub slirp: Option<crate::slirp::Pending>,
    /// Connected to networks whose `-p`/`-P` ports [`Networking::publish`] is still to
    /// publish (beside the shim's create).
    pub publish: bool,
}

pub(crate) fn net_err(e: NetError) -> Error {
    let kind = match e.kind() {
        berth_net::ErrorKind::NotFound => ErrorKind::NotFound,
        berth_net::ErrorKind::InvalidParameter => ErrorKind::InvalidParameter,
        berth_net::ErrorKind::Conflict => ErrorKind::Conflict,
        berth_net::ErrorKind::Forbidden => ErrorKind::Forbidden,
        berth_net::ErrorKind::Unavailable => ErrorKind::Unavailable,
        _ => ErrorKind::System,
    };
    Error::new(kind, e.to_string())
}

/// The network a `NetworkMode` names ("default" is the bridge).
fn primary_network(mode: &str) -> &str {
    if mode.is_empty() || mode == "default" { "bridge" } else { mode }
}

impl Networking {
    pub async fn open(cfg: &EngineConfig) -> Result<Networking> {
        let mut nc = NetConfig::new(cfg.data_root.join("network"));
        nc.default_bridge = cfg.bridge.clone();
        if !cfg.bip.is_empty() {
            nc.bip = Some(cfg.bip.parse().map_err(|e| Error::invalid(format!("invalid bip {:?}: {e}", cfg.bip)))?);
        }
        if !cfg.default_address_pools.is_empty() {
            let mut pools = Vec::new();
            for p in &cfg.default_address_pools {
                let base = p.base.parse().map_err(|e| Error::invalid(format!("invalid address pool {:?}: {e}", p.base)))?;
                pools.push(berth_net::ipam::AddressPool::new(base, p.size).map_err(net_err)?);
            }
            nc.address_pools = pools;
        }
        nc.rootless = cfg.rootless;
        if cfg.rootless && cfg.bip == EngineConfig::default().bip {
            // What the default network really is in rootless mode: slirp4netns's.
            nc.bip = Some(format!("{}/{}", crate::slirp::GATEWAY, crate::slirp::PREFIX_LEN).parse().map_err(|e| Error::system(format!("{e}")))?);
        }
        nc.nft_table = cfg.nft_table.clone();
        nc.mtu = cfg.mtu;
        nc.enable_ip_forward = cfg.ip_forward;
        nc.iptables = cfg.iptables;
        nc.icc = cfg.icc;
        nc.ipv6 = cfg.ipv6;
        nc.ip6tables = cfg.ip6tables;
        if !cfg.fixed_cidr_v6.is_empty() {
            let net: berth_net::Ipv6Net = cfg
                .fixed_cidr_v6
                .parse()
                .map_err(|_| Error::invalid(format!("invalid fixed-cidr-v6 {:?}", cfg.fixed_cidr_v6)))?;
            nc.fixed_cidr_v6 = Some(net);
            nc.ipv6 = true;
        }
        if !cfg.dns.is_empty() {
            let mut ups = Vec::new();
            for d in &cfg.dns {
                let ip: IpAddr = d.parse().map_err(|_| Error::invalid(format!("invalid dns server {d:?}")))?;
                ups.push(std::net::SocketAddr::new(ip, 53));
            }
            nc.dns_upstreams = Some(ups);
        }
        let mgr = NetworkManager::open(nc).await.map_err(net_err)?;
        let netns_dir = cfg.exec_root.join("netns");
        std::fs::create_dir_all(&netns_dir)?;
        let netns_pool = if cfg.rootless || !cfg.userns_remap.is_empty() {
            None
        } else {
            let pool = berth_net::netns::open_netns_pool(&cfg.exec_root.join("netns-pool"), NETNS_POOL_SIZE).map_err(net_err)?;
            pool.refill();
            Some(pool)
        };
        let warnings = mgr.host_warnings().await;
        for w in &warnings {
            tracing::warn!("{w}");
        }
        let dns_defaults = berth_net::files::DnsSettings {
            servers: cfg.dns.iter().filter_map(|d| d.parse().ok()).collect(),
            search: cfg.dns_search.clone(),
            options: cfg.dns_opts.clone(),
        };
        Ok(Networking {
            mgr,
            netns_dir,
            warnings: Arc::new(std::sync::Mutex::new(warnings)),
            dns_defaults,
            rootless: cfg.rootless,
            exec_root: cfg.exec_root.clone(),
            slirps: Default::default(),
            netns_pool,
        })
    }

    /// The networking warnings for `/info`; they are checked again in the background.
    pub(crate) fn host_warnings(engine: &Arc<Engine>) -> Vec<String> {
        let cached = engine.net.warnings.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let e = engine.clone();
        tokio::spawn(async move {
            let fresh = e.net.mgr.host_warnings().await;
            *e.net.warnings.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
        });
        cached
    }

    /// The daemon is stopping: rules no running container needs go (see
    /// [`NetworkManager::shutdown`]).
    pub async fn shutdown(&self) {
        if let Some(pool) = &self.netns_pool {
            pool.clear();
        }
        if let Err(e) = self.mgr.shutdown().await {
            tracing::warn!("removing network rules at shutdown: {e}");
        }
    }

    pub(crate) fn netns_path(&self, id: &str) -> PathBuf {
        self.netns_dir.join(&id[..12.min(id.len())])
    }

    /// Create-time checks of `--network` (and the networks it names).
    pub fn validate_mode(&self, hc: &HostConfig, containers: &ContainerStore) -> Result<()> {
        let mode = hc.network_mode.as_str();
        if let Some(other) = mode.strip_prefix("container:") {
            containers.get(other)?;
            if !hc.port_bindings.as_ref().is_none_or(|p| p.is_empty()) || hc.publish_all_ports {
                return Err(Error::invalid("conflicting options: port publishing and the container type network mode"));
            }
            if hc.dns.as_ref().is_some_and(|d| !d.is_empty()) || hc.extra_hosts.as_ref().is_some_and(|d| !d.is_empty()) {
                return Err(Error::invalid("conflicting options: dns and the network mode"));
            }
        }
        if mode == "host" && (hc.port_bindings.as_ref().is_some_and(|p| p.values().any(|b| b.as_ref().is_some_and(|v| !v.is_empty())))) {
            // Docker ignores published ports with host networking (with a warning).
        }
        for d in hc.dns.clone().unwrap_or_default() {
            d.parse::<IpAddr>().map_err(|_| Error::invalid(format!("{d} is not an ip address")))?;
        }
        if let Some(pb) = &hc.port_bindings {
            berth_net::ports::requests_from_port_map(&to_net_portmap(pb)?).map_err(net_err)?;
        }
        Ok(())
    }

    /// The endpoints a new container asks for (shown in inspect before it starts).
    pub async fn initial_networks(&self, hc: &HostConfig, nc: Option<&NetworkingConfig>) -> Result<BTreeMap<String, EndpointSettings>> {
        let mode = hc.network_mode.as_str();
        let mut out = BTreeMap::new();
        let requested = nc.and_then(|n| n.endpoints_config.clone()).unwrap_or_default();
        if mode.starts_with("container:") {
            return Ok(out);
        }
        let primary = primary_network(mode).to_string();
        let mut names: Vec<String> = vec![primary.clone()];
        for k in requested.keys() {
            let k = primary_network(k).to_string();
            if !names.contains(&k) {
                names.push(k);
            }
        }
        if (mode == "host" || mode == "none") && names.len() > 1 {
            return Err(Error::invalid(format!("container cannot be disconnected from host network or connected to another network (mode {mode})")));
        }
        for name in names {
            let net = self.mgr.inspect_network(&name).await.map_err(|e| {
                if e.kind() == berth_net::ErrorKind::NotFound { Error::not_found(format!("network {name} not found")) } else { net_err(e) }
            })?;
            let mut es = requested.get(&name).cloned().or_else(|| if name == primary { requested.get("default").cloned() } else { None }).unwrap_or_default();
            if let Some(ip) = es.ipam_config.as_ref().map(|c| c.ipv4_address.clone()).filter(|s| !s.is_empty()) {
                ip.parse::<Ipv4Addr>().map_err(|_| Error::invalid(format!("invalid IPv4 address: {ip}")))?;
                if name == "bridge" {
                    return Err(Error::invalid("user specified IP address is supported on user defined networks only"));
                }
            }
            if let Some(ip) = es.ipam_config.as_ref().map(|c| c.ipv6_address.clone()).filter(|s| !s.is_empty()) {
                ip.parse::<std::net::Ipv6Addr>().map_err(|_| Error::invalid(format!("invalid IPv6 address: {ip}")))?;
                if name == "bridge" {
                    return Err(Error::invalid("user specified IP address is supported on user defined networks only"));
                }
            }
            if es.aliases.as_ref().is_some_and(|a| !a.is_empty()) && name == "bridge" {
                return Err(Error::invalid("network-scoped alias is supported only for containers in user defined networks"));
            }
            es.network_id = net.id.clone();
            out.insert(net.name.clone(), es);
        }
        Ok(out)
    }

    /// Sets up the container's network for a start.
    pub async fn attach(&self, engine: &Engine, rec: &ContainerRecord) -> Result<Attachment> {
        let hc = &rec.host_config;
        let mode = hc.network_mode.as_str();
        let mut record = NetworkRecord { networks: rec.network.networks.clone(), ..Default::default() };
        // Legacy links are a default-bridge feature; elsewhere links are DNS aliases.
        let legacy = if record.networks.contains_key("bridge") {
            crate::links::legacy(rec, &engine.containers)?
        } else {
            crate::links::Legacy::default()
        };
        record.link_env = legacy.env.clone();
        let files_req = |mode: NetworkMode| self.files_request(rec, mode, legacy.hosts.clone());
        if mode == "host" {
            let files = self.mgr.container_files(&files_req(NetworkMode::Host)).await.map_err(net_err)?;
            return Ok(Attachment { record, netns: None, files, slirp: None, publish: false });
        }
        if let Some(other) = mode.strip_prefix("container:") {
            let oc = engine.containers.get(other)?;
            let live = oc.live().filter(|_| oc.status().is_alive()).ok_or_else(|| {
                Error::conflict(format!("cannot join network namespace of a non running container: {}", oc.id))
            })?;
            let orec = oc.snapshot();
            let files = berth_net::ContainerFiles {
                resolv_conf: std::fs::read_to_string(&orec.resolv_conf_path).unwrap_or_default(),
                hosts: std::fs::read_to_string(&orec.hosts_path).unwrap_or_default(),
                hostname: format!("{}\n", rec.config.hostname),
            };
            record.sandbox_key = format!("/proc/{}/ns/net", live.init_pid);
            return Ok(Attachment { netns: Some(PathBuf::from(&record.sandbox_key)), record, files, slirp: None, publish: false });
        }
        let netns = self.netns_path(&rec.id);
        let _ = berth_net::netns::delete_netns(&netns);
        let t0 = std::time::Instant::now();
        match rec.ext.userns.as_ref() {
            // A pod in a user namespace: its network namespace belongs to it (a container
            // that joins another's user namespace but not its network: to that one).
            Some(u) => {
                let userns = crate::userns::path(&engine.cfg.exec_root, u.of.as_deref().unwrap_or(&rec.id));
                // One made ahead with a pooled user namespace, else a new one.
                if !engine.userns_pool.as_ref().is_some_and(|p| p.take_netns(&userns, &netns)) {
                    crate::userns::create_netns(&userns, &netns)
                        .await
                        .map_err(|e| Error::system(format!("create network namespace {}: {e}", netns.display())))?
                }
            }
            // One made ahead, else a new one.
            None if self.netns_pool.as_ref().is_some_and(|p| p.take(&netns)) => {}
            None => berth_net::netns::create_netns(&netns).await.map_err(net_err)?,
        }
        record.sandbox_key = netns.to_string_lossy().into_owned();
        if self.rootless {
            return self.attach_rootless(rec, netns, record, files_req).await;
        }
        let t_netns = t0.elapsed();
        let result = self.connect_all(rec, &netns, &mut record, &legacy.ports).await;
        let t_connect = t0.elapsed() - t_netns;
        if let Err(e) = result {
            let _ = self.mgr.unpublish(&rec.id).await;
            let _ = self.mgr.release(&rec.id).await;
            let _ = berth_net::netns::delete_netns(&netns);
            return Err(e);
        }
        let fmode = if mode == "none" { NetworkMode::None } else { NetworkMode::Sandbox };
        let files = match self.mgr.container_files(&files_req(fmode)).await {
            Ok(f) => f,
            Err(e) => {
                self.detach(engine, rec).await;
                return Err(net_err(e));
            }
        };
        tracing::debug!("attach {}: netns {t_netns:?} connect {t_connect:?} files {:?}", rec.short_id(), t0.elapsed() - t_netns - t_connect);
        Ok(Attachment { record, netns: Some(netns), files, slirp: None, publish: mode != "none" })
    }

    /// Rootless: the new namespace is connected by slirp4netns (see `crate::slirp`), and
    /// `-p` is published through it. Only the default network exists there.
    async fn attach_rootless(
        &self,
        rec: &ContainerRecord,
        netns: PathBuf,
        mut record: NetworkRecord,
        files_req: impl Fn(NetworkMode) -> FilesRequest,
    ) -> Result<Attachment> {
        let hc = &rec.host_config;
        let none = hc.network_mode == "none";
        let mut slirp = None;
        let result: Result<()> = (|| {
            if none {
                return Ok(());
            }
            if let Some(other) = record.networks.keys().find(|n| *n != "bridge") {
                return Err(Error::forbidden(format!("network {other}: user-defined networks are not supported in rootless mode")));
            }
            let reqs = port_requests(rec)?;
            let pending = self.slirps.spawn(&self.exec_root, &rec.id, &netns, 65520, &reqs)?;
            let published = pending.ports().to_vec();
            slirp = Some(pending);
            let es = record.networks.entry("bridge".into()).or_default();
            es.ip_address = crate::slirp::CONTAINER_IP.into();
            es.gateway = crate::slirp::GATEWAY.into();
            es.ip_prefix_len = crate::slirp::PREFIX_LEN;
            es.endpoint_id = format!("slirp4netns-{}", rec.short_id());
            let mut ports: berth_types::container::PortMap = BTreeMap::new();
            for k in rec.config.exposed_ports.iter().flat_map(|e| e.keys()).chain(hc.port_bindings.iter().flat_map(|p| p.keys())) {
                ports.entry(k.clone()).or_insert(None);
            }
            for p in &published {
                let proto = match p.proto {
                    berth_net::ports::Proto::Tcp => "tcp",
                    berth_net::ports::Proto::Udp => "udp",
                };
                let b = berth_types::container::PortBinding { host_ip: p.host_ip.to_string(), host_port: p.host_port.to_string() };
                ports.entry(format!("{}/{proto}", p.container_port)).or_insert(None).get_or_insert_with(Vec::new).push(b);
            }
            record.ports = ports;
            Ok(())
        })();
        if let Err(e) = result {
            self.slirps.stop(&self.exec_root, &rec.id);
            let _ = berth_net::netns::delete_netns(&netns);
            return Err(e);
        }
        let fmode = if none { NetworkMode::None } else { NetworkMode::Sandbox };
        let mut files = match self.mgr.container_files(&files_req(fmode)).await {
            Ok(f) => f,
            Err(e) => {
                self.slirps.stop(&self.exec_root, &rec.id);
                let _ = berth_net::netns::delete_netns(&netns);
                return Err(net_err(e));
            }
        };
        if !none {
            let own = hc.dns.as_ref().is_some_and(|d| !d.is_empty()) || !self.dns_defaults.servers.is_empty();
            files.resolv_conf = crate::slirp::resolv_conf(&files.resolv_conf, own);
            if !files.hosts.contains(crate::slirp::CONTAINER_IP) {
                files.hosts.push_str(&format!("{}\t{}\n", crate::slirp::CONTAINER_IP, rec.config.hostname));
            }
        }
        Ok(Attachment { record, netns: Some(netns), files, slirp, publish: false })
    }

    /// Waits for what [`Networking::attach`] left coming up (rootless: slirp4netns
    /// configured and the ports published); the container's process starts after.
    pub async fn ready(&self, att: &mut Attachment) -> Result<()> {
        match att.slirp.take() {
            Some(p) => self.slirps.finish(&self.exec_root, p).await,
            None => Ok(()),
        }
    }

    async fn connect_all(
        &self,
        rec: &ContainerRecord,
        netns: &std::path::Path,
        record: &mut NetworkRecord,
        linked_ports: &[berth_net::model::LinkedPorts],
    ) -> Result<()> {
        let hc = &rec.host_config;
        if hc.network_mode == "none" {
            return Ok(());
        }
        let names: Vec<String> = record.networks.keys().cloned().collect();
        for name in names {
            let es = record.networks.get(&name).cloned().unwrap_or_default();
            let ports = if name == "bridge" { linked_ports } else { &[] };
            let ep = self.connect_one(rec, netns, &name, &es, ports).await?;
            record.networks.insert(name, ep);
        }
        Ok(())
    }

    /// Publishes the `-p`/`-P` ports of an attachment made by [`Networking::attach`] and
    /// records its port map. Started beside the shim's create, whose time it hides (the
    /// nft change is a process of its own); the container's process starts after both,
    /// so its ports are there when it runs, as with dockerd. A failure leaves what
    /// [`Networking::detach`] undoes.
    pub async fn publish(&self, rec: &ContainerRecord, att: &mut Attachment) -> Result<()> {
        if !att.publish {
            return Ok(());
        }
        let hc = &rec.host_config;
        let record = &mut att.record;
        let mut reqs = match &hc.port_bindings {
            Some(pb) => berth_net::ports::requests_from_port_map(&to_net_portmap(pb)?).map_err(net_err)?,
            None => Vec::new(),
        };
        let exposed: Vec<String> = rec.config.exposed_ports.as_ref().map(|e| e.keys().cloned().collect()).unwrap_or_default();
        if hc.publish_all_ports {
            let mut all = berth_net::ports::requests_for_exposed(exposed.iter().map(String::as_str)).map_err(net_err)?;
            all.retain(|r| !reqs.iter().any(|x| x.container_port == r.container_port && x.proto == r.proto));
            reqs.extend(all);
        }
        if !reqs.is_empty() {
            self.mgr.publish(&rec.id, &reqs).await.map_err(net_err)?;
        }
        let mut keys = exposed.clone();
        if let Some(pb) = &hc.port_bindings {
            for k in pb.keys() {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
        let pm = self.mgr.port_map(&rec.id, &keys).await.map_err(net_err)?;
        record.ports = serde_json::from_value(serde_json::to_value(&pm).map_err(|e| Error::system(e.to_string()))?).unwrap_or_default();
        Ok(())
    }

    async fn connect_one(
        &self,
        rec: &ContainerRecord,
        netns: &std::path::Path,
        name: &str,
        es: &EndpointSettings,
        linked_ports: &[berth_net::model::LinkedPorts],
    ) -> Result<EndpointSettings> {
        // Link aliases on a user network: the endpoint's own `Links`, or (API clients
        // that only set HostConfig.Links) the container's links on its primary network.
        let mut links: Vec<String> = es.links.clone().unwrap_or_default();
        if links.is_empty() && name != "bridge" && primary_network(&rec.host_config.network_mode) == name {
            links = rec.host_config.links.clone().unwrap_or_default();
        }
        let links = if name == "bridge" {
            Vec::new()
        } else {
            links.iter().map(|l| crate::links::parse(l).map(|l| (l.alias, l.target))).collect::<Result<Vec<_>>>()?
        };
        let ipv4 = match es.ipam_config.as_ref().map(|c| c.ipv4_address.as_str()).filter(|s| !s.is_empty()) {
            Some(ip) => Some(ip.parse::<Ipv4Addr>().map_err(|_| Error::invalid(format!("invalid IPv4 address: {ip}")))?),
            None => None,
        };
        let ipv6 = match es.ipam_config.as_ref().map(|c| c.ipv6_address.as_str()).filter(|s| !s.is_empty()) {
            Some(ip) => Some(ip.parse::<std::net::Ipv6Addr>().map_err(|_| Error::invalid(format!("invalid IPv6 address: {ip}")))?),
            None => None,
        };
        let mut link_local_ips = Vec::new();
        for ip in es.ipam_config.as_ref().and_then(|c| c.link_local_ips.clone()).unwrap_or_default() {
            link_local_ips.push(ip.parse::<IpAddr>().map_err(|_| Error::invalid(format!("invalid link-local IP address: {ip}")))?);
        }
        let mac = if !es.mac_address.is_empty() {
            Some(es.mac_address.clone())
        } else if !rec.config.mac_address.is_empty() {
            Some(rec.config.mac_address.clone())
        } else {
            None
        };
        let req = EndpointRequest {
            container_id: rec.id.clone(),
            container_name: rec.bare_name().to_string(),
            netns: netns.to_path_buf(),
            ipv4,
            aliases: es.aliases.clone().unwrap_or_default(),
            mac,
            dns_servers: self.dns_settings(&rec.host_config).servers,
            links,
            linked_ports: linked_ports.to_vec(),
            ipv6,
            link_local_ips,
        };
        let ep = self.mgr.connect(name, req).await.map_err(net_err)?;
        let mut out: EndpointSettings = ep.settings();
        out.ipam_config = es.ipam_config.clone();
        out.aliases = es.aliases.clone();
        Ok(out)
    }

    /// After a connect or disconnect of a running container: its resolv.conf switches
    /// to the embedded DNS on its first user network and back after its last (as
    /// Docker's does), and /etc/hosts lists its addresses on every network.
    async fn refresh_files(&self, engine: &Engine, rec: &ContainerRecord) {
        let links = crate::links::legacy(rec, &engine.containers).map(|l| l.hosts).unwrap_or_default();
        let files = match self.mgr.container_files(&self.files_request(rec, NetworkMode::Sandbox, links)).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("updating the resolver files of {}: {e}", rec.short_id());
                return;
            }
        };
        let mut written = Vec::new();
        for (path, text) in [(&rec.resolv_conf_path, &files.resolv_conf), (&rec.hosts_path, &files.hosts)] {
            match update_generated(path, text, rec.generated_digests.get(path).map(String::as_str)) {
                Ok(Some(d)) => written.push((path.clone(), d)),
                Ok(None) => tracing::info!("{path} was edited in the container: left as it is"),
                Err(e) => tracing::warn!("updating {path}: {e}"),
            }
        }
        let changed = written.iter().any(|(p, d)| rec.generated_digests.get(p) != Some(d));
        if changed && let Ok(c) = engine.container(&rec.id) {
            let r = c.update_state(false, |r| r.generated_digests.extend(written));
            if let Err(e) = r {
                tracing::warn!("recording the resolver files of {}: {e}", rec.short_id());
            }
        }
    }

    /// A container started: the running containers that link to it (legacy links) get
    /// its address, perhaps a new one, in their /etc/hosts, as Docker updates them.
    pub async fn started(&self, engine: &Engine, rec: &ContainerRecord) {
        if !rec.network.networks.contains_key("bridge") {
            return;
        }
        for c in engine.containers.list() {
            let parent = c.snapshot();
            if parent.id == rec.id || !parent.state.status.is_alive() {
                continue;
            }
            let links_to_it = parent
                .host_config
                .links
                .iter()
                .flatten()
                .any(|l| crate::links::parse(l).is_ok_and(|l| l.target == rec.bare_name()));
            if links_to_it {
                self.refresh_files(engine, &parent).await;
            }
        }
    }

    /// A start is done: the namespace it took from the pool is made again, now that the
    /// kernel's work for it is out of the start's way.
    pub fn refill(&self) {
        if let Some(pool) = &self.netns_pool {
            pool.refill();
        }
    }

    /// Undoes attach (the container stopped).
    pub async fn detach(&self, _engine: &Engine, rec: &ContainerRecord) {
        if self.rootless {
            self.slirps.stop(&self.exec_root, &rec.id);
            let _ = berth_net::netns::delete_netns(&self.netns_path(&rec.id));
            return;
        }
        let t0 = std::time::Instant::now();
        let _ = self.mgr.unpublish(&rec.id).await;
        let t1 = t0.elapsed();
        let _ = self.mgr.release(&rec.id).await;
        let t2 = t0.elapsed();
        let netns = self.netns_path(&rec.id);
        let _ = berth_net::netns::delete_netns(&netns);
        tracing::debug!("detach {}: unpublish {t1:?} release {t2:?} netns {:?}", rec.short_id(), t0.elapsed());
    }

    /// The container is being removed.
    pub async fn forget(&self, engine: &Engine, rec: &ContainerRecord) {
        self.detach(engine, rec).await;
    }

    /// After `rename`: DNS answers to the new name only.
    pub async fn renamed(&self, _engine: &Engine, rec: &ContainerRecord, _old: &str) {
        if let Err(e) = self.mgr.rename_container(&rec.id, rec.bare_name()).await {
            tracing::warn!("renaming {} in the networks' DNS: {e}", rec.id);
        }
    }

    pub async fn reattached(&self, _engine: &Engine, _rec: &ContainerRecord) {}

    /// After restore: drop endpoints, rules and DNS entries of containers that are gone.
    pub async fn reconcile(&self, live: &HashSet<String>) {
        if let Err(e) = self.mgr.reconcile(live).await {
            tracing::warn!("network reconcile: {e}");
        }
    }

    /// Connects a running (or created) container to one more network.
    pub async fn connect(&self, engine: &Arc<Engine>, key: &str, network: &str, es: EndpointSettings) -> Result<()> {
        if self.rootless {
            // slirp4netns gives a container one network, chosen when it starts.
            return Err(Error::forbidden(format!("cannot connect to network {network}: network connect is not supported in rootless mode")));
        }
        let c = engine.container(key)?;
        let rec = c.snapshot();
        let mode = rec.host_config.network_mode.as_str();
        if mode == "host" || mode == "none" || mode.starts_with("container:") {
            return Err(Error::forbidden(format!("container cannot be connected to network {network}: conflicts with network mode {mode}")));
        }
        let net = self.mgr.inspect_network(network).await.map_err(net_err)?;
        if rec.network.networks.contains_key(&net.name) {
            return Err(Error::forbidden(format!("endpoint with name {} already exists in network {}", rec.bare_name(), net.name)));
        }
        let mut es = es;
        es.network_id = net.id.clone();
        if rec.state.status.is_alive() {
            let netns = PathBuf::from(&rec.network.sandbox_key);
            let ep = self.connect_one(&rec, &netns, &net.name, &es, &[]).await?;
            c.update(false, |r| {
                r.network.networks.insert(net.name.clone(), ep);
            })?;
            self.refresh_files(engine, &rec).await;
        } else {
            c.update(false, |r| {
                r.network.networks.insert(net.name.clone(), es);
            })?;
        }
        engine.events.emit("network", "connect", &net.id, [("container".to_string(), rec.id.clone()), ("name".to_string(), net.name.clone()), ("type".to_string(), "bridge".to_string())].into_iter().collect());
        Ok(())
    }

    pub async fn disconnect(&self, engine: &Arc<Engine>, key: &str, network: &str, _force: bool) -> Result<()> {
        if self.rootless {
            return Err(Error::forbidden(format!("cannot disconnect from network {network}: network disconnect is not supported in rootless mode")));
        }
        let net = self.mgr.inspect_network(network).await.map_err(net_err)?;
        let c = engine.container(key)?;
        let rec = c.snapshot();
        if !rec.network.networks.contains_key(&net.name) {
            return Err(Error::forbidden(format!("container {} is not connected to network {}", rec.id, net.name)));
        }
        if net.name == "host" || net.name == "none" {
            return Err(Error::forbidden(format!("container cannot be disconnected from network {}", net.name)));
        }
        let live = rec.state.status == Status::Running || rec.state.status == Status::Paused;
        if live {
            self.mgr.disconnect(&net.name, &rec.id).await.map_err(net_err)?;
        }
        c.update(false, |r| {
            r.network.networks.remove(&net.name);
        })?;
        if live {
            self.refresh_files(engine, &rec).await;
        }
        engine.events.emit("network", "disconnect", &net.id, [("container".to_string(), rec.id.clone()), ("name".to_string(), net.name.clone()), ("type".to_string(), "bridge".to_string())].into_iter().collect());
        Ok(())
    }
}

impl Networking {
    /// The container's `--dns*` settings, each defaulting to the daemon's (as Docker).
    fn dns_settings(&self, hc: &HostConfig) -> berth_net::files::DnsSettings {
        let or = |own: &Option<Vec<String>>, default: &Vec<String>| match own {
            Some(v) if !v.is_empty() => v.clone(),
            _ => default.clone(),
        };
        let servers: Vec<IpAddr> = hc.dns.clone().unwrap_or_default().iter().filter_map(|d| d.parse().ok()).collect();
        berth_net::files::DnsSettings {
            servers: if servers.is_empty() { self.dns_defaults.servers.clone() } else { servers },
            search: or(&hc.dns_search, &self.dns_defaults.search),
            options: or(&hc.dns_options, &self.dns_defaults.options),
        }
    }

    /// What berth-net needs to render the container's resolv.conf, hosts and hostname.
    fn files_request(&self, rec: &ContainerRecord, mode: NetworkMode, links: Vec<berth_net::files::ExtraHost>) -> FilesRequest {
        let hc = &rec.host_config;
        FilesRequest {
            container_id: rec.id.clone(),
            mode,
            hostname: rec.config.hostname.clone(),
            domainname: rec.config.domainname.clone(),
            dns: self.dns_settings(hc),
            extra_hosts: hc.extra_hosts.clone().unwrap_or_default(),
            links,
        }
    }
}

fn to_net_portmap(pm: &PortMap) -> Result<berth_net::PortMap> {
    serde_json::from_value(serde_json::to_value(pm).map_err(|e| Error::system(e.to_string()))?).map_err(|e| Error::invalid(format!("invalid port bindings: {e}")))
}

/// Writes hostname, hosts and resolv.conf into the container's directory, and the
/// digest of each into the record (`generated_digests`, saved with the start), so that
/// later updates can tell whether the user edited them.
pub fn write_files(rec: &mut ContainerRecord, att: &Attachment) -> Result<()> {
    for (path, text) in [
        (&rec.hostname_path, &att.files.hostname),
        (&rec.hosts_path, &att.files.hosts),
        (&rec.resolv_conf_path, &att.files.resolv_conf),
    ] {
        crate::util::write_replace(std::path::Path::new(path), text.as_bytes())?;
        rec.generated_digests.insert(path.clone(), digest(text.as_bytes()));
    }
    Ok(())
}

/// Where an earlier berth kept a generated file's digest: a file beside it. Still read
/// for a container that such a version started.
fn legacy_digest_path(path: &str) -> PathBuf {
    PathBuf::from(format!("{path}.hash"))
}

/// FNV-1a of the content: only to notice an edit, not to resist one.
fn digest(data: &[u8]) -> String {
    let h = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3));
    format!("{h:016x}")
}

/// Rewrites a generated file of a running container in place (it is bind-mounted: a
/// rename would not be seen inside), unless the user edited it since berth wrote it
/// (`recorded`: the digest of what berth wrote) — as Docker, berth then leaves it
/// alone. Returns the digest of the file's new content, `None` if it was left.
fn update_generated(path: &str, text: &str, recorded: Option<&str>) -> Result<Option<String>> {
    use std::io::Write;
    let current = std::fs::read(path)?;
    let recorded = recorded.map(str::to_string).or_else(|| std::fs::read_to_string(legacy_digest_path(path)).ok());
    if recorded.is_some_and(|r| r.trim() != digest(&current)) {
        return Ok(None);
    }
    if current != text.as_bytes() {
        let mut f = std::fs::OpenOptions::new().write(true).truncate(true).open(path)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    Ok(Some(digest(text.as_bytes())))
}

impl Engine {
    pub async fn net_connect(self: &Arc<Self>, container: &str, network: &str, es: EndpointSettings) -> Result<()> {
        self.net.connect(self, container, network, es).await
    }

    pub async fn net_disconnect(self: &Arc<Self>, container: &str, network: &str, force: bool) -> Result<()> {
        self.net.disconnect(self, container, network, force).await
    }
}

/// The ports `-p` and `-P` ask to publish.
fn port_requests(rec: &ContainerRecord) -> Result<Vec<berth_net::ports::PortBindingRequest>> {
    let hc = &rec.host_config;
    let mut reqs = match &hc.port_bindings {
        Some(pb) => berth_net::ports::requests_from_port_map(&to_net_portmap(pb)?).map_err(net_err)?,
        None => Vec::new(),
    };
    if hc.publish_all_ports {
        let exposed: Vec<String> = rec.config.exposed_ports.as_ref().map(|e| e.keys().cloned().collect()).unwrap_or_default();
        let mut all = berth_net::ports::requests_for_exposed(exposed.iter().map(String::as_str)).map_err(net_err)?;
        all.retain(|r| !reqs.iter().any(|x| x.container_port == r.container_port && x.proto == r.proto));
        reqs.extend(all);
    }
    Ok(reqs)
}
