//! The Docker Engine API (v1.51 is the contract) over berth's engine: routing of
//! versioned (`/v1.NN/...`) and unversioned paths, Docker's headers and error bodies,
//! hijacked attach/exec streams, chunked event/stats/log/progress streams, serving on
//! unix sockets and TLS TCP. Handlers only parse, call the engine and encode.

pub mod authz;
mod build;
pub mod compat;
mod containers;
mod exec;
pub mod hijack;
mod images;
mod networks;
mod registry;
pub mod server;
mod system;
pub mod util;
mod volumes;
mod wsattach;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use berth_engine::Engine;

pub use server::{Listen, ServeOptions, TlsFiles, serve, serve_then, serve_with};

/// The API version a request was made with, as major*100+minor (1.41 → 141).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersion(pub u32);

impl Default for ApiVersion {
    fn default() -> Self {
        ApiVersion(151)
    }
}

const MIN_VERSION: u32 = 124;
const MAX_VERSION: u32 = 151;

fn parse_version(seg: &str) -> Option<u32> {
    let v = seg.strip_prefix('v')?;
    let (maj, min) = v.split_once('.')?;
    let maj: u32 = maj.parse().ok()?;
    let min: u32 = min.parse().ok()?;
    Some(maj * 100 + min)
}

/// Strips a `/v1.NN` prefix (remembering the version) so one router serves both forms.
pub fn with_version_prefix(app: Router) -> impl tower::Service<Request<hyper::body::Incoming>, Response = Response, Error = std::convert::Infallible, Future = impl Send> + Clone + Send {
    tower::ServiceExt::map_request(app, |mut req: Request<hyper::body::Incoming>| {
        if let Some(pq) = req.uri().path_and_query() {
            let uri = authz::RequestUri(pq.to_string());
            req.extensions_mut().insert(uri);
        }
        let path = req.uri().path();
        let mut version = None;
        if let Some(rest) = path.strip_prefix('/') {
            let (first, tail) = rest.split_once('/').unwrap_or((rest, ""));
            if let Some(v) = parse_version(first) {
                version = Some(v);
                let new_path = format!("/{tail}");
                let pq = match req.uri().query() {
                    Some(q) => format!("{new_path}?{q}"),
                    None => new_path,
                };
                let mut parts = req.uri().clone().into_parts();
                parts.path_and_query = pq.parse().ok();
                if let Ok(u) = Uri::from_parts(parts) {
                    *req.uri_mut() = u;
                }
            }
        }
        req.extensions_mut().insert(ApiVersion(version.unwrap_or(MAX_VERSION)));
        req
    })
}

/// Refuses versions outside what berth speaks; adds Docker's headers to every answer.
/// Requests served since start (the daemon gives memory back when this stops moving).
static REQUESTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many requests the API has received so far.
pub fn requests_served() -> u64 {
    REQUESTS.load(std::sync::atomic::Ordering::Relaxed)
}

async fn version_and_headers(axum::extract::State(engine): axum::extract::State<Arc<Engine>>, req: Request, next: Next) -> Response {
    REQUESTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t0 = std::time::Instant::now();
    // The route's pattern, not the path: IDs and names would make a series each.
    let route = req.extensions().get::<axum::extract::MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_else(|| "other".into());
    let method = req.method().clone();
    let v = req.extensions().get::<ApiVersion>().copied().unwrap_or_default();
    let mut resp = if v.0 > MAX_VERSION {
        util::ApiError(berth_engine::Error::invalid(format!(
            "client version {}.{} is too new. Maximum supported API version is 1.{}",
            v.0 / 100,
            v.0 % 100,
            MAX_VERSION % 100
        )))
        .into_response()
    } else if v.0 < MIN_VERSION {
        util::ApiError(berth_engine::Error::invalid(format!(
            "client version {}.{} is too old. Minimum supported API version is 1.{}, please upgrade your client to a newer version",
            v.0 / 100,
            v.0 % 100,
            MIN_VERSION % 100
        )))
        .into_response()
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static("1.51"));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert("Server", HeaderValue::from_static(concat!("Berth/", env!("CARGO_PKG_VERSION"), " (linux)")));
    engine.metrics.observe_request(&route, method.as_str(), resp.status().as_u16(), t0.elapsed());
    resp
}

/// Changes run to their end even when their client goes away mid-way (a `docker run`
/// interrupted by Ctrl-C): hyper drops a request's future when its connection closes,
/// and a start dropped between two of its steps left a mounted rootfs, a network
/// namespace, a veth, a cgroup and a shim behind (`hangup.rs`). As with dockerd, the
/// change is made and its answer goes nowhere. Reads, and the requests whose client's
/// hang-up is meant to stop them (pull, push, load, build, commit) or that only wait
/// (attach, wait, exec start), still end with their connection.
async fn run_to_completion(req: Request, next: Next) -> Response {
    use axum::http::Method;
    let route = req.extensions().get::<axum::extract::MatchedPath>().map(|m| m.as_str()).unwrap_or("");
    let push = route == "/images/{*name}" && req.method() == Method::POST && req.uri().path().ends_with("/push");
    let stops_with_its_client = push
        || matches!(req.method(), &Method::GET | &Method::HEAD)
        || matches!(route, "/images/create" | "/images/load" | "/build" | "/commit" | "/containers/{id}/attach" | "/containers/{id}/wait" | "/exec/{id}/start");
    if stops_with_its_client {
        return next.run(req).await;
    }
    match tokio::spawn(next.run(req)).await {
        Ok(resp) => resp,
        Err(e) => util::ApiError(berth_engine::Error::system(format!("the request's task failed: {e}"))).into_response(),
    }
}

