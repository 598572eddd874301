//! Starting a shim from the daemon: `berth shim <state-dir>` in its own session, with
//! a pipe on fd 3 on which it reports whether the container was created.

use std::io::{self, BufRead, BufReader};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::config::ShimConfig;
use crate::protocol::Ready;

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("starting shim: {0}")]
    Io(#[from] io::Error),
    /// The container could not be created; the runtime's message.
    #[error("{0}")]
    Create(String),
    #[error("shim exited without reporting")]
    NoReport,
}

/// Writes `shim.json` into the config's state dir, starts `exe shim <state-dir>` and
/// waits until the container is created. Returns the shim process (the caller reaps it)
/// and the container's init pid. The shim's own stderr goes to `<state-dir>/shim.log`.
pub fn spawn(exe: &Path, cfg: &ShimConfig) -> Result<(Child, i32), SpawnError> {
    std::fs::create_dir_all(&cfg.state_dir)?;
    crate::server::write_atomic(&cfg.state_dir.join(ShimConfig::FILE), &serde_json::to_vec_pretty(cfg).map_err(io::Error::other)?)?;
    let _ = std::fs::remove_file(cfg.exit_file());
    let (ready_r, ready_w) = crate::fdio::pipe()?;
    let log = std::fs::OpenOptions::new().create(true).append(true).open(cfg.state_dir.join("shim.log"))?;
    let ready_raw = ready_w.as_raw_fd();
    let mut cmd = Command::new(exe);
    cmd.arg("shim").arg(&cfg.state_dir).env("BERTH_SHIM_READY_FD", "3");
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::from(log));
    // SAFETY: only async-signal-safe calls (setsid, dup2) run between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Its own session: the shim outlives the daemon and gets none of its signals.
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::dup2(ready_raw, 3) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    drop(ready_w);
    match read_ready(ready_r) {
        Ok(r) if r.ok => Ok((child, r.pid)),
        Ok(r) => {
            let _ = child.wait();
            Err(SpawnError::Create(r.error))
        }
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

fn read_ready(fd: OwnedFd) -> Result<Ready, SpawnError> {
    let mut line = String::new();
    BufReader::new(std::fs::File::from(fd)).read_line(&mut line)?;
    if line.trim().is_empty() {
        return Err(SpawnError::NoReport);
    }
    serde_json::from_str(&line).map_err(|e| SpawnError::Io(io::Error::other(e)))
}
