//! berth's per-container supervisor (`berth shim`), after containerd's shim: one small,
//! single-threaded process per running container, detached from the daemon. It creates
//! the container through the OCI runtime, holds its stdio (pipes or the pty master),
//! writes the json-file log, reaps the init and exec'd processes, and records the exit
//! in `exit.json` — so the daemon can be killed and restarted at any time.
//!
//! The daemon talks to it over a unix socket with the protocol in [`protocol`].

pub mod client;
pub mod config;
mod console;
pub mod crilog;
mod fdio;
pub mod log;
pub mod logdriver;
pub mod memory;
pub mod protocol;
pub mod runtime;
pub mod server;
pub mod spawn;
pub mod zygote;

use std::ffi::OsString;
use std::path::PathBuf;

pub use config::{LogConfig, RuntimeKind, ShimConfig};

/// `berth shim <state-dir>`: runs the shim for the container whose `shim.json` is in
/// `state-dir`. Returns the process exit code.
pub fn main(args: &[OsString]) -> i32 {
    let Some(state_dir) = args.first().map(PathBuf::from) else {
        eprintln!("usage: berth shim STATE_DIR");
        return 2;
    };
    let cfg = match ShimConfig::load(&state_dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berth shim: reading {}: {e}", state_dir.join(ShimConfig::FILE).display());
            return 1;
        }
    };
    server::run(cfg, server::ready_fd_from_env())
}

/// Now as RFC 3339 with nanoseconds in UTC, as Docker writes times.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}
