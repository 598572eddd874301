//! config.json: loading it from a bundle, and the default one `runc spec` writes.

use std::path::Path;

use oci_spec::runtime::Spec;

use crate::error::{Error, Result};

/// runc's `runc spec` template: busybox-friendly `sh`, read-only root, the standard
/// mounts, masked and read-only /proc paths, new pid/net/ipc/uts/mount/cgroup namespaces.
const DEFAULT_SPEC: &str = r#"{
  "ociVersion": "1.0.2-dev",
  "process": {
    "terminal": true,
    "user": {"uid": 0, "gid": 0},
    "args": ["sh"],
    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
    "cwd": "/",
    "capabilities": {
      "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    },
    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
    "noNewPrivileges": true
  },
  "root": {"path": "rootfs", "readonly": true},
  "hostname": "runc",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
  ],
  "linux": {
    "resources": {"devices": [{"allow": false, "access": "rwm"}]},
    "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
    "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
    "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
  }
}"#;

/// What `runc spec` (and `berth runtime spec`) writes.
pub fn default_spec() -> Spec {
    // The template is a constant checked by a unit test, so this cannot fail at run time.
    serde_json::from_str(DEFAULT_SPEC).unwrap_or_default()
}

/// The template as JSON text (pretty-printed, as `spec` writes it).
pub fn default_spec_json() -> String {
    serde_json::to_string_pretty(&default_spec()).unwrap_or_else(|_| DEFAULT_SPEC.to_string())
}

/// Loads `<bundle>/config.json`.
pub fn load(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let data = std::fs::read(&path).map_err(|e| Error::LoadSpec {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let spec: Spec = serde_json::from_slice(&data).map_err(|e| Error::LoadSpec {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if spec.process().is_none() {
        return Err(Error::InvalidSpec("process is missing".into()));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_parses_and_matches_runc() {
        let s: Spec = serde_json::from_str(DEFAULT_SPEC).unwrap();
        assert_eq!(s.hostname().as_deref(), Some("runc"));
        assert_eq!(s.mounts().as_ref().unwrap().len(), 7);
        assert_eq!(s.linux().as_ref().unwrap().namespaces().as_ref().unwrap().len(), 6);
        let round: Spec = serde_json::from_str(&default_spec_json()).unwrap();
        assert_eq!(round, s);
    }

    #[test]
    fn load_reports_malformed_and_unknown_namespace() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("config.json"), "{not json").unwrap();
        assert!(matches!(load(t.path()), Err(Error::LoadSpec { .. })));
        let mut v: serde_json::Value = serde_json::from_str(DEFAULT_SPEC).unwrap();
        v["linux"]["namespaces"][0]["type"] = "bogus".into();
        std::fs::write(t.path().join("config.json"), v.to_string()).unwrap();
        let e = load(t.path()).unwrap_err().to_string();
        assert!(e.contains("bogus") || e.contains("unknown variant"), "{e}");
        assert!(matches!(load(&t.path().join("missing")), Err(Error::LoadSpec { .. })));
    }
}
