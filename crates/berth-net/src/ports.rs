//! Port publishing requests and results: `-p`/`-P` syntax, the Engine API's PortMap,
//! and the choice of host ports. Pure; the sockets that reserve ports and the nft
//! rules that forward them live in the dataplane and firewall modules.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::{NetError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(&self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "" | "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            "sctp" => Err(NetError::invalid("publishing sctp ports is not supported")),
            other => Err(NetError::invalid(format!("invalid proto: {other}"))),
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which host port a binding wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostPort {
    /// Any free port (`-p 80`, `-P`, `-p 127.0.0.1::80`).
    Any,
    Single(u16),
    /// The first free port of the range (`-p 8000-8010:80`).
    Range(u16, u16),
}

/// One binding to publish: container port/proto onto a host address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBindingRequest {
    pub container_port: u16,
    pub proto: Proto,
    /// `None`: the network's / daemon's default binding address (0.0.0.0, and [::]
    /// beside it on hosts with IPv6, as Docker does).
    pub host_ip: Option<IpAddr>,
    pub host_port: HostPort,
}

/// A published port as it is: the host port actually chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortMapping {
    pub container_port: u16,
    pub proto: Proto,
    pub host_ip: IpAddr,
    pub host_port: u16,
}

/// `{"HostIp": "...", "HostPort": "..."}` of the Engine API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortBinding {
    pub host_ip: String,
    pub host_port: String,
}

/// The Engine API's `PortMap`: "80/tcp" → bindings (null when exposed, unpublished).
pub type PortMap = BTreeMap<String, Option<Vec<PortBinding>>>;

fn parse_port(s: &str) -> Result<u16> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(NetError::invalid(format!("invalid port: {s}"))),
    }
}

/// "80", "8000-8010" → (start, end).
fn parse_range(s: &str) -> Result<(u16, u16)> {
    match s.split_once('-') {
        None => {
            let p = parse_port(s)?;
            Ok((p, p))
        }
        Some((a, b)) => {
            let (a, b) = (parse_port(a)?, parse_port(b)?);
            if a > b {
                return Err(NetError::invalid(format!("invalid range specified for port: {s}")));
            }
            Ok((a, b))
        }
    }
}

/// "80/tcp" (the key of PortMap / ExposedPorts) → (port, proto).
pub fn parse_port_key(key: &str) -> Result<(u16, Proto)> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    Ok((parse_port(port)?, Proto::parse(proto)?))
}

fn parse_host_ip(s: &str) -> Result<Option<IpAddr>> {
    let s = s.trim_start_matches('[').trim_end_matches(']');
    if s.is_empty() {
        return Ok(None);
    }
    s.parse::<IpAddr>().map(Some).map_err(|_| NetError::invalid(format!("invalid IP address: {s}")))
}

fn parse_host_port(s: &str) -> Result<HostPort> {
    if s.is_empty() || s == "0" {
        return Ok(HostPort::Any);
    }
    let (a, b) = parse_range(s)?;
    Ok(if a == b { HostPort::Single(a) } else { HostPort::Range(a, b) })
}

/// The Engine API's `HostConfig.PortBindings` → binding requests.
pub fn requests_from_port_map(map: &PortMap) -> Result<Vec<PortBindingRequest>> {
    let mut out = Vec::new();
    for (key, bindings) in map {
        let (container_port, proto) = parse_port_key(key)?;
        let bindings = bindings.clone().unwrap_or_default();
        let bindings = if bindings.is_empty() { vec![PortBinding::default()] } else { bindings };
        for b in bindings {
            out.push(PortBindingRequest {
                container_port,
                proto,
                host_ip: parse_host_ip(&b.host_ip)?,
                host_port: parse_host_port(&b.host_port)?,
            });
        }
    }
    Ok(out)
}

/// `-P`: every exposed port ("80/tcp" keys) onto a free host port.
pub fn requests_for_exposed<'a>(exposed: impl IntoIterator<Item = &'a str>) -> Result<Vec<PortBindingRequest>> {
    exposed
        .into_iter()
        .map(|key| {
            let (container_port, proto) = parse_port_key(key)?;
            Ok(PortBindingRequest { container_port, proto, host_ip: None, host_port: HostPort::Any })
        })
        .collect()
}

