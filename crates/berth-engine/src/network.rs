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
}

/// What start needs from the network: the namespace to join and the files' contents.
pub struct Attachment {
    pub record: NetworkRecord,
    pub netns: Option<PathBuf>,
    pub files: berth_net::ContainerFiles,
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
        nc.nft_table = cfg.nft_table.clone();
        nc.mtu = cfg.mtu;
        nc.enable_ip_forward = cfg.ip_forward;
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
        Ok(Networking { mgr, netns_dir })
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
        let files_req = |mode: NetworkMode| FilesRequest {
            container_id: rec.id.clone(),
            mode,
            hostname: rec.config.hostname.clone(),
            domainname: rec.config.domainname.clone(),
            dns: berth_net::files::DnsSettings {
                servers: hc.dns.clone().unwrap_or_default().iter().filter_map(|d| d.parse().ok()).collect(),
                search: hc.dns_search.clone().unwrap_or_default(),
                options: hc.dns_options.clone().unwrap_or_default(),
            },
            extra_hosts: hc.extra_hosts.clone().unwrap_or_default(),
        };
        if mode == "host" {
            let files = self.mgr.container_files(&files_req(NetworkMode::Host)).await.map_err(net_err)?;
            return Ok(Attachment { record, netns: None, files });
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
            return Ok(Attachment { netns: Some(PathBuf::from(&record.sandbox_key)), record, files });
        }
        let netns = self.netns_path(&rec.id);
        let _ = berth_net::netns::delete_netns(&netns);
        match rec.ext.userns.as_ref().filter(|u| u.of.is_none()) {
            // A pod in a user namespace: its network namespace belongs to it.
            Some(_) => crate::userns::create_netns(&crate::userns::path(&engine.cfg.exec_root, &rec.id), &netns)
                .await
                .map_err(|e| Error::system(format!("create network namespace {}: {e}", netns.display())))?,
            None => berth_net::netns::create_netns(&netns).await.map_err(net_err)?,
        }
        record.sandbox_key = netns.to_string_lossy().into_owned();
        let result = self.connect_all(rec, &netns, &mut record).await;
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
        Ok(Attachment { record, netns: Some(netns), files })
    }

    async fn connect_all(&self, rec: &ContainerRecord, netns: &std::path::Path, record: &mut NetworkRecord) -> Result<()> {
        let hc = &rec.host_config;
        if hc.network_mode == "none" {
            return Ok(());
        }
        let names: Vec<String> = record.networks.keys().cloned().collect();
        for name in names {
            let es = record.networks.get(&name).cloned().unwrap_or_default();
            let ep = self.connect_one(rec, netns, &name, &es).await?;
            record.networks.insert(name, ep);
        }
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

    async fn connect_one(&self, rec: &ContainerRecord, netns: &std::path::Path, name: &str, es: &EndpointSettings) -> Result<EndpointSettings> {
        let ipv4 = match es.ipam_config.as_ref().map(|c| c.ipv4_address.as_str()).filter(|s| !s.is_empty()) {
            Some(ip) => Some(ip.parse::<Ipv4Addr>().map_err(|_| Error::invalid(format!("invalid IPv4 address: {ip}")))?),
            None => None,
        };
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
            dns_servers: rec.host_config.dns.clone().unwrap_or_default().iter().filter_map(|d| d.parse().ok()).collect(),
        };
        let ep = self.mgr.connect(name, req).await.map_err(net_err)?;
        let mut out: EndpointSettings = serde_json::from_value(serde_json::to_value(ep.settings()).map_err(|e| Error::system(e.to_string()))?).unwrap_or_default();
        out.ipam_config = es.ipam_config.clone();
        out.aliases = es.aliases.clone();
        Ok(out)
    }

    /// Undoes attach (the container stopped).
    pub async fn detach(&self, _engine: &Engine, rec: &ContainerRecord) {
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

    pub async fn renamed(&self, _engine: &Engine, _rec: &ContainerRecord, _old: &str) {}

    pub async fn reattached(&self, _engine: &Engine, _rec: &ContainerRecord) {}

    /// After restore: drop endpoints, rules and DNS entries of containers that are gone.
    pub async fn reconcile(&self, live: &HashSet<String>) {
        if let Err(e) = self.mgr.reconcile(live).await {
            tracing::warn!("network reconcile: {e}");
        }
    }

    /// Connects a running (or created) container to one more network.
    pub async fn connect(&self, engine: &Arc<Engine>, key: &str, network: &str, es: EndpointSettings) -> Result<()> {
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
            let ep = self.connect_one(&rec, &netns, &net.name, &es).await?;
            c.update(false, |r| {
                r.network.networks.insert(net.name.clone(), ep);
            })?;
        } else {
            c.update(false, |r| {
                r.network.networks.insert(net.name.clone(), es);
            })?;
        }
        engine.events.emit("network", "connect", &net.id, [("container".to_string(), rec.id.clone()), ("name".to_string(), net.name.clone()), ("type".to_string(), "bridge".to_string())].into_iter().collect());
        Ok(())
    }

    pub async fn disconnect(&self, engine: &Arc<Engine>, key: &str, network: &str, _force: bool) -> Result<()> {
        let net = self.mgr.inspect_network(network).await.map_err(net_err)?;
        let c = engine.container(key)?;
        let rec = c.snapshot();
        if !rec.network.networks.contains_key(&net.name) {
            return Err(Error::forbidden(format!("container {} is not connected to network {}", rec.id, net.name)));
        }
        if net.name == "host" || net.name == "none" {
            return Err(Error::forbidden(format!("container cannot be disconnected from network {}", net.name)));
        }
        if rec.state.status == Status::Running || rec.state.status == Status::Paused {
            self.mgr.disconnect(&net.name, &rec.id).await.map_err(net_err)?;
        }
        c.update(false, |r| {
            r.network.networks.remove(&net.name);
        })?;
        engine.events.emit("network", "disconnect", &net.id, [("container".to_string(), rec.id.clone()), ("name".to_string(), net.name.clone()), ("type".to_string(), "bridge".to_string())].into_iter().collect());
        Ok(())
    }
}

fn to_net_portmap(pm: &PortMap) -> Result<berth_net::PortMap> {
    serde_json::from_value(serde_json::to_value(pm).map_err(|e| Error::system(e.to_string()))?).map_err(|e| Error::invalid(format!("invalid port bindings: {e}")))
}

/// Writes hostname, hosts and resolv.conf into the container's directory.
pub fn write_files(rec: &ContainerRecord, att: &Attachment) -> Result<()> {
    crate::util::write_replace(std::path::Path::new(&rec.hostname_path), att.files.hostname.as_bytes())?;
    crate::util::write_replace(std::path::Path::new(&rec.hosts_path), att.files.hosts.as_bytes())?;
    crate::util::write_replace(std::path::Path::new(&rec.resolv_conf_path), att.files.resolv_conf.as_bytes())?;
    Ok(())
}

impl Engine {
    pub async fn net_connect(self: &Arc<Self>, container: &str, network: &str, es: EndpointSettings) -> Result<()> {
        self.net.connect(self, container, network, es).await
    }

    pub async fn net_disconnect(self: &Arc<Self>, container: &str, network: &str, force: bool) -> Result<()> {
        self.net.disconnect(self, container, network, force).await
    }
}
