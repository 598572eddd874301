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
    /// `null` when empty, as dockerd answers for a volume made without labels.
    #[serde(serialize_with = "null_if_empty", deserialize_with = "null_as_empty")]
    pub labels: StringMap,
    pub mountpoint: String,
    pub name: String,
    /// `null` when empty (no driver options), as dockerd.
    #[serde(serialize_with = "null_if_empty", deserialize_with = "null_as_empty")]
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

fn null_if_empty<S: serde::Serializer>(m: &StringMap, s: S) -> Result<S::Ok, S::Error> {
    if m.is_empty() { s.serialize_none() } else { serde::Serialize::serialize(m, s) }
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<StringMap, D::Error> {
    Ok(Option::<StringMap>::deserialize(d)?.unwrap_or_default())
}
