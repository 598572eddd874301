//! A test-only HTTP proxy in front of a registry. It records requests and can inject
//! faults (cut a blob download, slow blobs, answer with a fixed error) or put a Bearer
//! token endpoint in front of the registry (docker's token auth, with scopes enforced).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use futures_util::StreamExt;

#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
}

pub struct Bearer {
    pub user: String,
    pub pass: String,
    /// token -> granted scopes
    issued: HashMap<String, Vec<String>>,
    pub token_requests: usize,
    /// Scopes asked for, per token request.
    pub asked: Vec<Vec<String>>,
}

/// A fixed answer: (status, body, headers).
pub type Canned = (u16, String, Vec<(String, String)>);

#[derive(Default)]
pub struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    me: Mutex<String>,
    pub log: Mutex<Vec<Logged>>,
    /// Cut the next blob download after this many bytes (once).
    pub cut_blob_after: Mutex<Option<u64>>,
    /// Drop Range headers, as a registry that does not support them would.
    pub ignore_range: std::sync::atomic::AtomicBool,
    /// Hold every blob download this long before answering.
    pub delay_blobs: Mutex<Option<Duration>>,
    in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    /// Answer every repository request with this.
    pub fail: Mutex<Option<Canned>>,
    pub bearer: Mutex<Option<Bearer>>,
}

pub struct Proxy {
    pub addr: SocketAddr,
    pub state: Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    pub async fn start(upstream: &str) -> Proxy {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let state = Arc::new(ProxyState {
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            ..Default::default()
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        *state.me.lock().unwrap() = format!("http://{addr}");
        let app = axum::Router::new().fallback(handle).with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Proxy { addr, state, task }
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn require_bearer(&self, user: &str, pass: &str) {
        *self.state.bearer.lock().unwrap() = Some(Bearer {
            user: user.into(),
            pass: pass.into(),
            issued: HashMap::new(),
            token_requests: 0,
            asked: Vec::new(),
        });
    }

    pub fn token_requests(&self) -> usize {
        self.state.bearer.lock().unwrap().as_ref().map_or(0, |b| b.token_requests)
    }

    pub fn asked_scopes(&self) -> Vec<Vec<String>> {
        self.state.bearer.lock().unwrap().as_ref().map_or(Vec::new(), |b| b.asked.clone())
    }

    pub fn requests(&self) -> Vec<Logged> {
        self.state.log.lock().unwrap().clone()
    }
}

fn repo_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v2/")?;
    if let Some(n) = rest.strip_suffix("/tags/list") {
        return Some(n.to_string());
    }
    let i = rest.rfind("/manifests/").into_iter().chain(rest.rfind("/blobs/")).max()?;
    Some(rest[..i].to_string())
}

fn query_param(query: &str, key: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v.replace("%3A", ":").replace("%2F", "/").replace("%2C", ",").replace('+', " "))
        .collect()
}

async fn handle(State(st): State<Arc<ProxyState>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let headers = req.headers().clone();
    st.log.lock().unwrap().push(Logged {
        method: method.to_string(),
        path: if query.is_empty() { path.clone() } else { format!("{path}?{query}") },
        range: headers.get("range").and_then(|v| v.to_str().ok()).map(str::to_string),
    });

    if path == "/token" {
        return token(&st, &headers, &query);
    }
    if let Some(r) = check_bearer(&st, &method, &path, &query, &headers) {
        return r;
    }
    let fail = if path != "/v2/" { st.fail.lock().unwrap().clone() } else { None };
    if let Some((status, body, hdrs)) = fail {
        let mut resp = Response::new(Body::from(body));
        *resp.status_mut() = StatusCode::from_u16(status).unwrap();
        for (k, v) in hdrs {
            resp.headers_mut().insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(&v).unwrap(),
            );
        }
        return resp;
    }

