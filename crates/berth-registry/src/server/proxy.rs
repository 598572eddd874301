//! Pull-through cache mode (`berth registry serve --proxy-remote-url URL`), as
//! distribution's `proxy` and Docker's `registry-mirrors` users run it: manifests and
//! blobs not stored yet are fetched from the upstream registry, checked and kept;
//! pulls of tags ask the upstream which digest the tag names (and fall back to the
//! stored one when it is unreachable); pushes and deletes are refused.

use std::io::Write;

use futures_util::StreamExt;

use crate::client::{AuthConfig, ClientConfig, FetchedManifest, RegistryClient, RegistryError};
use crate::digest::{Digest, Hasher};
use crate::reference::Reference;

/// Where the cache pulls from.
#[derive(Debug, Clone, Default)]
pub struct ProxyConfig {
    /// The upstream registry's URL (`https://registry-1.docker.io`, `http://127.0.0.1:5000`).
    pub remote_url: String,
    pub username: String,
    pub password: String,
}

pub(crate) struct Proxy {
    client: RegistryClient,
    /// `host[:port]` as references name it.
    host: String,
    auth: AuthConfig,
}

impl Proxy {
    pub fn new(cfg: &ProxyConfig) -> Result<Proxy, String> {
        let url = reqwest::Url::parse(&cfg.remote_url).map_err(|e| format!("invalid --proxy-remote-url {:?}: {e}", cfg.remote_url))?;
        let host = url.host_str().ok_or_else(|| format!("invalid --proxy-remote-url {:?}: no host", cfg.remote_url))?;
        let host = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let mut cc = ClientConfig::default();
        if url.scheme() == "http" {
            cc.insecure_registries.push(host.clone());
        }
        cc.user_agent = format!("berth-registry-proxy/{}", env!("CARGO_PKG_VERSION"));
        let client = RegistryClient::new(cc).map_err(|e| e.to_string())?;
        let auth = AuthConfig { username: cfg.username.clone(), password: cfg.password.clone(), ..Default::default() };
        Ok(Proxy { client, host, auth })
    }

    fn reference(&self, repo: &str, tag_or_digest: &str) -> Result<Reference, RegistryError> {
        let sep = if tag_or_digest.contains(':') { '@' } else { ':' };
        Reference::parse(&format!("{}/{repo}{sep}{tag_or_digest}", self.host)).map_err(RegistryError::from)
    }

    /// The upstream's manifest for a tag or digest (checked against a digest asked for).
    pub async fn manifest(&self, repo: &str, tag_or_digest: &str) -> Result<FetchedManifest, RegistryError> {
        let r = self.reference(repo, tag_or_digest)?;
        self.client.fetch_manifest(&r, &self.auth).await
    }

    /// Fetches a blob into `out`, checking it hashes to `digest`. Returns its size.
    pub async fn blob_into(&self, repo: &str, digest: &Digest, out: &mut std::fs::File) -> Result<(u64, Digest), RegistryError> {
        let r = self.reference(repo, &digest.to_string())?;
        let resp = self.client.blob_response(&r, digest, &self.auth).await?;
        let mut h = Hasher::new(digest.algorithm());
        let mut n = 0u64;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| RegistryError::Transfer { what: format!("blob {digest}"), message: e.to_string() })?;
            h.update(&chunk);
            out.write_all(&chunk).map_err(|e| RegistryError::Transfer { what: format!("blob {digest}"), message: format!("writing the cache: {e}") })?;
            n += chunk.len() as u64;
        }
        Ok((n, h.finish()))
    }

    /// The upstream's tags of `repo`.
    pub async fn tags(&self, repo: &str) -> Result<Vec<String>, RegistryError> {
        let r = Reference::parse(&format!("{}/{repo}", self.host)).map_err(RegistryError::from)?;
        self.client.list_tags(&r, &self.auth).await
    }
}
