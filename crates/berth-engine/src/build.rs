//! The engine's side of `docker build`: berth-build decides what each step does;
//! [`EngineBackend`] does it with the daemon's own machinery — the image store's
//! snapshots and child images, containers (with their networks, mounts and
//! resource limits) for RUN, the registry client for base images — and the
//! `/build`, `/build/prune` and build-cache parts of the API are here.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use berth_build::backend::{Backend, ImageRef, Out, RunMount, RunRequest, Workspace};
use berth_build::{BuildError, BuildOptions, Builder, Context, ErrorKind as BuildErrorKind};
use berth_image::{Digest, ImageConfig, SnapshotOptions};
use berth_types::container::{Config, CreateRequest, HostConfig, Mount, TmpfsOptions};
use berth_types::progress::JsonMessage;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::container::live::Output;
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::util::convert;
use crate::WaitCondition;

/// Label that marks a build's intermediate containers (removed at daemon start if
/// a crash left them).
pub const BUILD_LABEL: &str = "io.berth.build.step";

pub type EngineBuilder = Builder<EngineBackend>;

pub struct EngineBackend {
    engine: Weak<Engine>,
    /// Where build workspaces are mounted: `<data-root>/builder/ws/<key>`.
    ws_root: PathBuf,
}

fn build_err(e: Error) -> BuildError {
    let kind = match e.kind {
        ErrorKind::InvalidParameter | ErrorKind::Conflict | ErrorKind::Forbidden => BuildErrorKind::Invalid,
        ErrorKind::NotFound => BuildErrorKind::NotFound,
        _ => BuildErrorKind::System,
    };
    BuildError::new(kind, e.message)
}

fn img_err(e: berth_image::ImageError) -> BuildError {
    build_err(crate::images::image_err(e))
}

/// The engine error for a build error (before the stream starts, it is the HTTP answer).
pub fn engine_err(e: &BuildError) -> Error {
    let kind = match e.kind {
        BuildErrorKind::Invalid => ErrorKind::InvalidParameter,
        BuildErrorKind::NotFound => ErrorKind::NotFound,
        BuildErrorKind::Cancelled | BuildErrorKind::System => ErrorKind::System,
    };
    Error::new(kind, e.message.clone())
}

impl EngineBackend {
    fn engine(&self) -> std::result::Result<Arc<Engine>, BuildError> {
        self.engine.upgrade().ok_or_else(|| BuildError::system("the daemon is shutting down"))
    }

    fn image_ref(engine: &Engine, name: &str) -> std::result::Result<Option<ImageRef>, BuildError> {
        let store = engine.images.store();
        let Ok(id) = store.resolve(name) else { return Ok(None) };
        let config = store.config(&id.to_string()).map_err(img_err)?;
        Ok(Some(ImageRef { id: id.to_string(), config }))
    }

    async fn pull(&self, engine: &Arc<Engine>, name: &str, platform: Option<&str>, auth: Option<&str>, out: &Out) -> std::result::Result<(), BuildError> {
        let reference = berth_registry::reference::Reference::parse(name).map_err(|e| BuildError::invalid(e.to_string()))?;
        let auth = registry_auth_for(auth, reference.registry());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<berth_registry::client::Progress>();
        let fwd_out = out.clone();
        let fwd = tokio::spawn(async move {
            while let Some(p) = rx.recv().await {
                for m in p.to_json_messages() {
                    let _ = fwd_out.send(m);
                }
            }
        });
        let r = engine.image_pull(name, "", platform.unwrap_or(""), auth, false, tx).await;
        let _ = fwd.await;
        r.map(|_| ()).map_err(|e| {
            let mut b = build_err(e);
            b.message = format!("pulling {name}: {}", b.message);
            b
        })
    }
}

