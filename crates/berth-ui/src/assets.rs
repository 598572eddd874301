//! The dashboard's files, built into the binary (hand-written HTML, CSS and JavaScript
//! modules: no build step, no Node toolchain). Served with an ETag so a reload costs a
//! 304, and gzip-compressed once, on first use, for clients that accept it.

use std::sync::OnceLock;

use axum::extract::{Path, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub struct Asset {
    pub name: &'static str,
    pub body: &'static [u8],
    pub content_type: &'static str,
}

macro_rules! asset {
    ($name:literal, $ct:literal) => {
        Asset { name: $name, body: include_bytes!(concat!("../assets/", $name)), content_type: $ct }
    };
}

pub static ASSETS: &[Asset] = &[
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("live.js", "text/javascript; charset=utf-8"),
    asset!("charts.js", "text/javascript; charset=utf-8"),
    asset!("term.js", "text/javascript; charset=utf-8"),
    asset!("pages.js", "text/javascript; charset=utf-8"),
    asset!("container.js", "text/javascript; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
];

/// The page every route shows; `<!--BOOT-->` is replaced with the first data.
pub const INDEX: &str = include_str!("../assets/index.html");

/// FNV-1a, enough to tell versions of a file apart.
fn etag_of(body: &[u8]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in body {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("\"{h:016x}\"")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

struct Prepared {
    etag: String,
    gzip: Vec<u8>,
}

fn prepared() -> &'static Vec<Prepared> {
    static P: OnceLock<Vec<Prepared>> = OnceLock::new();
    P.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| Prepared { etag: etag_of(a.body), gzip: gzip(a.body) })
            .collect()
    })
}

pub async fn serve(Path(name): Path<String>, req: Request) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let a = &ASSETS[i];
    let p = &prepared()[i];
    let h = req.headers();
    if h.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(p.etag.as_str()) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, p.etag.clone())]).into_response();
    }
    let gzip_ok = h.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let mut r = if gzip_ok { p.gzip.clone().into_response() } else { a.body.into_response() };
    let hs = r.headers_mut();
    hs.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.content_type));
    hs.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    hs.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Ok(v) = HeaderValue::from_str(&p.etag) {
        hs.insert(header::ETAG, v);
    }
    if gzip_ok {
        hs.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_small_and_the_index_has_its_slot() {
        let total: usize = ASSETS.iter().map(|a| a.body.len()).sum();
        assert!(total < 150 * 1024, "assets are {total} bytes");
        assert!(INDEX.contains("<!--BOOT-->"));
        for a in ASSETS {
            if a.name.ends_with(".js") {
                assert!(INDEX.contains(a.name) || ASSETS.iter().any(|o| std::str::from_utf8(o.body).unwrap_or("").contains(&format!("./{}", a.name))), "{} is never loaded", a.name);
            }
        }
    }
}
