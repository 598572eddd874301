//! `berth daemon`: flags and daemon.json into an [`EngineConfig`], then the engine and
//! the API server. Wiring only.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use berth_engine::config::{AddressPool, EngineConfig, RuntimeConfig};

use crate::{logging, notify};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "berth daemon", about = "Run berth's daemon: the Docker Engine API on a unix socket (and TLS TCP)")]
struct Flags {
    /// daemon.json-style configuration file (flags override it).
    #[arg(long = "config-file")]
    config_file: Option<PathBuf>,
    /// Where images, containers, volumes and networks are kept.
    #[arg(long = "data-root")]
    data_root: Option<PathBuf>,
    /// Where sockets, shim state and network namespaces live.
    #[arg(long = "exec-root")]
    exec_root: Option<PathBuf>,
    /// Listen address: unix:///path or tcp://host:port (repeatable).
    #[arg(short = 'H', long = "host")]
    hosts: Vec<String>,
    #[arg(long = "cgroup-parent")]
    cgroup_parent: Option<String>,
    /// berth (built in), runc, crun, or a name from `runtimes`.
    #[arg(long = "default-runtime")]
    default_runtime: Option<String>,
    /// An extra runtime: name=path.
    #[arg(long = "add-runtime")]
    add_runtime: Vec<String>,
    /// Name of the default bridge device.
    #[arg(short = 'b', long = "bridge")]
    bridge: Option<String>,
    /// The default bridge's address and prefix, e.g. 172.30.0.1/16.
    #[arg(long = "bip")]
    bip: Option<String>,
    /// Pool for user networks: base=10.10.0.0/16,size=24 (repeatable).
    #[arg(long = "default-address-pool")]
    address_pools: Vec<String>,
    /// berth's own nftables table.
    #[arg(long = "nft-table")]
    nft_table: Option<String>,
    #[arg(long = "mtu")]
    mtu: Option<u32>,
    /// Add berth's accept rules to iptables' FORWARD chain, for hosts whose firewall
    /// drops forwarded traffic (--iptables=false: keep to berth's own nftables table).
    #[arg(long = "iptables", value_name = "bool", num_args = 0..=1, default_missing_value = "true")]
    iptables: Option<bool>,
    /// Let containers on the default bridge talk to each other (--icc=false: only
    /// published ports and legacy links' ports).
    #[arg(long = "icc", value_name = "bool", num_args = 0..=1, default_missing_value = "true")]
    icc: Option<bool>,
    /// Make the default bridge dual-stack (IPv6 beside IPv4).
    #[arg(long = "ipv6", value_name = "bool", num_args = 0..=1, default_missing_value = "true")]
    ipv6: Option<bool>,
    /// The default bridge's IPv6 subnet, e.g. fd00:b::/64 (implies --ipv6).
    #[arg(long = "fixed-cidr-v6")]
    fixed_cidr_v6: Option<String>,
    /// Add berth's accept rules to ip6tables' FORWARD chain too.
    #[arg(long = "ip6tables", value_name = "bool", num_args = 0..=1, default_missing_value = "true")]
    ip6tables: Option<bool>,
    /// DNS servers for every container (and the embedded DNS's upstreams).
    #[arg(long = "dns")]
    dns: Vec<String>,
    /// DNS search domains for every container.
    #[arg(long = "dns-search")]
    dns_search: Vec<String>,
    /// DNS options for every container.
    #[arg(long = "dns-opt")]
    dns_opts: Vec<String>,
    /// json-file options: max-size=10m, max-file=3.
    #[arg(long = "log-opt")]
    log_opts: Vec<String>,
    #[arg(long = "log-driver")]
    log_driver: Option<String>,
    #[arg(long = "insecure-registry")]
    insecure_registries: Vec<String>,
    #[arg(long = "registry-mirror")]
    registry_mirrors: Vec<String>,
    #[arg(long = "max-concurrent-downloads")]
    max_concurrent_downloads: Option<usize>,
    /// Keep this many bytes of disk free while unpacking layers.
    #[arg(long = "min-free-space")]
    min_free_space: Option<String>,
    /// Refuse layers larger than this when unpacked.
    #[arg(long = "max-layer-size")]
    max_layer_size: Option<String>,
    /// API connections one client (a uid on the unix socket, an address on TCP) may hold
    /// open at once; more are answered 429. 0: no limit. Default 2048.
    #[arg(long = "max-connections-per-client")]
    max_connections_per_client: Option<usize>,
    #[arg(long = "tls")]
    tls: bool,
    #[arg(long = "tlsverify")]
    tlsverify: bool,
    #[arg(long = "tlscacert")]
    tlscacert: Option<PathBuf>,
    #[arg(long = "tlscert")]
    tlscert: Option<PathBuf>,
    #[arg(long = "tlskey")]
    tlskey: Option<PathBuf>,
    /// Serve tcp:// without TLS (anyone who can reach it owns the host).
    #[arg(long = "insecure-plain-tcp")]
    insecure_plain_tcp: bool,
    #[arg(short = 'D', long = "debug")]
    debug: bool,
    /// debug, info, warn, error or fatal.
    #[arg(short = 'l', long = "log-level")]
    log_level: Option<String>,
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Log where each container operation's time goes, phase by phase
    /// (docs/performance.md; also BERTH_TRACE_PHASES=1).
    #[arg(long = "trace-phases")]
    trace_phases: bool,
    /// The daemon's own log: text or json.
    #[arg(long = "log-format")]
    log_format: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9323).
    #[arg(long = "metrics-addr")]
    metrics_addr: Option<String>,
    /// Serve the web dashboard at ADDR (e.g. 127.0.0.1:9000); it asks for its token.
    #[arg(long = "ui")]
    ui: Option<String>,
    /// Serve the dashboard over HTTPS with --tlscert/--tlskey (and, with --tlsverify,
    /// admit clients whose certificate --tlscacert signed without the token).
    #[arg(long = "ui-tls")]
    ui_tls: bool,
    /// A file holding the dashboard's token (a new one is written there if absent).
    #[arg(long = "ui-token-file")]
    ui_token_file: Option<PathBuf>,
    /// Serve the Kubernetes CRI (v1) on this socket, e.g. unix:///run/berth/cri.sock.
    #[arg(long = "cri-socket")]
    cri_socket: Option<String>,
    /// Address of the CRI streaming server (exec/attach/port-forward), host:port.
    #[arg(long = "cri-stream-address")]
    cri_stream_address: Option<String>,
    /// CNI network configs for pods (else pods join berth's default bridge).
    #[arg(long = "cni-conf-dir")]
    cni_conf_dir: Option<PathBuf>,
    /// CNI plugin directory (repeatable; default /opt/cni/bin and /usr/lib/cni).
    #[arg(long = "cni-bin-dir")]
    cni_bin_dirs: Vec<PathBuf>,
    /// Run containers in a user namespace mapped to this user's /etc/subuid and
    /// /etc/subgid ranges: default (user dockremap) or user[:group] (docs/userns.md).
    #[arg(long = "userns-remap")]
    userns_remap: Option<String>,
    /// Set no_new_privs for every container by default (dockerd's --no-new-privileges).
    #[arg(long = "no-new-privileges")]
    no_new_privileges: bool,
    /// Group for the unix socket(s), mode 0660 (dockerd's -G/--group).
    #[arg(short = 'G', long = "group")]
    group: Option<String>,
    /// Authorization plugin to consult on every request (repeatable; dockerd's flag).
    #[arg(long = "authorization-plugin")]
    authorization_plugins: Vec<String>,
    /// Run as an ordinary user, in a user namespace of its own (docs/rootless.md).
    /// Implied when started by a user other than root.
    #[arg(long = "rootless")]
    rootless: bool,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| format!("expected key=value, got {s:?}"))
}

