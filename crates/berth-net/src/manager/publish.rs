//! Published ports (`-p`, `-P`): host ports are held by bound sockets (which both
//! detects a port in use and keeps it ours) and forwarded in-kernel by the nft table
//! to the container's gateway endpoint; IPv6 loopback, and IPv6 to containers without
//! IPv6, go through the userland proxy (see [`crate::proxy`]).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use super::{NetworkManager, State};
use crate::dataplane::Dataplane;
use crate::error::{NetError, Result};
use crate::ports::{self, HostPort, PortBindingRequest, PortMap, PortMapping, Proto};

impl<D: Dataplane> NetworkManager<D> {
    /// Publishes `bindings` for a connected container and returns the mappings
    /// actually made (host ports chosen for `Any` and ranges). A binding without a
    /// host address is made on 0.0.0.0 and, on hosts with IPv6, on [::] with the same
    /// port, as Docker does. All or nothing: if one binding fails, none is kept. A
    /// container whose networks are all internal gets no mappings, as in Docker.
    pub async fn publish(&self, container_id: &str, bindings: &[PortBindingRequest]) -> Result<Vec<PortMapping>> {
        let mut st = self.state.lock().await;
        let Some(sandbox) = st.sandboxes.get(container_id).cloned() else {
            return Err(NetError::not_found(format!("container {container_id} is not connected to any network")));
        };
        let Some(gw) = Self::gateway_endpoint(&st, container_id).cloned() else {
            return Ok(Vec::new());
        };
        // Ports are published from bridge networks only (macvlan/ipvlan containers are
        // on the parent's LAN themselves), as in Docker.
        if st.networks.get(&gw.network_id).is_none_or(|n| n.bridge.is_none()) {
            return Ok(Vec::new());
        }
        let default_ip = st
            .networks
            .get(&gw.network_id)
            .and_then(|n| n.bridge.as_ref())
            .map(|b| b.host_binding_ipv4)
            .unwrap_or(self.config.default_binding_ip);

        let mut made: Vec<(PortMapping, D::PortGuard)> = Vec::new();
        for b in bindings {
            if b.container_port == 0 {
                return Err(NetError::invalid("invalid container port 0"));
            }
            let ip = b.host_ip.unwrap_or(IpAddr::V4(default_ip));
            let (port, guard) = self.reserve_one(&mut st.port_cursor, ip, b.host_port, b.proto)?;
            made.push((PortMapping { container_port: b.container_port, proto: b.proto, host_ip: ip, host_port: port }, guard));
            if b.host_ip.is_none() && default_ip.is_unspecified() && self.dp.host_has_ipv6() {
                // The same port on [::]; where it is taken, the IPv4 one is enough.
                let any6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
                if let Ok(g) = self.dp.reserve_port(any6, port, b.proto) {
                    made.push((PortMapping { container_port: b.container_port, proto: b.proto, host_ip: any6, host_port: port }, g));
                }
            }
        }
        if made.is_empty() {
            return Ok(Vec::new());
        }

        let mut updated = sandbox.clone();
        updated.ports.extend(made.iter().map(|(m, _)| *m));
        st.stores.sandboxes.store(container_id, &updated)?;
        st.sandboxes.insert(container_id.to_string(), updated);
        if let Err(e) = self.apply_firewall(&st).await {
            // Roll back: the old record and rules; the new sockets close on return.
            let _ = st.stores.sandboxes.store(container_id, &sandbox);
            st.sandboxes.insert(container_id.to_string(), sandbox);
            return Err(e);
        }
        let mappings: Vec<PortMapping> = made.iter().map(|(m, _)| *m).collect();
        st.port_guards.entry(container_id.to_string()).or_default().extend(made);
        self.sync_proxies(&mut st);
        Ok(mappings)
    }

