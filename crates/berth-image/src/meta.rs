//! Image metadata on disk, one JSON file per object, each written atomically
//! (temp + fsync + rename), the way Docker keeps its image and reference stores:
//!
//! ```text
//! image/images/<id hex>.json       ImageRecord (the config itself is a blob)
//! image/repositories.json          every tag and digest reference -> image ID
//! image/snapshots/<key hash>.json  SnapshotRecord (a container's layer chain)
//! ```
//!
//! Write order keeps every crash state consistent: blobs and layers first, then the
//! image record, then references. An image record without references is a dangling
//! image (a legal state); a reference to a missing image is dropped when the store
//! opens.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::config::ImageConfig;
use crate::content::ContentStore;
use crate::digest::Digest;
use crate::error::{ImageError, IoContext, Result};
use crate::fsutil;
use crate::manifest::Descriptor;
use crate::reference::Reference;

/// Largest config or manifest blob berth reads into memory.
pub const MAX_METADATA_BLOB: u64 = 8 << 20;

/// One layer of an image: its DiffID, its place in the chain, and the blob it came
/// from (compressed or not) in the content store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRef {
    pub diff_id: Digest,
    pub chain_id: Digest,
    pub blob: Descriptor,
}

/// What berth records about an image beyond its config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The config digest.
    pub id: Digest,
    pub layers: Vec<LayerRef>,
    /// The manifest the image came with (OCI layout, registry), kept as a blob.
    pub manifest: Option<Descriptor>,
    /// The image it was committed from (Docker's local "Parent").
    pub parent: Option<Digest>,
    /// When this store got the image.
    pub added: String,
    pub last_tag_time: Option<String>,
}

/// A container's view of an image: the layer chain under its upper directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub key: String,
    /// `None`: a snapshot of no image at all (a build step on `FROM scratch`).
    pub image: Option<Digest>,
    /// Chain IDs, bottom first (kept here so a force-removed image's layers stay).
    pub chain: Vec<Digest>,
    /// The container directory holding `upper/` and `work/` (and `init/`, for
    /// [`InitLayer::Own`]).
    pub dir: PathBuf,
    /// Which directory is its init layer.
    #[serde(default, skip_serializing_if = "InitLayer::is_own")]
    pub init: InitLayer,
    /// Where its rootfs is mounted, if it is.
    pub mounted_at: Option<PathBuf>,
    /// Mounted with overlay's `volatile`: no sync of the upper filesystem, ever (see
    /// [`crate::SnapshotOptions::volatile`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub volatile: bool,
}

/// Which directory is a snapshot's init layer, its topmost lower.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitLayer {
    /// `init/` in the snapshot's own directory: snapshots made before the shared
    /// layers (their records have no `init`).
    #[default]
    Own,
    /// The store's shared layer of Docker's placeholders (`init/docker`).
    Shared,
    /// The store's shared empty directory (`init/empty`): no placeholders.
    Empty,
}

