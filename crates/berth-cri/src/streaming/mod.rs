//! The streaming server: where the URLs that Exec, Attach and PortForward return lead.
//! Plain HTTP on a TCP address (127.0.0.1 by default, as the kubelet proxies to it);
//! each URL carries a one-time token for a session registered by the gRPC call, valid
//! for a minute. The connection is then upgraded to SPDY/3.1 or WebSocket, the two ways
//! the kubelet's clients speak, and carries the remotecommand (exec, attach) or
//! port-forward protocol.

mod portforward;
mod remotecommand;
pub mod spdy;
pub mod websocket;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_engine::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::error::CriError;

/// How long a URL stays valid (the kubelet's streaming cache keeps requests a minute).
const TOKEN_TTL: Duration = Duration::from_secs(60);

/// What a URL was made for.
#[derive(Debug, Clone)]
pub enum Session {
    Exec { container_id: String, cmd: Vec<String>, tty: bool, stdin: bool, stdout: bool, stderr: bool },
    Attach { container_id: String, tty: bool, stdin: bool, stdout: bool, stderr: bool },
    PortForward { sandbox_id: String, netns: Option<PathBuf>, ports: Vec<i32> },
}

impl Session {
    fn path(&self) -> &'static str {
        match self {
            Session::Exec { .. } => "exec",
            Session::Attach { .. } => "attach",
            Session::PortForward { .. } => "portforward",
        }
    }
}

pub struct Server {
    engine: Arc<Engine>,
    base: String,
    sessions: Mutex<HashMap<String, (Session, Instant)>>,
}

impl Server {
    /// Binds `address` and serves in the background.
    pub async fn start(engine: Arc<Engine>, address: &str) -> Result<Arc<Server>, CriError> {
        let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| CriError::Io(format!("streaming server on {address}: {e}")))?;
        let local: SocketAddr = listener.local_addr().map_err(|e| CriError::Io(e.to_string()))?;
        let server = Arc::new(Server { engine, base: format!("http://{local}"), sessions: Mutex::new(HashMap::new()) });
        let s = server.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let _ = tcp.set_nodelay(true);
                let s = s.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let s = s.clone();
                        async move { Ok::<_, std::convert::Infallible>(s.handle(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).with_upgrades().await;
                });
            }
        });
        Ok(server)
    }

    /// The server's base URL, `http://host:port`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Registers a session; returns its one-time URL.
    pub fn register(&self, session: Session) -> String {
        let token = berth_engine::util::random_id()[..32].to_string();
        let url = format!("{}/{}/{token}", self.base, session.path());
        let mut m = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, (_, at)| at.elapsed() < TOKEN_TTL);
        m.insert(token, (session, Instant::now()));
        url
    }

    fn take(&self, kind: &str, token: &str) -> Option<Session> {
        let mut m = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let (s, at) = m.remove(token)?;
        (at.elapsed() < TOKEN_TTL && s.path() == kind).then_some(s)
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().trim_matches('/').to_string();
        let Some((kind, token)) = path.split_once('/') else { return plain(StatusCode::NOT_FOUND, "not found") };
        let Some(session) = self.take(kind, token) else { return plain(StatusCode::NOT_FOUND, "unknown or expired streaming session") };
        let header = |name: &str| req.headers().get_all(name).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).map(|v| v.trim().to_string()).collect::<Vec<_>>();
        let upgrade = header("upgrade").into_iter().next().unwrap_or_default().to_ascii_lowercase();
        let is_pf = matches!(session, Session::PortForward { .. });
        if upgrade == "websocket" {
            return websocket::accept(self.engine.clone(), session, req);
        }
        if !upgrade.starts_with("spdy/3.1") {
            return plain(StatusCode::BAD_REQUEST, "this URL needs a connection upgrade to SPDY/3.1 or WebSocket");
        }
        let offered = header("x-stream-protocol-version");
        let supported: &[&str] = if is_pf { portforward::SPDY_PROTOCOLS } else { remotecommand::SPDY_PROTOCOLS };
        let chosen = if offered.is_empty() {
            // Old clients name no protocol: the first version of each.
            supported.last().copied().unwrap_or_default().to_string()
        } else {
            match supported.iter().find(|p| offered.iter().any(|o| o == *p)) {
                Some(p) => p.to_string(),
                None => {
                    return plain(StatusCode::FORBIDDEN, &format!("none of the offered protocols {offered:?} is supported (supported: {supported:?})"));
                }
            }
        };
        let engine = self.engine.clone();
        let proto = chosen.clone();
        let mut req = req;
        tokio::spawn(async move {
            let Ok(upgraded) = hyper::upgrade::on(&mut req).await else { return };
            let (writer, incoming) = spdy::serve(TokioIo::new(upgraded));
            match session {
                Session::PortForward { netns, ports, .. } => portforward::serve_spdy(writer, incoming, netns, ports).await,
                other => remotecommand::serve_spdy(engine, other, &proto, writer, incoming).await,
            }
        });
        Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("Connection", "Upgrade")
            .header("Upgrade", "SPDY/3.1")
            .header("X-Stream-Protocol-Version", chosen)
            .body(Full::new(Bytes::new()))
            .unwrap_or_default()
    }
}

fn plain(status: StatusCode, msg: &str) -> Response<Full<Bytes>> {
    Response::builder().status(status).header("Content-Type", "text/plain").body(Full::new(Bytes::from(format!("{msg}\n")))).unwrap_or_default()
}

/// A TCP connection to `port` on the loopback of a network namespace (None: the
/// host's). The connect runs on a thread of its own, which enters the namespace and
/// ends: the socket stays in the namespace it was made in.
pub(crate) async fn connect_in_netns(netns: Option<PathBuf>, port: u16) -> std::io::Result<tokio::net::TcpStream> {
    let std_stream = tokio::task::spawn_blocking(move || -> std::io::Result<std::net::TcpStream> {
        let run = move || -> std::io::Result<std::net::TcpStream> {
            if let Some(ns) = &netns {
                let f = std::fs::File::open(ns)?;
                nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
            }
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
            s.set_nonblocking(true)?;
            Ok(s)
        };
        // A fresh thread, so no thread of the daemon's pool is left in another namespace.
        std::thread::spawn(run).join().map_err(|_| std::io::Error::other("netns connect thread panicked"))?
    })
    .await
    .map_err(std::io::Error::other)??;
    tokio::net::TcpStream::from_std(std_stream)
}
