//! The distribution v2 HTTP API over [`Storage`].
//!
//! Repository names contain slashes, so routes cannot be matched segment by segment:
//! like distribution, the path after `/v2/` is split at the *last* `/manifests/`,
//! `/blobs/` or `/tags/list`, and the name before it is validated.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::json;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::auth::{AuthResult, Htpasswd};
use super::errors::ApiError;
use super::storage::Storage;
use crate::digest::{Algorithm, Digest, Hasher};
use crate::manifest::{self, MAX_MANIFEST_SIZE};
use crate::reference::{is_valid_tag, validate_repository};

/// Shared by every request.
pub(crate) struct AppState {
    pub storage: Storage,
    pub htpasswd: Option<Htpasswd>,
    /// Pull-through cache mode: the upstream registry.
    pub proxy: Option<super::proxy::Proxy>,
    /// Bearer-token auth.
    pub token: Option<super::token::TokenAuth>,
    /// Writers hold it shared; online garbage collection holds it exclusively, so no
    /// manifest or upload lands between its mark and its sweep.
    gc: tokio::sync::RwLock<()>,
    /// Hash state of live upload sessions, so finishing an upload does not re-read it.
    /// Lost on restart, when the data file is hashed instead.
    uploads: Mutex<HashMap<String, Arc<tokio::sync::Mutex<UploadState>>>>,
}

#[derive(Default)]
struct UploadState {
    /// SHA-256 of the first `hashed` bytes of the data file.
    hasher: Option<Hasher>,
    hashed: u64,
}

impl AppState {
    pub fn new(storage: Storage, htpasswd: Option<Htpasswd>) -> AppState {
        AppState {
            storage,
            htpasswd,
            proxy: None,
            token: None,
            gc: tokio::sync::RwLock::new(()),
            uploads: Mutex::new(HashMap::new()),
        }
    }

    fn upload_state(&self, uuid: &str) -> Arc<tokio::sync::Mutex<UploadState>> {
        let mut map = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(uuid.to_string()).or_default().clone()
    }

    fn forget_upload(&self, uuid: &str) {
        let mut map = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(uuid);
    }
}

const API_VERSION_HEADER: &str = "docker-distribution-api-version";
const REALM: &str = "berth-registry";