impl InitLayer {
    fn is_own(&self) -> bool {
        *self == InitLayer::Own
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RepositoriesFile {
    refs: BTreeMap<String, Digest>,
    /// Multi-platform images pulled under a reference, per platform.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    variants: BTreeMap<String, PlatformSet>,
}

/// The platforms of one multi-platform index pulled under a reference (a tag or a
/// digest reference): `os/arch[/variant]` → the image. The reference itself points
/// at one of them (the host's when it was pulled, else the last one pulled); the
/// others are kept whole and chosen by platform (`--platform`), as Docker's
/// containerd image store keeps an index whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformSet {
    /// The index's digest.
    pub index: Option<Digest>,
    pub images: BTreeMap<String, Digest>,
}

/// An image with its parsed config.
#[derive(Debug, Clone)]
pub struct ImageEntry {
    pub record: ImageRecord,
    pub config: ImageConfig,
    pub config_size: u64,
}

/// The in-memory index of all metadata, mirrored to disk on every change.
#[derive(Debug)]
pub struct Meta {
    dir: PathBuf,
    pub images: BTreeMap<Digest, ImageEntry>,
    /// Full reference string → (reference, image).
    pub refs: BTreeMap<String, (Reference, Digest)>,
    /// Full reference string → the platforms pulled from its index.
    pub variants: BTreeMap<String, PlatformSet>,
    pub snapshots: BTreeMap<String, SnapshotRecord>,
}

fn key_file(key: &str) -> String {
    format!("{}.json", hex::encode(Sha256::digest(key.as_bytes())))
}

impl Meta {
    /// Loads everything under `dir`, dropping what a crash left inconsistent.
    pub fn load(dir: &Path, content: &ContentStore) -> Result<Meta> {
        for d in ["images", "snapshots"] {
            fsutil::ensure_dir(&dir.join(d))?;
        }
        let mut meta = Meta {
            dir: dir.to_path_buf(),
            images: BTreeMap::new(),
            refs: BTreeMap::new(),
            variants: BTreeMap::new(),
            snapshots: BTreeMap::new(),
        };
        let images_dir = dir.join("images");
        for e in fs::read_dir(&images_dir).ctx("read", &images_dir)? {
            let e = e.ctx("read", &images_dir)?;
            let p = e.path();
            if p.extension().and_then(|x| x.to_str()) != Some("json") {
                // Temp files of an interrupted atomic write.
                let _ = fs::remove_file(&p);
                continue;
            }
            let rec: ImageRecord = match fs::read(&p).map_err(|e| e.to_string()).and_then(|b| {
                serde_json::from_slice(&b).map_err(|e| e.to_string())
            }) {
                Ok(r) => r,
                Err(err) => {
                    tracing::warn!(path = %p.display(), %err, "dropping unreadable image record");
                    let _ = fs::remove_file(&p);
                    continue;
                }
            };
            let entry = match content.read_blob(&rec.id, MAX_METADATA_BLOB).and_then(|b| {
                let size = b.len() as u64;
                ImageConfig::parse(&b).map(|c| (c, size))
            }) {
                Ok((config, config_size)) => ImageEntry {
                    record: rec,
                    config,
                    config_size,
                },
                Err(err) => {
                    tracing::warn!(id = %rec.id, %err, "dropping image whose config is unusable");
                    let _ = fs::remove_file(&p);
                    continue;
                }
            };
            meta.images.insert(entry.record.id.clone(), entry);
        }
        let repos = dir.join("repositories.json");
        match fs::read(&repos) {
            Ok(b) => {
                let f: RepositoriesFile = serde_json::from_slice(&b).map_err(|e| {
                    ImageError::System(format!("corrupt {}: {e}", repos.display()))
                })?;
                for (name, id) in f.refs {
                    let Ok(r) = Reference::parse(&name) else { continue };
                    if meta.images.contains_key(&id) {
                        meta.refs.insert(name, (r, id));
                    }
                }
                for (name, mut set) in f.variants {
                    set.images.retain(|_, id| meta.images.contains_key(id));
                    if meta.refs.contains_key(&name) && !set.images.is_empty() {
                        meta.variants.insert(name, set);
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(ImageError::io_path("read", &repos, e)),
        }
        let snaps = dir.join("snapshots");
        for e in fs::read_dir(&snaps).ctx("read", &snaps)? {
            let e = e.ctx("read", &snaps)?;
            let p = e.path();
            if p.extension().and_then(|x| x.to_str()) != Some("json") {
                let _ = fs::remove_file(&p);
                continue;
            }
            let b = fs::read(&p).ctx("read", &p)?;
            let rec: SnapshotRecord = match serde_json::from_slice(&b) {
                Ok(r) => r,
                // Written unflushed (a volatile snapshot's record, a mount hint), a record
                // can be left empty by a power loss: it is dropped (its directories are the
                // container's) rather than keeping the daemon from starting.
                Err(e) => {
                    tracing::warn!("dropping unreadable snapshot record {}: {e}", p.display());
                    let _ = fs::remove_file(&p);
                    continue;
                }
            };
            meta.snapshots.insert(rec.key.clone(), rec);
        }
        Ok(meta)
    }

    pub fn save_image(&self, rec: &ImageRecord) -> Result<()> {
        fsutil::atomic_write_json(
            &self.dir.join("images").join(format!("{}.json", rec.id.hex())),
            rec,
        )
    }

    pub fn delete_image_file(&self, id: &Digest) -> Result<()> {
        let p = self.dir.join("images").join(format!("{}.json", id.hex()));
        match fs::remove_file(&p) {
            Ok(()) => fsutil::fsync_dir(&self.dir.join("images")).ctx("fsync", &p),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ImageError::io_path("remove", &p, e)),
        }
    }

    pub fn save_refs(&self) -> Result<()> {
        let f = RepositoriesFile {
            refs: self
                .refs
                .iter()
                .map(|(k, (_, id))| (k.clone(), id.clone()))
                .collect(),
            variants: self.variants.iter().filter(|(k, _)| self.refs.contains_key(*k)).map(|(k, v)| (k.clone(), v.clone())).collect(),
        };
        fsutil::atomic_write_json(&self.dir.join("repositories.json"), &f)
    }

    pub fn save_snapshot(&self, rec: &SnapshotRecord) -> Result<()> {
        fsutil::atomic_write_json(&self.dir.join("snapshots").join(key_file(&rec.key)), rec)
    }

    /// [`Meta::save_snapshot`] for where a snapshot is mounted, a hint the next
    /// start checks against the mount table, and for a volatile snapshot's record:
    /// replaced atomically, not flushed.
    pub fn save_snapshot_mount(&self, rec: &SnapshotRecord) -> Result<()> {
        let bytes = serde_json::to_vec(rec).map_err(|e| ImageError::System(format!("encode snapshot record: {e}")))?;
        fsutil::replace_unsynced(&self.dir.join("snapshots").join(key_file(&rec.key)), &bytes)
    }

    pub fn delete_snapshot_file(&self, key: &str) -> Result<()> {
        let p = self.dir.join("snapshots").join(key_file(key));
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ImageError::io_path("remove", &p, e)),
        }
    }

    /// References to image `id`, sorted by their full string (Docker's order).
    pub fn refs_of(&self, id: &Digest) -> Vec<Reference> {
        self.refs
            .values()
            .filter(|(_, i)| i == id)
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// References under which `id` is kept as one platform of a multi-platform image
    /// (whether or not the reference itself points at it).
    pub fn variant_refs_of(&self, id: &Digest) -> Vec<Reference> {
        self.variants
            .iter()
            .filter(|(_, s)| s.images.values().any(|i| i == id))
            .filter_map(|(k, _)| self.refs.get(k).map(|(r, _)| r.clone()))
            .collect()
    }

    /// The image of platform `platform` kept under reference `key`.
    pub fn variant(&self, key: &str, platform: &str) -> Option<Digest> {
        self.variants.get(key).and_then(|s| s.images.get(platform)).cloned()
    }

    /// Images committed from `id`.
    pub fn children_of(&self, id: &Digest) -> Vec<Digest> {
        self.images
            .values()
            .filter(|e| e.record.parent.as_ref() == Some(id))
            .map(|e| e.record.id.clone())
            .collect()
    }
}
