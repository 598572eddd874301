//! IP address management, as Docker's default IPAM does it for IPv4 bridge networks:
//! subnets for networks come from the daemon's address pools (skipping anything already
//! in use), and addresses for endpoints from the network's subnet (or its ip-range),
//! never the network, broadcast, gateway or an auxiliary address, never one twice.
//!
//! Everything here is pure: the set of used addresses comes from the persisted
//! endpoints, so allocations survive a restart without a separate database.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::error::{NetError, Result};

/// A base network split into subnets of `size` bits (Docker's `default-address-pools`
/// entry `{"base": "172.17.0.0/16", "size": 16}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressPool {
    pub base: Ipv4Net,
    pub size: u8,
}

impl AddressPool {
    pub fn new(base: Ipv4Net, size: u8) -> Result<Self> {
        if size < base.prefix_len() || size > 30 {
            return Err(NetError::invalid(format!(
                "address pool {base} cannot be split into /{size} subnets"
            )));
        }
        Ok(AddressPool { base: base.trunc(), size })
    }

    /// Every subnet of this pool, in address order.
    pub fn subnets(&self) -> impl Iterator<Item = Ipv4Net> + '_ {
        // `subnets` only fails when size < prefix, which `new` rules out; a pool built
        // by hand with a bad size yields nothing rather than panicking.
        self.base.subnets(self.size).into_iter().flatten()
    }
}

/// Docker's built-in local pools: 172.17-31.x.x as /16s, then 192.168.0.0/16 as /20s.
pub fn docker_default_pools() -> Vec<AddressPool> {
    let mut pools: Vec<AddressPool> = (17..=31)
        .map(|b| AddressPool { base: Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16).unwrap_or_default(), size: 16 })
        .collect();
    pools.push(AddressPool {
        base: Ipv4Net::new(Ipv4Addr::new(192, 168, 0, 0), 16).unwrap_or_default(),
        size: 20,
    });
    pools
}

/// True when the two networks share at least one address.
pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Picks the first pool subnet that overlaps nothing in `taken` (other networks'
/// subnets, and the host's own routes so a new bridge never shadows a real network).
pub fn allocate_subnet(pools: &[AddressPool], taken: &[Ipv4Net]) -> Result<Ipv4Net> {
    pools
        .iter()
        .flat_map(|p| p.subnets())
        .find(|candidate| !taken.iter().any(|t| overlaps(candidate, t)))
        .ok_or_else(|| {
            NetError::unavailable(
                "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network",
            )
        })
}

/// The addressing of one network: what can be handed out and what never can.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetPlan {
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// Dynamic allocations come only from here when set (`--ip-range`).
    pub ip_range: Option<Ipv4Net>,
    /// `--aux-address` values: reserved, never allocated.
    pub reserved: Vec<Ipv4Addr>,
}

impl SubnetPlan {
    /// Builds the plan for a network, choosing the gateway the way Docker does when
    /// none is given: the first free address of the ip-range (or of the subnet).
    pub fn new(
        subnet: Ipv4Net,
        gateway: Option<Ipv4Addr>,
        ip_range: Option<Ipv4Net>,
        reserved: Vec<Ipv4Addr>,
    ) -> Result<Self> {
        let subnet = subnet.trunc();
        if subnet.prefix_len() > 30 {
            return Err(NetError::invalid(format!(
                "invalid subnet {subnet}: a bridge network needs at least a /30"
            )));
        }
        let mut plan = SubnetPlan { subnet, gateway: Ipv4Addr::UNSPECIFIED, ip_range, reserved };
        plan.gateway = match gateway {
            Some(g) => g,
            None => plan.first_free(&BTreeSet::new())?,
        };
        Ok(plan)
    }

    fn is_unusable(&self, ip: Ipv4Addr) -> bool {
        ip == self.subnet.network() || ip == self.subnet.broadcast()
    }

    fn is_taken(&self, ip: Ipv4Addr, used: &BTreeSet<Ipv4Addr>) -> bool {
        self.is_unusable(ip) || ip == self.gateway || self.reserved.contains(&ip) || used.contains(&ip)
    }

    fn first_free(&self, used: &BTreeSet<Ipv4Addr>) -> Result<Ipv4Addr> {
        let range = self.ip_range.unwrap_or(self.subnet);
        let start = u32::from(range.network().max(self.subnet.network()));
        let end = u32::from(range.broadcast().min(self.subnet.broadcast()));
        (start..=end)
            .map(Ipv4Addr::from)
            .find(|ip| !self.is_taken(*ip, used))
            .ok_or_else(|| NetError::unavailable("no available addresses on this pool"))
    }

