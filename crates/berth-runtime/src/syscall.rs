//! The syscall seam (youki's pattern): rootfs and identity setup talk to the kernel only
//! through [`Syscall`], so which mounts happen, in which order and with which flags can be
//! unit-tested without root by a recording double. The real implementation is a thin
//! layer over nix.

use std::ffi::CString;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag};

use crate::error::{Context, Result};

/// What kind of thing a path is (for choosing a bind mount target, a mask, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Missing,
    Dir,
    Other,
}

/// The kernel operations the container's rootfs and hostname setup need.
pub trait Syscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()>;
    fn umount2(&self, target: &Path, flags: MntFlags) -> Result<()>;
    /// runc's pivot_root dance: make `new_root` the root, detach the old one (no put_old dir).
    fn pivot_root(&self, new_root: &Path) -> Result<()>;
    /// For `--no-pivot`: move the rootfs over / and chroot into it.
    fn move_root(&self, new_root: &Path) -> Result<()>;
    fn mkdir_all(&self, path: &Path, mode: u32) -> Result<()>;
    /// Creates an empty file (and its parents) to bind a file onto; keeps an existing one.
    fn touch(&self, path: &Path) -> Result<()>;
    fn mknod(&self, path: &Path, kind: SFlag, perm: u32, major: u64, minor: u64) -> Result<()>;
    fn chown(&self, path: &Path, uid: u32, gid: u32) -> Result<()>;
    fn symlink(&self, target: &Path, link: &Path) -> Result<()>;
    fn kind(&self, path: &Path) -> FileKind;
    /// The flags the kernel locks on the mount at `path` (ro, nosuid, nodev, noexec, atime):
    /// a bind remount inside a user namespace must keep them.
    fn locked_flags(&self, path: &Path) -> MsFlags;
    /// The mount point of the mount that holds `path`, and whether it is shared.
    fn mount_of(&self, path: &Path) -> Option<(PathBuf, bool)>;
    /// Makes the mount at `path` and every mount below it read-only (mount_setattr
    /// with AT_RECURSIVE; plain remounts would leave the submounts writable).
    fn make_recursive_readonly(&self, path: &Path) -> Result<()>;
    fn write_file(&self, path: &Path, data: &str) -> Result<()>;
    fn sethostname(&self, name: &str) -> Result<()>;
    fn setdomainname(&self, name: &str) -> Result<()>;
}

/// The real kernel.
pub struct LinuxSyscall;

