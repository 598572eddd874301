//! `docker cp`: tar archives of paths in a container's filesystem (GET/HEAD) and
//! extraction of a tar into it (PUT). Paths are resolved as the container sees them:
//! inside its root (symlinks cannot lead out, the kernel resolves with
//! RESOLVE_IN_ROOT), and through its volume and bind mounts.

use berth_types::paths::clean_abs;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use berth_types::container::PathStat;
use rustix::fs::{AtFlags, Mode, OFlags};

use crate::container::{ContainerRecord, Status};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::fsutil::open_in_root;

/// Go's os.FileMode bits the docker CLI reads from the path stat.
const GO_MODE_DIR: u32 = 1 << 31;
const GO_MODE_SYMLINK: u32 = 1 << 27;

/// Where a container path lives on the host: a root to resolve in and the path below it.
fn locate(rec: &ContainerRecord, rootfs: &Path, path: &str) -> (PathBuf, String) {
    let clean = clean_abs(path);
    let mut best: Option<(&crate::container::MountRecord, usize)> = None;
    for m in rec.mounts.iter().filter(|m| m.kind != "tmpfs") {
        let d = m.destination.trim_end_matches('/');
        if (clean == d || clean.starts_with(&format!("{d}/")))
            && best.is_none_or(|(_, l)| d.len() > l) {
                best = Some((m, d.len()));
            }
    }
    match best {
        Some((m, l)) => (PathBuf::from(&m.source), clean[l..].to_string()),
        None => (rootfs.to_path_buf(), clean),
    }
}


fn not_found(path: &str, id: &str) -> Error {
    Error::not_found(format!("Could not find the file {path} in container {id}"))
}

/// The host path of an opened fd (resolved inside its root, so inside the tree).
fn real_path(fd: &OwnedFd) -> std::io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(fd)))
}

fn stat_of(name: &str, meta: &std::fs::Metadata, link: String) -> PathStat {
    let ft = meta.file_type();
    let mut mode = meta.mode() & 0o777;
    if ft.is_dir() {
        mode |= GO_MODE_DIR;
    }
    if ft.is_symlink() {
        mode |= GO_MODE_SYMLINK;
    }
    let mtime = chrono::DateTime::from_timestamp(meta.mtime(), meta.mtime_nsec() as u32).unwrap_or_default();
    PathStat {
        name: name.to_string(),
        size: meta.len() as i64,
        mode,
        mtime: mtime.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        link_target: link,
    }
}

