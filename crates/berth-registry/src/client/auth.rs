//! Registry authentication: `WWW-Authenticate` challenges, the Bearer token flow
//! (docker's token auth spec, with OAuth2 refresh tokens for identity tokens), and a
//! token cache keyed by realm, service, scopes and user.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::credentials::AuthConfig;
use super::error::RegistryError;

/// A challenge a registry answered 401 with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses every challenge in `WWW-Authenticate` values (several may share one header,
/// comma-separated; parameters may be quoted with backslash escapes).
pub fn parse_challenges<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Challenge> {
    let mut out = Vec::new();
    for v in values {
        for (scheme, params) in split_challenges(v) {
            let get = |k: &str| {
                params
                    .iter()
                    .find(|(pk, _)| pk.eq_ignore_ascii_case(k))
                    .map(|(_, pv)| pv.clone())
            };
            if scheme.eq_ignore_ascii_case("basic") {
                out.push(Challenge::Basic);
            } else if scheme.eq_ignore_ascii_case("bearer")
                && let Some(realm) = get("realm")
            {
                out.push(Challenge::Bearer {
                    realm,
                    service: get("service"),
                    scope: get("scope"),
                });
            }
        }
    }
    out
}

type Params = Vec<(String, String)>;

fn split_challenges(s: &str) -> Vec<(String, Params)> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out: Vec<(String, Params)> = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t' || b[*i] == b',') {
            *i += 1;
        }
    };
    let token = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && !matches!(b[*i], b' ' | b'\t' | b',' | b'=' | b'"') {
            *i += 1;
        }
        s[start..*i].to_string()
    };
    loop {
        skip_ws(&mut i);
        if i >= b.len() {
            break;
        }
        let word = token(&mut i);
        if word.is_empty() {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < b.len() && (b[j] == b' ' || b[j] == b'\t') {
            j += 1;
        }
        if j < b.len() && b[j] == b'=' {
            // A parameter of the current challenge.
            i = j + 1;
            while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
                i += 1;
            }
            let value = if i < b.len() && b[i] == b'"' {
                i += 1;
                let mut v = String::new();
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        i += 1;
                    }
                    let ch_len = utf8_len(b[i]);
                    v.push_str(&s[i..(i + ch_len).min(b.len())]);
                    i += ch_len;
                }
                i += 1;
                v
            } else {
                token(&mut i)
            };
            if let Some(last) = out.last_mut() {
                last.1.push((word, value));
            }
        } else {
            out.push((word, Vec::new()));
        }
    }
    out
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}

/// `Basic base64(user:password)`.
pub fn basic_header(username: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
    )
}

/// Bearer tokens by (realm, service, scopes, user), until shortly before they expire.
#[derive(Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl TokenCache {
    fn key(realm: &str, service: &str, scopes: &[String], user: &str) -> String {
        let mut s = scopes.to_vec();
        s.sort();
        format!("{realm}\n{service}\n{}\n{user}", s.join(" "))
    }

    pub fn get(&self, realm: &str, service: &str, scopes: &[String], user: &str) -> Option<String> {
        let map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&Self::key(realm, service, scopes, user)) {
            Some((t, until)) if Instant::now() < *until => Some(t.clone()),
            _ => None,
        }
    }

    pub fn put(&self, realm: &str, service: &str, scopes: &[String], user: &str, token: &str, ttl: Duration) {
        // Renew a little early so a token does not expire in the middle of a request.
        let until = Instant::now() + ttl.saturating_sub(Duration::from_secs(10)).max(Duration::from_secs(1));
        let mut map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(Self::key(realm, service, scopes, user), (token.to_string(), until));
    }

    pub fn forget(&self, realm: &str, service: &str, scopes: &[String], user: &str) {
        let mut map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&Self::key(realm, service, scopes, user));
    }
}

/// What a token endpoint returns.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub access_token: String,
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// Present when an offline token (for `docker login`) was asked for.
    #[serde(default)]
    pub refresh_token: Option<String>,
}

impl TokenResponse {
    pub fn bearer(&self) -> &str {
        if self.token.is_empty() {
            &self.access_token
        } else {
            &self.token
        }
    }

    /// The lifetime, at least 60 s as the token spec says when absent or shorter.
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.expires_in.unwrap_or(60).max(60))
    }
}

