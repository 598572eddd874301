//! The daemon's configuration: what `daemon.json` and `berth daemon` flags set.
//! Every path, the socket, the bridge, the subnets and the cgroup parent are settable
//! so that several daemons (one per test) run side by side.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `daemon.json`, with Docker's key names where Docker has the option.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default, deny_unknown_fields)]
pub struct EngineConfig {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    /// Listen addresses: unix:///path, tcp://host:port.
    pub hosts: Vec<String>,
    /// Parent of every container's cgroup (`<cgroup-parent>/<id>`).
    pub cgroup_parent: String,
    /// Name of the default runtime: "berth" (built in) or a key of `runtimes`.
    pub default_runtime: String,
    pub runtimes: BTreeMap<String, RuntimeConfig>,
    pub log_driver: String,
    pub log_opts: BTreeMap<String, String>,
    pub debug: bool,
    /// "debug", "info", "warn", "error" or "fatal", as dockerd's `--log-level`.
    pub log_level: String,
    pub labels: Vec<String>,
    pub tls: bool,
    pub tlsverify: bool,
    pub tlscacert: Option<PathBuf>,
    pub tlscert: Option<PathBuf>,
    pub tlskey: Option<PathBuf>,
    /// Name of the default bridge device.
    pub bridge: String,
    /// The default bridge's address and subnet, e.g. "172.30.0.1/16".
    pub bip: String,
    pub default_address_pools: Vec<AddressPool>,
    /// berth's own nftables table.
    pub nft_table: String,
    pub mtu: u32,
    pub ip_forward: bool,
    /// Add berth's accept rules to iptables' FORWARD chain (hosts with a DROP policy).
    pub iptables: bool,
    /// Containers on the default bridge may talk to each other (`--icc`).
    pub icc: bool,
    /// The default bridge is dual-stack (`--ipv6`).
    pub ipv6: bool,
    /// The default bridge's IPv6 subnet (`--fixed-cidr-v6`).
    pub fixed_cidr_v6: String,
    /// berth's accept rules in ip6tables too (`--ip6tables`).
    pub ip6tables: bool,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_opts: Vec<String>,
    pub insecure_registries: Vec<String>,
    pub registry_mirrors: Vec<String>,
    pub max_concurrent_downloads: usize,
    pub max_concurrent_uploads: usize,
    /// Stop unpacking a layer when free disk would fall below this many bytes.
    pub min_free_space: Option<u64>,
    /// Refuse a layer whose uncompressed tar is larger than this (decompression bombs).
    pub max_layer_size: Option<u64>,
    /// Open API connections one client may hold at once (a unix-socket client is its
    /// uid, a TCP client its address); the next one is answered 429. 0: no limit.
    pub max_connections_per_client: usize,
    /// Certificates per registry, like /etc/docker/certs.d.
    pub certs_dir: Option<PathBuf>,
    /// Where `berth login` credentials are read for pulls from the daemon side.
    pub shutdown_timeout: u64,
    /// Prometheus metrics at `http://<metrics-addr>/metrics`, as dockerd's option.
    pub metrics_addr: Option<String>,
    /// The web dashboard's address (host:port); no dashboard when unset.
    pub ui: Option<String>,
    /// Serve the dashboard over HTTPS with the daemon's TLS files (with `tlsverify`,
    /// a client certificate the CA signed admits without the token).
    pub ui_tls: bool,
    /// A file holding the dashboard's token (written with a new random one if absent).
    pub ui_token_file: Option<PathBuf>,
    /// The daemon's own log: "text" or "json" (dockerd's `log-format`).
    pub log_format: String,
    /// Serve the Kubernetes CRI on this socket (`unix:///run/berth/cri.sock`); off when empty.
    pub cri_socket: String,
    /// Where the CRI's streaming server (exec, attach, port-forward URLs) listens.
    pub cri_stream_address: String,
    /// CNI network configs for pods; empty: pods use berth's default bridge.
    pub cni_conf_dir: Option<PathBuf>,
    /// CNI plugin directories.
    pub cni_bin_dirs: Vec<PathBuf>,
    /// dockerd's `userns-remap`: `default` or `user[:group]`; empty: off (docs/userns.md).
    pub userns_remap: String,
    /// Every container gets no_new_privs unless its `--security-opt` says otherwise
    /// (dockerd's `no-new-privileges`).
    pub no_new_privileges: bool,
    /// The group owning the unix sockets (dockerd's `group`, `-G`); root's when unset.
    pub group: Option<String>,
    /// Authorization plugins consulted on every request, in order (dockerd's
    /// `authorization-plugins`).
    pub authorization_plugins: Vec<String>,
    /// Rootless mode (docs/rootless.md): the daemon runs as root of a user namespace of
    /// an ordinary user; no cgroups, no bridge or firewall, slirp4netns for networking.
    pub rootless: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RuntimeConfig {
    pub path: PathBuf,
    #[serde(rename = "runtimeArgs")]
    pub runtime_args: Vec<String>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig { path: PathBuf::new(), runtime_args: Vec::new() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AddressPool {
    pub base: String,
    pub size: u8,
}

impl Default for AddressPool {
    fn default() -> Self {
        AddressPool { base: String::new(), size: 24 }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            data_root: PathBuf::from("/var/lib/berth"),
            exec_root: PathBuf::from("/run/berth"),
            hosts: Vec::new(),
            cgroup_parent: "/berth".into(),
            default_runtime: "berth".into(),
            runtimes: BTreeMap::new(),
            log_driver: "json-file".into(),
            log_opts: BTreeMap::new(),
            debug: false,
            log_level: "info".into(),
            labels: Vec::new(),
            tls: false,
            tlsverify: false,
            tlscacert: None,
            tlscert: None,
            tlskey: None,
            bridge: "berth0".into(),
            bip: "172.30.0.1/16".into(),
            default_address_pools: vec![AddressPool { base: "172.31.0.0/16".into(), size: 24 }],
            nft_table: "berth".into(),
            mtu: 1500,
            ip_forward: true,
            iptables: true,
            icc: true,
            ipv6: false,
            fixed_cidr_v6: String::new(),
            ip6tables: true,
            dns: Vec::new(),
            dns_search: Vec::new(),
            dns_opts: Vec::new(),
            insecure_registries: Vec::new(),
            registry_mirrors: Vec::new(),
            max_concurrent_downloads: 3,
            max_concurrent_uploads: 5,
            min_free_space: None,
            max_layer_size: None,
            max_connections_per_client: 2048,
            certs_dir: None,
            shutdown_timeout: 15,
            metrics_addr: None,
            ui: None,
            ui_tls: false,
            ui_token_file: None,
            log_format: "text".into(),
            cri_socket: String::new(),
            cri_stream_address: "127.0.0.1:0".into(),
            cni_conf_dir: None,
            cni_bin_dirs: vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")],
            userns_remap: String::new(),
            no_new_privileges: false,
            group: None,
            authorization_plugins: Vec::new(),
            rootless: false,
        }
    }
}

impl EngineConfig {
    pub fn socket_path(&self) -> PathBuf {
        self.exec_root.join("berth.sock")
    }

    /// json-file rotation: `max-size` (default 10m) and `max-file` (default 3). Docker
    /// does not rotate by default; berth does, so a chatty container cannot fill the disk.
    pub fn log_rotation(&self) -> Result<(u64, u32), String> {
        let size = match self.log_opts.get("max-size") {
            Some(s) if s == "-1" => 0,
            Some(s) => parse_size(s).ok_or_else(|| format!("invalid max-size {s:?}"))?,
            None => 10 * 1024 * 1024,
        };
        let files = match self.log_opts.get("max-file") {
            Some(s) => s.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| format!("invalid max-file {s:?}"))?,
            None => 3,
        };
        Ok((size, files))
    }
}

/// Docker's size syntax: "64m", "1g", "512k", "100" (bytes), "1.5g".
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        't' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let v: f64 = num.trim().parse().ok()?;
    if !(v >= 0.0) {
        return None;
    }
    Some((v * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64m"), Some(64 << 20));
        assert_eq!(parse_size("1.5g"), Some(3 << 29));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("10MB"), Some(10 << 20));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("-1"), None);
    }

    #[test]
    fn daemon_json_uses_docker_keys() {
        let c: EngineConfig = serde_json::from_str(r#"{"data-root":"/x","log-opts":{"max-size":"1m","max-file":"2"},"insecure-registries":["r:5000"]}"#).unwrap();
        assert_eq!(c.data_root, PathBuf::from("/x"));
        assert_eq!(c.log_rotation().unwrap(), (1 << 20, 2));
        assert!(serde_json::from_str::<EngineConfig>(r#"{"nope":1}"#).is_err());
    }
}
