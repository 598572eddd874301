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
mod vlan;
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
use crate::iptables::{Family, HostFirewall};
use crate::ipam::{self, SubnetPlan};
use crate::ipam6::{self, AddressPool6, SubnetPlan6};
use crate::model::{BridgeSettings, BridgeV6, Driver, Endpoint, EndpointRecord, NetworkRecord, SandboxRecord};
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
    /// Sockets holding each sandbox's published host ports, with their mappings.
    port_guards: HashMap<String, Vec<(crate::ports::PortMapping, G)>>,
    /// Userland relays of published IPv6 ports: (container, host ip, port, proto).
    proxies: HashMap<(String, std::net::IpAddr, u16, crate::ports::Proto), crate::proxy::Proxy>,
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
    /// The rules last applied (the model and its script): most endpoint changes leave
    /// the rules as they are, running nft costs a process and a netlink transaction,
    /// and a change of published ports alone is made by map elements.
    applied_nft: Arc<std::sync::Mutex<Option<(FirewallModel, String)>>>,
    /// Held while nft runs: rules are applied one transaction after another, in the
    /// order they were decided, including a removal finishing in the background.
    nft_turn: Arc<Mutex<()>>,
    /// berth's accept rules in the host's iptables (IPv4).
    host_fw: Mutex<HostFirewall>,
    /// ... and in ip6tables, for dual-stack bridges.
    host_fw6: Mutex<HostFirewall>,
    /// Where IPv6 subnets of networks created without one come from.
    v6_pools: Vec<AddressPool6>,
    _lock: nix::fcntl::Flock<std::fs::File>,
    /// This daemon's claim on its nft table (and so its bridges) in this namespace.
    _claim: D::Claim,
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

/// The embedded DNS's upstreams from the host's resolv.conf: every nameserver, loopback
/// ones too (queries to them leave from the host's namespace), else Docker's fallback.
pub(crate) fn host_upstreams(host: &HostResolvConf) -> Vec<SocketAddr> {
    let mut servers = host.nameservers.clone();
    if servers.is_empty() {
        servers = DEFAULT_NAMESERVERS.iter().map(|ip| (*ip).into()).collect();
    }
    upstreams_from(&servers)
}

pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

