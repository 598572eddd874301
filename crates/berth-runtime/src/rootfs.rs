//! The container's filesystem view: the mounts of the spec, /dev, pivot_root, and the
//! masked / read-only paths. Planned in the parent from config.json ([`RootfsPlan`]), run in
//! the init through the [`Syscall`] seam.

use std::path::{Component, Path, PathBuf};

use nix::mount::MsFlags;
use nix::sys::stat::SFlag;
use oci_spec::runtime::{LinuxDeviceType, Spec};

use crate::error::{Error, Result};
use crate::syscall::{FileKind, Syscall};

/// One spec mount, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct MountSpec {
    /// Absolute path inside the container.
    pub destination: PathBuf,
    pub fstype: String,
    /// Host path for binds (absolute), the source string otherwise.
    pub source: Option<PathBuf>,
    /// Flags to set (without MS_BIND / MS_REC, which `bind` / `recursive` carry).
    pub flags: MsFlags,
    pub bind: bool,
    pub recursive: bool,
    /// Propagation changes applied after the mount (MS_PRIVATE, MS_SLAVE | MS_REC, ...).
    pub propagation: Vec<MsFlags>,
    /// Options the kernel interprets (mode=755, size=..., newinstance, ...).
    pub data: String,
    /// `rro`: read-only all the way down, submounts included (mount_setattr).
    pub recursive_readonly: bool,
}

/// A cgroup hierarchy to show inside the container at a `cgroup` mount.
#[derive(Debug, Clone, PartialEq)]
pub enum CgroupView {
    /// cgroup v2: mount a fresh cgroup2 (own cgroup namespace) or bind the container's dir.
    Unified { host_dir: PathBuf, own_namespace: bool },
    /// cgroup v1: a tmpfs with one bind per hierarchy (`name` is e.g. "cpu" or "cpu,cpuacct").
    V1 { hierarchies: Vec<(String, PathBuf)> },
}

/// A device node to create in the container's /dev.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceNode {
    pub path: PathBuf,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Everything the init does to the filesystem, decided before the clone.
#[derive(Debug, Clone)]
pub struct RootfsPlan {
    /// Absolute host path of the root filesystem.
    pub rootfs: PathBuf,
    /// Applied to "/" first so nothing we mount leaks back to the host.
    pub root_propagation: MsFlags,
    pub mounts: Vec<MountSpec>,
    pub cgroup_view: Option<CgroupView>,
    /// False when the spec bind-mounts the host's /dev (then it is used as it is).
    pub setup_dev: bool,
    pub devices: Vec<DeviceNode>,
    /// In a new user namespace device nodes cannot be made: bind the host's instead.
    pub in_userns: bool,
    pub no_pivot: bool,
    pub readonly: bool,
    pub masked_paths: Vec<PathBuf>,
    pub readonly_paths: Vec<PathBuf>,
    pub sysctl: Vec<(String, String)>,
}

const DEFAULT_DEVICES: &[(&str, u64, u64)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// Parsed mount options.
#[derive(Debug, PartialEq)]
pub struct MountOptions {
    pub flags: MsFlags,
    pub bind: bool,
    pub recursive: bool,
    pub propagation: Vec<MsFlags>,
    pub data: Vec<String>,
    pub recursive_readonly: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions { flags: MsFlags::empty(), bind: false, recursive: false, propagation: Vec::new(), data: Vec::new(), recursive_readonly: false }
    }
}

