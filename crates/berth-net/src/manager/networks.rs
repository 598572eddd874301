//! Network objects: create, inspect, list (with Docker's filters), remove, prune.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use super::{NetworkManager, State, now_rfc3339, options};
use crate::config::validate_ifname;
use crate::dataplane::Dataplane;
use crate::error::{NetError, Result};
use crate::ids;
use crate::ipam::{self, SubnetPlan};
use crate::ipam6::{self, SubnetPlan6};
use crate::model::{BridgeSettings, BridgeV6, Driver, NetworkRecord};
use berth_types::network::{
    ConfigReference, Ipam, IpamPoolConfig, Network, NetworkContainer, NetworkCreateRequest, NetworkCreateResponse,
};

/// Docker's `filters` query (`map[string][]string`) for list and prune.
pub type NetworkFilters = BTreeMap<String, Vec<String>>;

const PREDEFINED: [&str; 3] = ["bridge", "host", "none"];

/// dockerd takes any name that is not blank (spaces, dots, even slashes: `my net` is a
/// network name); it is never used as a path or an interface name here.
fn validate_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(NetError::invalid(format!("invalid name: {name}")));
    }
    Ok(())
}

fn parse_bool_option(key: &str, v: &str) -> Result<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(NetError::invalid(format!("failed to parse {key} value: invalid syntax: {v:?}"))),
    }
}

fn truthy(v: &str) -> Option<bool> {
    parse_bool_option("", v).ok()
}

