//! The seam between the manager's logic and the kernel. [`LinuxDataplane`] does the
//! real work over rtnetlink, nft, sockets and sysctls; [`RecordingDataplane`] keeps
//! the same state in memory so the manager's bookkeeping, validation and rollback
//! are tested without root.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use futures_util::TryStreamExt;
use ipnet::{Ipv4Net, Ipv6Net};
use netlink_packet_route::address::{AddressAttribute, AddressFlags};
use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteType};
use netlink_packet_route::link::{IpVlanMode, MacVlanMode};
use rtnetlink::{
    LinkBridge, LinkBridgePort, LinkDummy, LinkIpVlan, LinkMacVlan, LinkMessageBuilder, LinkUnspec, LinkVeth, LinkVlan,
    RouteMessageBuilder,
};

use crate::error::{NetError, Result};
use crate::firewall;
use crate::iptables::{Backend, Family, XtablesFacts};
use crate::netns;
use crate::ports::Proto;
use crate::tools::{self, ToolOutput};

/// A bridge device as the manager wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSpec {
    pub name: String,
    /// The ownership tag (IFLA_IFALIAS) identifying this daemon and network.
    pub alias: String,
    pub gateway: Ipv4Addr,
    pub prefix_len: u8,
    pub mtu: u32,
    /// The IPv6 gateway address and prefix of a dual-stack network.
    pub gateway6: Option<(Ipv6Addr, u8)>,
    /// The netdev group of the daemon's bridges (what berth's iptables rules match).
    pub group: u32,
}

/// A veth pair joining a namespace to a bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethSpec {
    pub host_name: String,
    pub alias: String,
    pub bridge: String,
    pub netns: PathBuf,
    /// Name of the end inside the namespace (eth0, eth1, ...).
    pub ifname: String,
    pub mac: [u8; 6],
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub mtu: u32,
    /// Add the default route through this gateway.
    pub gateway: Option<Ipv4Addr>,
    /// IPv6 address and prefix on a dual-stack network.
    pub ip6: Option<(Ipv6Addr, u8)>,
    /// Add the IPv6 default route through this gateway.
    pub gateway6: Option<Ipv6Addr>,
    /// `--link-local-ip` addresses.
    pub link_local: Vec<IpAddr>,
}

impl VethSpec {
    fn addrs(&self) -> PeerAddrs {
        PeerAddrs {
            ip: self.ip,
            prefix_len: self.prefix_len,
            gateway: self.gateway,
            ip6: self.ip6,
            gateway6: self.gateway6,
            link_local: self.link_local.clone(),
        }
    }
}

/// The addresses and routes of a container's interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddrs {
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    pub ip6: Option<(Ipv6Addr, u8)>,
    pub gateway6: Option<Ipv6Addr>,
    pub link_local: Vec<IpAddr>,
}

/// macvlan or ipvlan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VlanKind {
    Macvlan,
    Ipvlan,
}

impl VlanKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            VlanKind::Macvlan => "macvlan",
            VlanKind::Ipvlan => "ipvlan",
        }
    }
}

/// A container's interface on a macvlan/ipvlan network, made on the parent and put
/// straight into the container's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VlanLinkSpec {
    pub kind: VlanKind,
    pub parent: String,
    /// macvlan: bridge | private | vepa | passthru; ipvlan: l2 | l3 | l3s.
    pub mode: String,
    pub netns: PathBuf,
    pub ifname: String,
    /// macvlan only (ipvlan interfaces share the parent's).
    pub mac: Option<[u8; 6]>,
    pub mtu: u32,
    pub addrs: PeerAddrs,
}

/// A parent interface berth makes for a macvlan/ipvlan network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParentToMake {
    /// An 802.1q sub-interface `<base>.<id>` (`-o parent=eth0.10`).
    Vlan { base: String, id: u16 },
    /// A dummy interface (a network without `-o parent`, or `--internal`).
    Dummy,
}

/// An interface carrying an ownership tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedLink {
    pub name: String,
    pub alias: String,
}

/// What is at an interface name on the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkInfo {
    /// The ownership tag, if any.
    pub alias: Option<String>,
    /// `bridge`, `veth`, ... (None for plain devices).
    pub kind: Option<String>,
    /// Some interface is enslaved to it (for a bridge: it is in use).
    pub has_ports: bool,
}

