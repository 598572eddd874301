//! What the other front doors (the CRI server, the dashboard) need from the engine beyond
//! Docker's verbs: every container with its record, the CRI's own data kept in the
//! record, log reopening, exec kills. Same state and locks as the Docker API's verbs.

use std::sync::Arc;

use berth_shim::protocol::Request;

use crate::container::{Container, ContainerRecord};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::shimclient;

impl Engine {
    /// Every container, in no particular order.
    pub fn all_containers(&self) -> Vec<Arc<Container>> {
        self.containers.list()
    }

    /// Replaces the front door's opaque data in the container's record (persisted).
    pub fn set_ext_meta(&self, key: &str, meta: serde_json::Value) -> Result<ContainerRecord> {
        let c = self.container(key)?;
        c.update(false, |r| r.ext.meta = Some(meta))
    }

    /// Has the running container's shim open its log file again at the same path (the
    /// kubelet renamed the old one away). A container that is not running has no open
    /// log: that is an error, and no file is made (as the CRI asks).
    pub async fn reopen_log(&self, key: &str) -> Result<()> {
        let c = self.container(key)?;
        let live = c.live().filter(|_| c.status().is_alive()).ok_or_else(|| Error::conflict(format!("container {} is not running", c.id)))?;
        let r = shimclient::call(&live.shim_socket, &Request::ReopenLog)
            .await
            .map_err(|e| Error::system(format!("reopening the log of {}: {e}", c.id)))?;
        if r.ok { Ok(()) } else { Err(Error::system(r.error)) }
    }

    /// Sends a signal to a running exec'd process (ExecSync's timeout).
    pub async fn exec_kill(&self, exec_id: &str, signal: i32) -> Result<()> {
        let inst = self.exec_get(exec_id)?;
        let c = self.container(&inst.container_id)?;
        let live = c.live().ok_or_else(|| Error::conflict(format!("container {} is not running", inst.container_id)))?;
        let r = shimclient::call(&live.shim_socket, &Request::KillExec { exec_id: exec_id.to_string(), signal })
            .await
            .map_err(|e| Error::system(e.to_string()))?;
        if r.ok { Ok(()) } else { Err(Error::conflict(r.error)) }
    }

    /// Forgets a finished exec instance (the CRI's execs are never inspected later).
    pub fn exec_forget(&self, exec_id: &str) {
        let mut execs = self.execs.lock().unwrap_or_else(|p| p.into_inner());
        if execs.get(exec_id).is_some_and(|e| !e.state().running) {
            execs.remove(exec_id);
        }
    }

    /// The root filesystem mount point of a container (mounted while it runs).
    pub fn rootfs_path(&self, id: &str) -> std::path::PathBuf {
        self.rootfs_of(id)
    }

    /// Whether the engine runs on cgroup v2 (unified) rather than v1.
    pub fn cgroup_v2(&self) -> bool {
        self.cgroup_v2
    }
}

/// An image as the CRI describes it: full (not familiar) names.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFacts {
    /// `sha256:...`
    pub id: String,
    /// `docker.io/library/busybox:latest`
    pub repo_tags: Vec<String>,
    /// `docker.io/library/busybox@sha256:...`
    pub repo_digests: Vec<String>,
    pub size: u64,
    /// The config's `User` ("" = root).
    pub user: String,
    /// The config as stored (for verbose status).
    pub config: serde_json::Value,
}

impl Engine {
    fn facts_of(store: &berth_image::ImageStore, id: &berth_image::Digest, size: u64) -> berth_image::Result<ImageFacts> {
        let refs = store.references(id);
        let cfg = store.config(&id.to_string())?;
        Ok(ImageFacts {
            id: id.to_string(),
            repo_tags: refs.iter().filter(|r| r.tag().is_some() && r.digest().is_none()).map(|r| r.to_string()).collect(),
            repo_digests: refs.iter().filter(|r| r.digest().is_some()).map(|r| r.to_string()).collect(),
            size,
            user: cfg.config.as_ref().map(|c| c.user.clone()).unwrap_or_default(),
            config: serde_json::to_value(&cfg).unwrap_or_default(),
        })
    }

    /// Every image, with full names.
    pub async fn image_facts_all(&self) -> Result<Vec<ImageFacts>> {
        let store = self.images.store();
        tokio::task::spawn_blocking(move || {
            let list = store.list()?;
            list.iter().map(|s| Engine::facts_of(&store, &s.id, s.size)).collect::<berth_image::Result<Vec<_>>>()
        })
        .await
        .map_err(|e| Error::system(e.to_string()))?
        .map_err(crate::images::image_err)
    }

    /// The image `name` (a reference, an ID or an ID prefix) names; None if there is none.
    pub async fn image_facts(&self, name: &str) -> Result<Option<ImageFacts>> {
        let store = self.images.store();
        let name = name.to_string();
        tokio::task::spawn_blocking(move || {
            let id = match store.resolve(&name) {
                Ok(id) => id,
                Err(e) if e.kind() == berth_image::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            let size = store.list()?.into_iter().find(|s| s.id == id).map(|s| s.size).unwrap_or(0);
            // Removed meanwhile (a concurrent RemoveImage): as good as never there.
            match Engine::facts_of(&store, &id, size) {
                Err(e) if e.kind() == berth_image::ErrorKind::NotFound => Ok(None),
                r => r.map(Some),
            }
        })
        .await
        .map_err(|e| Error::system(e.to_string()))?
        .map_err(crate::images::image_err)
    }

    /// Removes an image with every name it has (the CRI's RemoveImage), whoever uses it.
    pub async fn image_remove_all_names(&self, id: &str) -> Result<()> {
        self.image_remove(id, true, false).await.map(|_| ())
    }
}