/// Splits OCI mount options into flags, propagation and filesystem data (runc's table).
pub fn parse_mount_options(options: &[String]) -> Result<MountOptions> {
    let mut o = MountOptions::default();
    for opt in options {
        let (set, clear): (MsFlags, MsFlags) = match opt.as_str() {
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "silent" => (MsFlags::MS_SILENT, MsFlags::empty()),
            "loud" => (MsFlags::empty(), MsFlags::MS_SILENT),
            "bind" => {
                o.bind = true;
                continue;
            }
            "rbind" => {
                o.bind = true;
                o.recursive = true;
                continue;
            }
            "private" => {
                o.propagation.push(MsFlags::MS_PRIVATE);
                continue;
            }
            "rprivate" => {
                o.propagation.push(MsFlags::MS_PRIVATE | MsFlags::MS_REC);
                continue;
            }
            "shared" => {
                o.propagation.push(MsFlags::MS_SHARED);
                continue;
            }
            "rshared" => {
                o.propagation.push(MsFlags::MS_SHARED | MsFlags::MS_REC);
                continue;
            }
            "slave" => {
                o.propagation.push(MsFlags::MS_SLAVE);
                continue;
            }
            "rslave" => {
                o.propagation.push(MsFlags::MS_SLAVE | MsFlags::MS_REC);
                continue;
            }
            "unbindable" => {
                o.propagation.push(MsFlags::MS_UNBINDABLE);
                continue;
            }
            "runbindable" => {
                o.propagation.push(MsFlags::MS_UNBINDABLE | MsFlags::MS_REC);
                continue;
            }
            // Docker's hint for volume copy-up is handled by the daemon, not the runtime.
            "tmpcopyup" => continue,
            // runc's recursive read-only: read-only, and so are the mounts below.
            "rro" => {
                o.recursive_readonly = true;
                (MsFlags::MS_RDONLY, MsFlags::empty())
            }
            "idmap" | "ridmap" => {
                return Err(Error::Unsupported(format!(
                    "mount option {opt:?} (id-mapped mounts) is not supported by berth's runtime"
                )));
            }
            other => {
                o.data.push(other.to_string());
                continue;
            }
        };
        o.flags.insert(set);
        o.flags.remove(clear);
    }
    Ok(o)
}

/// Parses a propagation name as used by linux.rootfsPropagation.
pub fn parse_propagation(name: &str) -> Result<MsFlags> {
    Ok(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        other => {
            return Err(Error::InvalidSpec(format!("unknown rootfsPropagation {other:?}")));
        }
    })
}

impl RootfsPlan {
    /// Reads the filesystem part of a spec. `bundle` resolves relative paths; `cgroup_view`
    /// comes from the cgroup manager (what a `cgroup` mount should show).
    pub fn from_spec(
        spec: &Spec,
        bundle: &Path,
        in_userns: bool,
        no_pivot: bool,
        cgroup_view: Option<CgroupView>,
    ) -> Result<Self> {
        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| Error::InvalidSpec("root is missing".into()))?;
        let rootfs = if root.path().is_absolute() {
            root.path().clone()
        } else {
            bundle.join(root.path())
        };
        let rootfs = std::fs::canonicalize(&rootfs).map_err(|e| {
            Error::InvalidSpec(format!("rootfs {} does not exist: {e}", rootfs.display()))
        })?;
        if !rootfs.is_dir() {
            return Err(Error::InvalidSpec(format!("rootfs {} is not a directory", rootfs.display())));
        }
        let linux = spec.linux().as_ref();
        let root_propagation = match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
            Some(p) if !p.is_empty() => parse_propagation(p)?,
            _ => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        };

        let mut mounts = Vec::new();
        let mut setup_dev = true;
        for m in spec.mounts().iter().flatten() {
            if !m.destination().is_absolute() {
                return Err(Error::InvalidSpec(format!(
                    "mount destination {} is not absolute",
                    m.destination().display()
                )));
            }
            let opts = parse_mount_options(m.options().as_deref().unwrap_or(&[]))?;
            let fstype = m.typ().clone().unwrap_or_default();
            let bind = opts.bind || fstype == "bind";
            let source = match m.source() {
                Some(s) if bind && !s.is_absolute() => Some(bundle.join(s)),
                Some(s) => Some(s.clone()),
                None => None,
            };
            if bind {
                let src = source.as_ref().ok_or_else(|| {
                    Error::InvalidSpec(format!("bind mount {} has no source", m.destination().display()))
                })?;
                if !src.exists() {
                    return Err(Error::InvalidSpec(format!(
                        "bind mount source {} does not exist",
                        src.display()
                    )));
                }
                if clean(m.destination()) == Path::new("/dev") {
                    setup_dev = false;
                }
            } else if fstype.is_empty() {
                return Err(Error::InvalidSpec(format!(
                    "mount {} has no type",
                    m.destination().display()
                )));
            }
            mounts.push(MountSpec {
                destination: clean(m.destination()),
                fstype,
                source,
                flags: opts.flags,
                bind,
                recursive: opts.recursive,
                propagation: opts.propagation,
                data: opts.data.join(","),
                recursive_readonly: opts.recursive_readonly,
            });
        }

        let mut devices = Vec::new();
        for d in linux.and_then(|l| l.devices().as_ref()).into_iter().flatten() {
            let kind = match d.typ() {
                LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
                LinuxDeviceType::B => SFlag::S_IFBLK,
                LinuxDeviceType::P => SFlag::S_IFIFO,
                LinuxDeviceType::A => {
                    return Err(Error::InvalidSpec(format!(
                        "device {} has type 'a', which only device cgroup rules may use",
                        d.path().display()
                    )));
                }
            };
            if !d.path().starts_with("/dev") {
                return Err(Error::InvalidSpec(format!("device {} is not under /dev", d.path().display())));
            }
            devices.push(DeviceNode {
                path: clean(d.path()),
                kind,
                major: d.major() as u64,
                minor: d.minor() as u64,
                mode: d.file_mode().unwrap_or(0o666) & 0o7777,
                uid: d.uid().unwrap_or(0),
                gid: d.gid().unwrap_or(0),
            });
        }

        let paths = |v: Option<&Vec<String>>| -> Vec<PathBuf> {
            v.into_iter().flatten().map(PathBuf::from).collect()
        };
        let mut sysctl: Vec<(String, String)> = linux
            .and_then(|l| l.sysctl().clone())
            .unwrap_or_default()
            .into_iter()
            .collect();
        sysctl.sort();
        for (k, _) in &sysctl {
            if k.is_empty() || k.contains("..") || k.contains('\0') || k.starts_with('/') {
                return Err(Error::InvalidSpec(format!("invalid sysctl name {k:?}")));
            }
        }
        Ok(RootfsPlan {
            rootfs,
            root_propagation,
            mounts,
            cgroup_view,
            setup_dev,
            devices,
            in_userns,
            no_pivot,
            readonly: root.readonly().unwrap_or(false),
            masked_paths: paths(linux.and_then(|l| l.masked_paths().as_ref())),
            readonly_paths: paths(linux.and_then(|l| l.readonly_paths().as_ref())),
            sysctl,
        })
    }
}

