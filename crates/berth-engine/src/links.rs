//! Legacy links (`--link name[:alias]`), as Docker keeps them: stored as
//! `/name:/container/alias`; on the default bridge they give the linking container an
//! /etc/hosts entry for the linked one, its `<ALIAS>_PORT_…`, `<ALIAS>_NAME` and
//! `<ALIAS>_ENV_…` variables, and (with `--icc=false`) its exposed ports; on a
//! user-defined network they are DNS aliases seen by the linking container only.

use std::net::Ipv4Addr;

use berth_net::files::ExtraHost;
use berth_net::model::LinkedPorts;
use berth_net::ports::Proto;

use crate::container::{ContainerRecord, ContainerStore};
use crate::error::{Error, ErrorKind, Result};

/// One link: the linked container's name (no slash) and the alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub target: String,
    pub alias: String,
}

/// Parses `name`, `name:alias` or the stored `/name:/parent/alias`.
pub fn parse(link: &str) -> Result<Link> {
    let (target, alias) = match link.split_once(':') {
        Some((t, a)) => (t, a.rsplit('/').next().unwrap_or(a)),
        None => (link, link.rsplit('/').next().unwrap_or(link)),
    };
    let target = target.trim_start_matches('/');
    if target.is_empty() || alias.is_empty() {
        return Err(Error::invalid(format!("invalid link format: {link}")));
    }
    Ok(Link { target: target.to_string(), alias: alias.to_string() })
}

/// `HostConfig.Links` checked (every target exists) and stored Docker's way.
pub fn normalize(links: &[String], parent: &str, network_mode: &str, containers: &ContainerStore) -> Result<Vec<String>> {
    if links.is_empty() {
        return Ok(Vec::new());
    }
    if network_mode == "host" {
        return Err(Error::invalid(
            "conflicting options: host type networking can't be used with links. This would result in undefined behavior",
        ));
    }
    let mut out = Vec::new();
    for l in links {
        let link = parse(l)?;
        // Invalid, not "not found": the docker CLI would take a 404 for a missing image.
        let target = containers.get(&link.target).map_err(|_| {
            Error::invalid(format!("could not get container for {0}: No such container: {0}", link.target))
        })?;
        out.push(format!("/{}:/{parent}/{}", target.snapshot().bare_name(), link.alias));
    }
    Ok(out)
}

/// What legacy links give a container starting on the default bridge.
#[derive(Debug, Default)]
pub struct Legacy {
    pub hosts: Vec<ExtraHost>,
    pub env: Vec<String>,
    pub ports: Vec<LinkedPorts>,
}

/// Resolves the container's legacy links: each linked container must run, on the
/// default bridge (Docker's messages otherwise).
pub fn legacy(rec: &ContainerRecord, containers: &ContainerStore) -> Result<Legacy> {
    let mut out = Legacy::default();
    for l in rec.host_config.links.clone().unwrap_or_default() {
        let link = parse(&l)?;
        let full = format!("/{}/{}", rec.bare_name(), link.alias);
        let child = containers.get(&link.target).map_err(|_| Error::not_found(format!("could not get container for {}", link.target)))?;
        let child = child.snapshot();
        if !child.state.status.is_alive() {
            return Err(Error::new(ErrorKind::System, format!("Cannot link to a non running container: {} AS {full}", child.name)));
        }
        let ip = child
            .network
            .networks
            .get("bridge")
            .and_then(|es| es.ip_address.parse::<Ipv4Addr>().ok())
            .ok_or_else(|| Error::invalid(format!("cannot link to {}, as it does not belong to the default network", child.name)))?;
        // The alias, the linked container's hostname, and its name if that differs.
        let mut names = format!("{} {}", link.alias, child.config.hostname);
        if link.alias != child.bare_name() {
            names.push(' ');
            names.push_str(child.bare_name());
        }
        out.hosts.push(ExtraHost { name: names, ip: ip.into() });
        let ports = exposed(&child);
        out.env.extend(env_vars(&full, ip, &ports, &child.config.env.clone().unwrap_or_default()));
        out.ports.push(LinkedPorts { server: ip, ports });
    }
    Ok(out)
}

/// The linked container's exposed ports, TCP first, then by number (Docker's order).
fn exposed(child: &ContainerRecord) -> Vec<(Proto, u16)> {
    let mut ports: Vec<(Proto, u16)> = child
        .config
        .exposed_ports
        .as_ref()
        .map(|m| m.keys().filter_map(|k| berth_net::ports::parse_port_key(k).ok()).map(|(p, proto)| (proto, p)).collect())
        .unwrap_or_default();
    ports.sort_by_key(|(proto, port)| (*proto != Proto::Tcp, proto.as_str(), *port));
    ports
}

