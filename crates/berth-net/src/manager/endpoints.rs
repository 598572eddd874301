//! Containers on networks: connect, disconnect, release a whole sandbox, and
//! reconcile with the containers the engine knows to be alive.

use std::collections::{BTreeSet, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{NetworkManager, State};
use crate::dataplane::{Dataplane, PeerAddrs, VethSpec, VlanKind, VlanLinkSpec};
use crate::error::{NetError, Result};
use crate::ids;
use crate::model::{
    Driver, Endpoint, EndpointRecord, EndpointRequest, EndpointV6, NetworkRecord, SandboxRecord, format_mac, mac_for_ip,
    parse_mac,
};

/// What [`NetworkManager::reconcile`] cleaned up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Containers whose endpoints, ports and DNS were released.
    pub released: Vec<String>,
}

const MAX_VETH_NAME_TRIES: usize = 4;

impl<D: Dataplane> NetworkManager<D> {
    /// `docker network connect` / `--network`: puts the container's namespace on
    /// the network (veth, address, MAC, MTU, default route if it is the first
    /// non-internal network) and registers its DNS names. On any error nothing is
    /// left behind.
    pub async fn connect(&self, network: &str, req: EndpointRequest) -> Result<Endpoint> {
        let mut st = self.state.lock().await;
        let net = Self::resolve(&st, network)?.clone();
        let (rec, sandbox_new) = self.plan_endpoint(&st, &net, &req)?;
        let mut rec = rec;
        self.create_endpoint_link(&net, &mut rec, &req).await?;

        let sandbox = match st.sandboxes.get(&req.container_id) {
            Some(sb) => sb.clone(),
            None => SandboxRecord {
                container_id: req.container_id.clone(),
                netns: req.netns.clone(),
                ports: vec![],
                dns_servers: req.dns_servers.clone(),
            },
        };
        let mut sandbox = sandbox;
        if !req.dns_servers.is_empty() {
            sandbox.dns_servers = req.dns_servers.clone();
        }
        let persisted = st
            .stores
            .sandboxes
            .store(&sandbox.container_id, &sandbox)
            .and_then(|_| st.stores.endpoints.store(&rec.id, &rec));
        if let Err(e) = persisted {
            let _ = self.delete_endpoint_link(&rec, Some(&req.netns)).await;
            if sandbox_new {
                let _ = st.stores.sandboxes.remove(&sandbox.container_id);
            }
            return Err(e);
        }
        st.sandboxes.insert(sandbox.container_id.clone(), sandbox.clone());
        st.endpoints.insert(rec.id.clone(), rec.clone());

        // The network's first container puts its rules in the table; published ports
        // follow the gateway endpoint; legacy links open ports. (When nothing changed,
        // the rendered rules equal the applied ones and nft is not run.)
        if !net.active
            && let Some(n) = st.networks.get_mut(&net.id)
        {
            n.active = true;
            let n = n.clone();
            if let Err(e) = st.stores.networks.store(&n.id, &n) {
                tracing::warn!("recording that network {} is in use: {e}", n.name);
            }
        }
        if let Err(e) = self.apply_firewall(&st).await {
            tracing::warn!("updating the rules for {}: {e}", sandbox.container_id);
        }
        if rec.provides_gateway && !sandbox.ports.is_empty() {
            self.sync_proxies(&mut st);
        }
        self.refresh_dns(&mut st).await;
        if net.has_dns() && !st.dns_servers.contains_key(&req.container_id) {
            // The embedded DNS is part of a user network: without it, fail the connect.
            let err = NetError::system_msg(format!(
                "could not start the embedded DNS server for container {}",
                req.container_id
            ));
            self.remove_endpoint_locked(&mut st, &rec.id, true).await?;
            return Err(err);
        }
        Ok(Endpoint::from_record(&rec, &net))
    }

