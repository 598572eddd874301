//! The distribution client: ping, auth, manifests, pull and push.
//!
//! ```text
//! RegistryClient            one per daemon: config, endpoint cache, token cache
//!   └─ Session              one registry endpoint + repository scopes + credentials;
//!                           adds Authorization, answers a 401 once with a fresh token
//! pull.rs / push.rs         the transfer pipelines over a `ContentStore`
//! ```

pub mod auth;
pub mod credentials;
pub mod error;
pub mod progress;
mod pull;
mod push;
pub mod transport;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap};

use crate::digest::{Digest, Hasher};
use crate::manifest::{self, Descriptor, MAX_MANIFEST_SIZE, Manifest, Platform, media};
use crate::reference::Reference;

use auth::{Challenge, TokenCache, basic_header};
pub use credentials::{AuthConfig, DockerConfig};
pub use error::{ErrorKind, RegistryError};
pub use progress::{NoProgress, Progress, ProgressSink};
pub use pull::{PullOptions, PulledImage};
pub use push::{PushOptions, PushedImage};
use transport::{Candidate, Endpoint};

/// The mirrors configured for `registry`, in order. An entry is `host=url` (a mirror of
/// that registry, like containerd's hosts.toml) or a bare URL (a Docker Hub mirror, as
/// dockerd's `registry-mirrors`). The image keeps the name it was asked by.
pub fn mirrors_of<'a>(mirrors: &'a [String], registry: &str) -> Vec<&'a str> {
    let hub = |r: &str| matches!(r, "docker.io" | "index.docker.io" | "registry-1.docker.io");
    mirrors
        .iter()
        .filter_map(|m| match m.split_once('=') {
            Some((host, url)) if !host.contains("://") => {
                let host = host.trim().trim_end_matches('/');
                (host == registry || (hub(host) && hub(registry))).then_some(url.trim())
            }
            _ => hub(registry).then_some(m.trim()),
        })
        .collect()
}

/// How the client behaves; the daemon fills it from its config (`insecure-registries`,
/// `registry-mirrors`, `max-concurrent-downloads`, ...).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Registries spoken to without verified TLS (falling back to plain HTTP): host,
    /// host:port, or CIDR.
    pub insecure_registries: Vec<String>,
    /// Mirrors tried, in order, before the registry itself: `host=url` for any
    /// registry, a bare URL for Docker Hub (see [`mirrors_of`]).
    pub registry_mirrors: Vec<String>,
    /// Per-registry CA and client certificates: `<certs_dir>/<host:port>/`.
    pub certs_dir: PathBuf,
    /// Treat 127.0.0.0/8, ::1 and localhost as insecure, as Docker does.
    pub insecure_loopback: bool,
    /// Where `docker.io` really lives.
    pub docker_hub_url: String,
    pub max_concurrent_downloads: usize,
    pub max_concurrent_uploads: usize,
    /// How many times a broken layer download is resumed before giving up.
    pub download_retries: u32,
    /// Pause before the first retry (doubled for each further one).
    pub retry_delay: Duration,
    /// Upload blobs in PATCH chunks of this size; None uploads each in one request.
    pub upload_chunk_size: Option<u64>,
    pub connect_timeout: Duration,
    pub user_agent: String,
    /// The platform picked from multi-platform images when a pull names none.
    pub default_platform: Platform,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            insecure_registries: Vec::new(),
            registry_mirrors: Vec::new(),
            certs_dir: PathBuf::from("/etc/docker/certs.d"),
            insecure_loopback: true,
            docker_hub_url: "https://registry-1.docker.io".to_string(),
            max_concurrent_downloads: 3,
            max_concurrent_uploads: 5,
            download_retries: 5,
            retry_delay: Duration::from_secs(1),
            upload_chunk_size: None,
            connect_timeout: Duration::from_secs(30),
            user_agent: format!("berth/{}", env!("CARGO_PKG_VERSION")),
            default_platform: Platform::host(),
        }
    }
}

/// A manifest as fetched: its digest, media type, exact bytes and parsed view.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Vec<u8>,
    pub manifest: Manifest,
}

/// The result of `docker login`'s check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginOutcome {
    /// An identity (refresh) token the registry handed out, to store instead of the
    /// password (`identitytoken` in config.json).
    pub identity_token: Option<String>,
}

