//! Data: what is persisted (records) and what the Engine API shows (Docker-shaped,
//! serialised with Docker's field names so the engine can pass them through).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use berth_types::network::{EndpointIpamConfig, EndpointSettings};
use serde::{Deserialize, Serialize};

use crate::error::{NetError, Result};
use crate::ipam::SubnetPlan;
use crate::ports::PortMapping;

// ---------------------------------------------------------------------------------
// Persisted records (internal).
// ---------------------------------------------------------------------------------

/// Which driver a network uses. `bridge`, `macvlan` and `ipvlan` networks can be
/// created; `host` and `null` exist once each as the predefined `host` and `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    Bridge,
    Host,
    Null,
    Macvlan,
    Ipvlan,
}

impl Driver {
    pub fn as_str(&self) -> &'static str {
        match self {
            Driver::Bridge => "bridge",
            Driver::Host => "host",
            Driver::Null => "null",
            Driver::Macvlan => "macvlan",
            Driver::Ipvlan => "ipvlan",
        }
    }
}

/// A macvlan or ipvlan network: its containers' interfaces hang off a host interface
/// (the parent) and sit on its LAN; no bridge, no NAT, no published ports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VlanSettings {
    /// The host interface (`-o parent=eth0`, or `eth0.10` for an 802.1q sub-interface).
    pub parent: String,
    /// berth made the parent (an 802.1q sub-interface, or a dummy for a network without
    /// one) and removes it with the network.
    pub created_parent: bool,
    /// macvlan: bridge | private | vepa | passthru; ipvlan: l2 | l3 | l3s.
    pub mode: String,
    pub mtu: u32,
    pub plan: SubnetPlan,
    pub aux_names: Vec<String>,
    pub user_subnet: bool,
    #[serde(default)]
    pub v6: Option<BridgeV6>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NetworkRecord {
    pub id: String,
    pub name: String,
    pub created: String,
    pub driver: Driver,
    pub internal: bool,
    pub attachable: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    pub ipam_options: BTreeMap<String, String>,
    /// `IPAM.Options` was given (even `{}`): inspect shows it as given, `null` otherwise,
    /// as dockerd does.
    #[serde(default)]
    pub ipam_options_given: bool,
    pub bridge: Option<BridgeSettings>,
    #[serde(default)]
    pub vlan: Option<VlanSettings>,
    /// A container has joined it since it was created, so its rules are in berth's
    /// nft table (and stay until it is removed). A network nobody used has no traffic
    /// to NAT or filter, so creating and removing it never touches the firewall.
    #[serde(default = "yes")]
    pub active: bool,
}

impl NetworkRecord {
    pub fn is_predefined(&self) -> bool {
        matches!(self.driver, Driver::Host | Driver::Null) || self.bridge.as_ref().is_some_and(|b| b.default_bridge)
    }

    /// User-defined networks get the embedded DNS and name resolution; the default
    /// bridge does not (as in Docker).
    pub fn has_dns(&self) -> bool {
        self.bridge.as_ref().is_some_and(|b| !b.default_bridge) || self.vlan.is_some()
    }

    /// The IPv4 addressing of a network with addresses (bridge, macvlan, ipvlan).
    pub fn plan(&self) -> Option<&SubnetPlan> {
        self.bridge.as_ref().map(|b| &b.plan).or(self.vlan.as_ref().map(|v| &v.plan))
    }

    /// Its IPv6 addressing, when dual-stack.
    pub fn v6(&self) -> Option<&BridgeV6> {
        self.bridge.as_ref().and_then(|b| b.v6.as_ref()).or(self.vlan.as_ref().and_then(|v| v.v6.as_ref()))
    }

