//! The filesystem side of layer extraction, behind a trait (the syscall seam): the
//! extractor decides *what* to create from each tar entry; a [`LayerFs`] creates it.
//! [`RealLayerFs`] works relative to an open directory fd and resolves every parent
//! with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV)`, so even a
//! bug in the extractor's own checks cannot make it write outside the layer
//! directory. Unit tests use an in-memory implementation.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{
    AtFlags, FileType, Mode, OFlags, ResolveFlags, Timestamps, XattrFlags, makedev,
};
use rustix::io::Errno;
use rustix::fs::Timespec;

use crate::error::ImageError;

/// Ownership, permissions, times and xattrs of one entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntryMeta {
    /// Permission bits including setuid/setgid/sticky (no file type bits).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_sec: i64,
    pub mtime_nsec: u32,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// Special files a layer may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Char { major: u32, minor: u32 },
    Block { major: u32, minor: u32 },
    Fifo,
}

/// Creates the entries of one layer. Every path is relative to the layer root, already
/// checked by the extractor; every creating call replaces whatever is at the path
/// (except `mkdir` over a directory, which only updates its metadata).
pub trait LayerFs {
    /// Applies the metadata of the archive's `.` entry to the layer root.
    fn set_root_meta(&mut self, meta: &EntryMeta) -> io::Result<()>;
    fn mkdir(&mut self, path: &Path, meta: &EntryMeta) -> io::Result<()>;
    fn create_file(&mut self, path: &Path, meta: &EntryMeta, data: &mut dyn Read) -> io::Result<()>;
    fn symlink(&mut self, path: &Path, target: &Path, meta: &EntryMeta) -> io::Result<()>;
    fn hardlink(&mut self, path: &Path, target: &Path) -> io::Result<()>;
    fn mknod(&mut self, path: &Path, kind: NodeKind, meta: &EntryMeta) -> io::Result<()>;
    /// Records the deletion of `path` (an overlay whiteout).
    fn whiteout(&mut self, path: &Path, meta: &EntryMeta) -> io::Result<()>;
    /// Marks directory `dir` opaque (hides lower layers' content below it).
    fn set_opaque(&mut self, dir: &Path) -> io::Result<()>;
    /// Called once after the last entry (directory mtimes are set last, because
    /// creating children changes them).
    fn finish(&mut self) -> io::Result<()>;
}

fn unsafe_io(msg: String) -> io::Error {
    ImageError::UnsafeLayer(msg).into_io()
}

fn archive_io(msg: String) -> io::Error {
    ImageError::InvalidArchive(msg).into_io()
}

const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOFOLLOW);

/// For `openat2`: RESOLVE_NO_SYMLINKS already covers the last component and reports a
/// symlink there as ELOOP (O_NOFOLLOW with O_DIRECTORY would say ENOTDIR instead).
const RESOLVE_DIR_FLAGS: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::CLOEXEC);

/// Extraction into a real directory through `*at` syscalls.
pub struct RealLayerFs {
    root: OwnedFd,
    /// The parent directory of the previous entry: tars list siblings together.
    cache: Option<(PathBuf, OwnedFd)>,
    dir_times: Vec<(PathBuf, Timestamps)>,
    buf: Vec<u8>,
}

impl RealLayerFs {
    /// Works inside the existing directory `root` (normally empty).
    pub fn new(root: &Path) -> io::Result<RealLayerFs> {
        let fd = rustix::fs::open(root, DIR_FLAGS, Mode::empty())?;
        Ok(RealLayerFs {
            root: fd,
            cache: None,
            dir_times: Vec::new(),
            buf: vec![0u8; 256 * 1024],
        })
    }

    fn map_resolve_err(&self, rel: &Path, e: Errno) -> io::Error {
        match e {
            Errno::LOOP => unsafe_io(format!(
                "{}: a parent directory is a symlink (refusing to write through it)",
                rel.display()
            )),
            Errno::XDEV => unsafe_io(format!("{}: resolves outside the layer", rel.display())),
            Errno::NOTDIR => archive_io(format!(
                "{}: a parent path component is not a directory",
                rel.display()
            )),
            // Keep the errno: the caller adds the path, and errno-less errors read as
            // bad input rather than a host failure.
            other => io::Error::from(other),
        }
    }

