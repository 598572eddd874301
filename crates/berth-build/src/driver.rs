//! The build itself: parse the Dockerfile, work out which stages are needed, run
//! them (independent stages at the same time, each one's output shown in Dockerfile
//! order, as the classic builder prints it), then tag the result. The work of each
//! instruction is in `step`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_image::ImageConfig;
use berth_types::progress::JsonMessage;
use futures_util::future::join_all;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, Out, Result};
use crate::cache::CacheIndex;
use crate::context::Context;
use crate::dockerfile::{self, Lexer};
use crate::error::{BuildError, ErrorKind};
use crate::options::BuildOptions;
use crate::plan;
use crate::step::StageRun;

/// Build arguments every build knows without an ARG line: the proxy variables
/// (passed to RUN, kept out of the history) ...
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
];

/// ... and BuildKit's platform arguments, global like meta ARGs.
fn platform_args(platform: Option<&str>) -> BTreeMap<String, Option<String>> {
    let host_arch = berth_image::manifest::host_architecture().to_string();
    let build = format!("linux/{host_arch}");
    let target = platform.filter(|p| !p.is_empty()).map(str::to_string).unwrap_or_else(|| build.clone());
    let mut parts = target.split('/');
    let os = parts.next().unwrap_or("linux").to_string();
    let arch = parts.next().unwrap_or(&host_arch).to_string();
    let variant = parts.next().unwrap_or("").to_string();
    let mut m = BTreeMap::new();
    for (k, v) in [
        ("TARGETPLATFORM", target.clone()),
        ("TARGETOS", os),
        ("TARGETARCH", arch),
        ("TARGETVARIANT", variant),
        ("BUILDPLATFORM", build),
        ("BUILDOS", "linux".to_string()),
        ("BUILDARCH", host_arch),
        ("BUILDVARIANT", String::new()),
    ] {
        m.insert(k.to_string(), Some(v));
    }
    m
}

/// What a finished stage leaves for the stages that name it.
#[derive(Debug, Clone)]
pub struct StageOut {
    /// `None`: the stage is an empty `FROM scratch`.
    pub image: Option<String>,
    pub config: ImageConfig,
}

/// A stage's result as the stages waiting for it see it (`None`: not finished yet).
pub(crate) type StageResult = Option<std::result::Result<Arc<StageOut>, BuildError>>;
pub(crate) type StageSlot = watch::Receiver<StageResult>;

/// The builder of one daemon: its backend, cache index and working directories.
pub struct Builder<B: Backend> {
    pub(crate) backend: Arc<B>,
    pub(crate) cache: CacheIndex,
    /// Per-build scratch space (heredoc files, downloads, unpacked archives).
    pub(crate) tmp: PathBuf,
    /// `RUN --mount=type=cache` directories, one per cache id.
    pub(crate) cache_mounts: PathBuf,
    /// Locks for `sharing=locked` cache mounts, by directory.
    pub(crate) mount_locks: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
    /// Cache mount directories RUN steps are using now (prune leaves them).
    pub(crate) mounts_in_use: Mutex<HashMap<PathBuf, usize>>,
    /// Builds a client gave an ID (`buildid=`), for `/build/cancel`.
    running: Arc<Mutex<HashMap<String, CancellationToken>>>,
    /// For ADD's URLs and remote contexts.
    pub(crate) http: reqwest::Client,
}

/// A build registered under its ID until this is dropped.
pub struct Registration {
    running: Arc<Mutex<HashMap<String, CancellationToken>>>,
    id: String,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}

/// Marks a cache mount in use while it lives.
pub(crate) struct MountUse<'a> {
    map: &'a Mutex<HashMap<PathBuf, usize>>,
    dir: PathBuf,
}

impl<'a> MountUse<'a> {
    pub(crate) fn new(map: &'a Mutex<HashMap<PathBuf, usize>>, dir: PathBuf) -> Self {
        *map.lock().unwrap_or_else(|p| p.into_inner()).entry(dir.clone()).or_default() += 1;
        MountUse { map, dir }
    }
}

impl Drop for MountUse<'_> {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.dir) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.dir);
            }
        }
    }
}