/// The one handler: authenticates, routes, and stamps the API version header.
pub(crate) async fn handle(State(app): State<Arc<AppState>>, req: Request) -> Response {
    let mut resp = match route(&app, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    resp.headers_mut()
        .insert(API_VERSION_HEADER, HeaderValue::from_static("registry/2.0"));
    resp
}

enum Endpoint {
    Base,
    Catalog,
    Tags(String),
    Manifest(String, String),
    Blob(String, String),
    Uploads(String),
    Upload(String, String),
    Referrers(String, String),
}

fn parse_endpoint(path: &str) -> Option<Endpoint> {
    let rest = path.strip_prefix("/v2")?;
    if rest.is_empty() || rest == "/" {
        return Some(Endpoint::Base);
    }
    let rest = percent_decode(rest.strip_prefix('/')?)?;
    if rest == "_catalog" {
        return Some(Endpoint::Catalog);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Endpoint::Tags(name.to_string()));
    }
    if let Some(i) = rest.rfind("/referrers/") {
        let after = &rest[i + "/referrers/".len()..];
        if !after.contains('/') && !rest[..i].contains("/manifests/") && !rest[..i].contains("/blobs/") {
            return Some(Endpoint::Referrers(rest[..i].to_string(), after.to_string()));
        }
    }
    let m = rest.rfind("/manifests/");
    let b = rest.rfind("/blobs/");
    match (m, b) {
        (Some(m), b) if b.is_none_or(|b| m > b) => Some(Endpoint::Manifest(
            rest[..m].to_string(),
            rest[m + "/manifests/".len()..].to_string(),
        )),
        (_, Some(b)) => {
            let name = rest[..b].to_string();
            let after = &rest[b + "/blobs/".len()..];
            if after == "uploads" || after == "uploads/" {
                Some(Endpoint::Uploads(name))
            } else if let Some(uuid) = after.strip_prefix("uploads/") {
                Some(Endpoint::Upload(name, uuid.to_string()))
            } else {
                Some(Endpoint::Blob(name, after.to_string()))
            }
        }
        _ => rest
            .strip_suffix("/blobs/uploads")
            .map(|n| Endpoint::Uploads(n.to_string())),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

async fn route(app: &Arc<AppState>, req: Request) -> Result<Response, ApiError> {
    if let Some(h) = &app.htpasswd {
        let auth = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if let AuthResult::Denied = h.check(auth) {
            return Err(ApiError::unauthorized(format!("Basic realm=\"{REALM}\"")));
        }
    }
    let method = req.method().clone();
    let endpoint = parse_endpoint(req.uri().path()).ok_or_else(ApiError::not_found)?;
    let name = match &endpoint {
        Endpoint::Tags(n)
        | Endpoint::Manifest(n, _)
        | Endpoint::Blob(n, _)
        | Endpoint::Uploads(n)
        | Endpoint::Upload(n, _)
        | Endpoint::Referrers(n, _) => Some(n.clone()),
        Endpoint::Base | Endpoint::Catalog => None,
    };
    if let Some(n) = &name
        && validate_repository(n).is_err()
    {
        return Err(ApiError::name_invalid(n));
    }
    let mut query: HashMap<String, String> = Query::try_from_uri(req.uri())
        .map(|Query(q)| q)
        .unwrap_or_default();
    if let Some(t) = &app.token {
        use super::token::Scope;
        let scope = match (&endpoint, &method) {
            (Endpoint::Base, _) => None,
            (Endpoint::Catalog, _) => Some(Scope { kind: "registry".into(), name: "catalog".into(), actions: vec!["*".into()] }),
            (Endpoint::Manifest(n, _) | Endpoint::Blob(n, _), &Method::DELETE) => Some(Scope::repository(n, &["delete"])),
            (Endpoint::Manifest(n, _), &Method::PUT) | (Endpoint::Uploads(n) | Endpoint::Upload(n, _), _) => Some(Scope::repository(n, &["pull", "push"])),
            (Endpoint::Tags(n) | Endpoint::Manifest(n, _) | Endpoint::Blob(n, _) | Endpoint::Referrers(n, _), _) => Some(Scope::repository(n, &["pull"])),
        };
        let auth = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        if let Err(insufficient) = t.check(auth, scope.as_ref()) {
            return Err(ApiError::unauthorized(t.challenge(scope.as_ref(), insufficient)));
        }
        // A cross-repository mount needs pull on the source too; without it the
        // request is an ordinary upload (as distribution does).
        if let (Endpoint::Uploads(_), Some(from)) = (&endpoint, query.get("from").cloned())
            && t.check(auth, Some(&Scope::repository(&from, &["pull"]))).is_err()
        {
            query.remove("mount");
            query.remove("from");
        }
    }
    let is_head = method == Method::HEAD;
    // Anything that writes the storage (pushes, deletes, a cache filling up) waits for
    // an online collection to finish.
    let _writing = if !matches!(method, Method::GET | Method::HEAD) || app.proxy.is_some() { Some(app.gc.read().await) } else { None };
    match (endpoint, method) {
        (Endpoint::Base, Method::GET | Method::HEAD) => Ok(json_response(StatusCode::OK, "{}".into())),
        (Endpoint::Tags(n), Method::GET) if app.proxy.is_some() => proxy_tags(app, &n, &query).await,
        (Endpoint::Manifest(n, r), Method::GET | Method::HEAD) if app.proxy.is_some() => {
            proxy_manifest(app, &n, &r).await?;
            get_manifest(app, &n, &r, is_head).await
        }
        (Endpoint::Blob(n, d), Method::GET | Method::HEAD) if app.proxy.is_some() => {
            proxy_blob(app, &n, &d).await?;
            get_blob(app, &n, &d, req.headers(), is_head).await
        }
        (Endpoint::Manifest(..) | Endpoint::Blob(..) | Endpoint::Uploads(..) | Endpoint::Upload(..), _) if app.proxy.is_some() => {
            Err(ApiError::unsupported("this registry is a pull-through cache: pushes and deletes are not accepted"))
        }
        (Endpoint::Catalog, Method::GET) => catalog(app, &query).await,
        (Endpoint::Tags(n), Method::GET) => tags(app, &n, &query).await,
        (Endpoint::Referrers(n, d), Method::GET) => referrers(app, &n, &d, &query).await,
        (Endpoint::Manifest(n, r), Method::GET | Method::HEAD) => get_manifest(app, &n, &r, is_head).await,
        (Endpoint::Manifest(n, r), Method::PUT) => put_manifest(app, &n, &r, req).await,
        (Endpoint::Manifest(n, r), Method::DELETE) => delete_manifest(app, &n, &r).await,
        (Endpoint::Blob(n, d), Method::GET | Method::HEAD) => {
            get_blob(app, &n, &d, req.headers(), is_head).await
        }
        (Endpoint::Blob(n, d), Method::DELETE) => delete_blob(app, &n, &d).await,
        (Endpoint::Uploads(n), Method::POST) => start_upload(app, &n, &query, req).await,
        (Endpoint::Upload(n, u), Method::GET) => upload_status(app, &n, &u).await,
        (Endpoint::Upload(n, u), Method::PATCH) => patch_upload(app, &n, &u, req).await,
        (Endpoint::Upload(n, u), Method::PUT) => put_upload(app, &n, &u, &query, req).await,
        (Endpoint::Upload(n, u), Method::DELETE) => cancel_upload(app, &n, &u).await,
        (_, m) => Err(ApiError::unsupported(format!("method {m} not allowed here"))),
    }
}

/// Runs blocking storage work off the async threads.
async fn blocking<T, F>(app: &Arc<AppState>, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&Storage) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let app = app.clone();
    tokio::task::spawn_blocking(move || f(&app.storage))
        .await
        .map_err(|e| ApiError::internal(format!("storage task failed: {e}")))?
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn empty(status: StatusCode, headers: &[(&'static str, String)]) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    let h = r.headers_mut();
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(*k, v);
        }
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}

fn parse_digest(s: &str) -> Result<Digest, ApiError> {
    s.parse::<Digest>()
        .map_err(|e| ApiError::digest_invalid(e.to_string()))
}

// ----- catalog and tags -----

/// Applies `?n=&last=` to a sorted list; returns the page and whether more follow.
fn paginate(all: Vec<String>, query: &HashMap<String, String>) -> Result<(Vec<String>, Option<usize>), ApiError> {
    let after: Vec<String> = match query.get("last") {
        Some(last) => all.into_iter().filter(|x| x > last).collect(),
        None => all,
    };
    match query.get("n") {
        None => Ok((after, None)),
        Some(n) => {
            let n: usize = n
                .parse()
                .map_err(|_| ApiError::pagination_invalid(n))?;
            let more = after.len() > n;
            let page: Vec<String> = after.into_iter().take(n).collect();
            Ok((page, more.then_some(n)))
        }
    }
}

fn link_header(path: &str, last: &str, n: usize) -> String {
    format!("<{path}?last={last}&n={n}>; rel=\"next\"")
}

async fn catalog(app: &Arc<AppState>, query: &HashMap<String, String>) -> Result<Response, ApiError> {
    let all = blocking(app, |s| Ok(s.repositories()?)).await?;
    let (page, more) = paginate(all, query)?;
    let mut resp = json_response(StatusCode::OK, json!({ "repositories": page }).to_string());
    if let (Some(n), Some(last)) = (more, page.last())
        && let Ok(v) = HeaderValue::from_str(&link_header("/v2/_catalog", last, n))
    {
        resp.headers_mut().insert(header::LINK, v);
    }
    Ok(resp)
}

async fn tags(app: &Arc<AppState>, name: &str, query: &HashMap<String, String>) -> Result<Response, ApiError> {
    let n = name.to_string();
    let all = blocking(app, move |s| Ok(s.tags(&n)?)).await?;
    let all = all.ok_or_else(|| ApiError::name_unknown(name))?;
    let (page, more) = paginate(all, query)?;
    let mut resp = json_response(
        StatusCode::OK,
        json!({ "name": name, "tags": page }).to_string(),
    );
    if let (Some(n), Some(last)) = (more, page.last())
        && let Ok(v) = HeaderValue::from_str(&link_header(&format!("/v2/{name}/tags/list"), last, n))
    {
        resp.headers_mut().insert(header::LINK, v);
    }
    Ok(resp)
}

// ----- manifests -----

/// A manifest reference from the URL: a digest or a tag.
enum ManifestRef {
    Digest(Digest),
    Tag(String),
}

fn parse_manifest_ref(r: &str) -> Result<ManifestRef, ApiError> {
    if r.contains(':') {
        Ok(ManifestRef::Digest(parse_digest(r)?))
    } else if is_valid_tag(r) {
        Ok(ManifestRef::Tag(r.to_string()))
    } else {
        Err(ApiError::tag_invalid(r))
    }
}

async fn get_manifest(app: &Arc<AppState>, name: &str, reference: &str, head: bool) -> Result<Response, ApiError> {
    let r = parse_manifest_ref(reference)?;
    let (n, rf) = (name.to_string(), reference.to_string());
    let m = blocking(app, move |s| {
        let digest = match r {
            ManifestRef::Digest(d) => d,
            ManifestRef::Tag(t) => match s.resolve_tag(&n, &t)? {
                Some(d) => d,
                None if !s.repository_exists(&n) => return Err(ApiError::name_unknown(&n)),
                None => return Err(ApiError::manifest_unknown(&rf)),
            },
        };
        s.get_manifest(&n, &digest)?
            .ok_or_else(|| ApiError::manifest_unknown(&rf))
    })
    .await?;
    let len = m.bytes.len();
    let mut resp = Response::new(if head { Body::empty() } else { Body::from(m.bytes) });
    let h = resp.headers_mut();
    let digest = m.digest.to_string();
    for (k, v) in [
        (header::CONTENT_TYPE, m.media_type),
        (header::CONTENT_LENGTH, len.to_string()),
        (header::ETAG, format!("\"{digest}\"")),
        (header::HeaderName::from_static("docker-content-digest"), digest),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    Ok(resp)
}

async fn put_manifest(app: &Arc<AppState>, name: &str, reference: &str, req: Request) -> Result<Response, ApiError> {
    let r = parse_manifest_ref(reference)?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = axum::body::to_bytes(req.into_body(), MAX_MANIFEST_SIZE)
        .await
        .map_err(|e| ApiError::manifest_invalid(format!("cannot read manifest (at most {MAX_MANIFEST_SIZE} bytes): {e}")))?;
    let n = name.to_string();
    // OCI 1.1: a manifest with a subject is answered with `OCI-Subject`.
    let subject = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("subject").and_then(|s| s.get("digest")).and_then(|d| d.as_str()).map(str::to_string));
    let digest = blocking(app, move |s| {
        let (tag, algorithm, expected) = match r {
            ManifestRef::Tag(t) => (Some(t), Algorithm::Sha256, None),
            ManifestRef::Digest(d) => (None, d.algorithm(), Some(d)),
        };
        if let Some(exp) = &expected {
            let mut h = Hasher::new(algorithm);
            h.update(&body);
            let actual = h.finish();
            if &actual != exp {
                return Err(ApiError::digest_invalid("manifest digest did not match URL")
                    .with_detail(json!({ "expected": exp, "actual": actual })));
            }
        }
        Ok(s.put_manifest(&n, &body, content_type.as_deref(), tag.as_deref(), algorithm)?)
    })
    .await?;
    let mut headers = vec![("location", format!("/v2/{name}/manifests/{digest}")), ("docker-content-digest", digest.to_string())];
    if let Some(s) = subject {
        headers.push(("oci-subject", s));
    }
    Ok(empty(StatusCode::CREATED, &headers))
}

/// `GET /v2/<name>/referrers/<digest>[?artifactType=]` (OCI distribution 1.1): an image
/// index of the manifests whose `subject` is `digest`; 200 even when there are none.
async fn referrers(app: &Arc<AppState>, name: &str, digest: &str, query: &HashMap<String, String>) -> Result<Response, ApiError> {
    let d = parse_digest(digest)?;
    let (n, t) = (name.to_string(), query.get("artifactType").cloned());
    let filter = t.clone();
    let list = blocking(app, move |s| Ok(s.referrers(&n, &d, filter.as_deref())?)).await?;
    let body = json!({"schemaVersion": 2, "mediaType": manifest::media::OCI_INDEX, "manifests": list}).to_string();
    let mut resp = json_response(StatusCode::OK, body);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(manifest::media::OCI_INDEX));
    if t.is_some() {
        h.insert("oci-filters-applied", HeaderValue::from_static("artifactType"));
    }
    Ok(resp)
}

async fn delete_manifest(app: &Arc<AppState>, name: &str, reference: &str) -> Result<Response, ApiError> {
    let r = parse_manifest_ref(reference)?;
    let (n, rf) = (name.to_string(), reference.to_string());
    blocking(app, move |s| {
        let found = match r {
            ManifestRef::Digest(d) => s.delete_manifest(&n, &d)?,
            ManifestRef::Tag(t) => s.delete_tag(&n, &t)?,
        };
        if found {
            Ok(())
        } else {
            Err(ApiError::manifest_unknown(&rf))
        }
    })
    .await?;
    Ok(empty(StatusCode::ACCEPTED, &[]))
}

/// One online garbage collection (see `ServerConfig::gc_interval`).
pub(crate) async fn collect_online(app: &Arc<AppState>, grace: std::time::Duration, delete_untagged: bool) -> Option<super::gc::GcReport> {
    let _exclusive = app.gc.write().await;
    let opts = super::gc::GcOptions { delete_untagged, dry_run: false };
    let app2 = app.clone();
    match tokio::task::spawn_blocking(move || super::gc::collect(&app2.storage, &opts, Some(grace))).await {
        Ok(Ok(r)) => {
            tracing::info!(deleted = r.blobs_deleted.len(), freed = r.bytes_freed, kept = r.blobs_kept, "online garbage collection");
            Some(r)
        }
        Ok(Err(e)) => {
            tracing::warn!("online garbage collection: {e}");
            None
        }
        Err(e) => {
            tracing::warn!("online garbage collection: {e}");
            None
        }
    }
}

// ----- pull-through cache -----

fn upstream_error(e: crate::client::RegistryError, unknown: impl FnOnce() -> ApiError) -> ApiError {
    match e.kind() {
        crate::client::ErrorKind::NotFound => unknown(),
        crate::client::ErrorKind::Unauthorized => ApiError::unauthorized(format!("Basic realm=\"{REALM}\"")),
        _ => ApiError::internal(format!("upstream: {e}")),
    }
}

/// Makes sure the manifest `reference` names is stored: a digest not stored yet, or a
/// tag, is asked of the upstream (a tag follows the upstream; when it is unreachable
/// the stored tag is served, as distribution's proxy does).
async fn proxy_manifest(app: &Arc<AppState>, name: &str, reference: &str) -> Result<(), ApiError> {
    let proxy = app.proxy.as_ref().expect("proxy mode");
    let r = parse_manifest_ref(reference)?;
    if let ManifestRef::Digest(d) = &r {
        let (n, d2) = (name.to_string(), d.clone());
        if blocking(app, move |s| Ok(s.get_manifest(&n, &d2)?.is_some())).await? {
            return Ok(());
        }
    }
    let fetched = match proxy.manifest(name, reference).await {
        Ok(m) => m,
        Err(e) => {
            if let ManifestRef::Tag(t) = &r {
                let (n, t) = (name.to_string(), t.clone());
                if blocking(app, move |s| Ok(s.resolve_tag(&n, &t)?.is_some())).await? {
                    tracing::warn!("upstream unreachable for {name}:{reference}, serving the cached manifest: {e}");
                    return Ok(());
                }
            }
            return Err(upstream_error(e, || ApiError::manifest_unknown(reference)));
        }
    };
    let tag = match r {
        ManifestRef::Tag(t) => Some(t),
        ManifestRef::Digest(_) => None,
    };
    let n = name.to_string();
    blocking(app, move |s| Ok(s.cache_manifest(&n, &fetched.bytes, &fetched.media_type, &fetched.digest, tag.as_deref())?)).await
}

/// Makes sure blob `digest` is stored and linked to `name`, from the upstream if need be.
async fn proxy_blob(app: &Arc<AppState>, name: &str, digest: &str) -> Result<(), ApiError> {
    let proxy = app.proxy.as_ref().expect("proxy mode");
    let d = parse_digest(digest)?;
    let (n, d2) = (name.to_string(), d.clone());
    let have = blocking(app, move |s| {
        if s.blob_size(&n, &d2)?.is_some() {
            return Ok(true);
        }
        if s.blob_exists_globally(&d2) {
            s.link_blob(&n, &d2)?;
            return Ok(true);
        }
        Ok(false)
    })
    .await?;
    if have {
        return Ok(());
    }
    let n = name.to_string();
    let uuid = blocking(app, move |s| Ok(s.create_upload(&n)?)).await?;
    let path = app.storage.upload_data_path(&uuid);
    let mut file = std::fs::OpenOptions::new().append(true).create(true).open(&path).map_err(|e| ApiError::internal(e.to_string()))?;
    let fetched = proxy.blob_into(name, &d, &mut file).await;
    drop(file);
    let (n, u) = (name.to_string(), uuid.clone());
    let (_, computed) = match fetched {
        Ok(x) => x,
        Err(e) => {
            let _ = blocking(app, move |s| Ok(s.cancel_upload(&n, &u)?)).await;
            return Err(upstream_error(e, || ApiError::blob_unknown(digest)));
        }
    };
    let n = name.to_string();
    blocking(app, move |s| Ok(s.commit_upload(&n, &uuid, &d, Some(computed))?)).await?;
    Ok(())
}

/// The upstream's tags (paginated here as for stored ones).
async fn proxy_tags(app: &Arc<AppState>, name: &str, query: &HashMap<String, String>) -> Result<Response, ApiError> {
    let proxy = app.proxy.as_ref().expect("proxy mode");
    let mut all = proxy.tags(name).await.map_err(|e| upstream_error(e, || ApiError::name_unknown(name)))?;
    all.sort();
    let (page, next) = paginate(all, query)?;
    let mut resp = json_response(StatusCode::OK, json!({"name": name, "tags": page}).to_string());
    if let (Some(n), Some(last)) = (next, page.last()) {
        if let Ok(v) = HeaderValue::from_str(&link_header(&format!("/v2/{name}/tags/list"), last, n)) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(resp)
}

// ----- blobs -----

/// A single byte range from a `Range: bytes=...` header, resolved against `len`.
/// `Ok(None)` means "serve the whole blob" (no header, or a form we ignore, as RFC 9110
/// allows); an unsatisfiable range is an error.
fn parse_range(headers: &HeaderMap, len: u64) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(v) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let unsatisfiable = || ApiError::range_invalid(format!("range {spec} not satisfiable for {len} bytes"));
    let (start, end) = if a.is_empty() {
        // Suffix: the last N bytes.
        let n: u64 = b.parse().map_err(|_| unsatisfiable())?;
        if n == 0 || len == 0 {
            return Err(unsatisfiable());
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let start: u64 = a.parse().map_err(|_| unsatisfiable())?;
        let end: u64 = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            b.parse::<u64>().map_err(|_| unsatisfiable())?.min(len.saturating_sub(1))
        };
        if start >= len || end < start {
            return Err(unsatisfiable());
        }
        (start, end)
    };
    Ok(Some((start, end)))
}

async fn get_blob(app: &Arc<AppState>, name: &str, digest: &str, headers: &HeaderMap, head: bool) -> Result<Response, ApiError> {
    let d = parse_digest(digest)?;
    let (n, d2) = (name.to_string(), d.clone());
    let (file, len) = blocking(app, move |s| {
        s.open_blob(&n, &d2)?
            .ok_or_else(|| ApiError::blob_unknown(&d2.to_string()))
    })
    .await?;
    let range = match parse_range(headers, len) {
        Ok(r) => r,
        Err(mut e) => {
            e.www_authenticate = None;
            let mut resp = e.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(resp);
        }
    };
    let (status, start, count) = match range {
        Some((s, e)) => (StatusCode::PARTIAL_CONTENT, s, e - s + 1),
        None => (StatusCode::OK, 0, len),
    };
    let body = if head {
        Body::empty()
    } else {
        let mut f = tokio::fs::File::from_std(file);
        if start > 0 {
            f.seek(std::io::SeekFrom::Start(start)).await?;
        }
        use tokio::io::AsyncReadExt;
        Body::from_stream(tokio_util::io::ReaderStream::with_capacity(f.take(count), 256 * 1024))
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    let ds = d.to_string();
    let mut set = |k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    set("content-type", "application/octet-stream".into());
    set("content-length", count.to_string());
    set("accept-ranges", "bytes".into());
    set("etag", format!("\"{ds}\""));
    set("cache-control", "max-age=31536000".into());
    set("docker-content-digest", ds);
    if status == StatusCode::PARTIAL_CONTENT {
        set("content-range", format!("bytes {}-{}/{len}", start, start + count - 1));
    }
    Ok(resp)
}

async fn delete_blob(app: &Arc<AppState>, name: &str, digest: &str) -> Result<Response, ApiError> {
    let d = parse_digest(digest)?;
    let n = name.to_string();
    blocking(app, move |s| {
        if s.unlink_blob(&n, &d)? {
            Ok(())
        } else {
            Err(ApiError::blob_unknown(&d.to_string()))
        }
    })
    .await?;
    Ok(empty(StatusCode::ACCEPTED, &[]))
}

// ----- uploads -----

fn upload_headers(name: &str, uuid: &str, size: u64) -> Vec<(&'static str, String)> {
    vec![
        ("location", format!("/v2/{name}/blobs/uploads/{uuid}")),
        // Distribution's convention: the inclusive end, "0-0" when empty.
        ("range", format!("0-{}", size.saturating_sub(1))),
        ("docker-upload-uuid", uuid.to_string()),
    ]
}

fn blob_created(name: &str, digest: &Digest) -> Response {
    empty(
        StatusCode::CREATED,
        &[
            ("location", format!("/v2/{name}/blobs/{digest}")),
            ("docker-content-digest", digest.to_string()),
        ],
    )
}

async fn start_upload(app: &Arc<AppState>, name: &str, query: &HashMap<String, String>, req: Request) -> Result<Response, ApiError> {
    if let (Some(mount), Some(from)) = (query.get("mount"), query.get("from")) {
        let d = parse_digest(mount)?;
        if validate_repository(from).is_ok() {
            let (n, f, d2) = (name.to_string(), from.clone(), d.clone());
            let mounted = blocking(app, move |s| {
                if s.blob_size(&f, &d2)?.is_some() {
                    s.link_blob(&n, &d2)?;
                    Ok(true)
                } else {
                    Ok(false)
                }
            })
            .await?;
            if mounted {
                return Ok(blob_created(name, &d));
            }
        }
        // Not mountable: fall through to an ordinary upload, as the spec asks.
    }
    let monolithic = match query.get("digest") {
        Some(d) => Some(parse_digest(d)?),
        None => None,
    };
    let n = name.to_string();
    let uuid = blocking(app, move |s| Ok(s.create_upload(&n)?)).await?;
    match monolithic {
        Some(d) => finish_upload(app, name, &uuid, &d, req.into_body()).await,
        None => Ok(empty(StatusCode::ACCEPTED, &upload_headers(name, &uuid, 0))),
    }
}

async fn upload_status(app: &Arc<AppState>, name: &str, uuid: &str) -> Result<Response, ApiError> {
    let (n, u) = (name.to_string(), uuid.to_string());
    let size = blocking(app, move |s| Ok(s.upload_size(&n, &u)?))
        .await?
        .ok_or_else(ApiError::upload_unknown)?;
    Ok(empty(StatusCode::NO_CONTENT, &upload_headers(name, uuid, size)))
}

/// `Content-Range: <start>-<end>` (distribution's form) or `bytes <start>-<end>/<len>`.
fn content_range_start(headers: &HeaderMap) -> Option<Result<u64, ()>> {
    let v = headers.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let v = v.trim();
    let v = v.strip_prefix("bytes ").unwrap_or(v);
    let start = v.split(['-', '/']).next().unwrap_or("");
    Some(start.trim().parse().map_err(|_| ()))
}

async fn patch_upload(app: &Arc<AppState>, name: &str, uuid: &str, req: Request) -> Result<Response, ApiError> {
    let state = app.upload_state(uuid);
    let mut state = state.lock().await;
    let (n, u) = (name.to_string(), uuid.to_string());
    let size = blocking(app, move |s| Ok(s.upload_size(&n, &u)?))
        .await?
        .ok_or_else(ApiError::upload_unknown)?;
    if let Some(start) = content_range_start(req.headers())
        && start != Ok(size)
    {
        {
            let mut resp = ApiError::range_invalid(format!("upload is at offset {size}")).into_response();
            for (k, v) in upload_headers(name, uuid, size) {
                if let Ok(v) = HeaderValue::from_str(&v) {
                    resp.headers_mut().insert(k, v);
                }
            }
            return Ok(resp);
        }
    }
    let size = append_body(app, uuid, &mut state, size, req.into_body()).await?;
    Ok(empty(StatusCode::ACCEPTED, &upload_headers(name, uuid, size)))
}

async fn put_upload(app: &Arc<AppState>, name: &str, uuid: &str, query: &HashMap<String, String>, req: Request) -> Result<Response, ApiError> {
    let digest = query
        .get("digest")
        .ok_or_else(|| ApiError::digest_invalid("digest parameter missing"))?;
    let d = parse_digest(digest)?;
    finish_upload(app, name, uuid, &d, req.into_body()).await
}

/// Appends an optional final body, then checks the digest and commits the blob.
async fn finish_upload(app: &Arc<AppState>, name: &str, uuid: &str, digest: &Digest, body: Body) -> Result<Response, ApiError> {
    let state_arc = app.upload_state(uuid);
    let mut state = state_arc.lock().await;
    let (n, u) = (name.to_string(), uuid.to_string());
    let size = blocking(app, move |s| Ok(s.upload_size(&n, &u)?))
        .await?
        .ok_or_else(ApiError::upload_unknown)?;
    let size = append_body(app, uuid, &mut state, size, body).await?;
    let computed = match (&state.hasher, state.hashed == size) {
        (Some(h), true) => Some(h.clone().finish()),
        _ => None,
    };
    let (n, u, d) = (name.to_string(), uuid.to_string(), digest.clone());
    let result = blocking(app, move |s| Ok(s.commit_upload(&n, &u, &d, computed)?)).await;
    drop(state);
    app.forget_upload(uuid);
    result?;
    Ok(blob_created(name, digest))
}

/// Streams a request body onto the end of an upload's data file, hashing as it goes.
/// Returns the new size. Bytes received before a broken connection stay (a client can
/// ask for the offset and resume).
async fn append_body(app: &Arc<AppState>, uuid: &str, state: &mut UploadState, size: u64, body: Body) -> Result<u64, ApiError> {
    if state.hasher.is_none() && size == 0 {
        state.hasher = Some(Hasher::new(Algorithm::Sha256));
        state.hashed = 0;
    }
    let file = tokio::fs::OpenOptions::new()
        .append(true)
        .open(app.storage.upload_data_path(uuid))
        .await?;
    let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let mut stream = body.into_data_stream();
    let mut written = 0u64;
    let mut failure = None;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                failure = Some(ApiError::upload_invalid(format!("reading request body: {e}")));
                break;
            }
        };
        if let Err(e) = out.write_all(&chunk).await {
            failure = Some(e.into());
            break;
        }
        if state.hashed == size + written
            && let Some(h) = state.hasher.as_mut()
        {
            h.update(&chunk);
            state.hashed += chunk.len() as u64;
        }
        written += chunk.len() as u64;
    }
    if let Err(e) = out.flush().await {
        // Unknown how much reached the file: the hash state can no longer be trusted.
        state.hasher = None;
        return Err(e.into());
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(size + written),
    }
}

