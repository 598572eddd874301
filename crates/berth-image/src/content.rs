//! The content store: blobs by sha256 digest under `content/blobs/sha256/<hex>`.
//!
//! Writes follow containerd's ingest lifecycle: an *ingest* is identified by a ref
//! chosen by the writer (e.g. the registry client uses `<repo>@<digest>`), its partial
//! data lives in `content/ingest/<sha256(ref)>/data`, it can be resumed after a crash or
//! an interrupted download (the writer reopens it and learns the current offset), and
//! *commit* checks the size and digest before an atomic rename makes the blob visible.
//! Readers only ever see committed blobs.
//!
//! Reference counting and garbage collection are the image store's job (it knows which
//! images point at which blobs); this module only stores, reads and deletes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::error::{ImageError, IoContext, Result};
use crate::fsutil;

/// Ingest refs that start with this prefix are private to one operation (load, import,
/// commit): they are removed when their writer is dropped and when the store opens.
pub(crate) const ANONYMOUS_INGEST_PREFIX: &str = "anonymous-";

/// Blobs and ingests under one directory (`<data root>/content`).
#[derive(Debug)]
pub struct ContentStore {
    root: PathBuf,
}

/// What is known about a stored blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub digest: Digest,
    pub size: u64,
}

/// The state of an unfinished ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestStatus {
    pub reference: String,
    /// Bytes already written: a resumed download continues from here.
    pub offset: u64,
    pub expected: Option<Expected>,
}

/// The digest and size an ingest must have at commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expected {
    pub digest: Digest,
    pub size: Option<u64>,
}

/// The result of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub digest: Digest,
    pub size: u64,
    /// The blob was already in the store; this ingest's data was discarded.
    pub already_existed: bool,
}

#[derive(Serialize, Deserialize)]
struct IngestMeta {
    reference: String,
    expected: Option<Expected>,
}

impl ContentStore {
    /// Opens (creating if needed) the store under `root` and removes anonymous ingests
    /// left by a crash.
    pub fn open(root: &Path) -> Result<ContentStore> {
        let store = ContentStore {
            root: root.to_path_buf(),
        };
        fsutil::ensure_dir(&store.blobs_dir())?;
        fsutil::ensure_dir(&store.ingest_root())?;
        for st in store.list_ingests()? {
            if st.reference.starts_with(ANONYMOUS_INGEST_PREFIX) {
                let dir = store.ingest_dir(&st.reference);
                fsutil::remove_all(&dir).ctx("remove", &dir)?;
            }
        }
        // Ingest dirs whose metadata never got written (crash between mkdir and write).
        for entry in fs::read_dir(store.ingest_root()).ctx("read", &store.ingest_root())? {
            let entry = entry.ctx("read", &store.ingest_root())?;
            if !entry.path().join("ref.json").exists() {
                fsutil::remove_all(&entry.path()).ctx("remove", &entry.path())?;
            }
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    fn ingest_root(&self) -> PathBuf {
        self.root.join("ingest")
    }

    fn ingest_dir(&self, reference: &str) -> PathBuf {
        self.ingest_root()
            .join(hex::encode(Sha256::digest(reference.as_bytes())))
    }

    /// The path of a committed blob (it may not exist).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    pub fn exists(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    pub fn info(&self, digest: &Digest) -> Result<BlobInfo> {
        match fs::metadata(self.blob_path(digest)) {
            Ok(m) => Ok(BlobInfo {
                digest: digest.clone(),
                size: m.len(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(ImageError::BlobNotFound(digest.to_string()))
            }
            Err(e) => Err(ImageError::io_path("stat", &self.blob_path(digest), e)),
        }
    }

    /// Opens a committed blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let p = self.blob_path(digest);
        File::open(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                ImageError::BlobNotFound(digest.to_string())
            } else {
                ImageError::io_path("open", &p, e)
            }
        })
    }

    /// Reads a small blob (manifest, config) whole, refusing anything above `max` bytes.
    pub fn read_blob(&self, digest: &Digest, max: u64) -> Result<Vec<u8>> {
        let f = self.open_blob(digest)?;
        let mut buf = Vec::new();
        f.take(max + 1)
            .read_to_end(&mut buf)
            .ctx("read", &self.blob_path(digest))?;
        if buf.len() as u64 > max {
            return Err(ImageError::InvalidArgument(format!(
                "blob {digest} is larger than {max} bytes"
            )));
        }
        if Digest::of(&buf) != *digest {
            return Err(ImageError::DigestMismatch {
                what: "stored blob".into(),
                expected: digest.to_string(),
                actual: Digest::of(&buf).to_string(),
            });
        }
        Ok(buf)
    }