/// Everything the manager asks of the kernel.
pub trait Dataplane: Send + Sync + 'static {
    /// Holds a host port while a mapping exists; dropping it frees the port.
    type PortGuard: Send + Sync + 'static;
    /// Holds this daemon's claim on its nft table name (see [`Dataplane::claim_table`]).
    type Claim: Send + Sync + 'static;

    /// Creates the bridge if missing, (re)tags it with `spec.alias`, gives it the
    /// gateway address, the MTU and route_localnet, and sets it up. Whether an existing
    /// interface of that name may be taken over is the caller's decision (see
    /// [`Dataplane::link_info`]); one that is not a bridge is refused.
    fn ensure_bridge(&self, spec: &BridgeSpec) -> impl Future<Output = Result<()>> + Send;
    /// Deletes a host interface by name; no error if it does not exist.
    fn delete_link(&self, name: &str) -> impl Future<Output = Result<()>> + Send;
    /// Deletes a host interface without waiting for it: unregistering a veth waits
    /// out RCU grace periods (~20 ms), and a stopping container need not. The device
    /// goes down at once; a failure is logged; a crash in between is mended by
    /// reconcile (tagged links nobody owns).
    fn delete_link_in_background(&self, name: &str);
    /// Takes a bridge out of service now: it goes down, loses its addresses and is
    /// renamed (so its name is free at once for a new network); then it is kept for
    /// reuse by the next network, or unregistered in the background (which waits out
    /// RCU grace periods). Its tag stays, so a crash leaves a tagged link that the next
    /// open() removes; [`Dataplane::drop_spares`] deletes what is kept.
    fn retire_link(&self, name: &str) -> impl Future<Output = Result<()>> + Send;
    /// Deletes the retired bridges kept for reuse.
    fn drop_spares(&self) -> impl Future<Output = Result<()>> + Send;
    /// Host interfaces whose alias starts with `prefix`.
    fn tagged_links(&self, prefix: &str) -> impl Future<Output = Result<Vec<TaggedLink>>> + Send;
    /// Bridges in netdev group `group` with no ownership tag: the kernel ignores the
    /// alias when it creates a link, so a daemon killed between creating a bridge and
    /// tagging it leaves one (its group was set at creation).
    fn untagged_bridges(&self, group: u32) -> impl Future<Output = Result<Vec<String>>> + Send {
        let _ = group;
        async { Ok(Vec::new()) }
    }
    /// The veths enslaved to any of `bridges` (by name), tagged or not.
    fn bridge_veths(&self, bridges: &[String]) -> impl Future<Output = Result<Vec<String>>> + Send {
        let _ = bridges;
        async { Ok(Vec::new()) }
    }
    /// Creates a veth pair: host end on the bridge, peer inside the namespace with
    /// its address, MAC, MTU and (optionally) the default route.
    fn create_veth(&self, spec: &VethSpec) -> impl Future<Output = Result<()>> + Send;
    /// Replaces the namespace's default routes with ones through `gateway` (and
    /// `gateway6`) on `ifname`.
    fn set_default_route(
        &self,
        netns: &Path,
        ifname: &str,
        gateway: Ipv4Addr,
        gateway6: Option<Ipv6Addr>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// The host's IPv4 routes (to keep new subnets off networks already in use).
    fn host_routes(&self) -> impl Future<Output = Result<Vec<Ipv4Net>>> + Send;
    /// The host's IPv6 routes.
    fn host_routes6(&self) -> impl Future<Output = Result<Vec<Ipv6Net>>> + Send;
    /// Runs an nft script (one atomic transaction).
    fn apply_nft(&self, script: String) -> impl Future<Output = Result<()>> + Send;
    /// [`Dataplane::apply_nft`] as a future that does not borrow the dataplane, so it
    /// can finish in a task of its own.
    fn apply_nft_detached(&self, script: String) -> impl Future<Output = Result<()>> + Send + 'static;
    /// Binds (without listening) ip:port so nobody else can take it.
    /// (IPv4) binds without listening; IPv6 sockets are bound IPv6-only and, for TCP,
    /// listen, as the userland proxy serves them (see [`crate::proxy`]).
    fn reserve_port(&self, ip: IpAddr, port: u16, proto: Proto) -> std::io::Result<Self::PortGuard>;
    /// Starts relaying a reserved (IPv6) port to `target`; None when this dataplane
    /// has no sockets to relay.
    fn start_proxy(&self, guard: &Self::PortGuard, proto: Proto, target: SocketAddr) -> Result<Option<crate::proxy::Proxy>>;
    /// UDP and TCP sockets bound to 127.0.0.11:53 inside the namespace.
    fn dns_sockets(&self, netns: &Path) -> impl Future<Output = Result<(std::net::UdpSocket, std::net::TcpListener)>> + Send;
    /// Sets net.ipv4.ip_forward = 1.
    fn enable_ip_forward(&self) -> Result<()>;
    /// True when `path` is a live network namespace.
    fn netns_exists(&self, path: &Path) -> bool;
    /// True when the host has IPv6 (no `ipv6.disable=1`): ports published without a
    /// host address are then published on [::] too.
    fn host_has_ipv6(&self) -> bool;
    /// What is at interface `name` on the host, if anything.
    fn link_info(&self, name: &str) -> impl Future<Output = Result<Option<LinkInfo>>> + Send;
    /// Creates the parent `name` (tagged `alias`), up. No error if it exists.
    fn make_parent(&self, name: &str, alias: &str, what: &ParentToMake) -> impl Future<Output = Result<()>> + Send;
    /// Checks that the kernel can make `kind` interfaces on `parent` (by making one and
    /// deleting it), so a network is refused at once rather than at its first container.
    fn probe_vlan(&self, kind: VlanKind, parent: &str, mode: &str) -> impl Future<Output = Result<()>> + Send;
    /// Creates a macvlan/ipvlan interface in the container's namespace, addressed.
    fn create_vlan_link(&self, spec: &VlanLinkSpec) -> impl Future<Output = Result<()>> + Send;
    /// Deletes an interface inside a namespace (no error if either is gone).
    fn delete_link_in(&self, netns: &Path, ifname: &str) -> impl Future<Output = Result<()>> + Send;
    /// Claims the nft table name `table` for this process in this network namespace,
    /// until the claim is dropped (or the process dies, even by SIGKILL). Conflict when
    /// a live daemon holds it.
    fn claim_table(&self, table: &str) -> Result<Self::Claim>;
    /// True when a live daemon holds a claim on `table` here.
    fn table_claimed(&self, table: &str) -> bool;
    /// Runs a firewall tool (`nft`, `iptables-nft-restore`, ...) with `args`, feeding
    /// it `stdin`.
    fn run_tool(&self, prog: &str, args: &[&str], stdin: Option<&str>) -> impl Future<Output = Result<ToolOutput>> + Send;
    /// Which iptables backends exist and are in use (see [`crate::iptables`]).
    fn xtables_facts(&self, family: Family) -> XtablesFacts;
    /// A sysctl's value (`net/bridge/bridge-nf-call-iptables`), None if it does not exist.
    fn sysctl(&self, key: &str) -> Option<String>;
    fn set_sysctl(&self, key: &str, value: &str) -> Result<()>;
}

/// The abstract unix socket name that marks a daemon's claim on its nft table.
/// Abstract names belong to the network namespace, like the bridges and the table.
fn claim_name(table: &str) -> String {
    format!("berth-net/{table}")
}

// ---------------------------------------------------------------------------------
// The real kernel.
// ---------------------------------------------------------------------------------

/// rtnetlink, nft, sockets and /proc/sys on the running kernel.
pub struct LinuxDataplane {
    handle: rtnetlink::Handle,
    /// Bridges of removed networks, kept (down, without addresses, renamed) for the
    /// next network: unregistering a netdev waits out RCU grace periods under the
    /// rtnl lock (tens of ms), which a create right after would wait for too.
    spares: Mutex<Vec<u32>>,
}

/// How many retired bridges are kept for reuse.
const SPARE_BRIDGES: usize = 2;

fn nl_err(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetError {
    let what = what.into();
    move |e| NetError::system(what, e)
}

/// The errno of a netlink error reply, if it is one.
fn nl_errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(-m.raw_code()),
        _ => None,
    }
}

fn alias_of(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfAlias(s) => Some(s.as_str()),
        _ => None,
    })
}

fn kind_of(link: &LinkMessage) -> Option<String> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            netlink_packet_route::link::LinkInfo::Kind(k) => Some(k.to_string()),
            _ => None,
        }),
        _ => None,
    })
}

fn name_of(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(s) => Some(s.as_str()),
        _ => None,
    })
}

fn write_sysctl(path: &str, value: &str) -> Result<()> {
    std::fs::write(path, value).map_err(|e| NetError::system(format!("write {path}"), e))
}

