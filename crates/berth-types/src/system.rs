//! System endpoints: version, info, events, df, auth.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::container::ContainerSummary;
use crate::image::ImageSummary;
use crate::volume::Volume;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ComponentVersion {
    pub name: String,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PlatformName {
    pub name: String,
}

/// `GET /version`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Version {
    pub platform: PlatformName,
    pub components: Vec<ComponentVersion>,
    pub version: String,
    pub api_version: String,
    #[serde(rename = "MinAPIVersion")]
    pub min_api_version: String,
    pub git_commit: String,
    pub go_version: String,
    pub os: String,
    pub arch: String,
    pub kernel_version: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub experimental: bool,
    pub build_time: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RuntimeInfo {
    pub path: String,
}

/// `GET /info` (the fields berth can report truthfully, plus the ones clients expect).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Info {
    #[serde(rename = "ID")]
    pub id: String,
    pub containers: i64,
    pub containers_running: i64,
    pub containers_paused: i64,
    pub containers_stopped: i64,
    pub images: i64,
    pub driver: String,
    pub driver_status: Vec<[String; 2]>,
    pub memory_limit: bool,
    pub swap_limit: bool,
    pub cpu_cfs_period: bool,
    pub cpu_cfs_quota: bool,
    #[serde(rename = "CPUShares")]
    pub cpu_shares: bool,
    #[serde(rename = "CPUSet")]
    pub cpu_set: bool,
    pub pids_limit: bool,
    #[serde(rename = "IPv4Forwarding")]
    pub ipv4_forwarding: bool,
    pub debug: bool,
    #[serde(rename = "NFd")]
    pub n_fd: i64,
    pub oom_kill_disable: bool,
    pub n_goroutines: i64,
    pub system_time: String,
    pub logging_driver: String,
    pub cgroup_driver: String,
    pub cgroup_version: String,
    pub n_events_listener: i64,
    pub kernel_version: String,
    pub operating_system: String,
    #[serde(rename = "OSVersion")]
    pub os_version: String,
    #[serde(rename = "OSType")]
    pub os_type: String,
    pub architecture: String,
    #[serde(rename = "NCPU")]
    pub ncpu: i64,
    pub mem_total: i64,
    pub index_server_address: String,
    pub registry_config: serde_json::Value,
    pub generic_resources: Option<Vec<serde_json::Value>>,
    pub http_proxy: String,
    pub https_proxy: String,
    pub no_proxy: String,
    pub name: String,
    pub labels: Vec<String>,
    pub experimental_build: bool,
    pub server_version: String,
    pub runtimes: BTreeMap<String, RuntimeInfo>,
    pub default_runtime: String,
    pub swarm: serde_json::Value,
    pub live_restore_enabled: bool,
    pub isolation: String,
    pub init_binary: String,
    pub security_options: Vec<String>,
    pub warnings: Option<Vec<String>>,
    pub docker_root_dir: String,
    /// berth's own: the bounds on what one client or one image can make the daemon do
    /// (not in dockerd's answer; clients ignore fields they do not know).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
}

/// The JSON bodies of small objects (exec, networks, volumes, `/auth`): at most this.
pub const MAX_SMALL_BODY: u64 = 1 << 20;
/// A container's create or update body: at most this (labels and env can be large).
pub const MAX_CONTAINER_BODY: u64 = 64 << 20;
/// Concurrent requests on one HTTP/2 connection.
pub const MAX_HTTP2_STREAMS: u32 = 256;
/// Header bytes of one HTTP/2 request.
pub const MAX_HTTP2_HEADER_LIST: u32 = 1 << 20;
/// Header bytes of one HTTP/1 request (hyper's read buffer; more gets 431).
pub const MAX_HTTP1_HEADERS: u64 = 400 << 10;
/// A log line longer than this is split into several records, as dockerd splits them.
pub const MAX_LOG_LINE: u64 = 16 << 10;

/// `Limits` in `GET /info`: each bound in bytes or a count; 0 where there is none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Limits {
    pub max_json_body: u64,
    pub max_container_body: u64,
    pub max_http1_header_bytes: u64,
    pub max_http2_header_bytes: u64,
    pub max_http2_streams_per_connection: u64,
    pub max_connections_per_client: u64,
    /// The largest uncompressed layer accepted (`--max-layer-size`).
    pub max_layer_size: u64,
    /// Unpacking stops before the data root's free space falls below this.
    pub min_free_space: u64,
    pub max_log_line: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EventActor {
    #[serde(rename = "ID")]
    pub id: String,
    pub attributes: BTreeMap<String, String>,
}

/// One line of `GET /events`. The lower-case fields are the deprecated ones the
/// docker CLI still prints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventMessage {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub from: String,
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: EventActor,
    pub scope: String,
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

/// `GET /system/df`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DiskUsage {
    pub layers_size: i64,
    pub images: Vec<ImageSummary>,
    pub containers: Vec<ContainerSummary>,
    pub volumes: Vec<Volume>,
    pub build_cache: Vec<serde_json::Value>,
}

/// `POST /auth` body and the decoded `X-Registry-Auth` header.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub password: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub auth: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub email: String,
    #[serde(rename = "serveraddress", skip_serializing_if = "String::is_empty")]
    pub server_address: String,
    #[serde(rename = "identitytoken", skip_serializing_if = "String::is_empty")]
    pub identity_token: String,
    #[serde(rename = "registrytoken", skip_serializing_if = "String::is_empty")]
    pub registry_token: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AuthResponse {
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub identity_token: String,
}
