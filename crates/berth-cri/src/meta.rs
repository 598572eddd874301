//! What the CRI keeps about its pods and containers, in the engine record's `ext.meta`
//! (so it is persisted, and survives crashes, with the record): the configs exactly as
//! the kubelet sent them, plus what was learnt on the way (image ID, CNI addresses).
//! Also the engine names and labels CRI objects get, and lookups by ID.

use std::collections::BTreeMap;

use berth_engine::Engine;
use berth_engine::container::{ContainerRecord, Status};
use serde::{Deserialize, Serialize};

use crate::api;

/// Engine label saying which kind of CRI object a container is (as cri-dockerd's
/// `io.kubernetes.docker.type`), so `docker ps --filter` can find them.
pub const TYPE_LABEL: &str = "io.kubernetes.cri.type";
pub const TYPE_SANDBOX: &str = "podsandbox";
pub const TYPE_CONTAINER: &str = "container";
pub const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
pub const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";
pub const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";
pub const SANDBOX_ID_LABEL: &str = "io.kubernetes.sandbox.id";

/// The CRI's data in a record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cri", rename_all = "lowercase")]
pub enum Meta {
    Sandbox(SandboxMeta),
    Container(ContainerMeta),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxMeta {
    pub config: api::PodSandboxConfig,
    pub runtime_handler: String,
    /// Set once the pod network is up through CNI.
    pub cni: Option<CniAttachment>,
}

/// A pod's attachment to a CNI network, kept to report its addresses and to delete it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CniAttachment {
    /// The network namespace the plugins were given.
    pub netns: String,
    pub ifname: String,
    /// Addresses without prefix length, the first is the pod's primary IP.
    pub ips: Vec<String>,
    /// The network config list's name and the plugins' result (for DEL's prevResult).
    pub network: String,
    pub result: serde_json::Value,
    /// DEL has run: nothing left to release.
    pub released: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerMeta {
    pub sandbox_id: String,
    pub config: api::ContainerConfig,
    /// The image's ID (`sha256:...`).
    pub image_id: String,
    /// The log file (the pod's log directory joined with the container's log path).
    pub log_path: String,
}

pub fn to_value(m: &Meta) -> serde_json::Value {
    serde_json::to_value(m).unwrap_or_default()
}

fn parse(rec: &ContainerRecord) -> Option<Meta> {
    serde_json::from_value(rec.ext.meta.clone()?).ok()
}

/// A pod sandbox: its pause container's record and the CRI's data.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub rec: ContainerRecord,
    pub meta: SandboxMeta,
}

impl Sandbox {
    pub fn id(&self) -> &str {
        &self.rec.id
    }

    /// READY while the pause process runs.
    pub fn ready(&self) -> bool {
        self.rec.state.status.is_alive()
    }

    pub fn metadata(&self) -> api::PodSandboxMetadata {
        self.meta.config.metadata.clone().unwrap_or_default()
    }

    pub fn namespace_options(&self) -> api::NamespaceOption {
        self.meta
            .config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.clone())
            .unwrap_or_default()
    }

    pub fn host_network(&self) -> bool {
        self.namespace_options().network == api::NamespaceMode::Node as i32
    }

    /// The pod's IPs: the CNI result's, or the bridge endpoint's.
    pub fn ips(&self) -> Vec<String> {
        if self.host_network() {
            return Vec::new();
        }
        if let Some(c) = &self.meta.cni {
            return c.ips.clone();
        }
        self.rec.network.networks.values().map(|e| e.ip_address.clone()).filter(|ip| !ip.is_empty()).collect()
    }

    pub fn state(&self) -> i32 {
        if self.ready() { api::PodSandboxState::SandboxReady as i32 } else { api::PodSandboxState::SandboxNotready as i32 }
    }
}

/// A CRI container: its record and the CRI's data.
#[derive(Debug, Clone)]
pub struct Ctr {
    pub rec: ContainerRecord,
    pub meta: ContainerMeta,
}

impl Ctr {
    pub fn id(&self) -> &str {
        &self.rec.id
    }

    pub fn state(&self) -> i32 {
        use api::ContainerState as S;
        (match self.rec.state.status {
            Status::Created => S::ContainerCreated,
            Status::Running | Status::Paused | Status::Restarting => S::ContainerRunning,
            Status::Exited | Status::Dead | Status::Removing => S::ContainerExited,
        }) as i32
    }

    pub fn metadata(&self) -> api::ContainerMetadata {
        self.meta.config.metadata.clone().unwrap_or_default()
    }

    /// The image as the kubelet asked for it.
    pub fn image_spec(&self) -> api::ImageSpec {
        self.meta.config.image.clone().unwrap_or_default()
    }
}

/// Every pod sandbox.
pub fn sandboxes(engine: &Engine) -> Vec<Sandbox> {
    engine
        .all_containers()
        .iter()
        .filter_map(|c| {
            let rec = c.snapshot();
            match parse(&rec)? {
                Meta::Sandbox(meta) => Some(Sandbox { rec, meta }),
                Meta::Container(_) => None,
            }
        })
        .collect()
}