    /// Stores `data` as a blob in one go (configs, manifests).
    pub fn write_blob(&self, data: &[u8]) -> Result<Committed> {
        let digest = Digest::of(data);
        if self.exists(&digest) {
            return Ok(Committed {
                digest,
                size: data.len() as u64,
                already_existed: true,
            });
        }
        let mut w = self.anonymous_writer()?;
        w.write_all(data).ctx("write", &w.data_path())?;
        w.commit(Some(data.len() as u64), Some(&digest))
    }

    /// Deletes a committed blob; absence is not an error.
    pub fn delete(&self, digest: &Digest) -> Result<()> {
        let p = self.blob_path(digest);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ImageError::io_path("remove", &p, e)),
        }
    }

    /// Every committed blob.
    pub fn list(&self) -> Result<Vec<BlobInfo>> {
        let dir = self.blobs_dir();
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).ctx("read", &dir)? {
            let entry = entry.ctx("read", &dir)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            // Skip temp files and anything that is not a digest.
            let Ok(digest) = Digest::from_hex(name) else {
                continue;
            };
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            out.push(BlobInfo { digest, size });
        }
        Ok(out)
    }

    /// Opens (or resumes) the ingest `reference`. With `expected`, commit checks the
    /// digest (and size); a resumed ingest keeps the expectation it was started with
    /// unless a new one is given. Fails with [`ImageError::IngestLocked`] while another
    /// writer holds the same ref.
    pub fn writer(&self, reference: &str, expected: Option<Expected>) -> Result<Writer> {
        if reference.is_empty() {
            return Err(ImageError::InvalidArgument("empty ingest ref".into()));
        }
        let dir = self.ingest_dir(reference);
        fsutil::ensure_dir(&dir)?;
        let data_path = dir.join("data");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&data_path)
            .ctx("open", &data_path)?;
        // One writer per ref at a time (a lock, not a check, so two racing pulls of the
        // same layer cannot interleave bytes).
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(ImageError::IngestLocked(reference.to_owned()));
            }
            Err(e) => return Err(ImageError::io_path("lock", &data_path, e.into())),
        }
        let meta_path = dir.join("ref.json");
        let old_meta: Option<IngestMeta> = fs::read(&meta_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let expected = expected.or_else(|| old_meta.and_then(|m| m.expected));
        // Not fsynced: after a power loss an unreadable ref.json only means the
        // ingest is dropped when the store opens, and the download starts over.
        let meta_bytes = serde_json::to_vec(&IngestMeta {
            reference: reference.to_owned(),
            expected: expected.clone(),
        })
        .map_err(|e| ImageError::System(format!("encode ingest metadata: {e}")))?;
        fsutil::replace_unsynced(&meta_path, &meta_bytes)?;
        let mut w = Writer {
            file,
            dir,
            reference: reference.to_owned(),
            hasher: Sha256::new(),
            offset: 0,
            expected,
            blobs_dir: self.blobs_dir(),
            done: false,
        };
        w.rehash_existing()?;
        Ok(w)
    }

    /// A writer private to one operation; it is discarded unless committed.
    pub fn anonymous_writer(&self) -> Result<Writer> {
        self.writer(
            &format!("{ANONYMOUS_INGEST_PREFIX}{}", fsutil::random_id(20)),
            None,
        )
    }

    /// The status of an unfinished ingest.
    pub fn ingest_status(&self, reference: &str) -> Result<IngestStatus> {
        let dir = self.ingest_dir(reference);
        let meta: IngestMeta = match fs::read(dir.join("ref.json")) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| ImageError::System(format!("ingest {reference}: {e}")))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ImageError::IngestNotFound(reference.to_owned()));
            }
            Err(e) => return Err(ImageError::io_path("read", &dir, e)),
        };
        let offset = fs::metadata(dir.join("data")).map(|m| m.len()).unwrap_or(0);
        Ok(IngestStatus {
            reference: meta.reference,
            offset,
            expected: meta.expected,
        })
    }

    /// Every unfinished ingest.
    pub fn list_ingests(&self) -> Result<Vec<IngestStatus>> {
        let root = self.ingest_root();
        let mut out = Vec::new();
        for entry in fs::read_dir(&root).ctx("read", &root)? {
            let entry = entry.ctx("read", &root)?;
            let Ok(b) = fs::read(entry.path().join("ref.json")) else {
                continue;
            };
            let Ok(meta) = serde_json::from_slice::<IngestMeta>(&b) else {
                continue;
            };
            let offset = fs::metadata(entry.path().join("data"))
                .map(|m| m.len())
                .unwrap_or(0);
            out.push(IngestStatus {
                reference: meta.reference,
                offset,
                expected: meta.expected,
            });
        }
        Ok(out)
    }

    /// Drops an unfinished ingest and its data.
    pub fn abort(&self, reference: &str) -> Result<()> {
        let dir = self.ingest_dir(reference);
        if !dir.exists() {
            return Err(ImageError::IngestNotFound(reference.to_owned()));
        }
        fsutil::remove_all(&dir).ctx("remove", &dir)
    }
}

