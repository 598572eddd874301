//! The data the image store hands back to the engine. `ImageInspect` serialises in
//! Docker's image JSON shape (field names and nesting of `docker image inspect`);
//! the rest are plain data the engine maps to its wire types.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::config::ContainerConfig;
use crate::digest::Digest;

/// One row of `docker images` / `GET /images/json` (the `Containers` count is the
/// engine's to fill).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    pub id: Digest,
    pub parent_id: Option<Digest>,
    /// Familiar form, e.g. `busybox:latest`, sorted.
    pub repo_tags: Vec<String>,
    /// Familiar form, e.g. `busybox@sha256:...`, sorted.
    pub repo_digests: Vec<String>,
    /// Unix seconds of the config's `created` (0 when absent).
    pub created: i64,
    /// Sum of the layer sizes.
    pub size: u64,
    pub labels: BTreeMap<String, String>,
}

/// `GraphDriver` of `docker image inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriver {
    pub data: BTreeMap<String, String>,
    pub name: String,
}

/// `RootFS` of `docker image inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectRootFs {
    #[serde(rename = "Type")]
    pub kind: String,
    pub layers: Vec<String>,
}

/// `Metadata` of `docker image inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectMetadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_tag_time: Option<String>,
}

/// `docker image inspect`, field for field.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub parent: String,
    pub comment: String,
    pub created: String,
    pub container: String,
    pub container_config: ContainerConfig,
    pub docker_version: String,
    pub author: String,
    pub config: ContainerConfig,
    pub architecture: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub variant: String,
    pub os: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub os_version: String,
    pub size: u64,
    pub virtual_size: u64,
    pub graph_driver: GraphDriver,
    #[serde(rename = "RootFS")]
    pub root_fs: InspectRootFs,
    pub metadata: InspectMetadata,
}

/// One row of `docker history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryItem {
    /// `sha256:...` for entries that are a local image, else `<missing>`.
    pub id: String,
    /// Unix seconds.
    pub created: i64,
    pub created_by: String,
    pub tags: Vec<String>,
    pub size: u64,
    pub comment: String,
}

/// One line of `docker rmi` / `docker image prune` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteItem {
    /// `Untagged: busybox:latest`
    Untagged(String),
    /// `Deleted: sha256:...` (an image ID or a layer chain ID)
    Deleted(String),
}

/// The answer of `image prune`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub deleted: Vec<DeleteItem>,
    pub space_reclaimed: u64,
}

/// Filters of `image prune` (the subset Docker documents: `until`, `label`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneFilters {
    /// Only images created before this unix time.
    pub until: Option<i64>,
    /// `label=k`, `label=k=v` (`negate` for `label!=`).
    pub labels: Vec<LabelFilter>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelFilter {
    pub key: String,
    pub value: Option<String>,
    pub negate: bool,
}

impl LabelFilter {
    /// Parses `key`, `key=value`.
    pub fn parse(s: &str, negate: bool) -> LabelFilter {
        match s.split_once('=') {
            Some((k, v)) => LabelFilter {
                key: k.to_owned(),
                value: Some(v.to_owned()),
                negate,
            },
            None => LabelFilter {
                key: s.to_owned(),
                value: None,
                negate,
            },
        }
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let hit = match (&self.value, labels.get(&self.key)) {
            (None, Some(_)) => true,
            (Some(want), Some(have)) => want == have,
            _ => false,
        };
        hit != self.negate
    }
}

/// Which containers use which image, as the engine knows them (running or not).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageUsers {
    by_image: HashMap<Digest, Vec<ContainerUse>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerUse {
    pub container_id: String,
    pub running: bool,
}

impl ImageUsers {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, image: Digest, container_id: impl Into<String>, running: bool) {
        self.by_image.entry(image).or_default().push(ContainerUse {
            container_id: container_id.into(),
            running,
        });
    }

    pub fn running(&self, image: &Digest) -> Option<&ContainerUse> {
        self.by_image.get(image)?.iter().find(|c| c.running)
    }

    pub fn stopped(&self, image: &Digest) -> Option<&ContainerUse> {
        self.by_image.get(image)?.iter().find(|c| !c.running)
    }

    pub fn any(&self, image: &Digest) -> Option<&ContainerUse> {
        self.by_image.get(image)?.first()
    }

    pub fn count(&self, image: &Digest) -> usize {
        self.by_image.get(image).map_or(0, Vec::len)
    }
}

/// `system df` figures for images.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// Sum of the sizes of all installed layers.
    pub layers_size: u64,
    pub images: Vec<ImageDiskUsage>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDiskUsage {
    pub summary: ImageSummary,
    /// Bytes of layers this image shares with at least one other image.
    pub shared_size: u64,
    /// `size - shared_size`.
    pub unique_size: u64,
}

/// What `load` reports as it goes (Docker prints one line per event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadEvent {
    /// `Loaded image: fixture/layers:1.0`
    LoadedTag(String),
    /// `Loaded image ID: sha256:...` (an image without tags)
    LoadedId(Digest),
    /// `The image X already exists, renaming the old one with ID Y to empty string`
    TagMoved { tag: String, old_id: Digest },
}

impl std::fmt::Display for LoadEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadEvent::LoadedTag(t) => write!(f, "Loaded image: {t}"),
            LoadEvent::LoadedId(id) => write!(f, "Loaded image ID: {id}"),
            LoadEvent::TagMoved { tag, old_id } => write!(
                f,
                "The image {tag} already exists, renaming the old one with ID {old_id} to empty string"
            ),
        }
    }
}

/// An image a load brought in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    pub id: Digest,
    /// Familiar tags given to it.
    pub tags: Vec<String>,
}

/// What a garbage collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub blobs: Vec<Digest>,
    pub layers: Vec<Digest>,
    /// Bytes of the removed layers (their unpacked sizes).
    pub layer_bytes: u64,
}