/// Asks a token endpoint for a token covering `scopes`. With an identity token this is
/// an OAuth2 refresh-token POST; otherwise a GET with Basic credentials (or none).
pub async fn fetch_token(
    http: &reqwest::Client,
    registry: &str,
    realm: &str,
    service: Option<&str>,
    scopes: &[String],
    auth: &AuthConfig,
    offline: bool,
) -> Result<TokenResponse, RegistryError> {
    let mut url = reqwest::Url::parse(realm).map_err(|e| RegistryError::Protocol {
        registry: registry.to_string(),
        message: format!("token realm {realm:?} is not a URL: {e}"),
    })?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(RegistryError::Protocol {
            registry: registry.to_string(),
            message: format!("token realm {realm:?} is not http(s)"),
        });
    }
    let req = if !auth.identity_token.is_empty() {
        let mut form = reqwest::Url::parse("http://form.invalid/").map_err(|e| RegistryError::Protocol {
            registry: registry.to_string(),
            message: e.to_string(),
        })?;
        {
            let mut q = form.query_pairs_mut();
            q.append_pair("grant_type", "refresh_token");
            q.append_pair("refresh_token", &auth.identity_token);
            q.append_pair("client_id", "berth");
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            if !scopes.is_empty() {
                q.append_pair("scope", &scopes.join(" "));
            }
        }
        http.post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.query().unwrap_or("").to_string())
    } else {
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in scopes {
                q.append_pair("scope", s);
            }
            if !auth.username.is_empty() {
                q.append_pair("account", &auth.username);
            }
            if offline {
                q.append_pair("offline_token", "true");
                q.append_pair("client_id", "berth");
            }
        }
        let rb = http.get(url);
        if auth.username.is_empty() {
            rb
        } else {
            rb.header("authorization", basic_header(&auth.username, &auth.password))
        }
    };
    let resp = req.send().await.map_err(|e| RegistryError::Connect {
        registry: registry.to_string(),
        message: format!("token endpoint {realm}: {}", super::transport::error_chain(&e)),
    })?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| RegistryError::Connect {
        registry: registry.to_string(),
        message: format!("token endpoint {realm}: {e}"),
    })?;
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        let message = if auth.is_empty() {
            "unauthorized: authentication required".to_string()
        } else {
            "unauthorized: incorrect username or password".to_string()
        };
        return Err(RegistryError::Unauthorized {
            registry: registry.to_string(),
            message,
        });
    }
    if !status.is_success() {
        return Err(RegistryError::Status {
            registry: registry.to_string(),
            what: format!("token request to {realm}"),
            status: status.as_u16(),
            message: super::error::describe_error_body(&body)
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect()),
        });
    }
    let t: TokenResponse = serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
        registry: registry.to_string(),
        message: format!("token endpoint {realm} answered something that is not a token: {e}"),
    })?;
    if t.bearer().is_empty() {
        return Err(RegistryError::Protocol {
            registry: registry.to_string(),
            message: format!("token endpoint {realm} answered without a token"),
        });
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_hub_style_bearer() {
        let c = parse_challenges([
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        ]);
        assert_eq!(
            c,
            vec![Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            }]
        );
    }

    #[test]
    fn parses_several_and_escapes() {
        let c = parse_challenges([r#"Basic realm="x, y", Bearer realm="http://a/t\"q",error="insufficient_scope""#]);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0], Challenge::Basic);
        assert_eq!(
            c[1],
            Challenge::Bearer { realm: "http://a/t\"q".into(), service: None, scope: None }
        );
        assert!(parse_challenges(["Bearer service=\"s\""]).is_empty());
        assert!(parse_challenges(["Negotiate"]).is_empty());
        assert_eq!(parse_challenges(["basic realm=Registry"]), vec![Challenge::Basic]);
    }

    #[test]
    fn cache_is_keyed_by_scope_set() {
        let c = TokenCache::default();
        let s1 = vec!["repository:a:pull".to_string(), "repository:b:pull".to_string()];
        let s2 = vec!["repository:b:pull".to_string(), "repository:a:pull".to_string()];
        c.put("r", "s", &s1, "u", "tok", Duration::from_secs(300));
        assert_eq!(c.get("r", "s", &s2, "u").as_deref(), Some("tok"));
        assert_eq!(c.get("r", "s", &s2, "other"), None);
        assert_eq!(c.get("r", "s", &s1[..1], "u"), None);
        c.forget("r", "s", &s1, "u");
        assert_eq!(c.get("r", "s", &s1, "u"), None);
    }
}
