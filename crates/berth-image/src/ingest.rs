//! Unpacking a layer while its bytes arrive (from a registry download, a `load`
//! stream, an `import`): a [`LayerWriter`] writes the compressed bytes into a content
//! store ingest, and an unpack job on the worker pool reads the same data file as it
//! grows, decompressing, untarring and hashing in one pass. The file is the buffer:
//! the writer never waits for the unpacker, memory stays bounded, and layers of one
//! image unpack in parallel. A resumed ingest simply replays what is already on disk.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};

use crate::content::{Committed, Expected, Writer};
use crate::digest::Digest;
use crate::error::{ImageError, IoContext, Result};
use crate::layer::{Compression, LayerStore, RawStaged, UnpackLimit};
use crate::lease::Lease;
use crate::manifest::Descriptor;
use crate::pool::{JobHandle, WorkerPool};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamState {
    Writing,
    Done,
    Aborted,
}

#[derive(Debug)]
struct Progress {
    written: u64,
    state: StreamState,
    unpack_failed: bool,
}

#[derive(Debug)]
struct Shared {
    m: Mutex<Progress>,
    cv: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.m.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_state(&self, s: StreamState) {
        self.lock().state = s;
        self.cv.notify_all();
    }
}

/// Reads the ingest's data file up to what the writer has written, waiting for more
/// until the writer is done.
struct GrowingReader {
    file: File,
    pos: u64,
    shared: Arc<Shared>,
}

impl Read for GrowingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let avail = {
            let mut g = self.shared.lock();
            loop {
                if g.state == StreamState::Aborted {
                    return Err(io::Error::other("layer stream aborted"));
                }
                if self.pos < g.written {
                    break g.written - self.pos;
                }
                if g.state == StreamState::Done {
                    return Ok(0);
                }
                g = self.shared.cv.wait(g).unwrap_or_else(|p| p.into_inner());
            }
        };
        let n = (buf.len() as u64).min(avail) as usize;
        let n = self.file.read_at(&mut buf[..n], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// What a finished [`LayerWriter`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    /// The blob as stored (compressed if it came compressed).
    pub blob: Committed,
    pub diff_id: Digest,
    /// How the blob is compressed.
    pub compression: Compression,
}

/// A content-store ingest whose bytes are unpacked as they are written. Write the
/// blob's bytes, then [`LayerWriter::finish`]; the unpacked layer waits in the lease
/// until an image record installs it.
pub struct LayerWriter<'l> {
    writer: Option<Writer>,
    shared: Arc<Shared>,
    job: Option<JobHandle<Result<RawStaged>>>,
    lease: &'l Lease,
    expected_blob: Option<Descriptor>,
    expected_diff_id: Option<Digest>,
    ctx: UnpackContext,
}

/// What a layer writer needs from the store.
#[derive(Debug, Clone)]
pub(crate) struct UnpackContext {
    pub layers: Arc<LayerStore>,
    pub pool: Arc<WorkerPool>,
    pub limit: UnpackLimit,
    /// Held (shared) while a new blob becomes visible and gets leased, so a garbage
    /// collection (exclusive) never sees it in between.
    pub gc_lock: Arc<RwLock<()>>,
}

impl std::fmt::Debug for LayerWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerWriter")
            .field("writer", &self.writer)
            .field("expected_blob", &self.expected_blob)
            .finish()
    }
}

impl<'l> LayerWriter<'l> {
    pub(crate) fn start(
        writer: Writer,
        lease: &'l Lease,
        expected_blob: Option<Descriptor>,
        expected_diff_id: Option<Digest>,
        ctx: UnpackContext,
    ) -> Result<LayerWriter<'l>> {
        if let Some(d) = &expected_blob {
            lease.protect_blob(&d.digest);
        }
        let mut lw = LayerWriter {
            writer: Some(writer),
            shared: Arc::new(Shared {
                m: Mutex::new(Progress {
                    written: 0,
                    state: StreamState::Writing,
                    unpack_failed: false,
                }),
                cv: Condvar::new(),
            }),
            job: None,
            lease,
            expected_blob,
            expected_diff_id,
            ctx,
        };
        lw.start_job()?;
        Ok(lw)
    }

    fn start_job(&mut self) -> Result<()> {
        let w = self
            .writer
            .as_ref()
            .ok_or_else(|| ImageError::System("layer writer already finished".into()))?;
        let path = w.data_path();
        let file = File::open(&path).ctx("open", &path)?;
        self.shared = Arc::new(Shared {
            m: Mutex::new(Progress {
                written: w.offset(),
                state: StreamState::Writing,
                unpack_failed: false,
            }),
            cv: Condvar::new(),
        });
        let reader = GrowingReader {
            file,
            pos: 0,
            shared: Arc::clone(&self.shared),
        };
        let layers = Arc::clone(&self.ctx.layers);
        let limit = self.ctx.limit.clone();
        let shared = Arc::clone(&self.shared);
        self.job = Some(self.ctx.pool.spawn(move || {
            let r = layers.unpack_stream(reader, &limit);
            if r.is_err() {
                shared.lock().unpack_failed = true;
                shared.cv.notify_all();
            }
            r
        }));
        Ok(())
    }

    /// Bytes already in the ingest (a resumed download continues from here).
    pub fn offset(&self) -> u64 {
        self.writer.as_ref().map(|w| w.offset()).unwrap_or(0)
    }

    /// Drops what was written so far and starts over (the server ignored a Range
    /// request).
    pub fn restart(&mut self) -> Result<()> {
        self.shared.set_state(StreamState::Aborted);
        if let Some(job) = self.job.take() {
            let _ = job.wait();
        }
        if let Some(w) = self.writer.as_mut() {
            w.truncate()?;
        }
        self.start_job()
    }

    /// Commits the blob (size and digest checked), waits for the unpack, checks the
    /// DiffID, and leaves the unpacked layer in the lease.
    pub fn finish(self) -> Result<LayerBlob> {
        self.commit()?.wait()
    }

    /// Commits the blob and returns while the unpack may still be running: the
    /// caller can start on the next layer and [`PendingLayer::wait`] later.
    pub fn commit(mut self) -> Result<PendingLayer<'l>> {
        let Some(writer) = self.writer.take() else {
            return Err(ImageError::System("layer writer already finished".into()));
        };
        let (size, digest) = match &self.expected_blob {
            Some(d) => (Some(d.size), Some(d.digest.clone())),
            None => (None, None),
        };
        let committed = {
            let _visible = self.ctx.gc_lock.read().unwrap_or_else(|p| p.into_inner());
            let c = writer.commit(size, digest.as_ref());
            if let Ok(c) = &c {
                if c.already_existed {
                    self.lease.protect_blob(&c.digest);
                } else {
                    self.lease.created_blob(&c.digest);
                }
            }
            c
        };
        let committed = match committed {
            Ok(c) => c,
            Err(e) => {
                self.shared.set_state(StreamState::Aborted);
                if let Some(job) = self.job.take() {
                    let _ = job.wait();
                }
                return Err(e);
            }
        };
        self.shared.set_state(StreamState::Done);
        let job = self
            .job
            .take()
            .ok_or_else(|| ImageError::System("unpack job missing".into()))?;
        Ok(PendingLayer {
            blob: committed,
            job: Some(job),
            shared: Arc::clone(&self.shared),
            lease: self.lease,
            expected_diff_id: self.expected_diff_id.take(),
        })
    }

    fn unpack_failed(&self) -> bool {
        self.shared.lock().unpack_failed
    }

    /// The unpack job's error, once it failed.
    fn take_unpack_error(&mut self) -> ImageError {
        self.shared.set_state(StreamState::Aborted);
        match self.job.take().map(|j| j.wait()) {
            Some(Ok(Err(e))) => e,
            Some(Err(e)) => e,
            _ => ImageError::System("layer unpack failed".into()),
        }
    }
}

