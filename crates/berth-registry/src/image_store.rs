//! berth-image's [`ImageStore`] as a [`ContentStore`]: pulled layers go into its
//! content store through its `LayerWriter`, which unpacks them while they download;
//! configs and manifests go in as plain ingests; pushes read its blobs.
//!
//! ```ignore
//! let content = ImageStoreContent::new(image_store.clone(), Some(&data_root.join("registry/sources")))?;
//! let pulled = client.pull(&reference, &opts, Arc::new(content) /* keep a clone */, &progress).await?;
//! let image_id = content.record_pulled(&pulled)?; // tags + RepoDigests, layers installed
//! ```
//!
//! Everything written during a pull is held by this object's lease, so the image
//! store's garbage collection leaves it alone until [`ImageStoreContent::record_pulled`]
//! points an image at it; dropping the object without recording lets GC reclaim it
//! (interrupted ingests stay, to be resumed).

use std::io;
use std::path::Path;
use std::sync::Arc;

use berth_image::content::{Expected, Writer};
use berth_image::{ImageError, ImageStore, LayerWriter, Lease, NewImage};

use crate::client::{PulledImage, PushedImage};
use crate::digest::Digest;
use crate::manifest::{Descriptor, Manifest};
use crate::store::{BlobKind, BlobReader, BlobSource, BlobWriter, ContentStore, SourceIndex, StoreError};

/// Pull into / push from an [`ImageStore`].
pub struct ImageStoreContent {
    store: Arc<ImageStore>,
    lease: Lease,
    sources: Option<SourceIndex>,
}

impl ImageStoreContent {
    /// `sources_dir` keeps which repositories each blob came from (for cross-repository
    /// mounts on push); None keeps nothing.
    pub fn new(store: Arc<ImageStore>, sources_dir: Option<&Path>) -> io::Result<ImageStoreContent> {
        let lease = store.lease();
        let sources = match sources_dir {
            Some(d) => Some(SourceIndex::open(d)?),
            None => None,
        };
        Ok(ImageStoreContent { store, lease, sources })
    }

    /// The lease holding what this pull wrote.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Records a pulled image in the image store: installs its layers (already
    /// unpacked while downloading), tags it with the reference pulled (when it names a
    /// tag) and records its RepoDigest. Returns the image ID.
    pub fn record_pulled(&self, pulled: &PulledImage) -> Result<berth_image::Digest, ImageError> {
        let layers = pulled
            .layers
            .iter()
            .map(to_image_desc)
            .collect::<Result<Vec<_>, _>>()?;
        let repo = pulled.reference.repository_only();
        let tags = match pulled.reference.tag() {
            Some(t) => vec![berth_image::Reference::parse(&repo.with_tag(t).map_err(|e| ImageError::InvalidArgument(e.to_string()))?.to_string())?],
            None => Vec::new(),
        };
        let repo_digest = berth_image::Reference::parse(&repo.with_digest(pulled.digest.clone()).to_string())?;
        // One platform of a multi-platform index: kept beside the others pulled.
        let variant = if matches!(pulled.media_type.as_str(), crate::manifest::media::OCI_INDEX | crate::manifest::media::DOCKER_MANIFEST_LIST) {
            let cfg = berth_image::config::ImageConfig::parse(&pulled.config_bytes)?;
            let platform = crate::manifest::Platform::new(if cfg.os.is_empty() { "linux" } else { &cfg.os }, &cfg.architecture, Some(cfg.variant.as_str()).filter(|v| !v.is_empty())).normalised();
            Some(berth_image::Variant {
                index: to_image_digest(&pulled.digest)?,
                platform: platform.to_string(),
                host: crate::manifest::Platform::host().to_string(),
            })
        } else {
            None
        };
        let (id, _) = self.store.record_image_variant(
            &self.lease,
            NewImage {
                config: &pulled.config_bytes,
                manifest: Some((&pulled.manifest_bytes, &pulled.manifest.media_type)),
                layers,
                tags,
                repo_digests: vec![repo_digest],
                parent: None,
            },
            variant.as_ref(),
        )?;
        Ok(id)
    }
}

