//! Pull: resolve the manifest (choosing a platform from an index), fetch the config,
//! then download layers side by side straight into the content store.
//!
//! Each layer download is two halves joined by a bounded channel: the async half reads
//! the HTTP body (resuming with `Range` after a broken connection), the blocking half
//! hashes and writes into the store's [`BlobWriter`] (which may unpack as it goes).
//! The digest is checked before commit; a mismatch discards the data. If the pull is
//! dropped or fails, partial data stays in the store's ingest, invisible, and the next
//! pull resumes from it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use reqwest::StatusCode;
use reqwest::header::RANGE;
use tokio::sync::{mpsc, oneshot};

use super::credentials::AuthConfig;
use super::error::RegistryError;
use super::progress::{Progress, ProgressSink};
use super::{RegistryClient, Session, fetch_manifest, pull_scope, read_limited};
use crate::digest::{Digest, Hasher};
use crate::manifest::{self, Descriptor, ImageManifest, Manifest, Platform, media};
use crate::reference::Reference;
use crate::store::{BlobKind, BlobSource, ContentStore, StoreError};

/// Options of one pull.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// The platform to pick from a multi-platform image (default: the client's).
    pub platform: Option<Platform>,
    /// Credentials (from X-Registry-Auth or config.json); empty for anonymous.
    pub auth: AuthConfig,
}

/// What a pull brought in: everything the image store needs to register the image.
#[derive(Debug, Clone)]
pub struct PulledImage {
    /// The reference pulled (tag or digest as asked).
    pub reference: Reference,
    /// Digest of the top-level manifest (the index for a multi-platform image): the
    /// image's RepoDigest, `repo@digest`.
    pub digest: Digest,
    /// Media type of the top-level manifest.
    pub media_type: String,
    /// The image manifest (the platform's entry when the top level is an index).
    pub manifest: Descriptor,
    pub manifest_bytes: Vec<u8>,
    pub config: Descriptor,
    pub config_bytes: Vec<u8>,
    pub layers: Vec<Descriptor>,
    /// The layers' uncompressed digests, from the config, in the same order.
    pub diff_ids: Vec<Digest>,
    /// True when nothing new was fetched (the manifest and every layer were present).
    pub up_to_date: bool,
}

impl PulledImage {
    /// `repo@sha256:...`, as Docker records in RepoDigests.
    pub fn repo_digest(&self) -> String {
        self.reference.repository_only().with_digest(self.digest.clone()).familiar_string()
    }
}

/// Largest image config accepted.
const MAX_CONFIG_SIZE: usize = 64 << 20;
/// Emit a Downloading event at most every this many bytes (as dockerd's progress reader).
const PROGRESS_STEP: u64 = 512 * 1024;
/// Chunks in flight between the network half and the store half of a download.
const CHANNEL_DEPTH: usize = 64;

impl RegistryClient {
    /// Pulls one image (`reference` names a tag or a digest).
    pub async fn pull(
        &self,
        reference: &Reference,
        opts: &PullOptions,
        store: Arc<dyn ContentStore>,
        progress: &dyn ProgressSink,
    ) -> Result<PulledImage, RegistryError> {
        let image = self.pull_one(reference, opts, store, progress).await?;
        progress.emit(Progress::Digest {
            digest: image.digest.to_string(),
        });
        progress.emit(Progress::Status {
            message: status_message(&image, &reference.familiar_string()),
        });
        Ok(image)
    }

    /// `docker pull --all-tags`: every tag of the repository.
    pub async fn pull_all_tags(
        &self,
        repository: &Reference,
        opts: &PullOptions,
        store: Arc<dyn ContentStore>,
        progress: &dyn ProgressSink,
    ) -> Result<Vec<PulledImage>, RegistryError> {
        let repo = repository.repository_only();
        let tags = self.list_tags(&repo, &opts.auth).await?;
        if tags.is_empty() {
            return Err(RegistryError::NotFound {
                what: format!("tags of {}", repo.familiar_name()),
                message: "repository has no tags".to_string(),
            });
        }
        let mut out = Vec::new();
        for t in tags {
            let r = repo.with_tag(&t)?;
            let image = self.pull_one(&r, opts, store.clone(), progress).await?;
            progress.emit(Progress::Digest {
                digest: image.digest.to_string(),
            });
            out.push(image);
        }
        let fresh = out.iter().any(|i| !i.up_to_date);
        progress.emit(Progress::Status {
            message: if fresh {
                format!("Downloaded newer image for {}", repo.familiar_name())
            } else {
                format!("Image is up to date for {}", repo.familiar_name())
            },
        });
        Ok(out)
    }