    /// Opens directory `rel` (relative to the root), creating missing components as
    /// 0755 root-owned directories when `create` is set.
    fn open_dir_uncached(&self, rel: &Path, create: bool) -> io::Result<OwnedFd> {
        match rustix::fs::openat2(&self.root, rel, RESOLVE_DIR_FLAGS, Mode::empty(), RESOLVE) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NOENT) if create => {}
            Err(e) => return Err(self.map_resolve_err(rel, e)),
        }
        let mut cur: Option<OwnedFd> = None;
        let mut walked = PathBuf::new();
        for comp in rel.components() {
            let name = comp.as_os_str();
            walked.push(name);
            let parent: BorrowedFd<'_> = match &cur {
                Some(fd) => fd.as_fd(),
                None => self.root.as_fd(),
            };
            let created = match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o755)) {
                Ok(()) => true,
                Err(Errno::EXIST) => false,
                Err(e) => return Err(self.map_resolve_err(&walked, e)),
            };
            let fd = rustix::fs::openat2(parent, name, RESOLVE_DIR_FLAGS, Mode::empty(), RESOLVE)
                .map_err(|e| self.map_resolve_err(&walked, e))?;
            if created {
                // The umask may have narrowed the mode; implicit directories are 0755.
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o755))?;
            }
            cur = Some(fd);
        }
        match cur {
            Some(fd) => Ok(fd),
            None => rustix::fs::openat2(&self.root, ".", RESOLVE_DIR_FLAGS, Mode::empty(), RESOLVE)
                .map_err(|e| self.map_resolve_err(rel, e)),
        }
    }

    /// The parent directory of `path` and the entry's name in it.
    fn parent<'a>(&mut self, path: &'a Path, create: bool) -> io::Result<(BorrowedFd<'_>, &'a OsStr)> {
        let name = path
            .file_name()
            .ok_or_else(|| archive_io(format!("{}: no file name", path.display())))?;
        let parent = path.parent().unwrap_or(Path::new(""));
        if parent.as_os_str().is_empty() {
            return Ok((self.root.as_fd(), name));
        }
        let hit = matches!(&self.cache, Some((p, _)) if p == parent);
        if !hit {
            let fd = self.open_dir_uncached(parent, create)?;
            self.cache = Some((parent.to_path_buf(), fd));
        }
        match &self.cache {
            Some((_, fd)) => Ok((fd.as_fd(), name)),
            None => Err(io::Error::other("parent cache vanished")),
        }
    }

    /// Removes whatever is at `name` in `dir` (recursively for directories).
    fn remove_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
        let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            remove_tree_at(dir, name)
        } else {
            rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(Into::into)
        }
    }

    /// Runs `create`; if the name is taken, removes the old entry and tries once more.
    fn create_replacing<T>(
        &mut self,
        path: &Path,
        create: impl Fn(BorrowedFd<'_>, &OsStr) -> rustix::io::Result<T>,
    ) -> io::Result<T> {
        let with_path = io::Error::from;
        let mut removed_dir = false;
        {
            let (dir, name) = self.parent(path, true)?;
            match create(dir, name) {
                Ok(v) => return Ok(v),
                Err(Errno::EXIST) => {}
                Err(e) => return Err(with_path(e)),
            }
            if let Ok(st) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                removed_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
            }
            Self::remove_at(dir, name)?;
        }
        if removed_dir {
            // The cached parent may have been inside the removed tree.
            self.cache = None;
        }
        let (dir, name) = self.parent(path, true)?;
        create(dir, name).map_err(with_path)
    }

    fn chown_at(dir: BorrowedFd<'_>, name: &OsStr, meta: &EntryMeta) -> io::Result<()> {
        rustix::fs::chownat(
            dir,
            name,
            Some(rustix::fs::Uid::from_raw(meta.uid)),
            Some(rustix::fs::Gid::from_raw(meta.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| unmapped(e, meta))
    }

    fn times_at(dir: BorrowedFd<'_>, name: &OsStr, meta: &EntryMeta) -> io::Result<()> {
        rustix::fs::utimensat(dir, name, &timestamps(meta), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(Into::into)
    }

    /// xattrs on entries that cannot be opened (symlinks, device nodes): by path through
    /// our own directory fd.
    fn xattrs_at(dir: BorrowedFd<'_>, name: &OsStr, meta: &EntryMeta) -> io::Result<()> {
        if meta.xattrs.is_empty() {
            return Ok(());
        }
        let p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name);
        for (k, v) in &meta.xattrs {
            ignore_unsupported(rustix::fs::lsetxattr(&p, k.as_str(), v, XattrFlags::empty()))?;
        }
        Ok(())
    }
}

/// Docker ignores xattrs the filesystem cannot hold (EPERM, ENOTSUP); so do we.
fn ignore_unsupported(r: rustix::io::Result<()>) -> io::Result<()> {
    match r {
        Ok(()) => Ok(()),
        Err(Errno::PERM) | Err(Errno::NOTSUP) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn timestamps(meta: &EntryMeta) -> Timestamps {
    let t = Timespec {
        tv_sec: meta.mtime_sec,
        tv_nsec: meta.mtime_nsec as _,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// chown's EINVAL means an id the (rootless daemon's) user namespace does not map: say
/// which, and what to do, as rootless dockerd refuses such layers.
fn unmapped(e: Errno, meta: &EntryMeta) -> io::Error {
    if e == Errno::INVAL && crate::layer::whiteout::in_user_namespace() {
        return io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "uid {} / gid {} of a layer entry is not mapped in the rootless daemon's user namespace: give the user a larger range in /etc/subuid and /etc/subgid (docs/rootless.md)",
                meta.uid, meta.gid
            ),
        );
    }
    e.into()
}

fn apply_fd_meta(fd: BorrowedFd<'_>, meta: &EntryMeta) -> io::Result<()> {
    rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(meta.uid)),
        Some(rustix::fs::Gid::from_raw(meta.gid)),
    )
    .map_err(|e| unmapped(e, meta))?;
    // After chown: chown clears setuid/setgid bits.
    rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode & 0o7777))?;
    for (k, v) in &meta.xattrs {
        ignore_unsupported(rustix::fs::fsetxattr(fd, k.as_str(), v, XattrFlags::empty()))?;
    }
    Ok(())
}