impl Syscall for LinuxSyscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()> {
        nix::mount::mount(source, target, fstype, flags, data).ctx(|| {
            format!(
                "mount {} on {} (type {}, flags {:?}, data {:?})",
                source.map(|s| s.display().to_string()).unwrap_or_default(),
                target.display(),
                fstype.unwrap_or("none"),
                flags,
                data.unwrap_or("")
            )
        })
    }

    fn umount2(&self, target: &Path, flags: MntFlags) -> Result<()> {
        nix::mount::umount2(target, flags).ctx(|| format!("umount {}", target.display()))
    }

    fn pivot_root(&self, new_root: &Path) -> Result<()> {
        use nix::fcntl::{OFlag, open};
        let old = open("/", OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
            .ctx(|| "open old root".into())?;
        nix::unistd::chdir(new_root).ctx(|| format!("chdir {}", new_root.display()))?;
        // pivot_root(".", ".") stacks the old root under the new one at "/", so no
        // put_old directory is needed inside the container's rootfs.
        nix::unistd::pivot_root(".", ".").ctx(|| format!("pivot_root {}", new_root.display()))?;
        nix::unistd::fchdir(&old).ctx(|| "fchdir old root".into())?;
        // Slave first so the detach below cannot propagate to the host's mounts.
        nix::mount::mount(None::<&str>, ".", None::<&str>, MsFlags::MS_SLAVE | MsFlags::MS_REC, None::<&str>)
            .ctx(|| "make old root rslave".into())?;
        nix::mount::umount2(".", MntFlags::MNT_DETACH).ctx(|| "detach old root".into())?;
        nix::unistd::chdir("/").ctx(|| "chdir /".into())
    }

    fn move_root(&self, new_root: &Path) -> Result<()> {
        nix::unistd::chdir(new_root).ctx(|| format!("chdir {}", new_root.display()))?;
        nix::mount::mount(Some(new_root), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
            .ctx(|| "move rootfs onto /".into())?;
        nix::unistd::chroot(".").ctx(|| "chroot".into())?;
        nix::unistd::chdir("/").ctx(|| "chdir /".into())
    }

    fn mkdir_all(&self, path: &Path, mode: u32) -> Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(path)
            .ctx(|| format!("mkdir {}", path.display()))
    }

    fn touch(&self, path: &Path) -> Result<()> {
        if let Some(parent) = path.parent() {
            self.mkdir_all(parent, 0o755)?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map(drop)
            .ctx(|| format!("create {}", path.display()))
    }

    fn mknod(&self, path: &Path, kind: SFlag, perm: u32, major: u64, minor: u64) -> Result<()> {
        nix::sys::stat::mknod(
            path,
            kind,
            Mode::from_bits_truncate(perm),
            nix::sys::stat::makedev(major, minor),
        )
        .ctx(|| format!("mknod {}", path.display()))
    }

    fn chown(&self, path: &Path, uid: u32, gid: u32) -> Result<()> {
        nix::unistd::chown(path, Some(uid.into()), Some(gid.into()))
            .ctx(|| format!("chown {}", path.display()))
    }

    fn symlink(&self, target: &Path, link: &Path) -> Result<()> {
        match std::os::unix::fs::symlink(target, link) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            r => r.ctx(|| format!("symlink {} -> {}", link.display(), target.display())),
        }
    }

    fn kind(&self, path: &Path) -> FileKind {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => FileKind::Dir,
            Ok(_) => FileKind::Other,
            Err(_) => FileKind::Missing,
        }
    }

    fn locked_flags(&self, path: &Path) -> MsFlags {
        use nix::sys::statvfs::{FsFlags, statvfs};
        let Ok(st) = statvfs(path) else {
            return MsFlags::empty();
        };
        let f = st.flags();
        let mut out = MsFlags::empty();
        for (fs, ms) in [
            (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if f.contains(fs) {
                out |= ms;
            }
        }
        out
    }

    fn mount_of(&self, path: &Path) -> Option<(PathBuf, bool)> {
        let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        mount_of_in(&info, path)
    }

    fn make_recursive_readonly(&self, path: &Path) -> Result<()> {
        // struct mount_attr of <linux/mount.h> (MOUNT_ATTR_SIZE_VER0).
        #[repr(C)]
        struct MountAttr {
            attr_set: u64,
            attr_clr: u64,
            propagation: u64,
            userns_fd: u64,
        }
        const MOUNT_ATTR_RDONLY: u64 = 0x1;
        const AT_RECURSIVE: libc::c_uint = 0x8000;
        let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| crate::Error::InvalidSpec("mount path has a NUL byte".into()))?;
        let attr = MountAttr { attr_set: MOUNT_ATTR_RDONLY, attr_clr: 0, propagation: 0, userns_fd: 0 };
        // SAFETY: mount_setattr reads a NUL-terminated path and `size` bytes of attr,
        // both valid for the call.
        let rc = unsafe {
            libc::syscall(libc::SYS_mount_setattr, libc::AT_FDCWD, c.as_ptr(), AT_RECURSIVE, &attr as *const MountAttr, std::mem::size_of::<MountAttr>())
        };
        if rc != 0 {
            return Err(crate::Error::io(format!("make {} recursively read-only", path.display()), std::io::Error::last_os_error()));
        }
        Ok(())
    }

    fn write_file(&self, path: &Path, data: &str) -> Result<()> {
        std::fs::write(path, data).ctx(|| format!("write {}", path.display()))
    }

    fn sethostname(&self, name: &str) -> Result<()> {
        nix::unistd::sethostname(name).ctx(|| format!("sethostname {name}"))
    }

    fn setdomainname(&self, name: &str) -> Result<()> {
        let c = CString::new(name).map_err(|_| crate::Error::InvalidSpec("domainname has a NUL byte".into()))?;
        // SAFETY: c is a valid NUL-terminated buffer of the given length for the call.
        let rc = unsafe { libc::setdomainname(c.as_ptr(), name.len()) };
        if rc != 0 {
            return Err(crate::Error::io(format!("setdomainname {name}"), std::io::Error::last_os_error()));
        }
        Ok(())
    }
}

