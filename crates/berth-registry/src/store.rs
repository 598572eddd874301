//! Where pulled bytes go and pushed bytes come from: a small content-store interface in
//! containerd's shape (ingest by ref, resumable, commit checks the digest), so pull and
//! push do not depend on any particular image store.
//!
//! [`DirStore`] is a plain directory implementation of it (used by tests and tools); the
//! daemon plugs in its image store instead.

use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::digest::{Digest, Hasher};
use crate::fsutil::{atomic_write, durable_rename};
use crate::manifest::Descriptor;

/// What a blob is to the image being pulled: lets a store treat layers specially
/// (e.g. unpack them while they arrive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobKind {
    /// An image manifest or an index.
    Manifest,
    /// The image config.
    Config,
    /// A layer; `diff_id` is its uncompressed digest from the config.
    Layer { diff_id: Option<Digest> },
}

/// A registry repository a blob is known to exist in (a cross-repository mount source).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BlobSource {
    pub registry: String,
    pub repository: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// In Go's words for what users grep for (`no space left on device`).
    #[error("content store I/O error: {}", berth_image::error::io_text(.0))]
    Io(#[from] io::Error),
    #[error("blob {0} not found in content store")]
    NotFound(Digest),
    /// A download's writer ended before the data did (its own error, when it has one, is
    /// what the download reports).
    #[error("content store writer stopped")]
    WriterStopped,
    #[error("content digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("content size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    /// Another writer is ingesting this blob right now; try again later.
    #[error("blob {0} is being written by another pull")]
    Locked(Digest),
    #[error("content store: {0}")]
    Other(String),
}

/// The content store pull writes into and push reads from. Methods are blocking; the
/// client calls them from blocking threads.
pub trait ContentStore: Send + Sync {
    /// Whether the blob is already present (for a layer: present and usable, e.g.
    /// unpacked), so the pull can skip it ("Already exists").
    fn contains(&self, desc: &Descriptor, kind: &BlobKind) -> Result<bool, StoreError>;

    /// Opens an ingestion for `desc`. If an earlier attempt was interrupted, the writer
    /// resumes: [`BlobWriter::offset`] says how many bytes it already holds. While one
    /// writer is open for a blob, another attempt gets [`StoreError::Locked`].
    fn writer(&self, desc: &Descriptor, kind: &BlobKind) -> Result<Box<dyn BlobWriter + '_>, StoreError>;

    /// Reads a committed blob (push).
    fn reader(&self, digest: &Digest) -> Result<Box<dyn BlobReader>, StoreError>;

    /// Remembers that `digest` exists in `source` (so a later push to the same registry
    /// can mount it instead of uploading it).
    fn record_source(&self, _digest: &Digest, _source: &BlobSource) -> Result<(), StoreError> {
        Ok(())
    }

    /// Repositories `digest` is known to exist in.
    fn sources(&self, _digest: &Digest) -> Vec<BlobSource> {
        Vec::new()
    }
}

/// A committed blob opened for reading; seekable so a chunked upload can resume.
pub trait BlobReader: Read + Seek + Send {}

impl<T: Read + Seek + Send> BlobReader for T {}

/// One blob being written (containerd's ingestion contract). Nothing is visible to
/// readers before [`BlobWriter::commit`], and commit is where the content is checked:
/// the writer hashes every byte (re-reading what a resumed ingest already held).
pub trait BlobWriter: Send {
    /// Bytes already held from an earlier, interrupted attempt.
    fn offset(&self) -> u64;
    /// Appends bytes.
    fn write(&mut self, data: &[u8]) -> io::Result<()>;
    /// Checks size and digest against the descriptor the writer was opened for
    /// ([`StoreError::SizeMismatch`] / [`StoreError::DigestMismatch`], data discarded),
    /// then makes the blob visible (for a layer store: also finishes the unpack).
    fn commit(self: Box<Self>) -> Result<(), StoreError>;
    /// Discards the data (it is corrupt, or the caller restarts from zero).
    fn abort(self: Box<Self>) -> Result<(), StoreError>;
}

/// Which registry repositories each blob was seen in (so a push can mount instead of
/// upload), as one small JSON file per blob under a directory.
#[derive(Debug, Clone)]
pub struct SourceIndex {
    dir: PathBuf,
}