impl Engine {
    /// Runs `f` with the container's rootfs mounted (mounting a stopped container's
    /// for the duration).
    async fn with_rootfs<T: Send + 'static>(self: &Arc<Self>, key: &str, f: impl FnOnce(ContainerRecord, PathBuf) -> Result<T> + Send + 'static) -> Result<T> {
        let c = self.container(key)?;
        let _op = c.op.lock().await;
        let rec = c.snapshot();
        let rootfs = self.rootfs_of(&rec.id);
        let temp = !rec.state.status.is_alive();
        if rec.state.status == Status::Removing || rec.state.status == Status::Dead {
            return Err(Error::conflict(format!("container {} is being removed", rec.id)));
        }
        if temp {
            self.images.mount_snapshot(&rec.id, &rootfs).await?;
        }
        let r = {
            let rootfs = rootfs.clone();
            tokio::task::spawn_blocking(move || f(rec, rootfs)).await.map_err(|e| Error::system(e.to_string()))?
        };
        if temp {
            let _ = self.images.unmount_snapshot(&c.id, &rootfs).await;
        }
        r
    }

    /// `HEAD /containers/{id}/archive`.
    pub async fn archive_stat(self: &Arc<Self>, key: &str, path: &str) -> Result<PathStat> {
        let path = path.to_string();
        self.with_rootfs(key, move |rec, rootfs| {
            let (root, rel) = locate(&rec, &rootfs, &path);
            let (dir, name) = split_last(&rel);
            let parent = open_in_root(&root, &dir, OFlags::PATH | OFlags::DIRECTORY).map_err(|_| not_found(&path, &rec.id))?;
            let parent_path = real_path(&parent)?;
            let target = if name.is_empty() { parent_path.clone() } else { parent_path.join(&name) };
            let meta = std::fs::symlink_metadata(&target).map_err(|_| not_found(&path, &rec.id))?;
            let link = if meta.file_type().is_symlink() { std::fs::read_link(&target)?.to_string_lossy().into_owned() } else { String::new() };
            let shown = if name.is_empty() { Path::new(&rel).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "/".into()) } else { name };
            Ok(stat_of(&shown, &meta, link))
        })
        .await
    }

    /// `GET /containers/{id}/archive`: the path as a tar (rooted at its base name).
    pub async fn archive_get<W: Write + Send + 'static>(self: &Arc<Self>, key: &str, path: &str, out: W) -> Result<PathStat> {
        let path = path.to_string();
        let stat = self.archive_stat(key, &path).await?;
        let st = stat.clone();
        self.with_rootfs(key, move |rec, rootfs| {
            let (root, rel) = locate(&rec, &rootfs, &path);
            let (dir, name) = split_last(&rel);
            let parent = open_in_root(&root, &dir, OFlags::PATH | OFlags::DIRECTORY).map_err(|_| not_found(&path, &rec.id))?;
            let parent_path = real_path(&parent)?;
            let target = if name.is_empty() { parent_path } else { parent_path.join(&name) };
            let write = move |out: &mut dyn Write| -> std::io::Result<()> {
                let mut b = tar::Builder::new(out);
                b.follow_symlinks(false);
                let meta = std::fs::symlink_metadata(&target)?;
                if meta.is_dir() {
                    // The root has no base name: its entries are "./...", as in a tar of ".".
                    let base = if st.name == "/" { "." } else { st.name.as_str() };
                    b.append_dir_all(base, &target)?;
                } else {
                    b.append_path_with_name(&target, &st.name)?;
                }
                b.into_inner()?.flush()
            };
            let Some(ns) = rec.ext.userns.clone() else {
                let mut out = out;
                return Ok(write(&mut out)?);
            };
            // In a user namespace (--userns-remap): the owners as the container sees
            // them. The tar goes through a pipe and its headers are rewritten.
            let (r, mut w) = std::io::pipe()?;
            let producer = std::thread::spawn(move || write(&mut w));
            let mut b = tar::Builder::new(out);
            let copied = (|| -> std::io::Result<()> {
                for e in tar::Archive::new(r).entries()? {
                    let mut e = e?;
                    let mut h = e.header().clone();
                    let (uid, gid) = ns.to_inside(h.uid()? as u32, h.gid()? as u32);
                    h.set_uid(uid as u64);
                    h.set_gid(gid as u64);
                    let path = e.path()?.into_owned();
                    match e.link_name()? {
                        Some(l) if h.entry_type().is_symlink() || h.entry_type().is_hard_link() => {
                            let l = l.into_owned();
                            b.append_link(&mut h, &path, &l)?
                        }
                        _ => b.append_data(&mut h, &path, &mut e)?,
                    }
                }
                b.into_inner()?.flush()
            })();
            let produced = producer.join().map_err(|_| Error::system("writing the archive failed"))?;
            copied?;
            Ok(produced?)
        })
        .await?;
        Ok(stat)
    }

    /// `PUT /containers/{id}/archive`: extracts `input` (a tar) into directory `path`.
    /// `PUT /containers/{id}/archive`. What of `input` is left unread (tar stops at the
    /// archive's first end block; an error stops earlier) is the caller's to drain: the
    /// API's body reader does so when dropped.
    pub async fn archive_put<R: Read + Send + 'static>(self: &Arc<Self>, key: &str, path: &str, input: R, no_overwrite_dir_non_dir: bool, copy_uid_gid: bool) -> Result<()> {
        let path = path.to_string();
        let c = self.container(key)?;
        if c.with(|r| r.host_config.readonly_rootfs) && c.with(|r| !r.mounts.iter().any(|m| clean_abs(&path).starts_with(&m.destination) && m.rw)) {
            return Err(Error::forbidden("container rootfs is marked read-only"));
        }
        self.with_rootfs(key, move |rec, rootfs| {
            let (root, rel) = locate(&rec, &rootfs, &path);
            let dir = open_in_root(&root, &rel, OFlags::PATH).map_err(|_| not_found(&path, &rec.id))?;
            let dir_path = real_path(&dir)?;
            if !std::fs::metadata(&dir_path).map(|m| m.is_dir()).unwrap_or(false) {
                return Err(Error::invalid("extraction point is not a directory"));
            }
            // Entries are resolved inside `root`, relative to the extraction point.
            let base_rel = dir_path.strip_prefix(&root).map(|p| p.to_path_buf()).unwrap_or_default();
            // In a user namespace (--userns-remap) what is copied in belongs to its ids:
            // the archive's (-a) mapped, else its root, as dockerd does.
            let owner = |uid: Option<u32>, gid: Option<u32>| -> Option<(u32, u32)> {
                match (&rec.ext.userns, copy_uid_gid) {
                    (None, true) => Some((uid?, gid?)),
                    (None, false) => None,
                    (Some(ns), true) => ns.to_host(uid.unwrap_or(0), gid.unwrap_or(0)).or_else(|| ns.root()),
                    (Some(ns), false) => ns.root(),
                }
            };
            extract(&root, &base_rel, input, no_overwrite_dir_non_dir, &owner)
        })
        .await?;
        self.emit_container(&c.snapshot(), "extract-to-dir", &[]);
        Ok(())
    }
}