fn size(s: &str) -> Result<u64, String> {
    berth_engine::config::parse_size(s).ok_or_else(|| format!("invalid size {s:?}"))
}

/// The daemon.json in use: `--config-file`, else /etc/berth/daemon.json (rootless:
/// `~/.config/berth/daemon.json`) if it exists.
fn config_file_of(f: &Flags, rootless: bool) -> Option<PathBuf> {
    let default_file = match rootless {
        true => crate::rootless::paths().map(|p| p.config_file).unwrap_or_default(),
        false => PathBuf::from("/etc/berth/daemon.json"),
    };
    f.config_file.clone().or_else(|| default_file.exists().then_some(default_file))
}

/// Rootless defaults for what neither a flag nor daemon.json set (still the rootful
/// defaults), and the options that cannot work without real root refused.
fn rootless_config(cfg: &mut EngineConfig) -> Result<(), String> {
    let d = EngineConfig::default();
    let paths = crate::rootless::paths()?;
    if cfg.data_root == d.data_root {
        cfg.data_root = paths.data_root;
    }
    if cfg.exec_root == d.exec_root {
        cfg.exec_root = paths.exec_root.ok_or(
            "XDG_RUNTIME_DIR is not set: rootless berth keeps its socket and state there (log in through a systemd session, or set it to a directory of your own with mode 0700), or pass --exec-root and -H",
        )?;
        if cfg.hosts.is_empty() {
            cfg.hosts.push(format!("unix://{}", paths.socket.unwrap_or_else(|| cfg.socket_path()).display()));
        }
    }
    if !cfg.userns_remap.is_empty() {
        return Err("--userns-remap cannot be used in rootless mode: containers already run in the user's own user namespace".into());
    }
    if cfg.group.is_some() {
        return Err("--group cannot be used in rootless mode: the socket belongs to the user who runs the daemon".into());
    }
    cfg.rootless = true;
    Ok(())
}