impl<D: Dataplane> NetworkManager<D> {
    /// Finds a network by full ID, exact name, or unique ID prefix (Docker's order).
    pub(super) fn resolve<'a>(st: &'a State<D::PortGuard>, name_or_id: &str) -> Result<&'a NetworkRecord> {
        if let Some(n) = st.networks.get(name_or_id) {
            return Ok(n);
        }
        if let Some(n) = st.networks.values().find(|n| n.name == name_or_id) {
            return Ok(n);
        }
        if !name_or_id.is_empty() {
            let matches: Vec<&NetworkRecord> = st.networks.values().filter(|n| n.id.starts_with(name_or_id)).collect();
            match matches.len() {
                1 => return Ok(matches[0]),
                0 => {}
                n => {
                    return Err(NetError::invalid(format!(
                        "network {name_or_id} is ambiguous ({n} matches found based on ID prefix)"
                    )));
                }
            }
        }
        Err(NetError::no_such_network(name_or_id))
    }

    /// `POST /networks/create`: a user-defined bridge, macvlan or ipvlan network.
    pub async fn create_network(&self, req: NetworkCreateRequest) -> Result<NetworkCreateResponse> {
        if self.config.rootless {
            return Err(NetError::forbidden(format!(
                "cannot create network {:?}: user-defined networks are not supported in rootless mode (use the default network, host or none)",
                req.name
            )));
        }
        let mut st = self.state.lock().await;
        let rec = self.plan_network(&st, &req).await?;
        if rec.vlan.is_some() {
            return self.create_vlan_network(&mut st, rec).await;
        }
        let spec = self.bridge_spec(&rec).ok_or_else(|| NetError::system_msg("bridge network without a bridge"))?;

        self.may_take_bridge(&spec, false).await?;
        if rec.bridge.as_ref().is_some_and(|b| !b.icc) {
            self.ensure_bridge_netfilter()?;
        }
        if rec.bridge.as_ref().is_some_and(|b| b.v6.is_some()) {
            self.enable_ipv6_forwarding()?;
        }
        self.dp.ensure_bridge(&spec).await?;
        let undo_bridge = |e: NetError| async move {
            if let Err(e2) = self.dp.delete_link(&spec.name).await {
                tracing::warn!("rolling back bridge {}: {e2}", spec.name);
            }
            e
        };
        if let Err(e) = st.stores.networks.store(&rec.id, &rec) {
            return Err(undo_bridge(e).await);
        }
        st.networks.insert(rec.id.clone(), rec.clone());
        if let Err(e) = self.apply_firewall(&st).await {
            st.networks.remove(&rec.id);
            let _ = st.stores.networks.remove(&rec.id);
            return Err(undo_bridge(e).await);
        }
        self.refresh_dns(&mut st).await;
        Ok(NetworkCreateResponse { id: rec.id, warning: String::new() })
    }

    /// Validates a create request against Docker's rules and the current state and
    /// returns the record to create. Changes nothing.
    async fn plan_network(&self, st: &State<D::PortGuard>, req: &NetworkCreateRequest) -> Result<NetworkRecord> {
        validate_name(&req.name)?;
        if PREDEFINED.contains(&req.name.as_str()) {
            return Err(NetError::forbidden(format!("{} is a pre-defined network and cannot be created", req.name)));
        }
        if st.networks.values().any(|n| n.name == req.name) {
            return Err(NetError::conflict(format!("network with name {} already exists", req.name)));
        }
        let driver = match req.driver.as_str() {
            "" | "bridge" => Driver::Bridge,
            "macvlan" => Driver::Macvlan,
            "ipvlan" => Driver::Ipvlan,
            "host" | "null" => {
                return Err(NetError::forbidden(format!("only one instance of \"{}\" network is allowed", req.driver)));
            }
            other => return Err(NetError::not_found(format!("plugin \"{other}\" not found"))),
        };
        if !matches!(req.scope.as_str(), "" | "local") {
            return Err(NetError::invalid(format!("invalid scope {:?}: bridge networks are local", req.scope)));
        }
        if req.ingress {
            return Err(NetError::invalid("ingress networks need swarm mode, which berth does not have"));
        }
        if req.config_only {
            return Err(NetError::invalid("config-only networks (--config-only) are not supported by berth: create the network with its options instead"));
        }
        if req.config_from.as_ref().is_some_and(|c| !c.network.is_empty()) {
            return Err(NetError::invalid("--config-from is not supported by berth: create the network with its options instead"));
        }
        if req.enable_ipv4 == Some(false) {
            return Err(NetError::invalid("IPv4 cannot be disabled on a bridge network"));
        }
        let ipam_req = req.ipam.clone().unwrap_or_default();
        if !matches!(ipam_req.driver.as_str(), "" | "default") {
            return Err(NetError::not_found(format!("plugin \"{}\" not found", ipam_req.driver)));
        }
        // IPv6 entries are ignored when IPv6 is off, as Docker does.
        let v4: Vec<&IpamPoolConfig> =
            ipam_req.configs().iter().filter(|c| c.subnet.is_empty() || !c.subnet.contains(':')).collect();
        if v4.len() > 1 {
            return Err(NetError::forbidden(format!("{} driver doesn't support multiple subnets", driver.as_str())));
        }
        let req_options = req.options.clone().unwrap_or_default();
        if driver != Driver::Bridge {
            let id = ids::new_id();
            let ipv6 = req.enable_ipv6 == Some(true);
            let vlan = self.plan_vlan(st, &id, driver, &req_options, req.internal, v4.first().copied(), ipv6, &ipam_req).await?;
            return Ok(NetworkRecord {
                id,
                name: req.name.clone(),
                created: now_rfc3339(),
                driver,
                internal: req.internal,
                attachable: req.attachable,
                labels: req.labels.clone().unwrap_or_default(),
                options: req_options,
                ipam_options: ipam_req.options.clone().unwrap_or_default(),
                ipam_options_given: ipam_req.options.is_some(),
                bridge: None,
                vlan: Some(vlan),
                active: false,
            });
        }

        let mut mtu = self.config.mtu;
        let mut masquerade = true;
        let mut icc = true;
        let mut host_binding = self.config.default_binding_ip;
        let mut ifname = None;
        for (k, v) in &req_options {
            match k.as_str() {
                options::BRIDGE_NAME => {
                    validate_ifname(v)?;
                    ifname = Some(v.clone());
                }
                options::MTU => {
                    mtu = v
                        .parse::<u32>()
                        .ok()
                        .filter(|m| (68..=65535).contains(m))
                        .ok_or_else(|| NetError::invalid(format!("invalid MTU value {v:?}")))?;
                }
                options::MASQUERADE => masquerade = parse_bool_option(k, v)?,
                options::ICC => icc = parse_bool_option(k, v)?,
                options::HOST_BINDING => {
                    host_binding = v
                        .parse::<Ipv4Addr>()
                        .map_err(|_| NetError::invalid(format!("invalid host binding address {v:?}")))?;
                }
                _ => {}
            }
        }
        let id = ids::new_id();
        let ifname = ifname.unwrap_or_else(|| format!("br-{}", &id[..12]));
        if st.networks.values().any(|n| n.bridge.as_ref().is_some_and(|b| b.ifname == ifname)) {
            return Err(NetError::conflict(format!("bridge name {ifname} is already used by another network")));
        }

        let v6 = if req.enable_ipv6 == Some(true) { Some(self.plan_v6(st, &ipam_req).await?) } else { None };
        let (plan, aux_names, user_subnet) = self.plan_v4(st, v4.first().copied()).await?;
        Ok(NetworkRecord {
            id,
            name: req.name.clone(),
            created: now_rfc3339(),
            driver: Driver::Bridge,
            internal: req.internal,
            attachable: req.attachable,
            labels: req.labels.clone().unwrap_or_default(),
            options: req_options,
            ipam_options: ipam_req.options.clone().unwrap_or_default(),
                ipam_options_given: ipam_req.options.is_some(),
            bridge: Some(BridgeSettings {
                ifname,
                plan,
                aux_names,
                user_subnet,
                mtu,
                masquerade,
                host_binding_ipv4: host_binding,
                default_bridge: false,
                icc,
                v6,
            }),
            vlan: None,
            active: false,
        })
    }

    /// The IPv4 subnet of a new network: its `IPAM.Config` entry (checked against the
    /// other networks), or the next free pool subnet. With the aux names and whether
    /// the user gave the subnet.
    pub(super) async fn plan_v4(&self, st: &State<D::PortGuard>, cfg: Option<&IpamPoolConfig>) -> Result<(SubnetPlan, Vec<String>, bool)> {
        let ours: Vec<ipnet::Ipv4Net> = st.networks.values().filter_map(|n| n.plan().map(|p| p.subnet)).collect();
        let v4: Vec<&IpamPoolConfig> = cfg.into_iter().collect();
        let planned = match v4.first().filter(|c| !c.subnet.is_empty()) {
            Some(c) => {
                let aux: Vec<(String, String)> =
                    c.auxiliary_addresses.iter().flatten().map(|(k, v)| (k.clone(), v.clone())).collect();
                let v = ipam::validate_ipam_config(&c.subnet, Some(c.ip_range.as_str()), Some(c.gateway.as_str()), &aux)?;
                if ours.iter().any(|o| ipam::overlaps(o, &v.subnet)) {
                    return Err(NetError::forbidden("invalid pool request: Pool overlaps with other one on this address space"));
                }
                let names = aux.into_iter().map(|(k, _)| k).collect();
                (SubnetPlan::new(v.subnet, v.gateway, v.ip_range, v.aux)?, names, true)
            }
            None => {
                if v4.first().is_some_and(|c| !c.gateway.is_empty() || !c.ip_range.is_empty()) {
                    return Err(NetError::invalid("a gateway or ip-range needs a subnet"));
                }
                let mut taken = self.dp.host_routes().await?;
                taken.extend(ours);
                let subnet = ipam::allocate_subnet(&self.config.address_pools, &taken)?;
                (SubnetPlan::new(subnet, None, None, vec![])?, vec![], false)
            }
        };
        Ok(planned)
    }

    /// The IPv6 side of a new `--ipv6` network: its `IPAM.Config` IPv6 entry, or a
    /// /64 from the pools.
    pub(super) async fn plan_v6(&self, st: &State<D::PortGuard>, ipam_req: &Ipam) -> Result<BridgeV6> {
        let v6: Vec<&IpamPoolConfig> = ipam_req.configs().iter().filter(|c| c.subnet.contains(':')).collect();
        if v6.len() > 1 {
            return Err(NetError::forbidden("bridge driver doesn't support multiple subnets"));
        }
        let ours: Vec<ipnet::Ipv6Net> = st.networks.values().filter_map(|n| n.v6().map(|v| v.plan.subnet)).collect();
        match v6.first() {
            Some(c) => {
                let aux: Vec<(String, String)> =
                    c.auxiliary_addresses.iter().flatten().map(|(k, v)| (k.clone(), v.clone())).collect();
                let plan = ipam6::validate_ipam_config(&c.subnet, Some(c.ip_range.as_str()), Some(c.gateway.as_str()), &aux)?;
                if ours.iter().any(|o| ipam6::overlaps(o, &plan.subnet)) {
                    return Err(NetError::forbidden("invalid pool request: Pool overlaps with other one on this address space"));
                }
                Ok(BridgeV6 { plan, aux_names: aux.into_iter().map(|(k, _)| k).collect(), user_subnet: true })
            }
            None => {
                let mut taken = self.dp.host_routes6().await?;
                taken.extend(ours);
                let subnet = ipam6::allocate_subnet(&self.v6_pools, &taken)?;
                Ok(BridgeV6 { plan: SubnetPlan6::new(subnet, None, None, vec![])?, aux_names: vec![], user_subnet: false })
            }
        }
    }

    fn inspect_record(st: &State<D::PortGuard>, net: &NetworkRecord, with_containers: bool) -> Network {
        let (config, options_null) = match net.plan() {
            Some(plan) => {
                let mut aux = BTreeMap::new();
                for (name, ip) in net.aux_names_and_user_subnet().0.iter().zip(&plan.reserved) {
                    aux.insert(name.clone(), ip.to_string());
                }
                let cfg = IpamPoolConfig {
                    subnet: plan.subnet.to_string(),
                    ip_range: plan.ip_range.map(|r| r.to_string()).unwrap_or_default(),
                    gateway: plan.gateway.to_string(),
                    auxiliary_addresses: if aux.is_empty() { None } else { Some(aux) },
                };
                let mut configs = vec![cfg];
                if let Some(v6) = net.v6() {
                    let aux6: BTreeMap<String, String> =
                        v6.aux_names.iter().zip(&v6.plan.reserved).map(|(n, ip)| (n.clone(), ip.to_string())).collect();
                    configs.push(IpamPoolConfig {
                        subnet: v6.plan.subnet.to_string(),
                        ip_range: v6.plan.ip_range.map(|r| r.to_string()).unwrap_or_default(),
                        gateway: v6.plan.gateway.to_string(),
                        auxiliary_addresses: if aux6.is_empty() { None } else { Some(aux6) },
                    });
                }
                (configs, false)
            }
            None => (vec![], true),
        };
        let mut containers = BTreeMap::new();
        if with_containers {
            for e in st.endpoints.values().filter(|e| e.network_id == net.id) {
                containers.insert(
                    e.container_id.clone(),
                    NetworkContainer {
                        name: e.container_name.clone(),
                        endpoint_id: e.id.clone(),
                        mac_address: e.mac.clone(),
                        ipv4_address: format!("{}/{}", e.ip, e.prefix_len),
                        ipv6_address: e.v6.map(|v| format!("{}/{}", v.ip, v.prefix_len)).unwrap_or_default(),
                    },
                );
            }
        }
        Network {
            name: net.name.clone(),
            id: net.id.clone(),
            created: net.created.clone(),
            scope: "local".into(),
            driver: net.driver.as_str().into(),
            enable_ipv4: net.plan().is_some(),
            enable_ipv6: net.v6().is_some(),
            ipam: Ipam {
                driver: "default".into(),
                options: if options_null || (!net.ipam_options_given && net.ipam_options.is_empty()) { None } else { Some(net.ipam_options.clone()) },
                config: Some(config),
            },
            internal: net.internal,
            attachable: net.attachable,
            ingress: false,
            config_from: ConfigReference::default(),
            config_only: false,
            containers,
            options: net.options.clone(),
            labels: net.labels.clone(),
        }
    }

    /// `GET /networks/{id}`.
    pub async fn inspect_network(&self, name_or_id: &str) -> Result<Network> {
        let st = self.state.lock().await;
        let net = Self::resolve(&st, name_or_id)?;
        Ok(Self::inspect_record(&st, net, true))
    }

    /// `GET /networks?filters=...` (Containers left empty, as Docker does since 1.28).
    pub async fn list_networks(&self, filters: &NetworkFilters) -> Result<Vec<Network>> {
        let st = self.state.lock().await;
        let mut out = Vec::new();
        for net in st.networks.values() {
            if Self::matches(&st, net, filters)? {
                out.push(Self::inspect_record(&st, net, false));
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub(super) fn has_endpoints(st: &State<D::PortGuard>, net_id: &str) -> bool {
        st.endpoints.values().any(|e| e.network_id == net_id)
    }

    fn matches(st: &State<D::PortGuard>, net: &NetworkRecord, filters: &NetworkFilters) -> Result<bool> {
        for (key, values) in filters {
            if values.is_empty() {
                continue;
            }
            let any = |f: &dyn Fn(&str) -> Result<bool>| -> Result<bool> {
                for v in values {
                    if f(v)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            };
            let ok = match key.as_str() {
                "name" => any(&|v| Ok(net.name.contains(v)))?,
                "id" => any(&|v| Ok(net.id.contains(v)))?,
                "driver" => any(&|v| Ok(net.driver.as_str() == v))?,
                "scope" => any(&|v| match v {
                    "local" => Ok(true),
                    "swarm" | "global" => Ok(false),
                    _ => Err(NetError::invalid(format!("invalid filter: 'scope'='{v}'"))),
                })?,
                "type" => any(&|v| match v {
                    "custom" => Ok(!net.is_predefined()),
                    "builtin" => Ok(net.is_predefined()),
                    _ => Err(NetError::invalid(format!("invalid filter: 'type'='{v}'"))),
                })?,
                "label" => any(&|v| Ok(label_matches(&net.labels, v)))?,
                "dangling" => any(&|v| match truthy(v) {
                    Some(true) => Ok(!net.is_predefined() && !Self::has_endpoints(st, &net.id)),
                    Some(false) => Ok(net.is_predefined() || Self::has_endpoints(st, &net.id)),
                    None => Err(NetError::invalid(format!("invalid filter 'dangling={v}'"))),
                })?,
                other => return Err(NetError::invalid(format!("invalid filter '{other}'"))),
            };
            if !ok {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// `DELETE /networks/{id}`.
    pub async fn remove_network(&self, name_or_id: &str) -> Result<()> {
        let mut st = self.state.lock().await;
        let net = Self::resolve(&st, name_or_id)?.clone();
        Self::check_removable(&st, &net)?;
        self.remove_locked(&mut st, &net).await
    }

    fn check_removable(st: &State<D::PortGuard>, net: &NetworkRecord) -> Result<()> {
        if net.is_predefined() {
            return Err(NetError::forbidden(format!("{} is a pre-defined network and cannot be removed", net.name)));
        }
        if Self::has_endpoints(st, &net.id) {
            return Err(NetError::forbidden(format!(
                "error while removing network: network {} id {} has active endpoints",
                net.name, net.id
            )));
        }
        Ok(())
    }

    async fn remove_locked(&self, st: &mut State<D::PortGuard>, net: &NetworkRecord) -> Result<()> {
        // Rules first (atomic; on failure nothing has changed), then the record (the
        // commit point), then the bridge (a crash here leaves a tagged bridge that the
        // next open() deletes).
        st.networks.remove(&net.id);
        if let Err(e) = self.apply_firewall(st).await {
            st.networks.insert(net.id.clone(), net.clone());
            return Err(e);
        }
        if let Err(e) = st.stores.networks.remove(&net.id) {
            st.networks.insert(net.id.clone(), net.clone());
            let _ = self.apply_firewall(st).await;
            return Err(e);
        }
        if let Some(b) = &net.bridge
            && let Err(e) = self.dp.retire_link(&b.ifname).await
        {
            tracing::warn!("network {} removed but its bridge {} was not: {e}", net.name, b.ifname);
        }
        if let Some(v) = net.vlan.as_ref().filter(|v| v.created_parent)
            && let Err(e) = self.dp.delete_link(&v.parent).await
        {
            tracing::warn!("network {} removed but its parent {} was not: {e}", net.name, v.parent);
        }
        self.refresh_dns(st).await;
        Ok(())
    }

    /// `POST /networks/prune`: removes unused user-defined networks matching
    /// `until` / `label` / `label!` filters; returns the names removed.
    pub async fn prune_networks(&self, filters: &NetworkFilters) -> Result<Vec<String>> {
        let now = chrono::Utc::now();
        let mut until = None;
        for (k, vs) in filters {
            match k.as_str() {
                "until" => {
                    for v in vs {
                        until = Some(parse_until(v, now)?);
                    }
                }
                "label" | "label!" => {}
                other => return Err(NetError::invalid(format!("invalid filter '{other}'"))),
            }
        }
        let mut st = self.state.lock().await;
        let candidates: Vec<NetworkRecord> = st
            .networks
            .values()
            .filter(|n| !n.is_predefined() && !Self::has_endpoints(&st, &n.id))
            .filter(|n| {
                let created = chrono::DateTime::parse_from_rfc3339(&n.created).ok();
                until.is_none_or(|u| created.is_some_and(|c| c < u))
            })
            .filter(|n| filters.get("label").is_none_or(|vs| vs.iter().all(|v| label_matches(&n.labels, v))))
            .filter(|n| filters.get("label!").is_none_or(|vs| vs.iter().all(|v| !label_matches(&n.labels, v))))
            .cloned()
            .collect();
        let mut removed = Vec::new();
        for net in candidates {
            self.remove_locked(&mut st, &net).await?;
            removed.push(net.name);
        }
        Ok(removed)
    }

    /// IDs of every network (for the engine's bookkeeping).
    pub async fn network_ids(&self) -> BTreeSet<String> {
        self.state.lock().await.networks.keys().cloned().collect()
    }
}

fn label_matches(labels: &BTreeMap<String, String>, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
        None => labels.contains_key(filter),
    }
}

/// `until` of prune filters: RFC 3339, a date-time without zone, Unix seconds
/// (optionally fractional), or a Go duration ("10m", "1h30m") back from now.
fn parse_until(v: &str, now: chrono::DateTime<chrono::Utc>) -> Result<chrono::DateTime<chrono::FixedOffset>> {
    let bad = || NetError::invalid(format!("invalid filter 'until={v}'"));
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Ok(t);
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(v, fmt) {
            return Ok(t.and_utc().fixed_offset());
        }
        if let Ok(d) = chrono::NaiveDate::parse_from_str(v, fmt)
            && let Some(t) = d.and_hms_opt(0, 0, 0)
        {
            return Ok(t.and_utc().fixed_offset());
        }
    }
    if let Ok(secs) = v.parse::<f64>() {
        let t = chrono::DateTime::from_timestamp(secs.trunc() as i64, (secs.fract() * 1e9) as u32).ok_or_else(bad)?;
        return Ok(t.fixed_offset());
    }
    let d = berth_types::units::parse_go_duration(v).map(chrono::Duration::nanoseconds).map_err(|_| bad())?;
    Ok((now - d).fixed_offset())
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_filters_helpers() {
        assert!(validate_name("trace-net").is_ok());
        assert!(validate_name("a.b_c-1").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("   ").is_err());
        assert!(validate_name("-x").is_ok());
        assert!(validate_name("my net").is_ok());
        let labels = BTreeMap::from([("env".to_string(), "ci".to_string())]);
        assert!(label_matches(&labels, "env"));
        assert!(label_matches(&labels, "env=ci"));
        assert!(!label_matches(&labels, "env=prod"));
        assert_eq!(berth_types::units::parse_go_duration("1h30m").map(chrono::Duration::nanoseconds), Ok(chrono::Duration::minutes(90)));
        assert!(berth_types::units::parse_go_duration("10x").is_err());
        let now = chrono::Utc::now();
        assert!(parse_until("2026-01-02T03:04:05Z", now).is_ok());
        assert!(parse_until("1700000000", now).is_ok());
        assert!(parse_until("10m", now).is_ok());
        assert!(parse_until("yesterday", now).is_err());
    }
}