impl LinuxDataplane {
    /// Opens a netlink connection in the current (host) namespace. Needs a runtime.
    pub fn new() -> Result<Self> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| NetError::system("open netlink", e))?;
        tokio::spawn(conn);
        Ok(LinuxDataplane { handle, spares: Mutex::new(Vec::new()) })
    }

    /// A spare bridge renamed to `name`, if one is left.
    async fn take_spare(&self, name: &str) -> Option<u32> {
        loop {
            let index = self.spares.lock().unwrap_or_else(|p| p.into_inner()).pop()?;
            let renamed = self.handle.link().set(LinkUnspec::new_with_index(index).name(name.to_string()).build()).execute().await;
            match renamed {
                Ok(()) => return Some(index),
                // Gone meanwhile (someone deleted it): try the next one.
                Err(e) => tracing::debug!("spare bridge {index}: {e}"),
            }
        }
    }

    /// Every interface of the host's (this namespace's) in one netlink dump.
    async fn host_links(h: &rtnetlink::Handle) -> Result<Vec<LinkMessage>> {
        h.link().get().execute().try_collect().await.map_err(nl_err("list interfaces"))
    }

    async fn link_by_name(handle: &rtnetlink::Handle, name: &str) -> Result<Option<LinkMessage>> {
        let mut s = handle.link().get().match_name(name.to_string()).execute();
        match s.try_next().await {
            Ok(l) => Ok(l),
            Err(e) if nl_errno(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(NetError::system(format!("look up {name}"), e)),
        }
    }

    async fn index_of(handle: &rtnetlink::Handle, name: &str) -> Result<u32> {
        Self::link_by_name(handle, name)
            .await?
            .map(|l| l.header.index)
            .ok_or_else(|| NetError::system_msg(format!("interface {name} does not exist")))
    }

    async fn ipv4_addrs(handle: &rtnetlink::Handle, index: u32) -> Result<Vec<(Ipv4Addr, u8)>> {
        let mut out = Vec::new();
        let mut s = handle.address().get().set_link_index_filter(index).execute();
        while let Some(msg) = s.try_next().await.map_err(nl_err("list addresses"))? {
            if msg.header.index != index {
                continue;
            }
            for a in &msg.attributes {
                if let AddressAttribute::Local(IpAddr::V4(ip)) | AddressAttribute::Address(IpAddr::V4(ip)) = a
                    && !out.contains(&(*ip, msg.header.prefix_len))
                {
                    out.push((*ip, msg.header.prefix_len));
                }
            }
        }
        Ok(out)
    }

    /// The bridge's index, and whether this call created it. An existing interface
    /// of that name must carry our tag.
    async fn find_or_create_bridge(&self, spec: &BridgeSpec) -> Result<(u32, bool)> {
        let h = &self.handle;
        if let Some(link) = Self::link_by_name(h, &spec.name).await? {
            if kind_of(&link).as_deref() != Some("bridge") {
                return Err(NetError::conflict(format!("interface {} already exists and is not a bridge", spec.name)));
            }
            return Ok((link.header.index, false));
        }
        if let Some(index) = self.take_spare(&spec.name).await {
            return Ok((index, true));
        }
        let msg = LinkBridge::new(&spec.name).mtu(spec.mtu).alias(spec.alias.clone()).link_group(spec.group).build();
        h.link().add(msg).execute().await.map_err(|e| {
            if nl_errno(&e) == Some(libc::EEXIST) {
                NetError::conflict(format!("interface {} already exists", spec.name))
            } else {
                NetError::system(format!("create bridge {}", spec.name), e)
            }
        })?;
        let idx = Self::index_of(h, &spec.name).await?;
        Ok((idx, true))
    }

    /// Tag, address, MTU, up, route_localnet.
    async fn configure_bridge(&self, spec: &BridgeSpec, index: u32) -> Result<()> {
        let h = &self.handle;
        // The alias is the ownership tag; set it again in case the kernel ignored it
        // at creation.
        h.link()
            .set(LinkUnspec::new_with_index(index).alias(spec.alias.clone()).link_group(spec.group).build())
            .execute()
            .await
            .map_err(nl_err(format!("tag {}", spec.name)))?;
        let want = (spec.gateway, spec.prefix_len);
        let have = Self::ipv4_addrs(h, index).await?;
        for (ip, plen) in &have {
            if (*ip, *plen) != want {
                let mut del = h.address().get().set_link_index_filter(index).set_address_filter(IpAddr::V4(*ip)).execute();
                while let Some(m) = del.try_next().await.map_err(nl_err("list addresses"))? {
                    h.address().del(m).execute().await.map_err(nl_err(format!("remove {ip} from {}", spec.name)))?;
                }
            }
        }
        if !have.contains(&want) {
            h.address()
                .add(index, IpAddr::V4(spec.gateway), spec.prefix_len)
                .execute()
                .await
                .map_err(nl_err(format!("add {}/{} to {}", spec.gateway, spec.prefix_len, spec.name)))?;
        }
        // Global IPv6 addresses other than the gateway's go (a reused bridge may have
        // served a dual-stack network).
        for (ip, plen) in Self::ipv6_addrs(h, index).await? {
            if spec.gateway6 != Some((ip, plen)) {
                let mut del = h.address().get().set_link_index_filter(index).set_address_filter(IpAddr::V6(ip)).execute();
                while let Some(m) = del.try_next().await.map_err(nl_err("list addresses"))? {
                    h.address().del(m).execute().await.map_err(nl_err(format!("remove {ip} from {}", spec.name)))?;
                }
            }
        }
        if let Some((gw6, plen6)) = spec.gateway6 {
            write_sysctl(&format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", spec.name), "0")?;
            for (ip, plen) in Self::ipv6_addrs(h, index).await? {
                if (ip, plen) != (gw6, plen6) {
                    let mut del = h.address().get().set_link_index_filter(index).set_address_filter(IpAddr::V6(ip)).execute();
                    while let Some(m) = del.try_next().await.map_err(nl_err("list addresses"))? {
                        h.address().del(m).execute().await.map_err(nl_err(format!("remove {ip} from {}", spec.name)))?;
                    }
                }
            }
            add_address(h, index, IpAddr::V6(gw6), plen6, &spec.name).await?;
        }
        h.link()
            .set(LinkUnspec::new_with_index(index).mtu(spec.mtu).up().build())
            .execute()
            .await
            .map_err(nl_err(format!("set {} up", spec.name)))?;
        // Published ports must answer on 127.0.0.1: DNAT from loopback into the bridge
        // is only routed when route_localnet is on for the bridge.
        write_sysctl(&format!("/proc/sys/net/ipv4/conf/{}/route_localnet", spec.name), "1")
    }

    /// Global IPv6 addresses of an interface (link-local ones are the kernel's).
    async fn ipv6_addrs(handle: &rtnetlink::Handle, index: u32) -> Result<Vec<(Ipv6Addr, u8)>> {
        let mut out = Vec::new();
        let mut s = handle.address().get().set_link_index_filter(index).execute();
        while let Some(msg) = s.try_next().await.map_err(nl_err("list addresses"))? {
            if msg.header.index != index {
                continue;
            }
            for a in &msg.attributes {
                if let AddressAttribute::Address(IpAddr::V6(ip)) = a
                    && (ip.segments()[0] & 0xffc0) != 0xfe80
                    && !out.contains(&(*ip, msg.header.prefix_len))
                {
                    out.push((*ip, msg.header.prefix_len));
                }
            }
        }
        Ok(out)
    }

    async fn configure_peer(handle: &rtnetlink::Handle, ifname: &str, spec: &PeerAddrs) -> Result<()> {
        let idx = Self::index_of(handle, ifname).await?;
        if let Some((ip6, plen6)) = spec.ip6 {
            add_address(handle, idx, IpAddr::V6(ip6), plen6, ifname).await?;
        }
        for ll in &spec.link_local {
            let plen = if ll.is_ipv4() { 16 } else { 64 };
            add_address(handle, idx, *ll, plen, ifname).await?;
        }
        handle
            .address()
            .add(idx, IpAddr::V4(spec.ip), spec.prefix_len)
            .execute()
            .await
            .map_err(nl_err(format!("add {}/{} to {ifname}", spec.ip, spec.prefix_len)))?;
        handle
            .link()
            .set(LinkUnspec::new_with_index(idx).up().build())
            .execute()
            .await
            .map_err(nl_err(format!("set {ifname} up")))?;
        if let Some(gw) = spec.gateway {
            let route = RouteMessageBuilder::<Ipv4Addr>::new().gateway(gw).output_interface(idx).build();
            handle
                .route()
                .add(route)
                .replace()
                .execute()
                .await
                .map_err(nl_err(format!("add default route via {gw}")))?;
        }
        if let Some(gw6) = spec.gateway6 {
            let route = RouteMessageBuilder::<Ipv6Addr>::new().gateway(gw6).output_interface(idx).build();
            handle
                .route()
                .add(route)
                .replace()
                .execute()
                .await
                .map_err(nl_err(format!("add default route via {gw6}")))?;
        }
        Ok(())
    }
}

/// The netlink message creating a macvlan/ipvlan interface `name` on `parent` (`mtu`
/// 0: the parent's).
fn vlan_link_message(
    kind: VlanKind,
    name: &str,
    parent: u32,
    mode: &str,
    mac: Option<[u8; 6]>,
    mtu: u32,
    netns_fd: Option<std::os::fd::RawFd>,
) -> Result<LinkMessage> {
    let msg = match kind {
        VlanKind::Macvlan => {
            let mode = match mode {
                "" | "bridge" => MacVlanMode::Bridge,
                "private" => MacVlanMode::Private,
                "vepa" => MacVlanMode::Vepa,
                "passthru" => MacVlanMode::Passthrough,
                other => return Err(NetError::invalid(format!("unknown macvlan mode {other:?}"))),
            };
            let mut b = LinkMessageBuilder::<LinkMacVlan>::new(name).link(parent).mode(mode);
            if mtu > 0 {
                b = b.mtu(mtu);
            }
            if let Some(mac) = mac {
                b = b.address(mac.to_vec());
            }
            if let Some(fd) = netns_fd {
                b = b.setns_by_fd(fd);
            }
            b.build()
        }
        VlanKind::Ipvlan => {
            let mode = match mode {
                "" | "l2" => IpVlanMode::L2,
                "l3" => IpVlanMode::L3,
                "l3s" => IpVlanMode::L3S,
                other => return Err(NetError::invalid(format!("unknown ipvlan mode {other:?}"))),
            };
            let mut b = LinkMessageBuilder::<LinkIpVlan>::new(name).link(parent).mode(mode);
            if mtu > 0 {
                b = b.mtu(mtu);
            }
            if let Some(fd) = netns_fd {
                b = b.setns_by_fd(fd);
            }
            b.build()
        }
    };
    Ok(msg)
}

/// Adds an address (if it is not there yet). IPv6 ones skip duplicate address
/// detection: on a bridge berth manages, no one else has them, and a tentative
/// address would be unusable for a second or two after start.
async fn add_address(handle: &rtnetlink::Handle, index: u32, ip: IpAddr, plen: u8, ifname: &str) -> Result<()> {
    let mut req = handle.address().add(index, ip, plen);
    if ip.is_ipv6() {
        req.message_mut().attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    match req.execute().await {
        Ok(()) => Ok(()),
        Err(e) if nl_errno(&e) == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(NetError::system(format!("add {ip}/{plen} to {ifname}"), e)),
    }
}

impl Dataplane for LinuxDataplane {
    type PortGuard = OwnedFd;
    type Claim = std::os::unix::net::UnixDatagram;

    async fn ensure_bridge(&self, spec: &BridgeSpec) -> Result<()> {
        let (index, created) = self.find_or_create_bridge(spec).await?;
        let result = self.configure_bridge(spec, index).await;
        if result.is_err() && created {
            // A bridge made by this call that could not be set up goes again.
            let _ = self.handle.link().del(index).execute().await;
        }
        result
    }

    async fn delete_link(&self, name: &str) -> Result<()> {
        let Some(link) = Self::link_by_name(&self.handle, name).await? else { return Ok(()) };
        match self.handle.link().del(link.header.index).execute().await {
            Ok(()) => Ok(()),
            Err(e) if nl_errno(&e) == Some(libc::ENODEV) => Ok(()),
            Err(e) => Err(NetError::system(format!("delete {name}"), e)),
        }
    }

    async fn drop_spares(&self) -> Result<()> {
        let spares: Vec<u32> = std::mem::take(&mut *self.spares.lock().unwrap_or_else(|p| p.into_inner()));
        for index in spares {
            match self.handle.link().del(index).execute().await {
                Ok(()) => {}
                Err(e) if nl_errno(&e) == Some(libc::ENODEV) => {}
                Err(e) => return Err(NetError::system("delete a spare bridge", e)),
            }
        }
        Ok(())
    }

    async fn retire_link(&self, name: &str) -> Result<()> {
        let Some(link) = Self::link_by_name(&self.handle, name).await? else { return Ok(()) };
        let index = link.header.index;
        let retired = format!("bx{}", crate::ids::short_random_hex(12));
        let down = self.handle.link().set(LinkUnspec::new_with_index(index).down().build()).execute().await;
        let renamed = match down {
            Ok(()) => self.handle.link().set(LinkUnspec::new_with_index(index).name(retired.clone()).build()).execute().await,
            Err(e) => Err(e),
        };
        if renamed.is_err() {
            // Not renamed: delete it the slow way rather than leave it holding the name.
            return self.delete_link(name).await;
        }
        // Its addresses go with it (a down bridge keeps its IPv4 ones).
        let mut addrs = self.handle.address().get().set_link_index_filter(index).execute();
        while let Ok(Some(m)) = addrs.try_next().await {
            if m.header.index == index {
                let _ = self.handle.address().del(m).execute().await;
            }
        }
        {
            let mut spares = self.spares.lock().unwrap_or_else(|p| p.into_inner());
            if spares.len() < SPARE_BRIDGES {
                spares.push(index);
                return Ok(());
            }
        }
        self.delete_link_in_background(&retired);
        Ok(())
    }

    fn delete_link_in_background(&self, name: &str) {
        let handle = self.handle.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            let result = match Self::link_by_name(&handle, &name).await {
                Ok(Some(link)) => handle.link().del(link.header.index).execute().await.or_else(|e| {
                    if nl_errno(&e) == Some(libc::ENODEV) { Ok(()) } else { Err(NetError::system(format!("delete {name}"), e)) }
                }),
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                tracing::warn!("{e}");
            }
        });
    }

    async fn tagged_links(&self, prefix: &str) -> Result<Vec<TaggedLink>> {
        let links = Self::host_links(&self.handle).await?;
        Ok(links
            .iter()
            .filter_map(|link| match (alias_of(link), name_of(link)) {
                (Some(alias), Some(name)) if alias.starts_with(prefix) => Some(TaggedLink { name: name.to_string(), alias: alias.to_string() }),
                _ => None,
            })
            .collect())
    }

    async fn untagged_bridges(&self, group: u32) -> Result<Vec<String>> {
        let links = Self::host_links(&self.handle).await?;
        Ok(links
            .iter()
            .filter(|link| link.attributes.iter().any(|a| matches!(a, LinkAttribute::Group(g) if *g == group)))
            .filter(|link| alias_of(link).is_none_or(str::is_empty) && kind_of(link).as_deref() == Some("bridge"))
            .filter_map(|link| name_of(link).map(str::to_string))
            .collect())
    }

    async fn bridge_veths(&self, bridges: &[String]) -> Result<Vec<String>> {
        let mut index = std::collections::HashMap::new();
        let mut veths = Vec::new();
        for link in Self::host_links(&self.handle).await? {
            let Some(name) = name_of(&link) else { continue };
            if bridges.iter().any(|b| b == name) {
                index.insert(link.header.index, ());
            }
            let controller = link.attributes.iter().find_map(|a| match a {
                LinkAttribute::Controller(c) => Some(*c),
                _ => None,
            });
            if let Some(c) = controller
                && kind_of(&link).as_deref() == Some("veth")
            {
                veths.push((c, name.to_string()));
            }
        }
        Ok(veths.into_iter().filter(|(c, _)| index.contains_key(c)).map(|(_, n)| n).collect())
    }

    async fn create_veth(&self, spec: &VethSpec) -> Result<()> {
        let h = &self.handle;
        let bridge = Self::index_of(h, &spec.bridge).await?;
        let ns = std::fs::File::open(&spec.netns)
            .map_err(|e| NetError::system(format!("open {}", spec.netns.display()), e))?;
        use std::os::fd::AsRawFd;
        // The peer is created directly inside the container's namespace under its final
        // name, so no temporary name can clash with a host interface.
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(spec.ifname.clone())
            .address(spec.mac.to_vec())
            .mtu(spec.mtu)
            .setns_by_fd(ns.as_raw_fd())
            .build();
        let msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(spec.host_name.clone())
            .mtu(spec.mtu)
            .controller(bridge)
            .alias(spec.alias.clone())
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        h.link().add(msg).execute().await.map_err(|e| match nl_errno(&e) {
            Some(libc::EEXIST) => NetError::conflict(format!(
                "interface {} or {} already exists",
                spec.host_name, spec.ifname
            )),
            _ => NetError::system(format!("create veth {}", spec.host_name), e),
        })?;
        drop(ns);
        let finish = async {
            let idx = Self::index_of(h, &spec.host_name).await?;
            // The alias (how a restart finds its endpoints' veths) is set again here: the
            // kernel ignores IFLA_IFALIAS in a link's creation.
            h.link()
                .set(LinkUnspec::new_with_index(idx).alias(spec.alias.clone()).up().build())
                .execute()
                .await
                .map_err(nl_err(format!("set {} up", spec.host_name)))?;
            // Hairpin: with br_netfilter a DNATed packet whose new destination is on
            // the same bridge is bridged, not routed, and may have to leave by the
            // port it came in on (a container reaching its own published port).
            h.link()
                .set_port(LinkBridgePort::new(idx).hairpin(true).build())
                .execute()
                .await
                .map_err(nl_err(format!("set hairpin on {}", spec.host_name)))?;
            let inner = netns::netlink_in(&spec.netns).await?;
            Self::configure_peer(&inner, &spec.ifname, &spec.addrs()).await
        };
        if let Err(e) = finish.await {
            // Deleting one end removes both: nothing is left behind.
            let _ = self.delete_link(&spec.host_name).await;
            return Err(e);
        }
        Ok(())
    }

    async fn set_default_route(&self, netns_path: &Path, ifname: &str, gateway: Ipv4Addr, gateway6: Option<Ipv6Addr>) -> Result<()> {
        let inner = netns::netlink_in(netns_path).await?;
        let idx = Self::index_of(&inner, ifname).await?;
        let route = RouteMessageBuilder::<Ipv4Addr>::new().gateway(gateway).output_interface(idx).build();
        inner
            .route()
            .add(route)
            .replace()
            .execute()
            .await
            .map_err(nl_err(format!("set default route via {gateway}")))?;
        if let Some(gw6) = gateway6 {
            let route = RouteMessageBuilder::<Ipv6Addr>::new().gateway(gw6).output_interface(idx).build();
            inner.route().add(route).replace().execute().await.map_err(nl_err(format!("set default route via {gw6}")))?;
        }
        Ok(())
    }

    async fn host_routes6(&self) -> Result<Vec<Ipv6Net>> {
        let mut out = Vec::new();
        let mut s = self.handle.route().get(RouteMessageBuilder::<Ipv6Addr>::new().build()).execute();
        while let Some(r) = s.try_next().await.map_err(nl_err("list routes"))? {
            let plen = r.header.destination_prefix_length;
            if r.header.kind != RouteType::Unicast || plen == 0 || r.header.table != 254 {
                continue;
            }
            for a in &r.attributes {
                if let RouteAttribute::Destination(RouteAddress::Inet6(ip)) = a
                    && let Ok(net) = Ipv6Net::new(*ip, plen)
                    && (ip.segments()[0] & 0xffc0) != 0xfe80
                {
                    out.push(net.trunc());
                }
            }
        }
        Ok(out)
    }

    async fn host_routes(&self) -> Result<Vec<Ipv4Net>> {
        let mut out = Vec::new();
        let mut s = self.handle.route().get(RouteMessageBuilder::<Ipv4Addr>::new().build()).execute();
        while let Some(r) = s.try_next().await.map_err(nl_err("list routes"))? {
            let plen = r.header.destination_prefix_length;
            if r.header.kind != RouteType::Unicast || plen == 0 || r.header.table != 254 {
                continue;
            }
            for a in &r.attributes {
                if let RouteAttribute::Destination(RouteAddress::Inet(ip)) = a
                    && let Ok(net) = Ipv4Net::new(*ip, plen)
                {
                    out.push(net.trunc());
                }
            }
        }
        Ok(out)
    }

    async fn apply_nft(&self, script: String) -> Result<()> {
        firewall::run_nft(&script).await
    }

    fn apply_nft_detached(&self, script: String) -> impl Future<Output = Result<()>> + Send + 'static {
        async move { firewall::run_nft(&script).await }
    }

    async fn make_parent(&self, name: &str, alias: &str, what: &ParentToMake) -> Result<()> {
        let h = &self.handle;
        if Self::link_by_name(h, name).await?.is_some() {
            return Ok(());
        }
        let msg = match what {
            ParentToMake::Vlan { base, id } => {
                let base_idx = Self::link_by_name(h, base).await?.map(|l| l.header.index).ok_or_else(|| {
                    NetError::invalid(format!("-o parent interface was not found on the host: {base}"))
                })?;
                LinkVlan::new(name, base_idx, *id).alias(alias.to_string()).up().build()
            }
            ParentToMake::Dummy => LinkDummy::new(name).alias(alias.to_string()).up().build(),
        };
        h.link().add(msg).execute().await.map_err(|e| match nl_errno(&e) {
            Some(libc::EOPNOTSUPP) => NetError::invalid(match what {
                ParentToMake::Vlan { .. } => format!("cannot create {name}: this kernel has no 802.1q VLAN support (CONFIG_VLAN_8021Q)"),
                ParentToMake::Dummy => format!("cannot create {name}: this kernel has no dummy interfaces (CONFIG_DUMMY); give -o parent="),
            }),
            _ => NetError::system(format!("create {name}"), e),
        })?;
        // Tag it (again): the alias is what marks it ours.
        let idx = Self::index_of(h, name).await?;
        h.link().set(LinkUnspec::new_with_index(idx).alias(alias.to_string()).up().build()).execute().await.map_err(nl_err(format!("set {name} up")))
    }

    async fn probe_vlan(&self, kind: VlanKind, parent: &str, mode: &str) -> Result<()> {
        let h = &self.handle;
        let parent_idx = Self::index_of(h, parent).await?;
        let name = format!("bp{}", crate::ids::short_random_hex(8));
        let msg = vlan_link_message(kind, &name, parent_idx, mode, None, 0, None)?;
        match h.link().add(msg).execute().await {
            Ok(()) => self.delete_link(&name).await,
            Err(e) if nl_errno(&e) == Some(libc::EOPNOTSUPP) => Err(NetError::invalid(format!(
                "{0} networks are not available: this kernel has no {0} support (CONFIG_{1})",
                kind.as_str(),
                kind.as_str().to_uppercase()
            ))),
            Err(e) => Err(NetError::invalid(format!("cannot create {} interfaces on {parent}: {e}", kind.as_str()))),
        }
    }

    async fn create_vlan_link(&self, spec: &VlanLinkSpec) -> Result<()> {
        let h = &self.handle;
        let parent_idx = Self::index_of(h, &spec.parent).await?;
        let ns = std::fs::File::open(&spec.netns).map_err(|e| NetError::system(format!("open {}", spec.netns.display()), e))?;
        use std::os::fd::AsRawFd;
        let msg = vlan_link_message(spec.kind, &spec.ifname, parent_idx, &spec.mode, spec.mac, spec.mtu, Some(ns.as_raw_fd()))?;
        h.link().add(msg).execute().await.map_err(|e| match nl_errno(&e) {
            Some(libc::EEXIST) => NetError::conflict(format!("interface {} already exists", spec.ifname)),
            _ => NetError::system(format!("create {} interface on {}", spec.kind.as_str(), spec.parent), e),
        })?;
        drop(ns);
        let inner = netns::netlink_in(&spec.netns).await?;
        if let Err(e) = Self::configure_peer(&inner, &spec.ifname, &spec.addrs).await {
            let _ = self.delete_link_in(&spec.netns, &spec.ifname).await;
            return Err(e);
        }
        Ok(())
    }

    async fn delete_link_in(&self, netns_path: &Path, ifname: &str) -> Result<()> {
        if !netns::is_netns(netns_path) {
            return Ok(());
        }
        let inner = netns::netlink_in(netns_path).await?;
        let Some(link) = Self::link_by_name(&inner, ifname).await? else { return Ok(()) };
        match inner.link().del(link.header.index).execute().await {
            Ok(()) => Ok(()),
            Err(e) if nl_errno(&e) == Some(libc::ENODEV) => Ok(()),
            Err(e) => Err(NetError::system(format!("delete {ifname}"), e)),
        }
    }

    async fn link_info(&self, name: &str) -> Result<Option<LinkInfo>> {
        let Some(link) = Self::link_by_name(&self.handle, name).await? else { return Ok(None) };
        let index = link.header.index;
        let mut has_ports = false;
        let mut s = self.handle.link().get().execute();
        while let Some(l) = s.try_next().await.map_err(nl_err("list interfaces"))? {
            if l.attributes.iter().any(|a| matches!(a, LinkAttribute::Controller(c) if *c == index)) {
                has_ports = true;
                break;
            }
        }
        Ok(Some(LinkInfo { alias: alias_of(&link).map(str::to_string), kind: kind_of(&link), has_ports }))
    }

    fn claim_table(&self, table: &str) -> Result<std::os::unix::net::UnixDatagram> {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(claim_name(table).as_bytes())
            .map_err(|e| NetError::system("abstract socket name", e))?;
        std::os::unix::net::UnixDatagram::bind_addr(&addr).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                NetError::conflict(format!(
                    "another berth daemon is running with nftables table {table:?} here: give this one its own --nft-table and --bridge"
                ))
            } else {
                NetError::system("claim the nftables table", e)
            }
        })
    }

    fn table_claimed(&self, table: &str) -> bool {
        use std::os::linux::net::SocketAddrExt;
        let Ok(addr) = std::os::unix::net::SocketAddr::from_abstract_name(claim_name(table).as_bytes()) else {
            return false;
        };
        // Binding succeeds only when nobody holds the name; the probe closes at once.
        matches!(std::os::unix::net::UnixDatagram::bind_addr(&addr), Err(e) if e.kind() == std::io::ErrorKind::AddrInUse)
    }

    async fn run_tool(&self, prog: &str, args: &[&str], stdin: Option<&str>) -> Result<ToolOutput> {
        tools::run(prog, args, stdin).await
    }

    fn xtables_facts(&self, family: Family) -> XtablesFacts {
        let (plain, names) = match family {
            Family::V4 => ("iptables", "/proc/net/ip_tables_names"),
            Family::V6 => ("ip6tables", "/proc/net/ip6_tables_names"),
        };
        let default = tools::find(plain).and_then(|p| std::fs::canonicalize(p).ok()).and_then(|p| {
            let n = p.file_name()?.to_string_lossy().into_owned();
            if n.contains("nft") {
                Some(Backend::Nft)
            } else if n.contains("legacy") {
                Some(Backend::Legacy)
            } else {
                None
            }
        });
        XtablesFacts {
            nft_tool: tools::find(&crate::iptables::tool(Backend::Nft, family)).is_some(),
            legacy_tool: tools::find(&crate::iptables::tool(Backend::Legacy, family)).is_some(),
            default,
            legacy_filter: std::fs::read_to_string(names).is_ok_and(|t| t.lines().any(|l| l.trim() == "filter")),
            nft_filter: false,
        }
    }

    fn sysctl(&self, key: &str) -> Option<String> {
        std::fs::read_to_string(format!("/proc/sys/{key}")).ok().map(|s| s.trim().to_string())
    }

    fn set_sysctl(&self, key: &str, value: &str) -> Result<()> {
        write_sysctl(&format!("/proc/sys/{key}"), value)
    }

    fn reserve_port(&self, ip: IpAddr, port: u16, proto: Proto) -> std::io::Result<OwnedFd> {
        use rustix::net::{AddressFamily, SocketFlags, SocketType};
        let ty = match proto {
            Proto::Tcp => SocketType::STREAM,
            Proto::Udp => SocketType::DGRAM,
        };
        match ip {
            IpAddr::V4(v4) => {
                let fd = rustix::net::socket_with(AddressFamily::INET, ty, SocketFlags::CLOEXEC, None)?;
                // No SO_REUSEADDR and no listen(): the port is held, not served. DNAT
                // rewrites the traffic before it could reach this socket.
                rustix::net::bind(&fd, &SocketAddrV4::new(v4, port))?;
                Ok(fd)
            }
            IpAddr::V6(v6) => {
                let fd = rustix::net::socket_with(AddressFamily::INET6, ty, SocketFlags::CLOEXEC, None)?;
                // IPv6 only: [::] must not take the IPv4 port too.
                rustix::net::sockopt::set_ipv6_v6only(&fd, true)?;
                rustix::net::bind(&fd, &std::net::SocketAddrV6::new(v6, port, 0, 0))?;
                if proto == Proto::Tcp {
                    rustix::net::listen(&fd, 1024)?;
                }
                Ok(fd)
            }
        }
    }

    fn start_proxy(&self, guard: &OwnedFd, proto: Proto, target: SocketAddr) -> Result<Option<crate::proxy::Proxy>> {
        let fd = guard.try_clone().map_err(|e| NetError::system("duplicate a port's socket", e))?;
        crate::proxy::Proxy::start(fd, proto, target).map(Some).map_err(|e| NetError::system("start the port proxy", e))
    }

    async fn dns_sockets(&self, netns_path: &Path) -> Result<(std::net::UdpSocket, std::net::TcpListener)> {
        netns::run_in_netns(netns_path, || {
            let addr = SocketAddr::from((crate::files::INTERNAL_RESOLVER, 53));
            let udp = std::net::UdpSocket::bind(addr)?;
            let tcp = std::net::TcpListener::bind(addr)?;
            Ok((udp, tcp))
        })
        .await
    }

    fn enable_ip_forward(&self) -> Result<()> {
        write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")
    }

    fn netns_exists(&self, path: &Path) -> bool {
        netns::is_netns(path)
    }

    fn host_has_ipv6(&self) -> bool {
        Path::new("/proc/net/if_inet6").exists()
    }
}

