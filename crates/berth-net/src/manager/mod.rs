//! [`NetworkManager`]: Docker's network model over one daemon's state. It owns the
//! persisted records (networks, endpoints, sandboxes), keeps the kernel in line with
//! them (bridges, veths, the nft table, reserved ports, DNS servers) and answers the
//! engine's questions (inspect, NetworkSettings, the container's resolver files).
//!
//! Commit points, so a crash at any moment leaves nothing that a re-open cannot
//! repair: kernel objects are created *before* their record is written and deleted
//! *after* it is removed; every interface carries an ownership tag (its alias,
//! `berth:<table>:net:<id>` or `berth:<table>:ep:<id>`), and open() deletes tagged
//! interfaces that no record claims; the nft table is always re-rendered from records.

mod endpoints;
mod networks;
mod publish;
mod resolver_files;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::config::NetConfig;
use crate::dataplane::{BridgeSpec, Dataplane, LinuxDataplane};
use crate::dns::{DnsServer, DnsShared, DnsTable, upstreams_from};
use crate::error::{NetError, Result};
use crate::files::{DEFAULT_NAMESERVERS, HostResolvConf};
use crate::firewall::{self, BridgeRules, Dnat, FirewallModel};
use crate::ids;
use crate::ipam::{self, SubnetPlan};
use crate::model::{BridgeSettings, Driver, Endpoint, EndpointRecord, NetworkRecord, SandboxRecord};
use crate::persist::JsonDir;

pub use endpoints::ReconcileReport;
pub use networks::NetworkFilters;
pub use resolver_files::{ContainerFiles, FilesRequest, NetworkMode};

/// Docker's option keys for bridge networks.
pub mod options {
    pub const BRIDGE_NAME: &str = "com.docker.network.bridge.name";
    pub const MTU: &str = "com.docker.network.driver.mtu";
    pub const MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
    pub const ICC: &str = "com.docker.network.bridge.enable_icc";
    pub const HOST_BINDING: &str = "com.docker.network.bridge.host_binding_ipv4";
    pub const DEFAULT_BRIDGE: &str = "com.docker.network.bridge.default_bridge";
}

struct Stores {
    networks: JsonDir,
    endpoints: JsonDir,
    sandboxes: JsonDir,
}

struct State<G> {
    networks: BTreeMap<String, NetworkRecord>,
    endpoints: BTreeMap<String, EndpointRecord>,
    sandboxes: BTreeMap<String, SandboxRecord>,
    /// Sockets holding each sandbox's published host ports (same order as its ports).
    port_guards: HashMap<String, Vec<G>>,
    dns_servers: HashMap<String, DnsServer>,
    /// Where the next search for a free ephemeral port starts.
    port_cursor: u16,
    stores: Stores,
}

/// Docker's network model for one daemon. Cheap to share behind an `Arc`; every
/// method takes `&self`.
pub struct NetworkManager<D: Dataplane = LinuxDataplane> {
    config: NetConfig,
    dp: D,
    state: Mutex<State<D::PortGuard>>,
    dns: Arc<DnsShared>,
    tag_prefix: String,
    ephemeral: (u16, u16),
    /// The nft script last applied: most endpoint changes leave the rules as they are,
    /// and running nft costs a process and a netlink transaction.
    applied_nft: std::sync::Mutex<Option<String>>,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl NetworkManager<LinuxDataplane> {
    /// Opens (or creates) the daemon's network state on the real kernel: restores
    /// the predefined networks, recreates missing bridges, removes interfaces left by
    /// endpoints and networks that no longer exist, re-reserves published ports,
    /// installs the nft table and restarts the DNS servers of live sandboxes.
    pub async fn open(config: NetConfig) -> Result<Self> {
        let dp = LinuxDataplane::new()?;
        Self::open_with(config, dp).await
    }
}

fn lock_data_dir(config: &NetConfig) -> Result<nix::fcntl::Flock<std::fs::File>> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| NetError::system(format!("create {}", config.data_dir.display()), e))?;
    let path = config.data_dir.join("lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| NetError::system(format!("open {}", path.display()), e))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        NetError::conflict(format!(
            "network state {} is in use by another process ({e})",
            config.data_dir.display()
        ))
    })
}

