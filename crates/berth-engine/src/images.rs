//! The engine's side of images: berth-image's store behind async calls (its work is
//! blocking I/O, run on the blocking pool), with its errors mapped to engine errors and
//! its answers in the API's shapes.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_image::{CommitOptions, ImageError, ImageStore, ImageUsers, ImportOptions, LoadEvent, SnapshotOptions, StoreOptions};
use berth_types::container::{Config, FilesystemChange};
use berth_types::image::{DeleteItem, HistoryItem, ImagePruneResponse, ImageSummary};

use crate::config::EngineConfig;
use crate::container::ContainerRecord;
use crate::error::{Error, ErrorKind, Result};

pub struct ImageService {
    store: Arc<ImageStore>,
    data_root: PathBuf,
}

/// An image a container is created from.
pub struct ResolvedImage {
    /// `sha256:...`
    pub id: String,
    pub config: Config,
}

pub(crate) fn image_err(e: ImageError) -> Error {
    let kind = match e.kind() {
        berth_image::ErrorKind::NotFound => ErrorKind::NotFound,
        berth_image::ErrorKind::InvalidArgument => ErrorKind::InvalidParameter,
        berth_image::ErrorKind::Conflict => ErrorKind::Conflict,
        berth_image::ErrorKind::ResourceExhausted => ErrorKind::InvalidParameter,
        berth_image::ErrorKind::System => ErrorKind::System,
    };
    Error::new(kind, e.to_string())
}

/// Converts between the image crate's and the API's JSON-shaped types.
pub(crate) fn convert<A: serde::Serialize, B: serde::de::DeserializeOwned + Default>(a: &A) -> B {
    serde_json::to_value(a).ok().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default()
}

impl ImageService {
    pub async fn open(cfg: &EngineConfig) -> Result<ImageService> {
        let mut opts = StoreOptions::default();
        if cfg.min_free_space.is_some() || cfg.max_layer_size.is_some() {
            opts.unpack_limit = Some(berth_image::UnpackLimit {
                max_layer_bytes: cfg.max_layer_size,
                min_free_bytes: cfg.min_free_space.unwrap_or(1 << 30),
            });
        }
        let root = cfg.data_root.clone();
        let store = tokio::task::spawn_blocking(move || ImageStore::open(&root, opts))
            .await
            .map_err(|e| Error::system(e.to_string()))?
            .map_err(image_err)?;
        Ok(ImageService { store: Arc::new(store), data_root: cfg.data_root.clone() })
    }