impl ImageStoreContent {
    /// The manifest to push for image `image` (an image ID). An image made here
    /// (import, commit, docker-archive load) has none until this call makes it: its
    /// layers are gzipped into the image store and a Docker schema2 manifest is
    /// recorded on it (see [`ImageStore::ensure_manifest`]); later calls, and pulled
    /// images, get the recorded one back.
    pub fn manifest_for_push(&self, image: &berth_image::Digest) -> Result<Descriptor, ImageError> {
        let m = self.store.ensure_manifest(image)?;
        let digest: Digest = m
            .digest
            .to_string()
            .parse()
            .map_err(|e| ImageError::System(format!("manifest digest {}: {e}", m.digest)))?;
        Ok(Descriptor::new(&m.media_type, digest, m.size))
    }

    /// Records the RepoDigest (`repo@sha256:...`) a push of `manifest` produced on the
    /// local image, as Docker does after `docker push`. Returns the image ID. An index
    /// push records nothing (the local image is one of its platforms).
    pub fn record_pushed(&self, pushed: &PushedImage, manifest: &Descriptor) -> Result<Option<berth_image::Digest>, ImageError> {
        let bytes = self
            .store
            .content()
            .read_blob(&to_image_digest(&manifest.digest)?, crate::manifest::MAX_MANIFEST_SIZE as u64)?;
        let m = match crate::manifest::parse(Some(&manifest.media_type), &bytes) {
            Ok((_, Manifest::Image(m))) => m,
            Ok((_, Manifest::Index(_))) => return Ok(None),
            Err(e) => return Err(ImageError::InvalidManifest(e.to_string())),
        };
        let config = self.store.content().read_blob(&to_image_digest(&m.config.digest)?, 64 << 20)?;
        let layers = m.layers.iter().map(to_image_desc).collect::<Result<Vec<_>, _>>()?;
        let repo_digest = berth_image::Reference::parse(&pushed.reference.repository_only().with_digest(pushed.digest.clone()).to_string())?;
        let (id, _) = self.store.record_image(
            &self.lease,
            NewImage {
                config: &config,
                manifest: Some((&bytes, &manifest.media_type)),
                layers,
                tags: Vec::new(),
                repo_digests: vec![repo_digest],
                parent: None,
            },
        )?;
        Ok(Some(id))
    }
}

fn to_image_digest(d: &Digest) -> Result<berth_image::Digest, ImageError> {
    berth_image::Digest::parse(&d.to_string())
}

fn to_image_desc(d: &Descriptor) -> Result<berth_image::Descriptor, ImageError> {
    Ok(berth_image::Descriptor {
        media_type: d.media_type.clone(),
        digest: to_image_digest(&d.digest)?,
        size: d.size,
    })
}

/// The ingest ref of a pulled blob: stable, so an interrupted pull resumes it.
fn ingest_ref(d: &Digest) -> String {
    format!("pull-{d}")
}

fn store_error(e: ImageError, digest: &Digest) -> StoreError {
    match e {
        ImageError::IngestLocked(_) => StoreError::Locked(digest.clone()),
        ImageError::DigestMismatch { expected, actual, what } => match (expected.parse(), actual.parse()) {
            (Ok(expected), Ok(actual)) => StoreError::DigestMismatch { expected, actual },
            _ => StoreError::Other(format!("digest mismatch for {what}: expected {expected}, got {actual}")),
        },
        ImageError::SizeMismatch { expected, actual, .. } => StoreError::SizeMismatch {
            digest: digest.clone(),
            expected,
            actual,
        },
        ImageError::BlobNotFound(_) => StoreError::NotFound(digest.clone()),
        e => StoreError::Other(e.to_string()),
    }
}