impl<D: Dataplane> NetworkManager<D> {
    /// Opens the state with any dataplane (the recording one in unit tests).
    pub async fn open_with(config: NetConfig, dp: D) -> Result<Self> {
        config.validate()?;
        let lock = lock_data_dir(&config)?;
        let claim = dp.claim_table(&config.nft_table)?;
        let stores = Stores {
            networks: JsonDir::open(config.data_dir.join("networks"))?,
            // The state of running containers: a reboot ends it (see persist.rs).
            endpoints: JsonDir::open_runtime(config.data_dir.join("endpoints"))?,
            sandboxes: JsonDir::open_runtime(config.data_dir.join("sandboxes"))?,
        };
        let networks: BTreeMap<String, NetworkRecord> = stores.networks.load_all()?.into_iter().collect();
        let endpoints: BTreeMap<String, EndpointRecord> = stores.endpoints.load_all()?.into_iter().collect();
        let sandboxes: BTreeMap<String, SandboxRecord> = stores.sandboxes.load_all()?.into_iter().collect();

        let upstreams = match &config.dns_upstreams {
            Some(u) => u.clone(),
            None => host_upstreams(&HostResolvConf::read(&config.host_resolv_conf)?),
        };
        let ephemeral = config.ephemeral_ports.unwrap_or_else(read_ephemeral_range);
        let start = ephemeral.0 + (rand::random::<u16>() % (ephemeral.1 - ephemeral.0).max(1));
        let tag_prefix = format!("berth:{}:", config.nft_table);
        let mgr = NetworkManager {
            dns: DnsShared::new(upstreams),
            tag_prefix,
            ephemeral,
            applied_nft: Arc::new(std::sync::Mutex::new(None)),
            nft_turn: Arc::new(Mutex::new(())),
            host_fw: Mutex::new(HostFirewall::new(&config.nft_table, Family::V4, config.iptables)),
            host_fw6: Mutex::new(HostFirewall::new(&config.nft_table, Family::V6, config.iptables && config.ip6tables)),
            v6_pools: if config.ipv6_pools.is_empty() {
                vec![ipam6::ula_pool(&format!("{}:{}", config.nft_table, config.data_dir.display()))]
            } else {
                config.ipv6_pools.clone()
            },
            state: Mutex::new(State {
                networks,
                endpoints,
                sandboxes,
                port_guards: HashMap::new(),
                proxies: HashMap::new(),
                dns_servers: HashMap::new(),
                port_cursor: start,
                stores,
            }),
            dp,
            config,
            _lock: lock,
            _claim: claim,
        };
        mgr.restore().await?;
        if mgr.config.dns_upstreams.is_none() {
            crate::resolv_watch::spawn(mgr.config.host_resolv_conf.clone(), Arc::downgrade(&mgr.dns));
        }
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
            gateway6: b.v6.as_ref().map(|v| (v.plan.gateway, v.plan.subnet.prefix_len())),
            group: crate::iptables::bridge_group(&self.config.nft_table),
        })
    }

    async fn restore(&self) -> Result<()> {
        if self.config.rootless {
            // Records only: nothing in the host's namespace is ours to make or sweep.
            let mut st = self.state.lock().await;
            return self.ensure_predefined(&mut st).await;
        }
        if self.config.enable_ip_forward {
            self.dp.enable_ip_forward()?;
        }
        let mut st = self.state.lock().await;
        self.ensure_predefined(&mut st).await?;

        for net in st.networks.values() {
            let Some(spec) = self.bridge_spec(net) else { continue };
            let ensured = match self.may_take_bridge(&spec, net.is_predefined()).await {
                Ok(()) => self.dp.ensure_bridge(&spec).await,
                Err(e) => Err(e),
            };
            match ensured {
                Ok(()) => {}
                // Without the default bridge the daemon cannot run containers at all.
                Err(e) if net.is_predefined() => return Err(e),
                // One broken user network must not keep the daemon down; its
                // containers will fail to connect with the same error.
                Err(e) => tracing::error!("restoring network {} ({}): {e}", net.name, spec.name),
            }
        }

        // Parents berth made for macvlan/ipvlan networks (gone after a reboot).
        for net in st.networks.values() {
            let Some(v) = &net.vlan else { continue };
            if let Some(what) = vlan::parent_to_make(v)
                && let Err(e) = self.dp.make_parent(&v.parent, &self.net_tag(&net.id), &what).await
            {
                tracing::error!("restoring the parent {} of network {}: {e}", v.parent, net.name);
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
        // A bridge of ours that never got its tag (killed between creating and tagging it).
        for b in self.dp.untagged_bridges(crate::iptables::bridge_group(&self.config.nft_table)).await? {
            tracing::info!("removing leaked interface {b} (untagged, in berth's netdev group)");
            self.dp.delete_link(&b).await?;
        }
        // A veth on one of our bridges that no endpoint claims and that has no tag: the
        // kernel takes the tag (alias) only after creating the veth, so a daemon killed
        // in between leaves one behind (found by crates/berth/tests/chaos.rs).
        let bridges: Vec<String> = st.networks.values().filter_map(|n| self.bridge_spec(n).map(|b| b.name)).collect();
        for v in self.dp.bridge_veths(&bridges).await? {
            let claimed = live_veths.contains(&v) || st.endpoints.values().any(|e| e.host_veth == v);
            if !claimed && !tagged.iter().any(|l| l.name == v) {
                tracing::info!("removing leaked interface {v} (untagged, on a berth bridge)");
                self.dp.delete_link(&v).await?;
            }
        }
        // Endpoints whose veth is gone died with their namespace (a macvlan/ipvlan
        // endpoint has no host side: it lives as long as the namespace).
        let alive = |e: &EndpointRecord| {
            if e.host_veth.is_empty() {
                st.sandboxes.get(&e.container_id).is_some_and(|sb| self.dp.netns_exists(&sb.netns))
            } else {
                live_veths.contains(&e.host_veth)
            }
        };
        let dead: Vec<String> = st.endpoints.values().filter(|e| !alive(e)).map(|e| e.id.clone()).collect();
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
                    Ok(g) => guards.push((*m, g)),
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

        if st.networks.values().any(|n| n.bridge.as_ref().is_some_and(|b| !b.icc))
            && let Err(e) = self.ensure_bridge_netfilter()
        {
            tracing::warn!("{e}");
        }
        if st.networks.values().any(|n| n.bridge.as_ref().is_some_and(|b| b.v6.is_some()))
            && let Err(e) = self.enable_ipv6_forwarding()
        {
            tracing::warn!("{e}");
        }
        // Tables of berth versions before IPv6 were `ip` tables of the same name.
        self.dp.apply_nft(format!("add table ip {0}\ndelete table ip {0}\n", self.config.nft_table)).await?;
        let model = Self::firewall_model(&st, false);
        self.apply_nft_model_with(&model, false).await?;
        self.sync_proxies(&mut st);
        // A host firewall that cannot be written to must not keep the daemon down:
        // say why, and try again on the next change.
        if let Err(e) = self.sync_host_firewall(&model).await {
            tracing::warn!("adding berth's rules to iptables: {e}");
        }
        self.refresh_dns(&mut st).await;
        Ok(())
    }

    /// `enable_icc=false` is enforced on bridged traffic, which the forward hook only
    /// sees through br_netfilter (`bridge-nf-call-iptables=1`); dockerd turns it on for
    /// the same reason. It applies to the whole network namespace.
    pub(super) fn ensure_bridge_netfilter(&self) -> Result<()> {
        const KEY: &str = "net/bridge/bridge-nf-call-iptables";
        match self.dp.sysctl(KEY).as_deref() {
            Some("1") => Ok(()),
            Some(_) => self.dp.set_sysctl(KEY, "1"),
            None => Err(NetError::forbidden(
                "enable_icc=false needs br_netfilter (modprobe br_netfilter): without it bridged traffic cannot be filtered",
            )),
        }
    }

    /// Dual-stack networks route IPv6 between the bridge and the world, as dockerd
    /// turns on for them.
    pub(super) fn enable_ipv6_forwarding(&self) -> Result<()> {
        if self.config.enable_ip_forward && self.dp.sysctl("net/ipv6/conf/all/forwarding").as_deref() != Some("1") {
            self.dp.set_sysctl("net/ipv6/conf/all/forwarding", "1")?;
        }
        Ok(())
    }

    /// Whether an interface already at `spec.name` may become this bridge: one of ours
    /// (this tag or an older one of this daemon's table, e.g. after the data root was
    /// wiped), one left by a berth daemon that is no longer running, or (for the
    /// default bridge, as dockerd's `-b`) an untagged bridge nothing is attached to.
    /// A bridge of another live daemon, or anything else, is refused.
    async fn may_take_bridge(&self, spec: &BridgeSpec, default: bool) -> Result<()> {
        let Some(info) = self.dp.link_info(&spec.name).await? else { return Ok(()) };
        if info.alias.as_deref() == Some(spec.alias.as_str()) {
            return Ok(());
        }
        let hint = if default { "choose another name with --bridge" } else { "choose another com.docker.network.bridge.name" };
        if info.kind.as_deref() != Some("bridge") {
            return Err(NetError::conflict(format!("interface {} already exists and is not a bridge: {hint}", spec.name)));
        }
        let owner = info.alias.as_deref().and_then(|a| a.strip_prefix("berth:")).and_then(|rest| rest.split_once(':')).map(|(t, _)| t);
        match owner {
            Some(table) if table == self.config.nft_table => {
                if default {
                    return Ok(());
                }
                Err(NetError::conflict(format!("interface {} already exists and belongs to another network: {hint}", spec.name)))
            }
            Some(table) if self.dp.table_claimed(table) => Err(NetError::conflict(format!(
                "interface {} is a bridge of another running berth daemon (nftables table {table}): {hint}",
                spec.name
            ))),
            Some(_) => Ok(()),
            None if default && !info.has_ports => Ok(()),
            None => Err(NetError::conflict(format!(
                "interface {} already exists and is not managed by berth: {hint}",
                spec.name
            ))),
        }
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
                    ipam_options_given: false,
                    bridge: None,
                    vlan: None,
                    active: true,
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
                    ipam_options_given: false,
                bridge: None,
                vlan: None,
                active: true,
            },
        };
        let in_use = st.endpoints.values().any(|e| e.network_id == rec.id);
        let old = rec.bridge.clone();
        let plan = match (wanted_plan, &old) {
            (Some(p), _) => p,
            (None, Some(b)) => b.plan.clone(),
            (None, None) => return Err(NetError::system_msg("default bridge has no address plan")),
        };
        // `--ipv6`: the default bridge is dual-stack, on `--fixed-cidr-v6` or on the
        // subnet it had, else on one from the pools.
        let v6 = if !self.config.ipv6 {
            None
        } else {
            let plan = match (&self.config.fixed_cidr_v6, old.as_ref().and_then(|b| b.v6.as_ref())) {
                (Some(net), _) => SubnetPlan6::new(*net, None, None, vec![])?,
                (None, Some(v)) => v.plan.clone(),
                (None, None) => {
                    let mut taken = self.dp.host_routes6().await?;
                    taken.extend(st.networks.values().filter_map(|n| n.bridge.as_ref()?.v6.as_ref().map(|v| v.plan.subnet)));
                    SubnetPlan6::new(ipam6::allocate_subnet(&self.v6_pools, &taken)?, None, None, vec![])?
                }
            };
            Some(BridgeV6 { plan, aux_names: vec![], user_subnet: self.config.fixed_cidr_v6.is_some() })
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
            icc: self.config.icc,
            v6,
        };
        if let Some(old) = &old {
            let changed = old.ifname != settings.ifname
                || old.plan != settings.plan
                || old.v6.as_ref().map(|v| v.plan.subnet) != settings.v6.as_ref().map(|v| v.plan.subnet);
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
            (options::ICC.to_string(), self.config.icc.to_string()),
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

    /// The firewall as the records say it should be. `in_use_only`: just what running
    /// containers need (a daemon stopping leaves only that behind).
    fn firewall_model(st: &State<D::PortGuard>, in_use_only: bool) -> FirewallModel {
        let mut model = FirewallModel::default();
        for net in st.networks.values() {
            let in_use = Self::has_endpoints(st, &net.id);
            let needed = if in_use_only { in_use } else { net.active || in_use };
            if !needed {
                continue;
            }
            if let Some(b) = &net.bridge {
                let mut subnets = vec![ipnet::IpNet::V4(b.plan.subnet)];
                subnets.extend(b.v6.as_ref().map(|v| ipnet::IpNet::V6(v.plan.subnet)));
                model.bridges.push(BridgeRules {
                    ifname: b.ifname.clone(),
                    subnets,
                    internal: net.internal,
                    masquerade: b.masquerade,
                    icc: b.icc,
                });
            }
        }
        for e in st.endpoints.values().filter(|e| !e.linked_ports.is_empty()) {
            let Some(b) = st.networks.get(&e.network_id).and_then(|n| n.bridge.as_ref()) else { continue };
            if b.icc || !model.bridges.iter().any(|m| m.ifname == b.ifname) {
                continue;
            }
            for l in &e.linked_ports {
                for (proto, port) in &l.ports {
                    model.links.push(firewall::LinkAccept {
                        bridge: b.ifname.clone(),
                        client: e.ip.into(),
                        server: l.server.into(),
                        proto: *proto,
                        port: *port,
                    });
                }
            }
        }
        for sb in st.sandboxes.values() {
            let Some(target) = Self::gateway_endpoint(st, &sb.container_id) else { continue };
            if st.networks.get(&target.network_id).is_none_or(|n| n.bridge.is_none()) {
                continue;
            }
            for m in &sb.ports {
                // IPv6 ports go in-kernel only to a container with IPv6, and never from
                // ::1 (the proxy serves those).
                let target_ip = match m.host_ip {
                    std::net::IpAddr::V4(_) => std::net::IpAddr::V4(target.ip),
                    std::net::IpAddr::V6(a) if a.is_loopback() => continue,
                    std::net::IpAddr::V6(_) => match target.v6 {
                        Some(v) => std::net::IpAddr::V6(v.ip),
                        None => continue,
                    },
                };
                model.dnats.push(Dnat {
                    proto: m.proto,
                    host_ip: m.host_ip,
                    host_port: m.host_port,
                    target_ip,
                    target_port: m.container_port,
                });
            }
        }
        model
    }

    /// Puts the kernel's rules in line with the records: berth's nft table, and its
    /// accept rules in the host's iptables.
    async fn apply_firewall(&self, st: &State<D::PortGuard>) -> Result<()> {
        self.apply_firewall_with(st, false).await
    }

    /// [`Self::apply_firewall`]; see [`Self::apply_nft_model_with`] for the background.
    async fn apply_firewall_with(&self, st: &State<D::PortGuard>, removal_in_background: bool) -> Result<()> {
        let model = Self::firewall_model(st, false);
        let (nft, host) = tokio::join!(self.apply_nft_model_with(&model, removal_in_background), self.sync_host_firewall(&model));
        nft.and(host)
    }

    /// Puts berth's nft table in line with `model`; with `removal_in_background`, a change that only takes
    /// published ports away is left to finish in a task of its own: the kernel retires
    /// the removed elements after an RCU grace period (~20 ms here), which a stopping
    /// container need not wait for. The port's socket is let go at once; whoever
    /// publishes it next waits for its turn at nft, so after the removal.
    async fn apply_nft_model_with(&self, model: &FirewallModel, removal_in_background: bool) -> Result<()> {
        let script = firewall::render(&self.config.nft_table, model);
        // Unchanged (the usual case): no need to wait for a removal still in flight.
        if self.applied_nft.lock().unwrap_or_else(|p| p.into_inner()).as_ref().is_some_and(|(_, applied)| *applied == script) {
            return Ok(());
        }
        let turn = self.nft_turn.clone().lock_owned().await;
        let last = self.applied_nft.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let (change, only_removals) = match &last {
            Some((_, applied)) if *applied == script => return Ok(()),
            // Only published ports changed: elements of the table's maps, no new rules.
            Some((before, _)) if before.bridges == model.bridges && before.links == model.links => {
                let only_removals = model.dnats.iter().all(|d| before.dnats.contains(d));
                (firewall::render_dnat_changes(&self.config.nft_table, &before.dnats, &model.dnats), only_removals)
            }
            _ => (script.clone(), false),
        };
        if removal_in_background && only_removals {
            *self.applied_nft.lock().unwrap_or_else(|p| p.into_inner()) = Some((model.clone(), script));
            let run = self.dp.apply_nft_detached(change);
            let applied = self.applied_nft.clone();
            tokio::spawn(async move {
                let _turn = turn;
                if let Err(e) = run.await {
                    tracing::warn!("removing published ports: {e}");
                    // The kernel's state is unknown: apply in full next time.
                    *applied.lock().unwrap_or_else(|p| p.into_inner()) = None;
                }
            });
            return Ok(());
        }
        let r = self.dp.apply_nft(change).await;
        // After a failure the kernel's state is unknown: apply in full next time.
        *self.applied_nft.lock().unwrap_or_else(|p| p.into_inner()) = r.is_ok().then(|| (model.clone(), script));
        r
    }

    async fn sync_host_firewall(&self, model: &FirewallModel) -> Result<()> {
        let r4 = self.host_fw.lock().await.sync(&self.dp).await;
        // ip6tables only matters once there is IPv6 to forward.
        let any_v6 = model.bridges.iter().any(|b| b.subnets.iter().any(|n| matches!(n, ipnet::IpNet::V6(_))));
        let mut fw6 = self.host_fw6.lock().await;
        let r6 = if any_v6 || !fw6.backends().is_empty() { fw6.sync(&self.dp).await } else { Ok(()) };
        r4.and(r6)
    }

    /// What on this host breaks container networking, for `/info` (see
    /// [`crate::host_check`]).
    pub async fn host_warnings(&self) -> Vec<String> {
        use crate::host_check;
        use crate::iptables::{Backend, tool};
        let mut w = Vec::new();
        if self.config.rootless {
            return w;
        }
        if self.dp.sysctl("net/ipv4/ip_forward").as_deref() == Some("0") {
            w.push("WARNING: IPv4 forwarding is disabled. Networking will not work.".to_string());
        }
        let (enabled, programmed, error) = {
            let fw = self.host_fw.lock().await;
            (fw.enabled(), fw.backends(), fw.last_error().map(str::to_string))
        };
        if let Some(e) = error {
            w.push(format!("WARNING: berth could not add its rules to iptables' FORWARD chain: {e}"));
        }
        let icc_off = self.state.lock().await.networks.values().any(|n| n.bridge.as_ref().is_some_and(|b| !b.icc));
        if icc_off && self.dp.sysctl("net/bridge/bridge-nf-call-iptables").as_deref() != Some("1") {
            w.push("WARNING: bridge-nf-call-iptables is disabled: networks with enable_icc=false do not isolate their containers".into());
        }
        let chains = match self.dp.run_tool("nft", &["-j", "list", "chains"], None).await {
            Ok(o) if o.success => host_check::forward_chains(&o.stdout),
            _ => Vec::new(),
        };
        let not_written = |b: Backend| {
            let why = if enabled { "berth could not write to it" } else { "berth runs with --iptables=false" };
            format!(
                "WARNING: the FORWARD policy of {} is DROP and {why}: containers' forwarded traffic is dropped there",
                tool(b, Family::V4)
            )
        };
        let nft_drop = chains.iter().any(|c| c.family == "ip" && c.table == "filter" && c.name == "FORWARD" && c.policy_drop);
        if nft_drop && !programmed.contains(&Backend::Nft) {
            w.push(not_written(Backend::Nft));
        }
        if self.dp.xtables_facts(Family::V4).legacy_filter && !programmed.contains(&Backend::Legacy) {
            let t = tool(Backend::Legacy, Family::V4);
            if let Ok(o) = self.dp.run_tool(&t, &["-w", "5", "-S", "FORWARD"], None).await
                && host_check::forward_policy_drop(&o.stdout)
            {
                w.push(not_written(Backend::Legacy));
            }
        }
        w.extend(host_check::foreign_chain_warnings(&chains, &self.config.nft_table, &self.config.default_bridge));
        w
    }

    /// The daemon is stopping (its containers live on): rules of networks no running
    /// container is on are removed; with no container left, berth's nft table and its
    /// iptables rules go entirely. The next open() puts everything back.
    pub async fn shutdown(&self) -> Result<()> {
        if self.config.rootless {
            return Ok(());
        }
        let st = self.state.lock().await;
        if let Err(e) = self.dp.drop_spares().await {
            tracing::warn!("{e}");
        }
        let model = Self::firewall_model(&st, true);
        if model.bridges.is_empty() {
            let turn = self.nft_turn.lock().await;
            let nft = self.dp.apply_nft(firewall::render_delete(&self.config.nft_table)).await;
            *self.applied_nft.lock().unwrap_or_else(|p| p.into_inner()) = None;
            drop(turn);
            let host = self.host_fw.lock().await.remove(&self.dp).await;
            let host6 = self.host_fw6.lock().await.remove(&self.dp).await;
            return nft.and(host).and(host6);
        }
        let (nft, host) = tokio::join!(self.apply_nft_model_with(&model, false), self.sync_host_firewall(&model));
        nft.and(host)
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
            table.add_endpoint(&e.network_id, &e.container_id, &e.container_name, &e.dns_names(), e.ip, e.v6.map(|v| v.ip));
            table.add_links(&e.container_id, &e.network_id, &e.links);
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
        DnsServer::start(container_id.to_string(), netns.to_path_buf(), udp, tcp, self.dns.clone())
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
        st.proxies.clear();
        st.port_guards.clear();
        let veths: Vec<String> = st.endpoints.values().map(|e| e.host_veth.clone()).filter(|v| !v.is_empty()).collect();
        for v in veths {
            self.dp.delete_link(&v).await?;
        }
        let mut links: Vec<String> =
            st.networks.values().filter_map(|n| n.bridge.as_ref().map(|b| b.ifname.clone())).collect();
        links.extend(st.networks.values().filter_map(|n| n.vlan.as_ref().filter(|v| v.created_parent).map(|v| v.parent.clone())));
        for b in links {
            self.dp.delete_link(&b).await?;
        }
        self.dp.drop_spares().await?;
        for l in self.dp.tagged_links(&self.tag_prefix).await? {
            self.dp.delete_link(&l.name).await?;
        }
        let turn = self.nft_turn.lock().await;
        self.dp.apply_nft(firewall::render_delete(&self.config.nft_table)).await?;
        *self.applied_nft.lock().unwrap_or_else(|p| p.into_inner()) = None;
        drop(turn);
        self.host_fw.lock().await.remove(&self.dp).await?;
        self.host_fw6.lock().await.remove(&self.dp).await?;
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
