//! Container snapshots (containerd's snapshotter idea on overlay2's layout): a
//! container's root filesystem is an overlay of its image's layers (by short links),
//! an init layer with the files Docker puts in every container (`/etc/hosts`,
//! `/.dockerenv`, ...), and its own upper and work directories. From the upper
//! directory come `docker diff`, `docker commit` and, through a mount, `docker export`.
//!
//! Docker makes the init layer per container; its content never differs, so berth
//! makes it once per data root (`init/docker`) and every snapshot shares it as a
//! read-only lower. A container's creation then makes two directories instead of
//! fifteen inodes. On ext4 each allocated and freed inode costs: a no-journal ext4 (as
//! on berth's test machines) scans past every recently freed inode on each allocation,
//! ~0.3 ms a directory there, and under a busy journal each operation waits.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::config::{self, ContainerConfig, History, ImageConfig, RootFs};
use crate::digest::{self, Digest};
use crate::error::{ImageError, IoContext, Result};
use crate::fsutil;
use crate::layer::diff::{self, Change, TreeKind};
use crate::manifest::{Descriptor, OCI_LAYER_TAR};
use crate::meta::{InitLayer, SnapshotRecord};
use crate::mount::{self, OverlaySpec};
use crate::reference::Reference;
use crate::store::{ImageStore, NewImage, resolve_in};

/// A container's snapshot and where its pieces are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub key: String,
    /// `None` for a snapshot of nothing (`FROM scratch` in a build).
    pub image: Option<Digest>,
    pub dir: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
    /// The init layer (topmost lower directory; shared by the store's snapshots, never
    /// written through).
    pub init: PathBuf,
    /// Every lower directory as an absolute path, topmost first (init, then the
    /// image's layers top to bottom): Docker's `GraphDriver.Data.LowerDir`.
    pub lowers: Vec<PathBuf>,
    pub mounted_at: Option<PathBuf>,
}

/// How a snapshot is prepared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotOptions {
    /// Fill the init layer with Docker's placeholders (`/etc/hosts`, `/etc/hostname`,
    /// `/etc/resolv.conf`, `/.dockerenv`, `/dev/console`, `/dev/pts`, `/dev/shm`,
    /// `/proc`, `/sys`, `/etc/mtab -> /proc/mounts`), so the engine's bind mounts
    /// have targets and they never show up in `diff` or `commit`.
    pub init_layer: bool,
    /// Mount it with overlay's `volatile` option: the kernel then never syncs the upper
    /// filesystem for it, above all not when it is unmounted (an overlay's unmount
    /// otherwise flushes the *whole* filesystem holding the data root: ~2 ms on a quiet
    /// disk, far more on a busy one, on every container exit). The price is that its
    /// writable layer is not to be trusted after a machine crash, so it is for what is
    /// thrown away anyway: `--rm` containers and build steps (as Podman does for
    /// `--rm`).
    pub volatile: bool,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions { init_layer: true, volatile: false }
    }
}

/// What `commit` makes of a container.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// The container's configuration: the new image's `config` starts from it (the
    /// parent image's config when `None`), then `changes` apply.
    pub config: Option<ContainerConfig>,
    /// Dockerfile-style changes (`CMD`, `ENV`, `LABEL`...).
    pub changes: Vec<String>,
    pub author: String,
    /// The commit message (history comment).
    pub comment: String,
    /// Tag for the new image (`repo:tag`; `latest` when only a name is given).
    pub tag: Option<String>,
    /// The container ID Docker records in the config's `container` field.
    pub container_id: String,
    /// The container ran in a user namespace: its files' owners are written as it saw
    /// them (`--userns-remap`).
    pub unmap: Option<crate::layer::diff::IdUnmap>,
    /// Cancelled (by the caller, from another thread) to stop the commit at its next
    /// write: its client went away. Nothing of it is kept.
    pub cancel: Option<tokio_util::sync::CancellationToken>,
}

/// A writer that fails once `cancel` is set, so that a long tar of the upper directory
/// stops where it is and takes the commit's error path (which keeps nothing).
struct Cancellable<'a, W> {
    inner: W,
    cancel: Option<&'a tokio_util::sync::CancellationToken>,
}

