//! The engine's side of images: berth-image's store behind async calls (its work is
//! blocking I/O, run on the blocking pool), with its errors mapped to engine errors and
//! its answers in the API's shapes.

use crate::util::convert;
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
    /// The image's platform (os/architecture/variant of its config).
    pub platform: berth_registry::manifest::Platform,
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

    /// The layer-unpacking bounds in force (decompression bombs, free space).
    pub fn unpack_limit(&self) -> &berth_image::layer::unpack::UnpackLimit {
        self.store.unpack_limit()
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
        let platform = berth_registry::manifest::Platform::new(
            if cfg.os.is_empty() { "linux" } else { &cfg.os },
            &cfg.architecture,
            Some(cfg.variant.as_str()).filter(|v| !v.is_empty()),
        );
        Ok(ResolvedImage { id: id.to_string(), config: cfg.config.as_ref().map(convert).transpose()?.unwrap_or_default(), platform })
    }

    /// The ID of `name`'s image for `platform`: the platform's own when a multi-platform
    /// image keeps it, else the image `name` names if it is of that platform; 404 with
    /// dockerd's message otherwise.
    pub async fn resolve_platform_id(&self, name: &str, platform: &berth_registry::manifest::Platform) -> Result<String> {
        let (n, p) = (name.to_string(), platform.clone().normalised().to_string());
        let (id, cfg) = self
            .blocking(move |s| {
                let id = s.resolve_platform(&n, &p)?;
                let cfg = s.config(&id.to_string())?;
                Ok((id, cfg))
            })
            .await
            .map_err(|e| if e.kind == ErrorKind::NotFound { Error::no_such_image(&normalize_for_message(name)) } else { e })?;
        let have = berth_registry::manifest::Platform::new(if cfg.os.is_empty() { "linux" } else { &cfg.os }, &cfg.architecture, Some(cfg.variant.as_str()).filter(|v| !v.is_empty())).normalised();
        if !platform.matches(&have) {
            return Err(Error::not_found(format!(
                "image with reference {name} was found but does not match the specified platform: wanted {}, actual: {have}",
                platform.clone().normalised()
            )));
        }
        Ok(id.to_string())
    }

    /// The platforms a multi-platform image keeps under `name` (empty otherwise).
    pub async fn platforms(&self, name: &str) -> Result<Vec<(String, String)>> {
        let n = name.to_string();
        self.blocking(move |s| Ok(s.platforms(&n).into_iter().map(|(p, d)| (p, d.to_string())).collect())).await
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        ContainerRecord::dir(&self.data_root, id)
    }

    /// A container's snapshot; `volatile` for one that is thrown away at exit (`--rm`).
    pub async fn prepare_snapshot(&self, key: &str, image_id: &str, volatile: bool) -> Result<()> {
        let (k, img, dir) = (key.to_string(), image_id.to_string(), self.container_dir(key));
        let opts = SnapshotOptions { volatile, ..SnapshotOptions::default() };
        self.blocking(move |s| s.prepare_snapshot(&k, &img, &dir, &opts).map(|_| ())).await
    }

    /// The data root's trash (see [`berth_image::fsutil::Trash`]).
    pub fn trash(&self) -> Arc<berth_image::fsutil::Trash> {
        self.store().trash()
    }

    pub async fn mount_snapshot(&self, key: &str, target: &Path) -> Result<()> {
        let (k, t) = (key.to_string(), target.to_path_buf());
        self.blocking(move |s| s.mount_snapshot(&k, &t)).await
    }

    /// [`Self::mount_snapshot`] with the image's layers id-mapped into the user namespace
    /// kept at `userns` (an nsfs file) whose root is `root` (host uid, gid).
    pub async fn mount_snapshot_idmapped(&self, key: &str, target: &Path, userns: &Path, root: (u32, u32)) -> Result<()> {
        let (k, t, u) = (key.to_string(), target.to_path_buf(), userns.to_path_buf());
        self.blocking(move |s| {
            use std::os::fd::AsFd;
            let ns = std::fs::File::open(&u).map_err(|e| berth_image::ImageError::Io { context: format!("open {}", u.display()), source: e })?;
            let idmap = berth_image::mount::Idmap { userns: ns.as_fd(), root_uid: root.0, root_gid: root.1 };
            s.mount_snapshot_idmapped(&k, &t, &idmap)
        })
        .await
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

    /// Removes a container's snapshot; `discard`: its directories go to the trash
    /// (deleted in the background) instead of being deleted before this returns.
    pub async fn remove_snapshot(&self, key: &str, discard: bool) -> Result<()> {
        let k = key.to_string();
        match self.blocking(move |s| if discard { s.discard_snapshot(&k) } else { s.remove_snapshot(&k) }).await {
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    /// Snapshots whose container no longer exists (a create cut short by a crash).
    pub async fn remove_orphan_snapshots(&self, live: &std::collections::HashSet<String>) {
        let keys: Vec<String> = self.store.snapshots().into_iter().map(|s| s.key).filter(|k| !live.contains(k)).collect();
        for k in keys {
            let _ = self.remove_snapshot(&k, false).await;
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

    pub async fn export<W: Write + Send + 'static>(&self, key: &str, out: W, unmap: Option<berth_image::layer::diff::IdUnmap>) -> Result<()> {
        let k = key.to_string();
        self.blocking(move |s| s.export_unmapped(&k, out, unmap.as_ref()).map(|_| ())).await
    }

    pub async fn commit(&self, key: &str, opts: CommitOptions) -> Result<String> {
        let k = key.to_string();
        self.blocking(move |s| s.commit(&k, &opts)).await.map(|d| d.to_string())
    }

    pub async fn import<R: Read + Send + 'static>(&self, input: R, opts: ImportOptions) -> Result<String> {
        self.blocking(move |s| s.import(input, &opts)).await.map(|d| d.to_string())
    }

    /// `docker load`; `progress` gets Docker's lines ("Loaded image: ...").
    pub async fn load<R: Read + Send + 'static>(&self, input: R, progress: impl FnMut(String) + Send + 'static) -> Result<Vec<String>> {
        self.load_platform(input, None, progress).await
    }

    pub async fn load_platform<R: Read + Send + 'static>(&self, input: R, platform: Option<String>, mut progress: impl FnMut(String) + Send + 'static) -> Result<Vec<String>> {
        self.blocking(move |s| {
            let loaded = s.load_platform(input, platform.as_deref(), &mut |ev: &LoadEvent| progress(ev.to_string()))?;
            Ok(loaded.into_iter().map(|l| l.id.to_string()).collect())
        })
        .await
    }

    pub async fn save<W: Write + Send + 'static>(&self, names: Vec<String>, out: W) -> Result<()> {
        self.save_platform(names, None, out).await
    }

    pub async fn save_platform<W: Write + Send + 'static>(&self, names: Vec<String>, platform: Option<String>, out: W) -> Result<()> {
        self.blocking(move |s| {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            s.save_platform(&refs, platform.as_deref(), out).map(|_| ())
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

impl crate::engine::Engine {
    /// Which images containers use (running or not), for rmi and prune.
    pub(crate) fn image_users(&self) -> ImageUsers {
        let mut u = ImageUsers::new();
        for c in self.containers.list() {
            let rec = c.snapshot();
            if let Ok(d) = berth_image::Digest::parse(&rec.image_id) {
                u.add(d, rec.id.clone(), rec.state.status.is_alive());
            }
        }
        u
    }

    /// `GET /images/json` with Docker's filters.
    pub async fn image_list(&self, filters: &berth_types::filters::Filters, all: bool) -> Result<Vec<ImageSummary>> {
        filters.validate(&["dangling", "label", "label!", "before", "since", "reference", "until"]).map_err(|e| Error::invalid(e.to_string()))?;
        let mut list = self.images.list().await?;
        // Untagged images with children are a build's intermediate images: hidden
        // unless `all`, as dockerd does.
        let parents: std::collections::HashSet<String> = list.iter().filter(|i| !i.parent_id.is_empty()).map(|i| i.parent_id.clone()).collect();
        if !all {
            list.retain(|i| !(i.repo_tags.is_empty() && i.repo_digests.is_empty() && parents.contains(&i.id)));
        }
        let recs: Vec<_> = self.containers.list().iter().map(|c| c.snapshot()).collect();
        let created_of = |name: &str| -> Result<i64> {
            let id = self.images.store.resolve(name).map_err(image_err)?.to_string();
            Ok(list_created(&self.images, &id))
        };
        let before = filters.get("before").first().map(|b| created_of(b)).transpose()?;
        let since = filters.get("since").first().map(|b| created_of(b)).transpose()?;
        let until = filters.get("until").first().map(|u| crate::util::parse_timestamp(u, chrono::Utc::now()).map(|t| t.timestamp()).ok_or_else(|| Error::invalid(format!("invalid filter 'until={u}'")))).transpose()?;
        let dangling = match filters.get("dangling").first().map(String::as_str) {
            None => None,
            Some("true") | Some("1") => Some(true),
            Some("false") | Some("0") => Some(false),
            Some(v) => return Err(Error::invalid(format!("invalid filter 'dangling={v}'"))),
        };
        let refs = filters.get("reference").to_vec();
        list.retain(|i| {
            if let Some(d) = dangling
                && i.repo_tags.is_empty() != d {
                    return false;
                }
            if !filters.matches_labels("label", &i.labels) {
                return false;
            }
            if filters.get("label!").iter().any(|l| match l.split_once('=') {
                Some((k, v)) => i.labels.get(k).is_some_and(|x| x == v),
                None => i.labels.contains_key(l.as_str()),
            }) {
                return false;
            }
            if before.is_some_and(|b| i.created >= b) || since.is_some_and(|s| i.created <= s) || until.is_some_and(|u| i.created > u) {
                return false;
            }
            if !refs.is_empty() && !i.repo_tags.iter().any(|t| refs.iter().any(|r| reference_matches(r, t))) {
                return false;
            }
            true
        });
        for i in list.iter_mut() {
            i.containers = recs.iter().filter(|r| r.image_id == i.id).count() as i64;
        }
        list.sort_by(|a, b| b.created.cmp(&a.created));
        Ok(list)
    }

    pub async fn image_remove(&self, name: &str, force: bool, noprune: bool) -> Result<Vec<DeleteItem>> {
        let items = self.images.remove(name, force, !noprune, self.image_users()).await?;
        for it in &items {
            if let Some(t) = &it.untagged {
                self.events.emit("image", "untag", t, Default::default());
            }
            if let Some(d) = &it.deleted {
                self.events.emit("image", "delete", d, Default::default());
            }
        }
        Ok(items)
    }

    pub async fn image_prune(&self, filters: &berth_types::filters::Filters) -> Result<ImagePruneResponse> {
        filters.validate(&["dangling", "until", "label", "label!"]).map_err(|e| Error::invalid(e.to_string()))?;
        let all = matches!(filters.get("dangling").first().map(String::as_str), Some("false") | Some("0"));
        let mut pf = berth_image::PruneFilters::default();
        if let Some(u) = filters.get("until").first() {
            pf.until = Some(crate::util::parse_timestamp(u, chrono::Utc::now()).ok_or_else(|| Error::invalid(format!("invalid filter 'until={u}'")))?.timestamp());
        }
        for l in filters.get("label") {
            pf.labels.push(berth_image::LabelFilter::parse(l, false));
        }
        for l in filters.get("label!") {
            pf.labels.push(berth_image::LabelFilter::parse(l, true));
        }
        let r = self.images.prune(all, pf, self.image_users()).await?;
        self.events.emit("image", "prune", "", [("reclaimed".to_string(), r.space_reclaimed.to_string())].into_iter().collect());
        Ok(r)
    }

    pub async fn image_tag(&self, source: &str, repo: &str, tag: &str) -> Result<()> {
        if repo.is_empty() {
            return Err(Error::invalid("repository name must have at least one component"));
        }
        let target = if tag.is_empty() { format!("{repo}:latest") } else { format!("{repo}:{tag}") };
        self.images.tag(source, &target).await?;
        let id = self.images.store.resolve(source).map(|d| d.to_string()).unwrap_or_default();
        self.events.emit("image", "tag", &id, [("name".to_string(), target)].into_iter().collect());
        Ok(())
    }

    pub async fn image_import<R: Read + Send + 'static>(&self, input: R, tag: Option<String>, changes: Vec<String>, message: Option<String>, source: String) -> Result<String> {
        self.image_import_for(input, tag, changes, message, source, "").await
    }

    /// `import` with the API's `platform` (`os[/arch[/variant]]`; empty: the host's).
    pub async fn image_import_for<R: Read + Send + 'static>(&self, input: R, tag: Option<String>, changes: Vec<String>, message: Option<String>, source: String, platform: &str) -> Result<String> {
        let platform = if platform.is_empty() {
            None
        } else {
            let p = parse_platform_arg(platform)?;
            Some((p.os.clone(), p.architecture.clone(), p.variant.clone().unwrap_or_default()))
        };
        let opts = ImportOptions { changes, tag, message, source: Some(source), created: None, platform };
        let id = self.images.import(input, opts).await?;
        self.events.emit("image", "import", &id, Default::default());
        Ok(id)
    }
}