/// One `-p` argument, `[ip:][hostPort:]containerPort[/proto]` with ranges, as the
/// docker CLI reads it (`nat.ParsePortSpec`).
pub fn parse_publish_spec(spec: &str) -> Result<Vec<PortBindingRequest>> {
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, Proto::parse(p)?),
        None => (spec, Proto::Tcp),
    };
    // An IPv6 host address is bracketed; split it off first so its colons don't count.
    let (ip_part, rest) = if let Some(stripped) = rest.strip_prefix('[') {
        let (ip, after) = stripped
            .split_once("]:")
            .ok_or_else(|| NetError::invalid(format!("invalid port format: {spec}")))?;
        (Some(ip), after)
    } else {
        (None, rest)
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, container) = match (ip_part, parts.as_slice()) {
        (None, [c]) => ("", "", *c),
        (None, [h, c]) => ("", *h, *c),
        (None, [ip, h, c]) => (*ip, *h, *c),
        (Some(ip), [h, c]) => (ip, *h, *c),
        _ => return Err(NetError::invalid(format!("invalid port format: {spec}"))),
    };
    if container.is_empty() {
        return Err(NetError::invalid(format!("no port specified: {spec}<empty>")));
    }
    let host_ip = parse_host_ip(ip)?;
    let (c_start, c_end) = parse_range(container)?;
    let c_len = c_end - c_start;
    let host = if host.is_empty() { None } else { Some(parse_range(host)?) };
    let mut out = Vec::new();
    match host {
        None => {
            for cp in c_start..=c_end {
                out.push(PortBindingRequest { container_port: cp, proto, host_ip, host_port: HostPort::Any });
            }
        }
        Some((h_start, h_end)) => {
            let h_len = h_end - h_start;
            if c_len == 0 {
                let host_port = if h_len == 0 { HostPort::Single(h_start) } else { HostPort::Range(h_start, h_end) };
                out.push(PortBindingRequest { container_port: c_start, proto, host_ip, host_port });
            } else if c_len == h_len {
                for i in 0..=c_len {
                    out.push(PortBindingRequest {
                        container_port: c_start + i,
                        proto,
                        host_ip,
                        host_port: HostPort::Single(h_start + i),
                    });
                }
            } else {
                return Err(NetError::invalid(format!(
                    "invalid ranges specified for container and host Ports: {container} and {}",
                    parts[parts.len() - 2]
                )));
            }
        }
    }
    Ok(out)
}

/// The candidate host ports for one request, in the order they are tried. `Any`
/// walks the ephemeral range starting at `start` (a rotating cursor) and wraps.
pub fn candidates(host_port: HostPort, ephemeral: (u16, u16), start: u16) -> Box<dyn Iterator<Item = u16>> {
    match host_port {
        HostPort::Single(p) => Box::new(std::iter::once(p)),
        HostPort::Range(a, b) => Box::new(a..=b),
        HostPort::Any => {
            let (lo, hi) = ephemeral;
            let start = start.clamp(lo, hi);
            Box::new((start..=hi).chain(lo..start))
        }
    }
}

/// NetworkSettings.Ports: every exposed port (null if unpublished) and every
/// published one with its host binding, as `docker port` and inspect show them.
pub fn port_map<'a>(exposed: impl IntoIterator<Item = (u16, Proto)>, mappings: impl IntoIterator<Item = &'a PortMapping>) -> PortMap {
    let mut map: PortMap = BTreeMap::new();
    for (port, proto) in exposed {
        map.entry(format!("{port}/{proto}")).or_insert(None);
    }
    for m in mappings {
        let entry = map.entry(format!("{}/{}", m.container_port, m.proto)).or_insert(None);
        entry.get_or_insert_with(Vec::new).push(PortBinding {
            host_ip: m.host_ip.to_string(),
            host_port: m.host_port.to_string(),
        });
    }
    map
}

/// `ip:port` as Docker prints it ([::1]:80 for IPv6).
pub fn host_port_str(ip: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(ip, port).to_string()
}