/// Every CRI container (not the sandboxes, not Docker's).
pub fn containers(engine: &Engine) -> Vec<Ctr> {
    engine
        .all_containers()
        .iter()
        .filter_map(|c| {
            let rec = c.snapshot();
            match parse(&rec)? {
                Meta::Container(meta) => Some(Ctr { rec, meta }),
                Meta::Sandbox(_) => None,
            }
        })
        .collect()
}

/// The one item whose ID is `id` or starts with it.
fn by_id<T>(items: Vec<T>, id: &str, of: impl Fn(&T) -> &str) -> Option<T> {
    if id.is_empty() {
        return None;
    }
    let mut found = None;
    for it in items {
        if of(&it) == id {
            return Some(it);
        }
        if of(&it).starts_with(id) {
            if found.is_some() {
                return None;
            }
            found = Some(it);
        }
    }
    found
}

pub fn find_sandbox(engine: &Engine, id: &str) -> Option<Sandbox> {
    by_id(sandboxes(engine), id, |s| s.rec.id.as_str())
}

pub fn find_container(engine: &Engine, id: &str) -> Option<Ctr> {
    by_id(containers(engine), id, |c| c.rec.id.as_str())
}

/// An engine container name from the CRI metadata, as dockershim named them:
/// `k8s_<container>_<pod>_<namespace>_<uid>_<attempt>` (`POD` for the sandbox).
/// Characters an engine name cannot hold become `-`.
pub fn engine_name(container: &str, pod: &api::PodSandboxMetadata, attempt: u32) -> String {
    let raw = format!("k8s_{container}_{}_{}_{}_{attempt}", pod.name, pod.namespace, pod.uid);
    raw.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') { c } else { '-' }).collect()
}

/// Engine labels of a CRI object: the kubelet's labels plus who it is.
pub fn engine_labels(labels: &std::collections::HashMap<String, String>, kind: &str, pod: &api::PodSandboxMetadata) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    out.insert(TYPE_LABEL.into(), kind.into());
    out.insert(POD_NAME_LABEL.into(), pod.name.clone());
    out.insert(POD_NAMESPACE_LABEL.into(), pod.namespace.clone());
    out.insert(POD_UID_LABEL.into(), pod.uid.clone());
    out
}

/// RFC 3339 (as records keep times) to Unix nanoseconds; 0 for the zero time.
pub fn nanos(t: &str) -> i64 {
    match chrono::DateTime::parse_from_rfc3339(t) {
        Ok(d) if d.timestamp() > 0 => d.timestamp_nanos_opt().unwrap_or(0),
        _ => 0,
    }
}

/// Whether every pair of the selector is among the labels.
pub fn selector_matches(selector: &std::collections::HashMap<String, String>, labels: &std::collections::HashMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockershim_and_stay_valid() {
        let pod = api::PodSandboxMetadata { name: "web".into(), namespace: "default".into(), uid: "1a-2b".into(), attempt: 0 };
        assert_eq!(engine_name("POD", &pod, 0), "k8s_POD_web_default_1a-2b_0");
        let odd = api::PodSandboxMetadata { name: "a b/c".into(), namespace: "ns".into(), uid: "u".into(), attempt: 1 };
        assert_eq!(engine_name("nginx", &odd, 2), "k8s_nginx_a-b-c_ns_u_2");
    }

    #[test]
    fn meta_round_trips_through_json() {
        let mut cfg = api::PodSandboxConfig::default();
        cfg.hostname = "h".into();
        cfg.labels.insert("app".into(), "x".into());
        let m = Meta::Sandbox(SandboxMeta { config: cfg, runtime_handler: String::new(), cni: None });
        let v = to_value(&m);
        assert_eq!(v["cri"], "sandbox");
        match serde_json::from_value::<Meta>(v).unwrap() {
            Meta::Sandbox(s) => assert_eq!(s.config.labels["app"], "x"),
            Meta::Container(_) => panic!("wrong kind"),
        }
    }

    #[test]
    fn ids_match_whole_or_by_unique_prefix() {
        let items = vec!["abc1".to_string(), "abd2".to_string()];
        assert_eq!(by_id(items.clone(), "abc1", |s| s.as_str()).as_deref(), Some("abc1"));
        assert_eq!(by_id(items.clone(), "abd", |s| s.as_str()).as_deref(), Some("abd2"));
        assert_eq!(by_id(items.clone(), "ab", |s| s.as_str()), None);
        assert_eq!(by_id(items, "", |s| s.as_str()), None);
    }

    #[test]
    fn times_and_selectors() {
        assert_eq!(nanos("0001-01-01T00:00:00Z"), 0);
        assert_eq!(nanos("1970-01-01T00:00:01.5Z"), 1_500_000_000);
        let sel: std::collections::HashMap<String, String> = [("a".to_string(), "1".to_string())].into_iter().collect();
        let mut labels = sel.clone();
        labels.insert("b".into(), "2".into());
        assert!(selector_matches(&sel, &labels));
        assert!(!selector_matches(&labels, &sel));
    }
}