fn read_ephemeral_range() -> (u16, u16) {
    let parsed = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok().and_then(|s| {
        let mut it = s.split_whitespace().filter_map(|w| w.parse::<u16>().ok());
        Some((it.next()?, it.next()?))
    });
    match parsed {
        Some((lo, hi)) if lo > 0 && lo <= hi => (lo, hi),
        _ => (32768, 60999),
    }
}

pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

impl<D: Dataplane> NetworkManager<D> {
    /// Opens the state with any dataplane (the recording one in unit tests).
    pub async fn open_with(config: NetConfig, dp: D) -> Result<Self> {
        config.validate()?;
        let lock = lock_data_dir(&config)?;
        let stores = Stores {
            networks: JsonDir::open(config.data_dir.join("networks"))?,
            endpoints: JsonDir::open(config.data_dir.join("endpoints"))?,
            sandboxes: JsonDir::open(config.data_dir.join("sandboxes"))?,
        };
        let networks: BTreeMap<String, NetworkRecord> = stores.networks.load_all()?.into_iter().collect();
        let endpoints: BTreeMap<String, EndpointRecord> = stores.endpoints.load_all()?.into_iter().collect();
        let sandboxes: BTreeMap<String, SandboxRecord> = stores.sandboxes.load_all()?.into_iter().collect();

        let upstreams = match &config.dns_upstreams {
            Some(u) => u.clone(),
            None => {
                let host = HostResolvConf::read(&config.host_resolv_conf)?;
                let mut servers = host.usable_nameservers();
                if servers.is_empty() {
                    servers = DEFAULT_NAMESERVERS.iter().map(|ip| (*ip).into()).collect();
                }
                upstreams_from(&servers)
            }
        };
        let ephemeral = config.ephemeral_ports.unwrap_or_else(read_ephemeral_range);
        let start = ephemeral.0 + (rand::random::<u16>() % (ephemeral.1 - ephemeral.0).max(1));
        let tag_prefix = format!("berth:{}:", config.nft_table);
        let mgr = NetworkManager {
            dns: DnsShared::new(upstreams),
            tag_prefix,
            ephemeral,
            applied_nft: std::sync::Mutex::new(None),
            state: Mutex::new(State {
                networks,
                endpoints,
                sandboxes,
                port_guards: HashMap::new(),
                dns_servers: HashMap::new(),
                port_cursor: start,
                stores,
            }),
            dp,
            config,
            _lock: lock,
        };
        mgr.restore().await?;
        Ok(mgr)
    }

    pub fn config(&self) -> &NetConfig {
        &self.config
    }

    /// The dataplane (tests inspect the recording one).
    pub fn dataplane(&self) -> &D {
        &self.dp
    }

    fn net_tag(&self, id: &str) -> String {
        format!("{}net:{id}", self.tag_prefix)
    }

    fn ep_tag(&self, id: &str) -> String {
        format!("{}ep:{id}", self.tag_prefix)
    }

    fn bridge_spec(&self, net: &NetworkRecord) -> Option<BridgeSpec> {
        let b = net.bridge.as_ref()?;
        Some(BridgeSpec {
            name: b.ifname.clone(),
            alias: self.net_tag(&net.id),
            gateway: b.plan.gateway,
            prefix_len: b.plan.subnet.prefix_len(),
            mtu: b.mtu,
        })
    }

