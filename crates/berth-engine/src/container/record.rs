//! What berth persists about a container (`containers/<id>/config.v2.json`) and the
//! state machine of its status.

use std::path::PathBuf;

use berth_types::container::{Config, Health, HostConfig, MountPoint, PortMap};
use berth_types::network::EndpointSettings;
use serde::{Deserialize, Serialize};

use crate::util::ZERO_TIME;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// A process exists (running or frozen).
    pub fn is_alive(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StateRecord {
    pub status: Status,
    pub pid: i64,
    pub exit_code: i64,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    pub oom_killed: bool,
    pub health: Option<Health>,
    /// The user stopped it (`docker stop`/`kill`): restart policies other than
    /// `always` leave it alone, and unless-stopped survives daemon restarts stopped.
    pub manually_stopped: bool,
}

impl Default for StateRecord {
    fn default() -> Self {
        StateRecord {
            status: Status::Created,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
            oom_killed: false,
            health: None,
            manually_stopped: false,
        }
    }
}

/// One network a container is attached to, as the daemon remembers it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkRecord {
    pub sandbox_key: String,
    pub ports: PortMap,
    pub networks: std::collections::BTreeMap<String, EndpointSettings>,
    /// Legacy links' variables, computed at start (for the process and for execs).
    pub link_env: Vec<String>,
}

/// A mount berth resolved for the container (volume, bind or tmpfs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MountRecord {
    /// bind | volume | tmpfs
    pub kind: String,
    /// Volume name (volumes only).
    pub name: String,
    /// Host path (bind, volume).
    pub source: String,
    pub destination: String,
    pub rw: bool,
    /// The `-v` mode string as given ("ro", "z", ...), shown in inspect.
    pub mode: String,
    pub propagation: String,
    /// Mount options for tmpfs (size=..., mode=...).
    pub options: Vec<String>,
    /// An anonymous volume, removed with the container when asked (`rm -v`, AutoRemove).
    pub anonymous: bool,
    /// Copy the image's content at `destination` into an empty volume on first use.
    pub copy_up: bool,
    /// Created by `-v` for a missing host path.
    pub created_source: bool,
}

impl MountRecord {
    pub fn to_api(&self) -> MountPoint {
        MountPoint {
            kind: self.kind.clone(),
            name: self.name.clone(),
            source: self.source.clone(),
            destination: self.destination.clone(),
            driver: if self.kind == "volume" { "local".into() } else { String::new() },
            mode: self.mode.clone(),
            rw: self.rw,
            propagation: self.propagation.clone(),
        }
    }
}

/// Everything persisted about one container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerRecord {
    pub id: String,
    /// With Docker's leading slash: "/web".
    pub name: String,
    pub created: String,
    pub path: String,
    pub args: Vec<String>,
    pub config: Config,
    pub host_config: HostConfig,
    /// `sha256:...` of the image it was created from.
    pub image_id: String,
    pub state: StateRecord,
    pub restart_count: i64,
    pub network: NetworkRecord,
    pub mounts: Vec<MountRecord>,
    pub log_path: String,
    pub resolv_conf_path: String,
    pub hostname_path: String,
    pub hosts_path: String,
    /// The digest of what berth last wrote to each of the three files above (by path):
    /// an update can then tell whether the user edited one, and leaves it alone if so,
    /// as Docker does. (Kept here, not in a file beside each: a start makes three
    /// fewer files.)
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub generated_digests: std::collections::BTreeMap<String, String>,
    /// The runtime this container runs on ("berth", "runc", ...).
    pub runtime: String,
    /// The image's platform (`os/arch[/variant]`) when it is not the host's: such a
    /// container runs through an emulator (see `emulation`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub foreign_platform: String,
    /// What only another front door (the CRI) asks for; empty for Docker's containers.
    #[serde(skip_serializing_if = "Extensions::is_empty")]
    pub ext: Extensions,
}