/// Removes directory `name` in `dir` and everything below it without following
/// symlinks.
pub(crate) fn remove_tree_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let fd = rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty())?;
    let mut children = Vec::new();
    {
        let mut d = rustix::fs::Dir::read_from(&fd)?;
        while let Some(entry) = d.read() {
            let entry = entry?;
            let n = entry.file_name().to_bytes();
            if n == b"." || n == b".." {
                continue;
            }
            children.push((
                std::ffi::OsString::from(std::os::unix::ffi::OsStrExt::from_bytes(n)
                    as &OsStr),
                entry.file_type(),
            ));
        }
    }
    for (child, ty) in children {
        let is_dir = match ty {
            FileType::Directory => true,
            FileType::Unknown => rustix::fs::statat(&fd, &child, AtFlags::SYMLINK_NOFOLLOW)
                .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)?,
            _ => false,
        };
        if is_dir {
            remove_tree_at(fd.as_fd(), &child)?;
        } else {
            rustix::fs::unlinkat(&fd, &child, AtFlags::empty())?;
        }
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR).map_err(Into::into)
}

impl LayerFs for RealLayerFs {
    fn set_root_meta(&mut self, meta: &EntryMeta) -> io::Result<()> {
        apply_fd_meta(self.root.as_fd(), meta)?;
        self.dir_times.push((PathBuf::new(), timestamps(meta)));
        Ok(())
    }