    async fn pull_one(
        &self,
        reference: &Reference,
        opts: &PullOptions,
        store: Arc<dyn ContentStore>,
        progress: &dyn ProgressSink,
    ) -> Result<PulledImage, RegistryError> {
        let platform = opts
            .platform
            .clone()
            .unwrap_or_else(|| self.config().default_platform.clone());
        progress.emit(Progress::PullingFrom {
            id: reference.tag_or_digest(),
            repository: reference.repository().to_string(),
        });
        let sources = self.pull_sources(reference.registry());
        let count = sources.len();
        let mut last_err = None;
        for (i, (key, registry, cands)) in sources.into_iter().enumerate() {
            let is_last = i + 1 == count;
            // Mirrors get the mirror's own credentials, if any were given for it.
            let auth = if registry == reference.registry() { opts.auth.clone() } else { AuthConfig::default() };
            let attempt = async {
                let ep = self.connect(&key, &registry, &cands).await?;
                let s = self.session(ep, vec![pull_scope(reference.repository())], &auth);
                let resolved = resolve(&s, reference, &platform).await?;
                Ok::<_, RegistryError>((s, resolved))
            };
            match attempt.await {
                Ok((s, resolved)) => {
                    if !is_last {
                        tracing::debug!(mirror = %key, "pulling through mirror");
                    }
                    return self.transfer(&s, reference, resolved, store, progress).await;
                }
                Err(e) if !is_last && e.try_next_endpoint() => {
                    tracing::info!(source = %key, "pull source failed, trying the next: {e}");
                    last_err = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| RegistryError::Connect {
            registry: reference.registry().to_string(),
            message: "no endpoint".to_string(),
        }))
    }

    /// Stores manifests and config, then downloads the layers.
    async fn transfer(
        &self,
        s: &Session<'_>,
        reference: &Reference,
        r: Resolved,
        store: Arc<dyn ContentStore>,
        progress: &dyn ProgressSink,
    ) -> Result<PulledImage, RegistryError> {
        let Resolved {
            top_digest,
            top_media_type,
            top_bytes,
            index_child,
            manifest_bytes,
            image,
            config_bytes,
            diff_ids,
        } = r;
        let top_desc = Descriptor::new(&top_media_type, top_digest.clone(), top_bytes.len() as u64);
        let had_manifest = blocking_store(&store, {
            let d = top_desc.clone();
            move |st| st.contains(&d, &BlobKind::Manifest)
        })
        .await?;

        let layer_kinds: Vec<BlobKind> = diff_ids
            .iter()
            .map(|d| BlobKind::Layer { diff_id: Some(d.clone()) })
            .collect();
        let present = {
            let layers = image.layers.clone();
            let kinds = layer_kinds.clone();
            blocking_store(&store, move |st| {
                let mut out = Vec::with_capacity(layers.len());
                for (l, k) in layers.iter().zip(kinds.iter()) {
                    out.push(st.contains(l, k)?);
                }
                Ok(out)
            })
            .await?
        };
        let limit = self.config().max_concurrent_downloads.max(1);
        let mut queued = 0;
        for (l, p) in image.layers.iter().zip(&present) {
            let id = l.digest.short_id().to_string();
            if *p {
                progress.emit(Progress::AlreadyExists { id });
            } else {
                progress.emit(Progress::PullingFsLayer { id });
            }
        }
        for (l, p) in image.layers.iter().zip(&present) {
            if !*p {
                queued += 1;
                if queued > limit {
                    progress.emit(Progress::Waiting {
                        id: l.digest.short_id().to_string(),
                    });
                }
            }
        }

        let source = BlobSource {
            registry: reference.registry().to_string(),
            repository: reference.repository().to_string(),
        };
        // Owned and collected up front: a lazy iterator of closures held across awaits
        // would make the future !Send (rust-lang/rust#102211).
        let mut jobs: Vec<(Descriptor, BlobKind)> = Vec::new();
        for ((l, k), p) in image.layers.iter().zip(layer_kinds).zip(&present) {
            if !*p {
                jobs.push((l.clone(), k));
            }
        }
        // The limit is on transfers: a layer gives its slot back once its bytes are in,
        // while the store finishes it (unpacks) in the background.
        let slots = tokio::sync::Semaphore::new(limit);
        let ctx = LayerContext {
            s,
            reference,
            store: &store,
            slots: &slots,
            progress,
        };
        let ctx = &ctx;
        futures_util::stream::iter(jobs)
            .map(|(l, k)| {
                let source = source.clone();
                async move {
                    self.download_layer(ctx, &l, k).await?;
                    record_source(ctx.store, &l.digest, &source).await;
                    Ok::<(), RegistryError>(())
                }
            })
            .buffer_unordered(usize::MAX)
            .try_collect::<Vec<()>>()
            .await?;

        // Config and manifests last: an image is only complete when all of it is there.
        let config = image.config.clone();
        put_small(&store, &config, BlobKind::Config, config_bytes.clone()).await?;
        if let Some(child) = &index_child {
            put_small(&store, child, BlobKind::Manifest, manifest_bytes.clone()).await?;
        }
        put_small(&store, &top_desc, BlobKind::Manifest, top_bytes).await?;
        record_source(&store, &config.digest, &source).await;

        let manifest_desc = match &index_child {
            Some(child) => child.clone(),
            None => top_desc.clone(),
        };
        Ok(PulledImage {
            reference: reference.clone(),
            digest: top_digest,
            media_type: top_media_type,
            manifest: manifest_desc,
            manifest_bytes,
            config,
            config_bytes,
            layers: image.layers,
            diff_ids,
            up_to_date: had_manifest && present.iter().all(|p| *p),
        })
    }

    /// Downloads one layer into the store, resuming an earlier partial download and
    /// retrying broken connections with `Range`.
    async fn download_layer(&self, ctx: &LayerContext<'_, '_>, desc: &Descriptor, kind: BlobKind) -> Result<(), RegistryError> {
        let LayerContext {
            s,
            reference,
            store,
            slots,
            progress,
        } = *ctx;
        let id = desc.digest.short_id().to_string();
        let what = format!("layer {}", desc.digest);
        let slot = slots.acquire().await.map_err(|e| RegistryError::Store(StoreError::Other(e.to_string())))?;
        // Another pull may be writing the same blob: wait for it, then see.
        let (tx, mut events, worker) = loop {
            match start_writer(store.clone(), desc.clone(), kind.clone()).await? {
                Some(w) => break w,
                None => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let present = blocking_store(store, {
                        let (d, k) = (desc.clone(), kind.clone());
                        move |st| st.contains(&d, &k)
                    })
                    .await?;
                    if present {
                        progress.emit(Progress::PullComplete { id });
                        return Ok(());
                    }
                }
            }
        };
        let mut offset = match events.recv().await {
            Some(WorkerEvent::Offset(o)) => o,
            _ => return Err(worker_failure(worker).await),
        };
        let size = desc.size;
        let fetched = async {
            let url = s.ep.url(&format!("v2/{}/blobs/{}", reference.repository(), desc.digest))?;
            let mut attempt = 0u32;
            let mut last_emit = offset;
            progress.emit(Progress::Downloading { id: id.clone(), current: offset, total: size });
            while offset < size {
                let result = async {
                    let from = offset;
                    let resp = s
                        .send(&what, |http| {
                            let rb = http.get(url.clone());
                            Ok(if from > 0 { rb.header(RANGE, format!("bytes={from}-")) } else { rb })
                        })
                        .await?;
                    // A server that ignores Range sends everything again: skip what we have.
                    let mut skip = match resp.status() {
                        StatusCode::PARTIAL_CONTENT => {
                            let start = resp
                                .headers()
                                .get(reqwest::header::CONTENT_RANGE)
                                .and_then(|v| v.to_str().ok())
                                .and_then(content_range_start);
                            if start != Some(from) {
                                return Err(Attempt::Fatal(RegistryError::Protocol {
                                    registry: s.ep.registry.clone(),
                                    message: format!("asked for {what} from byte {from}, got Content-Range {start:?}"),
                                }));
                            }
                            0
                        }
                        _ => from,
                    };
                    let mut body = resp.bytes_stream();
                    while let Some(chunk) = body.next().await {
                        let mut chunk = chunk.map_err(|e| {
                            Attempt::Broken(format!("connection broke after {offset} of {size} bytes: {}", super::transport::error_chain(&e)))
                        })?;
                        if skip > 0 {
                            let n = skip.min(chunk.len() as u64) as usize;
                            chunk = chunk.slice(n..);
                            skip -= n as u64;
                            if chunk.is_empty() {
                                continue;
                            }
                        }
                        let len = chunk.len() as u64;
                        if offset + len > size {
                            return Err(Attempt::Fatal(RegistryError::SizeMismatch {
                                what: what.clone(),
                                expected: size,
                                actual: offset + len,
                            }));
                        }
                        if tx.send(WriterMsg::Data(chunk)).await.is_err() {
                            return Err(Attempt::Fatal(RegistryError::Store(StoreError::WriterStopped)));
                        }
                        offset += len;
                        if offset - last_emit >= PROGRESS_STEP || offset == size {
                            last_emit = offset;
                            progress.emit(Progress::Downloading { id: id.clone(), current: offset, total: size });
                        }
                    }
                    if offset < size {
                        return Err(Attempt::Broken(format!("connection closed after {offset} of {size} bytes")));
                    }
                    Ok(())
                }
                .await;
                match result {
                    Ok(()) => {}
                    Err(Attempt::Fatal(e)) => {
                        if matches!(e, RegistryError::SizeMismatch { .. }) {
                            let _ = tx.send(WriterMsg::Abort).await;
                        }
                        return Err(e);
                    }
                    Err(Attempt::Broken(message)) => {
                        attempt += 1;
                        if attempt > self.config().download_retries {
                            return Err(RegistryError::Transfer { what: what.clone(), message });
                        }
                        let delay = self.config().retry_delay * 2u32.saturating_pow(attempt - 1);
                        tracing::info!(layer = %desc.digest, offset, "retrying: {message}");
                        progress.emit(Progress::Retrying { id: id.clone(), seconds: delay.as_secs().max(1) });
                        tokio::time::sleep(delay).await;
                    }
                }
            }
            Ok::<(), RegistryError>(())
        }
        .await;
        if let Err(e) = fetched {
            // Let the writer settle (flush what arrived) before reporting, so the
            // partial data is on disk for the next attempt.
            drop(tx);
            let settled = worker.await;
            // The writer stopped first: its error (a full disk...) is the cause.
            if let (RegistryError::Store(StoreError::WriterStopped), Ok(Err(cause))) = (&e, settled) {
                return Err(cause);
            }
            return Err(e);
        }
        drop(slot);
        progress.emit(Progress::VerifyingChecksum { id: id.clone() });
        if tx.send(WriterMsg::Complete).await.is_err() {
            return Err(worker_failure(worker).await);
        }
        drop(tx);
        match events.recv().await {
            Some(WorkerEvent::Committed) => {}
            _ => return Err(worker_failure(worker).await),
        }
        progress.emit(Progress::DownloadComplete { id: id.clone() });
        progress.emit(Progress::Extracting { id: id.clone(), current: size, total: size });
        progress.emit(Progress::PullComplete { id });
        Ok(())
    }
}