/// Lexically cleans an absolute path (drops `.`, resolves `..` without leaving `/`).
fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Joins `unsafe_path` under `root` resolving symlinks as if `root` were `/`, so a
/// symlink in the image (`/etc -> /host-etc`, `../../..`) can never point a mount
/// outside the rootfs.
pub fn secure_join(root: &Path, unsafe_path: &Path) -> Result<PathBuf> {
    let mut todo: Vec<std::ffi::OsString> = unsafe_path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut cur: Vec<std::ffi::OsString> = Vec::new();
    let mut links = 0;
    while let Some(part) = todo.pop() {
        if part == ".." {
            cur.pop();
            continue;
        }
        cur.push(part);
        let host: PathBuf = cur.iter().fold(root.to_path_buf(), |p, c| p.join(c));
        let Ok(target) = std::fs::read_link(&host) else {
            continue;
        };
        links += 1;
        if links > 255 {
            return Err(Error::InvalidSpec(format!(
                "too many symlinks resolving {} in the rootfs",
                unsafe_path.display()
            )));
        }
        cur.pop();
        if target.is_absolute() {
            cur.clear();
        }
        for c in target.components().rev() {
            match c {
                Component::Normal(n) => todo.push(n.to_os_string()),
                Component::ParentDir => todo.push("..".into()),
                _ => {}
            }
        }
    }
    Ok(cur.iter().fold(root.to_path_buf(), |p, c| p.join(c)))
}

/// Bind-remounts `target` with `flags`, keeping the flags the kernel locked on it (in a
/// user namespace a remount that would clear them fails with EPERM).
fn remount_bind(sys: &dyn Syscall, target: &Path, flags: MsFlags, recursive: bool) -> Result<()> {
    let rec = if recursive { MsFlags::MS_REC } else { MsFlags::empty() };
    let base = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | rec | flags;
    match sys.mount(None, target, None, base, None) {
        Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::EPERM) => {
            sys.mount(None, target, None, base | sys.locked_flags(target), None)
        }
        r => r,
    }
}