    let is_blob_get = method == "GET" && path.contains("/blobs/") && !path.contains("/uploads/");
    // A blob download is in flight from its request until its body is done.
    let mut guard = None;
    if is_blob_get {
        let now = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        st.max_in_flight.fetch_max(now, Ordering::SeqCst);
        guard = Some(InFlight(st.clone()));
    }
    let delay = if is_blob_get { *st.delay_blobs.lock().unwrap() } else { None };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let client = &st.http;
    let url = format!("{}{}{}", st.upstream, path, if query.is_empty() { String::new() } else { format!("?{query}") });
    let mut rb = client.request(reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap(), url);
    let bearer_mode = st.bearer.lock().unwrap().is_some();
    for (k, v) in headers.iter() {
        let name = k.as_str();
        let drop_range = name == "range" && st.ignore_range.load(Ordering::SeqCst);
        if matches!(name, "host" | "connection" | "transfer-encoding") || (bearer_mode && name == "authorization") || drop_range {
            continue;
        }
        rb = rb.header(name, v.as_bytes());
    }
    let body = reqwest::Body::wrap_stream(req.into_body().into_data_stream());
    let up = match rb.body(body).send().await {
        Ok(r) => r,
        Err(e) => {
            let mut r = Response::new(Body::from(format!("proxy: {e}")));
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            return r;
        }
    };
    let mut resp = Response::builder().status(up.status().as_u16());
    let me = st.me.lock().unwrap().clone();
    for (k, v) in up.headers() {
        let name = k.as_str();
        if matches!(name, "transfer-encoding" | "connection") {
            continue;
        }
        if name == "location" {
            // Keep clients talking to the proxy, not the registry behind it.
            let loc = v.to_str().unwrap_or("").replace(&st.upstream, &me);
            resp = resp.header(name, loc);
            continue;
        }
        resp = resp.header(name, v.as_bytes());
    }
    // Cut only a body that is longer than the cut point (not a small config blob).
    let long_enough = |limit: u64| up.content_length().is_some_and(|l| l > limit);
    let cut = if is_blob_get && up.status().is_success() {
        let mut c = st.cut_blob_after.lock().unwrap();
        if c.is_some_and(long_enough) { c.take() } else { None }
    } else {
        None
    };
    let mut sent = 0u64;
    let stream = up.bytes_stream().map(move |chunk| {
        let _keep = &guard;
        let mut chunk = chunk.map_err(std::io::Error::other)?;
        if let Some(limit) = cut {
            if sent >= limit {
                return Err(std::io::Error::other("proxy cut the connection"));
            }
            if sent + chunk.len() as u64 > limit {
                chunk = chunk.slice(..(limit - sent) as usize);
            }
        }
        sent += chunk.len() as u64;
        Ok::<_, std::io::Error>(chunk)
    });
    // After the cut point the stream errors, which makes hyper drop the connection.
    let stream = futures_util::stream::unfold((Box::pin(stream), false), |(mut s, done)| async move {
        if done {
            return None;
        }
        match s.next().await {
            Some(Ok(c)) => Some((Ok(c), (s, false))),
            Some(Err(e)) => Some((Err(e), (s, true))),
            None => None,
        }
    });
    resp.body(Body::from_stream(stream)).unwrap()
}

struct InFlight(Arc<ProxyState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn unauthorized(st: &ProxyState, scope: Option<&str>) -> Response {
    let me = st.me.lock().unwrap().clone();
    let mut ch = format!("Bearer realm=\"{me}/token\",service=\"test-registry\"");
    if let Some(s) = scope {
        ch.push_str(&format!(",scope=\"{s}\""));
    }
    let mut r = Response::new(Body::from(
        r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
    ));
    *r.status_mut() = StatusCode::UNAUTHORIZED;
    r.headers_mut().insert("www-authenticate", HeaderValue::from_str(&ch).unwrap());
    r
}

/// Enforces Bearer tokens when enabled: None means "let it through".
fn check_bearer(st: &ProxyState, method: &axum::http::Method, path: &str, query: &str, headers: &HeaderMap) -> Option<Response> {
    let guard = st.bearer.lock().unwrap();
    let b = guard.as_ref()?;
    let granted = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| b.issued.get(t));
    let mut needed = Vec::new();
    if let Some(repo) = repo_of(path) {
        let action = if *method == "GET" || *method == "HEAD" { "pull" } else { "push" };
        needed.push((repo.clone(), action));
        for from in query_param(query, "from") {
            needed.push((from, "pull"));
        }
    }
    let ok = match granted {
        None => false,
        Some(scopes) => needed.iter().all(|(repo, action)| {
            scopes.iter().any(|s| {
                let parts: Vec<&str> = s.splitn(3, ':').collect();
                parts.len() == 3 && parts[0] == "repository" && parts[1] == repo && parts[2].split(',').any(|a| a == *action)
            })
        }),
    };
    if ok {
        return None;
    }
    drop(guard);
    let scope = needed.first().map(|(r, a)| {
        let actions = if *a == "push" { "pull,push" } else { "pull" };
        format!("repository:{r}:{actions}")
    });
    Some(unauthorized(st, scope.as_deref()))
}

fn token(st: &ProxyState, headers: &HeaderMap, query: &str) -> Response {
    let mut guard = st.bearer.lock().unwrap();
    let Some(b) = guard.as_mut() else {
        let mut r = Response::new(Body::from("no token auth"));
        *r.status_mut() = StatusCode::NOT_FOUND;
        return r;
    };
    b.token_requests += 1;
    let creds = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
        .and_then(|v| String::from_utf8(v).ok());
    if creds.as_deref() != Some(&format!("{}:{}", b.user, b.pass)) {
        let mut r = Response::new(Body::from(r#"{"details":"incorrect username or password"}"#));
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        return r;
    }
    let scopes = query_param(query, "scope");
    b.asked.push(scopes.clone());
    let tok = format!("tok{}", b.token_requests);
    b.issued.insert(tok.clone(), scopes);
    let mut r = Response::new(Body::from(format!(r#"{{"token":"{tok}","expires_in":300}}"#)));
    r.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    r
}