// ---------------------------------------------------------------------------------
// In memory.
// ---------------------------------------------------------------------------------

/// What the recording dataplane holds; tests inspect it.
#[derive(Debug, Default, Clone)]
pub struct RecordedState {
    /// Bridges by name.
    pub bridges: BTreeMap<String, BridgeSpec>,
    /// Veth pairs by host-side name.
    pub veths: BTreeMap<String, VethSpec>,
    /// Every nft script applied, oldest first.
    pub nft_scripts: Vec<String>,
    /// Reserved (ip, port, proto).
    pub ports: Vec<(IpAddr, u16, Proto)>,
    /// Default routes set per namespace: (ifname, gateway).
    pub default_routes: BTreeMap<PathBuf, (String, Ipv4Addr)>,
    pub ip_forward: bool,
    /// Interfaces someone else made (name → what they look like).
    pub foreign_links: BTreeMap<String, LinkInfo>,
    /// nft table names held by "other live daemons".
    pub claimed_tables: std::collections::BTreeSet<String>,
    /// Tool runs: program, arguments, stdin.
    pub tool_runs: Vec<(String, Vec<String>, Option<String>)>,
    /// What `xtables_facts` answers (the same for both families).
    pub xtables: XtablesFacts,
    pub sysctls: BTreeMap<String, String>,
    /// What `host_has_ipv6` answers (default: no).
    pub ipv6: bool,
    /// Parents made for macvlan/ipvlan networks: name → tag.
    pub parents: BTreeMap<String, String>,
    /// macvlan/ipvlan interfaces by (namespace, name).
    pub vlan_links: BTreeMap<(PathBuf, String), VlanLinkSpec>,
    /// Drivers the "kernel" lacks ("ipvlan").
    pub unsupported: Vec<String>,
    /// Tools whose next run fails.
    pub failing_tools: Vec<String>,
}