fn build_config(f: Flags, rootless: bool) -> Result<EngineConfig, String> {
    let file = config_file_of(&f, rootless);
    let mut cfg: EngineConfig = match &file {
        Some(p) => {
            let data = std::fs::read(p).map_err(|e| format!("reading {}: {e}", p.display()))?;
            if data.iter().all(u8::is_ascii_whitespace) {
                EngineConfig::default()
            } else {
                serde_json::from_slice(&data).map_err(|e| format!("{}: {e}", p.display()))?
            }
        }
        None => EngineConfig::default(),
    };
    if let Some(v) = f.data_root {
        cfg.data_root = v;
    }
    if let Some(v) = f.exec_root {
        cfg.exec_root = v;
    }
    if !f.hosts.is_empty() {
        cfg.hosts = f.hosts;
    }
    if let Some(v) = f.cgroup_parent {
        cfg.cgroup_parent = v;
    }
    if let Some(v) = f.default_runtime {
        cfg.default_runtime = v;
    }
    for r in f.add_runtime {
        let (k, v) = parse_kv(&r)?;
        cfg.runtimes.insert(k, RuntimeConfig { path: PathBuf::from(v), runtime_args: Vec::new() });
    }
    if let Some(v) = f.bridge {
        cfg.bridge = v;
    }
    if let Some(v) = f.bip {
        cfg.bip = v;
    }
    if !f.address_pools.is_empty() {
        cfg.default_address_pools = Vec::new();
        for p in f.address_pools {
            let kv: BTreeMap<String, String> = p.split(',').map(parse_kv).collect::<Result<_, _>>()?;
            cfg.default_address_pools.push(AddressPool {
                base: kv.get("base").cloned().ok_or("default-address-pool needs base=")?,
                size: kv.get("size").map(|s| s.parse::<u8>().map_err(|e| e.to_string())).transpose()?.unwrap_or(24),
            });
        }
    }
    if let Some(v) = f.nft_table {
        cfg.nft_table = v;
    }
    if let Some(v) = f.mtu {
        cfg.mtu = v;
    }
    if let Some(v) = f.iptables {
        cfg.iptables = v;
    }
    if let Some(v) = f.icc {
        cfg.icc = v;
    }
    if let Some(v) = f.ipv6 {
        cfg.ipv6 = v;
    }
    if let Some(v) = f.fixed_cidr_v6 {
        cfg.fixed_cidr_v6 = v;
    }
    if let Some(v) = f.ip6tables {
        cfg.ip6tables = v;
    }
    if !f.dns.is_empty() {
        cfg.dns = f.dns;
    }
    if !f.dns_search.is_empty() {
        cfg.dns_search = f.dns_search;
    }
    if !f.dns_opts.is_empty() {
        cfg.dns_opts = f.dns_opts;
    }
    for o in f.log_opts {
        let (k, v) = parse_kv(&o)?;
        cfg.log_opts.insert(k, v);
    }
    if let Some(v) = f.log_driver {
        cfg.log_driver = v;
    }
    cfg.insecure_registries.extend(f.insecure_registries);
    cfg.registry_mirrors.extend(f.registry_mirrors);
    if let Some(v) = f.max_concurrent_downloads {
        cfg.max_concurrent_downloads = v;
    }
    if let Some(v) = f.min_free_space {
        cfg.min_free_space = Some(size(&v)?);
    }
    if let Some(v) = f.max_connections_per_client {
        cfg.max_connections_per_client = v;
    }
    if let Some(v) = f.max_layer_size {
        cfg.max_layer_size = Some(size(&v)?);
    }
    cfg.tls |= f.tls;
    cfg.tlsverify |= f.tlsverify;
    if f.tlscacert.is_some() {
        cfg.tlscacert = f.tlscacert;
    }
    if f.tlscert.is_some() {
        cfg.tlscert = f.tlscert;
    }
    if f.tlskey.is_some() {
        cfg.tlskey = f.tlskey;
    }
    cfg.debug |= f.debug;
    if let Some(l) = f.log_level {
        cfg.log_level = l;
    }
    cfg.log_level = match cfg.log_level.as_str() {
        "debug" | "info" | "warn" | "error" => cfg.log_level.clone(),
        "fatal" => "error".into(),
        other => return Err(format!("invalid log level {other:?}: use debug, info, warn, error or fatal")),
    };
    if cfg.debug {
        cfg.log_level = "debug".into();
    }
    cfg.labels.extend(f.labels);
    if let Some(v) = f.log_format {
        cfg.log_format = v;
    }
    logging::Format::parse(&cfg.log_format)?;
    if f.metrics_addr.is_some() {
        cfg.metrics_addr = f.metrics_addr;
    }
    if f.ui.is_some() {
        cfg.ui = f.ui;
    }
    cfg.ui_tls |= f.ui_tls;
    if f.ui_token_file.is_some() {
        cfg.ui_token_file = f.ui_token_file;
    }
    if cfg.ui_tls && (cfg.tlscert.is_none() || cfg.tlskey.is_none()) {
        return Err("--ui-tls needs --tlscert and --tlskey".into());
    }
    if let Some(v) = f.cri_socket {
        cfg.cri_socket = v;
    }
    if let Some(v) = f.cri_stream_address {
        cfg.cri_stream_address = v;
    }
    if f.cni_conf_dir.is_some() {
        cfg.cni_conf_dir = f.cni_conf_dir;
    }
    if !f.cni_bin_dirs.is_empty() {
        cfg.cni_bin_dirs = f.cni_bin_dirs;
    }
    if let Some(v) = f.userns_remap {
        cfg.userns_remap = v;
    }
    if !cfg.cri_socket.is_empty() && !cfg.cri_socket.starts_with("unix://") {
        return Err(format!("invalid --cri-socket {:?}: use unix:///path", cfg.cri_socket));
    }
    cfg.no_new_privileges |= f.no_new_privileges;
    if f.group.is_some() {
        cfg.group = f.group;
    }
    if !f.authorization_plugins.is_empty() {
        cfg.authorization_plugins = f.authorization_plugins;
    }
    if cfg.rootless && !rootless {
        return Err("daemon.json sets rootless, but this daemon runs as root: start it as an ordinary user (or pass --rootless inside a user namespace), see docs/rootless.md".into());
    }
    if rootless {
        rootless_config(&mut cfg)?;
    }
    if cfg.hosts.is_empty() {
        cfg.hosts.push(format!("unix://{}", cfg.socket_path().display()));
    }
    if !f.insecure_plain_tcp && !cfg.tls && !cfg.tlsverify && cfg.hosts.iter().any(|h| h.starts_with("tcp://")) {
        return Err("refusing to serve the API on plain TCP: use --tlsverify with --tlscacert/--tlscert/--tlskey (or --insecure-plain-tcp to allow it anyway)".into());
    }
    Ok(cfg)
}