/// What every layer download of one pull shares.
struct LayerContext<'a, 'c> {
    s: &'a Session<'c>,
    reference: &'a Reference,
    store: &'a Arc<dyn ContentStore>,
    /// Transfer slots (max concurrent downloads).
    slots: &'a tokio::sync::Semaphore,
    progress: &'a dyn ProgressSink,
}

/// How one download attempt ended badly.
enum Attempt {
    /// Resume with Range after a pause.
    Broken(String),
    /// Give up.
    Fatal(RegistryError),
}

impl From<RegistryError> for Attempt {
    fn from(e: RegistryError) -> Attempt {
        match e {
            // The connection failed before any answer: worth another try.
            RegistryError::Connect { message, .. } => Attempt::Broken(message),
            // A registry or proxy hiccup.
            RegistryError::Status { status, message, .. } if status >= 500 => {
                Attempt::Broken(format!("HTTP {status}: {message}"))
            }
            e => Attempt::Fatal(e),
        }
    }
}

/// `bytes 100-199/200` → 100.
fn content_range_start(v: &str) -> Option<u64> {
    let v = v.trim();
    let v = v.strip_prefix("bytes").unwrap_or(v).trim();
    v.split('-').next()?.trim().parse().ok()
}

fn status_message(image: &PulledImage, name: &str) -> String {
    if image.up_to_date {
        format!("Image is up to date for {name}")
    } else {
        format!("Downloaded newer image for {name}")
    }
}

