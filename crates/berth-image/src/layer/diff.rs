//! The other direction: from directories back to tars and change lists.
//!
//! - [`write_tree_tar`] streams a directory as a tar: a container's upper directory
//!   becomes a layer (overlay whiteouts turned back into `.wh.` files, opaque
//!   directories into `.wh..wh..opq`), a mounted rootfs becomes `docker export`'s tar.
//! - [`changes`] lists what an upper directory adds, changes and deletes relative to
//!   the layers below, the way `docker diff` does (moby's `OverlayChanges`).

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::layer::whiteout::{self, OPAQUE_MARKER};

/// What `docker diff` prints in front of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// `C`
    Modify,
    /// `A`
    Add,
    /// `D`
    Delete,
}

impl ChangeKind {
    /// Docker's letter for the kind.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Modify => 'C',
            ChangeKind::Add => 'A',
            ChangeKind::Delete => 'D',
        }
    }

    /// The number Docker's API uses (`Kind` in `GET /containers/{id}/changes`).
    pub fn api_kind(self) -> u8 {
        match self {
            ChangeKind::Modify => 0,
            ChangeKind::Add => 1,
            ChangeKind::Delete => 2,
        }
    }
}

/// One line of `docker diff`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Change {
    /// Absolute path inside the container, e.g. `/etc/hosts`.
    pub path: String,
    pub kind: ChangeKind,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.letter(), self.path)
    }
}

/// How [`write_tree_tar`] treats overlayfs markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeKind {
    /// An overlay upper directory: whiteouts and opaque dirs become `.wh.` entries.
    OverlayUpper,
    /// A plain tree (a mounted rootfs): everything is written as it is.
    Plain,
}