fn listeners(cfg: &EngineConfig) -> Result<Vec<berth_api::Listen>, String> {
    let mut out = Vec::new();
    for h in &cfg.hosts {
        if let Some(p) = h.strip_prefix("unix://") {
            out.push(berth_api::Listen::Unix(PathBuf::from(p)));
        } else if let Some(a) = h.strip_prefix("tcp://") {
            let tls = if cfg.tls || cfg.tlsverify {
                let cert = cfg.tlscert.clone().ok_or("TLS needs --tlscert")?;
                let key = cfg.tlskey.clone().ok_or("TLS needs --tlskey")?;
                let ca = if cfg.tlsverify { Some(cfg.tlscacert.clone().ok_or("--tlsverify needs --tlscacert")?) } else { None };
                Some(berth_api::TlsFiles { cert, key, ca })
            } else {
                None
            };
            out.push(berth_api::Listen::Tcp { addr: a.to_string(), tls });
        } else {
            return Err(format!("invalid listen address {h:?}: use unix:///path or tcp://host:port"));
        }
    }
    Ok(out)
}

pub fn main(args: &[OsString]) -> i32 {
    let mut argv = vec![OsString::from("berth daemon")];
    argv.extend(args.iter().cloned());
    let flags = match Flags::try_parse_from(argv) {
        Ok(f) => f,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 125 } else { 0 };
        }
    };
    // Before any thread exists: an ordinary user's daemon re-executes itself in a user
    // namespace here (the parent returns when that daemon ends).
    let exec_root_hint = flags.exec_root.clone().or_else(|| crate::rootless::paths().ok().and_then(|p| p.exec_root));
    let rootless = match crate::rootless::prepare(args, flags.rootless, exec_root_hint.as_deref()) {
        crate::rootless::Start::Rootful => false,
        crate::rootless::Start::RootlessHere => true,
        crate::rootless::Start::Exit(code) => return code,
    };
    let trace_phases = flags.trace_phases;
    let config_file = config_file_of(&flags, rootless);
    let cfg = match build_config(flags, rootless) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berth daemon: {e}");
            return 1;
        }
    };
    let format = logging::Format::parse(&cfg.log_format).unwrap_or(logging::Format::Text);
    let level = logging::init(&cfg.log_level, format);
    let listen = match listeners(&cfg) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("berth daemon: {e}");
            return 1;
        }
    };
    let socket_gid = match cfg.group.as_deref().map(berth_api::server::group_id).transpose() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("berth daemon: --group: {e}");
            return 1;
        }
    };
    berth_engine::timing::enable(trace_phases || std::env::var("BERTH_TRACE_PHASES").is_ok_and(|v| v == "1"));
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("berth daemon: cannot find my own binary: {e}");
            return 1;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth daemon: {e}");
            return 1;
        }
    };
    let code = rt.block_on(async move {
        let engine = match berth_engine::Engine::open(cfg, exe).await {
            Ok(e) => e,
            Err(e) => {
                eprintln!("berth daemon: {e}");
                return 1;
            }
        };
        if let Err(e) = front_doors(&engine).await {
            eprintln!("berth daemon: {e}");
            return 1;
        }
        let app = berth_api::router(engine.clone());
        let running = engine.clone();
        tracing::info!("berth daemon serving {:?}", engine.cfg.hosts);
        tokio::spawn(give_back_when_idle());
        let serve_opts = berth_api::ServeOptions { socket_gid, max_connections_per_client: engine.cfg.max_connections_per_client };
        let serve = berth_api::serve_with(app, listen, &serve_opts, || {
            notify::notify(&format!("READY=1\nSTATUS=serving the Engine API\nMAINPID={}", std::process::id()));
        });
        tokio::pin!(serve);
        let cri = cri_config(&engine.cfg);
        let cri_engine = engine.clone();
        let cri = async move {
            match cri {
                Some(c) => berth_cri::serve(cri_engine, c).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(cri);
        let signal = |k| tokio::signal::unix::signal(k);
        let (mut term, mut hup) = match (signal(tokio::signal::unix::SignalKind::terminate()), signal(tokio::signal::unix::SignalKind::hangup())) {
            (Ok(t), Ok(h)) => (t, h),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("berth daemon: {e}");
                return 1;
            }
        };
        let zygote = engine.cfg.exec_root.join(berth_shim::zygote::SOCKET);
        let code = loop {
            tokio::select! {
                r = &mut serve => {
                    if let Err(e) = r {
                        eprintln!("berth daemon: {e}");
                        break 1;
                    }
                    break 0;
                }
                r = &mut cri => {
                    if let Err(e) = r {
                        eprintln!("berth daemon: {e}");
                    }
                    break 1;
                }
                _ = hup.recv() => reload(config_file.as_deref(), level.as_ref()),
                _ = term.recv() => break 0,
                _ = tokio::signal::ctrl_c() => break 0,
            }
        };
        notify::notify("STOPPING=1");
        running.shutdown().await;
        // A stopped daemon leaves no zygote (its shims stay); one killed outright does,
        // and the next daemon forks from it.
        let _ = tokio::task::spawn_blocking(move || berth_shim::zygote::call(&zygote, &berth_shim::zygote::ZygoteRequest::Quit, None)).await;
        code
    });
    // Containers and their shims live on (live restore); tasks that wait for shims
    // never end, so the runtime is not waited for.
    rt.shutdown_background();
    code
}