/// Runs a blocking store call off the async threads.
async fn blocking_store<T: Send + 'static>(
    store: &Arc<dyn ContentStore>,
    f: impl FnOnce(&dyn ContentStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, RegistryError> {
    let st = store.clone();
    tokio::task::spawn_blocking(move || f(st.as_ref()))
        .await
        .map_err(|e| RegistryError::Store(StoreError::Other(format!("store task: {e}"))))?
        .map_err(RegistryError::Store)
}

async fn record_source(store: &Arc<dyn ContentStore>, digest: &Digest, source: &BlobSource) {
    let (d, s) = (digest.clone(), source.clone());
    if let Err(e) = blocking_store(store, move |st| st.record_source(&d, &s)).await {
        tracing::warn!("recording where {digest} came from: {e}");
    }
}

/// Writes a small blob that is already in memory (manifest, config) unless present.
async fn put_small(store: &Arc<dyn ContentStore>, desc: &Descriptor, kind: BlobKind, bytes: Vec<u8>) -> Result<(), RegistryError> {
    let d = desc.clone();
    let mut tries = 0;
    loop {
        let (d, k, b) = (d.clone(), kind.clone(), bytes.clone());
        let r = blocking_store(store, move |st| {
            if st.contains(&d, &k)? {
                return Ok(());
            }
            let mut w = st.writer(&d, &k)?;
            if w.offset() > 0 {
                // A leftover partial of something this small: start over.
                w.abort()?;
                w = st.writer(&d, &k)?;
            }
            w.write(&b)?;
            w.commit()
        })
        .await
        .map_err(|e| match e {
            RegistryError::Store(s) => commit_error(s, &format!("blob {}", desc.digest)),
            e => e,
        });
        match r {
            Err(RegistryError::Store(StoreError::Locked(_))) if tries < 150 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

enum WriterMsg {
    Data(Bytes),
    /// Every byte was sent: verify and commit.
    Complete,
    /// The data is bad: discard it.
    Abort,
}

enum WorkerEvent {
    /// Bytes already held (resume point).
    Offset(u64),
    /// Size and digest checked, blob committed (and unpacked, for a layer store).
    Committed,
}

type WriterHandles = (
    mpsc::Sender<WriterMsg>,
    mpsc::UnboundedReceiver<WorkerEvent>,
    tokio::task::JoinHandle<Result<(), RegistryError>>,
);

/// Maps a store's commit verdict to the pull's error.
fn commit_error(e: StoreError, what: &str) -> RegistryError {
    match e {
        StoreError::DigestMismatch { expected, actual } => RegistryError::DigestMismatch {
            what: what.to_string(),
            expected,
            actual: actual.to_string(),
        },
        StoreError::SizeMismatch { expected, actual, .. } => RegistryError::SizeMismatch {
            what: what.to_string(),
            expected,
            actual,
        },
        e => RegistryError::Store(e),
    }
}

/// Starts the blocking half of a download. Returns None when another writer holds the
/// blob (the caller waits and checks again).
async fn start_writer(store: Arc<dyn ContentStore>, desc: Descriptor, kind: BlobKind) -> Result<Option<WriterHandles>, RegistryError> {
    let (tx, mut rx) = mpsc::channel::<WriterMsg>(CHANNEL_DEPTH);
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let (locked_tx, locked_rx) = oneshot::channel::<bool>();
    let handle = tokio::task::spawn_blocking(move || -> Result<(), RegistryError> {
        let what = format!("layer {}", desc.digest);
        let mut writer = match store.writer(&desc, &kind) {
            Ok(w) => w,
            Err(StoreError::Locked(_)) => {
                let _ = locked_tx.send(true);
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let _ = locked_tx.send(false);
        if writer.offset() > desc.size {
            writer.abort()?;
            writer = store.writer(&desc, &kind)?;
        }
        let _ = ev_tx.send(WorkerEvent::Offset(writer.offset()));
        while let Some(msg) = rx.blocking_recv() {
            match msg {
                WriterMsg::Data(b) => {
                    if let Err(e) = writer.write(&b) {
                        // A full disk: what arrived is dropped, not kept for a resume
                        // (it holds the very space the user must free). Other errors
                        // keep it, as a broken connection does.
                        if matches!(e.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded) {
                            let _ = writer.abort();
                        }
                        return Err(StoreError::Io(e).into());
                    }
                }
                WriterMsg::Abort => {
                    writer.abort()?;
                    return Ok(());
                }
                WriterMsg::Complete => {
                    // The store checks size and digest (and discards bad data).
                    writer.commit().map_err(|e| commit_error(e, &what))?;
                    let _ = ev_tx.send(WorkerEvent::Committed);
                    return Ok(());
                }
            }
        }
        // The download side went away (cancelled or failed): keep the partial data for
        // the next attempt; dropping the writer leaves it unseen.
        Ok(())
    });
    match locked_rx.await {
        Ok(false) => Ok(Some((tx, ev_rx, handle))),
        Ok(true) => Ok(None),
        // The worker failed before deciding: its result says why.
        Err(_) => Err(worker_failure(handle).await),
    }
}

async fn worker_failure(handle: tokio::task::JoinHandle<Result<(), RegistryError>>) -> RegistryError {
    match handle.await {
        Ok(Err(e)) => e,
        Ok(Ok(())) => RegistryError::Store(StoreError::Other("content store writer stopped early".to_string())),
        Err(e) => RegistryError::Store(StoreError::Other(format!("writer task: {e}"))),
    }
}

/// The manifest chain resolved for one platform, with the config fetched.
struct Resolved {
    top_digest: Digest,
    top_media_type: String,
    top_bytes: Vec<u8>,
    /// When the top level is an index: the chosen entry.
    index_child: Option<Descriptor>,
    manifest_bytes: Vec<u8>,
    image: ImageManifest,
    config_bytes: Vec<u8>,
    diff_ids: Vec<Digest>,
}

async fn resolve(
    s: &Session<'_>,
    reference: &Reference,
    platform: &Platform,
) -> Result<Resolved, RegistryError> {
    let top = fetch_manifest(s, reference, &reference.tag_or_digest(), reference.digest()).await?;
    let (index_child, manifest_bytes, image) = match &top.manifest {
        Manifest::Image(m) => (None, top.bytes.clone(), m.clone()),
        Manifest::Index(index) => {
            let entry = manifest::select_platform(index, platform).ok_or_else(|| RegistryError::NoMatchingPlatform {
                platform: platform.to_string(),
            })?;
            let child = fetch_manifest(s, reference, &entry.digest.to_string(), Some(&entry.digest)).await?;
            match child.manifest {
                Manifest::Image(m) => (Some(entry.clone()), child.bytes, m),
                Manifest::Index(_) => {
                    return Err(RegistryError::UnsupportedMediaType {
                        what: format!("platform entry {} of {}", entry.digest, reference.familiar_string()),
                        media_type: child.media_type,
                    });
                }
            }
        }
    };
    if !media::is_image_config(&image.config.media_type) {
        return Err(RegistryError::UnsupportedMediaType {
            what: format!(
                "config of {} (not a container image; an OCI artifact?)",
                reference.familiar_string()
            ),
            media_type: image.config.media_type.clone(),
        });
    }
    if let Some(l) = image.layers.iter().find(|l| !media::is_layer(&l.media_type)) {
        return Err(RegistryError::UnsupportedMediaType {
            what: format!("layer {} of {}", l.digest, reference.familiar_string()),
            media_type: l.media_type.clone(),
        });
    }
    let config_bytes = fetch_config(s, reference, &image.config).await?;
    let diff_ids = parse_diff_ids(&image.config.digest, &config_bytes)?;
    if diff_ids.len() != image.layers.len() {
        return Err(RegistryError::Config {
            digest: image.config.digest.clone(),
            message: format!(
                "{} layers in the manifest but {} diff_ids in the config",
                image.layers.len(),
                diff_ids.len()
            ),
        });
    }
    Ok(Resolved {
        top_digest: top.digest,
        top_media_type: top.media_type,
        top_bytes: top.bytes,
        index_child,
        manifest_bytes,
        image,
        config_bytes,
        diff_ids,
    })
}

pub(crate) async fn fetch_config(s: &Session<'_>, reference: &Reference, desc: &Descriptor) -> Result<Vec<u8>, RegistryError> {
    let what = format!("config {} of {}", desc.digest, reference.familiar_string());
    if desc.size as usize > MAX_CONFIG_SIZE {
        return Err(RegistryError::Config {
            digest: desc.digest.clone(),
            message: format!("{} bytes is larger than the {MAX_CONFIG_SIZE} allowed", desc.size),
        });
    }
    let url = s.ep.url(&format!("v2/{}/blobs/{}", reference.repository(), desc.digest))?;
    let resp = s.send(&what, |http| Ok(http.get(url.clone()))).await?;
    let bytes = read_limited(resp, MAX_CONFIG_SIZE, &s.ep.registry).await?;
    let mut h = Hasher::new(desc.digest.algorithm());
    h.update(&bytes);
    let actual = h.finish();
    if actual != desc.digest {
        return Err(RegistryError::DigestMismatch {
            what,
            expected: desc.digest.clone(),
            actual: actual.to_string(),
        });
    }
    if bytes.len() as u64 != desc.size {
        return Err(RegistryError::SizeMismatch {
            what,
            expected: desc.size,
            actual: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

fn parse_diff_ids(digest: &Digest, config: &[u8]) -> Result<Vec<Digest>, RegistryError> {
    #[derive(serde::Deserialize)]
    struct Config {
        rootfs: RootFs,
    }
    #[derive(serde::Deserialize)]
    struct RootFs {
        #[serde(default)]
        diff_ids: Vec<Digest>,
    }
    let c: Config = serde_json::from_slice(config).map_err(|e| RegistryError::Config {
        digest: digest.clone(),
        message: e.to_string(),
    })?;
    Ok(c.rootfs.diff_ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("bytes 0-0/1"), Some(0));
        assert_eq!(content_range_start("nonsense"), None);
    }

    #[test]
    fn diff_ids_from_config() {
        let d = Digest::sha256_of(b"c");
        let cfg = br#"{"rootfs":{"type":"layers","diff_ids":["sha256:452f786823ef11cd754ee0e1fba9445a348075d2df3ff2f2a42a93c8dca243ec"]}}"#;
        assert_eq!(parse_diff_ids(&d, cfg).unwrap().len(), 1);
        assert!(parse_diff_ids(&d, b"{}").is_err());
        assert!(parse_diff_ids(&d, br#"{"rootfs":{"diff_ids":["md5:x"]}}"#).is_err());
    }
}
