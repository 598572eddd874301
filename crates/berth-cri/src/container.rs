//! CRI containers: CreateContainer .. ListContainers, UpdateContainerResources and
//! ReopenContainerLog. A container is an engine container that joins its sandbox's
//! namespaces and logs in the CRI format where the kubelet asked.

use std::collections::HashMap;
use std::path::Path;

use berth_engine::ErrorKind;
use berth_engine::container::{Extensions, Status};

use crate::Cri;
use crate::api;
use crate::error::{OrStatus, Result, invalid, not_found, status};
use crate::meta::{self, ContainerMeta, Ctr, Meta};
use crate::sandbox::{ignore_missing, ignore_stopped};
use crate::translate;

impl Cri {
    pub async fn create_container(&self, req: api::CreateContainerRequest) -> Result<String> {
        let engine = self.engine();
        let cfg = req.config.ok_or_else(|| invalid("a ContainerConfig is required"))?;
        let md = cfg.metadata.clone().ok_or_else(|| invalid("the container config has no metadata"))?;
        if md.name.is_empty() {
            return Err(invalid("the container metadata needs a name"));
        }
        let image = cfg.image.as_ref().map(|i| i.image.clone()).filter(|i| !i.is_empty()).ok_or_else(|| invalid("the container config names no image"))?;
        let sb = meta::find_sandbox(engine, &req.pod_sandbox_id).ok_or_else(|| not_found(format!("pod sandbox {} not found", req.pod_sandbox_id)))?;
        if !sb.ready() {
            return Err(tonic::Status::failed_precondition(format!("pod sandbox {} is not ready", sb.id())));
        }
        let facts = engine
            .image_facts(&image)
            .await
            .or_status()?
            .ok_or_else(|| not_found(format!("image {image:?} is not present: pull it first")))?;
        let (create, extras) = translate::container_request(&sb, &cfg, &facts.id)?;
        let log_path = match (sb.meta.config.log_directory.as_str(), cfg.log_path.as_str()) {
            (_, "") => String::new(),
            (dir, p) if Path::new(p).is_absolute() || dir.is_empty() => p.to_string(),
            (dir, p) => Path::new(dir).join(p).to_string_lossy().into_owned(),
        };
        let pod = sb.metadata();
        let name = meta::engine_name(&md.name, &pod, md.attempt);
        let data = ContainerMeta { sandbox_id: sb.rec.id.clone(), config: cfg.clone(), image_id: facts.id.clone(), log_path: log_path.clone() };
        let ext = Extensions {
            cri_log: true,
            cri_groups: Some(extras.groups),
            meta: Some(meta::to_value(&Meta::Container(data))),
            userns: translate::container_userns(&sb, &cfg)?,
            ..Default::default()
        };
        let created = engine.create_container_ext(Some(&name), create, ext, Some(log_path)).await.map_err(|e| match e.kind {
            ErrorKind::Conflict if e.message.contains("is already in use") => {
                tonic::Status::already_exists(format!("container {} (attempt {}) already exists in pod {}: {}", md.name, md.attempt, sb.id(), e.message))
            }
            _ => status(e),
        })?;
        Ok(created.id)
    }

    pub async fn start_container(&self, id: &str) -> Result<()> {
        let engine = self.engine();
        let c = meta::find_container(engine, id).ok_or_else(|| not_found(format!("container {id} not found")))?;
        if c.rec.state.status != Status::Created {
            return Err(tonic::Status::failed_precondition(format!("container {} is {}, only a created container can start", c.id(), c.rec.state.status.as_str())));
        }
        engine.start_container(c.id()).await.map_err(|e| match e.kind {
            ErrorKind::NotModified => tonic::Status::failed_precondition(e.message),
            _ => status(e),
        })
    }

    pub async fn stop_container(&self, id: &str, timeout: i64) -> Result<()> {
        let engine = self.engine();
        let Some(c) = meta::find_container(engine, id) else { return Ok(()) };
        ignore_stopped(engine.stop_container(c.id(), None, Some(timeout.max(0))).await)
    }

    pub async fn remove_container(&self, id: &str) -> Result<()> {
        let engine = self.engine();
        let Some(c) = meta::find_container(engine, id) else { return Ok(()) };
        ignore_missing(engine.remove_container(c.id(), true, true).await)
    }

    pub fn container_status(&self, id: &str, verbose: bool) -> Result<api::ContainerStatusResponse> {
        let c = meta::find_container(self.engine(), id).ok_or_else(|| not_found(format!("container {id} not found")))?;
        let mut info = HashMap::new();
        if verbose {
            let v = serde_json::json!({
                "sandboxID": c.meta.sandbox_id,
                "pid": c.rec.state.pid,
                "name": c.rec.bare_name(),
                "runtime": c.rec.runtime,
                "config": c.meta.config,
                "mounts": c.rec.mounts,
                "privileged": c.rec.host_config.privileged,
            });
            info.insert("info".to_string(), v.to_string());
        }
        Ok(api::ContainerStatusResponse { status: Some(self.container_status_of(&c)), info })
    }

