//! `berth registry ...`: the command line of berth's registry server.
//!
//! ```text
//! berth registry serve [--addr 127.0.0.1:5000] --root DIR [--htpasswd FILE]
//!                      [--tls-cert FILE --tls-key FILE]
//! berth registry garbage-collect --root DIR [--delete-untagged] [--dry-run]
//! ```

use std::ffi::OsString;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::server::{self, ServerConfig, TlsFiles, gc};

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
    },
    /// Delete blobs no manifest references. The registry must not be serving.
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
        } => {
            let mut config = ServerConfig::new(addr, &root);
            config.htpasswd = htpasswd;
            if let (Some(cert), Some(key)) = (tls_cert, tls_key) {
                config.tls = Some(TlsFiles { cert, key });
            }
            serve(config)
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