/// Docker's message when a host port cannot be had.
pub fn already_allocated(ip: IpAddr, port: u16) -> NetError {
    NetError::conflict(format!("Bind for {} failed: port is already allocated", host_port_str(ip, port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(cp: u16, ip: Option<&str>, hp: HostPort) -> PortBindingRequest {
        PortBindingRequest { container_port: cp, proto: Proto::Tcp, host_ip: ip.map(|s| s.parse().unwrap()), host_port: hp }
    }

    #[test]
    fn publish_specs_parse_like_the_docker_cli() {
        assert_eq!(parse_publish_spec("80").unwrap(), vec![req(80, None, HostPort::Any)]);
        assert_eq!(parse_publish_spec("8080:80").unwrap(), vec![req(80, None, HostPort::Single(8080))]);
        assert_eq!(
            parse_publish_spec("127.0.0.1:18099:80").unwrap(),
            vec![req(80, Some("127.0.0.1"), HostPort::Single(18099))]
        );
        assert_eq!(parse_publish_spec("127.0.0.1::80").unwrap(), vec![req(80, Some("127.0.0.1"), HostPort::Any)]);
        assert_eq!(parse_publish_spec("8000-8010:80").unwrap(), vec![req(80, None, HostPort::Range(8000, 8010))]);
        assert_eq!(
            parse_publish_spec("8000-8001:80-81").unwrap(),
            vec![req(80, None, HostPort::Single(8000)), req(81, None, HostPort::Single(8001))]
        );
        let udp = parse_publish_spec("53:53/udp").unwrap();
        assert_eq!(udp[0].proto, Proto::Udp);
        assert_eq!(parse_publish_spec("80-82").unwrap().len(), 3);
    }

    #[test]
    fn bad_publish_specs_are_refused() {
        for bad in ["", "0", "70000", "a:b", "8000-8002:80-81", "1.2.3.4:5:6:7", "80/xyz", "999.1.1.1:80:80", "9-8:80"] {
            assert!(parse_publish_spec(bad).is_err(), "{bad} should fail");
        }
        assert_eq!(parse_publish_spec("[::1]:8080:80").unwrap(), vec![req(80, Some("::1"), HostPort::Single(8080))]);
    }

    #[test]
    fn port_map_from_the_api() {
        let map: PortMap = serde_json::from_str(
            r#"{"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"18099"}],"53/udp":[{"HostIp":"","HostPort":""}],"81/tcp":null}"#,
        )
        .unwrap();
        let reqs = requests_from_port_map(&map).unwrap();
        assert_eq!(reqs.len(), 3);
        assert!(reqs.contains(&PortBindingRequest {
            container_port: 53,
            proto: Proto::Udp,
            host_ip: None,
            host_port: HostPort::Any
        }));
        assert!(reqs.contains(&req(80, Some("127.0.0.1"), HostPort::Single(18099))));
        assert!(reqs.contains(&req(81, None, HostPort::Any)));
    }

    #[test]
    fn exposed_ports_for_dash_capital_p() {
        let r = requests_for_exposed(["8080/tcp", "53/udp"]).unwrap();
        assert_eq!(r.len(), 2);
        assert!(r.iter().all(|r| r.host_port == HostPort::Any));
    }

    #[test]
    fn candidates_wrap_around_the_ephemeral_range() {
        let c: Vec<u16> = candidates(HostPort::Any, (100, 104), 103).collect();
        assert_eq!(c, vec![103, 104, 100, 101, 102]);
        let c: Vec<u16> = candidates(HostPort::Range(5, 7), (100, 104), 103).collect();
        assert_eq!(c, vec![5, 6, 7]);
    }

    #[test]
    fn inspect_ports_show_exposed_and_published() {
        let m = PortMapping { container_port: 80, proto: Proto::Tcp, host_ip: "127.0.0.1".parse().unwrap(), host_port: 18099 };
        let map = port_map([(80, Proto::Tcp), (53, Proto::Udp)], [&m]);
        let v = serde_json::to_value(&map).unwrap();
        assert_eq!(v, serde_json::json!({"53/udp": null, "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18099"}]}));
        assert_eq!(already_allocated("0.0.0.0".parse().unwrap(), 80).message(), "Bind for 0.0.0.0:80 failed: port is already allocated");
        assert_eq!(already_allocated("::".parse().unwrap(), 80).message(), "Bind for [::]:80 failed: port is already allocated");
    }
}
