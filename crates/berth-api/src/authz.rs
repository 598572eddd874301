//! Authorization plugins (`--authorization-plugin NAME`), speaking Docker's AuthZ plugin
//! protocol: before a request is served, `POST /AuthZPlugin.AuthZReq` with its method,
//! URI, headers and (JSON, up to 1 MiB) body; after, `POST /AuthZPlugin.AuthZRes` with the
//! answer's status, headers and (when not streamed) body. A plugin that says no turns the
//! request into `403 authorization denied by plugin NAME: <msg>`; one that fails or cannot
//! be reached turns it into a 500 (fail closed), as dockerd does.
//!
//! Plugins are found as dockerd finds legacy plugins: `<dir>/NAME.sock`,
//! `<dir>/NAME/NAME.sock`, `<dir>/NAME.spec` (a `unix://` URL) or `<dir>/NAME.json`
//! (`{"Addr": "unix://..."}`), over `/run/docker/plugins`, `/etc/docker/plugins`,
//! `/usr/lib/docker/plugins` — or the directories in `BERTH_PLUGIN_DIRS` (colon-separated).
//! A NAME that is an absolute path is the plugin's socket itself. `/_ping` is not
//! submitted to plugins.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

/// Bodies larger than this are not sent to plugins (dockerd's `maxBodySize`).
const MAX_BODY: usize = 1 << 20;
const PLUGIN_MIME: &str = "application/vnd.docker.plugins.v1.2+json";

/// The request URI as the client sent it (with its `/v1.NN` prefix), for plugins.
#[derive(Debug, Clone)]
pub struct RequestUri(pub String);

/// The common name of the TLS client certificate a request came with.
#[derive(Debug, Clone)]
pub struct TlsUser(pub String);

pub struct Plugin {
    name: String,
    socket: OnceCell<PathBuf>,
}

pub type Plugins = Arc<Vec<Plugin>>;

pub fn plugins(names: &[String]) -> Plugins {
    Arc::new(names.iter().map(|n| Plugin { name: n.clone(), socket: OnceCell::new() }).collect())
}

#[derive(Serialize, Default)]
#[serde(rename_all = "PascalCase")]
struct AuthzRequest {
    user: String,
    #[serde(rename = "UserAuthNMethod")]
    user_authn_method: String,
    request_method: String,
    #[serde(rename = "RequestURI")]
    request_uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_body: Option<String>,
    request_headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_headers: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_status_code: Option<u16>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct AuthzResponse {
    allow: bool,
    msg: String,
    err: String,
}

fn search_dirs() -> Vec<PathBuf> {
    match std::env::var_os("BERTH_PLUGIN_DIRS") {
        Some(v) => std::env::split_paths(&v).collect(),
        None => ["/run/docker/plugins", "/etc/docker/plugins", "/usr/lib/docker/plugins"].iter().map(PathBuf::from).collect(),
    }
}

/// Where plugin `name` listens (see the module's doc).
pub fn locate(name: &str) -> Result<PathBuf, String> {
    if name.starts_with('/') {
        return Ok(PathBuf::from(name));
    }
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(format!("invalid plugin name {name:?}"));
    }
    let unix = |addr: &str, file: &Path| -> Result<PathBuf, String> {
        addr.trim().strip_prefix("unix://").map(PathBuf::from).ok_or_else(|| format!("{}: only unix:// plugin addresses are supported", file.display()))
    };
    for dir in search_dirs() {
        for sock in [dir.join(format!("{name}.sock")), dir.join(name).join(format!("{name}.sock"))] {
            if sock.exists() {
                return Ok(sock);
            }
        }
        let spec = dir.join(format!("{name}.spec"));
        if let Ok(text) = std::fs::read_to_string(&spec) {
            return unix(&text, &spec);
        }
        let json = dir.join(format!("{name}.json"));
        if let Ok(text) = std::fs::read_to_string(&json) {
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", json.display()))?;
            return unix(v["Addr"].as_str().unwrap_or_default(), &json);
        }
    }
    Err(format!("plugin {name:?} not found"))
}

/// One POST of JSON to the plugin at `socket`, its JSON answer back.
async fn call(socket: &Path, path: &str, body: Vec<u8>) -> Result<Vec<u8>, String> {
    let stream = tokio::net::UnixStream::connect(socket).await.map_err(|e| format!("{}: {e}", socket.display()))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = hyper::Request::post(path)
        .header(header::HOST, "plugin")
        .header(header::CONTENT_TYPE, PLUGIN_MIME)
        .header(header::ACCEPT, PLUGIN_MIME)
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(std::time::Duration::from_secs(30), send.send_request(req)).await.map_err(|_| "timed out".to_string())?.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = http_body_util::Limited::new(resp.into_body(), 4 << 20).collect().await.map_err(|e| e.to_string())?.to_bytes();
    if !status.is_success() {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body).trim()));
    }
    Ok(body.to_vec())
}

impl Plugin {
    /// The plugin's socket, once it has said (Plugin.Activate) that it implements authz.
    async fn socket(&self) -> Result<&Path, String> {
        self.socket
            .get_or_try_init(|| async {
                let sock = locate(&self.name)?;
                let answer = call(&sock, "/Plugin.Activate", b"{}".to_vec()).await?;
                let v: serde_json::Value = serde_json::from_slice(&answer).map_err(|e| e.to_string())?;
                let implements = v["Implements"].as_array().is_some_and(|a| a.iter().any(|x| x == "authz"));
                if !implements {
                    return Err(format!("plugin {} does not implement authz", self.name));
                }
                Ok(sock)
            })
            .await
            .map(PathBuf::as_path)
    }