/// An open ingest. Bytes written go to the ingest's data file and into a running
/// digest; [`Writer::commit`] verifies and publishes the blob.
pub struct Writer {
    file: File,
    dir: PathBuf,
    reference: String,
    hasher: Sha256,
    offset: u64,
    expected: Option<Expected>,
    blobs_dir: PathBuf,
    done: bool,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("reference", &self.reference)
            .field("offset", &self.offset)
            .finish()
    }
}

impl Writer {
    /// The ingest's ref.
    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// Bytes written so far (where a resumed download continues).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn expected(&self) -> Option<&Expected> {
        self.expected.as_ref()
    }

    pub(crate) fn data_path(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Restores the digest state of a resumed ingest by reading back its data.
    fn rehash_existing(&mut self) -> Result<()> {
        let path = self.data_path();
        self.file.seek(SeekFrom::Start(0)).ctx("seek", &path)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = self.file.read(&mut buf).ctx("read", &path)?;
            if n == 0 {
                break;
            }
            self.hasher.update(&buf[..n]);
            self.offset += n as u64;
        }
        Ok(())
    }

    /// Throws away everything written so far (e.g. the server ignored a Range request
    /// and is sending the blob from the start).
    pub fn truncate(&mut self) -> Result<()> {
        let path = self.data_path();
        self.file.set_len(0).ctx("truncate", &path)?;
        self.file.seek(SeekFrom::Start(0)).ctx("seek", &path)?;
        self.hasher = Sha256::new();
        self.offset = 0;
        Ok(())
    }

    /// Verifies size and digest (against the arguments, else the expectation given at
    /// open) and renames the data into the blob directory. If the blob already exists
    /// the data is dropped. On a mismatch the ingest is removed: its bytes are wrong and
    /// resuming would only reproduce the mismatch.
    ///
    /// No fsync here: the image store makes blobs durable with one `syncfs` before an
    /// image record refers to them, and a blob nothing refers to is removed when the
    /// store opens — so a power loss can never leave a referenced blob unwritten.
    pub fn commit(mut self, size: Option<u64>, digest: Option<&Digest>) -> Result<Committed> {
        let actual = Digest::from_hasher(std::mem::take(&mut self.hasher));
        let expected_digest = digest.cloned().or_else(|| self.expected.as_ref().map(|e| e.digest.clone()));
        let expected_size = size.or_else(|| self.expected.as_ref().and_then(|e| e.size));
        if let Some(want) = expected_size
            && want != self.offset {
                let err = ImageError::SizeMismatch {
                    what: format!("blob {}", expected_digest.as_ref().map(|d| d.to_string()).unwrap_or_else(|| self.reference.clone())),
                    expected: want,
                    actual: self.offset,
                };
                self.discard();
                return Err(err);
            }
        if let Some(want) = &expected_digest
            && *want != actual {
                let err = ImageError::DigestMismatch {
                    what: format!("blob {}", self.reference),
                    expected: want.to_string(),
                    actual: actual.to_string(),
                };
                self.discard();
                return Err(err);
            }
        let target = self.blobs_dir.join(actual.hex());
        let size = self.offset;
        if target.exists() {
            self.discard();
            return Ok(Committed {
                digest: actual,
                size,
                already_existed: true,
            });
        }
        let data = self.data_path();
        // Blobs are immutable once committed.
        let _ = self.file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o444));
        fs::rename(&data, &target).ctx("commit", &target)?;
        self.discard();
        Ok(Committed {
            digest: actual,
            size,
            already_existed: false,
        })
    }

    fn discard(&mut self) {
        self.done = true;
        let _ = fsutil::remove_all(&self.dir);
    }
}

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.offset += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Named ingests stay for resumption; private ones are garbage.
        if !self.done && self.reference.starts_with(ANONYMOUS_INGEST_PREFIX) {
            let _ = fsutil::remove_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, ContentStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = ContentStore::open(&dir.path().join("content")).unwrap();
        (dir, s)
    }

    #[test]
    fn write_read_delete() {
        let (_d, s) = store();
        let c = s.write_blob(b"hello").unwrap();
        assert!(!c.already_existed);
        assert_eq!(s.read_blob(&c.digest, 100).unwrap(), b"hello");
        assert!(s.write_blob(b"hello").unwrap().already_existed);
        assert_eq!(s.list().unwrap().len(), 1);
        s.delete(&c.digest).unwrap();
        assert!(matches!(s.open_blob(&c.digest), Err(ImageError::BlobNotFound(_))));
        assert!(s.list_ingests().unwrap().is_empty());
    }

    #[test]
    fn ingest_resumes_at_its_offset() {
        let (_d, s) = store();
        let data = b"0123456789abcdef";
        let want = Expected {
            digest: Digest::of(data),
            size: Some(data.len() as u64),
        };
        let mut w = s.writer("repo@layer", Some(want.clone())).unwrap();
        w.write_all(&data[..6]).unwrap();
        drop(w); // interrupted download
        let st = s.ingest_status("repo@layer").unwrap();
        assert_eq!(st.offset, 6);
        assert_eq!(st.expected, Some(want));
        // Not visible before commit.
        assert!(!s.exists(&Digest::of(data)));
        let mut w = s.writer("repo@layer", None).unwrap();
        assert_eq!(w.offset(), 6);
        w.write_all(&data[6..]).unwrap();
        let c = w.commit(None, None).unwrap();
        assert_eq!(c.digest, Digest::of(data));
        assert!(s.exists(&c.digest));
        assert!(s.list_ingests().unwrap().is_empty());
    }

    #[test]
    fn commit_refuses_a_wrong_digest_and_keeps_nothing() {
        let (_d, s) = store();
        let mut w = s
            .writer(
                "x",
                Some(Expected {
                    digest: Digest::of(b"right"),
                    size: None,
                }),
            )
            .unwrap();
        w.write_all(b"wrong").unwrap();
        let e = w.commit(None, None).unwrap_err();
        assert!(matches!(e, ImageError::DigestMismatch { .. }), "{e}");
        assert!(s.list().unwrap().is_empty());
        assert!(s.list_ingests().unwrap().is_empty());
    }

    #[test]
    fn commit_refuses_a_wrong_size() {
        let (_d, s) = store();
        let mut w = s.writer("y", None).unwrap();
        w.write_all(b"abc").unwrap();
        let e = w.commit(Some(4), None).unwrap_err();
        assert!(matches!(e, ImageError::SizeMismatch { .. }), "{e}");
    }

    #[test]
    fn one_writer_per_ref() {
        let (_d, s) = store();
        let _w = s.writer("same", None).unwrap();
        assert!(matches!(s.writer("same", None), Err(ImageError::IngestLocked(_))));
    }

    #[test]
    fn anonymous_ingests_vanish_on_drop_and_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("content");
        let s = ContentStore::open(&root).unwrap();
        let mut w = s.anonymous_writer().unwrap();
        w.write_all(b"x").unwrap();
        drop(w);
        assert!(s.list_ingests().unwrap().is_empty());
        // A crash leaves one behind: simulate by forgetting the writer.
        let mut w = s.anonymous_writer().unwrap();
        w.write_all(b"y").unwrap();
        std::mem::forget(w);
        let mut named = s.writer("keep-me", None).unwrap();
        named.write_all(b"z").unwrap();
        drop(named);
        let s = ContentStore::open(&root).unwrap();
        let left: Vec<_> = s.list_ingests().unwrap().into_iter().map(|i| i.reference).collect();
        assert_eq!(left, vec!["keep-me".to_string()]);
    }

    #[test]
    fn truncate_restarts_an_ingest() {
        let (_d, s) = store();
        let mut w = s.writer("t", None).unwrap();
        w.write_all(b"garbage").unwrap();
        w.truncate().unwrap();
        w.write_all(b"good").unwrap();
        let c = w.commit(None, Some(&Digest::of(b"good"))).unwrap();
        assert_eq!(c.size, 4);
    }
}