/// The credentials X-Registry-Config holds for `registry` (a base64url JSON map of
/// server address → auth config, Docker Hub under its v1 URL).
fn registry_auth_for(header: Option<&str>, registry: &str) -> berth_registry::client::AuthConfig {
    use base64::Engine as _;
    let Some(h) = header.filter(|h| !h.trim().is_empty()) else { return Default::default() };
    let bytes = base64::engine::general_purpose::URL_SAFE.decode(h.trim()).or_else(|_| base64::engine::general_purpose::STANDARD.decode(h.trim())).unwrap_or_default();
    let map: HashMap<String, berth_registry::client::AuthConfig> = serde_json::from_slice(&bytes).unwrap_or_default();
    let hub = registry == "docker.io" || registry == "registry-1.docker.io" || registry == "index.docker.io";
    for (k, v) in map {
        let host = k.trim_start_matches("https://").trim_start_matches("http://").split('/').next().unwrap_or("").to_string();
        if host == registry || (hub && (host == "index.docker.io" || host == "docker.io" || host == "registry-1.docker.io")) {
            return v.with_decoded_auth().unwrap_or_default();
        }
    }
    Default::default()
}

impl Backend for EngineBackend {
    fn base_image<'a>(&'a self, name: &'a str, platform: Option<&'a str>, pull: bool, auth: Option<&'a str>, out: &'a Out) -> BoxFuture<'a, std::result::Result<ImageRef, BuildError>> {
        async move {
            let engine = self.engine()?;
            if !pull
                && let Some(img) = Self::image_ref(&engine, name)? {
                    return Ok(img);
                }
            match self.pull(&engine, name, platform, auth, out).await {
                Ok(()) => {}
                // `--pull` of an image that only exists here (made by a build or an
                // import) keeps the local one, as dockerd's classic builder does
                // when the registry has no such repository.
                Err(e) if pull && Self::image_ref(&engine, name)?.is_some() => {
                    let _ = out.send(JsonMessage::stream(format!("[Warning] pulling {name} failed ({e}); using the local image\n")));
                }
                Err(e) => return Err(e),
            }
            Self::image_ref(&engine, name)?.ok_or_else(|| BuildError::not_found(format!("pull access denied for {name}, repository does not exist or may require 'docker login'")))
        }
        .boxed()
    }

    fn local_image<'a>(&'a self, name: &'a str) -> BoxFuture<'a, std::result::Result<Option<ImageRef>, BuildError>> {
        async move {
            let engine = self.engine()?;
            Self::image_ref(&engine, name)
        }
        .boxed()
    }

    fn prepare<'a>(&'a self, parent: Option<&'a str>) -> BoxFuture<'a, std::result::Result<Workspace, BuildError>> {
        async move {
            let engine = self.engine()?;
            let store = engine.images.store();
            let key = format!("build-{}", crate::util::random_id());
            let dir = self.ws_root.join(&key[6..18]);
            let parent = parent.map(str::to_string);
            let k = key.clone();
            tokio::task::spawn_blocking(move || {
                std::fs::create_dir_all(&dir)?;
                let r = (|| {
                    store.prepare_snapshot_of(&k, parent.as_deref(), &dir, &SnapshotOptions { init_layer: false, volatile: true })?;
                    let rootfs = dir.join("rootfs");
                    if let Err(e) = store.mount_snapshot(&k, &rootfs) {
                        let _ = store.remove_snapshot(&k);
                        return Err(e);
                    }
                    Ok(rootfs)
                })();
                match r {
                    Ok(rootfs) => Ok(Workspace { key: k, rootfs, container: None }),
                    Err(e) => {
                        let _ = std::fs::remove_dir_all(&dir);
                        Err(img_err(e))
                    }
                }
            })
            .await
            .map_err(|e| BuildError::system(e.to_string()))?
        }
        .boxed()
    }

    fn run<'a>(&'a self, req: RunRequest, out: &'a Out, cancel: &'a CancellationToken) -> BoxFuture<'a, std::result::Result<(Workspace, i32), BuildError>> {
        async move {
            let engine = self.engine()?;
            let mut config: Config = convert(&req.config).map_err(build_err)?;
            config.image = req.image.clone();
            config.labels = Some(req.labels.clone());
            config.attach_stdout = true;
            config.attach_stderr = true;
            config.hostname = String::new();
            let r = &req.resources;
            let mut hc = HostConfig {
                network_mode: req.network.clone(),
                extra_hosts: if req.extra_hosts.is_empty() { None } else { Some(req.extra_hosts.clone()) },
                memory: r.memory,
                memory_swap: r.memory_swap,
                cpu_shares: r.cpu_shares,
                cpuset_cpus: r.cpuset_cpus.clone(),
                cpu_period: r.cpu_period,
                cpu_quota: r.cpu_quota,
                shm_size: r.shm_size,
                cgroup_parent: r.cgroup_parent.clone(),
                ..Default::default()
            };
            hc.log_config.kind = "none".into();
            if !r.ulimits.is_empty() {
                hc.ulimits = convert(&r.ulimits).map_err(build_err)?;
            }
            let mut mounts = Vec::new();
            for m in &req.mounts {
                mounts.push(match m {
                    RunMount::Bind { source, target, readonly } => Mount {
                        kind: "bind".into(),
                        source: source.to_string_lossy().into_owned(),
                        target: target.clone(),
                        read_only: *readonly,
                        ..Default::default()
                    },
                    RunMount::Tmpfs { target, size } => Mount {
                        kind: "tmpfs".into(),
                        target: target.clone(),
                        tmpfs_options: size.map(|s| TmpfsOptions { size_bytes: s as i64, ..Default::default() }),
                        ..Default::default()
                    },
                });
            }
            if !mounts.is_empty() {
                hc.mounts = Some(mounts);
            }
            let created = engine.create_container(None, CreateRequest { config, host_config: Some(hc), networking_config: None }).await.map_err(build_err)?;
            let id = created.id;
            let ws = Workspace { key: id.clone(), rootfs: engine.rootfs_of(&id), container: Some(id.clone()) };
            let _ = out.send(JsonMessage::stream(format!(" ---> Running in {}\n", &id[..12])));
            let (_, mut output) = match engine.attach_output(&id) {
                Ok(x) => x,
                Err(e) => {
                    self.release(ws).await;
                    return Err(build_err(e));
                }
            };
            if let Err(e) = engine.start_container(&id).await {
                self.release(ws).await;
                return Err(build_err(e));
            }
            let fwd_out = out.clone();
            // Output is passed on as it comes, while the step runs.
            let forward = tokio::spawn(async move {
                loop {
                    match output.recv().await {
                        Ok(Output::Stdout(b)) | Ok(Output::Stderr(b)) => {
                            let _ = fwd_out.send(JsonMessage::stream(String::from_utf8_lossy(&b).into_owned()));
                        }
                        Ok(Output::End) | Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    }
                }
            });
            let wait = engine.wait_container(&id, WaitCondition::NotRunning);
            tokio::pin!(wait);
            let status = tokio::select! {
                w = &mut wait => w,
                _ = cancel.cancelled() => {
                    let _ = engine.kill_container(&id, Some("KILL")).await;
                    (&mut wait).await
                }
            };
            // The output ends with the process; give the forwarder what is left.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), forward).await;
            match status {
                Ok(w) => Ok((ws, w.status_code as i32)),
                Err(e) => {
                    self.release(ws).await;
                    Err(build_err(e))
                }
            }
        }
        .boxed()
    }

    fn commit<'a>(&'a self, ws: &'a Workspace, parent: Option<&'a str>, config: ImageConfig) -> BoxFuture<'a, std::result::Result<(String, bool), BuildError>> {
        async move {
            let engine = self.engine()?;
            let store = engine.images.store();
            let key = ws.key.clone();
            let parent = parent.map(Digest::parse).transpose().map_err(img_err)?;
            // A RUN step's container under --userns-remap: owners as it saw them.
            let unmap = engine.containers.get(&key).ok().and_then(|c| c.with(|r| r.ext.userns.as_ref().map(|u| u.unmap())));
            let (id, layer) = tokio::task::spawn_blocking(move || store.commit_child_unmapped(&key, parent.as_ref(), config, unmap.as_ref()))
                .await
                .map_err(|e| BuildError::system(e.to_string()))?
                .map_err(img_err)?;
            Ok((id.to_string(), layer))
        }
        .boxed()
    }

    fn record<'a>(&'a self, parent: Option<&'a str>, config: ImageConfig) -> BoxFuture<'a, std::result::Result<String, BuildError>> {
        async move {
            let engine = self.engine()?;
            let store = engine.images.store();
            let parent = parent.map(Digest::parse).transpose().map_err(img_err)?;
            let id = tokio::task::spawn_blocking(move || store.record_child(parent.as_ref(), config))
                .await
                .map_err(|e| BuildError::system(e.to_string()))?
                .map_err(img_err)?;
            Ok(id.to_string())
        }
        .boxed()
    }

    fn adopt<'a>(&'a self, parent: Option<&'a str>, config: ImageConfig, donor: &'a str, layer: Option<usize>) -> BoxFuture<'a, std::result::Result<String, BuildError>> {
        async move {
            let engine = self.engine()?;
            let store = engine.images.store();
            let parent = parent.map(Digest::parse).transpose().map_err(img_err)?;
            let donor = Digest::parse(donor).map_err(img_err)?;
            let id = tokio::task::spawn_blocking(move || store.adopt_child(parent.as_ref(), config, &donor, layer))
                .await
                .map_err(|e| BuildError::system(e.to_string()))?
                .map_err(img_err)?;
            Ok(id.to_string())
        }
        .boxed()
    }

    fn release(&self, ws: Workspace) -> BoxFuture<'_, ()> {
        async move {
            let Ok(engine) = self.engine() else { return };
            if let Some(c) = &ws.container {
                if let Err(e) = engine.remove_container(c, true, true).await {
                    tracing::warn!("build: removing intermediate container {}: {}", &c[..12], e.message);
                }
                return;
            }
            let store = engine.images.store();
            let dir = ws.rootfs.parent().map(Path::to_path_buf);
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(e) = store.remove_snapshot(&ws.key) {
                    tracing::warn!("build: removing workspace {}: {e}", ws.key);
                }
                if let Some(d) = dir {
                    let _ = std::fs::remove_dir(d.join("rootfs"));
                    let _ = std::fs::remove_dir(&d);
                }
            })
            .await;
        }
        .boxed()
    }

    fn resolve_user(&self, rootfs: &Path, spec: &str) -> std::result::Result<(u32, u32), BuildError> {
        chown_ids(rootfs, spec)
    }

    fn tag<'a>(&'a self, id: &'a str, tags: &'a [String]) -> BoxFuture<'a, std::result::Result<(), BuildError>> {
        async move {
            let engine = self.engine()?;
            for t in tags {
                engine.images.tag(id, &tag_target(t)).await.map_err(build_err)?;
                engine.events.emit("image", "tag", id, [("name".to_string(), tag_target(t))].into_iter().collect());
            }
            Ok(())
        }
        .boxed()
    }
}