fn split_last(rel: &str) -> (String, String) {
    let t = rel.trim_end_matches('/');
    match t.rfind('/') {
        Some(i) => (t[..i].to_string(), t[i + 1..].to_string()),
        None => (String::new(), t.to_string()),
    }
}

/// Safe tar extraction under `root` (every path resolved with RESOLVE_IN_ROOT; no
/// entry may climb out with `..` or an absolute name).
/// `owner(uid, gid)` of the archive's entry: the host ids to give it (None: the
/// daemon's own, as written).
fn extract<R: Read>(root: &Path, base: &Path, input: R, no_overwrite_dir_non_dir: bool, owner: &dyn Fn(Option<u32>, Option<u32>) -> Option<(u32, u32)>) -> Result<()> {
    let mut ar = tar::Archive::new(input);
    for entry in ar.entries().map_err(|e| Error::invalid(format!("reading archive: {e}")))? {
        let mut entry = entry.map_err(|e| Error::invalid(format!("reading archive: {e}")))?;
        let name = entry.path().map_err(|e| Error::invalid(e.to_string()))?.into_owned();
        let mut rel = base.to_path_buf();
        for comp in name.components() {
            match comp {
                Component::Normal(c) => rel.push(c),
                Component::CurDir => {}
                _ => return Err(Error::invalid(format!("invalid path in archive: {}", name.display()))),
            }
        }
        let rel_s = rel.to_string_lossy().into_owned();
        if rel_s.is_empty() || rel == base && entry.header().entry_type().is_dir() {
            continue;
        }
        let (parent_rel, file) = split_last(&rel_s);
        if file.is_empty() {
            continue;
        }
        let parent = match open_in_root(root, &parent_rel, OFlags::DIRECTORY | OFlags::RDONLY) {
            Ok(p) => p,
            Err(_) => {
                mkdir_all_in_root(root, &parent_rel)?;
                open_in_root(root, &parent_rel, OFlags::DIRECTORY | OFlags::RDONLY)?
            }
        };
        let h = entry.header().clone();
        let mode = h.mode().unwrap_or(0o644) & 0o7777;
        let existing = rustix::fs::statat(&parent, file.as_str(), AtFlags::SYMLINK_NOFOLLOW).ok();
        let kind = h.entry_type();
        if let Some(st) = &existing {
            let is_dir = rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory;
            if no_overwrite_dir_non_dir && is_dir != kind.is_dir() {
                return Err(Error::invalid(format!(
                    "cannot overwrite {} with {}",
                    if is_dir { "directory" } else { "non-directory" },
                    if kind.is_dir() { "directory" } else { "non-directory" }
                )));
            }
            if !kind.is_dir() || !is_dir {
                if is_dir {
                    let p = real_path(&parent)?.join(&file);
                    std::fs::remove_dir_all(&p)?;
                } else {
                    rustix::fs::unlinkat(&parent, file.as_str(), AtFlags::empty())?;
                }
            }
        }
        if kind.is_dir() {
            if existing.is_none() || !kind.is_dir() {
                let _ = rustix::fs::mkdirat(&parent, file.as_str(), Mode::from_raw_mode(mode));
            }
        } else if kind.is_symlink() {
            let target = entry.link_name().ok().flatten().ok_or_else(|| Error::invalid("symlink without target"))?.into_owned();
            rustix::fs::symlinkat(&target, &parent, file.as_str())?;
        } else if kind.is_hard_link() {
            let target = entry.link_name().ok().flatten().ok_or_else(|| Error::invalid("hardlink without target"))?.into_owned();
            let mut trel = base.to_path_buf();
            for comp in target.components() {
                match comp {
                    Component::Normal(c) => trel.push(c),
                    Component::CurDir => {}
                    _ => return Err(Error::invalid(format!("invalid link target in archive: {}", target.display()))),
                }
            }
            let src = open_in_root(root, &trel.to_string_lossy(), OFlags::PATH)?;
            rustix::fs::linkat(&src, "", &parent, file.as_str(), AtFlags::EMPTY_PATH)?;
        } else if kind.is_file() || kind == tar::EntryType::Continuous {
            let fd = rustix::fs::openat(&parent, file.as_str(), OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::from_raw_mode(mode))?;
            let mut f = std::fs::File::from(fd);
            std::io::copy(&mut entry, &mut f)?;
        } else {
            // Devices and fifos are not copied, as Docker does not either in cp.
            continue;
        }
        if !kind.is_symlink() {
            let fd = rustix::fs::openat(&parent, file.as_str(), OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?;
            let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
            let _ = std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode));
            if let Some((uid, gid)) = owner(h.uid().ok().map(|u| u as u32), h.gid().ok().map(|g| g as u32)) {
                let _ = std::os::unix::fs::chown(&path, Some(uid), Some(gid));
            }
            if let Ok(mtime) = h.mtime() {
                let ts = rustix::fs::Timestamps {
                    last_access: rustix::fs::Timespec { tv_sec: mtime as i64, tv_nsec: 0 },
                    last_modification: rustix::fs::Timespec { tv_sec: mtime as i64, tv_nsec: 0 },
                };
                let _ = rustix::fs::utimensat(&parent, file.as_str(), &ts, AtFlags::SYMLINK_NOFOLLOW);
            }
            drop(fd);
        } else if let Some((uid, gid)) = owner(h.uid().ok().map(|u| u as u32), h.gid().ok().map(|g| g as u32)) {
            let _ = rustix::fs::chownat(&parent, file.as_str(), Some(rustix::fs::Uid::from_raw(uid)), Some(rustix::fs::Gid::from_raw(gid)), AtFlags::SYMLINK_NOFOLLOW);
        }
        let _ = parent.as_fd();
    }
    Ok(())
}

