//! What the daemon tells a shim: written as `shim.json` in the container's state dir.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShimConfig {
    pub id: String,
    /// OCI bundle (config.json; root.path is already mounted by the daemon).
    pub bundle: PathBuf,
    /// Where the shim keeps its pid file and `exit.json`.
    pub state_dir: PathBuf,
    /// The control socket (short path: sun_path is 108 bytes).
    pub socket: PathBuf,
    pub runtime: RuntimeKind,
    pub tty: bool,
    /// Keep the container's stdin open for attach (docker's OpenStdin).
    pub open_stdin: bool,
    pub log: LogConfig,
    /// Initial terminal size (rows, cols), if the client gave one.
    #[serde(default)]
    pub console_size: Option<(u16, u16)>,
}

/// Which OCI runtime creates the container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RuntimeKind {
    /// A runc-compatible binary (`runc`, `crun`, or berth itself with `args = ["runtime"]`),
    /// driven through its command line as containerd's shim drives runc.
    Binary { path: PathBuf, #[serde(default)] args: Vec<String>, root: PathBuf },
    /// berth's own runtime, called in-process (no extra exec per container).
    Builtin { root: PathBuf },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogConfig {
    /// json-file (or local) log path; None = no log (docker's `--log-driver none`).
    pub path: Option<PathBuf>,
    /// Rotate when the file passes this many bytes (0 = never).
    pub max_size: u64,
    /// How many files to keep, the live one included (≥ 1).
    pub max_files: u32,
    /// The log driver (see [`crate::logdriver`]); empty means json-file; `cri` is the
    /// kubelet's format at `path`, never rotated by the shim (the kubelet rotates it).
    #[serde(default)]
    pub driver: String,
    /// The driver's options (`--log-opt`), already checked.
    #[serde(default)]
    pub opts: std::collections::BTreeMap<String, String>,
    /// The container, for the drivers' tags and fields.
    #[serde(default)]
    pub info: crate::logdriver::LogInfo,
    /// Where drivers that cannot be read back keep their `local` cache (dual logging).
    #[serde(default)]
    pub cache: Option<PathBuf>,
    /// journald's socket, when not the standard one.
    #[serde(default)]
    pub journal_socket: Option<PathBuf>,
}

impl ShimConfig {
    pub const FILE: &'static str = "shim.json";

    pub fn load(state_dir: &Path) -> std::io::Result<ShimConfig> {
        let data = std::fs::read(state_dir.join(Self::FILE))?;
        serde_json::from_slice(&data).map_err(std::io::Error::other)
    }

    pub fn exit_file(&self) -> PathBuf {
        self.state_dir.join("exit.json")
    }

    pub fn pid_file(&self) -> PathBuf {
        self.state_dir.join("shim.pid")
    }

    pub fn init_pid_file(&self) -> PathBuf {
        self.state_dir.join("init.pid")
    }
}