    /// Finds and holds one host port for `ip`/`proto` as `want` asks.
    fn reserve_one(&self, cursor: &mut u16, ip: IpAddr, want: HostPort, proto: Proto) -> Result<(u16, D::PortGuard)> {
        let start = *cursor;
        for port in ports::candidates(want, self.ephemeral, start) {
            match self.dp.reserve_port(ip, port, proto) {
                Ok(guard) => {
                    if want == HostPort::Any {
                        *cursor = if port >= self.ephemeral.1 { self.ephemeral.0 } else { port + 1 };
                    }
                    return Ok((port, guard));
                }
                Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) || e.raw_os_error() == Some(libc::EACCES) => {
                    continue;
                }
                Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {
                    return Err(NetError::invalid(format!(
                        "cannot publish on {}/{proto}: {ip} is not an address of this host",
                        ports::host_port_str(ip, port)
                    )));
                }
                Err(e) => return Err(NetError::system(format!("bind {}/{proto}", ports::host_port_str(ip, port)), e)),
            }
        }
        Err(match want {
            HostPort::Single(p) => ports::already_allocated(ip, p),
            HostPort::Range(a, b) => {
                NetError::conflict(format!("Bind for {}-{b} failed: port is already allocated", ports::host_port_str(ip, a)))
            }
            HostPort::Any => NetError::unavailable("all ports are allocated"),
        })
    }

    /// Starts, retargets or stops the userland proxies so that every published IPv6
    /// port relays to its container's current gateway endpoint (its IPv6 address if it
    /// has one, else its IPv4 one).
    pub(super) fn sync_proxies(&self, st: &mut State<D::PortGuard>) {
        let mut wanted = Vec::new();
        for (cid, guards) in &st.port_guards {
            let Some(gw) = Self::gateway_endpoint(st, cid) else { continue };
            let addr: IpAddr = gw.v6.map(|v| IpAddr::V6(v.ip)).unwrap_or(IpAddr::V4(gw.ip));
            for (i, (m, _)) in guards.iter().enumerate() {
                if m.host_ip.is_ipv6() {
                    wanted.push(((cid.clone(), m.host_ip, m.host_port, m.proto), (i, SocketAddr::new(addr, m.container_port))));
                }
            }
        }
        st.proxies.retain(|k, p| wanted.iter().any(|(wk, (_, t))| wk == k && *t == p.target));
        for (key, (i, target)) in wanted {
            if st.proxies.contains_key(&key) {
                continue;
            }
            let Some((_, guard)) = st.port_guards.get(&key.0).and_then(|g| g.get(i)) else { continue };
            match self.dp.start_proxy(guard, key.3, target) {
                Ok(Some(p)) => {
                    st.proxies.insert(key, p);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("proxying {}/{} to {target}: {e}", ports::host_port_str(key.1, key.2), key.3),
            }
        }
    }

    /// Removes every published port of the container.
    pub async fn unpublish(&self, container_id: &str) -> Result<()> {
        let mut st = self.state.lock().await;
        let Some(sandbox) = st.sandboxes.get(container_id).cloned() else { return Ok(()) };
        if sandbox.ports.is_empty() {
            return Ok(());
        }
        let mut updated = sandbox.clone();
        updated.ports.clear();
        st.stores.sandboxes.store(container_id, &updated)?;
        st.sandboxes.insert(container_id.to_string(), updated);
        // The container has stopped: its rules may go in the background.
        if let Err(e) = self.apply_firewall_with(&st, true).await {
            let _ = st.stores.sandboxes.store(container_id, &sandbox);
            st.sandboxes.insert(container_id.to_string(), sandbox);
            return Err(e);
        }
        st.port_guards.remove(container_id);
        self.sync_proxies(&mut st);
        Ok(())
    }

    /// The container's published ports (for `docker port`).
    pub async fn ports_of(&self, container_id: &str) -> Vec<PortMapping> {
        let st = self.state.lock().await;
        st.sandboxes.get(container_id).map(|s| s.ports.clone()).unwrap_or_default()
    }

    /// NetworkSettings.Ports: `exposed` ("80/tcp" keys of the image and `--expose`)
    /// with null, published ones with their host bindings.
    pub async fn port_map(&self, container_id: &str, exposed: &[String]) -> Result<PortMap> {
        let mut ex = Vec::new();
        for k in exposed {
            ex.push(ports::parse_port_key(k)?);
        }
        let mappings = self.ports_of(container_id).await;
        Ok(ports::port_map(ex, mappings.iter()))
    }
}