/// Sorted directory entries (byte order, as Go's filepath.Walk).
fn sorted_entries(dir: &Path) -> io::Result<Vec<OsString>> {
    let mut names: Vec<OsString> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

fn lgetxattr(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(rustix::io::Errno::NODATA) | Err(rustix::io::Errno::NOTSUP) => return Ok(None),
            Err(rustix::io::Errno::RANGE) if buf.len() < (1 << 20) => {
                let l = buf.len() * 4;
                buf.resize(l, 0);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn llistxattr(path: &Path) -> io::Result<Vec<String>> {
    let mut buf = vec![0u8; 1024];
    let n = loop {
        match rustix::fs::llistxattr(path, &mut buf[..]) {
            Ok(n) => break n,
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(rustix::io::Errno::RANGE) if buf.len() < (1 << 20) => {
                let l = buf.len() * 4;
                buf.resize(l, 0);
            }
            Err(e) => return Err(e.into()),
        }
    };
    Ok(buf[..n]
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .filter_map(|s| std::str::from_utf8(s).ok().map(str::to_owned))
        .collect())
}

fn is_opaque(path: &Path) -> io::Result<bool> {
    Ok(lgetxattr(path, whiteout::opaque_xattr())?.as_deref() == Some(b"y"))
}

/// xattrs worth carrying in a tar: everything except overlayfs' own and host-specific
/// SELinux labels.
fn tar_xattrs(path: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for name in llistxattr(path)? {
        if whiteout::is_overlay_xattr(&name) || name == "security.selinux" {
            continue;
        }
        if let Some(v) = lgetxattr(path, &name)? {
            out.push((name, v));
        }
    }
    Ok(out)
}

/// Host ids of a user namespace's files back to the ids inside (what a layer or an
/// export records): `(inside, host, count)` ranges, as in /proc/<pid>/uid_map. Ids
/// outside every range are written as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdUnmap {
    pub uids: Vec<(u32, u32, u32)>,
    pub gids: Vec<(u32, u32, u32)>,
}

impl IdUnmap {
    fn back(ranges: &[(u32, u32, u32)], id: u32) -> u32 {
        ranges
            .iter()
            .find(|(_, host, n)| id >= *host && id - *host < *n)
            .map_or(id, |(inside, host, _)| inside + (id - host))
    }
}

fn base_header(m: &Metadata, unmap: Option<&IdUnmap>) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(m.mode() & 0o7777);
    let (uid, gid) = match unmap {
        Some(u) => (IdUnmap::back(&u.uids, m.uid()), IdUnmap::back(&u.gids, m.gid())),
        None => (m.uid(), m.gid()),
    };
    h.set_uid(uid as u64);
    h.set_gid(gid as u64);
    h.set_mtime(m.mtime().max(0) as u64);
    h.set_size(0);
    h
}

/// Streams the tree under `root` as a tar into `out`, in sorted order with parents
/// before children, hardlinks as link entries, xattrs as PAX records.
pub fn write_tree_tar<W: Write>(root: &Path, out: W, kind: TreeKind) -> io::Result<W> {
    write_tree_tar_unmapped(root, out, kind, None)
}

/// [`write_tree_tar`] of a tree a user namespace wrote: owners as it sees them.
pub fn write_tree_tar_unmapped<W: Write>(root: &Path, out: W, kind: TreeKind, unmap: Option<&IdUnmap>) -> io::Result<W> {
    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Complete);
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    // Iterative pre-order walk: (relative dir path) stack, children pushed reversed.
    let mut stack: Vec<PathBuf> = Vec::new();
    for name in sorted_entries(root)?.into_iter().rev() {
        stack.push(PathBuf::from(name));
    }
    while let Some(rel) = stack.pop() {
        let full = root.join(&rel);
        let m = fs::symlink_metadata(&full)?;
        let ft = m.file_type();
        let name = rel.file_name().unwrap_or_default();
        let parent = rel.parent().unwrap_or(Path::new(""));

        if kind == TreeKind::OverlayUpper
            && ft.is_char_device()
            && whiteout::is_overlay_whiteout(m.mode(), m.rdev())
        {
            let mut h = base_header(&m, unmap);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(m.mode() & 0o777);
            b.append_data(&mut h, parent.join(whiteout::whiteout_name(name)), io::empty())?;
            continue;
        }

        if ft.is_socket() {
            // Docker skips sockets too: they mean nothing outside a running system.
            continue;
        }

        let xattrs = tar_xattrs(&full)?;
        if !xattrs.is_empty() {
            let pax: Vec<(String, &[u8])> = xattrs
                .iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice()))
                .collect();
            b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), *v)))?;
        }

        let mut h = base_header(&m, unmap);
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            let mut dname = rel.as_os_str().to_os_string();
            dname.push("/");
            b.append_data(&mut h, PathBuf::from(dname), io::empty())?;
            if kind == TreeKind::OverlayUpper && is_opaque(&full)? {
                let mut wo = base_header(&m, unmap);
                wo.set_entry_type(tar::EntryType::Regular);
                wo.set_mode(m.mode() & 0o777);
                b.append_data(&mut wo, rel.join(OPAQUE_MARKER), io::empty())?;
            }
            for child in sorted_entries(&full)?.into_iter().rev() {
                stack.push(rel.join(child));
            }
        } else if ft.is_symlink() {
            h.set_entry_type(tar::EntryType::Symlink);
            let target = fs::read_link(&full)?;
            b.append_link(&mut h, &rel, &target)?;
        } else if ft.is_file() {
            if m.nlink() > 1 {
                let key = (m.dev(), m.ino());
                if let Some(first) = links.get(&key) {
                    h.set_entry_type(tar::EntryType::Link);
                    b.append_link(&mut h, &rel, first)?;
                    continue;
                }
                links.insert(key, rel.clone());
            }
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(m.len());
            let f = File::open(&full)?;
            // A file that changes size while being read would corrupt the stream;
            // take exactly the announced length.
            b.append_data(&mut h, &rel, ExactReader::new(f, m.len()))?;
        } else if ft.is_char_device() || ft.is_block_device() {
            h.set_entry_type(if ft.is_char_device() {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            });
            let rdev = m.rdev();
            h.set_device_major(rustix::fs::major(rdev))?;
            h.set_device_minor(rustix::fs::minor(rdev))?;
            b.append_data(&mut h, &rel, io::empty())?;
        } else if ft.is_fifo() {
            h.set_entry_type(tar::EntryType::Fifo);
            b.append_data(&mut h, &rel, io::empty())?;
        }
    }
    b.into_inner()
}

/// Reads exactly `len` bytes: pads with zeros if the file shrank, stops if it grew.
struct ExactReader<R> {
    inner: R,
    left: u64,
}

impl<R: io::Read> ExactReader<R> {
    fn new(inner: R, len: u64) -> Self {
        ExactReader { inner, left: len }
    }
}

impl<R: io::Read> io::Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left as usize);
        let n = self.inner.read(&mut buf[..want])?;
        let n = if n == 0 {
            buf[..want].fill(0);
            want
        } else {
            n
        };
        self.left -= n as u64;
        Ok(n)
    }
}

