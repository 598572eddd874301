//! Serving the API: unix sockets (mode 0660) and TCP, the latter with TLS and, with
//! `--tlsverify`, client certificates checked against the CA (as dockerd does).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, UnixListener};

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// With a CA, clients must present a certificate it signed (`--tlsverify`).
    pub ca: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub enum Listen {
    Unix(PathBuf),
    Tcp { addr: String, tls: Option<TlsFiles> },
}

pub fn load_tls(t: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs: Vec<_> = rustls_pemfile::certs(&mut std::io::BufReader::new(std::fs::File::open(&t.cert).map_err(|e| format!("{}: {e}", t.cert.display()))?))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", t.cert.display()))?;
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(std::fs::File::open(&t.key).map_err(|e| format!("{}: {e}", t.key.display()))?))
        .map_err(|e| format!("{}: {e}", t.key.display()))?
        .ok_or_else(|| format!("{}: no private key", t.key.display()))?;
    let builder = rustls::ServerConfig::builder();
    let builder = match &t.ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls_pemfile::certs(&mut std::io::BufReader::new(std::fs::File::open(ca).map_err(|e| format!("{}: {e}", ca.display()))?)) {
                roots.add(c.map_err(|e| format!("{}: {e}", ca.display()))?).map_err(|e| format!("{}: {e}", ca.display()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots)).build().map_err(|e| e.to_string())?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let cfg = builder.with_single_cert(certs, key).map_err(|e| e.to_string())?;
    Ok(Arc::new(cfg))
}

/// Binds every listener (failing early, before anything is served), then serves them
/// all until the process ends.
pub async fn serve(app: axum::Router, listeners: Vec<Listen>) -> Result<(), String> {
    serve_then(app, listeners, || {}).await
}

/// [`serve`], calling `ready` once every listener is bound (sd_notify's READY=1).
pub async fn serve_then(app: axum::Router, listeners: Vec<Listen>, ready: impl FnOnce()) -> Result<(), String> {
    serve_with(app, listeners, &ServeOptions::default(), ready).await
}

/// How listeners are set up beyond their addresses.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// The group given the unix sockets (dockerd's `--group`); root's when None.
    pub socket_gid: Option<u32>,
    /// Connections one client may hold open at once; 0: no limit.
    pub max_connections_per_client: usize,
}

/// Who a connection belongs to, for the per-client connection limit: the peer's uid on
/// a unix socket (every process of one user is one client), its address on TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    Uid(u32),
    Addr(std::net::IpAddr),
}

/// Open connections per client, shared by every listener.
#[derive(Clone, Default)]
struct Clients {
    max: usize,
    open: Arc<std::sync::Mutex<std::collections::HashMap<Client, usize>>>,
}

/// One admitted connection; gives its place back when the connection ends.
struct Admitted {
    clients: Clients,
    who: Client,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.clients.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.who) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.who);
            }
        }
    }
}

impl Clients {
    /// A place for one more connection of `who` (None when there is no limit or no
    /// known peer), or Err when it holds `max` already.
    fn admit(&self, who: Option<Client>) -> Result<Option<Admitted>, ()> {
        let Some(who) = who.filter(|_| self.max > 0) else { return Ok(None) };
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(who).or_default();
        if *n >= self.max {
            return Err(());
        }
        *n += 1;
        Ok(Some(Admitted { clients: self.clone(), who }))
    }
}

/// A connection's place under its client's limit, in every request's extensions: a
/// handler that takes the connection over (attach, exec) keeps it until its stream ends,
/// since hyper lets go of an upgraded connection at the upgrade.
#[derive(Clone)]
pub struct ConnPlace(#[allow(dead_code)] Arc<Admitted>);

/// Answers a connection over its client's limit with 429 and closes it. The request's
/// head is read first (at most 16 KiB, for at most 2 s; nothing of it is parsed): a
/// client still writing it would otherwise see a broken pipe, not the message. The
/// whole exchange is bounded (5 s), so a client that sends nothing cannot hold it.
async fn refuse_over_limit<I>(mut io: I, max: usize)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = serde_json::to_vec(&berth_types::ErrorResponse { message: format!("too many connections from this client: at most {max} at once (the daemon's max-connections-per-client)") }).unwrap_or_default();
    let head = format!("HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
            while seen.len() < 16 << 10 && !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match io.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        io.write_all(head.as_bytes()).await?;
        io.write_all(&body).await?;
        io.shutdown().await
    })
    .await;
}

/// A group name or number (`--group`) as a gid.
pub fn group_id(name: &str) -> Result<u32, String> {
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    for line in groups.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 3 && f[0] == name
            && let Ok(gid) = f[2].parse() {
                return Ok(gid);
            }
    }
    name.parse::<u32>().map_err(|_| format!("group {name:?} not found"))
}