/// The CRI server's settings, when `--cri-socket` asks for one.
fn cri_config(cfg: &EngineConfig) -> Option<berth_cri::CriConfig> {
    let socket = cfg.cri_socket.strip_prefix("unix://")?;
    Some(berth_cri::CriConfig {
        socket: PathBuf::from(socket),
        stream_address: cfg.cri_stream_address.clone(),
        cni_conf_dir: cfg.cni_conf_dir.clone(),
        cni_bin_dirs: cfg.cni_bin_dirs.clone(),
    })
}

/// Once no request has come for two ticks, what the last burst of work faulted in goes
/// back (see `berth_shim::memory::give_back`): an idle daemon then holds its heap and
/// little of its code. Streams that stay open (events, logs -f) are not requests.
async fn give_back_when_idle() {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    let mut last = u64::MAX;
    let mut trimmed = false;
    loop {
        tick.tick().await;
        let now = berth_api::requests_served();
        if now != last {
            last = now;
            trimmed = false;
        } else if !trimmed {
            let _ = tokio::task::spawn_blocking(berth_shim::memory::give_back).await;
            trimmed = true;
        }
    }
}

/// SIGHUP: re-reads daemon.json and applies what can change while running — the log
/// level (`log-level`, `debug`), as dockerd reloads it. Other keys need a restart.
fn reload(file: Option<&std::path::Path>, level: Option<&logging::LevelHandle>) {
    notify::notify("RELOADING=1");
    let applied = (|| -> Result<String, String> {
        let Some(path) = file else { return Err("no configuration file to reload".into()) };
        let data = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let v: serde_json::Value = if data.iter().all(u8::is_ascii_whitespace) {
            serde_json::json!({})
        } else {
            serde_json::from_slice(&data).map_err(|e| format!("{}: {e}", path.display()))?
        };
        let debug = v.get("debug").and_then(|d| d.as_bool()).unwrap_or(false);
        let wanted = if debug { "debug" } else { v.get("log-level").and_then(|l| l.as_str()).unwrap_or("info") };
        let wanted = match wanted {
            "debug" | "info" | "warn" | "error" => wanted,
            "fatal" => "error",
            other => return Err(format!("invalid log level {other:?}")),
        };
        if let Some(h) = level {
            h.set(wanted)?;
        }
        Ok(wanted.to_string())
    })();
    match applied {
        Ok(l) => tracing::warn!(log_level = l.as_str(), "configuration reloaded"),
        Err(e) => tracing::error!("reloading the configuration: {e}"),
    }
    notify::notify("READY=1");
}

