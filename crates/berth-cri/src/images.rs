//! The ImageService over the engine's one image store: what `docker pull` brings is
//! there for the kubelet and the other way round. Names are reported in full
//! (`docker.io/library/busybox:latest`), as the kubelet compares them.

use std::collections::HashMap;

use berth_registry::client::AuthConfig;

use crate::Cri;
use crate::api;
use crate::error::{OrStatus, Result, invalid};

fn to_image(f: berth_engine::frontdoor::ImageFacts) -> api::Image {
    // The config's User: a number is the uid, anything else a name (the group is not
    // reported).
    let user = f.user.split(':').next().unwrap_or("").to_string();
    let (uid, username) = match user.parse::<i64>() {
        Ok(n) => (Some(api::Int64Value { value: n }), String::new()),
        Err(_) if user.is_empty() => (Some(api::Int64Value { value: 0 }), String::new()),
        Err(_) => (None, user),
    };
    api::Image {
        spec: Some(api::ImageSpec { image: f.id.clone(), ..Default::default() }),
        id: f.id,
        repo_tags: f.repo_tags,
        repo_digests: f.repo_digests,
        size: f.size,
        uid,
        username,
        pinned: false,
    }
}

impl Cri {
    pub async fn list_images(&self, filter: Option<api::ImageFilter>) -> Result<Vec<api::Image>> {
        let wanted = filter.and_then(|f| f.image).map(|s| s.image).filter(|s| !s.is_empty());
        let engine = self.engine();
        if let Some(name) = wanted {
            return Ok(engine.image_facts(&name).await.or_status()?.into_iter().map(to_image).collect());
        }
        Ok(engine.image_facts_all().await.or_status()?.into_iter().map(to_image).collect())
    }

    /// The image a spec names, or None (not an error) when there is none.
    pub async fn image_status(&self, spec: Option<api::ImageSpec>, verbose: bool) -> Result<api::ImageStatusResponse> {
        let name = spec.map(|s| s.image).unwrap_or_default();
        if name.is_empty() {
            return Err(invalid("an image spec is required"));
        }
        let Some(facts) = self.engine().image_facts(&name).await.or_status()? else {
            return Ok(api::ImageStatusResponse::default());
        };
        let mut info = HashMap::new();
        if verbose {
            let v = serde_json::json!({"imageSpec": facts.config, "id": facts.id});
            info.insert("info".to_string(), v.to_string());
        }
        Ok(api::ImageStatusResponse { image: Some(to_image(facts)), info })
    }

    /// Pulls (through the registry mirrors, if any) and answers with the image ID.
    pub async fn pull_image(&self, req: api::PullImageRequest) -> Result<String> {
        let name = req.image.map(|s| s.image).unwrap_or_default();
        if name.is_empty() {
            return Err(invalid("an image spec is required"));
        }
        let auth = req.auth.map(|a| AuthConfig {
            username: a.username,
            password: a.password,
            auth: a.auth,
            server_address: a.server_address,
            identity_token: a.identity_token,
            registry_token: a.registry_token,
            ..Default::default()
        });
        let auth = match auth {
            Some(a) => a.with_decoded_auth().map_err(|e| invalid(format!("invalid auth config: {e}")))?,
            None => AuthConfig::default(),
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        // Progress is not reported over the CRI; drain it so the pull never waits on it.
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let ids = self.engine().image_pull(&name, "", "", auth, false, tx).await.or_status()?;
        ids.into_iter().next().ok_or_else(|| tonic::Status::internal(format!("pulling {name} gave no image")))
    }

    /// Removes the image with all of its names. A missing image is fine.
    pub async fn remove_image(&self, spec: Option<api::ImageSpec>) -> Result<()> {
        let name = spec.map(|s| s.image).unwrap_or_default();
        if name.is_empty() {
            return Err(invalid("an image spec is required"));
        }
        let engine = self.engine();
        let Some(facts) = engine.image_facts(&name).await.or_status()? else { return Ok(()) };
        match engine.image_remove_all_names(&facts.id).await {
            Err(e) if e.kind == berth_engine::ErrorKind::NotFound => Ok(()),
            other => other.or_status(),
        }
    }

    /// Usage of the filesystem holding images and containers (berth keeps both under
    /// the data root).
    pub fn image_fs_info(&self) -> api::ImageFsInfoResponse {
        let root = self.engine().data_root().to_path_buf();
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
        let usage = |dir: &std::path::Path| {
            let (bytes, inodes) = du(dir);
            api::FilesystemUsage {
                timestamp: now,
                fs_id: Some(api::FilesystemIdentifier { mountpoint: dir.to_string_lossy().into_owned() }),
                used_bytes: Some(api::UInt64Value { value: bytes }),
                inodes_used: Some(api::UInt64Value { value: inodes }),
            }
        };
        api::ImageFsInfoResponse { image_filesystems: vec![usage(&root.join("layers"))], container_filesystems: vec![usage(&root.join("containers"))] }
    }
}

/// Bytes and inodes used under `dir` (not following symlinks or crossing into mounts).
pub(crate) fn du(dir: &std::path::Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let Ok(top) = std::fs::symlink_metadata(dir) else { return (0, 0) };
    let dev = top.dev();
    let (mut bytes, mut inodes) = (0u64, 0u64);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.dev() != dev {
                continue;
            }
            inodes += 1;
            bytes += m.blocks() * 512;
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    (bytes, inodes)
}