impl<W: Write> Write for Cancellable<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.cancel.is_some_and(|c| c.is_cancelled()) {
            return Err(std::io::Error::other("commit cancelled"));
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Docker's init layer entries: directories, empty files, and `/etc/mtab`.
const INIT_DIRS: &[&str] = &["dev/pts", "dev/shm", "proc", "sys"];
const INIT_FILES: &[&str] = &[".dockerenv", "etc/resolv.conf", "etc/hosts", "etc/hostname", "dev/console"];

/// Where the shared init layers live, under the data root.
pub(crate) const SHARED_INIT_DIR: &str = "init";

/// Makes the store's shared init layers if they are not there yet: `docker` (Docker's
/// placeholders) and `empty`. Each is built under a temporary name, flushed and renamed
/// into place, so one that exists is whole.
pub(crate) fn ensure_shared_init_layers(dir: &Path) -> Result<()> {
    fsutil::ensure_dir(dir)?;
    for (name, placeholders) in [("docker", true), ("empty", false)] {
        let dest = dir.join(name);
        if dest.is_dir() {
            continue;
        }
        let tmp = dir.join(format!(".{name}.tmp"));
        fsutil::remove_all(&tmp).ctx("remove", &tmp)?;
        fs::create_dir(&tmp).ctx("create", &tmp)?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).ctx("chmod", &tmp)?;
        if placeholders {
            populate_init(&tmp)?;
        }
        fsutil::syncfs(&tmp)?;
        fs::rename(&tmp, &dest).ctx("rename", &dest)?;
    }
    Ok(())
}

fn populate_init(init: &Path) -> Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true).mode(0o755);
    for d in INIT_DIRS {
        b.create(init.join(d)).ctx("create", &init.join(d))?;
    }
    for f in INIT_FILES {
        let p = init.join(f);
        if let Some(parent) = p.parent() {
            b.create(parent).ctx("create", parent)?;
        }
        fs::File::create(&p).ctx("create", &p)?;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).ctx("chmod", &p)?;
    }
    let mtab = init.join("etc/mtab");
    std::os::unix::fs::symlink("/proc/mounts", &mtab).ctx("create", &mtab)?;
    // The umask may have narrowed directory modes.
    for d in ["dev", "dev/pts", "dev/shm", "proc", "sys", "etc"] {
        let p = init.join(d);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).ctx("chmod", &p)?;
    }
    Ok(())
}

impl ImageStore {
    /// The snapshot's init layer.
    fn init_dir(&self, rec: &SnapshotRecord) -> PathBuf {
        match rec.init {
            InitLayer::Own => rec.dir.join("init"),
            InitLayer::Shared => self.root.join(SHARED_INIT_DIR).join("docker"),
            InitLayer::Empty => self.root.join(SHARED_INIT_DIR).join("empty"),
        }
    }

    fn snapshot_view(&self, rec: &SnapshotRecord) -> Snapshot {
        let init = self.init_dir(rec);
        let mut lowers = vec![init.clone()];
        lowers.extend(rec.chain.iter().rev().map(|c| self.layers.diff_dir(c)));
        Snapshot {
            key: rec.key.clone(),
            image: rec.image.clone(),
            dir: rec.dir.clone(),
            upper: rec.dir.join("upper"),
            work: rec.dir.join("work"),
            init,
            lowers,
            mounted_at: rec.mounted_at.clone(),
        }
    }

    /// Prepares a writable snapshot `key` of image `image` in directory `dir` (the
    /// container's directory; `upper/` and `work/` are created in it). The
    /// image's layers stay referenced until the snapshot is removed, even if the
    /// image is force-removed.
    pub fn prepare_snapshot(
        &self,
        key: &str,
        image: &str,
        dir: &Path,
        opts: &SnapshotOptions,
    ) -> Result<Snapshot> {
        self.prepare_snapshot_of(key, Some(image), dir, opts)
    }

