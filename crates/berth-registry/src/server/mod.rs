//! `berth registry serve`: a distribution v2 registry on axum, with filesystem storage,
//! optional htpasswd Basic auth and optional TLS (rustls, ring provider).

mod api;
pub mod proxy;
pub mod token;
pub mod auth;
mod errors;
pub mod gc;
pub mod storage;

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::serve::{Listener, ListenerExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub use storage::Storage;

/// How to run a registry server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen (port 0 picks a free port; see [`RunningServer::local_addr`]).
    pub addr: SocketAddr,
    /// The storage directory.
    pub root: PathBuf,
    /// An htpasswd file (bcrypt entries): when set, every request needs Basic auth.
    pub htpasswd: Option<PathBuf>,
    /// PEM certificate chain and private key: when set, the server speaks only HTTPS.
    pub tls: Option<TlsFiles>,
    /// Pull-through cache of another registry (see [`proxy`]).
    pub proxy: Option<proxy::ProxyConfig>,
    /// Bearer-token auth (see [`token`]); exclusive with `htpasswd`.
    pub token: Option<token::TokenConfig>,
    /// Online garbage collection every this often (None: only the offline command).
    pub gc_interval: Option<Duration>,
    /// Unreferenced blobs younger than this are kept by online collection.
    pub gc_grace: Duration,
    /// Online collection also deletes manifests no tag reaches.
    pub gc_delete_untagged: bool,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ServerConfig {
    pub fn new(addr: SocketAddr, root: &Path) -> ServerConfig {
        ServerConfig {
            addr,
            root: root.to_path_buf(),
            htpasswd: None,
            tls: None,
            proxy: None,
            token: None,
            gc_interval: None,
            gc_grace: Duration::from_secs(3600),
            gc_delete_untagged: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot open registry storage at {path}: {source}")]
    Storage {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "registry storage {0} is locked by a running garbage collection; try again when it has finished"
    )]
    Locked(String),
    #[error(transparent)]
    Htpasswd(#[from] auth::HtpasswdError),
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("{0}")]
    Proxy(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

/// A server running on the current tokio runtime. Dropping it stops the server.
pub struct RunningServer {
    addr: SocketAddr,
    tls: bool,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl RunningServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` or `https://...`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Stops accepting, lets requests in flight finish (at most 10 s), then returns.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            match tokio::time::timeout(Duration::from_secs(10), task).await {
                Ok(Ok(r)) => r.map_err(ServerError::Serve)?,
                Ok(Err(e)) => return Err(ServerError::Serve(std::io::Error::other(e))),
                Err(_) => {}
            }
        }
        Ok(())
    }

    /// Serves until `stop` resolves (then shuts down gracefully) or the server fails.
    pub async fn run_until(mut self, stop: impl std::future::Future<Output = ()>) -> Result<(), ServerError> {
        let Some(mut task) = self.task.take() else {
            return Ok(());
        };
        tokio::select! {
            _ = stop => {
                self.task = Some(task);
                self.shutdown().await
            }
            r = &mut task => match r {
                Ok(r) => r.map_err(ServerError::Serve),
                Err(e) => Err(ServerError::Serve(std::io::Error::other(e))),
            },
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Opens storage, takes the shared storage lock, binds and starts serving.
pub async fn start(config: ServerConfig) -> Result<RunningServer, ServerError> {
    let storage = Storage::open(&config.root).map_err(|source| ServerError::Storage {
        path: config.root.display().to_string(),
        source,
    })?;
    let lock = lock_storage(&storage, false)?;
    let htpasswd = match &config.htpasswd {
        Some(p) => Some(auth::Htpasswd::load(p)?),
        None => None,
    };
    let tls = match &config.tls {
        Some(files) => Some(tls_acceptor(files)?),
        None => None,
    };
    let proxy = match &config.proxy {
        Some(p) => Some(proxy::Proxy::new(p).map_err(ServerError::Proxy)?),
        None => None,
    };
    if config.token.is_some() && config.htpasswd.is_some() {
        return Err(ServerError::Proxy("choose one auth: --htpasswd or --token-realm".into()));
    }
    let token = match &config.token {
        Some(t) => Some(token::TokenAuth::load(t.clone()).map_err(ServerError::Proxy)?),
        None => None,
    };
    let mut state = api::AppState::new(storage, htpasswd);
    state.proxy = proxy;
    state.token = token;
    let state = Arc::new(state);
    if let Some(every) = config.gc_interval {
        let (st, grace, untagged) = (state.clone(), config.gc_grace, config.gc_delete_untagged);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                if std::sync::Arc::strong_count(&st) == 1 {
                    return; // the server is gone
                }
                api::collect_online(&st, grace, untagged).await;
            }
        });
    }
    let app = Router::new().fallback(api::handle).with_state(state);
    let tcp = TcpListener::bind(config.addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.addr,
            source,
        })?;
    let addr = tcp.local_addr().map_err(ServerError::Serve)?;
    let (tx, rx) = oneshot::channel::<()>();
    let is_tls = tls.is_some();
    let task = tokio::spawn(async move {
        // The storage lock lives as long as the server does.
        let _lock = lock;
        let signal = async {
            let _ = rx.await;
        };
        match tls {
            None => {
                let listener = tcp.tap_io(|s| {
                    let _ = s.set_nodelay(true);
                });
                axum::serve(listener, app).with_graceful_shutdown(signal).await
            }
            Some(acceptor) => {
                let listener = TlsListener::spawn(tcp, acceptor);
                axum::serve(listener, app).with_graceful_shutdown(signal).await
            }
        }
    });
    tracing::info!(%addr, tls = is_tls, "registry listening");
    Ok(RunningServer {
        addr,
        tls: is_tls,
        shutdown: Some(tx),
        task: Some(task),
    })
}

