//! Test fixtures shared by berth's crates. Nothing here downloads anything: root
//! filesystems come from Debian's busybox-static (`/bin/busybox`).

pub mod daemon;
pub mod http;
pub mod prom;
pub mod registry;
pub mod sshd;
pub mod webdriver;
pub mod ws;
pub mod net;
pub mod pty;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's `scripts/` directory (fixture builders shared with README's demo).
pub fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts")
}

/// A tar of a fresh busybox rootfs made under `scratch` (by GNU tar, independent of
/// berth's own tar code), as `docker import` takes it.
pub fn busybox_rootfs_tar(scratch: &Path) -> Vec<u8> {
    let root = scratch.join("bbroot");
    busybox_rootfs(&root).unwrap();
    let out = std::process::Command::new("tar").args(["--numeric-owner", "-C"]).arg(&root).args(["-cf", "-", "."]).output().unwrap();
    assert!(out.status.success(), "tar failed");
    out.stdout
}

/// Fills `dir` with a busybox root filesystem: static /bin/busybox, its applet links,
/// /etc/passwd and /etc/group with root and `user` (uid/gid 1000), /tmp, /root.
pub fn busybox_rootfs(dir: &Path) -> std::io::Result<()> {
    let status = Command::new("sh")
        .arg(scripts_dir().join("mkrootfs-busybox.sh"))
        .arg(dir)
        .status()?;
    if !status.success() {
        return Err(std::io::Error::other(format!(
            "mkrootfs-busybox.sh {} failed: {status}",
            dir.display()
        )));
    }
    Ok(())
}

/// Where tests leave what a person may want to look at afterwards (screenshots, a
/// metrics scrape): `target/test-artefacts/` of the workspace, created on demand.
pub fn artefacts_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artefacts");
    let _ = std::fs::create_dir_all(&d);
    d
}

/// A binary of cri-tools (`crictl`, `critest`): `$CRI_TOOLS/bin/<name>`, by default the
/// shared tools directory beside the repository (`../shared/tools/cri-tools`).
pub fn cri_tool(name: &str) -> PathBuf {
    let dir = std::env::var_os("CRI_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools/cri-tools"));
    let p = dir.join("bin").join(name);
    assert!(p.is_file(), "{} not found: these tests need cri-tools (set CRI_TOOLS to its directory)", p.display());
    p
}

/// A scratch directory under /tmp with a short path (unix socket paths are limited to
/// 108 bytes), removed on drop.
pub fn short_tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("create temp dir in /tmp")
}

/// True when the test runs as root; root-only tests call this and fail loudly rather
/// than pass silently without doing anything.
pub fn require_root() {
    assert!(
        nix_is_root(),
        "this test needs root (real namespaces, cgroups, mounts): run it as root"
    );
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Removes a cgroup directory (path relative to each hierarchy's root, e.g.
/// "berth-test-123") and everything below it from every mounted hierarchy: v1
/// controllers under /sys/fs/cgroup/<controller> and a v2 mount at /sys/fs/cgroup or
/// /sys/fs/cgroup/unified. Cgroup directories can only be removed leaf first.
pub fn remove_cgroup_tree(rel: &str) {
    let rel = rel.trim_start_matches('/');
    if rel.is_empty() {
        return;
    }
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else { return };
    let mut roots: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    roots.push(PathBuf::from("/sys/fs/cgroup"));
    for root in roots {
        remove_leaf_first(&root.join(rel));
    }
}

fn remove_leaf_first(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_leaf_first(&e.path());
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootfs_has_busybox_users_and_applets() {
        let tmp = short_tempdir("bt-rootfs");
        let root = tmp.path().join("rootfs");
        busybox_rootfs(&root).unwrap();
        assert!(root.join("bin/busybox").is_file());
        assert_eq!(
            std::fs::read_link(root.join("bin/sh")).unwrap(),
            PathBuf::from("/bin/busybox")
        );
        let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
        assert!(passwd.contains("root:x:0:0:"));
        assert!(passwd.contains(":1000:1000:"));
        assert!(root.join("tmp").is_dir());
    }
}
