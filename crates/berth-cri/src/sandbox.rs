//! Pod sandboxes: RunPodSandbox, StopPodSandbox, RemovePodSandbox, PodSandboxStatus,
//! ListPodSandbox. A sandbox is an engine container without image whose process is the
//! runtime's pause; it holds the pod's network, IPC and UTS (and, for PID=POD, PID)
//! namespaces, and its record keeps the PodSandboxConfig as the kubelet sent it.

use std::collections::HashMap;

use berth_engine::ErrorKind;
use berth_engine::container::Extensions;

use crate::Cri;
use crate::api;
use crate::error::{OrStatus, Result, invalid, not_found, status};
use crate::meta::{self, CniAttachment, Meta, Sandbox, SandboxMeta};
use crate::translate::{self, PodNetwork};

impl Cri {
    pub async fn run_pod_sandbox(&self, req: api::RunPodSandboxRequest) -> Result<String> {
        let cfg = req.config.ok_or_else(|| invalid("a PodSandboxConfig is required"))?;
        let md = cfg.metadata.clone().ok_or_else(|| invalid("the sandbox config has no metadata"))?;
        if md.name.is_empty() || md.namespace.is_empty() || md.uid.is_empty() {
            return Err(invalid("the sandbox metadata needs a name, a namespace and a uid"));
        }
        let host_network = cfg
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.as_ref())
            .is_some_and(|n| n.network == api::NamespaceMode::Node as i32);
        let network = match (host_network, &self.cni) {
            (true, _) => PodNetwork::Host,
            (false, Some(_)) => PodNetwork::Cni,
            (false, None) => PodNetwork::Bridge,
        };
        let cni_net = match (network, &self.cni) {
            (PodNetwork::Cni, Some(cni)) => Some(cni.network().map_err(|e| tonic::Status::failed_precondition(format!("pod network is not ready: {e}")))?),
            _ => None,
        };
        let mut create = translate::sandbox_request(&cfg, network)?;
        if let Some(hc) = create.host_config.as_mut() {
            hc.runtime = self.runtime_for(&req.runtime_handler)?;
        }
        let name = meta::engine_name("POD", &md, md.attempt);
        let ext = Extensions {
            pause: true,
            userns: translate::pod_userns(&cfg)?,
            meta: Some(meta::to_value(&Meta::Sandbox(SandboxMeta { config: cfg.clone(), runtime_handler: req.runtime_handler.clone(), cni: None }))),
            ..Default::default()
        };
        let engine = self.engine();
        let id = engine.create_container_ext(Some(&name), create, ext, None).await.map_err(|e| match e.kind {
            ErrorKind::Conflict => tonic::Status::already_exists(format!("pod sandbox {}/{} (attempt {}) already exists: {}", md.namespace, md.name, md.attempt, e.message)),
            _ => status(e),
        })?.id;
        // From here on a failure removes what was made: nothing is left half-done.
        if let Err(e) = engine.start_container(&id).await {
            let _ = engine.remove_container(&id, true, true).await;
            return Err(status(e));
        }
        if let (Some(cni), Some(net)) = (&self.cni, cni_net) {
            let sb = meta::find_sandbox(engine, &id).ok_or_else(|| not_found("the sandbox vanished while starting"))?;
            let attached = cni.add(&net, &sb).await;
            match attached {
                Ok(att) => {
                    let mut m = sb.meta.clone();
                    m.cni = Some(att);
                    engine.set_ext_meta(&id, meta::to_value(&Meta::Sandbox(m))).or_status()?;
                }
                Err(e) => {
                    let _ = engine.remove_container(&id, true, true).await;
                    return Err(tonic::Status::unknown(format!("setting up the pod network: {e}")));
                }
            }
        }
        Ok(id)
    }

    /// The engine runtime for a RuntimeHandler ("" is the default).
    fn runtime_for(&self, handler: &str) -> Result<String> {
        let cfg = &self.engine().cfg;
        match handler {
            "" => Ok(String::new()),
            h if h == cfg.default_runtime || h == "berth" || cfg.runtimes.contains_key(h) => Ok(h.to_string()),
            h => Err(tonic::Status::not_found(format!("no runtime for handler {h:?}"))),
        }
    }

    /// Stops the pod's containers, releases its network and stops the pause process.
    /// Stopping what is already stopped, or a sandbox that does not exist, is fine.
    pub async fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        let engine = self.engine();
        let Some(sb) = meta::find_sandbox(engine, id) else { return Ok(()) };
        // The pod's containers go together (each is killed at once: timeout 0).
        let members: Vec<_> = meta::containers(engine).into_iter().filter(|c| c.meta.sandbox_id == sb.rec.id).collect();
        let stops = members.iter().map(|c| engine.stop_container(c.id(), None, Some(0)));
        for r in futures_util::future::join_all(stops).await {
            ignore_stopped(r)?;
        }
        self.release_network(&sb).await?;
        ignore_stopped(engine.stop_container(sb.id(), None, Some(10)).await)
    }

    /// CNI DEL, once; the kubelet may call StopPodSandbox many times.
    async fn release_network(&self, sb: &Sandbox) -> Result<()> {
        let (Some(cni), Some(att)) = (&self.cni, &sb.meta.cni) else { return Ok(()) };
        if att.released {
            return Ok(());
        }
        cni.del(att, sb).await.map_err(|e| tonic::Status::unknown(format!("tearing down the pod network: {e}")))?;
        let mut m = sb.meta.clone();
        m.cni = Some(CniAttachment { released: true, ..att.clone() });
        self.engine().set_ext_meta(sb.id(), meta::to_value(&Meta::Sandbox(m))).or_status()?;
        Ok(())
    }

    pub async fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        let engine = self.engine();
        let Some(sb) = meta::find_sandbox(engine, id) else { return Ok(()) };
        let members: Vec<_> = meta::containers(engine).into_iter().filter(|c| c.meta.sandbox_id == sb.rec.id).collect();
        let removals = members.iter().map(|c| engine.remove_container(c.id(), true, true));
        for r in futures_util::future::join_all(removals).await {
            ignore_missing(r)?;
        }
        self.release_network(&sb).await?;
        ignore_missing(engine.remove_container(sb.id(), true, true).await)
    }

    pub fn pod_sandbox_status(&self, id: &str, verbose: bool) -> Result<api::PodSandboxStatusResponse> {
        let engine = self.engine();
        let sb = meta::find_sandbox(engine, id).ok_or_else(|| not_found(format!("pod sandbox {id} not found")))?;
        let ips = sb.ips();
        let network = Some(api::PodSandboxNetworkStatus {
            ip: ips.first().cloned().unwrap_or_default(),
            additional_ips: ips.iter().skip(1).map(|ip| api::PodIp { ip: ip.clone() }).collect(),
        });
        let status = api::PodSandboxStatus {
            id: sb.rec.id.clone(),
            metadata: Some(sb.metadata()),
            state: sb.state(),
            created_at: meta::nanos(&sb.rec.created),
            network,
            linux: Some(api::LinuxPodSandboxStatus { namespaces: Some(api::Namespace { options: Some(sb.namespace_options()) }) }),
            labels: sb.meta.config.labels.clone(),
            annotations: sb.meta.config.annotations.clone(),
            runtime_handler: sb.meta.runtime_handler.clone(),
        };
        let mut info = HashMap::new();
        if verbose {
            let v = serde_json::json!({
                "pid": sb.rec.state.pid,
                "processStatus": sb.rec.state.status.as_str(),
                "netNamespace": sb.rec.network.sandbox_key,
                "cgroupParent": sb.rec.host_config.cgroup_parent,
                "runtimeHandler": sb.meta.runtime_handler,
                "cni": sb.meta.cni,
                "config": sb.meta.config,
            });
            info.insert("info".to_string(), v.to_string());
        }
        let containers_statuses = meta::containers(engine).iter().filter(|c| c.meta.sandbox_id == sb.rec.id).map(|c| self.container_status_of(c)).collect();
        Ok(api::PodSandboxStatusResponse { status: Some(status), info, containers_statuses, timestamp: chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) })
    }

    pub fn list_pod_sandbox(&self, filter: Option<api::PodSandboxFilter>) -> Vec<api::PodSandbox> {
        let f = filter.unwrap_or_default();
        meta::sandboxes(self.engine())
            .into_iter()
            .filter(|s| f.id.is_empty() || s.rec.id.starts_with(&f.id))
            .filter(|s| f.state.as_ref().is_none_or(|st| st.state == s.state()))
            .filter(|s| meta::selector_matches(&f.label_selector, &s.meta.config.labels))
            .map(|s| api::PodSandbox {
                id: s.rec.id.clone(),
                metadata: Some(s.metadata()),
                state: s.state(),
                created_at: meta::nanos(&s.rec.created),
                labels: s.meta.config.labels.clone(),
                annotations: s.meta.config.annotations.clone(),
                runtime_handler: s.meta.runtime_handler.clone(),
            })
            .collect()
    }
}

/// Stopping something already stopped (or gone) is success for the CRI.
pub(crate) fn ignore_stopped(r: berth_engine::Result<()>) -> Result<()> {
    match r {
        Err(e) if matches!(e.kind, ErrorKind::NotModified | ErrorKind::NotFound) => Ok(()),
        other => other.or_status(),
    }
}

/// Removing something already gone is success for the CRI.
pub(crate) fn ignore_missing(r: berth_engine::Result<()>) -> Result<()> {
    match r {
        Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
        other => other.or_status(),
    }
}