    /// Allocates an address: `requested` if given and free, otherwise the lowest free
    /// one. `used` holds every address already given to an endpoint of this network.
    pub fn allocate(&self, used: &BTreeSet<Ipv4Addr>, requested: Option<Ipv4Addr>) -> Result<Ipv4Addr> {
        match requested {
            Some(ip) => {
                if !self.subnet.contains(&ip) {
                    return Err(NetError::invalid(format!(
                        "no configured subnet or ip-range contain the IP address {ip}"
                    )));
                }
                if self.is_taken(ip, used) {
                    return Err(NetError::forbidden("Address already in use"));
                }
                Ok(ip)
            }
            None => self.first_free(used),
        }
    }
}

/// Parses a CIDR the way Docker reports a failure ("invalid CIDR address: X").
pub fn parse_cidr(s: &str) -> Result<Ipv4Net> {
    s.trim().parse::<Ipv4Net>().map_err(|_| NetError::invalid(format!("invalid CIDR address: {s}")))
}

/// Parses an IPv4 address, naming what it was for in the error.
pub fn parse_ipv4(s: &str, what: &str) -> Result<Ipv4Addr> {
    s.trim().parse::<Ipv4Addr>().map_err(|_| NetError::invalid(format!("invalid {what} address: {s}")))
}

/// A validated `IPAM.Config` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidIpamConfig {
    pub subnet: Ipv4Net,
    pub ip_range: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    /// Auxiliary addresses, in the order given.
    pub aux: Vec<Ipv4Addr>,
}

