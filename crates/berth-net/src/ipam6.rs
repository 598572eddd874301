//! IPv6 address management, as Docker's default IPAM does it: networks created with
//! `--ipv6` and no IPv6 subnet get a /64 from a unique local (ULA, fd00::/8) /48 of
//! this daemon's own — 40 bits derived from its identity, so two daemons (and two
//! hosts) do not pick the same prefixes — skipping prefixes routed on the host; a
//! network's addresses go sequentially from ::2 (the gateway is ::1), never twice.
//! Pure, like [`crate::ipam`].

use std::collections::BTreeSet;
use std::net::Ipv6Addr;

use ipnet::Ipv6Net;
use serde::{Deserialize, Serialize};

use crate::error::{NetError, Result};

/// A base prefix split into subnets of `size` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressPool6 {
    pub base: Ipv6Net,
    pub size: u8,
}

impl AddressPool6 {
    pub fn new(base: Ipv6Net, size: u8) -> Result<Self> {
        if size < base.prefix_len() || size > 120 {
            return Err(NetError::invalid(format!("address pool {base} cannot be split into /{size} subnets")));
        }
        Ok(AddressPool6 { base: base.trunc(), size })
    }

    /// The first `limit` subnets, in address order (a /48 holds 65536 /64s).
    fn subnets(&self, limit: usize) -> impl Iterator<Item = Ipv6Net> + '_ {
        self.base.subnets(self.size).into_iter().flatten().take(limit)
    }
}

/// The daemon's ULA /48 split into /64s: `fd` + 40 bits of a hash of `identity`
/// (RFC 4193 asks for a pseudo-random global ID; a stable one keeps addresses stable).
pub fn ula_pool(identity: &str) -> AddressPool6 {
    let h = identity.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let g = h.to_be_bytes();
    let addr = Ipv6Addr::new(
        0xfd00 | u16::from(g[0]),
        u16::from_be_bytes([g[1], g[2]]),
        u16::from_be_bytes([g[3], g[4]]),
        0,
        0,
        0,
        0,
        0,
    );
    AddressPool6 { base: Ipv6Net::new(addr, 48).unwrap_or_default(), size: 64 }
}

pub fn overlaps(a: &Ipv6Net, b: &Ipv6Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first pool subnet that overlaps nothing in `taken`.
pub fn allocate_subnet(pools: &[AddressPool6], taken: &[Ipv6Net]) -> Result<Ipv6Net> {
    pools
        .iter()
        .flat_map(|p| p.subnets(65536))
        .find(|c| !taken.iter().any(|t| overlaps(c, t)))
        .ok_or_else(|| NetError::unavailable("could not find an available, non-overlapping IPv6 address pool to assign to the network"))
}

/// The IPv6 addressing of one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetPlan6 {
    pub subnet: Ipv6Net,
    pub gateway: Ipv6Addr,
    /// Dynamic allocations come only from here when set (`--ip-range`).
    pub ip_range: Option<Ipv6Net>,
    /// `--aux-address` values: never allocated.
    pub reserved: Vec<Ipv6Addr>,
}

/// How far to look for a free address (a /64 is too big to scan whole; addresses are
/// handed out from the bottom, so the first free one is always near).
const SCAN: u128 = 1 << 20;

impl SubnetPlan6 {
    pub fn new(subnet: Ipv6Net, gateway: Option<Ipv6Addr>, ip_range: Option<Ipv6Net>, reserved: Vec<Ipv6Addr>) -> Result<Self> {
        let subnet = subnet.trunc();
        if subnet.prefix_len() > 126 {
            return Err(NetError::invalid(format!("invalid subnet {subnet}: a bridge network needs at least a /126")));
        }
        let mut plan = SubnetPlan6 { subnet, gateway: Ipv6Addr::UNSPECIFIED, ip_range, reserved };
        plan.gateway = match gateway {
            Some(g) => g,
            None => plan.first_free(&BTreeSet::new())?,
        };
        Ok(plan)
    }

    fn is_taken(&self, ip: Ipv6Addr, used: &BTreeSet<Ipv6Addr>) -> bool {
        // The subnet-router anycast address (all host bits zero) is never a host's.
        ip == self.subnet.network() || ip == self.gateway || self.reserved.contains(&ip) || used.contains(&ip)
    }

    fn first_free(&self, used: &BTreeSet<Ipv6Addr>) -> Result<Ipv6Addr> {
        let range = self.ip_range.unwrap_or(self.subnet);
        let start = u128::from(range.network().max(self.subnet.network()));
        let end = u128::from(range.broadcast().min(self.subnet.broadcast()));
        (start..=end.min(start.saturating_add(SCAN)))
            .map(Ipv6Addr::from)
            .find(|ip| !self.is_taken(*ip, used))
            .ok_or_else(|| NetError::unavailable("no available IPv6 addresses on this pool"))
    }