    /// `--aux-address` names of the IPv4 subnet and whether the user gave the subnet.
    pub fn aux_names_and_user_subnet(&self) -> (&[String], bool) {
        match (&self.bridge, &self.vlan) {
            (Some(b), _) => (&b.aux_names, b.user_subnet),
            (None, Some(v)) => (&v.aux_names, v.user_subnet),
            _ => (&[], false),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BridgeSettings {
    pub ifname: String,
    pub plan: SubnetPlan,
    /// Names of the `--aux-address` entries, in `plan.reserved` order.
    pub aux_names: Vec<String>,
    /// Subnet given by the user (only then may endpoints ask for a fixed address).
    pub user_subnet: bool,
    pub mtu: u32,
    pub masquerade: bool,
    pub host_binding_ipv4: Ipv4Addr,
    pub default_bridge: bool,
    /// `enable_icc`: containers on the bridge may talk to each other freely.
    #[serde(default = "yes")]
    pub icc: bool,
    /// IPv6 (`--ipv6`): the network's IPv6 subnet, besides its IPv4 one.
    #[serde(default)]
    pub v6: Option<BridgeV6>,
}

/// The IPv6 side of a dual-stack bridge network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BridgeV6 {
    pub plan: crate::ipam6::SubnetPlan6,
    /// Names of the IPv6 `--aux-address` entries, in `plan.reserved` order.
    pub aux_names: Vec<String>,
    /// Subnet given by the user (only then may endpoints ask for a fixed `--ip6`).
    pub user_subnet: bool,
}

/// An endpoint's IPv6 address on a dual-stack network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointV6 {
    pub ip: Ipv6Addr,
    pub prefix_len: u8,
    pub gateway: Ipv6Addr,
}

fn yes() -> bool {
    true
}

/// A legacy link (`--link`) from a container on the default bridge: the linked
/// container's address and exposed ports, which stay open to it when the bridge has
/// `enable_icc=false` (as Docker opens them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkedPorts {
    pub server: Ipv4Addr,
    pub ports: Vec<(crate::ports::Proto, u16)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EndpointRecord {
    pub id: String,
    pub network_id: String,
    pub container_id: String,
    pub container_name: String,
    pub aliases: Vec<String>,
    pub requested_ip: Option<Ipv4Addr>,
    pub ifname: String,
    pub host_veth: String,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    pub mac: String,
    /// This endpoint carries the sandbox's default route (and its published ports).
    pub provides_gateway: bool,
    /// Connect order within the daemon (interfaces, DNS precedence, inspect order).
    pub seq: u64,
    /// Link aliases on a user network (`--link name:alias`): `alias` resolves, for this
    /// container only, to the container called `name` on the same network.
    #[serde(default)]
    pub links: Vec<(String, String)>,
    /// Legacy links' open ports (default bridge with icc off).
    #[serde(default)]
    pub linked_ports: Vec<LinkedPorts>,
    /// IPv6 address on a dual-stack network.
    #[serde(default)]
    pub v6: Option<EndpointV6>,
    #[serde(default)]
    pub requested_ipv6: Option<Ipv6Addr>,
    /// `--link-local-ip` addresses.
    #[serde(default)]
    pub link_local: Vec<IpAddr>,
}

impl EndpointRecord {
    /// Names other containers on the same network resolve to this endpoint: the
    /// container name, its network aliases and its short ID (Docker's DNSNames).
    pub fn dns_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if !self.container_name.is_empty() {
            names.push(self.container_name.clone());
        }
        for a in &self.aliases {
            if !names.contains(a) {
                names.push(a.clone());
            }
        }
        let short = crate::ids::short_id(&self.container_id).to_string();
        if !names.contains(&short) {
            names.push(short);
        }
        names
    }
}

/// One container's network stack: its namespace, its published ports and its DNS
/// settings. Its endpoints are the endpoint records naming the container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SandboxRecord {
    pub container_id: String,
    pub netns: PathBuf,
    pub ports: Vec<PortMapping>,
    pub dns_servers: Vec<IpAddr>,
}

// ---------------------------------------------------------------------------------
// Requests.
// ---------------------------------------------------------------------------------