    async fn ask(&self, path: &str, req: &AuthzRequest) -> Result<AuthzResponse, String> {
        let sock = self.socket().await?;
        let answer = call(sock, path, serde_json::to_vec(req).map_err(|e| e.to_string())?).await?;
        serde_json::from_slice(&answer).map_err(|e| format!("bad answer from plugin: {e}"))
    }
}

fn headers_of(h: &HeaderMap) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in h {
        // As dockerd: credentials are not shown to plugins.
        if k == header::AUTHORIZATION || k.as_str() == "x-registry-auth" {
            continue;
        }
        out.entry(header_name(k.as_str())).or_insert_with(|| String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    out
}

/// Go's canonical header form (`content-type` → `Content-Type`), as plugins see them.
fn header_name(k: &str) -> String {
    k.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn is_json(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"))
}

fn deny(name: &str, msg: &str) -> Response {
    crate::util::ApiError(berth_engine::Error::forbidden(format!("authorization denied by plugin {name}: {msg}"))).into_response()
}

fn failed(name: &str, err: &str) -> Response {
    crate::util::ApiError(berth_engine::Error::system(format!("plugin {name} failed with error: {err}"))).into_response()
}

/// The middleware: every plugin must allow the request, then its answer.
pub async fn check(axum::extract::State(plugins): axum::extract::State<Plugins>, req: Request, next: Next) -> Response {
    // /_ping (version negotiation, health checks) tells nothing and changes nothing: it
    // answers even when a plugin is down.
    if plugins.is_empty() || req.uri().path() == "/_ping" {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let uri = parts.extensions.get::<RequestUri>().map(|u| u.0.clone()).unwrap_or_else(|| parts.uri.to_string());
    let small = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok()).is_some_and(|n| n <= MAX_BODY);
    // As dockerd: never the body of /auth (registry credentials).
    let secret = parts.uri.path().ends_with("/auth");
    let (body, sent_body) = if is_json(&parts.headers) && small && !secret {
        match body.collect().await {
            Ok(b) => {
                let b = b.to_bytes();
                let enc = (!b.is_empty()).then(|| base64::engine::general_purpose::STANDARD.encode(&b));
                (Body::from(b), enc)
            }
            Err(e) => return crate::util::ApiError(berth_engine::Error::invalid(format!("reading body: {e}"))).into_response(),
        }
    } else {
        (body, None)
    };
    let user = parts.extensions.get::<TlsUser>().map(|u| u.0.clone());
    let mut areq = AuthzRequest {
        user_authn_method: if user.is_some() { "TLS".into() } else { String::new() },
        user: user.unwrap_or_default(),
        request_method: parts.method.to_string(),
        request_uri: uri,
        request_body: sent_body,
        request_headers: headers_of(&parts.headers),
        ..Default::default()
    };
    for p in plugins.iter() {
        match p.ask("/AuthZPlugin.AuthZReq", &areq).await {
            Ok(a) if !a.err.is_empty() => return failed(&p.name, &a.err),
            Ok(a) if !a.allow => return deny(&p.name, &a.msg),
            Ok(_) => {}
            Err(e) => return failed(&p.name, &e),
        }
    }
    let resp = next.run(Request::from_parts(parts, body)).await;
    // The answer: its body goes to plugins only when small and not streamed.
    let (rparts, rbody) = resp.into_parts();
    let exact = axum::body::HttpBody::size_hint(&rbody).exact();
    let buffer = rparts.status != StatusCode::SWITCHING_PROTOCOLS && exact.is_some_and(|n| n as usize <= MAX_BODY);
    let rbody = if buffer {
        match rbody.collect().await {
            Ok(b) => {
                let b = b.to_bytes();
                areq.response_body = (!b.is_empty()).then(|| base64::engine::general_purpose::STANDARD.encode(&b));
                Body::from(b)
            }
            Err(e) => return failed("", &e.to_string()),
        }
    } else {
        rbody
    };
    areq.response_status_code = Some(rparts.status.as_u16());
    areq.response_headers = Some(headers_of(&rparts.headers));
    for p in plugins.iter() {
        match p.ask("/AuthZPlugin.AuthZRes", &areq).await {
            Ok(a) if !a.err.is_empty() => return failed(&p.name, &a.err),
            Ok(a) if !a.allow => return deny(&p.name, &a.msg),
            Ok(_) => {}
            Err(e) => return failed(&p.name, &e),
        }
    }
    Response::from_parts(rparts, rbody)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_canonical() {
        assert_eq!(header_name("content-type"), "Content-Type");
        assert_eq!(header_name("x-docker-thing"), "X-Docker-Thing");
    }

    #[test]
    fn locate_finds_sockets_and_specs() {
        let dir = std::env::temp_dir().join(format!("berth-authz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        struct D(PathBuf);
        impl D {
            fn path(&self) -> &Path {
                &self.0
            }
        }
        impl Drop for D {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let d = D(dir);
        std::fs::write(d.path().join("p1.spec"), "unix:///run/p1.sock\n").unwrap();
        std::fs::write(d.path().join("p2.json"), r#"{"Addr":"unix:///run/p2.sock"}"#).unwrap();
        std::fs::write(d.path().join("p3.sock"), "").unwrap();
        // SAFETY: tests in this module are the only readers of the variable.
        unsafe { std::env::set_var("BERTH_PLUGIN_DIRS", d.path()) };
        assert_eq!(locate("p1").unwrap(), PathBuf::from("/run/p1.sock"));
        assert_eq!(locate("p2").unwrap(), PathBuf::from("/run/p2.sock"));
        assert_eq!(locate("p3").unwrap(), d.path().join("p3.sock"));
        assert!(locate("nope").is_err());
        assert!(locate("../x").is_err());
        assert_eq!(locate("/abs/x.sock").unwrap(), PathBuf::from("/abs/x.sock"));
    }
}