/// [`serve_then`] with [`ServeOptions`].
pub async fn serve_with(app: axum::Router, listeners: Vec<Listen>, opts: &ServeOptions, ready: impl FnOnce()) -> Result<(), String> {
    let mut tasks = Vec::new();
    let clients = Clients { max: opts.max_connections_per_client, ..Default::default() };
    for l in listeners {
        match l {
            Listen::Unix(path) => {
                let ul = bind_unix(&path)?;
                if let Some(gid) = opts.socket_gid {
                    std::os::unix::fs::chown(&path, Some(0), Some(gid)).map_err(|e| format!("chown {}: {e}", path.display()))?;
                }
                let app = app.clone();
                let clients = clients.clone();
                tasks.push(tokio::spawn(async move {
                    loop {
                        let Ok((stream, _)) = ul.accept().await else { continue };
                        let who = stream.peer_cred().ok().map(|c| Client::Uid(c.uid()));
                        match clients.admit(who) {
                            Ok(place) => spawn_conn(app.clone(), TokioIo::new(stream), place),
                            Err(()) => {
                                tokio::spawn(refuse_over_limit(stream, clients.max));
                            }
                        }
                    }
                }));
            }
            Listen::Tcp { addr, tls } => {
                let tl = TcpListener::bind(&addr).await.map_err(|e| format!("listen on {addr}: {e}"))?;
                let app = app.clone();
                let clients = clients.clone();
                match tls {
                    Some(t) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(load_tls(&t)?);
                        tasks.push(tokio::spawn(async move {
                            loop {
                                let Ok((stream, addr)) = tl.accept().await else { continue };
                                // Admitted before the handshake, so handshakes count too.
                                let place = match clients.admit(Some(Client::Addr(addr.ip()))) {
                                    Ok(p) => p,
                                    Err(()) => continue, // dropped: a TLS client sees the connection closed
                                };
                                let acceptor = acceptor.clone();
                                let app = app.clone();
                                tokio::spawn(async move {
                                    if let Ok(Ok(s)) = tokio::time::timeout(std::time::Duration::from_secs(30), acceptor.accept(stream)).await {
                                        let peer = s.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(|c| common_name(c.as_ref()));
                                        spawn_conn_as(app, TokioIo::new(s), peer.map(crate::authz::TlsUser), place);
                                    }
                                });
                            }
                        }));
                    }
                    None => {
                        tasks.push(tokio::spawn(async move {
                            loop {
                                let Ok((stream, addr)) = tl.accept().await else { continue };
                                let _ = stream.set_nodelay(true);
                                match clients.admit(Some(Client::Addr(addr.ip()))) {
                                    Ok(place) => spawn_conn(app.clone(), TokioIo::new(stream), place),
                                    Err(()) => {
                                        tokio::spawn(refuse_over_limit(stream, clients.max));
                                    }
                                }
                            }
                        }));
                    }
                }
            }
        }
    }
    ready();
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

fn bind_unix(path: &Path) -> Result<UnixListener, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    // A socket file left by a previous daemon; refuse to steal one that answers.
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!("{} is in use by another daemon", path.display()));
        }
        let _ = std::fs::remove_file(path);
    }
    let ul = UnixListener::bind(path).map_err(|e| format!("listen on {}: {e}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(|e| format!("chmod {}: {e}", path.display()))?;
    Ok(ul)
}

pub const MAX_STREAMS: u32 = berth_types::system::MAX_HTTP2_STREAMS;
pub const MAX_HEADER_LIST: u32 = berth_types::system::MAX_HTTP2_HEADER_LIST;

/// The subject's common name of a client certificate (DER), as dockerd names TLS users.
fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?.to_string();
    Some(cn)
}

fn spawn_conn<I>(app: axum::Router, io: TokioIo<I>, place: Option<Admitted>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    spawn_conn_as(app, io, None, place)
}

/// A connection whose requests carry the TLS client's name (for authorization plugins).
fn spawn_conn_as<I>(app: axum::Router, io: TokioIo<I>, user: Option<crate::authz::TlsUser>, place: Option<Admitted>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let place = place.map(|p| ConnPlace(Arc::new(p)));
        let svc = tower::ServiceExt::map_request(crate::with_version_prefix(app), move |mut req: axum::extract::Request<hyper::body::Incoming>| {
            if let Some(u) = &user {
                req.extensions_mut().insert(u.clone());
            }
            if let Some(p) = &place {
                req.extensions_mut().insert(p.clone());
            }
            req
        });
        let svc = TowerToHyperService::new(svc);
        let mut b = auto::Builder::new(TokioExecutor::new());
        // Bounded per connection: HTTP/1 headers by hyper's read buffer (~400 KiB, then
        // 431); HTTP/2 at most MAX_STREAMS requests at once and MAX_HEADER_LIST of headers.
        b.http2().max_concurrent_streams(MAX_STREAMS).max_header_list_size(MAX_HEADER_LIST);
        let _ = b.serve_connection_with_upgrades(io, svc).await;
    });
}