/// An in-memory dataplane for tests without root. Clones share one state, so a test
/// can "restart" a manager over the same kernel. Namespaces are any existing path.
#[derive(Debug, Default, Clone)]
pub struct RecordingDataplane {
    state: Arc<Mutex<RecordedState>>,
    ports: Arc<Mutex<Vec<(IpAddr, u16, Proto)>>>,
    host_routes: Arc<Mutex<Vec<Ipv4Net>>>,
    fail_next_veth: Arc<Mutex<bool>>,
}

/// A reserved port in the recording dataplane; released on drop.
#[derive(Debug)]
pub struct RecordedPort {
    owner: Weak<Mutex<Vec<(IpAddr, u16, Proto)>>>,
    key: (IpAddr, u16, Proto),
}

impl Drop for RecordedPort {
    fn drop(&mut self) {
        if let Some(list) = self.owner.upgrade() {
            let mut l = list.lock().unwrap_or_else(|p| p.into_inner());
            l.retain(|k| *k != self.key);
        }
    }
}

impl RecordingDataplane {
    /// A copy of what the "kernel" holds now.
    pub fn snapshot(&self) -> RecordedState {
        let mut s = self.lock().clone();
        s.ports = self.ports.lock().unwrap_or_else(|p| p.into_inner()).clone();
        s
    }

