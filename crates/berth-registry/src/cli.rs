//! `berth registry ...`: the command line of berth's registry server.
//!
//! ```text
//! berth registry serve [--addr 127.0.0.1:5000] --root DIR [--htpasswd FILE]
//!                      [--tls-cert FILE --tls-key FILE]
//! berth registry garbage-collect --root DIR [--delete-untagged] [--dry-run]
//! berth registry pull [--data-root DIR] [--platform P] [-a] REF    (no daemon)
//! berth registry push [--data-root DIR] [--image LOCAL] REF        (no daemon)
//! ```
//!
//! `pull` and `push` work straight on the image store of a data root, without a
//! daemon (which must not be running on it): for scripts, debugging and benchmarks.
//! The daemon's `/images/create` and `/images/{name}/push` are the main path.

use std::ffi::OsString;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::client::{ClientConfig, DockerConfig, Progress, ProgressSink, PullOptions, PushOptions, RegistryClient};
use crate::image_store::ImageStoreContent;
use crate::reference::Reference;
use crate::server::{self, ServerConfig, TlsFiles, gc};
use crate::store::ContentStore;

#[derive(Parser, Debug)]
#[command(name = "berth registry", about = "berth's distribution (OCI / Docker v2) registry")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the registry API from a storage directory.
    Serve {
        /// Address to listen on (port 0 picks a free port, printed on start).
        #[arg(long, default_value = "127.0.0.1:5000")]
        addr: SocketAddr,
        /// Storage directory (created if missing).
        #[arg(long)]
        root: PathBuf,
        /// htpasswd file with bcrypt entries (`htpasswd -B`): require Basic auth.
        #[arg(long)]
        htpasswd: Option<PathBuf>,
        /// PEM certificate chain: serve HTTPS only.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key for --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Run as a pull-through cache of this registry (`https://registry-1.docker.io`,
        /// `http://127.0.0.1:5001`): pulls fetch and keep what is missing; pushes are refused.
        #[arg(long)]
        proxy_remote_url: Option<String>,
        /// Username for the upstream registry.
        #[arg(long, requires = "proxy_remote_url", env = "BERTH_PROXY_USERNAME")]
        proxy_username: Option<String>,
        /// Password for the upstream registry.
        #[arg(long, requires = "proxy_remote_url", env = "BERTH_PROXY_PASSWORD", hide_env_values = true)]
        proxy_password: Option<String>,
        /// Bearer-token auth: where clients get tokens (the token server's URL).
        #[arg(long, requires_all = ["token_service", "token_issuer", "token_rootcertbundle"], conflicts_with = "htpasswd")]
        token_realm: Option<String>,
        /// This registry's name in tokens (`aud`).
        #[arg(long, requires = "token_realm")]
        token_service: Option<String>,
        /// The tokens' issuer (`iss`).
        #[arg(long, requires = "token_realm")]
        token_issuer: Option<String>,
        /// PEM certificates of the keys that sign tokens.
        #[arg(long, requires = "token_realm")]
        token_rootcertbundle: Option<PathBuf>,
        /// Collect garbage while serving, this often (Go duration: `1h`, `30m`).
        #[arg(long, value_parser = parse_duration)]
        gc_interval: Option<std::time::Duration>,
        /// Keep unreferenced blobs younger than this (uploads whose manifest is to come).
        #[arg(long, value_parser = parse_duration, default_value = "1h")]
        gc_grace: std::time::Duration,
        /// Online collection also deletes manifests no tag reaches.
        #[arg(long, requires = "gc_interval")]
        gc_delete_untagged: bool,
    },
    /// Pull an image into the image store of a data root (no daemon).
    Pull {
        #[command(flatten)]
        common: Standalone,
        /// os/arch[/variant] to pick from a multi-platform image.
        #[arg(long)]
        platform: Option<String>,
        /// Pull every tag of the repository.
        #[arg(short = 'a', long)]
        all_tags: bool,
        reference: String,
    },
    /// Push an image from the image store of a data root (no daemon).
    Push {
        #[command(flatten)]
        common: Standalone,
        /// The local image to push under REFERENCE (default: REFERENCE itself).
        #[arg(long)]
        image: Option<String>,
        reference: String,
    },
    /// Delete blobs no manifest references. The registry must not be serving.
    /// Storage used per repository (and what only it uses).
    Du {
        #[arg(long)]
        root: PathBuf,
        /// `json` for one JSON array.
        #[arg(long, default_value = "table")]
        format: String,
    },
    GarbageCollect {
        #[arg(long)]
        root: PathBuf,
        /// Also delete manifests that no tag reaches.
        #[arg(long)]
        delete_untagged: bool,
        /// Only report what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Options of the daemon-less pull and push.
#[derive(clap::Args, Debug)]
struct Standalone {
    /// berth's data root (the image store lives under it).
    #[arg(long, default_value = "/var/lib/berth")]
    data_root: PathBuf,
    /// docker config.json to read credentials from (default: $DOCKER_CONFIG or ~/.docker).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Registries to reach without verified TLS (host[:port] or CIDR); repeatable.
    #[arg(long = "insecure-registry")]
    insecure_registries: Vec<String>,
    /// Mirrors for Docker Hub pulls; repeatable.
    #[arg(long = "registry-mirror")]
    registry_mirrors: Vec<String>,
    /// Per-registry CA and client certificates.
    #[arg(long, default_value = "/etc/docker/certs.d")]
    certs_dir: PathBuf,
    #[arg(long, default_value_t = 3)]
    max_concurrent_downloads: usize,
    #[arg(long, default_value_t = 5)]
    max_concurrent_uploads: usize,
    /// Only print errors.
    #[arg(short, long)]
    quiet: bool,
    /// Do not syncfs unpacked layers before recording them (faster; a power loss may
    /// then leave a recorded layer incomplete, as with Docker's overlay2).
    #[arg(long)]
    no_sync: bool,
}

/// Entry point for `berth registry ARGS...`; returns the process exit code.
pub fn main(args: &[OsString]) -> i32 {
    let argv = std::iter::once(OsString::from("berth registry")).chain(args.iter().cloned());
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    match cli.command {
        Command::Serve {
            addr,
            root,
            htpasswd,
            tls_cert,
            tls_key,
            proxy_remote_url,
            proxy_username,
            proxy_password,
            token_realm,
            token_service,
            token_issuer,
            token_rootcertbundle,
            gc_interval,
            gc_grace,
            gc_delete_untagged,
        } => {
            let mut config = ServerConfig::new(addr, &root);
            config.htpasswd = htpasswd;
            config.gc_interval = gc_interval;
            config.gc_grace = gc_grace;
            config.gc_delete_untagged = gc_delete_untagged;
            if let (Some(realm), Some(service), Some(issuer), Some(bundle)) = (token_realm, token_service, token_issuer, token_rootcertbundle) {
                config.token = Some(server::token::TokenConfig { realm, service, issuer, root_cert_bundle: bundle });
            }
            config.proxy = proxy_remote_url.map(|remote_url| server::proxy::ProxyConfig {
                remote_url,
                username: proxy_username.unwrap_or_default(),
                password: proxy_password.unwrap_or_default(),
            });
            if let (Some(cert), Some(key)) = (tls_cert, tls_key) {
                config.tls = Some(TlsFiles { cert, key });
            }
            serve(config)
        }
        Command::Pull {
            common,
            platform,
            all_tags,
            reference,
        } => standalone(common, Transfer::Pull { platform, all_tags, reference }),
        Command::Push { common, image, reference } => standalone(common, Transfer::Push { image, reference }),
        Command::Du { root, format } => {
            let storage = match server::Storage::open(&root) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("berth registry du: {}: {e}", root.display());
                    return 1;
                }
            };
            match storage.usage() {
                Ok(list) if format == "json" => {
                    println!("{}", serde_json::to_string(&list).unwrap_or_default());
                    0
                }
                Ok(list) => {
                    println!("{:<40} {:>12} {:>12} {:>7} {:>10} {:>5}", "REPOSITORY", "SIZE", "UNIQUE", "BLOBS", "MANIFESTS", "TAGS");
                    for u in &list {
                        println!("{:<40} {:>12} {:>12} {:>7} {:>10} {:>5}", u.repository, u.size, u.unique, u.blobs, u.manifests, u.tags);
                    }
                    0
                }
                Err(e) => {
                    eprintln!("berth registry du: {e}");
                    1
                }
            }
        }
        Command::GarbageCollect {
            root,
            delete_untagged,
            dry_run,
        } => {
            let opts = gc::GcOptions {
                delete_untagged,
                dry_run,
            };
            match gc::garbage_collect(&root, &opts) {
                Ok(r) => {
                    let verb = if dry_run { "would delete" } else { "deleted" };
                    for (repo, d) in &r.manifests_deleted {
                        println!("{verb} manifest {repo}@{d}");
                    }
                    for d in &r.blobs_deleted {
                        println!("{verb} blob {d}");
                    }
                    println!(
                        "{} blobs kept, {} blobs {verb} ({} bytes)",
                        r.blobs_kept,
                        r.blobs_deleted.len(),
                        r.bytes_freed
                    );
                    0
                }
                Err(e) => {
                    eprintln!("berth registry garbage-collect: {e}");
                    1
                }
            }
        }
    }
}