/// A container joining a network (`--network`, `docker network connect`).
#[derive(Debug, Clone, Default)]
pub struct EndpointRequest {
    /// The container's full ID (64 hex).
    pub container_id: String,
    /// The container's name without the leading '/', resolvable by DNS.
    pub container_name: String,
    /// The container's network namespace (a bind mount, see [`crate::netns`]).
    pub netns: PathBuf,
    /// `--ip`: a fixed address (only on networks with a user-configured subnet).
    pub ipv4: Option<Ipv4Addr>,
    /// `--network-alias`: extra DNS names on this network.
    pub aliases: Vec<String>,
    /// `--mac-address`.
    pub mac: Option<String>,
    /// `--dns`: servers the embedded DNS forwards to instead of the host's.
    pub dns_servers: Vec<IpAddr>,
    /// Link aliases on a user network, `(alias, container name)` (Docker's endpoint
    /// `Links`, `--link name:alias` with `--network`): resolved for this container only.
    pub links: Vec<(String, String)>,
    /// Legacy links from the default bridge: ports kept open when icc is off.
    pub linked_ports: Vec<LinkedPorts>,
    /// `--ip6`: a fixed IPv6 address (networks with a user-configured IPv6 subnet).
    pub ipv6: Option<Ipv6Addr>,
    /// `--link-local-ip`: extra link-local addresses (169.254.0.0/16, fe80::/10).
    pub link_local_ips: Vec<IpAddr>,
}

// ---------------------------------------------------------------------------------
// Results and Engine API shapes.
// ---------------------------------------------------------------------------------

/// What `connect` made: everything the engine shows in NetworkSettings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub endpoint_id: String,
    pub network_id: String,
    pub network_name: String,
    pub container_id: String,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    pub mac: String,
    /// Interface name inside the container (eth0, eth1, ...).
    pub ifname: String,
    /// The host side of the veth pair, attached to the bridge.
    pub host_veth: String,
    pub bridge: String,
    pub aliases: Vec<String>,
    pub dns_names: Vec<String>,
    pub requested_ip: Option<Ipv4Addr>,
    pub provides_gateway: bool,
    pub v6: Option<EndpointV6>,
    pub requested_ipv6: Option<Ipv6Addr>,
    pub link_local: Vec<IpAddr>,
}

impl Endpoint {
    pub(crate) fn from_record(rec: &EndpointRecord, net: &NetworkRecord) -> Self {
        Endpoint {
            endpoint_id: rec.id.clone(),
            network_id: rec.network_id.clone(),
            network_name: net.name.clone(),
            container_id: rec.container_id.clone(),
            ip: rec.ip,
            prefix_len: rec.prefix_len,
            gateway: rec.gateway,
            mac: rec.mac.clone(),
            ifname: rec.ifname.clone(),
            host_veth: rec.host_veth.clone(),
            bridge: net.bridge.as_ref().map(|b| b.ifname.clone()).unwrap_or_default(),
            aliases: rec.aliases.clone(),
            dns_names: if net.has_dns() { rec.dns_names() } else { Vec::new() },
            requested_ip: rec.requested_ip,
            provides_gateway: rec.provides_gateway,
            v6: rec.v6,
            requested_ipv6: rec.requested_ipv6,
            link_local: rec.link_local.clone(),
        }
    }