/// Settings of a container that Docker's API cannot express, set by the CRI front door
/// through [`crate::Engine::create_container_ext`] and kept with the record so that they
/// survive daemon restarts like everything else about the container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Extensions {
    /// A pod sandbox: no image, an empty read-only root, and the runtime's built-in
    /// pause process instead of a program (it only holds the pod's namespaces).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pause: bool,
    /// Write the log in the CRI format (`<time> <stream> <P|F> <text>`) at `log_path`,
    /// which the caller chose; never rotated by berth (the kubelet rotates it).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cri_log: bool,
    /// Supplementary groups as the CRI computes them (None: Docker's way).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cri_groups: Option<GroupsPolicy>,
    /// Opaque data of the front door that made the container (the CRI's metadata:
    /// pod and container config as asked for), stored and returned as is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<serde_json::Value>,
    /// A user namespace (a pod's): its own, or that of another container (`of`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userns: Option<UserNs>,
}

/// A user namespace with these id mappings. The one that owns it (`of` None) has it made
/// by the engine at start, kept as a bind-mounted file under the exec root (so it outlives
/// the daemon like a netns); the others join it. The network namespace is made inside it,
/// and joiners' image layers are id-mapped into it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserNs {
    pub uids: Vec<IdMap>,
    pub gids: Vec<IdMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub of: Option<String>,
    /// Made by the daemon's `--userns-remap` (crate::remap), not asked for by a pod: as
    /// dockerd, what the container binds from the host keeps the host's ownership (not
    /// id-mapped), so the remapped root is nobody to a root-only host file.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remap: bool,
}

/// `container_id` .. `container_id + size` inside is `host_id` .. outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    pub container_id: u32,
    pub host_id: u32,
    pub size: u32,
}

impl UserNs {
    /// The host ids of the namespace's uid and gid (None: not mapped).
    pub fn to_host(&self, uid: u32, gid: u32) -> Option<(u32, u32)> {
        let host = |m: &[IdMap], id: u32| m.iter().find(|m| id >= m.container_id && id - m.container_id < m.size).map(|m| m.host_id + (id - m.container_id));
        Some((host(&self.uids, uid)?, host(&self.gids, gid)?))
    }

    /// Host ids as the namespace sees them (ids it does not map stay as they are).
    pub fn to_inside(&self, uid: u32, gid: u32) -> (u32, u32) {
        let back = |m: &[IdMap], id: u32| m.iter().find(|m| id >= m.host_id && id - m.host_id < m.size).map_or(id, |m| m.container_id + (id - m.host_id));
        (back(&self.uids, uid), back(&self.gids, gid))
    }

    /// The host ids of the namespace's files back to its own (for commit and export).
    pub fn unmap(&self) -> berth_image::layer::diff::IdUnmap {
        let r = |m: &[IdMap]| m.iter().map(|m| (m.container_id, m.host_id, m.size)).collect();
        berth_image::layer::diff::IdUnmap { uids: r(&self.uids), gids: r(&self.gids) }
    }

    /// The host ids of the namespace's root (uid, gid), if it maps one.
    pub fn root(&self) -> Option<(u32, u32)> {
        let host = |m: &[IdMap]| m.iter().find(|m| m.container_id == 0 && m.size > 0).map(|m| m.host_id);
        Some((host(&self.uids)?, host(&self.gids)?))
    }
}

/// The CRI's SupplementalGroupsPolicy: the primary group is always among the
/// supplementary groups, then (Merge) the user's memberships in the image's /etc/group,
/// then the groups asked for; Strict leaves the image's memberships out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupsPolicy {
    Merge,
    Strict,
}

impl Extensions {
    pub fn is_empty(&self) -> bool {
        *self == Extensions::default()
    }
}

impl ContainerRecord {
    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }

    /// Name without the leading slash.
    pub fn bare_name(&self) -> &str {
        self.name.trim_start_matches('/')
    }

    pub fn dir(data_root: &std::path::Path, id: &str) -> PathBuf {
        data_root.join("containers").join(id)
    }
}
