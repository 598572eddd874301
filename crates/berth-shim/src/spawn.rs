//! Starting a shim from the daemon: forked from the shim zygote, or `berth shim
//! <state-dir>` exec'd in its own session; either way with a pipe on which it reports
//! whether the container was created.

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

/// The binary to run shims from, for a daemon that is `berth_exe`: `berth-shim` beside it
/// when there is one (built and installed together; each shim then carries only the
/// shim's code and data), else `berth_exe` itself, which has the same `shim` and
/// `shim-zygote` sub-commands.
pub fn shim_binary(berth_exe: &Path) -> std::path::PathBuf {
    let beside = berth_exe.with_file_name("berth-shim");
    match std::fs::metadata(&beside) {
        Ok(m) if m.is_file() => beside,
        _ => berth_exe.to_path_buf(),
    }
}

/// A shim that reported its container created.
#[derive(Debug)]
pub struct Spawned {
    /// For the caller to reap: the exec'd shim, or the zygote when this call started it
    /// (a forked shim is the zygote's child).
    pub child: Option<Child>,
    /// The container's init.
    pub pid: i32,
    /// Where the shim's create went (see [`Ready::phases`]).
    pub phases: Vec<(String, f64)>,
}

/// Writes `shim.json` into the config's state dir, starts the shim and waits until the
/// container is created. With `zygote` (the socket of a [`crate::zygote`]; started here
/// when none answers), the shim is forked from the zygote and shares its relocated
/// pages; otherwise, or if no zygote can be had, `exe shim <state-dir>` is exec'd. The
/// shim's own stderr goes to `<state-dir>/shim.log`.
pub fn spawn(exe: &Path, cfg: &ShimConfig, zygote: Option<&Path>) -> Result<Spawned, SpawnError> {
    std::fs::create_dir_all(&cfg.state_dir)?;
    crate::server::write_atomic(&cfg.state_dir.join(ShimConfig::FILE), &serde_json::to_vec_pretty(cfg).map_err(io::Error::other)?)?;
    let _ = std::fs::remove_file(cfg.exit_file());
    if let Some(z) = zygote.filter(|_| std::env::var_os("BERTH_SHIM_EXEC").is_none()) {
        match spawn_forked(exe, z, cfg) {
            Ok(forked) => return Ok(forked),
            // The shim ran and the container could not be made: that is the answer.
            Err(e @ (SpawnError::Create(_) | SpawnError::NoReport)) => return Err(e),
            // No zygote to be had: exec the shim as always.
            Err(SpawnError::Io(_)) => {}
        }
    }
    spawn_exec(exe, cfg).map(|(c, r)| Spawned { child: Some(c), pid: r.pid, phases: r.phases })
}

/// Only one zygote is started at a time, even when containers start in parallel.
static ZYGOTE_START: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A zygote of this very binary answering on `socket`: the running one, or a new one.
/// A zygote started here is returned, for the caller to reap when it ends.
fn ensure_zygote(exe: &Path, socket: &Path) -> io::Result<Option<Child>> {
    let _one = ZYGOTE_START.lock().unwrap_or_else(|p| p.into_inner());
    let me = crate::zygote::exe_identity(exe);
    match crate::zygote::call(socket, &crate::zygote::ZygoteRequest::Hello, None) {
        Ok(r) if r.ok && r.exe == me => return Ok(None),
        // A zygote of another build (the daemon was upgraded): it retires.
        Ok(_) => {
            let _ = crate::zygote::call(socket, &crate::zygote::ZygoteRequest::Quit, None);
        }
        Err(_) => {}
    }
    let log = std::fs::OpenOptions::new().create(true).append(true).open(socket.with_extension("log"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("shim-zygote").arg(socket).arg("-".repeat(crate::zygote::title_room(socket))).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::from(log));
    // SAFETY: only setsid runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            // Its own session: it outlives the daemon, like the shims it forks.
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    for _ in 0..200 {
        if let Ok(r) = crate::zygote::call(socket, &crate::zygote::ZygoteRequest::Hello, None)
            && r.ok
        {
            // Reaped by the caller when it ends (killed, or retired by a newer daemon).
            return Ok(Some(child));
        }
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(io::Error::other("the shim zygote did not start"))
}

/// The shim's report, and the zygote if this call started it.
fn spawn_forked(exe: &Path, socket: &Path, cfg: &ShimConfig) -> Result<Spawned, SpawnError> {
    let zygote = ensure_zygote(exe, socket)?;
    let fork = || -> Result<Ready, SpawnError> {
        let (ready_r, ready_w) = crate::fdio::pipe()?;
        let resp = crate::zygote::call(socket, &crate::zygote::ZygoteRequest::Spawn { state_dir: cfg.state_dir.clone() }, Some(ready_w.as_raw_fd()))?;
        drop(ready_w);
        if !resp.ok {
            return Err(SpawnError::Io(io::Error::other(resp.error)));
        }
        match read_ready(ready_r)? {
            r if r.ok => Ok(r),
            r => Err(SpawnError::Create(r.error)),
        }
    };
    match fork() {
        Ok(r) => Ok(Spawned { child: zygote, pid: r.pid, phases: r.phases }),
        Err(e) => {
            if let Some(mut z) = zygote {
                // Rare (a new zygote and a failed start): a thread reaps it.
                std::thread::spawn(move || z.wait());
            }
            Err(e)
        }
    }
}

/// `exe shim <state-dir>` in its own session, reporting on fd 3.
fn spawn_exec(exe: &Path, cfg: &ShimConfig) -> Result<(Child, Ready), SpawnError> {
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
        Ok(r) if r.ok => Ok((child, r)),
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

#[cfg(test)]
mod tests {
    use super::shim_binary;

    #[test]
    fn shims_run_from_berth_shim_beside_berth_else_from_berth() {
        let dir = tempfile::tempdir().unwrap();
        let berth = dir.path().join("berth");
        std::fs::write(&berth, b"").unwrap();
        assert_eq!(shim_binary(&berth), berth);
        // A directory of that name is not a binary.
        std::fs::create_dir(dir.path().join("berth-shim")).unwrap();
        assert_eq!(shim_binary(&berth), berth);
        std::fs::remove_dir(dir.path().join("berth-shim")).unwrap();
        std::fs::write(dir.path().join("berth-shim"), b"").unwrap();
        assert_eq!(shim_binary(&berth), dir.path().join("berth-shim"));
    }
}