impl<B: Backend> Builder<B> {
    /// Opens the builder's state under `root` (`cache/`, `mounts/`, `tmp/`); what a
    /// crashed build left in `tmp/` is removed.
    pub fn open(backend: Arc<B>, root: &Path, http: reqwest::Client) -> std::io::Result<Builder<B>> {
        let tmp = root.join("tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        let cache_mounts = root.join("mounts");
        std::fs::create_dir_all(&cache_mounts)?;
        Ok(Builder {
            backend,
            cache: CacheIndex::open(&root.join("cache"))?,
            tmp,
            cache_mounts,
            mount_locks: Mutex::new(HashMap::new()),
            mounts_in_use: Mutex::new(HashMap::new()),
            running: Arc::new(Mutex::new(HashMap::new())),
            http,
        })
    }

    /// Registers a build under the client's ID so that [`Builder::cancel`] can stop it.
    pub fn register(&self, id: &str, token: CancellationToken) -> Registration {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).insert(id.to_string(), token);
        Registration { running: self.running.clone(), id: id.to_string() }
    }

    /// Cancels the build registered as `id`; false if there is none.
    pub fn cancel(&self, id: &str) -> bool {
        match self.running.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            Some(t) => {
                t.cancel();
                true
            }
            None => false,
        }
    }

    /// Whether a running step uses this cache mount directory.
    pub fn cache_mount_in_use(&self, dir: &Path) -> bool {
        self.mounts_in_use.lock().unwrap_or_else(|p| p.into_inner()).contains_key(dir)
    }

    pub fn cache(&self) -> &CacheIndex {
        &self.cache
    }

    pub fn cache_mounts_dir(&self) -> &Path {
        &self.cache_mounts
    }

    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Runs a build. Messages go to `out` as dockerd words them; the result is the
    /// image ID. `cancel` stops it (a RUN in progress is killed); whatever the
    /// outcome, no container, mount or snapshot of the build is left.
    pub async fn build(&self, ctx: Arc<Context>, opts: BuildOptions, out: Out, cancel: CancellationToken) -> Result<String> {
        let df = dockerfile::parse(ctx.dockerfile()).map_err(|e| BuildError::invalid(e.to_string()))?;
        let lexer = Lexer::new(df.escape);
        for w in &df.warnings {
            let _ = out.send(JsonMessage::stream(format!("[WARNING]: {w}\n")));
        }

        // Global (meta) arguments: BuildKit's platform ones, then the ARGs before
        // the first FROM, each overridden by a --build-arg.
        let mut global = platform_args(opts.platform.as_deref());
        let mut declared: BTreeSet<String> = BTreeSet::new();
        for a in &df.meta_args {
            declared.insert(a.name.clone());
            let value = match opts.build_args.get(&a.name) {
                Some(Some(v)) => Some(v.clone()),
                _ => match &a.default {
                    Some(d) => Some(lexer.expand_word(d, &|k| global.get(k).cloned().flatten()).map_err(BuildError::invalid)?),
                    None => None,
                },
            };
            global.insert(a.name.clone(), value);
        }
        let expand_global = |w: &str| lexer.expand_word(w, &|k| global.get(k).cloned().flatten()).unwrap_or_else(|_| w.to_string());

        let target = plan::target_stage(&df, opts.target.as_deref())?;
        let needed = plan::needed(&df, target, &expand_global);
        let mut first_step = HashMap::new();
        let mut total = 0;
        for &i in &needed {
            first_step.insert(i, total + 1);
            total += 1 + df.stages[i].instructions.len();
        }
        if !opts.labels.is_empty() {
            total += 1;
        }

        // Output in Dockerfile order: each stage writes to its own channel, drained
        // one after the other.
        let mut senders: HashMap<usize, Out> = HashMap::new();
        let mut receivers = Vec::new();
        for &i in &needed {
            let (tx, rx) = mpsc::unbounded_channel::<JsonMessage>();
            senders.insert(i, tx);
            receivers.push(rx);
        }
        let quiet = opts.quiet;
        let fwd_out = out.clone();
        // After a failure, stages not shown yet stay silent (they were only waiting or
        // were cut short), except the failed one, whose output explains the error.
        let failed: Arc<Mutex<Option<usize>>> = Arc::new(Mutex::new(None));
        let fwd_failed = failed.clone();
        let order = needed.clone();
        let forwarder = tokio::spawn(async move {
            let mut held = Vec::new();
            for (stage, mut rx) in order.into_iter().zip(receivers) {
                let f = *fwd_failed.lock().unwrap_or_else(|p| p.into_inner());
                let show = f.is_none_or(|f| f == stage);
                while let Some(m) = rx.recv().await {
                    if !show {
                        continue;
                    }
                    if quiet {
                        held.push(m);
                    } else {
                        // A client that is gone is noticed by the API layer.
                        let _ = fwd_out.send(m);
                    }
                }
            }
            held
        });

        let mut slots: HashMap<usize, watch::Sender<StageResult>> = HashMap::new();
        let mut readers: HashMap<usize, StageSlot> = HashMap::new();
        for &i in &needed {
            let (tx, rx) = watch::channel(None);
            slots.insert(i, tx);
            readers.insert(i, rx);
        }
        let consumed: Mutex<BTreeSet<String>> = Mutex::new(declared);
        let stop = cancel.child_token();
        let first_error: Mutex<Option<BuildError>> = Mutex::new(None);

        let runs = needed.iter().map(|&i| {
            let out = senders.remove(&i).expect("one sender per stage");
            let slot = slots.remove(&i).expect("one slot per stage");
            let run = StageRun::new(self, &df, i, &ctx, &opts, &global, &readers, &consumed, out, stop.clone(), first_step[&i], total, lexer, i == target);
            let stop = stop.clone();
            let first_error = &first_error;
            let failed = failed.clone();
            async move {
                let r = run.run().await;
                if let Err(e) = &r {
                    let mut fe = first_error.lock().unwrap_or_else(|p| p.into_inner());
                    if fe.is_none() {
                        *fe = Some(e.clone());
                        *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(i);
                    }
                    stop.cancel();
                }
                let _ = slot.send(Some(r.map(Arc::new)));
            }
        });
        let t0 = std::time::Instant::now();
        join_all(runs).await;
        let held = forwarder.await.unwrap_or_default();
        tracing::debug!("build: stages ran in {:?}", t0.elapsed());
        self.cache.flush();

        let first_error = first_error.into_inner().unwrap_or_else(|p| p.into_inner());
        if let Some(mut e) = first_error {
            if cancel.is_cancelled() {
                e = BuildError::cancelled();
            }
            for m in held {
                let _ = out.send(m);
            }
            return Err(e);
        }
        let result = readers[&target].borrow().clone();
        let image = match result {
            Some(Ok(s)) => s.image.clone(),
            Some(Err(e)) => return Err(e),
            None => return Err(BuildError::system("the target stage did not finish")),
        };
        let Some(image) = image else {
            for m in held {
                let _ = out.send(m);
            }
            return Err(BuildError::invalid("No image was generated. Is your Dockerfile empty?"));
        };

        let unused: Vec<String> = {
            let consumed = consumed.lock().unwrap_or_else(|p| p.into_inner());
            opts.build_args.keys().filter(|k| !consumed.contains(*k) && !PROXY_ARGS.contains(&k.as_str()) && !global.contains_key(*k)).cloned().collect()
        };
        let t0 = std::time::Instant::now();
        self.backend.tag(&image, &opts.tags).await?;
        tracing::debug!("build: tagged in {:?}", t0.elapsed());
        let _ = out.send(JsonMessage { aux: Some(serde_json::json!({ "ID": image })), ..Default::default() });
        if quiet {
            let _ = out.send(JsonMessage::stream(format!("{image}\n")));
            return Ok(image);
        }
        if !unused.is_empty() {
            let _ = out.send(JsonMessage::stream(format!("[Warning] One or more build-args [{}] were not consumed\n", unused.join(" "))));
        }
        let _ = out.send(JsonMessage::stream(format!("Successfully built {}\n", short_id(&image))));
        for t in &opts.tags {
            let _ = out.send(JsonMessage::stream(format!("Successfully tagged {}\n", familiar_tag(t))));
        }
        Ok(image)
    }
}

/// The 12 hex digits Docker shows for an ID.
pub fn short_id(id: &str) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.chars().take(12).collect()
}

/// A tag as dockerd prints it after "Successfully tagged": `:latest` added when no
/// tag is given.
fn familiar_tag(t: &str) -> String {
    let last = t.rsplit('/').next().unwrap_or(t);
    if last.contains(':') || t.contains('@') { t.to_string() } else { format!("{t}:latest") }
}

impl ErrorKind {
    /// Whether the error is the user's (bad Dockerfile, missing file) rather than the daemon's.
    pub fn is_user_error(self) -> bool {
        matches!(self, ErrorKind::Invalid | ErrorKind::NotFound)
    }
}