    /// [`ImageStore::prepare_snapshot`] where `image` may be `None`: an empty root
    /// filesystem (the builder's `FROM scratch`).
    pub fn prepare_snapshot_of(
        &self,
        key: &str,
        image: Option<&str>,
        dir: &Path,
        opts: &SnapshotOptions,
    ) -> Result<Snapshot> {
        if key.is_empty() {
            return Err(ImageError::InvalidArgument("empty snapshot key".into()));
        }
        let mut meta = self.lock_meta();
        if meta.snapshots.contains_key(key) {
            return Err(ImageError::Conflict(format!("snapshot {key} already exists")));
        }
        let id = image.map(|i| resolve_in(&meta, i)).transpose()?;
        let chain: Vec<Digest> = match &id {
            Some(id) => meta.images[id].record.layers.iter().map(|l| l.chain_id.clone()).collect(),
            None => Vec::new(),
        };
        fsutil::ensure_dir(dir)?;
        let wanted: Vec<(PathBuf, u32)> = [("upper", 0o755), ("work", 0o700)]
            .iter()
            .map(|(n, m)| (dir.join(n), *m))
            .collect();
        // Only what this call creates is removed on failure (an existing `upper` is
        // somebody's data: it makes the call fail, untouched).
        let mut created: Vec<PathBuf> = Vec::new();
        let res = (|| -> Result<()> {
            for (p, mode) in &wanted {
                fs::create_dir(p).ctx("create", p)?;
                created.push(p.clone());
                fs::set_permissions(p, fs::Permissions::from_mode(*mode)).ctx("chmod", p)?;
            }
            Ok(())
        })();
        let rec = SnapshotRecord {
            key: key.to_owned(),
            image: id,
            chain,
            dir: dir.to_path_buf(),
            init: if opts.init_layer { InitLayer::Shared } else { InitLayer::Empty },
            mounted_at: None,
            volatile: opts.volatile,
        };
        // A volatile snapshot's record is not flushed either: it is not to outlive a
        // machine crash (Meta::load drops a record a power loss left unreadable).
        let res = res
            .and_then(|_| if self.layers.durable() && !opts.volatile { fsutil::syncfs(dir) } else { Ok(()) })
            .and_then(|_| if opts.volatile { meta.save_snapshot_mount(&rec) } else { meta.save_snapshot(&rec) });
        if let Err(e) = res {
            for p in &created {
                let _ = fsutil::remove_all(p);
            }
            return Err(e);
        }
        let view = self.snapshot_view(&rec);
        meta.snapshots.insert(key.to_owned(), rec);
        Ok(view)
    }

    /// A snapshot by key.
    pub fn snapshot(&self, key: &str) -> Result<Snapshot> {
        let meta = self.lock_meta();
        let rec = meta
            .snapshots
            .get(key)
            .ok_or_else(|| ImageError::SnapshotNotFound(key.to_owned()))?;
        Ok(self.snapshot_view(rec))
    }

    /// Every snapshot.
    pub fn snapshots(&self) -> Vec<Snapshot> {
        let meta = self.lock_meta();
        meta.snapshots.values().map(|r| self.snapshot_view(r)).collect()
    }

    fn overlay_spec(&self, rec: &SnapshotRecord, target: &Path) -> Result<OverlaySpec> {
        let mut lowers = vec![self.init_dir(rec)];
        for c in rec.chain.iter().rev() {
            lowers.push(PathBuf::from(self.layers.short_link(c)?));
        }
        Ok(OverlaySpec {
            base: self.layers.root().to_path_buf(),
            lowers,
            upper: rec.dir.join("upper"),
            work: rec.dir.join("work"),
            target: target.to_path_buf(),
            volatile: rec.volatile,
        })
    }

    /// Mounts the snapshot's root filesystem at `target` (created if missing).
    /// Mounting again at the same place is a no-op.
    pub fn mount_snapshot(&self, key: &str, target: &Path) -> Result<()> {
        self.mount_snapshot_with(key, target, None)
    }

    /// [`Self::mount_snapshot`] with the layers id-mapped into a user namespace (see
    /// [`mount::stage_idmapped`]), for a container running in one.
    pub fn mount_snapshot_idmapped(&self, key: &str, target: &Path, idmap: &mount::Idmap<'_>) -> Result<()> {
        self.mount_snapshot_with(key, target, Some(idmap))
    }

    fn mount_snapshot_with(&self, key: &str, target: &Path, idmap: Option<&mount::Idmap<'_>>) -> Result<()> {
        let mut meta = self.lock_meta();
        let rec = meta
            .snapshots
            .get(key)
            .cloned()
            .ok_or_else(|| ImageError::SnapshotNotFound(key.to_owned()))?;
        if let Some(at) = &rec.mounted_at
            && mount::is_mount_point(at).unwrap_or(false) {
                if at == target {
                    return Ok(());
                }
                return Err(ImageError::Conflict(format!(
                    "snapshot {key} is already mounted at {}",
                    at.display()
                )));
            }
        fsutil::ensure_dir(target)?;
        let spec = self.overlay_spec(&rec, target)?;
        if rec.volatile {
            // The kernel leaves `work/work/incompat/volatile` behind even after a clean
            // unmount, and refuses to mount that work directory again while it is there
            // (a restarted `--rm` container, a daemon restart): the snapshot is not
            // mounted now, and what it holds is disposable by choice.
            let marker = spec.work.join("work/incompat");
            fsutil::remove_all(&marker).ctx("remove", &marker)?;
        }
        match idmap {
            None => self.mounter.mount_overlay(&spec),
            Some(m) => {
                // The overlay holds its layers: the staged id-mapped mounts can go. They are
                // staged apart from the snapshot's directory, which is removed recursively:
                // a mount left there by a crash must never be deleted through.
                let staging = self.idmap_staging(key);
                let r = mount::stage_idmapped(&spec, &staging, m).and_then(|s| self.mounter.mount_overlay(&s));
                mount::release_staging(&staging);
                r
            }
        }
        .map_err(|e| ImageError::io_path("mount overlay on", target, e))?;
        let mut rec = rec;
        rec.mounted_at = Some(target.to_path_buf());
        if let Err(e) = meta.save_snapshot_mount(&rec) {
            let _ = self.mounter.unmount(target);
            return Err(e);
        }
        meta.snapshots.insert(key.to_owned(), rec);
        Ok(())
    }

