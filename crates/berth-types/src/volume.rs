//! Volumes.

use serde::{Deserialize, Serialize};

use crate::container::StringMap;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UsageData {
    pub size: i64,
    pub ref_count: i64,
}

/// `GET /volumes/{name}` and the entries of `GET /volumes`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Volume {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub created_at: String,
    pub driver: String,
    pub labels: StringMap,
    pub mountpoint: String,
    pub name: String,
    pub options: StringMap,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_data: Option<UsageData>,
}

/// `POST /volumes/create`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeCreateRequest {
    pub name: String,
    pub driver: String,
    pub driver_opts: Option<StringMap>,
    pub labels: Option<StringMap>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeListResponse {
    pub volumes: Vec<Volume>,
    pub warnings: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumePruneResponse {
    pub volumes_deleted: Option<Vec<String>>,
    pub space_reclaimed: u64,
}