    async fn restore(&self) -> Result<()> {
        if self.config.enable_ip_forward {
            self.dp.enable_ip_forward()?;
        }
        let mut st = self.state.lock().await;
        self.ensure_predefined(&mut st).await?;

        for net in st.networks.values() {
            let Some(spec) = self.bridge_spec(net) else { continue };
            match self.dp.ensure_bridge(&spec).await {
                Ok(()) => {}
                // Without the default bridge the daemon cannot run containers at all.
                Err(e) if net.is_predefined() => return Err(e),
                // One broken user network must not keep the daemon down; its
                // containers will fail to connect with the same error.
                Err(e) => tracing::error!("restoring network {} ({}): {e}", net.name, spec.name),
            }
        }

        // Interfaces we tagged but no record claims are leftovers of a crash.
        let tagged = self.dp.tagged_links(&self.tag_prefix).await?;
        let mut live_veths = HashSet::new();
        for link in &tagged {
            let Some(rest) = link.alias.strip_prefix(&self.tag_prefix) else { continue };
            let claimed = match rest.split_once(':') {
                Some(("net", id)) => st.networks.contains_key(id),
                Some(("ep", id)) => st.endpoints.get(id).is_some_and(|e| e.host_veth == link.name),
                _ => false,
            };
            if claimed {
                live_veths.insert(link.name.clone());
            } else {
                tracing::info!("removing leaked interface {} ({})", link.name, link.alias);
                self.dp.delete_link(&link.name).await?;
            }
        }
        // Endpoints whose veth is gone died with their namespace.
        let dead: Vec<String> =
            st.endpoints.values().filter(|e| !live_veths.contains(&e.host_veth)).map(|e| e.id.clone()).collect();
        for id in dead {
            tracing::info!("dropping endpoint {id}: its interface is gone");
            st.stores.endpoints.remove(&id)?;
            st.endpoints.remove(&id);
        }
        let empty: Vec<String> = st
            .sandboxes
            .keys()
            .filter(|cid| !st.endpoints.values().any(|e| &e.container_id == *cid))
            .cloned()
            .collect();
        for cid in empty {
            st.stores.sandboxes.remove(&cid)?;
            st.sandboxes.remove(&cid);
        }

        // Hold the published ports again; a port someone grabbed meanwhile still
        // forwards (the rule wins), but cannot be reserved: say so.
        let sandboxes: Vec<SandboxRecord> = st.sandboxes.values().cloned().collect();
        for sb in &sandboxes {
            let mut guards = Vec::new();
            for m in &sb.ports {
                match self.dp.reserve_port(m.host_ip, m.host_port, m.proto) {
                    Ok(g) => guards.push(g),
                    Err(e) => tracing::warn!(
                        "cannot re-reserve {}:{}/{} for {}: {e}",
                        m.host_ip,
                        m.host_port,
                        m.proto,
                        sb.container_id
                    ),
                }
            }
            st.port_guards.insert(sb.container_id.clone(), guards);
        }

        self.apply_firewall(&st).await?;
        self.refresh_dns(&mut st).await;
        Ok(())
    }

    async fn ensure_predefined(&self, st: &mut State<D::PortGuard>) -> Result<()> {
        for (name, driver) in [("host", Driver::Host), ("none", Driver::Null)] {
            if !st.networks.values().any(|n| n.driver == driver) {
                let rec = NetworkRecord {
                    id: ids::new_id(),
                    name: name.into(),
                    created: now_rfc3339(),
                    driver,
                    internal: false,
                    attachable: false,
                    labels: BTreeMap::new(),
                    options: BTreeMap::new(),
                    ipam_options: BTreeMap::new(),
                    bridge: None,
                };
                st.stores.networks.store(&rec.id, &rec)?;
                st.networks.insert(rec.id.clone(), rec);
            }
        }

        let existing = st.networks.values().find(|n| n.bridge.as_ref().is_some_and(|b| b.default_bridge)).cloned();
        let wanted_plan = match (&self.config.bip, &existing) {
            (Some(bip), _) => Some(SubnetPlan::new(bip.trunc(), Some(bip.addr()), None, vec![])?),
            (None, Some(_)) => None,
            (None, None) => {
                let mut taken: Vec<_> = self.dp.host_routes().await?;
                taken.extend(st.networks.values().filter_map(|n| n.bridge.as_ref().map(|b| b.plan.subnet)));
                Some(SubnetPlan::new(ipam::allocate_subnet(&self.config.address_pools, &taken)?, None, None, vec![])?)
            }
        };
        let mut rec = match existing {
            Some(rec) => rec,
            None => NetworkRecord {
                id: ids::new_id(),
                name: "bridge".into(),
                created: now_rfc3339(),
                driver: Driver::Bridge,
                internal: false,
                attachable: false,
                labels: BTreeMap::new(),
                options: BTreeMap::new(),
                ipam_options: BTreeMap::new(),
                bridge: None,
            },
        };
        let in_use = st.endpoints.values().any(|e| e.network_id == rec.id);
        let old = rec.bridge.clone();
        let plan = match (wanted_plan, &old) {
            (Some(p), _) => p,
            (None, Some(b)) => b.plan.clone(),
            (None, None) => return Err(NetError::system_msg("default bridge has no address plan")),
        };
        let settings = BridgeSettings {
            ifname: self.config.default_bridge.clone(),
            plan,
            aux_names: vec![],
            user_subnet: false,
            mtu: self.config.mtu,
            masquerade: true,
            host_binding_ipv4: self.config.default_binding_ip,
            default_bridge: true,
        };
        if let Some(old) = &old {
            let changed = old.ifname != settings.ifname || old.plan != settings.plan;
            if changed && in_use {
                return Err(NetError::forbidden(format!(
                    "cannot change the default bridge ({} {}) to {} {} while containers are attached to it",
                    old.ifname, old.plan.subnet, settings.ifname, settings.plan.subnet
                )));
            }
            if old.ifname != settings.ifname {
                self.dp.delete_link(&old.ifname).await?;
            }
        }
        rec.options = BTreeMap::from([
            (options::DEFAULT_BRIDGE.to_string(), "true".to_string()),
            (options::ICC.to_string(), "true".to_string()),
            (options::MASQUERADE.to_string(), "true".to_string()),
            (options::HOST_BINDING.to_string(), self.config.default_binding_ip.to_string()),
            (options::BRIDGE_NAME.to_string(), settings.ifname.clone()),
            (options::MTU.to_string(), self.config.mtu.to_string()),
        ]);
        rec.bridge = Some(settings);
        st.stores.networks.store(&rec.id, &rec)?;
        st.networks.insert(rec.id.clone(), rec);
        Ok(())
    }