impl ContentStore for ImageStoreContent {
    fn contains(&self, desc: &Descriptor, _kind: &BlobKind) -> Result<bool, StoreError> {
        let d = to_image_digest(&desc.digest).map_err(|e| store_error(e, &desc.digest))?;
        // A present blob is enough for a layer too: recording the image unpacks it if
        // its layer is not installed.
        if self.store.content().exists(&d) {
            self.lease.protect_blob(&d);
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn writer(&self, desc: &Descriptor, kind: &BlobKind) -> Result<Box<dyn BlobWriter + '_>, StoreError> {
        let err = |e| store_error(e, &desc.digest);
        let r = ingest_ref(&desc.digest);
        match kind {
            BlobKind::Layer { diff_id } => {
                let diff = match diff_id {
                    Some(d) => Some(to_image_digest(d).map_err(err)?),
                    None => None,
                };
                let image_desc = to_image_desc(desc).map_err(err)?;
                let w = self.store.layer_writer(&self.lease, &r, &image_desc, diff).map_err(err)?;
                Ok(Box::new(LayerSink {
                    w: Some(w),
                    digest: desc.digest.clone(),
                    ingest: r,
                    store: &self.store,
                }))
            }
            BlobKind::Config | BlobKind::Manifest => {
                let expected = Expected {
                    digest: to_image_digest(&desc.digest).map_err(err)?,
                    size: Some(desc.size),
                };
                let w = self.store.writer(&self.lease, &r, expected).map_err(err)?;
                Ok(Box::new(BlobSink {
                    w,
                    digest: desc.digest.clone(),
                    ingest: r,
                    store: &self.store,
                }))
            }
        }
    }

    fn reader(&self, digest: &Digest) -> Result<Box<dyn BlobReader>, StoreError> {
        let d = to_image_digest(digest).map_err(|e| store_error(e, digest))?;
        match self.store.content().open_blob(&d) {
            Ok(f) => Ok(Box::new(f)),
            Err(e) => Err(match e {
                ImageError::BlobNotFound(_) => StoreError::NotFound(digest.clone()),
                e if !self.store.content().exists(&d) => {
                    tracing::debug!("open blob {digest}: {e}");
                    StoreError::NotFound(digest.clone())
                }
                e => store_error(e, digest),
            }),
        }
    }

    fn record_source(&self, digest: &Digest, source: &BlobSource) -> Result<(), StoreError> {
        match &self.sources {
            Some(s) => s.record(digest, source),
            None => Ok(()),
        }
    }

    fn sources(&self, digest: &Digest) -> Vec<BlobSource> {
        self.sources.as_ref().map(|s| s.list(digest)).unwrap_or_default()
    }
}

/// A layer: written through berth-image's LayerWriter, unpacking as it goes.
struct LayerSink<'l> {
    w: Option<LayerWriter<'l>>,
    digest: Digest,
    ingest: String,
    store: &'l ImageStore,
}

impl BlobWriter for LayerSink<'_> {
    fn offset(&self) -> u64 {
        self.w.as_ref().map(|w| w.offset()).unwrap_or(0)
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        use std::io::Write;
        match self.w.as_mut() {
            Some(w) => w.write_all(data),
            None => Err(io::Error::other("layer writer already finished")),
        }
    }

    fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        let w = self
            .w
            .take()
            .ok_or_else(|| StoreError::Other("layer writer already finished".into()))?;
        // Commits the blob (size and digest checked), waits for the unpack and checks
        // the DiffID; the unpacked layer waits in the lease for record_pulled.
        w.finish().map(|_| ()).map_err(|e| store_error(e, &self.digest))
    }

    fn abort(mut self: Box<Self>) -> Result<(), StoreError> {
        // Dropping the writer stops the unpack; aborting the ingest drops the bytes.
        drop(self.w.take());
        self.store
            .content()
            .abort(&self.ingest)
            .map_err(|e| store_error(e, &self.digest))
    }
}

/// A config or manifest: a plain content-store ingest.
struct BlobSink<'s> {
    w: Writer,
    digest: Digest,
    ingest: String,
    store: &'s ImageStore,
}

impl BlobWriter for BlobSink<'_> {
    fn offset(&self) -> u64 {
        self.w.offset()
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        use std::io::Write;
        self.w.write_all(data)
    }

    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        let digest = self.digest.clone();
        self.w.commit(None, None).map(|_| ()).map_err(|e| store_error(e, &digest))
    }

    fn abort(self: Box<Self>) -> Result<(), StoreError> {
        let BlobSink { w, digest, ingest, store } = *self;
        drop(w);
        store.content().abort(&ingest).map_err(|e| store_error(e, &digest))
    }
}
