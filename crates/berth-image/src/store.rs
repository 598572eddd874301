//! [`ImageStore`]: the facade the engine holds, one per data root. It ties the
//! content store, the layer store and the metadata together, and implements Docker's
//! rules for names, tags, deletion, pruning and disk usage. Archive formats,
//! snapshots and import live in their own modules as further `impl ImageStore` blocks.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::config::{self, ImageConfig};
use crate::content::{ContentStore, Expected, Writer};
use crate::digest::{self, Digest};
use crate::error::{ImageError, IoContext, Result};
use crate::fsutil;
use crate::ingest::{LayerWriter, UnpackContext};
use crate::layer::{LayerStore, StagedLayer, UnpackLimit};
use crate::lease::{Lease, LeaseTable};
use crate::manifest::{self, Descriptor, ManifestDoc};
use crate::meta::{ImageEntry, ImageRecord, LayerRef, MAX_METADATA_BLOB, Meta};
use crate::mount::{KernelMounter, Mounter};
use crate::pool::WorkerPool;
use crate::reference::{self, Reference};
use crate::types::*;

/// How a store is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// How far a layer may expand while unpacking. `None`: keep a safety margin of
    /// free disk (5% of the filesystem, at least 1 GiB, at most 20 GiB).
    pub unpack_limit: Option<UnpackLimit>,
    /// syncfs before an image or snapshot record is written, so blobs and layers it
    /// refers to survive a power loss (one flush per image, not an fsync per file).
    /// Off by default, as in Docker (dockerd does not sync unpacked layers): metadata is
    /// always fsynced, process crashes never lose anything, and after a power loss
    /// `open` drops images whose data did not reach the disk.
    pub durable_layers: bool,
    /// Written as `docker_version` into the configs berth creates (import, commit).
    pub docker_version: String,
    /// Unpack worker threads; 0 means one per CPU.
    pub unpack_threads: usize,
    /// Mounts and unmounts overlays (the kernel unless a test says otherwise).
    pub mounter: Arc<dyn Mounter>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            unpack_limit: None,
            durable_layers: false,
            docker_version: format!("berth-{}", env!("CARGO_PKG_VERSION")),
            unpack_threads: 0,
            mounter: Arc::new(KernelMounter),
        }
    }
}

/// The images, layers and blobs of one data root. `Send + Sync`: share it behind an
/// `Arc`; every method is safe to call from many threads at once.
#[derive(Debug)]
pub struct ImageStore {
    pub(crate) root: PathBuf,
    pub(crate) content: Arc<ContentStore>,
    pub(crate) layers: Arc<LayerStore>,
    pub(crate) meta: Mutex<Meta>,
    pub(crate) leases: Arc<Mutex<LeaseTable>>,
    pub(crate) pool: Arc<WorkerPool>,
    pub(crate) limit: UnpackLimit,
    pub(crate) docker_version: String,
    pub(crate) mounter: Arc<dyn Mounter>,
    /// Garbage collection takes it exclusively; making new content visible and
    /// leasing it (or checking and leasing existing content) takes it shared.
    pub(crate) gc_lock: Arc<RwLock<()>>,
    /// Where discarded snapshots (and, through [`ImageStore::trash`], the engine's
    /// container directories) wait for deletion.
    pub(crate) trash: Arc<fsutil::Trash>,
    _lock: File,
}

/// What an image record is made from (see [`ImageStore::record_image`]).
#[derive(Debug, Clone, Default)]
pub struct NewImage<'a> {
    /// The config blob, byte for byte (its digest is the image ID).
    pub config: &'a [u8],
    /// The manifest it came with and its media type, if any (kept for push/save).
    pub manifest: Option<(&'a [u8], &'a str)>,
    /// One blob descriptor per layer, bottom first (compressed or not).
    pub layers: Vec<Descriptor>,
    /// Tags to point at the image.
    pub tags: Vec<Reference>,
    /// Repository digest references (`name@sha256:<manifest>`) to record.
    pub repo_digests: Vec<Reference>,
    /// The image it was committed from.
    pub parent: Option<Digest>,
}

/// One platform of a multi-platform index, recorded beside the others pulled under
/// the same reference (see [`crate::meta::PlatformSet`]).
#[derive(Debug, Clone)]
pub struct Variant {
    /// The index's digest.
    pub index: Digest,
    /// This image's platform, `os/arch[/variant]`.
    pub platform: String,
    /// The host's platform: the reference points at that image when it is kept.
    pub host: String,
}

/// Default free-space margin when the daemon sets none.
fn default_margin(path: &Path) -> u64 {
    match rustix::fs::statvfs(path) {
        Ok(st) => {
            let total = st.f_blocks.saturating_mul(st.f_frsize);
            // 1% of the filesystem, 256 MiB to 2 GiB: enough to stop a bomb before the
            // disk is full without refusing ordinary layers on a disk that is merely busy.
            (total / 100).clamp(256 << 20, 2 << 30)
        }
        Err(_) => 1 << 30,
    }
}

pub(crate) fn now_string() -> String {
    config::format_time(&chrono::Utc::now())
}

