//! How a [`crate::NetworkManager`] is set up: where its state lives and which kernel
//! names it owns. Everything is settable so several daemons (one per test) coexist.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use ipnet::{Ipv4Net, Ipv6Net};

use crate::error::{NetError, Result};
use crate::ipam::{AddressPool, docker_default_pools};

/// Configuration of one network manager (one daemon).
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Persisted state: `networks/`, `endpoints/`, `sandboxes/` (JSON, crash-safe).
    pub data_dir: PathBuf,
    /// Name of the default `bridge` network's device (dockerd's `docker0`).
    pub default_bridge: String,
    /// `--bip`: gateway address and prefix of the default bridge, e.g. 172.17.0.1/16.
    /// `None` takes the first free subnet of `address_pools`.
    pub bip: Option<Ipv4Net>,
    /// `default-address-pools` for networks created without a subnet.
    pub address_pools: Vec<AddressPool>,
    /// Name of this daemon's own nftables table (family `ip`); also tags the network
    /// devices it creates, so restarts find exactly their own and nobody else's.
    pub nft_table: String,
    /// MTU of bridges and veths (`--mtu`).
    pub mtu: u32,
    /// Turn on `net.ipv4.ip_forward` at open (needed for outbound traffic and for
    /// published ports reached from other hosts).
    pub enable_ip_forward: bool,
    /// `--ip`: host address that ports published without one bind to.
    pub default_binding_ip: Ipv4Addr,
    /// The host's resolver configuration, copied for the default bridge and used to
    /// find upstream servers for the embedded DNS.
    pub host_resolv_conf: PathBuf,
    /// The host's hosts file (copied into containers in `--network host` mode).
    pub host_hosts: PathBuf,
    /// Upstream DNS servers for the embedded resolver. `None` reads them from
    /// `host_resolv_conf` (skipping loopback servers).
    pub dns_upstreams: Option<Vec<SocketAddr>>,
    /// Ports chosen for `-P` / `-p 80` come from this range (Docker: the kernel's
    /// ephemeral range). `None` reads /proc/sys/net/ipv4/ip_local_port_range.
    pub ephemeral_ports: Option<(u16, u16)>,
    /// `--iptables`: add berth's accept rules to iptables' FORWARD chain (see
    /// [`crate::iptables`]). Off, berth keeps to its own nftables table, and hosts
    /// whose FORWARD policy is DROP block container traffic.
    pub iptables: bool,
    /// `--icc`: containers on the default bridge may talk to each other (off: only
    /// published ports and legacy links' ports; needs br_netfilter).
    pub icc: bool,
    /// `--ipv6`: the default bridge is dual-stack.
    pub ipv6: bool,
    /// `--fixed-cidr-v6`: the default bridge's IPv6 subnet (else one from the pools).
    pub fixed_cidr_v6: Option<Ipv6Net>,
    /// Pools for IPv6 networks created without a subnet. Empty: a ULA /48 of this
    /// daemon's own, split into /64s (see [`crate::ipam6::ula_pool`]).
    pub ipv6_pools: Vec<crate::ipam6::AddressPool6>,
    /// `--ip6tables`: berth's accept rules in ip6tables' FORWARD too.
    pub ip6tables: bool,
    /// Rootless daemon (root only in a user namespace of its own): no bridge, no veth,
    /// no firewall, no sysctl is touched in the host's network namespace. Networks are
    /// records only (the predefined bridge, host, none); containers are connected by the
    /// engine through slirp4netns; user-defined networks are refused.
    pub rootless: bool,
}

impl NetConfig {
    /// Docker's defaults, with state under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        NetConfig {
            data_dir: data_dir.into(),
            default_bridge: "berth0".into(),
            bip: None,
            address_pools: docker_default_pools(),
            nft_table: "berth".into(),
            mtu: 1500,
            enable_ip_forward: true,
            default_binding_ip: Ipv4Addr::UNSPECIFIED,
            host_resolv_conf: "/etc/resolv.conf".into(),
            host_hosts: "/etc/hosts".into(),
            dns_upstreams: None,
            ephemeral_ports: None,
            iptables: true,
            icc: true,
            ipv6: false,
            fixed_cidr_v6: None,
            ipv6_pools: Vec::new(),
            ip6tables: true,
            rootless: false,
        }
    }

    /// Checks names that end up in kernel objects and nft scripts.
    pub fn validate(&self) -> Result<()> {
        validate_ifname(&self.default_bridge)?;
        let t = &self.nft_table;
        if t.is_empty() || t.len() > 32 || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(NetError::invalid(format!(
                "invalid nftables table name {t:?}: use 1-32 letters, digits, '-' or '_'"
            )));
        }
        if !(68..=65535).contains(&self.mtu) {
            return Err(NetError::invalid(format!("invalid MTU {}", self.mtu)));
        }
        if self.address_pools.is_empty() && self.bip.is_none() {
            return Err(NetError::invalid("no address pools configured"));
        }
        if let Some((lo, hi)) = self.ephemeral_ports
            && (lo == 0 || lo > hi)
        {
            return Err(NetError::invalid(format!("invalid port range {lo}-{hi}")));
        }
        Ok(())
    }
}

/// Linux interface names: 1-15 bytes, no '/', no whitespace, not "." or "..". We are
/// stricter (letters, digits, '-', '_', '.') because names also go into nft scripts.
pub fn validate_ifname(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(NetError::invalid(format!(
            "invalid interface name {name:?}: use 1-15 letters, digits, '-', '_' or '.'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_names_are_refused() {
        let c = NetConfig::new("/tmp/x");
        c.validate().unwrap();
        let mut bad = c.clone();
        bad.default_bridge = "a-name-that-is-too-long".into();
        assert!(bad.validate().is_err());
        let mut bad = c.clone();
        bad.nft_table = "x; flush ruleset".into();
        assert!(bad.validate().is_err());
        assert!(validate_ifname("br\"x").is_err());
        assert!(validate_ifname("br-0123456789ab").is_ok());
    }
}