/// `os[/arch[/variant]]` as the API's string `platform` parameters take it (an OS
/// alone means the host's architecture, as containerd's platforms.Parse).
pub fn parse_platform_arg(s: &str) -> Result<berth_registry::manifest::Platform> {
    let full = if s.contains('/') { s.to_string() } else { format!("{s}/{}", crate::emulation::host_arch()) };
    full.parse::<berth_registry::manifest::Platform>().map_err(|e| Error::invalid(e.to_string()))
}

fn list_created(images: &ImageService, id: &str) -> i64 {
    images.store.list().ok().and_then(|l| l.into_iter().find(|i| i.id.to_string() == id).map(|i| i.created)).unwrap_or(0)
}

/// Docker's `reference` filter: a (familiar) name with an optional tag, `*` globs.
fn reference_matches(pattern: &str, tag: &str) -> bool {
    let (pn, pt) = split_tag(pattern);
    let (tn, tt) = split_tag(tag);
    glob(pn, tn) && pt.is_none_or(|p| glob(p, tt.unwrap_or("latest")))
}

fn split_tag(s: &str) -> (&str, Option<&str>) {
    match s.rfind(':') {
        Some(i) if !s[i..].contains('/') => (&s[..i], Some(&s[i + 1..])),
        _ => (s, None),
    }
}

