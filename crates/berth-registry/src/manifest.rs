//! Manifests, indexes and descriptors, OCI and Docker flavours, and platform choice.
//!
//! Manifests are always kept as the exact bytes the registry sent (their digest is the
//! digest of those bytes); the structs here are a parsed *view* used to find the
//! config, the layers and the children of an index, never re-serialised.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

pub mod media {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
    pub const DOCKER_SCHEMA1_SIGNED: &str =
        "application/vnd.docker.distribution.manifest.v1+prettyjws";

    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    /// Not in the OCI spec, but written by tools that keep a layer's bzip2 or xz
    /// compression (and by `berth save` of such layers); Docker unpacks both.
    pub const OCI_LAYER_BZIP2: &str = "application/vnd.oci.image.layer.v1.tar+bzip2";
    pub const OCI_LAYER_XZ: &str = "application/vnd.oci.image.layer.v1.tar+xz";
    pub const OCI_LAYER_ND: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
    pub const OCI_LAYER_ND_GZIP: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    pub const OCI_LAYER_ND_ZSTD: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const DOCKER_FOREIGN_LAYER_GZIP: &str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

    /// What a client asks for when fetching a manifest (Docker's list, in its order).
    pub const MANIFEST_ACCEPT: &[&str] = &[
        OCI_INDEX,
        DOCKER_MANIFEST_LIST,
        OCI_MANIFEST,
        DOCKER_MANIFEST,
    ];

    pub fn is_manifest(t: &str) -> bool {
        t == OCI_MANIFEST || t == DOCKER_MANIFEST
    }

    pub fn is_index(t: &str) -> bool {
        t == OCI_INDEX || t == DOCKER_MANIFEST_LIST
    }

    pub fn is_image_config(t: &str) -> bool {
        t == OCI_CONFIG || t == DOCKER_CONFIG
    }

    pub fn is_layer(t: &str) -> bool {
        matches!(
            t,
            OCI_LAYER
                | OCI_LAYER_GZIP
                | OCI_LAYER_ZSTD
                | OCI_LAYER_BZIP2
                | OCI_LAYER_XZ
                | OCI_LAYER_ND
                | OCI_LAYER_ND_GZIP
                | OCI_LAYER_ND_ZSTD
                | DOCKER_LAYER
                | DOCKER_LAYER_GZIP
                | DOCKER_FOREIGN_LAYER_GZIP
        )
    }
}

/// Largest manifest accepted, as distribution does (4 MiB).
pub const MAX_MANIFEST_SIZE: usize = 4 << 20;

/// An OCI content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            platform: None,
            artifact_type: None,
        }
    }
}

/// An image manifest (OCI or Docker schema 2: the same shape).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
}

/// An image index (OCI) or manifest list (Docker).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
}

/// A manifest as parsed: which kind it is, with its view.
// Short-lived (parsed, read, dropped): boxing the larger variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Manifest {
    Image(ImageManifest),
    Index(ImageIndex),
}

impl Manifest {
    /// Every blob or child manifest this manifest points at (config, layers, children,
    /// subject): what must exist before it is accepted, and what GC must keep.
    pub fn references(&self) -> Vec<&Descriptor> {
        match self {
            Manifest::Image(m) => std::iter::once(&m.config)
                .chain(m.layers.iter())
                .chain(m.subject.iter())
                .collect(),
            Manifest::Index(i) => i.manifests.iter().chain(i.subject.iter()).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid JSON: {0}")]
    Json(String),
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedMediaType(String),
    #[error(
        "Docker schema 1 manifests are not supported (deprecated image format); \
         push the image again with a current client"
    )]
    Schema1,
    #[error("manifest media type {body:?} does not match Content-Type {header:?}")]
    MediaTypeMismatch { body: String, header: String },
    #[error("manifest is larger than {MAX_MANIFEST_SIZE} bytes")]
    TooLarge,
    #[error("manifest has schemaVersion {0}, expected 2")]
    SchemaVersion(u32),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<u32>,
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
    config: Option<serde_json::Value>,
}

/// Parses manifest bytes. The media type comes from the body's `mediaType`, else the
/// Content-Type the registry sent (`content_type`), else the shape of the document.
/// Returns the media type decided on and the parsed view.
pub fn parse(content_type: Option<&str>, bytes: &[u8]) -> Result<(String, Manifest), ManifestError> {
    if bytes.len() > MAX_MANIFEST_SIZE {
        return Err(ManifestError::TooLarge);
    }
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
    if probe.schema_version == Some(1) {
        return Err(ManifestError::Schema1);
    }
    // Registries often send parameters ("; charset=utf-8") or a generic JSON type.
    let header = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim())
        .filter(|c| !c.is_empty() && *c != "application/json" && *c != "text/plain");
    let media_type = match (&probe.media_type, header) {
        (Some(body), Some(h)) if body != h && (media::is_index(h) || media::is_manifest(h)) => {
            return Err(ManifestError::MediaTypeMismatch {
                body: body.clone(),
                header: h.to_string(),
            });
        }
        (Some(body), _) => body.clone(),
        (None, Some(h)) => h.to_string(),
        (None, None) if probe.manifests.is_some() => media::OCI_INDEX.to_string(),
        (None, None) if probe.config.is_some() => media::OCI_MANIFEST.to_string(),
        (None, None) => return Err(ManifestError::UnsupportedMediaType(String::new())),
    };
    if media_type == media::DOCKER_SCHEMA1 || media_type == media::DOCKER_SCHEMA1_SIGNED {
        return Err(ManifestError::Schema1);
    }
    let json = |e: serde_json::Error| ManifestError::Json(e.to_string());
    let manifest = if media::is_index(&media_type) {
        Manifest::Index(serde_json::from_slice(bytes).map_err(json)?)
    } else if media::is_manifest(&media_type) {
        Manifest::Image(serde_json::from_slice(bytes).map_err(json)?)
    } else {
        return Err(ManifestError::UnsupportedMediaType(media_type));
    };
    let version = match &manifest {
        Manifest::Image(m) => m.schema_version,
        Manifest::Index(i) => i.schema_version,
    };
    if version != 2 {
        return Err(ManifestError::SchemaVersion(version));
    }
    Ok((media_type, manifest))
}