impl ImageStore {
    /// Opens the store under `data_root` (`content/`, `layers/`, `image/`), taking an
    /// exclusive lock (one store per data root), cleaning what a crash left behind
    /// (partial anonymous ingests, half-unpacked layers, dangling references) and
    /// collecting garbage. Named ingests stay, to be resumed.
    pub fn open(data_root: &Path, opts: StoreOptions) -> Result<ImageStore> {
        fsutil::ensure_dir(data_root)?;
        let lock_path = data_root.join("image.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .ctx("open", &lock_path)?;
        match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(ImageError::Conflict(format!(
                    "the image store in {} is in use by another process",
                    data_root.display()
                )));
            }
            Err(e) => return Err(ImageError::io_path("lock", &lock_path, e.into())),
        }
        let content = Arc::new(ContentStore::open(&data_root.join("content"))?);
        let layers = Arc::new(LayerStore::open(&data_root.join("layers"), opts.durable_layers)?);
        let meta = Meta::load(&data_root.join("image"), &content)?;
        crate::snapshot::ensure_shared_init_layers(&data_root.join(crate::snapshot::SHARED_INIT_DIR))?;
        let threads = if opts.unpack_threads == 0 {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
        } else {
            opts.unpack_threads
        };
        let limit = opts
            .unpack_limit
            .clone()
            .unwrap_or_else(|| UnpackLimit::keep_free(default_margin(data_root)));
        let store = ImageStore {
            root: data_root.to_path_buf(),
            content,
            layers,
            meta: Mutex::new(meta),
            leases: Arc::new(Mutex::new(LeaseTable::default())),
            pool: Arc::new(WorkerPool::new(threads)),
            limit,
            docker_version: opts.docker_version,
            mounter: opts.mounter,
            gc_lock: Arc::new(RwLock::new(())),
            trash: Arc::new(fsutil::Trash::open(&data_root.join("trash"))?),
            _lock: lock,
        };
        {
            let mut meta = store.lock_meta();
            store.drop_incomplete_images(&mut meta)?;
            // References whose image vanished were dropped by Meta::load; persist that.
            meta.save_refs()?;
            store.gc_locked(&mut meta)?;
        }
        Ok(store)
    }

    /// Drops image records whose blobs or layers are missing (possible only after a
    /// power loss without `durable_layers`): the store then holds only complete images.
    fn drop_incomplete_images(&self, meta: &mut Meta) -> Result<()> {
        let broken: Vec<Digest> = meta
            .images
            .values()
            .filter(|e| {
                e.record.layers.iter().any(|l| {
                    !self.layers.exists(&l.chain_id) || !self.content.exists(&l.blob.digest)
                })
            })
            .map(|e| e.record.id.clone())
            .collect();
        for id in broken {
            tracing::warn!(%id, "dropping an image whose layers did not survive a crash");
            meta.images.remove(&id);
            meta.refs.retain(|_, (_, i)| *i != id);
            meta.delete_image_file(&id)?;
        }
        Ok(())
    }

    pub fn data_root(&self) -> &Path {
        &self.root
    }

    /// The content store (blobs by digest, ingests).
    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    /// The layer store.
    pub fn layers(&self) -> &LayerStore {
        &self.layers
    }

    /// The unpack limit in force.
    pub fn unpack_limit(&self) -> &UnpackLimit {
        &self.limit
    }

    pub(crate) fn lock_meta(&self) -> MutexGuard<'_, Meta> {
        self.meta.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a lease: what is written under it survives garbage collection until the
    /// lease is dropped.
    pub fn lease(&self) -> Lease {
        Lease::new(&self.leases)
    }

    /// Opens (or resumes) a content ingest for a blob whose digest is known; the blob
    /// is protected by `lease` once committed.
    pub fn writer(&self, lease: &Lease, ingest_ref: &str, expected: Expected) -> Result<Writer> {
        lease.protect_blob(&expected.digest);
        self.content.writer(ingest_ref, Some(expected))
    }

    /// Opens (or resumes) an ingest for a layer blob and unpacks it while it is
    /// written (see [`LayerWriter`]). `diff_id`, when known (from the config), is
    /// checked after the unpack.
    pub fn layer_writer<'l>(
        &self,
        lease: &'l Lease,
        ingest_ref: &str,
        blob: &Descriptor,
        diff_id: Option<Digest>,
    ) -> Result<LayerWriter<'l>> {
        manifest::layer_compression(&blob.media_type)?;
        let w = self
            .content
            .writer(ingest_ref, Some(Expected::from(blob.clone())))?;
        LayerWriter::start(w, lease, Some(blob.clone()), diff_id, self.unpack_context())
    }

    fn unpack_context(&self) -> UnpackContext {
        UnpackContext {
            layers: Arc::clone(&self.layers),
            pool: Arc::clone(&self.pool),
            limit: self.limit.clone(),
            gc_lock: Arc::clone(&self.gc_lock),
        }
    }

    /// A layer writer for a blob whose digest is not known in advance (load, import).
    pub(crate) fn anonymous_layer_writer<'l>(&self, lease: &'l Lease) -> Result<LayerWriter<'l>> {
        let w = self.content.anonymous_writer()?;
        LayerWriter::start(w, lease, None, None, self.unpack_context())
    }

    /// Stores a small blob (config, manifest) under `lease`.
    pub(crate) fn put_blob(&self, lease: &Lease, data: &[u8]) -> Result<Digest> {
        let d = Digest::of(data);
        let _visible = self.gc_lock.read().unwrap_or_else(|p| p.into_inner());
        lease.protect_blob(&d);
        let c = self.content.write_blob(data)?;
        if !c.already_existed {
            lease.created_blob(&c.digest);
        }
        Ok(c.digest)
    }

    /// Records an image whose config and layer blobs are in the content store:
    /// installs its layers (from what the lease unpacked, else unpacking the stored
    /// blobs, in parallel), writes the image record and points the tags at it.
    /// Returns the image ID and the tags it took from other images.
    pub fn record_image(&self, lease: &Lease, img: NewImage<'_>) -> Result<(Digest, Vec<LoadEvent>)> {
        self.record_image_variant(lease, img, None)
    }

    /// [`record_image`](Self::record_image) for one platform of a multi-platform
    /// index: the image joins the platforms already kept under its references (from
    /// the same index; another index replaces them), and each reference points at
    /// the host's platform when it is among them.
    pub fn record_image_variant(&self, lease: &Lease, img: NewImage<'_>, variant: Option<&Variant>) -> Result<(Digest, Vec<LoadEvent>)> {
        let config = ImageConfig::parse(img.config)?;
        let diff_ids = config.rootfs.diff_ids.clone();
        if diff_ids.len() != img.layers.len() {
            return Err(ImageError::InvalidManifest(format!(
                "the manifest lists {} layers but the config has {} DiffIDs",
                img.layers.len(),
                diff_ids.len()
            )));
        }
        let id = self.put_blob(lease, img.config)?;
        let manifest_desc = match img.manifest {
            Some((bytes, media_type)) => {
                let d = self.put_blob(lease, bytes)?;
                Some(Descriptor {
                    media_type: media_type.to_owned(),
                    digest: d,
                    size: bytes.len() as u64,
                })
            }
            None => None,
        };
        let chains = digest::chain_ids(&diff_ids);
        {
            // Lease first, then look: a collection cannot run in between.
            let _visible = self.gc_lock.read().unwrap_or_else(|p| p.into_inner());
            for (blob, chain) in img.layers.iter().zip(&chains) {
                lease.protect_blob(&blob.digest);
                lease.protect_layer(chain);
                if !self.content.exists(&blob.digest) {
                    return Err(ImageError::BlobNotFound(format!(
                        "{} (layer {} of the image)",
                        blob.digest, chain
                    )));
                }
            }
        }
        // Which DiffID each blob unpacks to, where already known (this operation
        // unpacked it, or an image on record uses it): a blob known to unpack to
        // something else is refused; an unknown one is unpacked to check it.
        let recorded: HashMap<Digest, Digest> = {
            let meta = self.lock_meta();
            meta.images
                .values()
                .flat_map(|e| e.record.layers.iter())
                .map(|l| (l.blob.digest.clone(), l.diff_id.clone()))
                .collect()
        };
        // Unpack, in parallel, the layers neither installed nor already unpacked.
        let mut staged: Vec<Option<StagedLayer>> = (0..diff_ids.len()).map(|_| None).collect();
        let mut jobs = Vec::new();
        for (i, blob) in img.layers.iter().enumerate() {
            let known = lease
                .blob_diff_id(&blob.digest)
                .or_else(|| recorded.get(&blob.digest).cloned());
            match &known {
                Some(d) if *d != diff_ids[i] => {
                    return Err(ImageError::DigestMismatch {
                        what: format!("layer {i} (blob {})", blob.digest),
                        expected: diff_ids[i].to_string(),
                        actual: d.to_string(),
                    });
                }
                Some(_) if self.layers.exists(&chains[i]) => continue,
                Some(_) => {
                    if let Some(s) = lease.take_staged(&diff_ids[i]) {
                        staged[i] = Some(s);
                        continue;
                    }
                }
                None => {}
            }
            let f = self.content.open_blob(&blob.digest)?;
            let layers = Arc::clone(&self.layers);
            let limit = self.limit.clone();
            jobs.push((
                i,
                self.pool.spawn(move || layers.unpack(io::BufReader::with_capacity(1 << 20, f), &limit)),
            ));
        }
        for (i, job) in jobs {
            let s = job.wait()??;
            if *s.diff_id() != diff_ids[i] {
                return Err(ImageError::DigestMismatch {
                    what: format!("layer {} (blob {})", i, img.layers[i].digest),
                    expected: diff_ids[i].to_string(),
                    actual: s.diff_id().to_string(),
                });
            }
            lease.record_blob_diff_id(&img.layers[i].digest, s.diff_id());
            if !self.layers.exists(&chains[i]) {
                staged[i] = Some(s);
            }
        }
        let mut layer_refs = Vec::with_capacity(diff_ids.len());
        for (i, blob) in img.layers.iter().enumerate() {
            let chain = &chains[i];
            if !self.layers.exists(chain) {
                let s = staged[i].take().ok_or_else(|| {
                    ImageError::System(format!("layer {} was not unpacked", diff_ids[i]))
                })?;
                let parent = if i == 0 { None } else { Some(&chains[i - 1]) };
                let info = self.layers.install(s, parent)?;
                if info.chain_id != *chain {
                    return Err(ImageError::System(format!(
                        "layer installed as {} instead of {chain}",
                        info.chain_id
                    )));
                }
                lease.created_layer(&info.chain_id);
            }
            layer_refs.push(LayerRef {
                diff_id: diff_ids[i].clone(),
                chain_id: chain.clone(),
                blob: blob.clone(),
            });
        }

        // The durability point: every blob and layer above hits the disk before a
        // record refers to it (one syncfs instead of an fsync per file).
        self.sync_data()?;
        let mut meta = self.lock_meta();
        let mut record = match meta.images.get(&id) {
            Some(existing) => existing.record.clone(),
            None => ImageRecord {
                id: id.clone(),
                layers: layer_refs.clone(),
                manifest: None,
                parent: img.parent.clone(),
                added: now_string(),
                last_tag_time: None,
            },
        };
        if record.manifest.is_none() {
            record.manifest = manifest_desc;
        }
        if record.parent.is_none() {
            record.parent = img.parent.clone();
        }
        if !img.tags.is_empty() {
            record.last_tag_time = Some(now_string());
        }
        meta.save_image(&record)?;
        meta.images.insert(
            id.clone(),
            ImageEntry {
                record,
                config,
                config_size: img.config.len() as u64,
            },
        );
        let mut events = Vec::new();
        for t in img.tags.iter().chain(img.repo_digests.iter()) {
            let target = match variant {
                None => id.clone(),
                Some(v) => {
                    let set = meta.variants.entry(t.to_string()).or_default();
                    if set.index.as_ref() != Some(&v.index) {
                        set.images.clear();
                        set.index = Some(v.index.clone());
                    }
                    set.images.insert(v.platform.clone(), id.clone());
                    set.images.get(&v.host).cloned().unwrap_or_else(|| id.clone())
                }
            };
            if let Some(old) = set_ref(&mut meta, t, &target)
                && t.tag().is_some() {
                    events.push(LoadEvent::TagMoved {
                        tag: t.familiar(),
                        old_id: old,
                    });
                }
        }
        meta.save_refs()?;
        Ok((id, events))
    }

    /// Flushes blobs and layers to disk (see [`StoreOptions::durable_layers`]).
    pub(crate) fn sync_data(&self) -> Result<()> {
        self.layers.sync()?;
        if self.layers.durable() && !same_fs(self.layers.root(), self.content.root()) {
            fsutil::syncfs(self.content.root())?;
        }
        Ok(())
    }

    /// Removes what a failed operation created and nothing else refers to.
    pub(crate) fn rollback(&self, lease: &Lease) {
        let (blobs, layers) = lease.created();
        let meta = self.lock_meta();
        let (used_blobs, used_layers) = referenced(&meta);
        let (other_blobs, other_layers) = {
            let t = self.leases.lock().unwrap_or_else(|p| p.into_inner());
            let mut b = HashSet::new();
            let mut l = HashSet::new();
            for (id, e) in &t.entries {
                if *id != lease.id() {
                    b.extend(e.blobs.iter().cloned());
                    l.extend(e.layers.iter().cloned());
                }
            }
            (b, l)
        };
        for l in layers {
            if !used_layers.contains(&l) && !other_layers.contains(&l) {
                let _ = self.layers.remove(&l);
            }
        }
        for b in blobs {
            if !used_blobs.contains(&b) && !other_blobs.contains(&b) {
                let _ = self.content.delete(&b);
            }
        }
    }

    /// Runs `f` under a fresh lease; on error, removes what it created.
    pub(crate) fn with_lease<T>(&self, f: impl FnOnce(&Lease) -> Result<T>) -> Result<T> {
        let lease = self.lease();
        let r = f(&lease);
        if r.is_err() {
            self.rollback(&lease);
        }
        r
    }

    // ---------------------------------------------------------------- lookups

    /// Resolves a reference (`busybox`, `busybox:1`, `name@sha256:...`), a full ID
    /// (`sha256:<hex>` or `<hex>`) or a unique ID prefix to an image ID.
    pub fn resolve(&self, name: &str) -> Result<Digest> {
        resolve_in(&self.lock_meta(), name)
    }

    /// Resolves `name` for platform `platform` (`os/arch[/variant]`, normalised): the
    /// platform's image when a multi-platform image keeps it under that reference,
    /// else what [`resolve`](Self::resolve) gives (the caller checks its platform).
    pub fn resolve_platform(&self, name: &str, platform: &str) -> Result<Digest> {
        let meta = self.lock_meta();
        let id = resolve_in(&meta, name)?;
        if let Ok(r) = Reference::parse_tagged(name) {
            let key = r.to_string();
            if let Some(v) = meta.variant(&key, platform) {
                return Ok(v);
            }
            // arm64 without a variant matches arm64/v8, and the like.
            if let Some(set) = meta.variants.get(&key)
                && let Some((_, v)) = set.images.iter().find(|(p, _)| platform_matches(platform, p))
            {
                return Ok(v.clone());
            }
        }
        Ok(id)
    }

    /// The platforms kept under reference `name` (empty for a single-platform image).
    pub fn platforms(&self, name: &str) -> Vec<(String, Digest)> {
        let meta = self.lock_meta();
        match Reference::parse_tagged(name) {
            Ok(r) => meta.variants.get(&r.to_string()).map(|s| s.images.iter().map(|(p, d)| (p.clone(), d.clone())).collect()).unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    /// The parsed config of an image.
    pub fn config(&self, name: &str) -> Result<ImageConfig> {
        let meta = self.lock_meta();
        let id = resolve_in(&meta, name)?;
        Ok(meta.images[&id].config.clone())
    }

    /// The raw config bytes of an image (its ID is their digest).
    pub fn config_bytes(&self, id: &Digest) -> Result<Vec<u8>> {
        self.content.read_blob(id, MAX_METADATA_BLOB)
    }

    /// The stored record of an image (layers with their blobs, manifest, parent).
    pub fn record(&self, name: &str) -> Result<ImageRecord> {
        let meta = self.lock_meta();
        let id = resolve_in(&meta, name)?;
        Ok(meta.images[&id].record.clone())
    }

    /// Tags and digests pointing at an image.
    pub fn references(&self, id: &Digest) -> Vec<Reference> {
        self.lock_meta().refs_of(id)
    }

    /// Every image, newest first (as `docker images` sorts).
    pub fn list(&self) -> Result<Vec<ImageSummary>> {
        let meta = self.lock_meta();
        // One row per reference: the other platforms of a multi-platform image are
        // kept but not listed (as Docker lists an index once).
        let mut out: Vec<ImageSummary> = meta
            .images
            .values()
            .filter(|e| !(meta.refs_of(&e.record.id).is_empty() && !meta.variant_refs_of(&e.record.id).is_empty()))
            .map(|e| self.summary(&meta, e))
            .collect::<Result<_>>()?;
        out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    pub(crate) fn image_size(&self, e: &ImageEntry) -> Result<u64> {
        let mut total = 0;
        for l in &e.record.layers {
            total += self.layers.get(&l.chain_id)?.size;
        }
        Ok(total)
    }

    fn summary(&self, meta: &Meta, e: &ImageEntry) -> Result<ImageSummary> {
        let refs = meta.refs_of(&e.record.id);
        Ok(ImageSummary {
            id: e.record.id.clone(),
            parent_id: e.record.parent.clone(),
            repo_tags: refs.iter().filter(|r| r.tag().is_some() && r.digest().is_none()).map(Reference::familiar).collect(),
            repo_digests: refs.iter().filter(|r| r.digest().is_some()).map(Reference::familiar).collect(),
            created: e.config.created_time().map(|t| t.timestamp()).unwrap_or(0),
            size: self.image_size(e)?,
            labels: e
                .config
                .config
                .as_ref()
                .and_then(|c| c.labels.clone())
                .unwrap_or_default(),
        })
    }

    /// `docker image inspect`.
    pub fn inspect(&self, name: &str) -> Result<ImageInspect> {
        let meta = self.lock_meta();
        let id = resolve_in(&meta, name)?;
        let e = &meta.images[&id];
        let mut s = self.summary(&meta, e)?;
        for r in meta.variant_refs_of(&id) {
            let name = r.familiar();
            let list = if r.digest().is_some() { &mut s.repo_digests } else { &mut s.repo_tags };
            if !list.contains(&name) {
                list.push(name);
            }
        }
        let c = &e.config;
        let mut data = BTreeMap::new();
        let dirs: Vec<String> = e
            .record
            .layers
            .iter()
            .rev()
            .map(|l| self.layers.diff_dir(&l.chain_id).display().to_string())
            .collect();
        if let Some((top, rest)) = dirs.split_first() {
            data.insert("UpperDir".to_string(), top.clone());
            if !rest.is_empty() {
                data.insert("LowerDir".to_string(), rest.join(":"));
            }
        }
        Ok(ImageInspect {
            id: id.to_string(),
            repo_tags: s.repo_tags,
            repo_digests: s.repo_digests,
            parent: e.record.parent.as_ref().map(|p| p.to_string()).unwrap_or_default(),
            comment: c.comment.clone(),
            created: c.created.clone().unwrap_or_default(),
            container: c.container.clone(),
            container_config: c.container_config.clone().unwrap_or_default(),
            docker_version: c.docker_version.clone(),
            author: c.author.clone(),
            config: c.config.clone().unwrap_or_default(),
            architecture: c.architecture.clone(),
            variant: c.variant.clone(),
            os: c.os.clone(),
            os_version: c.os_version.clone(),
            size: s.size,
            virtual_size: s.size,
            graph_driver: GraphDriver {
                data,
                name: "overlay2".into(),
            },
            root_fs: InspectRootFs {
                kind: c.rootfs.kind.clone(),
                layers: c.rootfs.diff_ids.iter().map(|d| d.to_string()).collect(),
            },
            metadata: InspectMetadata {
                last_tag_time: e.record.last_tag_time.clone(),
            },
        })
    }

    /// `docker history`: newest first; the entries that are local images (the image
    /// itself and the parents it was committed from) carry their ID and tags.
    pub fn history(&self, name: &str) -> Result<Vec<HistoryItem>> {
        let meta = self.lock_meta();
        let id = resolve_in(&meta, name)?;
        let e = &meta.images[&id];
        let mut items = Vec::new();
        let mut layer = 0usize;
        for h in &e.config.history {
            let mut size = 0;
            if !h.empty_layer {
                let l = e.record.layers.get(layer).ok_or_else(|| {
                    ImageError::InvalidConfig("too many non-empty layers in History section".into())
                })?;
                size = self.layers.get(&l.chain_id)?.size;
                layer += 1;
            }
            items.push(HistoryItem {
                id: "<missing>".into(),
                created: h
                    .created
                    .as_deref()
                    .and_then(config::parse_time)
                    .map(|t| t.timestamp())
                    .unwrap_or(0),
                created_by: h.created_by.clone(),
                tags: Vec::new(),
                size,
                comment: h.comment.clone(),
            });
        }
        items.reverse();
        let mut cur = Some(id);
        for item in items.iter_mut() {
            let Some(img) = cur.take() else { break };
            item.id = img.to_string();
            item.tags = meta
                .refs_of(&img)
                .iter()
                .filter(|r| r.tag().is_some() && r.digest().is_none())
                .map(Reference::familiar)
                .collect();
            cur = meta
                .images
                .get(&img)
                .and_then(|e| e.record.parent.clone())
                .filter(|p| meta.images.contains_key(p));
        }
        Ok(items)
    }

    // ---------------------------------------------------------------- tags

    /// `docker tag SOURCE TARGET`.
    pub fn tag(&self, source: &str, target: &str) -> Result<()> {
        let mut meta = self.lock_meta();
        let id = resolve_in(&meta, source)?;
        let r = Reference::parse_tagged(target)?;
        if r.digest().is_some() {
            return Err(ImageError::InvalidArgument(
                "refusing to create a tag with a digest reference".into(),
            ));
        }
        // Re-tagging the same image (a cached rebuild) leaves the references file alone.
        let same = meta.refs.get(&r.to_string()).is_some_and(|(_, old)| *old == id);
        if !same {
            set_ref(&mut meta, &r, &id);
            meta.save_refs()?;
        }
        if let Some(e) = meta.images.get_mut(&id) {
            e.record.last_tag_time = Some(now_string());
            let rec = e.record.clone();
            meta.save_image(&rec)?;
        }
        Ok(())
    }

    // ---------------------------------------------------------------- removal

    /// `docker rmi`: untags or deletes following Docker's rules (a name removes that
    /// reference and deletes the image only with its last reference; an ID deletes
    /// the image with all its references when they are in one repository; images
    /// used by containers or with child images are refused unless `force` allows).
    /// `prune_parents`: also delete untagged parents left unused (Docker's default).
    pub fn remove(
        &self,
        name: &str,
        force: bool,
        prune_parents: bool,
        users: &ImageUsers,
    ) -> Result<Vec<DeleteItem>> {
        let mut meta = self.lock_meta();
        let users = self.merge_snapshot_users(&meta, users);
        let id = resolve_in(&meta, name)?;
        let mut items = Vec::new();
        let mut orphans: Vec<Digest> = Vec::new();
        let by_id = is_id_reference(&meta, name, &id);
        let mut quiet = false;
        if !by_id {
            let r = Reference::parse_tagged(name)?;
            let repo_refs = meta.refs_of(&id);
            if !force && is_single_reference(&repo_refs)
                && let Some(c) = users.any(&id) {
                    return Err(ImageError::Conflict(format!(
                        "conflict: unable to remove repository reference {name:?} (must force) - container {} is using its referenced image {}",
                        short(&c.container_id),
                        id.short()
                    )));
                }
            let key = r.to_string();
            if meta.refs.remove(&key).is_some() {
                items.push(DeleteItem::Untagged(r.familiar()));
            }
            if let Some(set) = meta.variants.remove(&key) {
                orphans.extend(set.images.into_values().filter(|i| *i != id));
            }
            // A removed tag takes the same repository's digest references with it
            // when no tag of that repository is left.
            if r.digest().is_none() {
                let remaining = meta.refs_of(&id);
                let tag_left = remaining
                    .iter()
                    .any(|x| x.digest().is_none() && x.name() == r.name());
                if !tag_left {
                    for x in remaining {
                        if x.digest().is_some() && x.name() == r.name() {
                            meta.refs.remove(&x.to_string());
                            items.push(DeleteItem::Untagged(x.familiar()));
                            if let Some(set) = meta.variants.remove(&x.to_string()) {
                                orphans.extend(set.images.into_values().filter(|i| *i != id));
                            }
                        }
                    }
                }
            }
            meta.save_refs()?;
            self.delete_orphaned_platforms(&mut meta, &users, &orphans, &mut items)?;
            if !meta.refs_of(&id).is_empty() || !meta.variant_refs_of(&id).is_empty() {
                return Ok(items);
            }
            quiet = true;
        } else {
            let repo_refs = meta.refs_of(&id);
            if is_single_reference(&repo_refs) {
                let mask = if force {
                    Conflicts::HARD
                } else {
                    Conflicts::HARD | Conflicts::STOPPED_CONTAINER
                };
                if let Some(c) = check_conflicts(&meta, &users, &id, mask) {
                    return Err(c.error(&id));
                }
                for r in repo_refs {
                    meta.refs.remove(&r.to_string());
                    items.push(DeleteItem::Untagged(r.familiar()));
                }
                meta.save_refs()?;
            }
        }
        self.delete_helper(&mut meta, &users, &id, &mut items, force, prune_parents, quiet)?;
        Ok(items)
    }

    /// The other platforms of a multi-platform image whose reference went: deleted
    /// when nothing else refers to them and no container uses them.
    fn delete_orphaned_platforms(&self, meta: &mut Meta, users: &ImageUsers, orphans: &[Digest], items: &mut Vec<DeleteItem>) -> Result<()> {
        for o in orphans {
            if meta.images.contains_key(o) && meta.refs_of(o).is_empty() && meta.variant_refs_of(o).is_empty() && users.any(o).is_none() {
                self.delete_helper(meta, users, o, items, false, true, true)?;
            }
        }
        Ok(())
    }

    /// Snapshot records count as (stopped) containers using their image, in case
    /// the engine's list misses one.
    fn merge_snapshot_users(&self, meta: &Meta, users: &ImageUsers) -> ImageUsers {
        let mut all = users.clone();
        for s in meta.snapshots.values() {
            if let Some(image) = &s.image
                && users.count(image) == 0 {
                    all.add(image.clone(), s.key.clone(), false);
                }
        }
        all
    }

    #[allow(clippy::too_many_arguments)]
    fn delete_helper(
        &self,
        meta: &mut Meta,
        users: &ImageUsers,
        id: &Digest,
        items: &mut Vec<DeleteItem>,
        force: bool,
        prune: bool,
        quiet: bool,
    ) -> Result<()> {
        let mask = if force {
            Conflicts::HARD
        } else {
            Conflicts::HARD | Conflicts::SOFT
        };
        if let Some(c) = check_conflicts(meta, users, id, mask) {
            let dangling = meta.refs_of(id).is_empty();
            if quiet && (!dangling || c.used) {
                return Ok(());
            }
            return Err(c.error(id));
        }
        let parent = meta.images.get(id).and_then(|e| e.record.parent.clone());
        for r in meta.refs_of(id) {
            meta.refs.remove(&r.to_string());
            items.push(DeleteItem::Untagged(r.familiar()));
        }
        for set in meta.variants.values_mut() {
            set.images.retain(|_, i| i != id);
        }
        meta.variants.retain(|_, s| !s.images.is_empty());
        meta.save_refs()?;
        let entry = meta
            .images
            .remove(id)
            .ok_or_else(|| ImageError::ImageNotFound(id.to_string()))?;
        meta.delete_image_file(id)?;
        items.push(DeleteItem::Deleted(id.to_string()));
        let report = self.gc_locked(meta)?;
        let removed: HashSet<&Digest> = report.layers.iter().collect();
        for l in entry.record.layers.iter().rev() {
            if removed.contains(&l.chain_id) {
                items.push(DeleteItem::Deleted(l.chain_id.to_string()));
            }
        }
        if let (true, Some(p)) = (prune, parent)
            && meta.images.contains_key(&p) {
                return self.delete_helper(meta, users, &p, items, false, true, true);
            }
        Ok(())
    }

    /// `docker image prune` (`all`: every image no container uses, not only dangling
    /// ones).
    pub fn prune(&self, all: bool, users: &ImageUsers, filters: &PruneFilters) -> Result<PruneReport> {
        let before: HashMap<Digest, u64> = self
            .layers
            .list()?
            .into_iter()
            .map(|l| (l.chain_id, l.size))
            .collect();
        let candidates: Vec<(Digest, Vec<Reference>)> = {
            let meta = self.lock_meta();
            let in_use = self.merge_snapshot_users(&meta, users);
            meta.images
                .values()
                .filter(|e| {
                    // Images containers use are left alone entirely (Docker's
                    // containerd image store does this; the graphdriver one would
                    // strip all but one of their tags).
                    if in_use.any(&e.record.id).is_some() {
                        return false;
                    }
                    let refs = meta.refs_of(&e.record.id);
                    if refs.is_empty() && !meta.variant_refs_of(&e.record.id).is_empty() {
                        // One platform of a multi-platform image: it goes with it.
                        return false;
                    }
                    let children = meta.children_of(&e.record.id);
                    if refs.is_empty() && !children.is_empty() {
                        return false;
                    }
                    if !all && !children.is_empty() {
                        return false;
                    }
                    let created = e.config.created_time().map(|t| t.timestamp()).unwrap_or(0);
                    if filters.until.is_some_and(|u| created >= u) {
                        return false;
                    }
                    let labels = e.config.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
                    filters.labels.iter().all(|f| f.matches(&labels))
                })
                .map(|e| (e.record.id.clone(), meta.refs_of(&e.record.id)))
                .collect()
        };
        let mut report = PruneReport::default();
        for (id, refs) in candidates {
            if !refs.is_empty() {
                let has_tag = refs.iter().any(|r| r.tag().is_some() && r.digest().is_none());
                if !all && has_tag {
                    continue;
                }
                for r in refs {
                    match self.remove(&r.to_string(), false, true, users) {
                        Ok(items) => report.deleted.extend(items),
                        Err(e) if is_skippable(&e) => {}
                        Err(e) => return Err(e),
                    }
                }
            } else {
                match self.remove(&id.to_string(), false, true, users) {
                    Ok(items) => report.deleted.extend(items),
                    Err(e) if is_skippable(&e) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        for d in &report.deleted {
            if let DeleteItem::Deleted(s) = d
                && let Ok(dg) = Digest::parse(s) {
                    report.space_reclaimed += before.get(&dg).copied().unwrap_or(0);
                }
        }
        Ok(report)
    }

    /// `system df` figures.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let meta = self.lock_meta();
        let all_layers = self.layers.list()?;
        let sizes: HashMap<Digest, u64> = all_layers.iter().map(|l| (l.chain_id.clone(), l.size)).collect();
        let mut uses: HashMap<&Digest, usize> = HashMap::new();
        for e in meta.images.values() {
            for l in &e.record.layers {
                *uses.entry(&l.chain_id).or_default() += 1;
            }
        }
        let mut images = Vec::new();
        for e in meta.images.values() {
            let summary = self.summary(&meta, e)?;
            let shared: u64 = e
                .record
                .layers
                .iter()
                .filter(|l| uses.get(&l.chain_id).copied().unwrap_or(0) > 1)
                .map(|l| sizes.get(&l.chain_id).copied().unwrap_or(0))
                .sum();
            images.push(ImageDiskUsage {
                unique_size: summary.size.saturating_sub(shared),
                shared_size: shared,
                summary,
            });
        }
        images.sort_by_key(|i| std::cmp::Reverse(i.summary.created));
        Ok(DiskUsage {
            layers_size: all_layers.iter().map(|l| l.size).sum(),
            images,
        })
    }

    /// Removes every blob and layer no image, container snapshot or live lease refers
    /// to.
    pub fn gc(&self) -> Result<GcReport> {
        let mut meta = self.lock_meta();
        self.gc_locked(&mut meta)
    }

    pub(crate) fn gc_locked(&self, meta: &mut Meta) -> Result<GcReport> {
        let _exclusive = self.gc_lock.write().unwrap_or_else(|p| p.into_inner());
        // Under the exclusive lock no content becomes visible unleased, and leases
        // taken on existing content are all in the table.
        let blobs = self.content.list()?;
        let layers = self.layers.list()?;
        let (leased_blobs, leased_layers) = {
            let t = self.leases.lock().unwrap_or_else(|p| p.into_inner());
            t.protected()
        };
        let (used_blobs, used_layers) = referenced(meta);
        let mut report = GcReport::default();
        for l in layers {
            if used_layers.contains(&l.chain_id) || leased_layers.contains(&l.chain_id) {
                continue;
            }
            self.layers.remove(&l.chain_id)?;
            report.layer_bytes += l.size;
            report.layers.push(l.chain_id);
        }
        for b in blobs {
            if used_blobs.contains(&b.digest) || leased_blobs.contains(&b.digest) {
                continue;
            }
            self.content.delete(&b.digest)?;
            report.blobs.push(b.digest);
        }
        Ok(report)
    }
}

fn same_fs(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev(),
        _ => false,
    }
}

/// Blobs and layers the metadata refers to.
fn referenced(meta: &Meta) -> (HashSet<Digest>, HashSet<Digest>) {
    let mut blobs = HashSet::new();
    let mut layers = HashSet::new();
    for e in meta.images.values() {
        blobs.insert(e.record.id.clone());
        if let Some(m) = &e.record.manifest {
            blobs.insert(m.digest.clone());
        }
        for l in &e.record.layers {
            blobs.insert(l.blob.digest.clone());
            layers.insert(l.chain_id.clone());
        }
    }
    for s in meta.snapshots.values() {
        layers.extend(s.chain.iter().cloned());
    }
    (blobs, layers)
}

/// Points reference `r` at `id`; returns the image it pointed at before, if another.
fn set_ref(meta: &mut Meta, r: &Reference, id: &Digest) -> Option<Digest> {
    // A reference moved to an image that is not one of its platforms drops them.
    let key = r.to_string();
    if meta.variants.get(&key).is_some_and(|s| !s.images.values().any(|i| i == id)) {
        meta.variants.remove(&key);
    }
    let old = meta
        .refs
        .insert(r.to_string(), (r.clone(), id.clone()))
        .map(|(_, old)| old);
    old.filter(|o| o != id)
}

fn short(id: &str) -> &str {
    let s = id.strip_prefix("sha256:").unwrap_or(id);
    &s[..s.len().min(12)]
}

/// Errors `prune` skips (images in use, with children): Docker's prune is quiet about
/// them.
fn is_skippable(e: &ImageError) -> bool {
    matches!(e, ImageError::Conflict(_) | ImageError::ImageNotFound(_))
}

/// True when the user named the image by (a prefix of) its ID rather than a
/// reference.
fn is_id_reference(meta: &Meta, name: &str, id: &Digest) -> bool {
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) && id.hex().starts_with(hex) {
        // A hex string that is also a tag of this image counts as a reference.
        match Reference::parse_tagged(name) {
            Ok(r) => !meta.refs.contains_key(&r.to_string()),
            Err(_) => true,
        }
    } else {
        false
    }
}

/// All references are in one repository (Docker's `isSingleReference`).
fn is_single_reference(refs: &[Reference]) -> bool {
    let mut names = HashSet::new();
    let mut tags = 0;
    for r in refs {
        if r.digest().is_none() {
            tags += 1;
        }
        names.insert(r.name());
    }
    tags <= 1 && names.len() <= 1
}

struct Conflicts;
impl Conflicts {
    const CHILD: u8 = 1;
    const RUNNING_CONTAINER: u8 = 2;
    const ACTIVE_REFERENCE: u8 = 4;
    const STOPPED_CONTAINER: u8 = 8;
    const HARD: u8 = Self::CHILD | Self::RUNNING_CONTAINER;
    const SOFT: u8 = Self::ACTIVE_REFERENCE | Self::STOPPED_CONTAINER;
}

struct Conflict {
    hard: bool,
    used: bool,
    message: String,
}

impl Conflict {
    fn error(&self, id: &Digest) -> ImageError {
        ImageError::Conflict(format!(
            "conflict: unable to delete {} ({}) - {}",
            id.short(),
            if self.hard { "cannot be forced" } else { "must be forced" },
            self.message
        ))
    }
}

fn check_conflicts(meta: &Meta, users: &ImageUsers, id: &Digest, mask: u8) -> Option<Conflict> {
    if mask & Conflicts::CHILD != 0 && !meta.children_of(id).is_empty() {
        return Some(Conflict {
            hard: true,
            used: false,
            message: "image has dependent child images".into(),
        });
    }
    if mask & Conflicts::RUNNING_CONTAINER != 0
        && let Some(c) = users.running(id) {
            return Some(Conflict {
                hard: true,
                used: true,
                message: format!("image is being used by running container {}", short(&c.container_id)),
            });
        }
    if mask & Conflicts::ACTIVE_REFERENCE != 0 && !meta.refs_of(id).is_empty() {
        return Some(Conflict {
            hard: false,
            used: false,
            message: "image is referenced in multiple repositories".into(),
        });
    }
    if mask & Conflicts::STOPPED_CONTAINER != 0
        && let Some(c) = users.stopped(id) {
            return Some(Conflict {
                hard: false,
                used: true,
                message: format!("image is being used by stopped container {}", short(&c.container_id)),
            });
        }
    None
}

/// The lookup behind [`ImageStore::resolve`].
pub(crate) fn resolve_in(meta: &Meta, name: &str) -> Result<Digest> {
    let not_found = |s: String| ImageError::ImageNotFound(s);
    // Full IDs.
    if let Some(hex) = name.strip_prefix("sha256:") {
        if reference::is_64_hex(hex) {
            let d = Digest::from_hex(hex)?;
            return if meta.images.contains_key(&d) {
                Ok(d)
            } else {
                Err(not_found(name.to_owned()))
            };
        }
        return search_prefix(meta, hex).and_then(|o| o.ok_or_else(|| not_found(name.to_owned())));
    }
    if reference::is_64_hex(name) {
        let d = Digest::from_hex(name)?;
        return if meta.images.contains_key(&d) {
            Ok(d)
        } else {
            Err(not_found(name.to_owned()))
        };
    }
    // References.
    let parsed = Reference::parse_tagged(name);
    if let Ok(r) = &parsed {
        let key = match r.digest() {
            Some(d) => r.repository().with_digest(d.clone()).to_string(),
            None => r.to_string(),
        };
        if let Some((_, id)) = meta.refs.get(&key) {
            return Ok(id.clone());
        }
    }
    // ID prefixes.
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_hexdigit())
        && let Some(id) = search_prefix(meta, &name.to_ascii_lowercase())? {
            return Ok(id);
        }
    match parsed {
        Ok(r) => Err(not_found(r.familiar())),
        Err(e) => Err(e),
    }
}

fn search_prefix(meta: &Meta, prefix: &str) -> Result<Option<Digest>> {
    if prefix.is_empty() {
        return Ok(None);
    }
    let hits: Vec<&Digest> = meta
        .images
        .keys()
        .filter(|d| d.hex().starts_with(prefix))
        .collect();
    match hits.len() {
        0 => Ok(None),
        1 => Ok(Some(hits[0].clone())),
        n => Err(ImageError::InvalidArgument(format!(
            "image ID prefix {prefix} is ambiguous: it matches {n} images"
        ))),
    }
}

/// Parses the manifest document at `bytes` as a single image manifest.
pub(crate) fn expect_manifest(bytes: &[u8], hint: Option<&str>) -> Result<manifest::Manifest> {
    match manifest::parse(bytes, hint)? {
        ManifestDoc::Manifest(m) => Ok(m),
        ManifestDoc::Index { .. } => Err(ImageError::InvalidManifest(
            "expected an image manifest, found an index".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<ImageStore>();
        shared::<Lease>();
    }

    #[test]
    fn single_reference_means_one_tag_in_one_repository() {
        let r = |s: &str| Reference::parse_tagged(s).unwrap();
        let d = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        assert!(is_single_reference(&[]));
        assert!(is_single_reference(&[r("a:1")]));
        assert!(is_single_reference(&[r("a:1"), r(&format!("a@{d}"))]));
        assert!(!is_single_reference(&[r("a:1"), r("a:2")]));
        assert!(!is_single_reference(&[r("a:1"), r(&format!("b@{d}"))]));
    }

    #[test]
    fn default_margin_is_clamped() {
        let m = default_margin(Path::new("/"));
        assert!((256 << 20..=2 << 30).contains(&m), "{m}");
    }
}

/// Whether a wanted platform (`os/arch[/variant]`) is satisfied by a kept one: a
/// variant matters only when the wanted platform names it.
fn platform_matches(want: &str, have: &str) -> bool {
    let w: Vec<&str> = want.split('/').collect();
    let h: Vec<&str> = have.split('/').collect();
    w.len() >= 2 && h.len() >= 2 && w[0] == h[0] && w[1] == h[1] && (w.len() < 3 || h.get(2) == w.get(2))
}