    /// Makes the endpoint's interface in the container's namespace: a veth pair into
    /// the network's bridge, or a macvlan/ipvlan interface on the network's parent.
    async fn create_endpoint_link(&self, net: &NetworkRecord, rec: &mut EndpointRecord, req: &EndpointRequest) -> Result<()> {
        let addrs = PeerAddrs {
            ip: rec.ip,
            prefix_len: rec.prefix_len,
            gateway: rec.provides_gateway.then_some(rec.gateway),
            ip6: rec.v6.map(|v| (v.ip, v.prefix_len)),
            gateway6: rec.v6.filter(|_| rec.provides_gateway).map(|v| v.gateway),
            link_local: rec.link_local.clone(),
        };
        if let Some(vlan) = &net.vlan {
            let kind = super::vlan::kind_of(net.driver).ok_or_else(|| NetError::system_msg("not a vlan driver"))?;
            let spec = VlanLinkSpec {
                kind,
                parent: vlan.parent.clone(),
                mode: vlan.mode.clone(),
                netns: req.netns.clone(),
                ifname: rec.ifname.clone(),
                // ipvlan interfaces share the parent's MAC.
                mac: if kind == VlanKind::Macvlan { Some(parse_mac(&rec.mac)?) } else { None },
                mtu: vlan.mtu,
                addrs,
            };
            return self.dp.create_vlan_link(&spec).await;
        }
        let bridge = net.bridge.as_ref().ok_or_else(|| NetError::system_msg("bridge network without a bridge"))?;
        let mut attempt = 0;
        loop {
            let spec = VethSpec {
                host_name: rec.host_veth.clone(),
                alias: self.ep_tag(&rec.id),
                bridge: bridge.ifname.clone(),
                netns: req.netns.clone(),
                ifname: rec.ifname.clone(),
                mac: parse_mac(&rec.mac)?,
                ip: addrs.ip,
                prefix_len: addrs.prefix_len,
                mtu: bridge.mtu,
                gateway: addrs.gateway,
                ip6: addrs.ip6,
                gateway6: addrs.gateway6,
                link_local: addrs.link_local.clone(),
            };
            match self.dp.create_veth(&spec).await {
                Ok(()) => return Ok(()),
                // A host veth name taken by someone else: pick another one.
                Err(e) if e.kind() == crate::ErrorKind::Conflict && attempt + 1 < MAX_VETH_NAME_TRIES => {
                    attempt += 1;
                    rec.host_veth = format!("veth{}", ids::short_random_hex(7));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Removes an endpoint's interface: its host veth (which takes the peer along), or
    /// a macvlan/ipvlan interface inside the container's namespace.
    async fn delete_endpoint_link(&self, rec: &EndpointRecord, netns: Option<&std::path::Path>) -> Result<()> {
        match (rec.host_veth.is_empty(), netns) {
            (false, _) => self.dp.delete_link(&rec.host_veth).await,
            (true, Some(ns)) => self.dp.delete_link_in(ns, &rec.ifname).await,
            (true, None) => Ok(()),
        }
    }

    /// Validates a connect request and prepares the endpoint record (address, MAC,
    /// interface names). Changes nothing.
    fn plan_endpoint(
        &self,
        st: &State<D::PortGuard>,
        net: &NetworkRecord,
        req: &EndpointRequest,
    ) -> Result<(EndpointRecord, bool)> {
        match net.driver {
            Driver::Bridge | Driver::Macvlan | Driver::Ipvlan => {}
            Driver::Host | Driver::Null => {
                return Err(NetError::forbidden(format!(
                    "container cannot be disconnected from {0} network or connected to {0} network",
                    net.name
                )));
            }
        }
        let plan = net.plan().ok_or_else(|| NetError::system_msg("network without addresses"))?;
        let default_bridge = net.bridge.as_ref().is_some_and(|b| b.default_bridge);
        let user_subnet = net.aux_names_and_user_subnet().1;
        if !ids::is_full_id(&req.container_id) {
            return Err(NetError::invalid(format!("invalid container ID {:?}", req.container_id)));
        }
        if !self.dp.netns_exists(&req.netns) {
            return Err(NetError::invalid(format!("network namespace {} does not exist", req.netns.display())));
        }
        let sandbox = st.sandboxes.get(&req.container_id);
        if let Some(sb) = sandbox
            && sb.netns != req.netns
        {
            return Err(NetError::invalid(format!(
                "container {} is already attached through network namespace {}",
                req.container_id,
                sb.netns.display()
            )));
        }
        if st.endpoints.values().any(|e| e.network_id == net.id && e.container_id == req.container_id) {
            let who = if req.container_name.is_empty() { ids::short_id(&req.container_id) } else { &req.container_name };
            return Err(NetError::forbidden(format!("endpoint with name {who} already exists in network {}", net.name)));
        }
        if default_bridge && !req.aliases.is_empty() {
            return Err(NetError::invalid("network-scoped alias is supported only for containers in user defined networks"));
        }
        if req.ipv4.is_some() || req.ipv6.is_some() {
            if default_bridge {
                return Err(NetError::invalid("user specified IP address is supported on user defined networks only"));
            }
            let user_v6 = net.v6().is_some_and(|v| v.user_subnet);
            if (req.ipv4.is_some() && !user_subnet) || (req.ipv6.is_some() && !user_v6) {
                return Err(NetError::invalid(
                    "user specified IP address is supported only when connecting to networks with user configured subnets",
                ));
            }
        }
        for ll in &req.link_local_ips {
            let link_local = match ll {
                IpAddr::V4(a) => a.is_link_local(),
                IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
            };
            if !link_local {
                return Err(NetError::invalid(format!("invalid link-local IP address: {ll}")));
            }
        }
        let used: BTreeSet<Ipv4Addr> = st.endpoints.values().filter(|e| e.network_id == net.id).map(|e| e.ip).collect();
        let ip = plan.allocate(&used, req.ipv4)?;
        let v6 = match net.v6() {
            Some(b6) => {
                let used6: BTreeSet<Ipv6Addr> =
                    st.endpoints.values().filter(|e| e.network_id == net.id).filter_map(|e| e.v6.map(|v| v.ip)).collect();
                let ip6 = b6.plan.allocate(&used6, req.ipv6)?;
                Some(EndpointV6 { ip: ip6, prefix_len: b6.plan.subnet.prefix_len(), gateway: b6.plan.gateway })
            }
            None if req.ipv6.is_some() => {
                return Err(NetError::invalid(format!("network {} does not have IPv6 enabled", net.name)));
            }
            None => None,
        };
        let mac = match &req.mac {
            Some(m) if !m.is_empty() => format_mac(&parse_mac(m)?),
            _ => format_mac(&mac_for_ip(ip)),
        };
        let mine: Vec<&EndpointRecord> = st.endpoints.values().filter(|e| e.container_id == req.container_id).collect();
        let ifname = (0..)
            .map(|i| format!("eth{i}"))
            .find(|n| !mine.iter().any(|e| &e.ifname == n))
            .unwrap_or_else(|| "eth0".into());
        let provides_gateway = !net.internal && !mine.iter().any(|e| e.provides_gateway);
        let seq = st.endpoints.values().map(|e| e.seq).max().unwrap_or(0) + 1;
        let mut aliases = Vec::new();
        for a in &req.aliases {
            if a.is_empty() || a.contains(char::is_whitespace) {
                return Err(NetError::invalid(format!("invalid network alias {a:?}")));
            }
            if !aliases.contains(a) {
                aliases.push(a.clone());
            }
        }
        for (alias, target) in &req.links {
            if alias.is_empty() || target.is_empty() || alias.contains(char::is_whitespace) {
                return Err(NetError::invalid(format!("invalid link {target}:{alias}")));
            }
        }
        if !req.links.is_empty() && !net.has_dns() {
            return Err(NetError::invalid("link aliases are only supported on user defined networks"));
        }
        let rec = EndpointRecord {
            id: ids::new_id(),
            network_id: net.id.clone(),
            container_id: req.container_id.clone(),
            container_name: req.container_name.trim_start_matches('/').to_string(),
            aliases,
            requested_ip: req.ipv4,
            ifname,
            // macvlan/ipvlan interfaces have no host side.
            host_veth: if net.bridge.is_some() { format!("veth{}", ids::short_random_hex(7)) } else { String::new() },
            ip,
            prefix_len: plan.subnet.prefix_len(),
            gateway: plan.gateway,
            mac,
            provides_gateway,
            seq,
            links: req.links.clone(),
            linked_ports: req.linked_ports.clone(),
            v6,
            requested_ipv6: req.ipv6,
            link_local: req.link_local_ips.clone(),
        };
        Ok((rec, sandbox.is_none()))
    }

    /// `docker rename`: the container's endpoints answer to the new name in DNS (and no
    /// longer to the old one), as dockerd renames its sandbox's service records.
    pub async fn rename_container(&self, container_id: &str, new_name: &str) -> Result<()> {
        let mut st = self.state.lock().await;
        let ids: Vec<String> = st.endpoints.values().filter(|e| e.container_id == container_id).map(|e| e.id.clone()).collect();
        for id in ids {
            let Some(mut rec) = st.endpoints.get(&id).cloned() else { continue };
            rec.container_name = new_name.to_string();
            st.stores.endpoints.store(&rec.id, &rec)?;
            st.endpoints.insert(id, rec);
        }
        self.refresh_dns(&mut st).await;
        Ok(())
    }

    /// `docker network disconnect`: removes the container's endpoint on the network.
    /// If it carried the default route, the next non-internal network takes over.
    pub async fn disconnect(&self, network: &str, container_id: &str) -> Result<()> {
        let mut st = self.state.lock().await;
        let net = Self::resolve(&st, network)?.clone();
        if matches!(net.driver, Driver::Host | Driver::Null) {
            return Err(NetError::forbidden(format!(
                "container cannot be disconnected from {0} network or connected to {0} network",
                net.name
            )));
        }
        let ep = st
            .endpoints
            .values()
            .find(|e| e.network_id == net.id && e.container_id == container_id)
            .map(|e| e.id.clone())
            .ok_or_else(|| {
                NetError::not_found(format!("container {container_id} is not connected to network {}", net.name))
            })?;
        self.remove_endpoint_locked(&mut st, &ep, true).await
    }

    /// Removes one endpoint: record first (the commit point), then the veth, then the
    /// knock-on effects (default route hand-over, rules, DNS, empty sandbox).
    /// `wait_for_link`: false when the container is stopping (its namespace goes too,
    /// nobody needs to wait for the kernel to finish unregistering the veth).
    async fn remove_endpoint_locked(&self, st: &mut State<D::PortGuard>, endpoint_id: &str, wait_for_link: bool) -> Result<()> {
        let Some(rec) = st.endpoints.get(endpoint_id).cloned() else { return Ok(()) };
        st.stores.endpoints.remove(&rec.id)?;
        st.endpoints.remove(&rec.id);
        let netns = st.sandboxes.get(&rec.container_id).map(|sb| sb.netns.clone());
        if !wait_for_link {
            // A stopping container's namespace goes, with a macvlan/ipvlan interface in it.
            if !rec.host_veth.is_empty() {
                self.dp.delete_link_in_background(&rec.host_veth);
            }
        } else if let Err(e) = self.delete_endpoint_link(&rec, netns.as_deref()).await {
            tracing::warn!("endpoint {} removed but its interface was not: {e}", rec.id);
        }
        let cid = rec.container_id.clone();
        let remaining = Self::sandbox_endpoints(st, &cid).into_iter().map(|e| e.id.clone()).collect::<Vec<_>>();
        if remaining.is_empty() {
            st.port_guards.remove(&cid);
            st.stores.sandboxes.remove(&cid)?;
            st.sandboxes.remove(&cid);
        } else if rec.provides_gateway {
            self.hand_over_gateway(st, &cid).await;
        }
        if let Err(e) = self.apply_firewall(st).await {
            tracing::warn!("updating rules after removing endpoint {}: {e}", rec.id);
        }
        self.sync_proxies(st);
        self.refresh_dns(st).await;
        Ok(())
    }

    async fn hand_over_gateway(&self, st: &mut State<D::PortGuard>, container_id: &str) {
        let Some(netns) = st.sandboxes.get(container_id).map(|s| s.netns.clone()) else { return };
        let next = Self::sandbox_endpoints(st, container_id)
            .into_iter()
            .find(|e| st.networks.get(&e.network_id).is_some_and(|n| !n.internal))
            .cloned();
        let Some(mut next) = next else { return };
        if let Err(e) = self.dp.set_default_route(&netns, &next.ifname, next.gateway, next.v6.map(|v| v.gateway)).await {
            tracing::warn!("moving the default route of {container_id} to {}: {e}", next.ifname);
            return;
        }
        next.provides_gateway = true;
        if let Err(e) = st.stores.endpoints.store(&next.id, &next) {
            tracing::warn!("recording the new gateway endpoint of {container_id}: {e}");
        }
        st.endpoints.insert(next.id.clone(), next);
    }

    /// Everything of one container goes: endpoints, published ports, DNS server.
    /// For container stop/removal. The namespace itself is the caller's.
    pub async fn release(&self, container_id: &str) -> Result<()> {
        let mut st = self.state.lock().await;
        self.release_locked(&mut st, container_id).await
    }

    async fn release_locked(&self, st: &mut State<D::PortGuard>, container_id: &str) -> Result<()> {
        if let Some(sb) = st.sandboxes.get_mut(container_id)
            && !sb.ports.is_empty()
        {
            sb.ports.clear();
            let sb = sb.clone();
            st.stores.sandboxes.store(&sb.container_id, &sb)?;
            st.port_guards.remove(container_id);
        }
        let eps: Vec<String> = Self::sandbox_endpoints(st, container_id).iter().map(|e| e.id.clone()).collect();
        for id in eps {
            self.remove_endpoint_locked(st, &id, false).await?;
        }
        if st.sandboxes.remove(container_id).is_some() {
            st.stores.sandboxes.remove(container_id)?;
            st.port_guards.remove(container_id);
            self.sync_proxies(st);
            self.apply_firewall(st).await?;
            self.refresh_dns(st).await;
        }
        Ok(())
    }

    /// After a daemon restart: `live` are the containers still running. Every other
    /// container's endpoints, ports and DNS are released.
    pub async fn reconcile(&self, live: &HashSet<String>) -> Result<ReconcileReport> {
        let mut st = self.state.lock().await;
        let mut ids: BTreeSet<String> = st.sandboxes.keys().cloned().collect();
        ids.extend(st.endpoints.values().map(|e| e.container_id.clone()));
        let mut report = ReconcileReport::default();
        for cid in ids.into_iter().filter(|c| !live.contains(c)) {
            self.release_locked(&mut st, &cid).await?;
            report.released.push(cid);
        }
        Ok(report)
    }

    /// Containers that have network state here (endpoints or ports).
    pub async fn containers(&self) -> BTreeSet<String> {
        let st = self.state.lock().await;
        let mut ids: BTreeSet<String> = st.sandboxes.keys().cloned().collect();
        ids.extend(st.endpoints.values().map(|e| e.container_id.clone()));
        ids
    }
}