fn bind(sys: &dyn Syscall, src: &Path, dest: &Path, recursive: bool) -> Result<()> {
    let flags = MsFlags::MS_BIND | if recursive { MsFlags::MS_REC } else { MsFlags::empty() };
    sys.mount(Some(src), dest, None, flags, None)
}

fn make_target(sys: &dyn Syscall, src: &Path, dest: &Path) -> Result<()> {
    match sys.kind(src) {
        FileKind::Dir => sys.mkdir_all(dest, 0o755),
        FileKind::Other => {
            if sys.kind(dest) == FileKind::Missing {
                sys.touch(dest)
            } else {
                Ok(())
            }
        }
        FileKind::Missing => Err(Error::InvalidSpec(format!(
            "bind mount source {} does not exist",
            src.display()
        ))),
    }
}

fn mount_one(sys: &dyn Syscall, plan: &RootfsPlan, m: &MountSpec) -> Result<()> {
    let dest = secure_join(&plan.rootfs, &m.destination)?;
    if m.bind {
        let src = m.source.as_deref().unwrap_or(Path::new(""));
        make_target(sys, src, &dest)?;
        bind(sys, src, &dest, m.recursive)?;
        let extra = m.flags - MsFlags::MS_REMOUNT;
        if !extra.is_empty() {
            remount_bind(sys, &dest, extra, m.recursive)?;
        }
    } else if m.fstype == "cgroup" || m.fstype == "cgroup2" {
        sys.mkdir_all(&dest, 0o755)?;
        mount_cgroup(sys, plan, m, &dest)?;
    } else {
        sys.mkdir_all(&dest, 0o755)?;
        let source = m.source.clone().unwrap_or_else(|| PathBuf::from(&m.fstype));
        let data = (!m.data.is_empty()).then_some(m.data.as_str());
        let r = sys.mount(Some(&source), &dest, Some(&m.fstype), m.flags, data);
        match r {
            // A new user namespace may not mount sysfs (when the net namespace is the
            // host's) or mqueue: show the host's read-only instead, as runc does.
            Err(Error::Io { source: e, .. })
                if plan.in_userns
                    && e.raw_os_error() == Some(libc::EPERM)
                    && (m.fstype == "sysfs" || m.fstype == "mqueue") =>
            {
                let host = if m.fstype == "sysfs" { "/sys" } else { "/dev/mqueue" };
                bind(sys, Path::new(host), &dest, true)?;
                remount_bind(sys, &dest, m.flags | MsFlags::MS_RDONLY, true)?;
            }
            r => r?,
        }
    }
    for p in &m.propagation {
        sys.mount(None, &dest, None, *p, None)?;
    }
    if m.recursive_readonly {
        sys.make_recursive_readonly(&dest)?;
    }
    Ok(())
}