/// The mount holding `path` in a mountinfo text: the longest mount point that is `path`
/// or one of its ancestors, and whether it is shared (`shared:N` among its fields).
pub fn mount_of_in(info: &str, path: &Path) -> Option<(PathBuf, bool)> {
    let mut best: Option<(PathBuf, bool)> = None;
    for line in info.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(point) = f.get(4) else { continue };
        let point = PathBuf::from(point.replace("\\040", " "));
        if !path.starts_with(&point) {
            continue;
        }
        // Optional fields run from 6 up to the "-" separator.
        let shared = f.iter().skip(6).take_while(|x| **x != "-").any(|x| x.starts_with("shared:"));
        if best.as_ref().is_none_or(|(b, _)| point.as_os_str().len() >= b.as_os_str().len()) {
            best = Some((point, shared));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mount_holding_a_path_and_its_sharing() {
        let info = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
                    40 22 0:40 / /tmp/data rw - tmpfs tmpfs rw\n\
                    41 40 0:41 / /tmp/data/c/rootfs rw shared:7 master:2 - overlay overlay rw\n";
        assert_eq!(mount_of_in(info, Path::new("/tmp/data/c/rootfs")), Some((PathBuf::from("/tmp/data/c/rootfs"), true)));
        assert_eq!(mount_of_in(info, Path::new("/tmp/data/c")), Some((PathBuf::from("/tmp/data"), false)));
        assert_eq!(mount_of_in(info, Path::new("/var")), Some((PathBuf::from("/"), true)));
    }
}

#[cfg(test)]
pub(crate) mod recording {
    //! A Syscall that records every call as a line of text and touches nothing.
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::path::PathBuf;

    #[derive(Default)]
    pub struct Recorder {
        pub calls: RefCell<Vec<String>>,
        /// Paths that exist, with their kind; everything else is Missing.
        pub files: RefCell<HashMap<PathBuf, FileKind>>,
        /// Mount targets whose first plain mount fails with EPERM (to test fallbacks).
        pub eperm_types: RefCell<Vec<String>>,
    }

    impl Recorder {
        pub fn with_files(files: &[(&str, FileKind)]) -> Self {
            let r = Recorder::default();
            for (p, k) in files {
                r.files.borrow_mut().insert(PathBuf::from(p), *k);
            }
            r
        }
        fn log(&self, s: String) {
            self.calls.borrow_mut().push(s);
        }
        pub fn lines(&self) -> Vec<String> {
            self.calls.borrow().clone()
        }
    }

    impl Syscall for Recorder {
        fn mount(&self, source: Option<&Path>, target: &Path, fstype: Option<&str>, flags: MsFlags, data: Option<&str>) -> Result<()> {
            if let Some(t) = fstype
                && self.eperm_types.borrow().iter().any(|x| x == t) {
                    return Err(crate::Error::errno("mount", nix::errno::Errno::EPERM));
                }
            let names: Vec<&str> = flags.iter_names().map(|(n, _)| n).collect();
            let flags = if names.is_empty() { "(empty)".to_string() } else { names.join(" | ") };
            self.log(format!(
                "mount {} {} {} {} {}",
                source.map(|s| s.display().to_string()).unwrap_or("-".into()),
                target.display(),
                fstype.unwrap_or("-"),
                flags,
                data.unwrap_or("-")
            ));
            Ok(())
        }
        fn umount2(&self, target: &Path, _flags: MntFlags) -> Result<()> {
            self.log(format!("umount {}", target.display()));
            Ok(())
        }
        fn pivot_root(&self, new_root: &Path) -> Result<()> {
            self.log(format!("pivot_root {}", new_root.display()));
            Ok(())
        }
        fn move_root(&self, new_root: &Path) -> Result<()> {
            self.log(format!("move_root {}", new_root.display()));
            Ok(())
        }
        fn mkdir_all(&self, path: &Path, mode: u32) -> Result<()> {
            self.log(format!("mkdir {} {:o}", path.display(), mode));
            self.files.borrow_mut().insert(path.to_path_buf(), FileKind::Dir);
            Ok(())
        }
        fn touch(&self, path: &Path) -> Result<()> {
            self.log(format!("touch {}", path.display()));
            self.files.borrow_mut().insert(path.to_path_buf(), FileKind::Other);
            Ok(())
        }
        fn mknod(&self, path: &Path, kind: SFlag, perm: u32, major: u64, minor: u64) -> Result<()> {
            let k = if kind == SFlag::S_IFCHR { "c" } else if kind == SFlag::S_IFBLK { "b" } else { "p" };
            self.log(format!("mknod {} {k} {perm:o} {major}:{minor}", path.display()));
            Ok(())
        }
        fn chown(&self, path: &Path, uid: u32, gid: u32) -> Result<()> {
            self.log(format!("chown {} {uid}:{gid}", path.display()));
            Ok(())
        }
        fn symlink(&self, target: &Path, link: &Path) -> Result<()> {
            self.log(format!("symlink {} -> {}", link.display(), target.display()));
            Ok(())
        }
        fn kind(&self, path: &Path) -> FileKind {
            self.files.borrow().get(path).copied().unwrap_or(FileKind::Missing)
        }
        fn locked_flags(&self, _path: &Path) -> MsFlags {
            MsFlags::empty()
        }
        fn mount_of(&self, _path: &Path) -> Option<(PathBuf, bool)> {
            None
        }
        fn make_recursive_readonly(&self, path: &Path) -> Result<()> {
            self.log(format!("rro {}", path.display()));
            Ok(())
        }
        fn write_file(&self, path: &Path, data: &str) -> Result<()> {
            self.log(format!("write {} {data}", path.display()));
            Ok(())
        }
        fn sethostname(&self, name: &str) -> Result<()> {
            self.log(format!("sethostname {name}"));
            Ok(())
        }
        fn setdomainname(&self, name: &str) -> Result<()> {
            self.log(format!("setdomainname {name}"));
            Ok(())
        }
    }
}