fn glob(p: &str, s: &str) -> bool {
    match p.find('*') {
        None => p == s,
        Some(i) => {
            let (pre, rest) = (&p[..i], &p[i + 1..]);
            if !s.starts_with(pre) {
                return false;
            }
            let s = &s[pre.len()..];
            (0..=s.len()).any(|k| s.is_char_boundary(k) && !s[..k].contains('/') && glob(rest, &s[k..]))
        }
    }
}

impl crate::engine::Engine {
    pub async fn images_inspect(&self, name: &str) -> Result<serde_json::Value> {
        self.images.inspect(name).await
    }

    /// The image `name` names for a platform (`--platform`): its ID.
    pub async fn image_for_platform(&self, name: &str, platform: &berth_registry::manifest::Platform) -> Result<String> {
        self.images.resolve_platform_id(name, platform).await
    }

    pub async fn images_history(&self, name: &str) -> Result<Vec<HistoryItem>> {
        self.images.history(name).await
    }

    pub async fn images_save<W: Write + Send + 'static>(&self, names: Vec<String>, out: W) -> Result<()> {
        self.images_save_for(names, None, out).await
    }

    /// `docker save [--platform P]`.
    pub async fn images_save_for<W: Write + Send + 'static>(&self, names: Vec<String>, platform: Option<&berth_registry::manifest::Platform>, out: W) -> Result<()> {
        if let Some(p) = platform {
            for n in &names {
                self.images.resolve_platform_id(n, p).await?;
            }
        }
        let r = self.images.save_platform(names.clone(), platform.map(|p| p.clone().normalised().to_string()), out).await;
        if r.is_ok() {
            for n in names {
                self.events.emit("image", "save", &n, Default::default());
            }
        }
        r
    }

    pub async fn images_load<R: Read + Send + 'static>(&self, input: R, progress: impl FnMut(String) + Send + 'static) -> Result<Vec<String>> {
        self.images_load_for(input, None, progress).await
    }

    /// `docker load [--platform P]`.
    pub async fn images_load_for<R: Read + Send + 'static>(&self, input: R, platform: Option<&berth_registry::manifest::Platform>, progress: impl FnMut(String) + Send + 'static) -> Result<Vec<String>> {
        let ids = self.images.load_platform(input, platform.map(|p| p.clone().normalised().to_string()), progress).await?;
        for id in &ids {
            self.events.emit("image", "load", id, Default::default());
        }
        Ok(ids)
    }
}
