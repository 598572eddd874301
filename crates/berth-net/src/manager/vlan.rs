//! macvlan and ipvlan networks (`-d macvlan|ipvlan -o parent=…`): containers get an
//! interface of that kind on the parent, straight in their namespace, and sit on the
//! parent's LAN with addresses from the network's subnet. No bridge, no NAT, no
//! published ports (as in Docker); the embedded DNS works as on any user network.
//! `-o parent=eth0.10` makes the 802.1q sub-interface if it is missing, and a network
//! without a parent, or `--internal`, gets a dummy one; berth removes what it made.

use std::collections::BTreeMap;

use super::{NetworkManager, State};
use crate::config::validate_ifname;
use crate::dataplane::{Dataplane, ParentToMake, VlanKind};
use crate::error::{NetError, Result};
use crate::model::{Driver, NetworkRecord, VlanSettings};
use berth_types::network::NetworkCreateResponse;

/// Docker's option keys for macvlan/ipvlan networks.
pub const PARENT: &str = "parent";
pub const MACVLAN_MODE: &str = "macvlan_mode";
pub const IPVLAN_MODE: &str = "ipvlan_mode";

pub(super) fn kind_of(driver: Driver) -> Option<VlanKind> {
    match driver {
        Driver::Macvlan => Some(VlanKind::Macvlan),
        Driver::Ipvlan => Some(VlanKind::Ipvlan),
        _ => None,
    }
}

/// What berth must make for this parent, if it made it.
pub(super) fn parent_to_make(v: &VlanSettings) -> Option<ParentToMake> {
    if !v.created_parent {
        return None;
    }
    match v.parent.rsplit_once('.') {
        Some((base, id)) if id.parse::<u16>().is_ok() => Some(ParentToMake::Vlan { base: base.to_string(), id: id.parse().ok()? }),
        _ => Some(ParentToMake::Dummy),
    }
}

impl<D: Dataplane> NetworkManager<D> {
    /// Checks a macvlan/ipvlan create request's options and plans its addressing.
    /// Changes nothing.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn plan_vlan(
        &self,
        st: &State<D::PortGuard>,
        id: &str,
        driver: Driver,
        opts: &BTreeMap<String, String>,
        internal: bool,
        v4: Option<&berth_types::network::IpamPoolConfig>,
        ipv6: bool,
        ipam_req: &berth_types::network::Ipam,
    ) -> Result<VlanSettings> {
        let kind = kind_of(driver).ok_or_else(|| NetError::system_msg("not a vlan driver"))?;
        let mode = match kind {
            VlanKind::Macvlan => {
                let m = opts.get(MACVLAN_MODE).map(String::as_str).unwrap_or("bridge");
                if !matches!(m, "bridge" | "private" | "vepa" | "passthru") {
                    return Err(NetError::invalid(format!(
                        "requested macvlan mode '{m}' is not valid, 'bridge' mode is the macvlan driver default"
                    )));
                }
                m.to_string()
            }
            VlanKind::Ipvlan => {
                let m = opts.get(IPVLAN_MODE).map(String::as_str).unwrap_or("l2");
                if !matches!(m, "l2" | "l3" | "l3s") {
                    return Err(NetError::invalid(format!(
                        "requested ipvlan mode '{m}' is not valid, 'l2' mode is the ipvlan driver default"
                    )));
                }
                m.to_string()
            }
        };
        let mtu = match opts.get(super::options::MTU) {
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|m| (68..=65535).contains(m))
                .ok_or_else(|| NetError::invalid(format!("invalid MTU value {v:?}")))?,
            // The kernel gives the interfaces the parent's.
            None => 0,
        };
        let given = opts.get(PARENT).cloned().unwrap_or_default();
        // An internal network, like one without a parent, sits on a dummy of its own
        // (Docker's rule): nothing it sends leaves the host.
        let (parent, created_parent) = if given.is_empty() || internal {
            (format!("dm-{}", &id[..12]), true)
        } else {
            validate_ifname(&given)?;
            if let Some(other) = st.networks.values().find(|n| n.vlan.as_ref().is_some_and(|v| v.parent == given)) {
                return Err(NetError::forbidden(format!(
                    "network {} is already using parent interface {given}",
                    other.name
                )));
            }
            match self.dp.link_info(&given).await? {
                Some(_) => (given, false),
                None => match given.rsplit_once('.') {
                    Some((base, vid)) if vid.parse::<u16>().is_ok_and(|v| (1..4095).contains(&v)) => {
                        if self.dp.link_info(base).await?.is_none() {
                            return Err(NetError::invalid(format!("-o parent interface was not found on the host: {base}")));
                        }
                        (given, true)
                    }
                    _ => return Err(NetError::invalid(format!("-o parent interface was not found on the host: {given}"))),
                },
            }
        };
        let (plan, aux_names, user_subnet) = self.plan_v4(st, v4).await?;
        let v6 = if ipv6 { Some(self.plan_v6(st, ipam_req).await?) } else { None };
        Ok(VlanSettings { parent, created_parent, mode, mtu, plan, aux_names, user_subnet, v6 })
    }

    /// Makes the parent if berth owns it, checks that the kernel can make the
    /// network's interfaces on it, and records the network. On failure nothing stays.
    pub(super) async fn create_vlan_network(&self, st: &mut State<D::PortGuard>, rec: NetworkRecord) -> Result<NetworkCreateResponse> {
        let v = rec.vlan.clone().ok_or_else(|| NetError::system_msg("not a vlan network"))?;
        let kind = kind_of(rec.driver).ok_or_else(|| NetError::system_msg("not a vlan driver"))?;
        let made = parent_to_make(&v);
        if let Some(what) = &made {
            self.dp.make_parent(&v.parent, &self.net_tag(&rec.id), what).await?;
        }
        let parent = v.parent.clone();
        let undo = |e: NetError| async move {
            if made.is_some() {
                let _ = self.dp.delete_link(&parent).await;
            }
            e
        };
        if let Err(e) = self.dp.probe_vlan(kind, &v.parent, &v.mode).await {
            return Err(undo(e).await);
        }
        if v.v6.is_some()
            && let Err(e) = self.enable_ipv6_forwarding()
        {
            return Err(undo(e).await);
        }
        if let Err(e) = st.stores.networks.store(&rec.id, &rec) {
            return Err(undo(e).await);
        }
        st.networks.insert(rec.id.clone(), rec.clone());
        self.refresh_dns(st).await;
        Ok(NetworkCreateResponse { id: rec.id, warning: String::new() })
    }
}