    /// Where [`Self::mount_snapshot_idmapped`] stages its id-mapped layers.
    fn idmap_staging(&self, key: &str) -> PathBuf {
        self.root.join("idmap").join(key)
    }

    /// Unmounts the snapshot's root filesystem (no-op when not mounted).
    pub fn unmount_snapshot(&self, key: &str) -> Result<()> {
        let mut meta = self.lock_meta();
        let mut rec = meta
            .snapshots
            .get(key)
            .cloned()
            .ok_or_else(|| ImageError::SnapshotNotFound(key.to_owned()))?;
        if let Some(at) = rec.mounted_at.take() {
            self.mounter
                .unmount(&at)
                .map_err(|e| ImageError::io_path("unmount", &at, e))?;
            meta.save_snapshot_mount(&rec)?;
            meta.snapshots.insert(key.to_owned(), rec);
        }
        Ok(())
    }

    /// Removes a snapshot: unmounts it if needed, deletes its upper and work
    /// directories (and its own init layer, if it has one) and its record, and lets go
    /// of its layers.
    pub fn remove_snapshot(&self, key: &str) -> Result<()> {
        self.remove_snapshot_via(key, None)
    }

    /// [`Self::remove_snapshot`] on a latency path: the directories are moved into the
    /// store's trash (a rename each) and deleted in the background.
    pub fn discard_snapshot(&self, key: &str) -> Result<()> {
        self.remove_snapshot_via(key, Some(&self.trash))
    }

    /// The data root's trash, for other trees to discard the same way.
    pub fn trash(&self) -> std::sync::Arc<fsutil::Trash> {
        self.trash.clone()
    }

    fn remove_snapshot_via(&self, key: &str, trash: Option<&fsutil::Trash>) -> Result<()> {
        self.unmount_snapshot(key)?;
        mount::release_staging(&self.idmap_staging(key));
        let mut meta = self.lock_meta();
        let rec = meta
            .snapshots
            .get(key)
            .cloned()
            .ok_or_else(|| ImageError::SnapshotNotFound(key.to_owned()))?;
        // Record first: a crash after this leaves directories nobody points at, not
        // a record pointing at half-deleted directories.
        meta.delete_snapshot_file(key)?;
        meta.snapshots.remove(key);
        let own_init = (rec.init == InitLayer::Own).then_some("init");
        for n in ["upper", "work"].into_iter().chain(own_init) {
            let p = rec.dir.join(n);
            match trash {
                Some(t) => t.discard(&p),
                None => fsutil::remove_all(&p),
            }
            .ctx("remove", &p)?;
        }
        self.gc_locked(&mut meta)?;
        Ok(())
    }

    /// `docker diff`: what the container added, changed and deleted.
    pub fn changes(&self, key: &str) -> Result<Vec<Change>> {
        let snap = self.snapshot(key)?;
        diff::changes(&snap.upper, &snap.lowers).ctx("diff", &snap.upper)
    }

    /// `docker export`: the container's merged filesystem as a tar stream. Uses the
    /// live mount if there is one, else mounts the snapshot on a temporary directory
    /// for the duration.
    pub fn export<W: Write>(&self, key: &str, out: W) -> Result<W> {
        self.export_unmapped(key, out, None)
    }