/// The registry client. Cheap to share (`Arc`); caches endpoints and tokens.
pub struct RegistryClient {
    config: ClientConfig,
    endpoints: Mutex<HashMap<String, Arc<Endpoint>>>,
    tokens: TokenCache,
    /// For token realms on other hosts (auth.docker.io & co): system CAs only.
    generic_http: reqwest::Client,
}

impl RegistryClient {
    pub fn new(config: ClientConfig) -> Result<RegistryClient, RegistryError> {
        let generic_http = transport::build_http(
            "token endpoints",
            &transport::HostCerts::default(),
            false,
            &config.user_agent,
            config.connect_timeout,
        )?;
        Ok(RegistryClient {
            config,
            endpoints: Mutex::new(HashMap::new()),
            tokens: TokenCache::default(),
            generic_http,
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    fn is_insecure(&self, registry: &str) -> bool {
        transport::is_insecure(registry, self.config.insecure_loopback, &self.config.insecure_registries)
    }

    /// The endpoint for a registry: the first candidate URL that answers a ping.
    pub(crate) async fn endpoint(&self, registry: &str) -> Result<Arc<Endpoint>, RegistryError> {
        let cands = transport::candidates(registry, &self.config.docker_hub_url, self.is_insecure(registry));
        self.connect(registry, registry, &cands).await
    }

    async fn connect(&self, cache_key: &str, registry: &str, cands: &[Candidate]) -> Result<Arc<Endpoint>, RegistryError> {
        if let Some(ep) = self.cached(cache_key) {
            return Ok(ep);
        }
        let certs = transport::load_host_certs(&self.config.certs_dir, registry)?;
        let mut last = None;
        for c in cands {
            let http = transport::build_http(
                registry,
                &certs,
                c.skip_verify,
                &self.config.user_agent,
                self.config.connect_timeout,
            )?;
            match transport::ping(registry, c, http, self.config.connect_timeout).await {
                Ok(ep) => {
                    let ep = Arc::new(ep);
                    let mut map = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
                    map.insert(cache_key.to_string(), ep.clone());
                    return Ok(ep);
                }
                Err(e) => {
                    tracing::debug!(%registry, base = %c.base, "endpoint failed: {e}");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| RegistryError::Connect {
            registry: registry.to_string(),
            message: "no endpoint to try".to_string(),
        }))
    }

    fn cached(&self, key: &str) -> Option<Arc<Endpoint>> {
        self.endpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// Forgets a cached endpoint (after it failed to connect), so the next call pings again.
    fn forget_endpoint(&self, key: &str) {
        self.endpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// Where pulls of `registry` may come from, in order: its mirrors, then itself.
    /// Each item is (cache key, registry name for credentials, candidates).
    fn pull_sources(&self, registry: &str) -> Vec<(String, String, Vec<Candidate>)> {
        let mut out = Vec::new();
        for m in mirrors_of(&self.config.registry_mirrors, registry) {
            let base = m.trim_end_matches('/').to_string();
            let host = base.split_once("://").map(|(_, h)| h).unwrap_or(&base).split('/').next().unwrap_or("").to_string();
            let skip_verify = self.is_insecure(&host);
            let base = if base.contains("://") { base } else { format!("https://{base}") };
            out.push((format!("mirror {base}"), host, vec![Candidate { base, skip_verify }]));
        }
        let cands = transport::candidates(registry, &self.config.docker_hub_url, self.is_insecure(registry));
        out.push((registry.to_string(), registry.to_string(), cands));
        out
    }

    pub(crate) fn session(&self, ep: Arc<Endpoint>, scopes: Vec<String>, auth: &AuthConfig) -> Session<'_> {
        Session {
            client: self,
            ep,
            auth: auth.clone(),
            scopes: Mutex::new(scopes),
        }
    }

    /// Checks that a registry answers (`/v2/`) and returns the URL that did.
    pub async fn ping(&self, registry: &str) -> Result<String, RegistryError> {
        self.forget_endpoint(registry);
        let ep = self.endpoint(registry).await?;
        Ok(ep.base.to_string())
    }

    /// `docker login`: checks credentials against the registry (Basic or a token
    /// request with them). Does not store anything.
    pub async fn login(&self, registry: &str, auth: &AuthConfig) -> Result<LoginOutcome, RegistryError> {
        self.forget_endpoint(registry);
        let ep = self.endpoint(registry).await?;
        match ep.challenge() {
            None => Ok(LoginOutcome { identity_token: None }),
            Some(Challenge::Basic) => {
                let resp = ep
                    .http
                    .get(ep.url("v2/")?)
                    .header(AUTHORIZATION, basic_header(&auth.username, &auth.password))
                    .send()
                    .await
                    .map_err(|e| connect_error(&ep, &e))?;
                if resp.status().is_success() {
                    Ok(LoginOutcome { identity_token: None })
                } else {
                    Err(RegistryError::Unauthorized {
                        registry: registry.to_string(),
                        message: "unauthorized: incorrect username or password".to_string(),
                    })
                }
            }
            Some(Challenge::Bearer { realm, service, .. }) => {
                let http = self.token_http(&ep, &realm);
                let t = auth::fetch_token(http, registry, &realm, service.as_deref(), &[], auth, true).await?;
                Ok(LoginOutcome {
                    identity_token: t.refresh_token.filter(|r| !r.is_empty()),
                })
            }
        }
    }

    /// Every tag of a repository (following pagination).
    pub async fn list_tags(&self, repo: &Reference, auth: &AuthConfig) -> Result<Vec<String>, RegistryError> {
        let ep = self.endpoint(repo.registry()).await?;
        let s = self.session(ep, vec![pull_scope(repo.repository())], auth);
        let mut tags = Vec::new();
        let mut path = format!("v2/{}/tags/list", repo.repository());
        let what = format!("repository {}", repo.familiar_name());
        loop {
            let url = s.ep.url(&path)?;
            let resp = s.send(&what, |http| Ok(http.get(url.clone()))).await?;
            let next = resp
                .headers()
                .get(reqwest::header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_next_link);
            let body = read_limited(resp, 64 << 20, &s.ep.registry).await?;
            #[derive(serde::Deserialize)]
            struct Tags {
                #[serde(default)]
                tags: Option<Vec<String>>,
            }
            let t: Tags = serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
                registry: s.ep.registry.clone(),
                message: format!("tags list is not JSON: {e}"),
            })?;
            tags.extend(t.tags.unwrap_or_default());
            match next {
                Some(n) => path = n.trim_start_matches('/').to_string(),
                None => break,
            }
        }
        Ok(tags)
    }

    /// Fetches the manifest a reference names (an index stays an index).
    pub async fn fetch_manifest(&self, reference: &Reference, auth: &AuthConfig) -> Result<FetchedManifest, RegistryError> {
        let ep = self.endpoint(reference.registry()).await?;
        let s = self.session(ep, vec![pull_scope(reference.repository())], auth);
        fetch_manifest(&s, reference, &reference.tag_or_digest(), reference.digest()).await
    }

    /// `GET /distribution/{name}/json`: the manifest a reference names (its descriptor)
    /// and the platforms it provides: an index's entries, or an image manifest's
    /// config platform, as dockerd's DistributionInspect.
    pub async fn distribution_inspect(&self, reference: &Reference, auth: &AuthConfig) -> Result<(Descriptor, Vec<Platform>), RegistryError> {
        let ep = self.endpoint(reference.registry()).await?;
        let s = self.session(ep, vec![pull_scope(reference.repository())], auth);
        let m = fetch_manifest(&s, reference, &reference.tag_or_digest(), reference.digest()).await?;
        let desc = Descriptor::new(&m.media_type, m.digest.clone(), m.bytes.len() as u64);
        let platforms = match &m.manifest {
            Manifest::Index(ix) => ix.manifests.iter().filter_map(|d| d.platform.clone()).collect(),
            Manifest::Image(im) => {
                let cfg = pull::fetch_config(&s, reference, &im.config).await?;
                #[derive(serde::Deserialize)]
                struct Cfg {
                    #[serde(default)]
                    os: String,
                    #[serde(default)]
                    architecture: String,
                    #[serde(default)]
                    variant: String,
                    #[serde(default, rename = "os.version")]
                    os_version: String,
                }
                match serde_json::from_slice::<Cfg>(&cfg) {
                    Ok(c) if !c.os.is_empty() => {
                        let mut p = Platform::new(&c.os, &c.architecture, Some(c.variant.as_str()).filter(|v| !v.is_empty()));
                        p.os_version = Some(c.os_version).filter(|v| !v.is_empty());
                        vec![p]
                    }
                    _ => Vec::new(),
                }
            }
        };
        Ok((desc, platforms))
    }

    /// A blob of `reference`'s repository, as a streamed response (the pull-through
    /// cache reads it into its storage).
    pub(crate) async fn blob_response(&self, reference: &Reference, digest: &Digest, auth: &AuthConfig) -> Result<reqwest::Response, RegistryError> {
        let ep = self.endpoint(reference.registry()).await?;
        let s = self.session(ep, vec![pull_scope(reference.repository())], auth);
        let url = s.ep.url(&format!("v2/{}/blobs/{digest}", reference.repository()))?;
        s.send(&format!("blob {digest}"), |http| Ok(http.get(url.clone()))).await
    }

    /// The HTTP client to use for a token realm: the registry's own when the realm is on
    /// the same host (so its certs.d CA applies), else one with system CAs.
    fn token_http<'a>(&'a self, ep: &'a Endpoint, realm: &str) -> &'a reqwest::Client {
        match reqwest::Url::parse(realm) {
            Ok(u) if u.host_str() == ep.base.host_str() && u.port_or_known_default() == ep.base.port_or_known_default() => &ep.http,
            _ => &self.generic_http,
        }
    }
}

pub(crate) fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

pub(crate) fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

/// `</v2/x/tags/list?last=a&n=1>; rel="next"` → `/v2/x/tags/list?last=a&n=1`.
fn parse_next_link(v: &str) -> Option<String> {
    v.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        if !params.contains("rel=\"next\"") && !params.contains("rel=next") {
            return None;
        }
        let url = url.trim().trim_start_matches('<').trim_end_matches('>');
        // Absolute links: keep the path and query (the endpoint stays the same).
        let url = match url.split_once("://") {
            Some((_, rest)) => rest.find('/').map(|i| &rest[i..]).unwrap_or("/"),
            None => url,
        };
        Some(url.to_string())
    })
}

pub(crate) fn connect_error(ep: &Endpoint, e: &reqwest::Error) -> RegistryError {
    RegistryError::Connect {
        registry: ep.registry.clone(),
        message: transport::error_chain(e),
    }
}

/// Requests against one endpoint for one set of repository scopes with one set of
/// credentials.
pub(crate) struct Session<'c> {
    client: &'c RegistryClient,
    pub ep: Arc<Endpoint>,
    auth: AuthConfig,
    scopes: Mutex<Vec<String>>,
}

