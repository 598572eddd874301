//! The OCI runtimes a container can run on, and the operations the daemon performs on a
//! running container directly (pause, resume, stats, update, ps) — the shim does the
//! rest. "berth" is the built-in runtime; others are runc-compatible binaries named in
//! the daemon config (`runtimes`), with `runc` and `crun` known by default.

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_shim::RuntimeKind;

use crate::config::EngineConfig;
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub enum RuntimeHandle {
    Builtin(berth_runtime::Runtime),
    Binary { path: PathBuf, args: Vec<String>, root: PathBuf },
}

impl RuntimeHandle {
    /// The runtime called `name`, with its state under the exec root.
    pub fn resolve(cfg: &EngineConfig, name: &str) -> Result<RuntimeHandle> {
        let root = cfg.exec_root.join("runtime").join(name);
        if name == "berth" {
            return Ok(RuntimeHandle::Builtin(berth_runtime::Runtime::new(root)));
        }
        if let Some(rc) = cfg.runtimes.get(name) {
            return Ok(RuntimeHandle::Binary { path: rc.path.clone(), args: rc.runtime_args.clone(), root });
        }
        if (name == "runc" || name == "crun")
            && let Some(path) = which(name) {
                return Ok(RuntimeHandle::Binary { path, args: Vec::new(), root });
            }
        Err(Error::invalid(format!("unknown or invalid runtime name: {name}")))
    }

    pub fn shim_kind(&self) -> RuntimeKind {
        match self {
            RuntimeHandle::Builtin(rt) => RuntimeKind::Builtin { root: rt.root().to_path_buf() },
            RuntimeHandle::Binary { path, args, root } => RuntimeKind::Binary { path: path.clone(), args: args.clone(), root: root.clone() },
        }
    }

    pub fn pause(&self, id: &str) -> Result<()> {
        match self {
            RuntimeHandle::Builtin(rt) => rt.pause(id).map_err(rt_err),
            RuntimeHandle::Binary { .. } => self.run(&["pause", id]).map(|_| ()),
        }
    }

    pub fn resume(&self, id: &str) -> Result<()> {
        match self {
            RuntimeHandle::Builtin(rt) => rt.resume(id).map_err(rt_err),
            RuntimeHandle::Binary { .. } => self.run(&["resume", id]).map(|_| ()),
        }
    }

    /// Host pids of the container's processes.
    pub fn processes(&self, id: &str) -> Result<Vec<i32>> {
        match self {
            RuntimeHandle::Builtin(rt) => rt.processes(id).map_err(rt_err),
            RuntimeHandle::Binary { .. } => {
                let out = self.run(&["ps", "--format", "json", id])?;
                serde_json::from_slice(&out).map_err(|e| Error::system(format!("runtime ps: {e}")))
            }
        }
    }

    /// cgroup statistics, in runc's `events --stats` shape.
    pub fn stats(&self, id: &str) -> Result<berth_runtime::Stats> {
        match self {
            RuntimeHandle::Builtin(rt) => rt.stats(id).map_err(rt_err),
            RuntimeHandle::Binary { .. } => {
                let out = self.run(&["events", "--stats", id])?;
                let v: serde_json::Value = serde_json::from_slice(&out).map_err(|e| Error::system(format!("runtime events: {e}")))?;
                serde_json::from_value(v.get("data").cloned().unwrap_or_default()).map_err(|e| Error::system(format!("runtime stats: {e}")))
            }
        }
    }

    pub fn update(&self, id: &str, resources: &serde_json::Value) -> Result<()> {
        match self {
            RuntimeHandle::Builtin(rt) => {
                let r: oci_spec::runtime::LinuxResources = serde_json::from_value(resources.clone()).map_err(|e| Error::invalid(format!("resources: {e}")))?;
                rt.update(id, &r).map_err(rt_err)
            }
            RuntimeHandle::Binary { .. } => {
                let tmp = tempfile_in_root(self)?;
                std::fs::write(&tmp, serde_json::to_vec(resources)?)?;
                let r = self.run(&["update", "--resources", &tmp.to_string_lossy(), id]);
                let _ = std::fs::remove_file(&tmp);
                r.map(|_| ())
            }
        }
    }

    fn run(&self, args: &[&str]) -> Result<Vec<u8>> {
        let RuntimeHandle::Binary { path, args: pre, root } = self else {
            return Err(Error::system("not a binary runtime"));
        };
        let out = Command::new(path)
            .args(pre)
            .arg("--root")
            .arg(root)
            .args(args)
            .output()
            .map_err(|e| Error::system(format!("running {}: {e}", path.display())))?;
        if !out.status.success() {
            let msg = berth_shim::runtime::runtime_message(&out.stderr, &format!("{} {} failed", path.display(), args[0]));
            return Err(Error::system(msg));
        }
        Ok(out.stdout)
    }
}

fn tempfile_in_root(rt: &RuntimeHandle) -> Result<PathBuf> {
    let RuntimeHandle::Binary { root, .. } = rt else { return Err(Error::system("not a binary runtime")) };
    std::fs::create_dir_all(root)?;
    Ok(root.join(format!("update-{}.json", crate::util::random_id())))
}

fn rt_err(e: berth_runtime::Error) -> Error {
    match e {
        berth_runtime::Error::NotFound(_) => Error::not_found(e.to_string()),
        berth_runtime::Error::WrongState { .. } => Error::conflict(e.to_string()),
        berth_runtime::Error::InvalidSpec(_) | berth_runtime::Error::Cgroup { .. } => Error::invalid(e.to_string()),
        _ => Error::system(e.to_string()),
    }
}

pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}