/// An OS/architecture pair, as in `--platform linux/arm64/v8`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform {0:?}: expected os/arch[/variant], e.g. linux/amd64")]
pub struct PlatformError(String);

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            architecture: architecture.to_string(),
            os: os.to_string(),
            os_version: None,
            os_features: Vec::new(),
            variant: variant.map(str::to_string),
        }
    }

    /// The platform this program runs on, in Go's GOOS/GOARCH names.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        Platform::new("linux", arch, None).normalised()
    }

    /// Normalises like containerd's platforms package: `aarch64` is `arm64`, arm64's
    /// default variant is `v8`, `x86_64` is `amd64`.
    pub fn normalised(mut self) -> Platform {
        self.os = self.os.to_lowercase();
        self.architecture = match self.architecture.to_lowercase().as_str() {
            "x86_64" | "x86-64" => "amd64".to_string(),
            "aarch64" => "arm64".to_string(),
            "i386" | "i686" => "386".to_string(),
            "armhf" => {
                self.variant.get_or_insert_with(|| "v7".to_string());
                "arm".to_string()
            }
            other => other.to_string(),
        };
        if self.architecture == "arm64" && self.variant.is_none() {
            self.variant = Some("v8".to_string());
        }
        if self.architecture == "arm" && self.variant.is_none() {
            self.variant = Some("v7".to_string());
        }
        self
    }

    /// Whether an index entry's platform satisfies this (wanted) one. A variant only
    /// matters where the wanted platform names one (after normalisation).
    pub fn matches(&self, candidate: &Platform) -> bool {
        let want = self.clone().normalised();
        let have = candidate.clone().normalised();
        want.os == have.os
            && want.architecture == have.architecture
            && (want.variant.is_none() || want.variant == have.variant)
    }
}

impl FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(PlatformError(s.to_string()));
        }
        let p = match parts.as_slice() {
            [os, arch] => Platform::new(os, arch, None),
            [os, arch, variant] => Platform::new(os, arch, Some(variant)),
            _ => return Err(PlatformError(s.to_string())),
        };
        Ok(p.normalised())
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Picks the entry of `index` for `platform`: the first image manifest whose platform
/// matches. Entries without a platform (attestations, artifacts) are skipped.
pub fn select_platform<'a>(index: &'a ImageIndex, platform: &Platform) -> Option<&'a Descriptor> {
    index.manifests.iter().find(|d| {
        (media::is_manifest(&d.media_type) || media::is_index(&d.media_type))
            && d.platform.as_ref().is_some_and(|p| platform.matches(p))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(media: &str, n: u8, platform: Option<Platform>) -> Descriptor {
        let mut d = Descriptor::new(media, Digest::sha256_of(&[n]), 10);
        d.platform = platform;
        d
    }

    #[test]
    fn parses_by_body_header_or_shape() {
        let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[]}"#;
        let (t, parsed) = parse(None, m).unwrap();
        assert_eq!(t, media::DOCKER_MANIFEST);
        assert!(matches!(parsed, Manifest::Image(_)));

        let oci = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(parse(None, oci).unwrap().0, media::OCI_INDEX);
        assert_eq!(
            parse(Some("application/vnd.docker.distribution.manifest.list.v2+json"), oci).unwrap().0,
            media::DOCKER_MANIFEST_LIST
        );
    }

    #[test]
    fn rejects_schema1_unknown_and_mismatch() {
        assert_eq!(
            parse(None, br#"{"schemaVersion":1,"fsLayers":[]}"#).unwrap_err(),
            ManifestError::Schema1
        );
        assert!(matches!(
            parse(None, br#"{"schemaVersion":2,"mediaType":"application/x-thing"}"#),
            Err(ManifestError::UnsupportedMediaType(_))
        ));
        let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        assert!(matches!(
            parse(Some(media::OCI_MANIFEST), m),
            Err(ManifestError::MediaTypeMismatch { .. })
        ));
        assert!(matches!(parse(None, b"{nope"), Err(ManifestError::Json(_))));
    }

    #[test]
    fn chooses_platform() {
        let index = ImageIndex {
            schema_version: 2,
            media_type: Some(media::OCI_INDEX.into()),
            manifests: vec![
                desc(media::OCI_MANIFEST, 1, Some(Platform::new("linux", "arm64", Some("v8")))),
                desc(media::OCI_MANIFEST, 2, Some(Platform::new("linux", "amd64", None))),
                desc(media::OCI_MANIFEST, 3, Some(Platform::new("linux", "arm", Some("v6")))),
                desc(media::OCI_MANIFEST, 4, None),
            ],
            subject: None,
        };
        let pick = |s: &str| select_platform(&index, &s.parse().unwrap()).map(|d| d.digest.clone());
        assert_eq!(pick("linux/amd64"), Some(Digest::sha256_of(&[2])));
        assert_eq!(pick("linux/arm64"), Some(Digest::sha256_of(&[1])));
        assert_eq!(pick("linux/aarch64"), Some(Digest::sha256_of(&[1])));
        assert_eq!(pick("linux/arm/v6"), Some(Digest::sha256_of(&[3])));
        assert_eq!(pick("linux/arm/v7"), None);
        assert_eq!(pick("windows/amd64"), None);
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux//x".parse::<Platform>().is_err());
    }
}
