//! Small filesystem helpers: crash-safe writes (temp + fsync + rename + fsync dir),
//! random names, removal that tolerates absence.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rand::RngExt as _;

use crate::error::{IoContext, Result};

/// Writes `data` to `path` atomically: a reader sees the old content or the new one,
/// never a mix, even after a crash or power loss.
pub fn atomic_write(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        random_id(8)
    ));
    let res = (|| -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fsync_dir(dir)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res.ctx("write", path)
}

/// Writes `data` to `path` through a temp file and a rename, without fsync: a crash
/// leaves the old file or the new one (or, after a power loss, possibly an empty one).
/// For files that a later `syncfs` makes durable, or that are only hints.
pub fn replace_unsynced(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        random_id(8)
    ));
    let res = (|| -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(data)?;
        fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res.ctx("write", path)
}

/// Serialises `value` as JSON and writes it atomically.
pub fn atomic_write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let data = serde_json::to_vec(value).map_err(|e| {
        crate::error::ImageError::System(format!("encode {}: {e}", path.display()))
    })?;
    atomic_write(path, &data)
}

/// fsync a directory so that renames and creations inside it are durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes a file or a directory tree; absence is not an error.
pub fn remove_all(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => match fs::remove_dir_all(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        },
        Ok(_) => match fs::remove_file(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// A random string of `len` lowercase alphanumerics.
pub fn random_id(len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

/// A random string of `len` uppercase alphanumerics (overlay2's short link names).
pub fn random_link_id(len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

/// Creates `dir` and its parents with mode 0700 for the last component (store-internal
/// directories hold root-only data).
pub fn ensure_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).ctx("create", dir)
}

/// Flushes the whole filesystem holding `path` (one syscall instead of an fsync per
/// unpacked file).
pub fn syncfs(path: &Path) -> Result<()> {
    let f = File::open(path).ctx("open", path)?;
    rustix::fs::syncfs(&f).map_err(io::Error::from).ctx("syncfs", path)
}

/// Bytes available to unprivileged writers on the filesystem holding `path`.
pub fn available_bytes(path: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(path)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// A temporary path next to `dir`'s entries that is removed on drop unless kept.
#[derive(Debug)]
pub struct TempPath {
    path: PathBuf,
    keep: bool,
}

impl TempPath {
    pub fn new(path: PathBuf) -> Self {
        TempPath { path, keep: false }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops the removal on drop and returns the path.
    pub fn keep(mut self) -> PathBuf {
        self.keep = true;
        std::mem::take(&mut self.path)
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if !self.keep && !self.path.as_os_str().is_empty() {
            let _ = remove_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn temp_path_removes_unless_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        fs::create_dir(&a).unwrap();
        drop(TempPath::new(a.clone()));
        assert!(!a.exists());
        fs::create_dir(&a).unwrap();
        let kept = TempPath::new(a.clone()).keep();
        assert!(kept.exists());
    }

    #[test]
    fn random_ids_have_the_asked_length() {
        assert_eq!(random_id(12).len(), 12);
        let l = random_link_id(26);
        assert_eq!(l.len(), 26);
        assert!(l.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
    }
}

/// A directory where trees to delete are moved with one `rename`, so that they vanish
/// at once and whole (a crash never leaves half a tree where it was): deleted then by
/// the caller ([`Trash::remove_now`], the layer store's removals) or by a thread of the
/// trash's own ([`Trash::discard`]: a removal on a latency path, such as the exit of a
/// `--rm` container, which its `docker run` waits for, costs a rename instead of an
/// unlink per file). It must be on the same filesystem as what it takes (the data
/// root). What a crash leaves in it is deleted when it is opened again.
#[derive(Debug)]
pub struct Trash {
    dir: PathBuf,
    worker: std::sync::Mutex<Option<std::sync::mpsc::Sender<PathBuf>>>,
}

impl Trash {
    /// Opens (creates) the trash at `dir` and deletes what a crash left in it.
    pub fn open(dir: &Path) -> Result<Trash> {
        fs::create_dir_all(dir).ctx("create", dir)?;
        for entry in fs::read_dir(dir).ctx("read", dir)? {
            let p = entry.ctx("read", dir)?.path();
            remove_all(&p).ctx("remove", &p)?;
        }
        Ok(Trash { dir: dir.to_path_buf(), worker: std::sync::Mutex::new(None) })
    }

    /// Takes `path` out of sight at once (a rename), then deletes it before returning.
    /// Nothing there is fine; a rename that fails is the error.
    pub fn remove_now(&self, path: &Path) -> io::Result<()> {
        let dest = self.dir.join(random_id(20));
        match fs::rename(path, &dest) {
            Ok(()) => remove_all(&dest),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Takes `path` (a file or a tree) out of sight at once and deletes it soon. Nothing
    /// there is fine. A tree holding a mount point must be unmounted first, as for
    /// [`remove_all`].
    pub fn discard(&self, path: &Path) -> io::Result<()> {
        let dest = self.dir.join(random_id(20));
        match fs::rename(path, &dest) {
            Ok(()) => {
                self.delete_later(dest);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            // Another filesystem (EXDEV), or the trash itself is gone: delete in place.
            Err(_) => remove_all(path),
        }
    }

    fn delete_later(&self, path: PathBuf) {
        let mut worker = self.worker.lock().unwrap_or_else(|p| p.into_inner());
        let tx = worker.get_or_insert_with(|| {
            let (tx, rx) = std::sync::mpsc::channel::<PathBuf>();
            // The thread ends when the trash (its sender) is dropped and the queue is
            // done; what is still queued then is found by the next `open`.
            let spawned = std::thread::Builder::new().name("trash".into()).spawn(move || {
                for p in rx {
                    if let Err(e) = remove_all(&p) {
                        tracing::warn!("deleting {}: {e}", p.display());
                    }
                }
            });
            if let Err(e) = spawned {
                tracing::warn!("no trash thread ({e}): deleting in place");
            }
            tx
        });
        if let Err(std::sync::mpsc::SendError(p)) = tx.send(path) {
            let _ = remove_all(&p);
        }
    }
}