    /// Pretends the host has these routes (for subnet allocation).
    pub fn set_host_routes(&self, routes: Vec<Ipv4Net>) {
        *self.host_routes.lock().unwrap_or_else(|p| p.into_inner()) = routes;
    }

    /// Makes the next veth creation fail, to exercise rollbacks.
    pub fn fail_next_veth(&self) {
        *self.fail_next_veth.lock().unwrap_or_else(|p| p.into_inner()) = true;
    }

    /// Adds an interface as if a crashed daemon had left it behind.
    pub fn inject_veth(&self, spec: VethSpec) {
        self.lock().veths.insert(spec.host_name.clone(), spec);
    }

    /// Adds an interface as if someone else had made it.
    pub fn inject_foreign_link(&self, name: &str, info: LinkInfo) {
        self.lock().foreign_links.insert(name.to_string(), info);
    }

    /// Makes the next run of `prog` fail.
    pub fn fail_tool_once(&self, prog: &str) {
        self.lock().failing_tools.push(prog.to_string());
    }

    /// Pretends the "kernel" lacks a driver ("ipvlan").
    pub fn lack_driver(&self, kind: &str) {
        self.lock().unsupported.push(kind.to_string());
    }

    /// Pretends a live daemon holds `table`.
    pub fn claim_table_elsewhere(&self, table: &str) {
        self.lock().claimed_tables.insert(table.to_string());
    }