/// One `IPAM.Config` entry of a network create request, validated: Docker's checks
/// and messages (`ValidateIPAM`).
pub fn validate_ipam_config(
    subnet: &str,
    ip_range: Option<&str>,
    gateway: Option<&str>,
    aux: &[(String, String)],
) -> Result<ValidIpamConfig> {
    let net = parse_cidr(subnet)?;
    if net != net.trunc() {
        return Err(NetError::invalid(format!(
            "invalid network config:\ninvalid subnet {net}: it should be {}",
            net.trunc()
        )));
    }
    let range = match ip_range.filter(|s| !s.is_empty()) {
        None => None,
        Some(r) => {
            let rn = parse_cidr(r)?;
            if rn.prefix_len() < net.prefix_len() {
                return Err(NetError::invalid(format!(
                    "invalid network config:\ninvalid ip-range {r}: CIDR block is bigger than its parent subnet {net}"
                )));
            }
            if rn != rn.trunc() {
                return Err(NetError::invalid(format!(
                    "invalid network config:\ninvalid ip-range {rn}: it should be {}",
                    rn.trunc()
                )));
            }
            if !overlaps(&net, &rn) {
                return Err(NetError::invalid(format!(
                    "invalid network config:\ninvalid ip-range {r}: parent subnet {net} doesn't contain ip-range"
                )));
            }
            Some(rn)
        }
    };
    let check_in = |addr: &str, what: &str| -> Result<Ipv4Addr> {
        let ip = addr
            .trim()
            .parse::<Ipv4Addr>()
            .map_err(|_| NetError::invalid(format!("invalid network config:\ninvalid {what} {addr}: invalid address")))?;
        if !net.contains(&ip) {
            return Err(NetError::invalid(format!(
                "invalid network config:\ninvalid {what} {addr}: parent subnet {net} doesn't contain this address"
            )));
        }
        Ok(ip)
    };
    let gw = match gateway.filter(|s| !s.is_empty()) {
        None => None,
        Some(g) => Some(check_in(g, "gateway")?),
    };
    let mut reserved = Vec::new();
    for (name, addr) in aux {
        reserved.push(check_in(addr, &format!("auxiliary address {name}:"))?);
    }
    Ok(ValidIpamConfig { subnet: net, ip_range: range, gateway: gw, aux: reserved })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn default_pools_match_docker() {
        let pools = docker_default_pools();
        assert_eq!(pools[0].base, net("172.17.0.0/16"));
        assert_eq!(pools.last().unwrap().size, 20);
        let first = allocate_subnet(&pools, &[]).unwrap();
        assert_eq!(first, net("172.17.0.0/16"));
    }

    #[test]
    fn subnet_allocation_skips_taken_and_host_routes() {
        let pools = vec![AddressPool::new(net("10.99.0.0/16"), 24).unwrap()];
        let taken = vec![net("10.99.0.0/24"), net("10.99.1.128/25"), net("10.0.0.0/8")];
        // Everything in 10/8 is taken by a host route here: nothing left.
        assert!(allocate_subnet(&pools, &taken).is_err());
        let taken = vec![net("10.99.0.0/24"), net("10.99.1.128/25")];
        assert_eq!(allocate_subnet(&pools, &taken).unwrap(), net("10.99.2.0/24"));
    }

    #[test]
    fn pool_rejects_impossible_sizes() {
        assert!(AddressPool::new(net("10.0.0.0/16"), 8).is_err());
        assert!(AddressPool::new(net("10.0.0.0/16"), 31).is_err());
    }

    #[test]
    fn gateway_defaults_to_first_address() {
        let p = SubnetPlan::new(net("10.5.0.0/24"), None, None, vec![]).unwrap();
        assert_eq!(p.gateway, ip("10.5.0.1"));
        // As libnetwork does: the gateway is the first address of the ip-range, which
        // is a valid host address when the range is smaller than the subnet.
        let p = SubnetPlan::new(net("10.5.0.0/16"), None, Some(net("10.5.7.0/24")), vec![]).unwrap();
        assert_eq!(p.gateway, ip("10.5.7.0"));
        let p = SubnetPlan::new(net("10.5.0.0/24"), None, Some(net("10.5.0.0/25")), vec![]).unwrap();
        assert_eq!(p.gateway, ip("10.5.0.1"));
    }

    #[test]
    fn addresses_are_never_given_twice() {
        let p = SubnetPlan::new(net("10.5.0.0/29"), None, None, vec![ip("10.5.0.3")]).unwrap();
        let mut used = BTreeSet::new();
        let mut got = vec![];
        while let Ok(a) = p.allocate(&used, None) {
            assert!(used.insert(a), "{a} handed out twice");
            got.push(a);
        }
        // .0 network, .1 gateway, .3 aux, .7 broadcast are never handed out.
        assert_eq!(got, vec![ip("10.5.0.2"), ip("10.5.0.4"), ip("10.5.0.5"), ip("10.5.0.6")]);
        let err = p.allocate(&used, None).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Unavailable);
        // A released address is reused, lowest first.
        used.remove(&ip("10.5.0.4"));
        assert_eq!(p.allocate(&used, None).unwrap(), ip("10.5.0.4"));
    }

    #[test]
    fn requested_addresses_are_checked() {
        let p = SubnetPlan::new(net("10.5.0.0/24"), None, Some(net("10.5.0.128/25")), vec![]).unwrap();
        let used: BTreeSet<_> = [ip("10.5.0.130")].into();
        assert_eq!(p.gateway, ip("10.5.0.128"));
        assert_eq!(p.allocate(&used, None).unwrap(), ip("10.5.0.129"));
        assert_eq!(p.allocate(&used, Some(ip("10.5.0.9"))).unwrap(), ip("10.5.0.9"));
        let e = p.allocate(&used, Some(ip("10.5.0.130"))).unwrap_err();
        assert_eq!(e.message(), "Address already in use");
        let e = p.allocate(&used, Some(p.gateway)).unwrap_err();
        assert_eq!(e.message(), "Address already in use");
        let e = p.allocate(&used, Some(ip("10.6.0.1"))).unwrap_err();
        assert_eq!(e.message(), "no configured subnet or ip-range contain the IP address 10.6.0.1");
    }

    #[test]
    fn ipam_config_validation_uses_dockers_messages() {
        let e = validate_ipam_config("10.0.0.0/33", None, None, &[]).unwrap_err();
        assert_eq!(e.message(), "invalid CIDR address: 10.0.0.0/33");
        let e = validate_ipam_config("banana", None, None, &[]).unwrap_err();
        assert_eq!(e.message(), "invalid CIDR address: banana");
        let e = validate_ipam_config("10.0.0.1/24", None, None, &[]).unwrap_err();
        assert!(e.message().contains("it should be 10.0.0.0/24"), "{}", e.message());
        let e = validate_ipam_config("10.0.0.0/24", None, Some("10.1.0.1"), &[]).unwrap_err();
        assert!(e.message().contains("invalid gateway 10.1.0.1: parent subnet 10.0.0.0/24 doesn't contain this address"));
        let e = validate_ipam_config("10.0.0.0/24", Some("10.0.0.0/16"), None, &[]).unwrap_err();
        assert!(e.message().contains("CIDR block is bigger than its parent subnet"));
        let e = validate_ipam_config("10.0.0.0/24", Some("10.0.1.0/25"), None, &[]).unwrap_err();
        assert!(e.message().contains("doesn't contain ip-range"));
        let ok = validate_ipam_config(
            "10.0.0.0/24",
            Some("10.0.0.128/25"),
            Some("10.0.0.254"),
            &[("router".into(), "10.0.0.253".into())],
        )
        .unwrap();
        assert_eq!(ok.gateway, Some(ip("10.0.0.254")));
        assert_eq!(ok.aux, vec![ip("10.0.0.253")]);
    }
}