impl SourceIndex {
    pub fn open(dir: &Path) -> io::Result<SourceIndex> {
        fs::create_dir_all(dir)?;
        Ok(SourceIndex {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, d: &Digest) -> PathBuf {
        self.dir
            .join(format!("{}-{}.json", d.algorithm().as_str(), d.hex()))
    }

    pub fn record(&self, digest: &Digest, source: &BlobSource) -> Result<(), StoreError> {
        let mut all = self.list(digest);
        if all.contains(source) {
            return Ok(());
        }
        all.push(source.clone());
        let json = serde_json::to_vec(&all).map_err(|e| StoreError::Other(e.to_string()))?;
        atomic_write(&self.path(digest), &json)?;
        Ok(())
    }

    pub fn list(&self, digest: &Digest) -> Vec<BlobSource> {
        fs::read(self.path(digest))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }
}

/// A content store in a plain directory:
///
/// ```text
/// ROOT/blobs/<algo>/<hex>          committed blobs
/// ROOT/ingest/<algo>-<hex>/data    partial data of an interrupted download
/// ROOT/sources/<algo>-<hex>.json   repositories the blob was seen in
/// ```
#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
    sources: SourceIndex,
}

impl DirStore {
    pub fn open(root: &Path) -> io::Result<DirStore> {
        for d in ["blobs", "ingest"] {
            fs::create_dir_all(root.join(d))?;
        }
        Ok(DirStore {
            root: root.to_path_buf(),
            sources: SourceIndex::open(&root.join("sources"))?,
        })
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs").join(d.algorithm().as_str()).join(d.hex())
    }

    fn ingest_dir(&self, d: &Digest) -> PathBuf {
        self.root
            .join("ingest")
            .join(format!("{}-{}", d.algorithm().as_str(), d.hex()))
    }

    /// Whether a committed blob exists.
    pub fn has(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Reads a whole committed blob.
    pub fn read(&self, d: &Digest) -> io::Result<Vec<u8>> {
        fs::read(self.blob_path(d))
    }

    /// Stores `data` as a committed blob (for tests and tools that build images).
    pub fn put(&self, data: &[u8]) -> io::Result<Digest> {
        let d = Digest::sha256_of(data);
        atomic_write(&self.blob_path(&d), data)?;
        Ok(d)
    }

    /// The partial file of an interrupted ingest, if any.
    pub fn ingest_path(&self, d: &Digest) -> PathBuf {
        self.ingest_dir(d).join("data")
    }
}

impl ContentStore for DirStore {
    fn contains(&self, desc: &Descriptor, _kind: &BlobKind) -> Result<bool, StoreError> {
        match fs::metadata(self.blob_path(&desc.digest)) {
            Ok(m) => Ok(m.len() == desc.size),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn writer(&self, desc: &Descriptor, _kind: &BlobKind) -> Result<Box<dyn BlobWriter + '_>, StoreError> {
        let dir = self.ingest_dir(&desc.digest);
        fs::create_dir_all(&dir)?;
        // One writer per blob: two appending to the same partial file would corrupt it.
        let lock = File::options().create(true).truncate(false).write(true).open(dir.join("lock"))?;
        match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => return Err(StoreError::Locked(desc.digest.clone())),
            Err(e) => return Err(StoreError::Io(e.into())),
        }
        let path = dir.join("data");
        let file = File::options().create(true).append(true).open(&path)?;
        let offset = file.metadata()?.len();
        // Hashing what is already there keeps commit's check exact after a resume.
        let mut hasher = Hasher::new(desc.digest.algorithm());
        if offset > 0 {
            let mut r = File::open(&path)?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = r.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
        }
        Ok(Box::new(DirWriter {
            desc: desc.clone(),
            dir,
            path,
            file: io::BufWriter::with_capacity(1 << 20, file),
            written: offset,
            hasher,
            target: self.blob_path(&desc.digest),
            _lock: lock,
        }))
    }