    /// [`Self::export`] of a container that runs in a user namespace (owners as it
    /// sees them).
    pub fn export_unmapped<W: Write>(&self, key: &str, out: W, unmap: Option<&diff::IdUnmap>) -> Result<W> {
        let snap = self.snapshot(key)?;
        if let Some(at) = &snap.mounted_at
            && mount::is_mount_point(at).unwrap_or(false) {
                return diff::write_tree_tar_unmapped(at, out, TreeKind::Plain, unmap).ctx("export", at);
            }
        let tmp = fsutil::TempPath::new(snap.dir.join(format!("export-{}", fsutil::random_id(8))));
        fs::create_dir(tmp.path()).ctx("create", tmp.path())?;
        let rec = {
            let meta = self.lock_meta();
            meta.snapshots
                .get(key)
                .cloned()
                .ok_or_else(|| ImageError::SnapshotNotFound(key.to_owned()))?
        };
        let spec = self.overlay_spec(&rec, tmp.path())?;
        self.mounter
            .mount_overlay(&spec)
            .map_err(|e| ImageError::io_path("mount overlay on", tmp.path(), e))?;
        let res = diff::write_tree_tar_unmapped(tmp.path(), out, TreeKind::Plain, unmap).ctx("export", tmp.path());
        let um = self.mounter.unmount(tmp.path());
        let out = res?;
        um.map_err(|e| ImageError::io_path("unmount", tmp.path(), e))?;
        Ok(out)
    }

    /// `docker commit`: the container's upper directory becomes a new layer on top of
    /// its image's layers (nothing changed: no new layer, as Docker does), with the
    /// config built from `opts`. Returns the new image ID.
    pub fn commit(&self, key: &str, opts: &CommitOptions) -> Result<Digest> {
        let tag = match &opts.tag {
            Some(t) => {
                let r = Reference::parse_tagged(t)?;
                if r.digest().is_some() {
                    return Err(ImageError::InvalidArgument(
                        "refusing to create a tag with a digest reference".into(),
                    ));
                }
                Some(r)
            }
            None => None,
        };
        let snap = self.snapshot(key)?;
        let image = snap.image.clone().ok_or_else(|| ImageError::InvalidArgument(format!("snapshot {key} has no image to commit onto")))?;
        let (parent_cfg, parent_layers) = {
            let meta = self.lock_meta();
            let e = meta.images.get(&image).ok_or_else(|| {
                ImageError::ImageNotFound(format!("{image} (the container's image was removed)"))
            })?;
            (e.config.clone(), e.record.layers.clone())
        };
        let mut cfg = opts
            .config
            .clone()
            .or_else(|| parent_cfg.config.clone())
            .unwrap_or_default();
        config::apply_changes(&mut cfg, &opts.changes)?;
        let container_config = opts.config.clone().unwrap_or_default();

        self.with_lease(|lease| {
            let mut lw = self.anonymous_layer_writer(lease)?;
            let out = Cancellable { inner: &mut lw, cancel: opts.cancel.as_ref() };
            diff::write_tree_tar_unmapped(&snap.upper, out, TreeKind::OverlayUpper, opts.unmap.as_ref()).map_err(|e| {
                if opts.cancel.as_ref().is_some_and(|c| c.is_cancelled()) {
                    ImageError::System("commit cancelled".into())
                } else {
                    ImageError::from_io_chain("commit", e)
                }
            })?;
            let layer = lw.finish()?;
            let empty = layer.diff_id == digest::empty_layer_diff_id();
            let now = config::format_time(&chrono::Utc::now());
            let mut rootfs = parent_cfg.rootfs.clone();
            let mut layers: Vec<Descriptor> = parent_layers.iter().map(|l| l.blob.clone()).collect();
            if !empty {
                rootfs.diff_ids.push(layer.diff_id.clone());
                layers.push(Descriptor {
                    media_type: OCI_LAYER_TAR.into(),
                    digest: layer.blob.digest.clone(),
                    size: layer.blob.size,
                });
            }
            let mut history = parent_cfg.history.clone();
            history.push(History {
                created: Some(now.clone()),
                author: opts.author.clone(),
                created_by: container_config.cmd.clone().unwrap_or_default().join(" "),
                comment: opts.comment.clone(),
                empty_layer: empty,
            });
            let new_cfg = ImageConfig {
                architecture: if parent_cfg.architecture.is_empty() {
                    crate::manifest::host_architecture().to_owned()
                } else {
                    parent_cfg.architecture.clone()
                },
                author: opts.author.clone(),
                config: Some(cfg.clone()),
                container: opts.container_id.clone(),
                container_config: Some(container_config.clone()),
                created: Some(now),
                docker_version: self.docker_version.clone(),
                history,
                os: "linux".into(),
                os_version: parent_cfg.os_version.clone(),
                rootfs: RootFs {
                    kind: "layers".into(),
                    diff_ids: rootfs.diff_ids,
                },
                variant: parent_cfg.variant.clone(),
                ..Default::default()
            };
            let bytes = new_cfg.to_bytes()?;
            let (id, _) = self.record_image(
                lease,
                NewImage {
                    config: &bytes,
                    layers,
                    tags: tag.clone().into_iter().collect(),
                    parent: Some(image.clone()),
                    ..Default::default()
                },
            )?;
            Ok(id)
        })
    }
}