fn serve(config: ServerConfig) -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth registry serve: cannot start runtime: {e}");
            return 1;
        }
    };
    rt.block_on(async move {
        let running = match server::start(config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("berth registry serve: {e}");
                return 1;
            }
        };
        // Tests and scripts read this line to learn the port when --addr used port 0.
        println!("berth registry listening on {}", running.url());
        let _ = std::io::stdout().flush();
        let stop = async {
            use tokio::signal::unix::{SignalKind, signal};
            match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => std::future::pending::<()>().await,
            }
        };
        match running.run_until(stop).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("berth registry serve: {e}");
                1
            }
        }
    })
}

enum Transfer {
    Pull {
        platform: Option<String>,
        all_tags: bool,
        reference: String,
    },
    Push {
        image: Option<String>,
        reference: String,
    },
}

/// Prints progress the way the docker CLI does when its output is not a terminal: one
/// line per state change, no byte counters.
struct LinePrinter {
    quiet: bool,
}

impl ProgressSink for LinePrinter {
    fn emit(&self, event: Progress) {
        if self.quiet
            || matches!(
                event,
                Progress::Downloading { .. } | Progress::Extracting { .. } | Progress::Pushing { .. }
            )
        {
            return;
        }
        let mut out = std::io::stdout().lock();
        for m in event.to_json_messages() {
            if m.status.is_empty() {
                continue;
            }
            let _ = if m.id.is_empty() {
                writeln!(out, "{}", m.status)
            } else {
                writeln!(out, "{}: {}", m.id, m.status)
            };
        }
    }
}