    fn mkdir(&mut self, path: &Path, meta: &EntryMeta) -> io::Result<()> {
        let fd = {
            let (dir, name) = self.parent(path, true)?;
            match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty())
        };
        let fd = match fd {
            Ok(fd) => fd,
            // Something that is not a directory holds the name: replace it.
            Err(Errno::NOTDIR) | Err(Errno::LOOP) => {
                self.create_replacing(path, |d, n| rustix::fs::mkdirat(d, n, Mode::from_raw_mode(0o700)))?;
                let (dir, name) = self.parent(path, true)?;
                rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty())?
            }
            Err(e) => return Err(e.into()),
        };
        apply_fd_meta(fd.as_fd(), meta)?;
        self.dir_times.push((path.to_path_buf(), timestamps(meta)));
        Ok(())
    }

    fn create_file(&mut self, path: &Path, meta: &EntryMeta, data: &mut dyn Read) -> io::Result<()> {
        let flags = OFlags::WRONLY
            .union(OFlags::CREATE)
            .union(OFlags::EXCL)
            .union(OFlags::NOFOLLOW)
            .union(OFlags::CLOEXEC);
        let fd = self.create_replacing(path, |d, n| {
            rustix::fs::openat(d, n, flags, Mode::from_raw_mode(0o600))
        })?;
        let mut file = File::from(fd);
        let mut buf = std::mem::take(&mut self.buf);
        let res = (|| -> io::Result<()> {
            loop {
                let n = match data.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                file.write_all(&buf[..n])?;
            }
            Ok(())
        })();
        self.buf = buf;
        res?;
        apply_fd_meta(file.as_fd(), meta)?;
        rustix::fs::futimens(&file, &timestamps(meta))?;
        Ok(())
    }

    fn symlink(&mut self, path: &Path, target: &Path, meta: &EntryMeta) -> io::Result<()> {
        self.create_replacing(path, |d, n| rustix::fs::symlinkat(target, d, n))?;
        let (dir, name) = self.parent(path, true)?;
        Self::chown_at(dir, name, meta)?;
        Self::xattrs_at(dir, name, meta)?;
        Self::times_at(dir, name, meta)
    }

    fn hardlink(&mut self, path: &Path, target: &Path) -> io::Result<()> {
        if path == target {
            return Ok(());
        }
        let tparent = target.parent().unwrap_or(Path::new(""));
        let tname = target
            .file_name()
            .ok_or_else(|| archive_io(format!("hardlink target {} has no name", target.display())))?
            .to_os_string();
        let tdir = if tparent.as_os_str().is_empty() {
            rustix::fs::openat2(&self.root, ".", RESOLVE_DIR_FLAGS, Mode::empty(), RESOLVE)?
        } else {
            self.open_dir_uncached(tparent, false).map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    archive_io(format!(
                        "hardlink {} -> {}: target not found in this layer",
                        path.display(),
                        target.display()
                    ))
                } else {
                    e
                }
            })?
        };
        self.create_replacing(path, |d, n| {
            rustix::fs::linkat(&tdir, &tname, d, n, AtFlags::empty())
        })
        .map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                archive_io(format!(
                    "hardlink {} -> {}: target not found in this layer",
                    path.display(),
                    target.display()
                ))
            } else {
                e
            }
        })
    }

    fn mknod(&mut self, path: &Path, kind: NodeKind, meta: &EntryMeta) -> io::Result<()> {
        let (ft, dev) = match kind {
            NodeKind::Char { major, minor } => (FileType::CharacterDevice, makedev(major, minor)),
            NodeKind::Block { major, minor } => (FileType::BlockDevice, makedev(major, minor)),
            NodeKind::Fifo => (FileType::Fifo, 0),
        };
        self.create_replacing(path, |d, n| {
            rustix::fs::mknodat(d, n, ft, Mode::from_raw_mode(0o600), dev)
        })?;
        let (dir, name) = self.parent(path, true)?;
        Self::chown_at(dir, name, meta)?;
        // fchmodat follows symlinks, but this name is the node we just made.
        rustix::fs::chmodat(dir, name, Mode::from_raw_mode(meta.mode & 0o7777), AtFlags::empty())?;
        Self::xattrs_at(dir, name, meta)?;
        Self::times_at(dir, name, meta)
    }

    fn whiteout(&mut self, path: &Path, meta: &EntryMeta) -> io::Result<()> {
        self.create_replacing(path, |d, n| {
            rustix::fs::mknodat(d, n, FileType::CharacterDevice, Mode::empty(), 0)
        })?;
        let (dir, name) = self.parent(path, true)?;
        Self::chown_at(dir, name, meta)
    }

    fn set_opaque(&mut self, dir: &Path) -> io::Result<()> {
        let fd = if dir.as_os_str().is_empty() {
            rustix::fs::openat2(&self.root, ".", RESOLVE_DIR_FLAGS, Mode::empty(), RESOLVE)?
        } else {
            self.open_dir_uncached(dir, true)?
        };
        rustix::fs::fsetxattr(&fd, crate::layer::whiteout::opaque_xattr(), b"y", XattrFlags::empty()).map_err(Into::into)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.cache = None;
        let times = std::mem::take(&mut self.dir_times);
        for (path, ts) in times.iter().rev() {
            let fd = if path.as_os_str().is_empty() {
                rustix::fs::openat2(&self.root, ".", RESOLVE_DIR_FLAGS, Mode::empty(), RESOLVE)
            } else {
                rustix::fs::openat2(&self.root, path, RESOLVE_DIR_FLAGS, Mode::empty(), RESOLVE)
            };
            match fd {
                Ok(fd) => rustix::fs::futimens(&fd, ts)?,
                // Replaced or removed by a later entry.
                Err(Errno::NOENT) | Err(Errno::NOTDIR) | Err(Errno::LOOP) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
