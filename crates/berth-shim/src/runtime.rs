//! Driving the OCI runtime that creates the container: a runc-compatible binary
//! (runc, crun, or `berth runtime`), through its command line, as containerd's shim
//! drives runc.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::config::RuntimeKind;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot run {0}: {1}")]
    Spawn(String, std::io::Error),
    /// The runtime said no; the message is what it printed.
    #[error("{0}")]
    Failed(String),
}

/// The container's stdio as the runtime must hand it on.
pub struct Stdio3 {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// The runtime a shim drives.
pub enum Runtime {
    Binary(BinaryRuntime),
    Builtin(berth_runtime::Runtime),
}

impl Runtime {
    pub fn new(kind: &RuntimeKind) -> Runtime {
        match kind {
            RuntimeKind::Binary { path, args, root } => Runtime::Binary(BinaryRuntime { path: path.clone(), args: args.clone(), root: root.clone() }),
            RuntimeKind::Builtin { root } => Runtime::Builtin(berth_runtime::Runtime::new(root.clone())),
        }
    }

    pub fn create(&self, id: &str, bundle: &Path, pid_file: &Path, console_socket: Option<&Path>, stdio: Stdio3) -> Result<(), RuntimeError> {
        match self {
            Runtime::Binary(b) => b.create(id, bundle, pid_file, console_socket, stdio),
            Runtime::Builtin(rt) => {
                let opts = berth_runtime::CreateOptions {
                    console_socket: console_socket.map(Path::to_path_buf),
                    pid_file: Some(pid_file.to_path_buf()),
                    stdio: Some([stdio.stdin, stdio.stdout, stdio.stderr]),
                    ..Default::default()
                };
                rt.create(id, bundle, opts).map(|_| ()).map_err(|e| RuntimeError::Failed(e.to_string()))
            }
        }
    }

    pub fn start(&self, id: &str) -> Result<(), RuntimeError> {
        match self {
            Runtime::Binary(b) => b.start(id),
            Runtime::Builtin(rt) => rt.start(id).map_err(|e| RuntimeError::Failed(e.to_string())),
        }
    }

    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), RuntimeError> {
        match self {
            Runtime::Binary(b) => b.kill(id, signal, all),
            Runtime::Builtin(rt) => rt.kill(id, signal, all).map_err(|e| RuntimeError::Failed(e.to_string())),
        }
    }

    pub fn delete(&self, id: &str) -> Result<(), RuntimeError> {
        match self {
            Runtime::Binary(b) => b.delete(id),
            Runtime::Builtin(rt) => rt.delete(id, true).map_err(|e| RuntimeError::Failed(e.to_string())),
        }
    }

    pub fn exec(&self, id: &str, process_json: &Path, pid_file: &Path, console_socket: Option<&Path>, stdio: Stdio3) -> Result<(), RuntimeError> {
        match self {
            Runtime::Binary(b) => b.exec(id, process_json, pid_file, console_socket, stdio),
            Runtime::Builtin(rt) => {
                let data = std::fs::read(process_json).map_err(|e| RuntimeError::Failed(format!("reading process: {e}")))?;
                let process: oci_spec::runtime::Process =
                    serde_json::from_slice(&data).map_err(|e| RuntimeError::Failed(format!("invalid process: {e}")))?;
                let opts = berth_runtime::ExecOptions {
                    console_socket: console_socket.map(Path::to_path_buf),
                    pid_file: Some(pid_file.to_path_buf()),
                    stdio: Some([stdio.stdin, stdio.stdout, stdio.stderr]),
                    ..Default::default()
                };
                rt.exec(id, &process, opts).map(|_| ()).map_err(|e| RuntimeError::Failed(e.to_string()))
            }
        }
    }

    /// OOM kills recorded in the container's memory cgroup (read before delete).
    pub fn oom_killed(&self, id: &str, cgroups_path: Option<&str>) -> bool {
        match self {
            Runtime::Builtin(rt) => rt.oom_killed(id).unwrap_or(false),
            Runtime::Binary(_) => cgroups_path.is_some_and(cgroup_oom_killed),
        }
    }
}

/// A runc-compatible binary driven through its command line.
pub struct BinaryRuntime {
    path: PathBuf,
    args: Vec<String>,
    root: PathBuf,
}

impl BinaryRuntime {

    fn command(&self) -> Command {
        let mut c = Command::new(&self.path);
        c.args(&self.args).arg("--root").arg(&self.root);
        c
    }