    /// The firewall as the records say it should be.
    fn firewall_model(st: &State<D::PortGuard>) -> FirewallModel {
        let mut model = FirewallModel::default();
        for net in st.networks.values() {
            if let Some(b) = &net.bridge {
                model.bridges.push(BridgeRules {
                    ifname: b.ifname.clone(),
                    subnet: b.plan.subnet,
                    internal: net.internal,
                    masquerade: b.masquerade,
                });
            }
        }
        for sb in st.sandboxes.values() {
            let Some(target) = Self::gateway_endpoint(st, &sb.container_id) else { continue };
            for m in &sb.ports {
                model.dnats.push(Dnat {
                    proto: m.proto,
                    host_ip: m.host_ip,
                    host_port: m.host_port,
                    target_ip: target.ip,
                    target_port: m.container_port,
                });
            }
        }
        model
    }

    async fn apply_firewall(&self, st: &State<D::PortGuard>) -> Result<()> {
        let script = firewall::render(&self.config.nft_table, &Self::firewall_model(st));
        if self.applied_nft.lock().unwrap_or_else(|p| p.into_inner()).as_deref() == Some(script.as_str()) {
            return Ok(());
        }
        let r = self.dp.apply_nft(script.clone()).await;
        // After a failure the kernel's state is unknown: apply in full next time.
        *self.applied_nft.lock().unwrap_or_else(|p| p.into_inner()) = r.is_ok().then_some(script);
        r
    }