fn mount_cgroup(sys: &dyn Syscall, plan: &RootfsPlan, m: &MountSpec, dest: &Path) -> Result<()> {
    let flags = m.flags & (MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
    match &plan.cgroup_view {
        None => Ok(()),
        Some(CgroupView::Unified { host_dir, own_namespace }) => {
            if *own_namespace {
                sys.mount(Some(Path::new("cgroup2")), dest, Some("cgroup2"), flags, None)
            } else {
                bind(sys, host_dir, dest, false)?;
                remount_bind(sys, dest, flags, false)
            }
        }
        Some(CgroupView::V1 { hierarchies }) => {
            let base = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            sys.mount(Some(Path::new("tmpfs")), dest, Some("tmpfs"), base, Some("mode=755"))?;
            for (name, host_dir) in hierarchies {
                let sub = dest.join(name);
                sys.mkdir_all(&sub, 0o755)?;
                bind(sys, host_dir, &sub, false)?;
                remount_bind(sys, &sub, flags | base, false)?;
                // "cpu,cpuacct" is also reachable as "cpu" and "cpuacct", as on the host.
                if name.contains(',') {
                    for part in name.split(',') {
                        sys.symlink(Path::new(name), &dest.join(part))?;
                    }
                }
            }
            if flags.contains(MsFlags::MS_RDONLY) {
                sys.mount(None, dest, None, MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | base, Some("mode=755"))?;
            }
            Ok(())
        }
    }
}

fn create_devices(sys: &dyn Syscall, plan: &RootfsPlan) -> Result<()> {
    let mut nodes: Vec<DeviceNode> = Vec::new();
    if plan.setup_dev {
        for (p, major, minor) in DEFAULT_DEVICES {
            nodes.push(DeviceNode {
                path: PathBuf::from(p),
                kind: SFlag::S_IFCHR,
                major: *major,
                minor: *minor,
                mode: 0o666,
                uid: 0,
                gid: 0,
            });
        }
    }
    for d in &plan.devices {
        nodes.retain(|n| n.path != d.path);
        nodes.push(d.clone());
    }
    for d in &nodes {
        let dest = secure_join(&plan.rootfs, &d.path)?;
        if let Some(parent) = dest.parent() {
            sys.mkdir_all(parent, 0o755)?;
        }
        if plan.in_userns {
            // mknod is refused in a user namespace: bind the host's node instead.
            if sys.kind(&dest) == FileKind::Missing {
                sys.touch(&dest)?;
            }
            bind(sys, &d.path, &dest, false)?;
        } else {
            if sys.kind(&dest) != FileKind::Missing {
                continue;
            }
            sys.mknod(&dest, d.kind, d.mode, d.major, d.minor)?;
            if d.uid != 0 || d.gid != 0 {
                sys.chown(&dest, d.uid, d.gid)?;
            }
        }
    }
    Ok(())
}

fn dev_symlinks(sys: &dyn Syscall, plan: &RootfsPlan) -> Result<()> {
    let dev = secure_join(&plan.rootfs, Path::new("/dev"))?;
    for (target, link) in [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ] {
        sys.symlink(Path::new(target), &dev.join(link))?;
    }
    if Path::new("/proc/kcore").exists() {
        sys.symlink(Path::new("/proc/kcore"), &dev.join("core"))?;
    }
    sys.mkdir_all(&dev.join("shm"), 0o1777)?;
    sys.mkdir_all(&dev.join("pts"), 0o755)
}

/// Everything before pivot_root: propagation, the rootfs bind, spec mounts, /dev.
pub fn prepare(sys: &dyn Syscall, plan: &RootfsPlan) -> Result<()> {
    // An unbindable "/" could not give the rootfs its bind below: the namespace's
    // mounts become private first, and the new root unbindable once entered.
    let initial = if plan.root_propagation.contains(MsFlags::MS_UNBINDABLE) {
        MsFlags::MS_PRIVATE | (plan.root_propagation & MsFlags::MS_REC)
    } else {
        plan.root_propagation
    };
    sys.mount(None, Path::new("/"), None, initial, None)?;
    // With a shared root (bidirectional mounts), the mount holding the rootfs is shared
    // too, and so would be its bind below: pivot_root refuses that, and the container's
    // own mounts would leak to the host. It becomes private first (as runc does).
    if let Some((at, true)) = sys.mount_of(&plan.rootfs) {
        sys.mount(None, &at, None, MsFlags::MS_PRIVATE, None)?;
    }
    // pivot_root needs the new root to be a mount point, and its parent not shared.
    bind(sys, &plan.rootfs, &plan.rootfs, true)?;
    for m in &plan.mounts {
        mount_one(sys, plan, m)?;
    }
    create_devices(sys, plan)?;
    if plan.setup_dev {
        dev_symlinks(sys, plan)?;
    }
    Ok(())
}

/// Switches to the new root (pivot_root, or MS_MOVE + chroot when asked not to pivot).
pub fn enter(sys: &dyn Syscall, plan: &RootfsPlan) -> Result<()> {
    if plan.no_pivot {
        sys.move_root(&plan.rootfs)?;
    } else {
        sys.pivot_root(&plan.rootfs)?;
    }
    // The new root was bound from a private mount (pivot_root wants that): it gets the
    // propagation asked for once entered (runc applies it after pivot_root too).
    if plan.root_propagation != MsFlags::MS_PRIVATE | MsFlags::MS_REC {
        sys.mount(None, Path::new("/"), None, plan.root_propagation, None)?;
    }
    Ok(())
}

/// Inside the new root: sysctls, read-only paths, masked paths, read-only root.
pub fn finalize(sys: &dyn Syscall, plan: &RootfsPlan) -> Result<()> {
    for (k, v) in &plan.sysctl {
        let path = PathBuf::from("/proc/sys").join(k.replace('.', "/"));
        sys.write_file(&path, v).map_err(|e| Error::InvalidSpec(format!("sysctl {k}={v}: {e}")))?;
    }
    for p in &plan.readonly_paths {
        if sys.kind(p) == FileKind::Missing {
            continue;
        }
        bind(sys, p, p, true)?;
        remount_bind(sys, p, MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC, true)?;
    }
    for p in &plan.masked_paths {
        match sys.kind(p) {
            FileKind::Missing => {}
            FileKind::Dir => {
                sys.mount(Some(Path::new("tmpfs")), p, Some("tmpfs"), MsFlags::MS_RDONLY, None)?;
            }
            FileKind::Other => bind(sys, Path::new("/dev/null"), p, false)?,
        }
    }
    if plan.readonly {
        remount_bind(sys, Path::new("/"), MsFlags::MS_RDONLY, false)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::recording::Recorder;

    fn plan(rootfs: &str) -> RootfsPlan {
        RootfsPlan {
            rootfs: PathBuf::from(rootfs),
            root_propagation: MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            mounts: vec![],
            cgroup_view: None,
            setup_dev: true,
            devices: vec![],
            in_userns: false,
            no_pivot: false,
            readonly: false,
            masked_paths: vec![],
            readonly_paths: vec![],
            sysctl: vec![],
        }
    }

    fn opts(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_split_into_flags_propagation_and_data() {
        let o = parse_mount_options(&opts(&["nosuid", "strictatime", "mode=755", "size=65536k", "rslave", "ro"])).unwrap();
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME | MsFlags::MS_RDONLY);
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert_eq!(o.data, vec!["mode=755", "size=65536k"]);
        let o = parse_mount_options(&opts(&["rbind", "ro", "rw"])).unwrap();
        assert!(o.bind && o.recursive);
        assert_eq!(o.flags, MsFlags::empty());
        assert!(parse_mount_options(&opts(&["idmap"])).is_err());
    }

    #[test]
    fn secure_join_keeps_symlinks_inside_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::os::unix::fs::symlink("/real", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", root.join("escape")).unwrap();
        assert_eq!(secure_join(root, Path::new("/abs/x")).unwrap(), root.join("real/x"));
        assert_eq!(secure_join(root, Path::new("/escape/passwd")).unwrap(), root.join("etc/passwd"));
        assert_eq!(secure_join(root, Path::new("/../../a/./b")).unwrap(), root.join("a/b"));
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert!(secure_join(root, Path::new("/loop")).is_err());
    }

    #[test]
    fn prepare_mounts_in_spec_order_then_devices() {
        let sys = Recorder::with_files(&[("/host/data", FileKind::Dir)]);
        let mut p = plan("/r");
        p.mounts.push(MountSpec {
            destination: "/proc".into(),
            fstype: "proc".into(),
            source: Some("proc".into()),
            flags: MsFlags::empty(),
            bind: false,
            recursive: false,
            propagation: vec![],
            data: String::new(),
            recursive_readonly: false,
        });
        p.mounts.push(MountSpec {
            destination: "/data".into(),
            fstype: "bind".into(),
            source: Some("/host/data".into()),
            flags: MsFlags::MS_RDONLY | MsFlags::MS_NOSUID,
            bind: true,
            recursive: true,
            propagation: vec![MsFlags::MS_PRIVATE],
            data: String::new(),
            recursive_readonly: false,
        });
        prepare(&sys, &p).unwrap();
        let l = sys.lines();
        assert_eq!(l[0], "mount - / - MS_REC | MS_PRIVATE -");
        assert_eq!(l[1], "mount /r /r - MS_BIND | MS_REC -");
        assert_eq!(l[2], "mkdir /r/proc 755");
        assert_eq!(l[3], "mount proc /r/proc proc (empty) -");
        assert_eq!(l[4], "mkdir /r/data 755");
        assert_eq!(l[5], "mount /host/data /r/data - MS_BIND | MS_REC -");
        assert_eq!(l[6], "mount - /r/data - MS_RDONLY | MS_NOSUID | MS_REMOUNT | MS_BIND | MS_REC -");
        assert_eq!(l[7], "mount - /r/data - MS_PRIVATE -");
        assert!(l.contains(&"mknod /r/dev/null c 666 1:3".to_string()));
        assert!(l.contains(&"mknod /r/dev/tty c 666 5:0".to_string()));
        assert!(l.contains(&"symlink /r/dev/ptmx -> pts/ptmx".to_string()));
        assert!(l.contains(&"symlink /r/dev/fd -> /proc/self/fd".to_string()));
    }

    #[test]
    fn userns_binds_host_devices_and_falls_back_for_sysfs() {
        let sys = Recorder::default();
        sys.eperm_types.borrow_mut().push("sysfs".into());
        let mut p = plan("/r");
        p.in_userns = true;
        p.mounts.push(MountSpec {
            destination: "/sys".into(),
            fstype: "sysfs".into(),
            source: Some("sysfs".into()),
            flags: MsFlags::MS_RDONLY,
            bind: false,
            recursive: false,
            propagation: vec![],
            data: String::new(),
            recursive_readonly: false,
        });
        prepare(&sys, &p).unwrap();
        let l = sys.lines();
        assert!(l.contains(&"mount /sys /r/sys - MS_BIND | MS_REC -".to_string()), "{l:#?}");
        assert!(l.contains(&"touch /r/dev/null".to_string()));
        assert!(l.contains(&"mount /dev/null /r/dev/null - MS_BIND -".to_string()));
        assert!(!l.iter().any(|x| x.starts_with("mknod")));
    }

    #[test]
    fn finalize_masks_and_protects() {
        let sys = Recorder::with_files(&[
            ("/proc/kcore", FileKind::Other),
            ("/proc/acpi", FileKind::Dir),
            ("/proc/sys", FileKind::Dir),
        ]);
        let mut p = plan("/r");
        p.masked_paths = vec!["/proc/kcore".into(), "/proc/acpi".into(), "/proc/nothere".into()];
        p.readonly_paths = vec!["/proc/sys".into()];
        p.readonly = true;
        p.sysctl = vec![("net.ipv4.ip_forward".into(), "1".into())];
        finalize(&sys, &p).unwrap();
        let l = sys.lines();
        assert_eq!(l[0], "write /proc/sys/net/ipv4/ip_forward 1");
        assert_eq!(l[1], "mount /proc/sys /proc/sys - MS_BIND | MS_REC -");
        assert!(l[2].contains("MS_RDONLY") && l[2].contains("MS_REMOUNT"));
        assert_eq!(l[3], "mount /dev/null /proc/kcore - MS_BIND -");
        assert_eq!(l[4], "mount tmpfs /proc/acpi tmpfs MS_RDONLY -");
        assert_eq!(l[5], "mount - / - MS_RDONLY | MS_REMOUNT | MS_BIND -");
        assert_eq!(l.len(), 6);
    }

    #[test]
    fn v1_cgroup_view_binds_each_hierarchy() {
        let sys = Recorder::default();
        let mut p = plan("/r");
        p.cgroup_view = Some(CgroupView::V1 {
            hierarchies: vec![
                ("memory".into(), "/sys/fs/cgroup/memory/c1".into()),
                ("cpu,cpuacct".into(), "/sys/fs/cgroup/cpu,cpuacct/c1".into()),
            ],
        });
        p.mounts.push(MountSpec {
            destination: "/sys/fs/cgroup".into(),
            fstype: "cgroup".into(),
            source: Some("cgroup".into()),
            flags: MsFlags::MS_RDONLY | MsFlags::MS_NOSUID,
            bind: false,
            recursive: false,
            propagation: vec![],
            data: String::new(),
            recursive_readonly: false,
        });
        p.setup_dev = false;
        prepare(&sys, &p).unwrap();
        let l = sys.lines().join("\n");
        assert!(l.contains("mount tmpfs /r/sys/fs/cgroup tmpfs"));
        assert!(l.contains("mount /sys/fs/cgroup/memory/c1 /r/sys/fs/cgroup/memory - MS_BIND -"));
        assert!(l.contains("symlink /r/sys/fs/cgroup/cpuacct -> cpu,cpuacct"));
    }
}
