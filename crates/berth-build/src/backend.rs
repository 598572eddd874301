//! The seam between the builder and the engine. The builder decides *what* each step
//! does (the Dockerfile's semantics, the cache, the image configs); a [`Backend`]
//! does it with the daemon's real machinery: images (pull, snapshots, child images),
//! containers (for RUN) and tags. The engine implements it; tests can too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_image::{ContainerConfig, ImageConfig};
use berth_types::progress::JsonMessage;
use futures_util::future::BoxFuture;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::error::BuildError;

pub type Result<T, E = BuildError> = std::result::Result<T, E>;

/// Where a step writes what the user sees (`{"stream": ...}` lines, pull progress).
pub type Out = UnboundedSender<JsonMessage>;

/// An image the build starts from or reads: its ID and configuration.
#[derive(Debug, Clone)]
pub struct ImageRef {
    /// `sha256:<hex>`.
    pub id: String,
    pub config: ImageConfig,
}

/// A writable root filesystem for one step, mounted at `rootfs`: an empty upper
/// directory over the layers of the step's parent image (or nothing: scratch), or
/// the root of the container a RUN step ran in.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The image store's snapshot key (a container ID for RUN).
    pub key: String,
    pub rootfs: PathBuf,
    /// Set when the workspace is a container (RUN): released by removing it.
    pub container: Option<String>,
}

/// A mount for a RUN step's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunMount {
    /// A host directory or file (from the context, a stage, a cache directory).
    Bind { source: PathBuf, target: String, readonly: bool },
    Tmpfs { target: String, size: Option<u64> },
}

/// Resource limits for RUN steps (the build's `memory`, `cpushares`... parameters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub memory: i64,
    pub memory_swap: i64,
    pub cpu_shares: i64,
    pub cpuset_cpus: String,
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub shm_size: i64,
    pub ulimits: Vec<serde_json::Value>,
    pub cgroup_parent: String,
}

/// What a RUN step runs.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The parent image.
    pub image: String,
    /// Cmd (the whole command line; Entrypoint is cleared), Env (build args
    /// included), User, WorkingDir.
    pub config: ContainerConfig,
    /// "default", "none", "host", or a network name.
    pub network: String,
    pub mounts: Vec<RunMount>,
    pub extra_hosts: Vec<String>,
    pub resources: Resources,
    /// Labels for the intermediate container (the engine recognises build containers by them).
    pub labels: BTreeMap<String, String>,
}

/// The daemon's side of a build.
pub trait Backend: Send + Sync + 'static {
    /// A base image by name, ID or digest: pulled when missing, or always when
    /// `pull`, with progress on `out`. `auth` is the build's `X-Registry-Config`.
    fn base_image<'a>(&'a self, name: &'a str, platform: Option<&'a str>, pull: bool, auth: Option<&'a str>, out: &'a Out) -> BoxFuture<'a, Result<ImageRef>>;

    /// A local image by name or ID, never pulled (`--cache-from`, child images).
    fn local_image<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<ImageRef>>>;

    /// A writable root filesystem over `parent` (`None`: empty), mounted.
    fn prepare<'a>(&'a self, parent: Option<&'a str>) -> BoxFuture<'a, Result<Workspace>>;

    /// Runs a RUN step in a new container; its root filesystem is the returned
    /// workspace (also when the command failed, so the caller can release it). The
    /// command's output goes to `out`; `cancel` kills it.
    fn run<'a>(&'a self, req: RunRequest, out: &'a Out, cancel: &'a CancellationToken) -> BoxFuture<'a, Result<(Workspace, i32)>>;

    /// Makes a child image of `parent` from what `ws` changed (see
    /// `berth_image::ImageStore::commit_child`). Returns the ID and whether a layer was added.
    fn commit<'a>(&'a self, ws: &'a Workspace, parent: Option<&'a str>, config: ImageConfig) -> BoxFuture<'a, Result<(String, bool)>>;

    /// A child image of `parent` that only changes the configuration.
    fn record<'a>(&'a self, parent: Option<&'a str>, config: ImageConfig) -> BoxFuture<'a, Result<String>>;

    /// A child image of `parent` whose new layer (if `layer` is given) is layer number
    /// `layer` of image `donor` (`--cache-from`).
    fn adopt<'a>(&'a self, parent: Option<&'a str>, config: ImageConfig, donor: &'a str, layer: Option<usize>) -> BoxFuture<'a, Result<String>>;

    /// Unmounts and removes a workspace (and its container). Never fails: what
    /// cannot be removed now is logged and left to the daemon's clean-up.
    fn release(&self, ws: Workspace) -> BoxFuture<'_, ()>;

    /// uid and gid for a `--chown` spec (`user`, `user:group`, numeric or by name),
    /// looked up in the `/etc/passwd` and `/etc/group` under `rootfs`.
    fn resolve_user(&self, rootfs: &Path, spec: &str) -> Result<(u32, u32)>;

    /// Points each tag at `id`.
    fn tag<'a>(&'a self, id: &'a str, tags: &'a [String]) -> BoxFuture<'a, Result<()>>;
}