/// Changes of the overlay upper directory `upper` relative to `lowers` (topmost
/// first), in walk order, as moby's `OverlayChanges` reports them.
pub fn changes(upper: &Path, lowers: &[PathBuf]) -> io::Result<Vec<Change>> {
    let mut out = Vec::new();
    let mut changed_dirs: HashSet<PathBuf> = HashSet::new();
    let mut stack: Vec<PathBuf> = Vec::new();
    for name in sorted_entries(upper)?.into_iter().rev() {
        stack.push(PathBuf::from(name));
    }
    while let Some(rel) = stack.pop() {
        let full = upper.join(&rel);
        let m = fs::symlink_metadata(&full)?;
        let abs = PathBuf::from("/").join(&rel);
        let deleted = (m.file_type().is_char_device()
            && whiteout::is_overlay_whiteout(m.mode(), m.rdev()))
            || (m.is_dir() && is_opaque(&full)?);
        let kind = if deleted {
            Some(ChangeKind::Delete)
        } else {
            let mut k = Some(ChangeKind::Add);
            for lower in lowers {
                let lm = match fs::symlink_metadata(lower.join(&rel)) {
                    Ok(lm) => lm,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => continue,
                    Err(e) => return Err(e),
                };
                // A directory only copied up because something below it changed is
                // not itself a change.
                if lm.is_dir()
                    && m.is_dir()
                    && lm.len() == m.len()
                    && lm.mode() == m.mode()
                    && same_time(&lm, &m)
                {
                    k = None;
                } else {
                    k = Some(ChangeKind::Modify);
                }
                break;
            }
            k
        };
        if m.is_dir() {
            for child in sorted_entries(&full)?.into_iter().rev() {
                stack.push(rel.join(child));
            }
        }
        // An unchanged directory is not recorded, and not marked as changed either:
        // a later addition or deletion below it then reports it as modified.
        let Some(kind) = kind else { continue };
        if m.is_dir() {
            changed_dirs.insert(abs.clone());
        }
        if matches!(kind, ChangeKind::Add | ChangeKind::Delete)
            && let Some(parent) = abs.parent()
                && parent != Path::new("/") && !changed_dirs.contains(parent) {
                    out.push(Change {
                        path: path_string(parent),
                        kind: ChangeKind::Modify,
                    });
                    changed_dirs.insert(parent.to_path_buf());
                }
        out.push(Change {
            path: path_string(&abs),
            kind,
        });
    }
    Ok(out)
}

fn same_time(a: &Metadata, b: &Metadata) -> bool {
    a.mtime() == b.mtime()
        && (a.mtime_nsec() == b.mtime_nsec() || a.mtime_nsec() == 0 || b.mtime_nsec() == 0)
}

fn path_string(p: &Path) -> String {
    String::from_utf8_lossy(p.as_os_str().as_bytes()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn same_times(from: &Path, to: &Path) {
        let m = fs::metadata(from).unwrap();
        let t = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec { tv_sec: m.atime(), tv_nsec: m.atime_nsec() as _ },
            last_modification: rustix::fs::Timespec { tv_sec: m.mtime(), tv_nsec: m.mtime_nsec() as _ },
        };
        rustix::fs::utimensat(rustix::fs::CWD, to, &t, rustix::fs::AtFlags::empty()).unwrap();
    }

    /// moby's rules: an unchanged copied-up directory is not a change, but becomes one
    /// ("C") when something below it is added or deleted; a changed directory is
    /// reported once.
    #[test]
    fn parent_directories_follow_mobys_rules() {
        let t = tempfile::tempdir().unwrap();
        let lower = t.path().join("lower");
        let upper = t.path().join("upper");
        for d in [&lower, &upper] {
            fs::create_dir_all(d.join("a")).unwrap();
            fs::create_dir_all(d.join("b")).unwrap();
            fs::create_dir_all(d.join("c/deep")).unwrap();
        }
        fs::write(lower.join("c/deep/f"), b"1").unwrap();
        fs::write(upper.join("a/new"), b"x").unwrap();
        fs::write(upper.join("b/x"), b"x").unwrap();
        fs::write(upper.join("c/deep/f"), b"2").unwrap();
        fs::set_permissions(upper.join("b"), fs::Permissions::from_mode(0o700)).unwrap();
        for d in ["a", "c", "c/deep"] {
            same_times(&lower.join(d), &upper.join(d));
        }
        let got: Vec<String> = changes(&upper, &[lower]).unwrap().iter().map(|c| c.to_string()).collect();
        assert_eq!(got, vec!["C /a", "A /a/new", "C /b", "A /b/x", "C /c/deep/f"]);
    }

    #[test]
    fn tree_tar_is_sorted_with_hardlinks_once() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        fs::create_dir(root.join("d")).unwrap();
        fs::write(root.join("d/b"), b"bb").unwrap();
        fs::hard_link(root.join("d/b"), root.join("d/c")).unwrap();
        std::os::unix::fs::symlink("b", root.join("d/a")).unwrap();
        fs::write(root.join("z"), b"").unwrap();
        let data = write_tree_tar(root, Vec::new(), TreeKind::Plain).unwrap();
        let mut ar = tar::Archive::new(&data[..]);
        let got: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                format!(
                    "{:?} {} {}",
                    e.header().entry_type(),
                    e.path().unwrap().display(),
                    e.link_name().unwrap().map(|l| l.display().to_string()).unwrap_or_default()
                )
            })
            .collect();
        assert_eq!(
            got,
            vec!["Directory d/ ", "Symlink d/a b", "Regular d/b ", "Link d/c d/b", "Regular z "]
        );
    }
}