    /// What `xtables_facts` will answer.
    pub fn set_xtables(&self, facts: XtablesFacts) {
        self.lock().xtables = facts;
    }

    pub fn set_ipv6(&self, on: bool) {
        self.lock().ipv6 = on;
    }

    pub fn set_sysctl_value(&self, key: &str, value: &str) {
        self.lock().sysctls.insert(key.to_string(), value.to_string());
    }

    /// Removes a veth as if its namespace had died.
    pub fn vanish_veth(&self, name: &str) {
        self.lock().veths.remove(name);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RecordedState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A table claim in the recording dataplane; released on drop.
#[derive(Debug)]
pub struct RecordedClaim {
    owner: Weak<Mutex<RecordedState>>,
    table: String,
}

impl Drop for RecordedClaim {
    fn drop(&mut self) {
        if let Some(s) = self.owner.upgrade() {
            s.lock().unwrap_or_else(|p| p.into_inner()).claimed_tables.remove(&self.table);
        }
    }
}

impl Dataplane for RecordingDataplane {
    type PortGuard = RecordedPort;
    type Claim = RecordedClaim;

    async fn ensure_bridge(&self, spec: &BridgeSpec) -> Result<()> {
        let mut s = self.lock();
        if let Some(f) = s.foreign_links.get(&spec.name) {
            if f.kind.as_deref() != Some("bridge") {
                return Err(NetError::conflict(format!("interface {} already exists and is not a bridge", spec.name)));
            }
            s.foreign_links.remove(&spec.name);
        }
        s.bridges.insert(spec.name.clone(), spec.clone());
        Ok(())
    }

    async fn make_parent(&self, name: &str, alias: &str, _what: &ParentToMake) -> Result<()> {
        let mut s = self.lock();
        if !s.foreign_links.contains_key(name) && !s.parents.contains_key(name) {
            s.parents.insert(name.to_string(), alias.to_string());
        }
        Ok(())
    }

    async fn probe_vlan(&self, kind: VlanKind, parent: &str, _mode: &str) -> Result<()> {
        let s = self.lock();
        if !s.foreign_links.contains_key(parent) && !s.parents.contains_key(parent) {
            return Err(NetError::system_msg(format!("interface {parent} does not exist")));
        }
        if s.unsupported.contains(&kind.as_str().to_string()) {
            return Err(NetError::invalid(format!("{} networks are not available", kind.as_str())));
        }
        Ok(())
    }

    async fn create_vlan_link(&self, spec: &VlanLinkSpec) -> Result<()> {
        let mut s = self.lock();
        if let Some(gw) = spec.addrs.gateway {
            s.default_routes.insert(spec.netns.clone(), (spec.ifname.clone(), gw));
        }
        s.vlan_links.insert((spec.netns.clone(), spec.ifname.clone()), spec.clone());
        Ok(())
    }

    async fn delete_link_in(&self, netns: &Path, ifname: &str) -> Result<()> {
        self.lock().vlan_links.remove(&(netns.to_path_buf(), ifname.to_string()));
        Ok(())
    }

    async fn link_info(&self, name: &str) -> Result<Option<LinkInfo>> {
        let s = self.lock();
        if let Some(alias) = s.parents.get(name) {
            return Ok(Some(LinkInfo { alias: Some(alias.clone()), kind: Some("dummy".into()), has_ports: false }));
        }
        if let Some(b) = s.bridges.get(name) {
            let has_ports = s.veths.values().any(|v| v.bridge == name);
            return Ok(Some(LinkInfo { alias: Some(b.alias.clone()), kind: Some("bridge".into()), has_ports }));
        }
        if let Some(v) = s.veths.get(name) {
            return Ok(Some(LinkInfo { alias: Some(v.alias.clone()), kind: Some("veth".into()), has_ports: false }));
        }
        Ok(s.foreign_links.get(name).cloned())
    }

    fn claim_table(&self, table: &str) -> Result<RecordedClaim> {
        let mut s = self.lock();
        if !s.claimed_tables.insert(table.to_string()) {
            return Err(NetError::conflict(format!("another berth daemon is running with nftables table {table:?} here")));
        }
        Ok(RecordedClaim { owner: Arc::downgrade(&self.state), table: table.to_string() })
    }

    fn table_claimed(&self, table: &str) -> bool {
        self.lock().claimed_tables.contains(table)
    }

    async fn run_tool(&self, prog: &str, args: &[&str], stdin: Option<&str>) -> Result<ToolOutput> {
        let mut s = self.lock();
        s.tool_runs.push((prog.to_string(), args.iter().map(|a| a.to_string()).collect(), stdin.map(str::to_string)));
        if let Some(i) = s.failing_tools.iter().position(|t| t == prog) {
            s.failing_tools.remove(i);
            return Ok(ToolOutput { success: false, stderr: "injected failure".into(), ..Default::default() });
        }
        Ok(ToolOutput { success: true, ..Default::default() })
    }

    fn xtables_facts(&self, _family: Family) -> XtablesFacts {
        self.lock().xtables.clone()
    }

    fn sysctl(&self, key: &str) -> Option<String> {
        self.lock().sysctls.get(key).cloned()
    }

    fn set_sysctl(&self, key: &str, value: &str) -> Result<()> {
        let mut s = self.lock();
        if !s.sysctls.contains_key(key) {
            return Err(NetError::system_msg(format!("no sysctl {key}")));
        }
        s.sysctls.insert(key.to_string(), value.to_string());
        Ok(())
    }

    async fn delete_link(&self, name: &str) -> Result<()> {
        let mut s = self.lock();
        s.parents.remove(name);
        s.bridges.remove(name);
        if let Some(v) = s.veths.remove(name) {
            s.default_routes.retain(|ns, (ifname, _)| !(ns == &v.netns && ifname == &v.ifname));
        }
        Ok(())
    }

    async fn retire_link(&self, name: &str) -> Result<()> {
        self.delete_link(name).await
    }

    async fn drop_spares(&self) -> Result<()> {
        Ok(())
    }

    fn delete_link_in_background(&self, name: &str) {
        let mut s = self.lock();
        s.bridges.remove(name);
        if let Some(v) = s.veths.remove(name) {
            s.default_routes.retain(|ns, (ifname, _)| !(ns == &v.netns && ifname == &v.ifname));
        }
    }

    async fn tagged_links(&self, prefix: &str) -> Result<Vec<TaggedLink>> {
        let s = self.lock();
        let bridges = s.bridges.values().map(|b| TaggedLink { name: b.name.clone(), alias: b.alias.clone() });
        let veths = s.veths.values().map(|v| TaggedLink { name: v.host_name.clone(), alias: v.alias.clone() });
        let parents = s.parents.iter().map(|(n, a)| TaggedLink { name: n.clone(), alias: a.clone() });
        Ok(bridges.chain(veths).chain(parents).filter(|l| l.alias.starts_with(prefix)).collect())
    }

    async fn create_veth(&self, spec: &VethSpec) -> Result<()> {
        {
            let mut fail = self.fail_next_veth.lock().unwrap_or_else(|p| p.into_inner());
            if *fail {
                *fail = false;
                return Err(NetError::system_msg("injected veth failure"));
            }
        }
        let mut s = self.lock();
        if !s.bridges.contains_key(&spec.bridge) {
            return Err(NetError::system_msg(format!("interface {} does not exist", spec.bridge)));
        }
        let clash = s.veths.contains_key(&spec.host_name)
            || s.veths.values().any(|v| v.netns == spec.netns && v.ifname == spec.ifname);
        if clash {
            return Err(NetError::conflict(format!("interface {} already exists", spec.host_name)));
        }
        if let Some(gw) = spec.gateway {
            s.default_routes.insert(spec.netns.clone(), (spec.ifname.clone(), gw));
        }
        s.veths.insert(spec.host_name.clone(), spec.clone());
        Ok(())
    }

    async fn set_default_route(&self, netns: &Path, ifname: &str, gateway: Ipv4Addr, _gateway6: Option<Ipv6Addr>) -> Result<()> {
        self.lock().default_routes.insert(netns.to_path_buf(), (ifname.to_string(), gateway));
        Ok(())
    }

    async fn host_routes6(&self) -> Result<Vec<Ipv6Net>> {
        Ok(Vec::new())
    }

    async fn host_routes(&self) -> Result<Vec<Ipv4Net>> {
        Ok(self.host_routes.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    async fn apply_nft(&self, script: String) -> Result<()> {
        self.lock().nft_scripts.push(script);
        Ok(())
    }

    fn apply_nft_detached(&self, script: String) -> impl Future<Output = Result<()>> + Send + 'static {
        let state = self.state.clone();
        async move {
            state.lock().unwrap_or_else(|p| p.into_inner()).nft_scripts.push(script);
            Ok(())
        }
    }

    fn start_proxy(&self, _guard: &RecordedPort, _proto: Proto, _target: SocketAddr) -> Result<Option<crate::proxy::Proxy>> {
        Ok(None)
    }

    fn reserve_port(&self, ip: IpAddr, port: u16, proto: Proto) -> std::io::Result<RecordedPort> {
        let list = self.ports.clone();
        let mut l = list.lock().unwrap_or_else(|p| p.into_inner());
        let same_family = |a: &IpAddr| a.is_ipv4() == ip.is_ipv4();
        let clash = l.iter().any(|(i, p, pr)| {
            *p == port && *pr == proto && same_family(i) && (*i == ip || i.is_unspecified() || ip.is_unspecified())
        });
        if clash {
            return Err(std::io::Error::from_raw_os_error(libc::EADDRINUSE));
        }
        l.push((ip, port, proto));
        Ok(RecordedPort { owner: Arc::downgrade(&list), key: (ip, port, proto) })
    }

    async fn dns_sockets(&self, _netns: &Path) -> Result<(std::net::UdpSocket, std::net::TcpListener)> {
        // Served on an ephemeral loopback port: the recording dataplane has no
        // namespaces, but the server logic still runs.
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| NetError::system("bind dns", e))?;
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| NetError::system("bind dns", e))?;
        Ok((udp, tcp))
    }

    fn enable_ip_forward(&self) -> Result<()> {
        self.lock().ip_forward = true;
        Ok(())
    }

    fn netns_exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn host_has_ipv6(&self) -> bool {
        self.lock().ipv6
    }
}
