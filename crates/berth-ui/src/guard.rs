//! Who may use the dashboard. It reaches the whole Engine API, so it is worth root on
//! the host: every request needs the dashboard's token (given once as `?token=`, then
//! kept in an HttpOnly, SameSite=Strict cookie, or sent as `Authorization: Bearer`),
//! unless the connection presented a client certificate the CA verified. And since a
//! browser also carries that cookie to requests other sites make, requests from
//! another origin are refused: a cross-origin `Origin` or `Sec-Fetch-Site`, and
//! state-changing methods without the page's own `X-Berth-UI` header (which a foreign
//! page cannot send without a CORS preflight that is never granted).

use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub const COOKIE: &str = "berth_ui_token";

/// Set on connections whose TLS client certificate the CA verified.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedClient;

#[derive(Debug, Clone)]
pub struct Access {
    pub token: String,
    /// Served over TLS: the cookie gets `Secure`.
    pub tls: bool,
}

/// Constant-time comparison, so the token cannot be guessed byte by byte.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cookie_token(h: &HeaderMap) -> Option<String> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

fn bearer_token(h: &HeaderMap) -> Option<String> {
    h.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(|t| t.trim().to_string())
}

fn query_token(q: Option<&str>) -> Option<String> {
    form_urlencoded::parse(q?.as_bytes()).find(|(k, _)| k == "token").map(|(_, v)| v.into_owned())
}

/// The origin this server is reached at, from the Host header.
fn own_origins(h: &HeaderMap) -> Vec<String> {
    let host = h.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    vec![format!("http://{host}"), format!("https://{host}")]
}

/// Whether the request comes from another site (checked before anything else).
pub fn cross_origin(method: &Method, h: &HeaderMap) -> Option<&'static str> {
    if let Some(o) = h.get(header::ORIGIN).and_then(|v| v.to_str().ok())
        && !own_origins(h).iter().any(|own| own == o)
    {
        return Some("cross-origin request refused");
    }
    let site = h.get("sec-fetch-site").and_then(|v| v.to_str().ok()).unwrap_or("");
    let navigate = h.get("sec-fetch-mode").and_then(|v| v.to_str().ok()) == Some("navigate");
    if (site == "cross-site" || site == "same-site") && !(navigate && method == Method::GET) {
        return Some("cross-site request refused");
    }
    let unsafe_method = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if unsafe_method && !h.contains_key("x-berth-ui") && bearer_token(h).is_none() {
        return Some("missing X-Berth-UI header");
    }
    None
}

fn forbidden(status: StatusCode, msg: &str) -> Response {
    let body = serde_json::json!({ "message": msg }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The middleware in front of every dashboard route.
pub async fn check(axum::extract::State(access): axum::extract::State<std::sync::Arc<Access>>, req: Request, next: Next) -> Response {
    if let Some(why) = cross_origin(req.method(), req.headers()) {
        return forbidden(StatusCode::FORBIDDEN, why);
    }
    if req.extensions().get::<VerifiedClient>().is_some() {
        return next.run(req).await;
    }
    let h = req.headers();
    if cookie_token(h).or_else(|| bearer_token(h)).is_some_and(|t| same(&t, &access.token)) {
        return next.run(req).await;
    }
    // `?token=` once: remember it in the cookie and go to the same page without it.
    if let Some(t) = query_token(req.uri().query())
        && same(&t, &access.token)
    {
        let path = req.uri().path().to_string();
        let rest: Vec<(String, String)> = form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .filter(|(k, _)| k != "token")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let location = if rest.is_empty() {
            path
        } else {
            format!("{path}?{}", form_urlencoded::Serializer::new(String::new()).extend_pairs(rest).finish())
        };
        let secure = if access.tls { "; Secure" } else { "" };
        let cookie = format!("{COOKIE}={t}; Path=/; HttpOnly; SameSite=Strict{secure}");
        return (StatusCode::SEE_OTHER, [(header::LOCATION, location), (header::SET_COOKIE, cookie)]).into_response();
    }
    let is_page = req.method() == Method::GET && !req.uri().path().starts_with("/api/") && !req.uri().path().starts_with("/ui/");
    if is_page {
        return (StatusCode::UNAUTHORIZED, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], LOGIN_PAGE).into_response();
    }
    forbidden(StatusCode::UNAUTHORIZED, "the dashboard's token is required")
}

const LOGIN_PAGE: &str = r#"<!doctype html><html><head><meta charset="utf-8"><title>berth</title>
<style>body{font:15px system-ui,sans-serif;background:#0f1720;color:#e6edf3;display:grid;place-items:center;height:100vh;margin:0}
form{background:#17212b;padding:2em;border-radius:8px;max-width:28em}input{width:100%;padding:.5em;margin:.8em 0;box-sizing:border-box}
code{background:#0b1117;padding:0 .3em}</style></head>
<body><form method="get" action=""><h2>berth dashboard</h2>
<p>This dashboard needs its token. On the host, as root: <code>cat /run/berth/ui-token</code> (in the daemon's exec root).</p>
<input name="token" type="password" placeholder="token" autofocus><button>Open</button></form></body></html>"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn refuses_other_origins_and_bare_posts() {
        let own = headers(&[("host", "127.0.0.1:9000"), ("origin", "http://127.0.0.1:9000"), ("x-berth-ui", "1")]);
        assert!(cross_origin(&Method::POST, &own).is_none());
        let evil = headers(&[("host", "127.0.0.1:9000"), ("origin", "http://evil.example"), ("x-berth-ui", "1")]);
        assert!(cross_origin(&Method::POST, &evil).is_some());
        let bare = headers(&[("host", "127.0.0.1:9000")]);
        assert!(cross_origin(&Method::POST, &bare).is_some());
        assert!(cross_origin(&Method::GET, &bare).is_none());
        let nav = headers(&[("host", "h"), ("sec-fetch-site", "cross-site"), ("sec-fetch-mode", "navigate")]);
        assert!(cross_origin(&Method::GET, &nav).is_none());
        let img = headers(&[("host", "h"), ("sec-fetch-site", "cross-site"), ("sec-fetch-mode", "no-cors")]);
        assert!(cross_origin(&Method::GET, &img).is_some());
    }

    #[test]
    fn tokens_from_cookie_bearer_and_query() {
        let h = headers(&[("cookie", "a=b; berth_ui_token=s3cret"), ("authorization", "Bearer xyz")]);
        assert_eq!(cookie_token(&h).as_deref(), Some("s3cret"));
        assert_eq!(bearer_token(&h).as_deref(), Some("xyz"));
        assert_eq!(query_token(Some("x=1&token=abc")).as_deref(), Some("abc"));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