impl Session<'_> {
    fn scopes(&self) -> Vec<String> {
        self.scopes.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The Authorization header for the endpoint's challenge (fetching a token if needed).
    async fn authorization(&self, refresh: bool) -> Result<Option<String>, RegistryError> {
        match self.ep.challenge() {
            None => Ok(None),
            Some(Challenge::Basic) => Ok((!self.auth.username.is_empty())
                .then(|| basic_header(&self.auth.username, &self.auth.password))),
            Some(Challenge::Bearer { realm, service, .. }) => {
                if !self.auth.registry_token.is_empty() {
                    return Ok(Some(format!("Bearer {}", self.auth.registry_token)));
                }
                let scopes = self.scopes();
                let svc = service.clone().unwrap_or_default();
                let user = &self.auth.username;
                let tokens = &self.client.tokens;
                if refresh {
                    tokens.forget(&realm, &svc, &scopes, user);
                } else if let Some(t) = tokens.get(&realm, &svc, &scopes, user) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let http = self.client.token_http(&self.ep, &realm);
                let t = auth::fetch_token(http, &self.ep.registry, &realm, service.as_deref(), &scopes, &self.auth, false).await?;
                tokens.put(&realm, &svc, &scopes, user, t.bearer(), t.ttl());
                Ok(Some(format!("Bearer {}", t.bearer())))
            }
        }
    }

    /// Sends a request built by `make`, authorised; on a 401, learns the challenge,
    /// gets a fresh token and sends once more. Returns the response if it is a success,
    /// else the mapped error (`what` names the object for messages).
    pub async fn send(
        &self,
        what: &str,
        make: impl Fn(&reqwest::Client) -> Result<reqwest::RequestBuilder, RegistryError>,
    ) -> Result<reqwest::Response, RegistryError> {
        let resp = self.send_raw(make).await?;
        check(resp, &self.ep.registry, what).await
    }

    /// Like [`Session::send`] but hands back any status (the caller handles 404 etc.).
    pub async fn send_raw(
        &self,
        make: impl Fn(&reqwest::Client) -> Result<reqwest::RequestBuilder, RegistryError>,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut refresh = false;
        loop {
            let mut rb = make(&self.ep.http)?;
            if let Some(h) = self.authorization(refresh).await? {
                rb = rb.header(AUTHORIZATION, h);
            }
            let resp = rb.send().await.map_err(|e| connect_error(&self.ep, &e))?;
            if resp.status() != reqwest::StatusCode::UNAUTHORIZED || refresh {
                return Ok(resp);
            }
            // A 401: the registry may want auth /v2/ did not ask for, or a wider scope.
            let values: Vec<String> = resp
                .headers()
                .get_all(reqwest::header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_string))
                .collect();
            let challenges = auth::parse_challenges(values.iter().map(String::as_str));
            let Some(ch) = challenges
                .iter()
                .find(|c| matches!(c, Challenge::Bearer { .. }))
                .or_else(|| challenges.first())
                .cloned()
            else {
                return Ok(resp);
            };
            if let Challenge::Bearer { scope: Some(extra), .. } = &ch {
                let mut s = self.scopes.lock().unwrap_or_else(|p| p.into_inner());
                for one in extra.split(' ') {
                    if !one.is_empty() && !s.iter().any(|x| x == one) {
                        s.push(one.to_string());
                    }
                }
            }
            if matches!(ch, Challenge::Basic) && self.auth.username.is_empty() {
                return Ok(resp);
            }
            self.ep.set_challenge(Some(ch));
            refresh = true;
        }
    }
}