    fn reader(&self, digest: &Digest) -> Result<Box<dyn BlobReader>, StoreError> {
        match File::open(self.blob_path(digest)) {
            Ok(f) => Ok(Box::new(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::NotFound(digest.clone())),
            Err(e) => Err(e.into()),
        }
    }

    fn record_source(&self, digest: &Digest, source: &BlobSource) -> Result<(), StoreError> {
        self.sources.record(digest, source)
    }

    fn sources(&self, digest: &Digest) -> Vec<BlobSource> {
        self.sources.list(digest)
    }
}

struct DirWriter {
    desc: Descriptor,
    dir: PathBuf,
    path: PathBuf,
    file: io::BufWriter<File>,
    written: u64,
    hasher: Hasher,
    target: PathBuf,
    _lock: File,
}

impl BlobWriter for DirWriter {
    fn offset(&self) -> u64 {
        self.written
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.hasher.update(data);
        self.written += data.len() as u64;
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        self.file.flush()?;
        let actual = self.hasher.clone().finish();
        let bad = if self.written != self.desc.size {
            Some(StoreError::SizeMismatch {
                digest: self.desc.digest.clone(),
                expected: self.desc.size,
                actual: self.written,
            })
        } else if actual != self.desc.digest {
            Some(StoreError::DigestMismatch {
                expected: self.desc.digest.clone(),
                actual,
            })
        } else {
            None
        };
        if let Some(e) = bad {
            let _ = fs::remove_dir_all(&self.dir);
            return Err(e);
        }
        self.file.get_ref().sync_all()?;
        durable_rename(&self.path, &self.target)?;
        fs::remove_dir_all(&self.dir)?;
        Ok(())
    }

    fn abort(self: Box<Self>) -> Result<(), StoreError> {
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(data: &[u8]) -> Descriptor {
        Descriptor::new("application/octet-stream", Digest::sha256_of(data), data.len() as u64)
    }

    #[test]
    fn resumes_and_commits() {
        let dir = tempfile::tempdir().unwrap();
        let s = DirStore::open(dir.path()).unwrap();
        let d = desc(b"hello world");
        let mut w = s.writer(&d, &BlobKind::Config).unwrap();
        w.write(b"hello ").unwrap();
        drop(w); // interrupted: the partial stays, invisible
        assert!(!s.contains(&d, &BlobKind::Config).unwrap());
        let mut w = s.writer(&d, &BlobKind::Config).unwrap();
        assert_eq!(w.offset(), 6);
        w.write(b"world").unwrap();
        w.commit().unwrap();
        assert!(s.contains(&d, &BlobKind::Config).unwrap());
        assert_eq!(s.read(&d.digest).unwrap(), b"hello world");
        assert!(!s.ingest_path(&d.digest).exists());
    }

    #[test]
    fn corrupt_data_is_not_committed() {
        let dir = tempfile::tempdir().unwrap();
        let s = DirStore::open(dir.path()).unwrap();
        let d = desc(b"expected");
        let mut w = s.writer(&d, &BlobKind::Config).unwrap();
        w.write(b"xxxxxxxx").unwrap();
        assert!(matches!(w.commit(), Err(StoreError::DigestMismatch { .. })));
        assert!(!s.has(&d.digest));
        assert!(!s.ingest_path(&d.digest).exists());
        let mut w = s.writer(&d, &BlobKind::Config).unwrap();
        w.write(b"short").unwrap();
        assert!(matches!(w.commit(), Err(StoreError::SizeMismatch { .. })));
    }

    #[test]
    fn one_writer_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let s = DirStore::open(dir.path()).unwrap();
        let d = desc(b"data");
        let w = s.writer(&d, &BlobKind::Config).unwrap();
        assert!(matches!(s.writer(&d, &BlobKind::Config), Err(StoreError::Locked(_))));
        drop(w);
        assert!(s.writer(&d, &BlobKind::Config).is_ok());
    }

    #[test]
    fn sources_accumulate() {
        let dir = tempfile::tempdir().unwrap();
        let s = DirStore::open(dir.path()).unwrap();
        let d = s.put(b"x").unwrap();
        let a = BlobSource { registry: "r".into(), repository: "a".into() };
        let b = BlobSource { registry: "r".into(), repository: "b".into() };
        s.record_source(&d, &a).unwrap();
        s.record_source(&d, &b).unwrap();
        s.record_source(&d, &a).unwrap();
        assert_eq!(s.sources(&d), vec![a, b]);
    }
}