fn mkdir_all_in_root(root: &Path, rel: &str) -> Result<()> {
    let mut cur = String::new();
    for part in rel.split('/').filter(|p| !p.is_empty()) {
        let parent = open_in_root(root, &cur, OFlags::DIRECTORY | OFlags::RDONLY)?;
        match rustix::fs::mkdirat(&parent, part, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(Error::system(format!("mkdir {part}: {e}"))),
        }
        cur = if cur.is_empty() { part.to_string() } else { format!("{cur}/{part}") };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extraction_stays_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(root.join("dst")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        // A symlink in the container pointing at a host path.
        std::os::unix::fs::symlink(&outside, root.join("dst/evil")).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "evil/x", &b"hi"[..]).unwrap();
        let mut h2 = tar::Header::new_gnu();
        h2.set_size(3);
        h2.set_mode(0o600);
        b.append_data(&mut h2, "ok/y", &b"yes"[..]).unwrap();
        let data = b.into_inner().unwrap();
        // The link's target does not exist inside the root: refused, nothing written.
        assert!(extract(&root, Path::new("dst"), &data[..], false, &|_, _| None).is_err());
        assert!(!outside.join("x").exists(), "nothing may be written outside the root");
        // With the target present inside the root, the link resolves there.
        let inside = root.join(outside.strip_prefix("/").unwrap());
        std::fs::create_dir_all(&inside).unwrap();
        extract(&root, Path::new("dst"), &data[..], false, &|_, _| None).unwrap();
        assert!(!outside.join("x").exists(), "nothing may be written outside the root");
        assert_eq!(std::fs::read(inside.join("x")).unwrap(), b"hi");
        assert_eq!(std::fs::read(root.join("dst/ok/y")).unwrap(), b"yes");
    }

    #[test]
    fn mounts_are_resolved_longest_first() {
        let mut rec = ContainerRecord::default();
        rec.mounts.push(crate::container::MountRecord { kind: "volume".into(), source: "/v/data".into(), destination: "/data".into(), ..Default::default() });
        let (root, rel) = locate(&rec, Path::new("/rootfs"), "/data/sub/../f");
        assert_eq!((root, rel.as_str()), (PathBuf::from("/v/data"), "/f"));
        let (root, rel) = locate(&rec, Path::new("/rootfs"), "/database");
        assert_eq!((root, rel.as_str()), (PathBuf::from("/rootfs"), "/database"));
    }
}