/// Docker's link variables for the link named `full` (`/parent/alias`).
pub fn env_vars(full: &str, ip: Ipv4Addr, ports: &[(Proto, u16)], child_env: &[String]) -> Vec<String> {
    let alias = full.rsplit('/').next().unwrap_or(full).to_uppercase().replace('-', "_");
    let mut env = Vec::new();
    // Consecutive ports of one protocol also get _START/_END variables (after the
    // variables of the port that ends the run, exactly where Docker puts them).
    let Some(&first) = ports.first() else {
        env.push(format!("{alias}_NAME={full}"));
        env.extend(child_env_vars(&alias, child_env));
        return env;
    };
    let (mut start, mut end) = (first, first);
    for (i, &(proto, port)) in ports.iter().enumerate() {
        if i == 0 {
            env.push(format!("{alias}_PORT={proto}://{ip}:{port}"));
        }
        let prefix = format!("{alias}_PORT_{port}_{}", proto.as_str().to_uppercase());
        env.push(format!("{prefix}={proto}://{ip}:{port}"));
        env.push(format!("{prefix}_ADDR={ip}"));
        env.push(format!("{prefix}_PORT={port}"));
        env.push(format!("{prefix}_PROTO={proto}"));
        if proto == end.0 && u32::from(port) == u32::from(end.1) + 1 {
            end = (proto, port);
            if i + 1 < ports.len() {
                continue;
            }
        }
        if start != end {
            let p = format!("{alias}_PORT_{}_{}", start.1, start.0.as_str().to_uppercase());
            env.push(format!("{p}_START={}://{ip}:{}", start.0, start.1));
            env.push(format!("{p}_PORT_START={}", start.1));
            env.push(format!("{p}_END={}://{ip}:{}", end.0, end.1));
            env.push(format!("{p}_PORT_END={}", end.1));
        }
        (start, end) = ((proto, port), (proto, port));
    }
    env.push(format!("{alias}_NAME={full}"));
    env.extend(child_env_vars(&alias, child_env));
    env
}

/// `<ALIAS>_ENV_<NAME>` for the linked container's variables (not HOME and PATH).
fn child_env_vars(alias: &str, child_env: &[String]) -> Vec<String> {
    child_env
        .iter()
        .filter_map(|v| v.split_once('='))
        .filter(|(name, _)| *name != "HOME" && *name != "PATH")
        .map(|(name, val)| format!("{alias}_ENV_{name}={val}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_parse_in_every_form() {
        assert_eq!(parse("web").unwrap(), Link { target: "web".into(), alias: "web".into() });
        assert_eq!(parse("web:db").unwrap(), Link { target: "web".into(), alias: "db".into() });
        assert_eq!(parse("/web:/client/db").unwrap(), Link { target: "web".into(), alias: "db".into() });
        assert!(parse(":x").is_err());
    }

    #[test]
    fn env_vars_like_dockers() {
        let ip: Ipv4Addr = "172.17.0.2".parse().unwrap();
        let env = env_vars(
            "/client/my-db",
            ip,
            &[(Proto::Tcp, 80), (Proto::Tcp, 81), (Proto::Udp, 53)],
            &["PATH=/bin".into(), "PASSWORD=s3cret".into()],
        );
        let want = [
            "MY_DB_PORT=tcp://172.17.0.2:80",
            "MY_DB_PORT_80_TCP=tcp://172.17.0.2:80",
            "MY_DB_PORT_80_TCP_ADDR=172.17.0.2",
            "MY_DB_PORT_80_TCP_PORT=80",
            "MY_DB_PORT_80_TCP_PROTO=tcp",
            "MY_DB_PORT_81_TCP=tcp://172.17.0.2:81",
            "MY_DB_PORT_81_TCP_ADDR=172.17.0.2",
            "MY_DB_PORT_81_TCP_PORT=81",
            "MY_DB_PORT_81_TCP_PROTO=tcp",
            "MY_DB_PORT_53_UDP=udp://172.17.0.2:53",
            "MY_DB_PORT_53_UDP_ADDR=172.17.0.2",
            "MY_DB_PORT_53_UDP_PORT=53",
            "MY_DB_PORT_53_UDP_PROTO=udp",
            "MY_DB_PORT_80_TCP_START=tcp://172.17.0.2:80",
            "MY_DB_PORT_80_TCP_PORT_START=80",
            "MY_DB_PORT_80_TCP_END=tcp://172.17.0.2:81",
            "MY_DB_PORT_80_TCP_PORT_END=81",
            "MY_DB_NAME=/client/my-db",
            "MY_DB_ENV_PASSWORD=s3cret",
        ];
        assert_eq!(env, want);
        assert_eq!(env_vars("/c/x", ip, &[], &[]), vec!["X_NAME=/c/x".to_string()]);
    }
}