async fn not_found(req: Request) -> Response {
    util::ApiError(berth_engine::Error::not_found(format!("page not found: {} {}", req.method(), req.uri().path()))).into_response()
}

/// Every route of the API.
pub fn router(engine: Arc<Engine>) -> Router {
    use containers as c;
    let swarm = any(system::not_swarm_manager);
    Router::new()
        .route("/_ping", get(system::ping).head(system::ping_head))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/events", get(system::events))
        .route("/system/df", get(system::df))
        .route("/auth", post(registry_auth))
        .route("/containers/json", get(c::list))
        .route("/containers/create", post(c::create))
        .route("/containers/prune", post(c::prune))
        .route("/containers/{id}/json", get(c::inspect))
        .route("/containers/{id}/top", get(c::top))
        .route("/containers/{id}/logs", get(c::logs))
        .route("/containers/{id}/changes", get(c::changes))
        .route("/containers/{id}/export", get(c::export))
        .route("/containers/{id}/stats", get(c::stats))
        .route("/containers/{id}/resize", post(c::resize))
        .route("/containers/{id}/start", post(c::start))
        .route("/containers/{id}/stop", post(c::stop))
        .route("/containers/{id}/restart", post(c::restart))
        .route("/containers/{id}/kill", post(c::kill))
        .route("/containers/{id}/update", post(c::update))
        .route("/containers/{id}/rename", post(c::rename))
        .route("/containers/{id}/pause", post(c::pause))
        .route("/containers/{id}/unpause", post(c::unpause))
        .route("/containers/{id}/attach", post(c::attach))
        .route("/containers/{id}/attach/ws", get(c::attach_ws))
        .route("/containers/{id}/wait", post(c::wait))
        .route("/containers/{id}", axum::routing::delete(c::remove))
        .route("/containers/{id}/{link}", axum::routing::delete(c::remove_named_link))
        .route("/containers/{id}/archive", get(c::archive_get).head(c::archive_head).put(c::archive_put))
        .route("/containers/{id}/exec", post(exec::create))
        .route("/exec/{id}/start", post(exec::start))
        .route("/exec/{id}/resize", post(exec::resize))
        .route("/exec/{id}/json", get(exec::inspect))
        .route("/commit", post(c::commit))
        .route("/images/json", get(images::list))
        .route("/images/create", post(images::create))
        .route("/images/load", post(images::load))
        .route("/images/get", get(images::get_many))
        .route("/images/search", get(images::search))
        .route("/images/prune", post(images::prune))
        .route("/images/{*name}", any(images::by_name))
        .route("/distribution/{*name}", get(images::distribution))
        .route("/build", post(build::build))
        .route("/build/prune", post(build::prune))
        .route("/build/cancel", post(build::cancel))
        .route("/session", post(system::session_unsupported))
        .route("/networks", get(networks::list))
        .route("/networks/create", post(networks::create))
        .route("/networks/prune", post(networks::prune))
        .route("/networks/{id}", get(networks::inspect).delete(networks::remove))
        .route("/networks/{id}/connect", post(networks::connect))
        .route("/networks/{id}/disconnect", post(networks::disconnect))
        .route("/volumes", get(volumes::list))
        .route("/volumes/create", post(volumes::create))
        .route("/volumes/prune", post(volumes::prune))
        .route("/volumes/{name}", get(volumes::inspect).delete(volumes::remove).put(system::not_swarm_manager))
        .route("/plugins", get(system::plugins_list))
        .route("/plugins/{*rest}", any(system::plugins_unsupported))
        .route("/swarm", swarm.clone())
        .route("/swarm/{*rest}", swarm.clone())
        .route("/nodes", swarm.clone())
        .route("/nodes/{*rest}", swarm.clone())
        .route("/services", swarm.clone())
        .route("/services/{*rest}", swarm.clone())
        .route("/tasks", swarm.clone())
        .route("/tasks/{*rest}", swarm.clone())
        .route("/secrets", swarm.clone())
        .route("/secrets/{*rest}", swarm.clone())
        .route("/configs", swarm.clone())
        .route("/configs/{*rest}", swarm)
        .fallback(not_found)
        .layer(axum::middleware::from_fn(run_to_completion))
        .layer(axum::middleware::from_fn_with_state(authz::plugins(&engine.cfg.authorization_plugins), authz::check))
        .layer(axum::middleware::from_fn_with_state(engine.clone(), version_and_headers))
        .with_state(engine)
}

async fn registry_auth(axum::extract::State(e): axum::extract::State<Arc<Engine>>, req: Request) -> util::ApiResult {
    let body = util::read_body(req, util::MAX_SMALL_BODY).await?;
    registry::auth(e, &body).await
}