    /// `create`: the init is left waiting for `start`; its pid goes to `pid_file`.
    /// Output of the runtime itself goes to `stdio` too (it is the container's until
    /// start), so on failure the caller reads the error from there.
    pub fn create(&self, id: &str, bundle: &Path, pid_file: &Path, console_socket: Option<&Path>, stdio: Stdio3) -> Result<(), RuntimeError> {
        let mut c = self.command();
        c.arg("create").arg("--bundle").arg(bundle).arg("--pid-file").arg(pid_file);
        if let Some(s) = console_socket {
            c.arg("--console-socket").arg(s);
        }
        c.arg(id);
        c.stdin(Stdio::from(stdio.stdin)).stdout(Stdio::from(stdio.stdout)).stderr(Stdio::from(stdio.stderr));
        let status = c.status().map_err(|e| RuntimeError::Spawn(self.path.display().to_string(), e))?;
        if status.success() {
            Ok(())
        } else {
            Err(RuntimeError::Failed(format!("runtime create failed ({status})")))
        }
    }

    pub fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.simple(&["start", id])
    }

    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), RuntimeError> {
        let sig = signal.to_string();
        if all {
            self.simple(&["kill", "--all", id, &sig])
        } else {
            self.simple(&["kill", id, &sig])
        }
    }

    pub fn delete(&self, id: &str) -> Result<(), RuntimeError> {
        self.simple(&["delete", "--force", id])
    }

    /// `exec --detach`: the process runs in the container with `stdio`; its pid goes to
    /// `pid_file`. Errors of the runtime come back on `err_capture`'s other end.
    pub fn exec(&self, id: &str, process_json: &Path, pid_file: &Path, console_socket: Option<&Path>, stdio: Stdio3) -> Result<(), RuntimeError> {
        let mut c = self.command();
        c.arg("exec").arg("--detach").arg("--process").arg(process_json).arg("--pid-file").arg(pid_file);
        if let Some(s) = console_socket {
            c.arg("--console-socket").arg(s);
        }
        c.arg(id);
        c.stdin(Stdio::from(stdio.stdin)).stdout(Stdio::from(stdio.stdout)).stderr(Stdio::from(stdio.stderr));
        let status = c.status().map_err(|e| RuntimeError::Spawn(self.path.display().to_string(), e))?;
        if status.success() {
            Ok(())
        } else {
            Err(RuntimeError::Failed(format!("runtime exec failed ({status})")))
        }
    }

    fn simple(&self, args: &[&str]) -> Result<(), RuntimeError> {
        let out = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| RuntimeError::Spawn(self.path.display().to_string(), e))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(RuntimeError::Failed(runtime_message(&out.stderr, &format!("runtime {} failed ({})", args[0], out.status))))
        }
    }
}

/// The useful part of what a runtime printed: runc prints plain text or JSON log lines
/// (`{"level":"error","msg":"..."}`).
pub fn runtime_message(stderr: &[u8], fallback: &str) -> String {
    let text = String::from_utf8_lossy(stderr);
    let mut msgs = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
            && let Some(m) = v.get("msg").and_then(|m| m.as_str()) {
                msgs.push(m.to_string());
                continue;
            }
        msgs.push(line.to_string());
    }
    if msgs.is_empty() { fallback.to_string() } else { msgs.join(": ") }
}

/// Was the container OOM-killed? Reads its memory cgroup (v1 `memory.oom_control`,
/// v2 `memory.events`) before the runtime deletes it.
pub fn cgroup_oom_killed(cgroups_path: &str) -> bool {
    let rel = cgroups_path.trim_start_matches('/');
    let candidates = [
        format!("/sys/fs/cgroup/memory/{rel}/memory.oom_control"),
        format!("/sys/fs/cgroup/{rel}/memory.events"),
        format!("/sys/fs/cgroup/unified/{rel}/memory.events"),
    ];
    for c in candidates {
        if let Ok(text) = std::fs::read_to_string(&c) {
            for line in text.lines() {
                if let Some(n) = line.strip_prefix("oom_kill ")
                    && n.trim().parse::<u64>().unwrap_or(0) > 0 {
                        return true;
                    }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_message_reads_json_and_text() {
        assert_eq!(
            runtime_message(br#"{"level":"error","msg":"container exists","time":"x"}"#, "f"),
            "container exists"
        );
        assert_eq!(runtime_message(b"plain error\n", "f"), "plain error");
        assert_eq!(runtime_message(b"", "fallback"), "fallback");
    }
}