/// `name` or `name:tag`: the tag a build applies (`:latest` when none is given).
fn tag_target(t: &str) -> String {
    let last = t.rsplit('/').next().unwrap_or(t);
    if last.contains(':') { t.to_string() } else { format!("{t}:latest") }
}

/// `--chown`'s ids: user and group by name (from the image's files) or number; a
/// missing group means the same number as the uid (Docker's rule for COPY).
pub fn chown_ids(rootfs: &Path, spec: &str) -> std::result::Result<(u32, u32), BuildError> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let uid = match u.parse::<u32>() {
        Ok(n) => n,
        Err(_) => crate::container::user::resolve(rootfs, u, &[]).map_err(|_| BuildError::invalid(format!("unable to convert uid/gid chown string to host mapping: can't find uid for user {u}: no such user: {u}")))?.uid,
    };
    let gid = match g {
        None => uid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => crate::container::user::resolve(rootfs, &format!("0:{g}"), &[]).map_err(|_| BuildError::invalid(format!("unable to convert uid/gid chown string to host mapping: can't find gid for group {g}: no such group: {g}")))?.gid,
        },
    };
    Ok((uid, gid))
}

impl Engine {
    pub(crate) fn open_builder(self: &Arc<Self>) -> std::io::Result<Arc<EngineBuilder>> {
        let root = self.cfg.data_root.join("builder");
        let ws_root = root.join("ws");
        std::fs::create_dir_all(&ws_root)?;
        let http = berth_registry::client::transport::build_http("build", &Default::default(), false, "berth-builder", std::time::Duration::from_secs(30))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Arc::new(Builder::open(Arc::new(EngineBackend { engine: Arc::downgrade(self), ws_root }), &root, http)?))
    }

    fn builder(&self) -> Result<Arc<EngineBuilder>> {
        self.builder.get().cloned().ok_or_else(|| Error::unavailable("the builder is not ready"))
    }

    /// `POST /build`: receives the context from `input`, builds, streams messages to
    /// `out`. Returns the image ID.
    pub async fn build<R: Read + Send + 'static>(&self, input: R, opts: BuildOptions, out: Out, cancel: CancellationToken) -> std::result::Result<String, BuildError> {
        let builder = self.builder().map_err(build_err)?;
        for t in &opts.tags {
            berth_image::Reference::parse_tagged(t).map_err(|e| BuildError::invalid(format!("invalid reference format: {t}: {e}")))?;
        }
        let dir = builder.tmp_dir().join(format!("ctx-{}", &crate::util::random_id()[..16]));
        let dockerfile = opts.dockerfile.clone();
        let limit = berth_image::UnpackLimit::keep_free(self.cfg.min_free_space.unwrap_or(1 << 30));
        let t0 = std::time::Instant::now();
        let ctx = tokio::task::spawn_blocking(move || Context::receive(input, &dir, &dockerfile, &limit))
            .await
            .map_err(|e| BuildError::system(e.to_string()))??;
        tracing::debug!("build: context received in {:?}", t0.elapsed());
        let r = builder.build(Arc::new(ctx), opts, out, cancel).await;
        tracing::debug!("build: done in {:?}", t0.elapsed());
        if let Ok(id) = &r {
            self.events.emit("image", "build", id, Default::default());
        }
        r
    }

    /// Registers a build under the ID its client gave (`buildid=`).
    pub fn register_build(&self, id: &str, token: CancellationToken) -> Option<berth_build::driver::Registration> {
        self.builder().ok().map(|b| b.register(id, token))
    }

    /// `POST /build/cancel`.
    pub fn cancel_build(&self, id: &str) -> bool {
        self.builder().map(|b| b.cancel(id)).unwrap_or(false)
    }

    /// `remote=`: a context (tarball, maybe compressed, or a plain Dockerfile) fetched
    /// from a URL into the builder's scratch space; read from there, removed when closed.
    pub async fn fetch_remote_context(&self, url: &str) -> std::result::Result<std::fs::File, BuildError> {
        if url.starts_with("git://") || url.starts_with("git@") || url.starts_with("github.com/") || url.split(['#', '?']).next().is_some_and(|u| u.ends_with(".git")) {
            return Err(BuildError::invalid(format!("git build contexts are not supported by berth ({url}): clone the repository and send it as the context")));
        }
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(BuildError::invalid(format!("unable to prepare context: remote context {url:?} is not an http(s) URL")));
        }
        let builder = self.builder().map_err(build_err)?;
        let dir = builder.tmp_dir().join(format!("remote-{}", &crate::util::random_id()[..16]));
        std::fs::create_dir_all(&dir)?;
        let r = berth_build::fetch::download(builder.http(), url, &dir, None).await;
        let file = r.and_then(|(path, _)| std::fs::File::open(&path).map_err(BuildError::from));
        // The open file outlives its name.
        let _ = std::fs::remove_dir_all(&dir);
        file
    }

    /// Removes what a build cut short by a crash left: intermediate containers and
    /// workspace mounts (their snapshots go with the orphan-snapshot sweep).
    pub(crate) async fn clean_build_leftovers(self: &Arc<Self>) {
        for c in self.containers.list() {
            let labelled = c.with(|r| r.config.labels.as_ref().is_some_and(|l| l.contains_key(BUILD_LABEL)));
            if labelled {
                let id = c.id.clone();
                if let Err(e) = self.remove_container(&id, true, true).await {
                    tracing::warn!("removing leftover build container {}: {}", &id[..12], e.message);
                }
            }
        }
    }

    /// Build workspace directories whose snapshots are gone (after the orphan
    /// sweep): unmount what is still mounted there, then remove them.
    pub(crate) fn clean_build_workspaces(&self) {
        let ws_root = self.cfg.data_root.join("builder").join("ws");
        let Ok(rd) = std::fs::read_dir(&ws_root) else { return };
        for d in rd.flatten() {
            let rootfs = d.path().join("rootfs");
            if berth_image::mount::is_mount_point(&rootfs).unwrap_or(false) {
                let _ = rustix::mount::unmount(&rootfs, rustix::mount::UnmountFlags::DETACH);
            }
            let _ = std::fs::remove_dir_all(d.path());
        }
    }

    /// The Build Cache part of `/system/df`.
    pub async fn build_cache_usage(&self) -> Result<Vec<serde_json::Value>> {
        let builder = self.builder()?;
        let store = self.images.store();
        let entries = builder.cache().entries();
        let mounts_dir = builder.cache_mounts_dir().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let tagged = tagged_chains(&store);
            for e in entries {
                let Ok(d) = Digest::parse(&e.image) else { continue };
                let Ok(rec) = store.record(&e.image) else { continue };
                let size = if e.layer { rec.layers.last().and_then(|l| store.layers().get(&l.chain_id).ok()).map(|l| l.size).unwrap_or(0) } else { 0 };
                out.push(serde_json::json!({
                    "ID": &e.key[..25.min(e.key.len())],
                    "Parent": e.parent.clone().unwrap_or_default(),
                    "Parents": e.parent.iter().collect::<Vec<_>>(),
                    "Type": "regular",
                    "Description": e.description,
                    "InUse": false,
                    "Shared": tagged.contains(&d),
                    "Size": size,
                    "CreatedAt": rfc3339(e.created),
                    "LastUsedAt": rfc3339(e.last_used),
                    "UsageCount": e.usage_count,
                }));
            }
            if let Ok(rd) = std::fs::read_dir(&mounts_dir) {
                for m in rd.flatten() {
                    let size = crate::volumes::dir_size(&m.path()).max(0) as u64;
                    let modified = m.metadata().and_then(|x| x.modified()).ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_secs() as i64).unwrap_or(0);
                    out.push(serde_json::json!({
                        "ID": &m.file_name().to_string_lossy()[..25.min(m.file_name().len())],
                        "Parent": "",
                        "Parents": [],
                        "Type": "exec.cachemount",
                        "Description": "cached mount (RUN --mount=type=cache)",
                        "InUse": false,
                        "Shared": false,
                        "Size": size,
                        "CreatedAt": rfc3339(modified),
                        "LastUsedAt": rfc3339(modified),
                        "UsageCount": 0,
                    }));
                }
            }
            out
        })
        .await
        .map_err(|e| Error::system(e.to_string()))
    }

    /// `POST /build/prune`: removes build cache no tagged image needs (every entry
    /// with `all`), oldest first, until `keep_storage` bytes remain; cache mounts too.
    pub async fn build_prune(&self, all: bool, keep_storage: u64, filters: &berth_types::filters::Filters) -> Result<(Vec<String>, u64)> {
        filters.validate(&["until", "id", "type", "description", "inuse", "shared", "private"]).map_err(|e| Error::invalid(e.to_string()))?;
        let until = filters
            .get("until")
            .first()
            .map(|u| crate::util::parse_timestamp(u, chrono::Utc::now()).map(|t| t.timestamp()).ok_or_else(|| Error::invalid(format!("invalid filter 'until={u}'"))))
            .transpose()?;
        let types: Vec<String> = filters.get("type").to_vec();
        let builder = self.builder()?;
        let usage = self.build_cache_usage().await?;
        let mut total: u64 = usage.iter().map(|u| u["Size"].as_u64().unwrap_or(0)).sum();
        let mut deleted = Vec::new();
        let mut reclaimed = 0u64;
        let store = self.images.store();
        let tagged = {
            let s = store.clone();
            tokio::task::spawn_blocking(move || tagged_chains(&s)).await.map_err(|e| Error::system(e.to_string()))?
        };
        // Oldest first.
        let mut entries = builder.cache().entries();
        entries.reverse();
        let sizes: HashMap<String, u64> = usage.iter().map(|u| (u["ID"].as_str().unwrap_or("").to_string(), u["Size"].as_u64().unwrap_or(0))).collect();
        let want_type = |t: &str| types.is_empty() || types.iter().any(|x| x == t);
        for e in entries {
            if keep_storage > 0 && total <= keep_storage {
                break;
            }
            if !want_type("regular") || until.is_some_and(|u| e.last_used >= u) {
                continue;
            }
            let shared = Digest::parse(&e.image).map(|d| tagged.contains(&d)).unwrap_or(false);
            if shared && !all {
                continue;
            }
            let id = e.key[..25.min(e.key.len())].to_string();
            if !filters.get("id").is_empty() && !filters.get("id").iter().any(|x| id.starts_with(x.as_str())) {
                continue;
            }
            builder.cache().remove(&e.key);
            let size = sizes.get(&id).copied().unwrap_or(0);
            if !shared {
                // The step's image, and the untagged parents only it kept.
                if self.images.remove(&e.image, false, true, self.image_users()).await.is_ok() {
                    reclaimed += size;
                }
            }
            total = total.saturating_sub(size);
            deleted.push(id);
        }
        if want_type("exec.cachemount")
            && let Ok(rd) = std::fs::read_dir(builder.cache_mounts_dir()) {
                for m in rd.flatten() {
                    if keep_storage > 0 && total <= keep_storage {
                        break;
                    }
                    let size = crate::volumes::dir_size(&m.path()).max(0) as u64;
                    let id = m.file_name().to_string_lossy()[..25.min(m.file_name().len())].to_string();
                    if builder.cache_mount_in_use(&m.path()) {
                        continue;
                    }
                    if std::fs::remove_dir_all(m.path()).is_ok() {
                        reclaimed += size;
                        total = total.saturating_sub(size);
                        deleted.push(id);
                    }
                }
            }
        Ok((deleted, reclaimed))
    }
}

/// Every image a tag (or a tagged image's parent chain) keeps.
fn tagged_chains(store: &berth_image::ImageStore) -> std::collections::HashSet<Digest> {
    let mut keep = std::collections::HashSet::new();
    let Ok(list) = store.list() else { return keep };
    let mut todo: Vec<Digest> = list.iter().filter(|s| !s.repo_tags.is_empty()).filter_map(|s| Digest::parse(&s.id.to_string()).ok()).collect();
    let parents: BTreeMap<String, Option<String>> = list.iter().map(|s| (s.id.to_string(), s.parent_id.as_ref().map(|p| p.to_string()))).collect();
    while let Some(d) = todo.pop() {
        if !keep.insert(d.clone()) {
            continue;
        }
        if let Some(Some(p)) = parents.get(&d.to_string())
            && let Ok(pd) = Digest::parse(p) {
                todo.push(pd);
            }
    }
    keep
}

fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)).unwrap_or_default()
}