/// A layer whose blob is committed and whose unpack may still be running.
pub struct PendingLayer<'l> {
    blob: Committed,
    job: Option<JobHandle<Result<RawStaged>>>,
    shared: Arc<Shared>,
    lease: &'l Lease,
    expected_diff_id: Option<Digest>,
}

impl std::fmt::Debug for PendingLayer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLayer").field("blob", &self.blob).finish()
    }
}

impl PendingLayer<'_> {
    /// The committed blob.
    pub fn blob(&self) -> &Committed {
        &self.blob
    }

    /// Waits for the unpack, checks the DiffID, and leaves the layer in the lease.
    pub fn wait(mut self) -> Result<LayerBlob> {
        let job = self
            .job
            .take()
            .ok_or_else(|| ImageError::System("unpack already waited for".into()))?;
        let staged = job.wait()??.into_staged(&self.blob.digest);
        if let Some(want) = &self.expected_diff_id
            && staged.diff_id() != want {
                return Err(ImageError::DigestMismatch {
                    what: format!("uncompressed layer {}", self.blob.digest),
                    expected: want.to_string(),
                    actual: staged.diff_id().to_string(),
                });
            }
        let out = LayerBlob {
            blob: self.blob.clone(),
            diff_id: staged.diff_id().clone(),
            compression: staged.stats.compression,
        };
        self.lease.record_blob_diff_id(&out.blob.digest, &out.diff_id);
        self.lease.add_staged(staged);
        Ok(out)
    }
}

impl Drop for PendingLayer<'_> {
    fn drop(&mut self) {
        if let Some(job) = self.job.take() {
            // Abandoned (the operation failed elsewhere): stop the unpack and wait, so
            // its staging directory is gone when the operation returns.
            self.shared.set_state(StreamState::Aborted);
            let _ = job.wait();
        }
    }
}

impl Write for LayerWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.unpack_failed() {
            // Stop the transfer early; the caller sees the real reason.
            return Err(self.take_unpack_error().into_io());
        }
        let w = self
            .writer
            .as_mut()
            .ok_or_else(|| io::Error::other("layer writer already finished"))?;
        w.write_all(buf)?;
        let off = w.offset();
        self.shared.lock().written = off;
        self.shared.cv.notify_all();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LayerWriter<'_> {
    fn drop(&mut self) {
        if self.job.is_some() {
            // Abandoned: the unpack job stops and removes its staging directory; the
            // ingest (if named) stays for a resumed transfer.
            self.shared.set_state(StreamState::Aborted);
            if let Some(job) = self.job.take() {
                let _ = job.wait();
            }
        }
    }
}

/// Copies `input` into `lw` in large chunks (each write wakes the unpacker, so few
/// large writes beat many small ones).
pub(crate) fn feed(mut input: impl Read, lw: &mut LayerWriter<'_>) -> Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ImageError::from_io_chain("read layer", e)),
        };
        if let Err(e) = lw.write_all(&buf[..n]) {
            return Err(ImageError::from_io_chain("write layer", e));
        }
        total += n as u64;
    }
    Ok(total)
}

/// Helper for callers that have the whole layer as a reader: copies it through a
/// [`LayerWriter`] and finishes it.
pub(crate) fn copy_layer(input: impl Read, mut lw: LayerWriter<'_>) -> Result<LayerBlob> {
    feed(input, &mut lw)?;
    lw.finish()
}

impl From<Descriptor> for Expected {
    fn from(d: Descriptor) -> Expected {
        Expected {
            digest: d.digest,
            size: Some(d.size),
        }
    }
}