/// Maps a non-success response to an error, reading the registry's error body.
pub(crate) async fn check(resp: reqwest::Response, registry: &str, what: &str) -> Result<reqwest::Response, RegistryError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let body = resp.bytes().await.unwrap_or_default();
    let described = error::describe_error_body(&body);
    let fallback = || {
        format!(
            "received unexpected HTTP status: {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )
        .trim_end()
        .to_string()
    };
    Err(match status.as_u16() {
        401 => RegistryError::Unauthorized {
            registry: registry.to_string(),
            message: described.unwrap_or_else(|| "unauthorized: authentication required".to_string()),
        },
        403 => RegistryError::Unauthorized {
            registry: registry.to_string(),
            message: described.unwrap_or_else(|| "denied: requested access to the resource is denied".to_string()),
        },
        404 => RegistryError::NotFound {
            what: what.to_string(),
            message: described.unwrap_or_else(|| "not found".to_string()),
        },
        429 => RegistryError::TooManyRequests {
            message: described.unwrap_or_else(|| "toomanyrequests: too many requests".to_string()),
            retry_after,
        },
        s => RegistryError::Status {
            registry: registry.to_string(),
            what: what.to_string(),
            status: s,
            message: described.unwrap_or_else(fallback),
        },
    })
}

/// Reads a whole (small) response body, refusing more than `limit` bytes.
pub(crate) async fn read_limited(resp: reqwest::Response, limit: usize, registry: &str) -> Result<Vec<u8>, RegistryError> {
    if let Some(len) = resp.content_length()
        && len as usize > limit
    {
        return Err(RegistryError::Protocol {
            registry: registry.to_string(),
            message: format!("response of {len} bytes is larger than the {limit} allowed"),
        });
    }
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| RegistryError::Connect {
            registry: registry.to_string(),
            message: transport::error_chain(&e),
        })?;
        if out.len() + chunk.len() > limit {
            return Err(RegistryError::Protocol {
                registry: registry.to_string(),
                message: format!("response larger than the {limit} bytes allowed"),
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// GETs a manifest by tag or digest and checks its digest: against `expected` when the
/// caller knows it, else against the registry's Docker-Content-Digest.
pub(crate) async fn fetch_manifest(
    s: &Session<'_>,
    reference: &Reference,
    tag_or_digest: &str,
    expected: Option<&Digest>,
) -> Result<FetchedManifest, RegistryError> {
    let url = s.ep.url(&format!("v2/{}/manifests/{tag_or_digest}", reference.repository()))?;
    let what = format!(
        "manifest for {}",
        if tag_or_digest.contains(':') {
            reference
                .repository_only()
                .with_digest(tag_or_digest.parse().map_err(crate::reference::ReferenceError::from)?)
                .familiar_string()
        } else {
            reference.familiar_string()
        }
    );
    let accept = media::MANIFEST_ACCEPT.join(", ");
    let resp = s
        .send(&what, |http| Ok(http.get(url.clone()).header(ACCEPT, accept.clone())))
        .await?;
    let headers: HeaderMap = resp.headers().clone();
    let content_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = read_limited(resp, MAX_MANIFEST_SIZE, &s.ep.registry).await?;
    let header_digest: Option<Digest> = headers
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let want = expected.cloned().or(header_digest);
    let algorithm = want
        .as_ref()
        .map(|d| d.algorithm())
        .unwrap_or(crate::digest::Algorithm::Sha256);
    let mut h = Hasher::new(algorithm);
    h.update(&bytes);
    let digest = h.finish();
    if let Some(w) = want
        && w != digest
    {
        return Err(RegistryError::DigestMismatch {
            what,
            expected: w,
            actual: digest.to_string(),
        });
    }
    let (media_type, manifest) =
        manifest::parse(content_type.as_deref(), &bytes).map_err(|source| match source {
            manifest::ManifestError::UnsupportedMediaType(t) => RegistryError::UnsupportedMediaType {
                what: what.clone(),
                media_type: t,
            },
            source => RegistryError::Manifest {
                what: what.clone(),
                source,
            },
        })?;
    Ok(FetchedManifest {
        digest,
        media_type,
        bytes,
        manifest,
    })
}

/// Compile-time check: the daemon spawns transfers on its runtime, so their futures
/// must be `Send` (this stops compiling if one is not).
#[allow(dead_code)]
fn transfers_are_send(c: &RegistryClient, r: &Reference, store: Arc<dyn crate::store::ContentStore>, m: &manifest::Descriptor) {
    fn send<T: Send>(_: &T) {}
    let (pull_opts, push_opts, auth) = (PullOptions::default(), PushOptions::default(), AuthConfig::default());
    send(&c.pull(r, &pull_opts, store.clone(), &NoProgress));
    send(&c.pull_all_tags(r, &pull_opts, store.clone(), &NoProgress));
    send(&c.push(r, m, store, &push_opts, &NoProgress));
    send(&c.login("registry", &auth));
    send(&c.list_tags(r, &auth));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links() {
        assert_eq!(
            parse_next_link("</v2/x/tags/list?last=a&n=1>; rel=\"next\"").as_deref(),
            Some("/v2/x/tags/list?last=a&n=1")
        );
        assert_eq!(
            parse_next_link("<https://h:5000/v2/_catalog?last=b&n=2>; rel=\"next\"").as_deref(),
            Some("/v2/_catalog?last=b&n=2")
        );
        assert_eq!(parse_next_link("</x>; rel=\"prev\""), None);
    }

    #[test]
    fn mirrors_per_registry_and_bare_for_docker_hub() {
        let m: Vec<String> = ["http://hub-mirror:5000", "registry.k8s.io=http://127.0.0.1:5000", "gcr.io=http://127.0.0.1:5000/", "k8s.gcr.io = http://m2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(mirrors_of(&m, "docker.io"), vec!["http://hub-mirror:5000"]);
        assert_eq!(mirrors_of(&m, "registry.k8s.io"), vec!["http://127.0.0.1:5000"]);
        assert_eq!(mirrors_of(&m, "gcr.io"), vec!["http://127.0.0.1:5000/"]);
        assert_eq!(mirrors_of(&m, "k8s.gcr.io"), vec!["http://m2"]);
        assert!(mirrors_of(&m, "quay.io").is_empty());
        let hub = vec!["docker.io=http://a".to_string()];
        assert_eq!(mirrors_of(&hub, "docker.io"), vec!["http://a"]);
    }
}