fn standalone(common: Standalone, what: Transfer) -> i32 {
    match run_standalone(common, what) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth registry: {e}");
            1
        }
    }
}

fn run_standalone(common: Standalone, what: Transfer) -> Result<(), String> {
    let images = Arc::new(
        berth_image::ImageStore::open(
            &common.data_root,
            berth_image::StoreOptions {
                durable_layers: !common.no_sync,
                ..Default::default()
            },
        )
            .map_err(|e| e.to_string())?,
    );
    let sources = common.data_root.join("registry").join("sources");
    let content = Arc::new(ImageStoreContent::new(images.clone(), Some(&sources)).map_err(|e| e.to_string())?);
    let config = ClientConfig {
        insecure_registries: common.insecure_registries,
        registry_mirrors: common.registry_mirrors,
        certs_dir: common.certs_dir,
        max_concurrent_downloads: common.max_concurrent_downloads,
        max_concurrent_uploads: common.max_concurrent_uploads,
        ..ClientConfig::default()
    };
    let client = RegistryClient::new(config).map_err(|e| e.to_string())?;
    let creds = DockerConfig::at(&common.config.unwrap_or_else(DockerConfig::default_path));
    let printer = LinePrinter { quiet: common.quiet };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start runtime: {e}"))?;
    rt.block_on(async move {
        match what {
            Transfer::Pull {
                platform,
                all_tags,
                reference,
            } => {
                let r = if all_tags {
                    Reference::parse_repository(&reference)
                } else {
                    Reference::parse(&reference)
                }
                .map_err(|e| e.to_string())?;
                let opts = PullOptions {
                    platform: match platform {
                        Some(p) => Some(p.parse().map_err(|e: crate::manifest::PlatformError| e.to_string())?),
                        None => None,
                    },
                    auth: creds.get(r.registry()).map_err(|e| e.to_string())?,
                };
                let store: Arc<dyn ContentStore> = content.clone();
                let pulled = if all_tags {
                    client.pull_all_tags(&r, &opts, store, &printer).await
                } else {
                    client.pull(&r, &opts, store, &printer).await.map(|p| vec![p])
                }
                .map_err(|e| e.to_string())?;
                for p in &pulled {
                    let c = content.clone();
                    let p2 = p.clone();
                    tokio::task::spawn_blocking(move || c.record_pulled(&p2))
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string())?;
                }
                if !common.quiet {
                    println!("{}", if all_tags { r.full_name() } else { r.to_string() });
                }
                Ok(())
            }
            Transfer::Push { image, reference } => {
                let r = Reference::parse(&reference).map_err(|e| e.to_string())?;
                let local = image.unwrap_or_else(|| r.to_string());
                let record = images.record(&local).map_err(|e| e.to_string())?;
                let manifest = content.manifest_for_push(&record.id).map_err(|e| e.to_string())?;
                let opts = PushOptions {
                    auth: creds.get(r.registry()).map_err(|e| e.to_string())?,
                };
                let pushed = client
                    .push(&r, &manifest, content.clone(), &opts, &printer)
                    .await
                    .map_err(|e| e.to_string())?;
                let c = content.clone();
                tokio::task::spawn_blocking(move || c.record_pushed(&pushed, &manifest))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                Ok(())
            }
        }
    })
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let n = berth_types::units::parse_go_duration(s).map_err(|e| e.to_string())?;
    if n < 0 {
        return Err(format!("negative duration {s:?}"));
    }
    Ok(std::time::Duration::from_nanos(n as u64))
}
