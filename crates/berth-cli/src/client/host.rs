//! Where the daemon is: `-H`, `BERTH_HOST`, `DOCKER_HOST` (`unix://`, `tcp://`).

use std::path::PathBuf;

/// berth's daemon socket when nothing else is said (exec root `/run/berth`).
pub const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    /// `host:port`, with the host alone kept for TLS server-name checks.
    Tcp { host: String, port: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("Invalid bind address format: {0}")]
    Invalid(String),
    #[error("unsupported host scheme in {0:?}: berth speaks unix:// and tcp:// (ssh:// and fd:// are not supported)")]
    Unsupported(String),
}

/// Parses a host the way docker's `-H` accepts it. `tls` picks the default TCP port
/// (2376 with TLS, 2375 without).
pub fn parse_host(s: &str, tls: bool) -> Result<Endpoint, HostError> {
    let s = s.trim();
    if let Some(path) = s.strip_prefix("unix://") {
        if path.is_empty() {
            return Err(HostError::Invalid(s.to_string()));
        }
        return Ok(Endpoint::Unix(PathBuf::from(path)));
    }
    if s.starts_with('/') {
        return Ok(Endpoint::Unix(PathBuf::from(s)));
    }
    let rest = if let Some(r) = s.strip_prefix("tcp://").or_else(|| s.strip_prefix("http://")).or_else(|| s.strip_prefix("https://")) {
        r
    } else if s.contains("://") {
        return Err(HostError::Unsupported(s.to_string()));
    } else {
        s
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') {
        return Err(HostError::Invalid(s.to_string()));
    }
    let default_port = if tls { 2376 } else { 2375 };
    // `[::1]:2376`, `host:2376`, `host`, `:2376`.
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| HostError::Invalid(s.to_string()))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| HostError::Invalid(s.to_string()))?,
            None if after.is_empty() => default_port,
            None => return Err(HostError::Invalid(s.to_string())),
        };
        (h.to_string(), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| HostError::Invalid(s.to_string()))?),
            None => (rest.to_string(), default_port),
        }
    };
    let host = if host.is_empty() { "localhost".to_string() } else { host };
    Ok(Endpoint::Tcp { host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_host_forms() {
        assert_eq!(parse_host("unix:///run/berth/berth.sock", false).unwrap(), Endpoint::Unix("/run/berth/berth.sock".into()));
        assert_eq!(parse_host("tcp://10.0.0.1:2376", true).unwrap(), Endpoint::Tcp { host: "10.0.0.1".into(), port: 2376 });
        assert_eq!(parse_host("tcp://example.com", false).unwrap(), Endpoint::Tcp { host: "example.com".into(), port: 2375 });
        assert_eq!(parse_host("tcp://example.com", true).unwrap(), Endpoint::Tcp { host: "example.com".into(), port: 2376 });
        assert_eq!(parse_host("tcp://[::1]:99", false).unwrap(), Endpoint::Tcp { host: "::1".into(), port: 99 });
        assert_eq!(parse_host(":4000", false).unwrap(), Endpoint::Tcp { host: "localhost".into(), port: 4000 });
        assert!(matches!(parse_host("ssh://me@host", false), Err(HostError::Unsupported(_))));
        assert!(parse_host("tcp://h:notaport", false).is_err());
        assert!(parse_host("unix://", false).is_err());
    }
}
