//! Pull, push and login through berth-registry's client, into and out of the image
//! store. Credentials come from the client (X-Registry-Auth, /auth bodies); the daemon
//! stores none.

use std::sync::Arc;

use berth_registry::Reference;
use berth_registry::client::{AuthConfig, ClientConfig, Progress, PullOptions, PushOptions, RegistryClient, RegistryError};
use berth_registry::image_store::ImageStoreContent;
use berth_types::system::AuthResponse;
use tokio::sync::mpsc::UnboundedSender;

use crate::config::EngineConfig;
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};

/// The registry client, made on first use (a daemon that never pulls does not pay for
/// loading TLS roots).
pub struct RegistryService {
    config: ClientConfig,
    client: std::sync::OnceLock<std::result::Result<Arc<RegistryClient>, String>>,
}

pub(crate) fn registry_err(e: RegistryError) -> Error {
    let kind = match e.kind() {
        berth_registry::client::ErrorKind::InvalidParameter => ErrorKind::InvalidParameter,
        // Docker answers a refused pull as "pull access denied ... (404)" and /auth with 401;
        // the API maps Forbidden to 403, close enough for clients that only print it.
        berth_registry::client::ErrorKind::Unauthorized => ErrorKind::Forbidden,
        berth_registry::client::ErrorKind::NotFound => ErrorKind::NotFound,
        berth_registry::client::ErrorKind::Unavailable => ErrorKind::Unavailable,
        berth_registry::client::ErrorKind::System => ErrorKind::System,
    };
    Error::new(kind, e.to_string())
}

impl RegistryService {
    pub fn new(cfg: &EngineConfig) -> Result<RegistryService> {
        let mut cc = ClientConfig {
            insecure_registries: cfg.insecure_registries.clone(),
            registry_mirrors: cfg.registry_mirrors.clone(),
            max_concurrent_downloads: cfg.max_concurrent_downloads.max(1),
            max_concurrent_uploads: cfg.max_concurrent_uploads.max(1),
            ..ClientConfig::default()
        };
        if let Some(d) = &cfg.certs_dir {
            cc.certs_dir = d.clone();
        }
        Ok(RegistryService { config: cc, client: std::sync::OnceLock::new() })
    }

    fn client(&self) -> Result<Arc<RegistryClient>> {
        self.client
            .get_or_init(|| RegistryClient::new(self.config.clone()).map(Arc::new).map_err(|e| e.to_string()))
            .clone()
            .map_err(Error::system)
    }

    async fn run<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: FnOnce(Arc<RegistryClient>) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        f(self.client()?).await
    }
}

/// The X-Registry-Auth header (base64url JSON), or anonymous.
pub fn auth_from_header(h: Option<&str>) -> Result<AuthConfig> {
    match h.filter(|h| !h.trim().is_empty()) {
        None => Ok(AuthConfig::default()),
        Some(h) => AuthConfig::from_x_registry_auth(h)
            .and_then(|a| a.with_decoded_auth())
            .map_err(|e| Error::invalid(format!("invalid X-Registry-Auth: {e}"))),
    }
}

impl Engine {
    fn content(&self) -> Result<Arc<ImageStoreContent>> {
        let sources = self.cfg.data_root.join("registry").join("sources");
        ImageStoreContent::new(self.images.store(), Some(&sources)).map(Arc::new).map_err(|e| Error::system(format!("image store: {e}")))
    }

    /// `POST /images/create?fromImage=...`: pulls, reporting through `progress`.
    pub async fn image_pull(&self, from_image: &str, tag: &str, platform: &str, auth: AuthConfig, all_tags: bool, progress: UnboundedSender<Progress>) -> Result<Vec<String>> {
        let name = if tag.is_empty() || from_image.contains('@') {
            from_image.to_string()
        } else if tag.starts_with("sha256:") {
            format!("{from_image}@{tag}")
        } else {
            format!("{from_image}:{tag}")
        };
        let reference = if all_tags { Reference::parse_repository(from_image) } else { Reference::parse(&name) }.map_err(|e| Error::invalid(e.to_string()))?;
        let platform = match platform {
            "" => None,
            p => Some(p.parse().map_err(|e: berth_registry::manifest::PlatformError| Error::invalid(e.to_string()))?),
        };
        let opts = PullOptions { platform, auth };
        let (progress, downloaded) = counting_pull_bytes(progress);
        let content = self.content()?;
        let store: Arc<dyn berth_registry::store::ContentStore> = content.clone();
        let pulled = self
            .registry
            .run(move |client| async move {
                if all_tags {
                    client.pull_all_tags(&reference, &opts, store, &progress).await
                } else {
                    client.pull(&reference, &opts, store, &progress).await.map(|p| vec![p])
                }
                .map_err(registry_err)
            })
            .await;
        if let Ok(n) = downloaded.await {
            crate::metrics::Metrics::add(&self.metrics.pull_bytes, n);
        }
        crate::metrics::Metrics::add(if pulled.is_ok() { &self.metrics.pulls } else { &self.metrics.pull_failures }, 1);
        let pulled = pulled?;
        let mut ids = Vec::new();
        for p in pulled {
            let c = content.clone();
            let p2 = p.clone();
            let id = tokio::task::spawn_blocking(move || c.record_pulled(&p2))
                .await
                .map_err(|e| Error::system(e.to_string()))?
                .map_err(crate::images::image_err)?;
            self.events.emit("image", "pull", &p.reference.familiar_string(), [("name".to_string(), p.reference.familiar_string())].into_iter().collect());
            ids.push(id.to_string());
        }
        Ok(ids)
    }