    /// `requested` if given and free, else the lowest free address.
    pub fn allocate(&self, used: &BTreeSet<Ipv6Addr>, requested: Option<Ipv6Addr>) -> Result<Ipv6Addr> {
        match requested {
            Some(ip) => {
                if !self.subnet.contains(&ip) {
                    return Err(NetError::invalid(format!("no configured subnet or ip-range contain the IP address {ip}")));
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

/// A validated IPv6 `IPAM.Config` entry (Docker's checks and messages).
pub fn validate_ipam_config(
    subnet: &str,
    ip_range: Option<&str>,
    gateway: Option<&str>,
    aux: &[(String, String)],
) -> Result<SubnetPlan6> {
    let net: Ipv6Net = subnet.trim().parse().map_err(|_| NetError::invalid(format!("invalid CIDR address: {subnet}")))?;
    if net != net.trunc() {
        return Err(NetError::invalid(format!("invalid network config:\ninvalid subnet {net}: it should be {}", net.trunc())));
    }
    let range = match ip_range.filter(|s| !s.is_empty()) {
        None => None,
        Some(r) => {
            let rn: Ipv6Net = r.parse().map_err(|_| NetError::invalid(format!("invalid CIDR address: {r}")))?;
            if rn.prefix_len() < net.prefix_len() || !overlaps(&net, &rn) {
                return Err(NetError::invalid(format!(
                    "invalid network config:\ninvalid ip-range {r}: parent subnet {net} doesn't contain ip-range"
                )));
            }
            Some(rn.trunc())
        }
    };
    let check_in = |addr: &str, what: &str| -> Result<Ipv6Addr> {
        let ip = addr
            .trim()
            .parse::<Ipv6Addr>()
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
    SubnetPlan6::new(net, gw, range, reserved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ula_pool_is_stable_per_daemon_and_differs_between_daemons() {
        let a = ula_pool("berth:/var/lib/berth");
        assert_eq!(a, ula_pool("berth:/var/lib/berth"));
        assert_ne!(a.base, ula_pool("other").base);
        assert_eq!(a.base.prefix_len(), 48);
        assert_eq!(a.base.addr().segments()[0] & 0xff00, 0xfd00);
        let first = allocate_subnet(&[a], &[]).unwrap();
        assert_eq!(first.prefix_len(), 64);
        let second = allocate_subnet(&[a], &[first]).unwrap();
        assert_ne!(first, second);
        // Host routes are skipped like taken networks.
        let third = allocate_subnet(&[a], &[first, a.base.subnets(64).unwrap().nth(1).unwrap()]).unwrap();
        assert_ne!(third, second);
    }

    #[test]
    fn addresses_go_up_from_two_and_are_never_given_twice() {
        let p = SubnetPlan6::new("fd00:1::/64".parse().unwrap(), None, None, vec![]).unwrap();
        assert_eq!(p.gateway, "fd00:1::1".parse::<Ipv6Addr>().unwrap());
        let mut used = BTreeSet::new();
        let a = p.allocate(&used, None).unwrap();
        assert_eq!(a, "fd00:1::2".parse::<Ipv6Addr>().unwrap());
        used.insert(a);
        assert_eq!(p.allocate(&used, None).unwrap(), "fd00:1::3".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.allocate(&used, Some(a)).unwrap_err().message(), "Address already in use");
        assert!(p.allocate(&used, Some("fd00:2::5".parse().unwrap())).is_err());
        assert_eq!(p.allocate(&used, Some("fd00:1::99".parse().unwrap())).unwrap(), "fd00:1::99".parse::<Ipv6Addr>().unwrap());
    }

    #[test]
    fn ipam_config_checks() {
        assert_eq!(validate_ipam_config("fd00::1/64", None, None, &[]).unwrap_err().message(), "invalid network config:\ninvalid subnet fd00::1/64: it should be fd00::/64");
        assert!(validate_ipam_config("fd00::/64", None, Some("fd01::1"), &[]).is_err());
        let p = validate_ipam_config("fd00::/64", None, Some("fd00::fe"), &[]).unwrap();
        assert_eq!(p.gateway, "fd00::fe".parse::<Ipv6Addr>().unwrap());
        assert_eq!(validate_ipam_config("nope", None, None, &[]).unwrap_err().message(), "invalid CIDR address: nope");
    }
}