    fn gateway_endpoint<'a>(st: &'a State<D::PortGuard>, container_id: &str) -> Option<&'a EndpointRecord> {
        st.endpoints.values().find(|e| e.container_id == container_id && e.provides_gateway)
    }

    /// A sandbox's endpoints in connect order.
    fn sandbox_endpoints<'a>(st: &'a State<D::PortGuard>, container_id: &str) -> Vec<&'a EndpointRecord> {
        let mut eps: Vec<&EndpointRecord> = st.endpoints.values().filter(|e| e.container_id == container_id).collect();
        eps.sort_by_key(|e| e.seq);
        eps
    }

    fn sandbox_has_dns(st: &State<D::PortGuard>, container_id: &str) -> bool {
        st.endpoints
            .values()
            .any(|e| e.container_id == container_id && st.networks.get(&e.network_id).is_some_and(|n| n.has_dns()))
    }

    /// Rebuilds the DNS records and starts/stops per-sandbox servers to match.
    async fn refresh_dns(&self, st: &mut State<D::PortGuard>) {
        let mut table = DnsTable::default();
        for net in st.networks.values().filter(|n| n.has_dns()) {
            table.add_network(&net.id, &net.name);
        }
        let mut eps: Vec<&EndpointRecord> = st.endpoints.values().collect();
        eps.sort_by_key(|e| e.seq);
        for e in eps {
            table.add_endpoint(&e.network_id, &e.container_id, &e.container_name, &e.dns_names(), e.ip);
        }
        for sb in st.sandboxes.values() {
            let servers: Vec<SocketAddr> = sb.dns_servers.iter().map(|ip| SocketAddr::new(*ip, 53)).collect();
            table.set_upstreams(&sb.container_id, servers);
        }
        self.dns.replace_table(table);

        let wanted: Vec<(String, std::path::PathBuf)> = st
            .sandboxes
            .values()
            .filter(|sb| Self::sandbox_has_dns(st, &sb.container_id))
            .map(|sb| (sb.container_id.clone(), sb.netns.clone()))
            .collect();
        st.dns_servers.retain(|cid, _| wanted.iter().any(|(w, _)| w == cid));
        for (cid, netns) in wanted {
            if st.dns_servers.contains_key(&cid) || !self.dp.netns_exists(&netns) {
                continue;
            }
            match self.start_dns(&cid, &netns).await {
                Ok(server) => {
                    st.dns_servers.insert(cid, server);
                }
                Err(e) => tracing::warn!("embedded DNS for {cid} not started: {e}"),
            }
        }
    }

    async fn start_dns(&self, container_id: &str, netns: &std::path::Path) -> Result<DnsServer> {
        let (udp, tcp) = self.dp.dns_sockets(netns).await?;
        DnsServer::start(container_id.to_string(), udp, tcp, self.dns.clone())
            .map_err(|e| NetError::system("start the embedded DNS", e))
    }

    /// True when the embedded DNS serves this container.
    pub async fn dns_running(&self, container_id: &str) -> bool {
        self.state.lock().await.dns_servers.contains_key(container_id)
    }

    /// The container's endpoints (NetworkSettings.Networks), in connect order.
    pub async fn endpoints_of(&self, container_id: &str) -> Vec<Endpoint> {
        let st = self.state.lock().await;
        Self::sandbox_endpoints(&st, container_id)
            .into_iter()
            .filter_map(|e| st.networks.get(&e.network_id).map(|n| Endpoint::from_record(e, n)))
            .collect()
    }

    /// The gateway of the default bridge: what `--add-host x:host-gateway` means.
    pub async fn host_gateway_ip(&self) -> Option<Ipv4Addr> {
        let st = self.state.lock().await;
        st.networks.values().find_map(|n| n.bridge.as_ref().filter(|b| b.default_bridge).map(|b| b.plan.gateway))
    }

    /// Removes everything this manager made: endpoints, networks (the default bridge
    /// too), the nft table and the persisted state. For tests and uninstalls; a daemon
    /// restart must not call it (containers keep their network across restarts).
    pub async fn teardown(self) -> Result<()> {
        let mut st = self.state.lock().await;
        st.dns_servers.clear();
        st.port_guards.clear();
        let veths: Vec<String> = st.endpoints.values().map(|e| e.host_veth.clone()).collect();
        for v in veths {
            self.dp.delete_link(&v).await?;
        }
        let bridges: Vec<String> =
            st.networks.values().filter_map(|n| n.bridge.as_ref().map(|b| b.ifname.clone())).collect();
        for b in bridges {
            self.dp.delete_link(&b).await?;
        }
        for l in self.dp.tagged_links(&self.tag_prefix).await? {
            self.dp.delete_link(&l.name).await?;
        }
        self.dp.apply_nft(firewall::render_delete(&self.config.nft_table)).await?;
        let dir = self.config.data_dir.clone();
        for sub in ["networks", "endpoints", "sandboxes"] {
            let p = dir.join(sub);
            if p.exists() {
                std::fs::remove_dir_all(&p).map_err(|e| NetError::system(format!("remove {}", p.display()), e))?;
            }
        }
        Ok(())
    }
}