    /// The CRI status of a container, from its record.
    pub(crate) fn container_status_of(&self, c: &Ctr) -> api::ContainerStatus {
        let st = &c.rec.state;
        let state = c.state();
        let exited = state == api::ContainerState::ContainerExited as i32;
        let reason = if !exited {
            String::new()
        } else if st.oom_killed {
            "OOMKilled".into()
        } else if st.exit_code == 0 {
            "Completed".into()
        } else if !st.error.is_empty() && st.started_at == berth_engine::util::ZERO_TIME {
            "StartError".into()
        } else {
            "Error".into()
        };
        let hc = &c.rec.host_config;
        let resources = api::LinuxContainerResources {
            cpu_period: hc.cpu_period,
            cpu_quota: hc.cpu_quota,
            cpu_shares: hc.cpu_shares,
            memory_limit_in_bytes: hc.memory,
            oom_score_adj: hc.oom_score_adj,
            cpuset_cpus: hc.cpuset_cpus.clone(),
            cpuset_mems: hc.cpuset_mems.clone(),
            memory_swap_limit_in_bytes: hc.memory_swap.max(0),
            ..Default::default()
        };
        api::ContainerStatus {
            id: c.rec.id.clone(),
            metadata: Some(c.metadata()),
            state,
            created_at: meta::nanos(&c.rec.created),
            started_at: meta::nanos(&st.started_at),
            finished_at: if exited { meta::nanos(&st.finished_at) } else { 0 },
            exit_code: if exited { st.exit_code as i32 } else { 0 },
            image: Some(c.image_spec()),
            image_ref: c.meta.image_id.clone(),
            reason,
            message: st.error.clone(),
            labels: c.meta.config.labels.clone(),
            annotations: c.meta.config.annotations.clone(),
            mounts: c.meta.config.mounts.clone(),
            log_path: c.meta.log_path.clone(),
            resources: Some(api::ContainerResources { linux: Some(resources), windows: None }),
            image_id: c.meta.image_id.clone(),
            user: process_user(st.pid).map(|linux| api::ContainerUser { linux: Some(linux) }),
        }
    }

    pub fn list_containers(&self, filter: Option<api::ContainerFilter>) -> Vec<api::Container> {
        let f = filter.unwrap_or_default();
        meta::containers(self.engine())
            .into_iter()
            .filter(|c| f.id.is_empty() || c.rec.id.starts_with(&f.id))
            .filter(|c| f.pod_sandbox_id.is_empty() || c.meta.sandbox_id.starts_with(&f.pod_sandbox_id))
            .filter(|c| f.state.as_ref().is_none_or(|st| st.state == c.state()))
            .filter(|c| meta::selector_matches(&f.label_selector, &c.meta.config.labels))
            .map(|c| api::Container {
                id: c.rec.id.clone(),
                pod_sandbox_id: c.meta.sandbox_id.clone(),
                metadata: Some(c.metadata()),
                image: Some(c.image_spec()),
                image_ref: c.meta.image_id.clone(),
                state: c.state(),
                created_at: meta::nanos(&c.rec.created),
                labels: c.meta.config.labels.clone(),
                annotations: c.meta.config.annotations.clone(),
                image_id: c.meta.image_id.clone(),
            })
            .collect()
    }

    pub async fn update_container_resources(&self, req: api::UpdateContainerResourcesRequest) -> Result<()> {
        let engine = self.engine();
        let c = meta::find_container(engine, &req.container_id).ok_or_else(|| not_found(format!("container {} not found", req.container_id)))?;
        let Some(r) = req.linux else { return Ok(()) };
        engine.update_container(c.id(), translate::update_config(&r)).await.or_status()?;
        Ok(())
    }

    pub async fn reopen_container_log(&self, id: &str) -> Result<()> {
        let engine = self.engine();
        let c = meta::find_container(engine, id).ok_or_else(|| not_found(format!("container {id} not found")))?;
        if c.meta.log_path.is_empty() {
            return Err(tonic::Status::failed_precondition(format!("container {} has no log", c.id())));
        }
        engine.reopen_log(c.id()).await.or_status()
    }
}

/// The identity of a running process (uid, gid, supplementary groups) from /proc.
fn process_user(pid: i64) -> Option<api::LinuxContainerUser> {
    if pid <= 0 {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.split_whitespace().map(|x| x.parse::<i64>().unwrap_or(0)).collect::<Vec<_>>());
    let uid = *field("Uid:")?.first()?;
    let gid = *field("Gid:")?.first()?;
    let groups = field("Groups:").unwrap_or_default();
    Some(api::LinuxContainerUser { uid, gid, supplemental_groups: groups })
}
