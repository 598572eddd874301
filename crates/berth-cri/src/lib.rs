//! berth's Kubernetes front door: the CRI v1 gRPC API (RuntimeService and ImageService)
//! and the streaming server the kubelet sends `exec`, `attach` and `port-forward` to.
//!
//! It is another client of the same [`Engine`] as the Docker API (one state, one set of
//! locks, one event stream): a pod sandbox is an engine container holding the pod's
//! network, IPC and UTS namespaces with the runtime's built-in pause process; a CRI
//! container is an engine container joining them. What the CRI needs to remember (the
//! configs as the kubelet sent them, the CNI attachment) lives in the container's record
//! (`ext.meta`), so it is written, and survives crashes, like everything else about it.
//!
//! ```text
//! service     the tonic traits: parse, call, answer (no logic)
//! sandbox     RunPodSandbox .. ListPodSandbox          container   Create .. ListContainers
//! translate   CRI configs → the engine's create request (security context, mounts, ...)
//! meta        what is kept in ext.meta, names, labels  images      the ImageService
//! exec        ExecSync, and the sessions behind streaming URLs
//! streaming   the HTTP server: SPDY/3.1 and WebSocket, remotecommand and port-forward
//! stats       container and pod stats                   events     GetContainerEvents
//! cni         the CNI plugin protocol (ADD/DEL/CHECK), used when the node has a config
//! ```

pub mod api {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("runtime.v1");
}

mod cni;
mod container;
mod deadline;
mod error;
mod events;
mod exec;
mod images;
mod meta;
mod sandbox;
mod service;
mod stats;
pub mod streaming;
mod translate;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use berth_engine::Engine;

pub use error::CriError;

/// How the CRI server is set up (`berth daemon --cri-*` flags).
#[derive(Debug, Clone)]
pub struct CriConfig {
    /// The gRPC socket, e.g. /run/berth/cri.sock.
    pub socket: PathBuf,
    /// Where the streaming server listens (host:port; port 0 picks one).
    pub stream_address: String,
    /// CNI network configs (`*.conf`, `*.conflist`); None or no config: berth's own
    /// bridge network gives pods their addresses.
    pub cni_conf_dir: Option<PathBuf>,
    /// Where the CNI plugin binaries are looked for, in order.
    pub cni_bin_dirs: Vec<PathBuf>,
}

impl Default for CriConfig {
    fn default() -> Self {
        CriConfig {
            socket: PathBuf::from("/run/berth/cri.sock"),
            stream_address: "127.0.0.1:0".into(),
            cni_conf_dir: None,
            cni_bin_dirs: vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")],
        }
    }
}

/// The CRI server's state: the engine, the streaming server, the CNI plugins.
pub struct Cri {
    pub(crate) engine: Arc<Engine>,
    pub(crate) streams: Arc<streaming::Server>,
    pub(crate) cni: Option<cni::Cni>,
    /// The pod CIDR the kubelet last gave (UpdateRuntimeConfig), reported in `info`.
    pub(crate) pod_cidr: Mutex<String>,
    pub(crate) stats: stats::CpuSamples,
}

impl Cri {
    pub(crate) fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }
}

/// Serves the CRI on `cfg.socket` (and the streaming server) until the future is dropped.
pub async fn serve(engine: Arc<Engine>, cfg: CriConfig) -> Result<(), CriError> {
    let streams = streaming::Server::start(engine.clone(), &cfg.stream_address).await?;
    let cni = match &cfg.cni_conf_dir {
        Some(dir) => cni::Cni::load(dir, &cfg.cni_bin_dirs)?,
        None => None,
    };
    let cri = Arc::new(Cri { engine, streams, cni, pod_cidr: Mutex::new(String::new()), stats: Default::default() });
    service::serve(cri, &cfg.socket).await
}