    /// The container-inspect `NetworkSettings.Networks[<name>]` entry.
    pub fn settings(&self) -> EndpointSettings {
        EndpointSettings {
            ipam_config: (self.requested_ip.is_some() || self.requested_ipv6.is_some() || !self.link_local.is_empty()).then(|| {
                EndpointIpamConfig {
                    ipv4_address: self.requested_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                    ipv6_address: self.requested_ipv6.map(|ip| ip.to_string()).unwrap_or_default(),
                    link_local_ips: (!self.link_local.is_empty()).then(|| self.link_local.iter().map(|ip| ip.to_string()).collect()),
                }
            }),
            links: None,
            mac_address: self.mac.clone(),
            aliases: if self.aliases.is_empty() { None } else { Some(self.aliases.clone()) },
            driver_opts: None,
            gw_priority: 0,
            network_id: self.network_id.clone(),
            endpoint_id: self.endpoint_id.clone(),
            gateway: self.gateway.to_string(),
            ip_address: self.ip.to_string(),
            ip_prefix_len: i64::from(self.prefix_len),
            ipv6_gateway: self.v6.map(|v| v.gateway.to_string()).unwrap_or_default(),
            global_ipv6_address: self.v6.map(|v| v.ip.to_string()).unwrap_or_default(),
            global_ipv6_prefix_len: self.v6.map(|v| i64::from(v.prefix_len)).unwrap_or_default(),
            dns_names: if self.dns_names.is_empty() { None } else { Some(self.dns_names.clone()) },
        }
    }
}

/// Parses "02:42:ac:11:00:02" (a unicast MAC, as the kernel requires).
pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let bad = || NetError::invalid(format!("invalid MAC address: {s}"));
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return Err(bad());
        }
        mac[i] = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if mac[0] & 1 == 1 || mac == [0; 6] {
        return Err(NetError::invalid(format!("invalid MAC address: {s}: not a unicast address")));
    }
    Ok(mac)
}

pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Docker's (pre-v26) MAC for an address: 02:42 followed by the four IPv4 bytes, so
/// a MAC never collides on a bridge while addresses are unique.
pub fn mac_for_ip(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parsing_and_formatting() {
        assert_eq!(parse_mac("02:42:AC:11:00:02").unwrap(), [2, 0x42, 0xac, 0x11, 0, 2]);
        assert!(parse_mac("01:00:5e:00:00:01").is_err(), "multicast refused");
        assert!(parse_mac("02:42:ac:11:00").is_err());
        assert!(parse_mac("zz:42:ac:11:00:02").is_err());
        assert_eq!(format_mac(&mac_for_ip("172.18.0.2".parse().unwrap())), "02:42:ac:12:00:02");
    }

    #[test]
    fn create_request_reads_the_cli_json() {
        // What docker CLI 28 sends for `docker network create trace-net` (api-traces).
        let body = r#"{"Driver":"bridge","Scope":"","IPAM":{"Driver":"default","Options":{},"Config":[]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{},"Labels":{},"Name":"trace-net","CheckDuplicate":true}"#;
        let req: berth_types::network::NetworkCreateRequest = serde_json::from_str(body).unwrap();
        assert_eq!(req.name, "trace-net");
        assert_eq!(req.ipam.unwrap().configs().len(), 0);
    }

    #[test]
    fn endpoint_settings_serialise_like_docker() {
        let ep = Endpoint {
            endpoint_id: "e".repeat(64),
            network_id: "n".repeat(64),
            network_name: "trace-net".into(),
            container_id: "f1ed81748690645ba074a3466ae95512650b750ae1886291b1c2ba7a3ba8d5f1".into(),
            ip: "172.18.0.2".parse().unwrap(),
            prefix_len: 16,
            gateway: "172.18.0.1".parse().unwrap(),
            mac: "02:42:ac:12:00:02".into(),
            ifname: "eth0".into(),
            host_veth: "veth1234567".into(),
            bridge: "br-x".into(),
            aliases: vec![],
            dns_names: vec!["trace-web".into(), "f1ed81748690".into()],
            requested_ip: None,
            provides_gateway: true,
            v6: None,
            requested_ipv6: None,
            link_local: vec![],
        };
        let v = serde_json::to_value(ep.settings()).unwrap();
        assert_eq!(v["IPAddress"], "172.18.0.2");
        assert_eq!(v["IPPrefixLen"], 16);
        assert_eq!(v["MacAddress"], "02:42:ac:12:00:02");
        assert_eq!(v["IPAMConfig"], serde_json::Value::Null);
        assert_eq!(v["DNSNames"][1], "f1ed81748690");
        assert_eq!(v["NetworkID"].as_str().unwrap().len(), 64);
    }
}
