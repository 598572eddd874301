//! `berth daemon`: flags and daemon.json into an [`EngineConfig`], then the engine and
//! the API server. Wiring only.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use berth_engine::config::{AddressPool, EngineConfig, RuntimeConfig};
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
    #[arg(long = "dns")]
    dns: Vec<String>,
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
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| format!("expected key=value, got {s:?}"))
}

fn size(s: &str) -> Result<u64, String> {
    berth_engine::config::parse_size(s).ok_or_else(|| format!("invalid size {s:?}"))
}

fn build_config(f: Flags) -> Result<EngineConfig, String> {
    let default_file = PathBuf::from("/etc/berth/daemon.json");
    let file = f.config_file.clone().or_else(|| default_file.exists().then_some(default_file));
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
    if !f.dns.is_empty() {
        cfg.dns = f.dns;
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
    if !cfg.cri_socket.is_empty() && !cfg.cri_socket.starts_with("unix://") {
        return Err(format!("invalid --cri-socket {:?}: use unix:///path", cfg.cri_socket));
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
    let cfg = match build_config(flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berth daemon: {e}");
            return 1;
        }
    };
    let filter = cfg.log_level.as_str();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)))
        .with_writer(std::io::stderr)
        .try_init();
    let listen = match listeners(&cfg) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("berth daemon: {e}");
            return 1;
        }
    };
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
        let app = berth_api::router(engine.clone());
        tracing::info!("berth daemon serving {:?}", engine.cfg.hosts);
        tokio::spawn(give_back_when_idle());
        let serve = berth_api::serve(app, listen);
        let cri = cri_config(&engine.cfg);
        let cri_engine = engine.clone();
        let cri = async move {
            match cri {
                Some(c) => berth_cri::serve(cri_engine, c).await,
                None => std::future::pending().await,
            }
        };
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("berth daemon: {e}");
                return 1;
            }
        };
        let zygote = engine.cfg.exec_root.join(berth_shim::zygote::SOCKET);
        let code = tokio::select! {
            r = serve => {
                if let Err(e) = r {
                    eprintln!("berth daemon: {e}");
                    return 1;
                }
                0
            }
            r = cri => {
                if let Err(e) = r {
                    eprintln!("berth daemon: {e}");
                }
                1
            }
            _ = term.recv() => 0,
            _ = tokio::signal::ctrl_c() => 0,
        };
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
