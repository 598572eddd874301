//! Where the daemon is: `-H`, `BERTH_HOST`, `DOCKER_HOST`, a context (`unix://`,
//! `tcp://`, `ssh://[user@]host[:port]`).

use std::path::PathBuf;

/// berth's daemon socket when nothing else is said (exec root `/run/berth`).
pub const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";

/// The daemon socket when nothing else is said: for a user other than root with a
/// rootless daemon running, `$XDG_RUNTIME_DIR/berth.sock` (docs/rootless.md); else the
/// system daemon's.
pub fn default_host(xdg_runtime_dir: Option<&str>) -> String {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0
        && let Some(d) = xdg_runtime_dir.filter(|d| !d.is_empty())
    {
        let p = std::path::Path::new(d).join("berth.sock");
        if p.exists() {
            return format!("unix://{}", p.display());
        }
    }
    DEFAULT_HOST.to_string()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    /// `host:port`, with the host alone kept for TLS server-name checks.
    Tcp { host: String, port: u16 },
    /// A daemon reached through `ssh` running `dial-stdio` on the remote host.
    Ssh { user: Option<String>, host: String, port: Option<u16> },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("Invalid bind address format: {0}")]
    Invalid(String),
    #[error("unsupported host scheme in {0:?}: berth speaks unix://, tcp:// and ssh:// (fd:// is not supported)")]
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
    if let Some(rest) = s.strip_prefix("ssh://") {
        return parse_ssh(rest).ok_or_else(|| HostError::Invalid(s.to_string()));
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

/// `[user@]host[:port]` (no path: the remote daemon is the remote CLI's default).
fn parse_ssh(rest: &str) -> Option<Endpoint> {
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') || rest.contains('?') {
        return None;
    }
    let (user, hp) = match rest.rsplit_once('@') {
        Some((u, hp)) if !u.is_empty() => (Some(u.to_string()), hp),
        Some(_) => return None,
        None => (None, rest),
    };
    let (host, port) = if let Some(v6) = hp.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        (h.to_string(), if after.is_empty() { None } else { Some(after.strip_prefix(':')?.parse().ok()?) })
    } else {
        match hp.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.parse().ok()?)),
            None => (hp.to_string(), None),
        }
    };
    (!host.is_empty()).then_some(Endpoint::Ssh { user, host, port })
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
        assert_eq!(parse_host("ssh://me@host", false).unwrap(), Endpoint::Ssh { user: Some("me".into()), host: "host".into(), port: None });
        assert_eq!(parse_host("ssh://127.0.0.1:2222", false).unwrap(), Endpoint::Ssh { user: None, host: "127.0.0.1".into(), port: Some(2222) });
        assert!(parse_host("ssh://me@host/var/run/x.sock", false).is_err());
        assert!(parse_host("ssh://@host", false).is_err());
        assert!(matches!(parse_host("fd://", false), Err(HostError::Unsupported(_))));
        assert!(parse_host("tcp://h:notaport", false).is_err());
        assert!(parse_host("unix://", false).is_err());
    }
}