/// The dashboard and the metrics endpoint, when asked for. Their addresses (and the
/// dashboard's token) are written in the exec root for tools and tests to find.
async fn front_doors(engine: &std::sync::Arc<berth_engine::Engine>) -> Result<(), String> {
    let cfg = &engine.cfg;
    let write = |name: &str, text: &str| -> Result<(), String> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let p = cfg.exec_root.join(name);
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        f.write_all(text.as_bytes()).map_err(|e| format!("{}: {e}", p.display()))
    };
    if let Some(addr) = &cfg.metrics_addr {
        let a = berth_ui::start_metrics(engine.clone(), addr).await?;
        write("metrics-addr", &a.to_string())?;
        tracing::info!("metrics at http://{a}/metrics");
    }
    if let Some(addr) = &cfg.ui {
        let token = ui_token(cfg.ui_token_file.as_deref())?;
        let tls = if cfg.ui_tls {
            let ca = if cfg.tlsverify { cfg.tlscacert.clone() } else { None };
            match (&cfg.tlscert, &cfg.tlskey) {
                (Some(cert), Some(key)) => Some(berth_api::TlsFiles { cert: cert.clone(), key: key.clone(), ca }),
                _ => return Err("--ui-tls needs --tlscert and --tlskey".into()),
            }
        } else {
            None
        };
        let opts = berth_ui::UiOptions { addr: addr.clone(), token: token.clone(), tls };
        let a = berth_ui::start_ui(engine.clone(), &opts).await?;
        write("ui-token", &token)?;
        write("ui-addr", &a.to_string())?;
        let scheme = if opts.tls.is_some() { "https" } else { "http" };
        tracing::info!("dashboard at {scheme}://{a}/ (its token is in {})", cfg.exec_root.join("ui-token").display());
        if !a.ip().is_loopback() && opts.tls.is_none() {
            tracing::warn!("the dashboard is served on {a} without TLS: its token crosses the network in clear (use --ui-tls)");
        }
    }
    Ok(())
}

/// The token from `file` (written there with a new one when absent), else a new one.
fn ui_token(file: Option<&std::path::Path>) -> Result<String, String> {
    let Some(p) = file else { return Ok(berth_engine::util::random_id()) };
    match std::fs::read_to_string(p) {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
        Ok(_) | Err(_) => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let t = berth_engine::util::random_id();
            let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(p).map_err(|e| format!("{}: {e}", p.display()))?;
            f.write_all(t.as_bytes()).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok(t)
        }
    }
}