    /// `POST /images/{name}/push`.
    pub async fn image_push(&self, name: &str, tag: &str, auth: AuthConfig, progress: UnboundedSender<Progress>) -> Result<()> {
        let full = if tag.is_empty() { name.to_string() } else { format!("{name}:{tag}") };
        let target = Reference::parse(&full).map_err(|e| Error::invalid(e.to_string()))?;
        let store = self.images.store();
        let local = full.clone();
        let record = tokio::task::spawn_blocking(move || store.record(&local))
            .await
            .map_err(|e| Error::system(e.to_string()))?
            .map_err(|e| if e.kind() == berth_image::ErrorKind::NotFound { Error::not_found(format!("An image does not exist locally with the tag: {name}")) } else { crate::images::image_err(e) })?;
        // An image made here (import, commit, load) gets its registry manifest now:
        // layers gzipped into the store once, a schema2 manifest recorded on the image.
        let content = self.content()?;
        let (c, id) = (content.clone(), record.id.clone());
        let manifest = tokio::task::spawn_blocking(move || c.manifest_for_push(&id))
            .await
            .map_err(|e| Error::system(e.to_string()))?
            .map_err(crate::images::image_err)?;
        let (t, md, ct) = (target.clone(), manifest.clone(), content.clone());
        let pushed = self
            .registry
            .run(move |client| async move { client.push(&t, &md, ct, &PushOptions { auth }, &progress).await.map_err(registry_err) })
            .await?;
        let c = content.clone();
        tokio::task::spawn_blocking(move || c.record_pushed(&pushed, &manifest))
            .await
            .map_err(|e| Error::system(e.to_string()))?
            .map_err(crate::images::image_err)?;
        self.events.emit("image", "push", &target.familiar_string(), [("name".to_string(), target.familiar_string())].into_iter().collect());
        Ok(())
    }

    /// `GET /distribution/{name}/json`: the registry's descriptor of `name` and the
    /// platforms it provides.
    pub async fn distribution_inspect(&self, name: &str, auth: AuthConfig) -> Result<serde_json::Value> {
        let reference = Reference::parse(name).map_err(|e| Error::invalid(e.to_string()))?;
        let (desc, platforms) = self
            .registry
            .run(move |client| async move { client.distribution_inspect(&reference, &auth).await.map_err(registry_err) })
            .await?;
        Ok(serde_json::json!({
            "Descriptor": {"mediaType": desc.media_type, "digest": desc.digest.to_string(), "size": desc.size},
            "Platforms": platforms,
        }))
    }

    /// `POST /auth`: checks credentials against the registry.
    pub async fn registry_login(&self, auth: AuthConfig) -> Result<AuthResponse> {
        let registry = if auth.server_address.is_empty() { "docker.io".to_string() } else { auth.server_address.clone() };
        let registry = registry.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/').trim_end_matches("/v1").to_string();
        let registry = if registry == "index.docker.io" || registry == "registry-1.docker.io" { "docker.io".to_string() } else { registry };
        let out = self
            .registry
            .run(move |client| async move {
                client.login(&registry, &auth).await.map_err(|e| {
                    let mut err = registry_err(e);
                    if err.kind == ErrorKind::Forbidden {
                        err.kind = ErrorKind::InvalidParameter;
                    }
                    err
                })
            })
            .await?;
        Ok(AuthResponse { status: "Login Succeeded".into(), identity_token: out.identity_token.unwrap_or_default() })
    }
}

/// Passes a pull's progress on and counts the bytes of the layers whose download
/// completed; the count is the task's result once the pull drops its sender.
fn counting_pull_bytes(out: UnboundedSender<Progress>) -> (UnboundedSender<Progress>, tokio::task::JoinHandle<u64>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
    let task = tokio::spawn(async move {
        let mut seen: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
        let mut total = 0;
        while let Some(p) = rx.recv().await {
            match &p {
                Progress::Downloading { id, current, .. } => {
                    seen.insert(id.clone(), *current);
                }
                Progress::DownloadComplete { id } => total += seen.remove(id).unwrap_or(0),
                _ => {}
            }
            let _ = out.send(p);
        }
        total
    });
    (tx, task)
}