/// Takes the storage lock: shared for serving (several servers may share a root),
/// exclusive for garbage collection (which must not race uploads).
pub(crate) fn lock_storage(storage: &Storage, exclusive: bool) -> Result<File, ServerError> {
    use rustix::fs::{FlockOperation, flock};
    let path = storage.lock_path();
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| ServerError::Storage {
            path: path.display().to_string(),
            source,
        })?;
    let op = if exclusive {
        FlockOperation::NonBlockingLockExclusive
    } else {
        FlockOperation::NonBlockingLockShared
    };
    match flock(&f, op) {
        Ok(()) => Ok(f),
        Err(rustix::io::Errno::WOULDBLOCK) => {
            Err(ServerError::Locked(storage.root().display().to_string()))
        }
        Err(e) => Err(ServerError::Storage {
            path: path.display().to_string(),
            source: e.into(),
        }),
    }
}

fn tls_acceptor(files: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor, ServerError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| ServerError::Tls(format!("certificate {}: {e}", files.cert.display())))?;
    if certs.is_empty() {
        return Err(ServerError::Tls(format!(
            "certificate {}: no certificate in file",
            files.cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| ServerError::Tls(format!("private key {}: {e}", files.key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServerError::Tls(format!("certificate and key do not fit together: {e}")))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

/// A listener that hands axum finished TLS connections. Handshakes run in their own
/// tasks, so a slow or silent client cannot hold up everybody else's accept.
struct TlsListener {
    rx: mpsc::Receiver<(tokio_rustls::server::TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    _accept_task: AbortOnDrop,
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl TlsListener {
    fn spawn(tcp: TcpListener, acceptor: tokio_rustls::TlsAcceptor) -> TlsListener {
        let local = tcp
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let hs = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
                    match hs.await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        TlsListener {
            rx,
            local,
            _accept_task: AbortOnDrop(task),
        }
    }
}

impl Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accept task only ends when aborted with the listener; never resolve.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