async fn cancel_upload(app: &Arc<AppState>, name: &str, uuid: &str) -> Result<Response, ApiError> {
    let (n, u) = (name.to_string(), uuid.to_string());
    let found = blocking(app, move |s| Ok(s.cancel_upload(&n, &u)?)).await?;
    app.forget_upload(uuid);
    if found {
        Ok(empty(StatusCode::NO_CONTENT, &[]))
    } else {
        Err(ApiError::upload_unknown())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_split_at_the_last_marker() {
        let e = |p: &str| parse_endpoint(p);
        assert!(matches!(e("/v2/"), Some(Endpoint::Base)));
        assert!(matches!(e("/v2"), Some(Endpoint::Base)));
        assert!(matches!(e("/v2/_catalog"), Some(Endpoint::Catalog)));
        assert!(matches!(e("/v2/a/b/tags/list"), Some(Endpoint::Tags(n)) if n == "a/b"));
        assert!(matches!(e("/v2/a/manifests/b/manifests/latest"),
            Some(Endpoint::Manifest(n, r)) if n == "a/manifests/b" && r == "latest"));
        assert!(matches!(e("/v2/a/manifests/x/blobs/sha256%3Aab"),
            Some(Endpoint::Blob(n, d)) if n == "a/manifests/x" && d == "sha256:ab"));
        assert!(matches!(e("/v2/a/blobs/uploads/"), Some(Endpoint::Uploads(n)) if n == "a"));
        assert!(matches!(e("/v2/a/blobs/uploads"), Some(Endpoint::Uploads(n)) if n == "a"));
        assert!(matches!(e("/v2/a/blobs/uploads/u1"), Some(Endpoint::Upload(n, u)) if n == "a" && u == "u1"));
        assert!(e("/v1/x").is_none());
        assert!(e("/v2/a/b").is_none());
    }

    #[test]
    fn ranges() {
        let mut h = HeaderMap::new();
        assert_eq!(parse_range(&h, 10).unwrap(), None);
        let mut with = |v: &str| {
            h.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
            parse_range(&h, 10)
        };
        assert_eq!(with("bytes=2-").unwrap(), Some((2, 9)));
        assert_eq!(with("bytes=2-4").unwrap(), Some((2, 4)));
        assert_eq!(with("bytes=2-400").unwrap(), Some((2, 9)));
        assert_eq!(with("bytes=-3").unwrap(), Some((7, 9)));
        assert_eq!(with("bytes=0-1,4-5").unwrap(), None);
        assert!(with("bytes=10-").is_err());
        assert!(with("bytes=5-2").is_err());
    }

    #[test]
    fn pagination() {
        let all: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let q = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>();
        assert_eq!(paginate(all.clone(), &q(&[("n", "2")])).unwrap(), (vec!["a".into(), "b".into()], Some(2)));
        assert_eq!(paginate(all.clone(), &q(&[("n", "2"), ("last", "b")])).unwrap(), (vec!["c".into(), "d".into()], None));
        assert_eq!(paginate(all.clone(), &q(&[("last", "c")])).unwrap(), (vec!["d".into()], None));
        assert!(paginate(all, &q(&[("n", "x")])).is_err());
    }
}