    pub fn store(&self) -> Arc<ImageStore> {
        self.store.clone()
    }

    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(&ImageStore) -> berth_image::Result<T> + Send + 'static) -> Result<T> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store)).await.map_err(|e| Error::system(e.to_string()))?.map_err(image_err)
    }

    pub async fn resolve(&self, name: &str) -> Result<ResolvedImage> {
        let n = name.to_string();
        let (id, cfg) = self
            .blocking(move |s| {
                let id = s.resolve(&n)?;
                let cfg = s.config(&id.to_string())?;
                Ok((id, cfg))
            })
            .await
            .map_err(|e| if e.kind == ErrorKind::NotFound { Error::no_such_image(&normalize_for_message(name)) } else { e })?;
        Ok(ResolvedImage { id: id.to_string(), config: cfg.config.as_ref().map(convert).unwrap_or_default() })
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        ContainerRecord::dir(&self.data_root, id)
    }

    pub async fn prepare_snapshot(&self, key: &str, image_id: &str) -> Result<()> {
        let (k, img, dir) = (key.to_string(), image_id.to_string(), self.container_dir(key));
        self.blocking(move |s| s.prepare_snapshot(&k, &img, &dir, &SnapshotOptions::default()).map(|_| ())).await
    }

    pub async fn mount_snapshot(&self, key: &str, target: &Path) -> Result<()> {
        let (k, t) = (key.to_string(), target.to_path_buf());
        self.blocking(move |s| s.mount_snapshot(&k, &t)).await
    }

    /// After a daemon restart the rootfs is still mounted: make the store agree.
    pub async fn note_mounted(&self, key: &str, target: &Path) -> Result<()> {
        self.mount_snapshot(key, target).await
    }

    pub async fn unmount_snapshot(&self, key: &str, _target: &Path) -> Result<()> {
        let k = key.to_string();
        match self.blocking(move |s| s.unmount_snapshot(&k)).await {
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    pub async fn remove_snapshot(&self, key: &str) -> Result<()> {
        let k = key.to_string();
        match self.blocking(move |s| s.remove_snapshot(&k)).await {
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    /// Snapshots whose container no longer exists (a create cut short by a crash).
    pub async fn remove_orphan_snapshots(&self, live: &std::collections::HashSet<String>) {
        let keys: Vec<String> = self.store.snapshots().into_iter().map(|s| s.key).filter(|k| !live.contains(k)).collect();
        for k in keys {
            let _ = self.remove_snapshot(&k).await;
        }
    }

    pub async fn changes(&self, key: &str) -> Result<Vec<FilesystemChange>> {
        let k = key.to_string();
        let ch = self.blocking(move |s| s.changes(&k)).await?;
        Ok(ch
            .into_iter()
            .map(|c| FilesystemChange {
                path: c.path,
                kind: match c.kind {
                    berth_image::ChangeKind::Modify => 0,
                    berth_image::ChangeKind::Add => 1,
                    berth_image::ChangeKind::Delete => 2,
                },
            })
            .collect())
    }

    pub async fn export<W: Write + Send + 'static>(&self, key: &str, out: W) -> Result<()> {
        let k = key.to_string();
        self.blocking(move |s| s.export(&k, out).map(|_| ())).await
    }

    pub async fn commit(&self, key: &str, opts: CommitOptions) -> Result<String> {
        let k = key.to_string();
        self.blocking(move |s| s.commit(&k, &opts)).await.map(|d| d.to_string())
    }

    pub async fn import<R: Read + Send + 'static>(&self, input: R, opts: ImportOptions) -> Result<String> {
        self.blocking(move |s| s.import(input, &opts)).await.map(|d| d.to_string())
    }

    /// `docker load`; `progress` gets Docker's lines ("Loaded image: ...").
    pub async fn load<R: Read + Send + 'static>(&self, input: R, mut progress: impl FnMut(String) + Send + 'static) -> Result<Vec<String>> {
        self.blocking(move |s| {
            let loaded = s.load(input, &mut |ev: &LoadEvent| progress(ev.to_string()))?;
            Ok(loaded.into_iter().map(|l| l.id.to_string()).collect())
        })
        .await
    }

    pub async fn save<W: Write + Send + 'static>(&self, names: Vec<String>, out: W) -> Result<()> {
        self.blocking(move |s| {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            s.save(&refs, out).map(|_| ())
        })
        .await
    }

    pub async fn list(&self) -> Result<Vec<ImageSummary>> {
        let list = self.blocking(|s| s.list()).await?;
        Ok(list.into_iter().map(summary).collect())
    }

    pub async fn inspect(&self, name: &str) -> Result<serde_json::Value> {
        let n = name.to_string();
        let i = self.blocking(move |s| s.inspect(&n)).await.map_err(|e| if e.kind == ErrorKind::NotFound { Error::no_such_image(name) } else { e })?;
        serde_json::to_value(i).map_err(|e| Error::system(e.to_string()))
    }

    pub async fn history(&self, name: &str) -> Result<Vec<HistoryItem>> {
        let n = name.to_string();
        let h = self.blocking(move |s| s.history(&n)).await.map_err(|e| if e.kind == ErrorKind::NotFound { Error::no_such_image(name) } else { e })?;
        Ok(h.into_iter()
            .map(|i| HistoryItem { id: i.id, created: i.created, created_by: i.created_by, tags: if i.tags.is_empty() { None } else { Some(i.tags) }, size: i.size as i64, comment: i.comment })
            .collect())
    }

    pub async fn tag(&self, source: &str, target: &str) -> Result<()> {
        let (s1, t) = (source.to_string(), target.to_string());
        self.blocking(move |s| s.tag(&s1, &t)).await.map_err(|e| if e.kind == ErrorKind::NotFound { Error::no_such_image(source) } else { e })
    }

    pub async fn remove(&self, name: &str, force: bool, prune_parents: bool, users: ImageUsers) -> Result<Vec<DeleteItem>> {
        let n = name.to_string();
        let items = self.blocking(move |s| s.remove(&n, force, prune_parents, &users)).await.map_err(|e| {
            if e.kind == ErrorKind::NotFound && e.message.starts_with("No such image") { Error::no_such_image(name) } else { e }
        })?;
        Ok(items.into_iter().map(delete_item).collect())
    }

    pub async fn prune(&self, all: bool, filters: berth_image::PruneFilters, users: ImageUsers) -> Result<ImagePruneResponse> {
        let r = self.blocking(move |s| s.prune(all, &users, &filters)).await?;
        Ok(ImagePruneResponse {
            images_deleted: if r.deleted.is_empty() { None } else { Some(r.deleted.into_iter().map(delete_item).collect()) },
            space_reclaimed: r.space_reclaimed,
        })
    }

    pub async fn disk_usage(&self) -> Result<(i64, Vec<ImageSummary>)> {
        let du = self.blocking(|s| s.disk_usage()).await?;
        let images = du
            .images
            .into_iter()
            .map(|i| {
                let mut s = summary(i.summary);
                s.shared_size = i.shared_size as i64;
                s
            })
            .collect();
        Ok((du.layers_size as i64, images))
    }

    pub fn count(&self) -> i64 {
        self.store.list().map(|l| l.len() as i64).unwrap_or(0)
    }
}

fn summary(s: berth_image::ImageSummary) -> ImageSummary {
    ImageSummary {
        containers: -1,
        created: s.created,
        id: s.id.to_string(),
        labels: s.labels,
        parent_id: s.parent_id.map(|p| p.to_string()).unwrap_or_default(),
        repo_digests: s.repo_digests,
        repo_tags: s.repo_tags,
        shared_size: -1,
        size: s.size as i64,
        virtual_size: s.size as i64,
    }
}

fn delete_item(d: berth_image::DeleteItem) -> DeleteItem {
    match d {
        berth_image::DeleteItem::Untagged(t) => DeleteItem { untagged: Some(t), deleted: None },
        berth_image::DeleteItem::Deleted(t) => DeleteItem { untagged: None, deleted: Some(t) },
    }
}

/// Docker names a missing image with its tag: `busybox` → `busybox:latest`.
fn normalize_for_message(name: &str) -> String {
    if name.contains('@') || name.starts_with("sha256:") {
        return name.to_string();
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') { name.to_string() } else { format!("{name}:latest") }
}
