//! The two front doors berth adds beside the Engine API, both over the same engine
//! facade (one state, one set of locks, one event stream):
//!
//! - the web dashboard (`berth daemon --ui ADDR`): pages built into the binary, the
//!   Engine API itself under `/api` (the pages do what `docker` does, through the same
//!   handlers), one live WebSocket per page for events and stats ([`live`]), and an
//!   exec terminal on a WebSocket ([`term`]), all behind [`guard`];
//! - Prometheus metrics (`--metrics-addr ADDR`, as dockerd's): [`metrics`].

pub mod assets;
pub mod expo;
pub mod guard;
pub mod live;
pub mod metrics;
pub mod term;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use berth_engine::{Engine, ListOptions};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// What the dashboard's handlers share.
pub struct Ui {
    pub engine: Arc<Engine>,
}

/// How the dashboard is served.
#[derive(Debug, Clone)]
pub struct UiOptions {
    /// host:port; port 0 picks a free one.
    pub addr: String,
    pub token: String,
    /// Serve HTTPS with these; with a CA, a verified client certificate admits
    /// without the token.
    pub tls: Option<berth_api::TlsFiles>,
}

/// The dashboard's routes: pages, assets, the Engine API under `/api`, the live and
/// exec sockets; everything behind the access guard.
pub fn ui_router(engine: Arc<Engine>, access: guard::Access) -> Router {
    let ui = Arc::new(Ui { engine: engine.clone() });
    let api = berth_api::router(engine);
    Router::new()
        .route("/", get(index))
        .route("/assets/{name}", get(assets::serve))
        .route("/ui/live", get(live::upgrade))
        .route("/ui/exec", get(term::upgrade))
        .nest_service("/api", api)
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(Arc::new(access), guard::check))
        .with_state(ui)
}

/// `GET /metrics` and nothing else (dockerd's metrics address has no guard either:
/// bind it where only the scraper can reach it).
pub fn metrics_router(engine: Arc<Engine>) -> Router {
    let readings = metrics::Readings::new(engine.clone());
    Router::new().route("/metrics", get(metrics_handler)).with_state((engine, readings))
}

async fn metrics_handler(State((engine, readings)): State<(Arc<Engine>, Arc<metrics::Readings>)>) -> Response {
    let body = metrics::render(&engine, &readings).await;
    ([(header::CONTENT_TYPE, expo::CONTENT_TYPE)], body).into_response()
}

/// The page, with the container list and the daemon's version inlined so that the
/// first screen is drawn before the load event, without a round trip.
async fn index(State(ui): State<Arc<Ui>>, _req: Request) -> Response {
    let e = &ui.engine;
    let containers = e.list_containers(&ListOptions { all: true, ..Default::default() }).unwrap_or_default();
    let boot = serde_json::json!({ "containers": containers, "version": e.version() });
    // `</` would end the script element early.
    let boot = boot.to_string().replace("</", "<\\/");
    let html = assets::INDEX.replace("<!--BOOT-->", &format!("<script id=\"boot\" type=\"application/json\">{boot}</script>"));
    let mut r = html.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"),
    );
    r
}

/// Binds `addr` (failing now if it can't) and serves `app` on it in the background,
/// with TLS when given. Returns the address bound (the port, when 0 was asked).
pub async fn serve(app: Router, addr: &str, tls: Option<&berth_api::TlsFiles>) -> Result<SocketAddr, String> {
    let listener = TcpListener::bind(addr).await.map_err(|e| format!("listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let acceptor = match tls {
        Some(t) => Some(tokio_rustls::TlsAcceptor::from(berth_api::server::load_tls(t)?)),
        None => None,
    };
    let verify = tls.is_some_and(|t| t.ca.is_some());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            let app = app.clone();
            match &acceptor {
                None => spawn_conn(app, TokioIo::new(stream), false),
                Some(a) => {
                    let a = a.clone();
                    tokio::spawn(async move {
                        if let Ok(s) = a.accept(stream).await {
                            // rustls only completes the handshake with a verified
                            // certificate when the CA is set.
                            let verified = verify && s.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty());
                            spawn_conn(app, TokioIo::new(s), verified);
                        }
                    });
                }
            }
        }
    });
    Ok(local)
}

fn spawn_conn<I>(app: Router, io: TokioIo<I>, verified: bool)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let svc = tower::ServiceExt::map_request(app, move |mut req: Request<hyper::body::Incoming>| {
            if verified {
                req.extensions_mut().insert(guard::VerifiedClient);
            }
            req
        });
        let svc = TowerToHyperService::new(svc);
        let _ = auto::Builder::new(TokioExecutor::new()).serve_connection_with_upgrades(io, svc).await;
    });
}

/// Starts the dashboard; returns where it listens.
pub async fn start_ui(engine: Arc<Engine>, opts: &UiOptions) -> Result<SocketAddr, String> {
    let access = guard::Access { token: opts.token.clone(), tls: opts.tls.is_some() };
    serve(ui_router(engine, access), &opts.addr, opts.tls.as_ref()).await
}

/// Starts the metrics endpoint; returns where it listens.
pub async fn start_metrics(engine: Arc<Engine>, addr: &str) -> Result<SocketAddr, String> {
    serve(metrics_router(engine), addr, None).await
}

/// A 404 for anything else, in the API's shape.
pub async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "application/json")], r#"{"message":"page not found"}"#).into_response()
}
