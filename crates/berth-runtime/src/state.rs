//! The per-container record under the state root (`<root>/<id>/state.json`), runc's state
//! JSON, and the process checks status is derived from.

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::cgroups::Layout;
use crate::error::{Error, Result};

/// runc's status words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What `runc state` prints (same keys, same order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub oci_version: String,
    pub id: String,
    /// Host pid of the init; 0 once stopped.
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 with nanoseconds, UTC.
    pub created: String,
    pub owner: String,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

/// What we keep about a container between calls.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub pid: i32,
    /// `/proc/<pid>/stat` start time: tells our init from a later process with a reused pid.
    pub start_time: u64,
    pub cgroup_path: String,
    pub cgroup_layout: Layout,
    /// The spec the container was created from (exec reuses its namespaces and seccomp).
    pub spec: Spec,
}

pub(crate) const STATE_FILE: &str = "state.json";
pub(crate) const EXEC_FIFO: &str = "exec.fifo";

/// Writes `data` to `path` atomically: temp file in the same directory, then rename.
/// A crash leaves the old content or the new. No fsync (runc has none either): the
/// runtime's state and pid files describe processes, which a machine crash ends anyway,
/// and they live under `/run` (tmpfs); flushing them cost ~1 ms per container start
/// where the root is on a disk.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    write_atomic_with(path, data, false)
}

/// [`write_atomic`] that also survives a power loss (fsync before the rename): for
/// what outlives the processes, such as the seccomp cache.
pub fn write_atomic_durable(path: &Path, data: &[u8]) -> Result<()> {
    write_atomic_with(path, data, true)
}

fn write_atomic_with(path: &Path, data: &[u8], durable: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(format!("write {}", path.display()), e)
    })
}

impl Record {
    pub(crate) fn save(&self, dir: &Path) -> Result<()> {
        let data = serde_json::to_vec(self).map_err(|e| Error::io("encode state", std::io::Error::other(e)))?;
        write_atomic(&dir.join(STATE_FILE), &data)
    }

    pub(crate) fn load(dir: &Path, id: &str) -> Result<Record> {
        let data = match std::fs::read(dir.join(STATE_FILE)) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NotFound(id.to_string())),
            Err(e) => return Err(Error::io(format!("read state of {id}"), e)),
        };
        serde_json::from_slice(&data)
            .map_err(|e| Error::io(format!("decode state of {id}"), std::io::Error::other(e)))
    }
}

/// Just the cgroup of a container's record: stats are read every second (dashboard,
/// `/metrics`), and decoding the whole record (its spec, seccomp profile included)
/// each time would cost more than reading the cgroup.
#[derive(Debug, Deserialize)]
pub(crate) struct CgroupOf {
    pub cgroup_path: String,
    pub cgroup_layout: Layout,
}

impl CgroupOf {
    pub(crate) fn load(dir: &Path, id: &str) -> Result<CgroupOf> {
        let data = match std::fs::read(dir.join(STATE_FILE)) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NotFound(id.to_string())),
            Err(e) => return Err(Error::io(format!("read state of {id}"), e)),
        };
        serde_json::from_slice(&data).map_err(|e| Error::io(format!("decode state of {id}"), std::io::Error::other(e)))
    }
}

/// State and start time of a process from `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    pub state: char,
    pub start_time: u64,
}

pub(crate) fn parse_proc_stat(text: &str) -> Option<ProcStat> {
    // comm may contain spaces and parens: everything after the last ')' is fixed fields.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

pub(crate) fn proc_stat(pid: i32) -> Option<ProcStat> {
    parse_proc_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// True when `pid` is still our process (same start time) and has not exited.
pub(crate) fn is_alive(pid: i32, start_time: u64) -> bool {
    match proc_stat(pid) {
        Some(s) => s.start_time == start_time && s.state != 'Z' && s.state != 'X',
        None => false,
    }
}

/// A pidfd for `pid`, only if it still is the process that started at `start_time`.
/// Opening the pidfd first and checking after closes the pid-reuse race.
pub(crate) fn pidfd_for(pid: i32, start_time: u64) -> Result<Option<OwnedFd>> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            return Ok(None);
        }
        return Err(Error::io(format!("pidfd_open {pid}"), e));
    }
    // SAFETY: fd was just returned by the kernel and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    if !is_alive(pid, start_time) {
        return Ok(None);
    }
    Ok(Some(fd))
}

pub(crate) fn pidfd_signal(fd: &OwnedFd, signal: i32) -> std::io::Result<()> {
    // SAFETY: fd is a valid pidfd; a null siginfo means "like kill(2)".
    let rc = unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, fd.as_raw_fd(), signal, std::ptr::null::<libc::siginfo_t>(), 0)
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Rejects ids that would escape the state root or confuse tools (runc's rule).
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && !id.starts_with('.')
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'));
    if ok { Ok(()) } else { Err(Error::InvalidId(id.to_string())) }
}

pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_parses_names_with_parens() {
        let s = "123 (a b) c) S 1 123 123 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(parse_proc_stat(s), Some(ProcStat { state: 'S', start_time: 98765 }));
        assert_eq!(parse_proc_stat("garbage"), None);
        let me = proc_stat(std::process::id() as i32).unwrap();
        assert!(is_alive(std::process::id() as i32, me.start_time));
        assert!(!is_alive(std::process::id() as i32, me.start_time + 1));
    }

    #[test]
    fn ids_are_checked() {
        validate_id("abc-1.2_x+y").unwrap();
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn state_json_has_runc_keys() {
        let s = State {
            oci_version: "1.0.2-dev".into(),
            id: "x".into(),
            pid: 5,
            status: Status::Running,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "2026-01-01T00:00:00.000000000Z".into(),
            owner: String::new(),
            annotations: HashMap::new(),
        };
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(
            j,
            r#"{"ociVersion":"1.0.2-dev","id":"x","pid":5,"status":"running","bundle":"/b","rootfs":"/b/rootfs","created":"2026-01-01T00:00:00.000000000Z","owner":""}"#
        );
    }

    #[test]
    fn atomic_write_replaces() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1);
    }
}
