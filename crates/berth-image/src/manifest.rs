//! Manifests and indexes, OCI and Docker (schema2 manifest, manifest list), parsed
//! with oci-spec's types and reduced to what berth needs: the config descriptor, the
//! layer descriptors with a known compression, or the platform entries of an index.

use oci_spec::image::{Descriptor as OciDescriptor, ImageIndex, ImageManifest};
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{ImageError, Result};
use crate::layer::Compression;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Media types berth records for local layers compressed with bzip2 or xz (no
/// standard exists; such layers come from `import` and `load`).
pub const LAYER_BZIP2: &str = "application/vnd.oci.image.layer.v1.tar+bzip2";
pub const LAYER_XZ: &str = "application/vnd.oci.image.layer.v1.tar+xz";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_FOREIGN_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// A content descriptor with a sha256 digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
}

impl Descriptor {
    fn from_oci(d: &OciDescriptor) -> Result<Descriptor> {
        let digest = Digest::parse(d.digest().as_ref())
            .map_err(|e| ImageError::InvalidManifest(format!("descriptor digest: {e}")))?;
        Ok(Descriptor {
            media_type: d.media_type().to_string(),
            digest,
            size: d.size(),
        })
    }
}

/// The compression a layer media type announces, or an error for media types berth
/// cannot unpack.
pub fn layer_compression(media_type: &str) -> Result<Compression> {
    match media_type {
        OCI_LAYER_TAR
        | "application/vnd.oci.image.layer.nondistributable.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar" => Ok(Compression::None),
        OCI_LAYER_GZIP
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | DOCKER_LAYER_GZIP
        | DOCKER_FOREIGN_LAYER_GZIP => Ok(Compression::Gzip),
        OCI_LAYER_ZSTD | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => {
            Ok(Compression::Zstd)
        }
        LAYER_BZIP2 => Ok(Compression::Bzip2),
        LAYER_XZ => Ok(Compression::Xz),
        other => Err(ImageError::UnsupportedMediaType(format!("layer media type {other:?}"))),
    }
}

fn check_config_media_type(media_type: &str) -> Result<()> {
    match media_type {
        OCI_CONFIG | DOCKER_CONFIG => Ok(()),
        other => Err(ImageError::UnsupportedMediaType(format!(
            "config media type {other:?} (not a container image)"
        ))),
    }
}

/// One image manifest, checked: a config and layers berth can unpack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// One entry of an index or manifest list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub descriptor: Descriptor,
    pub os: Option<String>,
    pub architecture: Option<String>,
    pub variant: Option<String>,
    /// `org.opencontainers.image.ref.name` and `io.containerd.image.name`.
    pub ref_name: Option<String>,
    pub image_name: Option<String>,
}

/// A parsed manifest-like document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestDoc {
    Manifest(Manifest),
    Index { media_type: String, entries: Vec<IndexEntry> },
}

#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(rename = "schemaVersion", default)]
    schema_version: Option<u32>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    layers: Option<serde_json::Value>,
}

/// Parses a manifest or an index. `hint` is the media type the descriptor (or the
/// registry's Content-Type) announced, used when the document has no `mediaType`.
pub fn parse(bytes: &[u8], hint: Option<&str>) -> Result<ManifestDoc> {
    let probe: Probe = serde_json::from_slice(bytes)
        .map_err(|e| ImageError::InvalidManifest(format!("not JSON: {e}")))?;
    let media_type = probe
        .media_type
        .clone()
        .or_else(|| hint.map(str::to_owned))
        .unwrap_or_else(|| {
            if probe.manifests.is_some() {
                OCI_INDEX.to_owned()
            } else {
                OCI_MANIFEST.to_owned()
            }
        });
    match media_type.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => {
            if probe.schema_version != Some(2) {
                return Err(ImageError::InvalidManifest(format!(
                    "schemaVersion {:?} (expected 2)",
                    probe.schema_version
                )));
            }
            if probe.layers.is_none() {
                return Err(ImageError::InvalidManifest("no layers".into()));
            }
            let m = ImageManifest::from_reader(bytes)
                .map_err(|e| ImageError::InvalidManifest(e.to_string()))?;
            let config = Descriptor::from_oci(m.config())?;
            check_config_media_type(&config.media_type)?;
            let layers = m
                .layers()
                .iter()
                .map(|d| {
                    let d = Descriptor::from_oci(d)?;
                    layer_compression(&d.media_type)?;
                    Ok(d)
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(ManifestDoc::Manifest(Manifest {
                media_type,
                config,
                layers,
            }))
        }
        OCI_INDEX | DOCKER_MANIFEST_LIST => {
            let idx = ImageIndex::from_reader(bytes)
                .map_err(|e| ImageError::InvalidManifest(e.to_string()))?;
            let entries = idx
                .manifests()
                .iter()
                .map(|d| {
                    let ann = d.annotations().as_ref();
                    Ok(IndexEntry {
                        descriptor: Descriptor::from_oci(d)?,
                        os: d.platform().as_ref().map(|p| p.os().to_string()),
                        architecture: d.platform().as_ref().map(|p| p.architecture().to_string()),
                        variant: d.platform().as_ref().and_then(|p| p.variant().clone()),
                        ref_name: ann
                            .and_then(|a| a.get("org.opencontainers.image.ref.name"))
                            .cloned(),
                        image_name: ann.and_then(|a| a.get("io.containerd.image.name")).cloned(),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(ManifestDoc::Index {
                media_type,
                entries,
            })
        }
        DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED => Err(ImageError::UnsupportedMediaType(
            "Docker image manifest schema 1 (deprecated; push the image again with a current Docker)".into(),
        )),
        other => Err(ImageError::UnsupportedMediaType(format!("manifest media type {other:?}"))),
    }
}

/// The GOARCH name of the machine berth runs on.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// Picks the entry of an index for `os`/`architecture` (entries without a platform
/// match anything, as single-image OCI layouts often omit it).
pub fn select_platform<'a>(
    entries: &'a [IndexEntry],
    os: &str,
    architecture: &str,
) -> Result<&'a IndexEntry> {
    entries
        .iter()
        .find(|e| e.os.as_deref() == Some(os) && e.architecture.as_deref() == Some(architecture))
        .or_else(|| entries.iter().find(|e| e.os.is_none() && e.architecture.is_none()))
        .ok_or_else(|| {
            ImageError::InvalidManifest(format!(
                "no matching manifest for {os}/{architecture} in the manifest list entries"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:036e3fa5f5c5c981307842e47ccd8a5ed796afcd329ad6dc7cd161340eafae95";

    #[test]
    fn parses_docker_schema2() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"{DOCKER_CONFIG}","size":10,"digest":"{D}"}},"layers":[{{"mediaType":"{DOCKER_LAYER_GZIP}","size":5,"digest":"{D}"}}]}}"#
        );
        let ManifestDoc::Manifest(m) = parse(m.as_bytes(), None).unwrap() else {
            panic!("not a manifest")
        };
        assert_eq!(m.media_type, DOCKER_MANIFEST);
        assert_eq!(m.layers.len(), 1);
        assert_eq!(m.config.size, 10);
    }

    #[test]
    fn parses_oci_index_and_selects_platform() {
        let idx = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}","manifests":[
              {{"mediaType":"{DOCKER_MANIFEST}","size":1,"digest":"{D}","platform":{{"architecture":"arm64","os":"linux"}}}},
              {{"mediaType":"{DOCKER_MANIFEST}","size":2,"digest":"{D}","platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#
        );
        let ManifestDoc::Index { entries, .. } = parse(idx.as_bytes(), None).unwrap() else {
            panic!("not an index")
        };
        assert_eq!(select_platform(&entries, "linux", "amd64").unwrap().descriptor.size, 2);
        let e = select_platform(&entries, "linux", "s390x").unwrap_err();
        assert!(e.to_string().contains("no matching manifest for linux/s390x"));
    }

    #[test]
    fn refuses_unknown_media_types() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","size":1,"digest":"{D}"}},"layers":[{{"mediaType":"application/x-weird","size":1,"digest":"{D}"}}]}}"#
        );
        let e = parse(m.as_bytes(), None).unwrap_err();
        assert!(matches!(e, ImageError::UnsupportedMediaType(_)), "{e}");
        let helm = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.cncf.helm.config.v1+json","size":1,"digest":"{D}"}},"layers":[]}}"#
        );
        assert!(matches!(parse(helm.as_bytes(), None), Err(ImageError::UnsupportedMediaType(_))));
        let s1 = format!(r#"{{"schemaVersion":1,"mediaType":"{DOCKER_SCHEMA1_SIGNED}"}}"#);
        assert!(parse(s1.as_bytes(), None).unwrap_err().to_string().contains("schema 1"));
        assert!(matches!(parse(b"[]", None), Err(ImageError::InvalidManifest(_))));
    }

    #[test]
    fn layer_media_types() {
        assert_eq!(layer_compression(OCI_LAYER_ZSTD).unwrap(), Compression::Zstd);
        assert_eq!(layer_compression(DOCKER_LAYER_GZIP).unwrap(), Compression::Gzip);
        assert_eq!(layer_compression(OCI_LAYER_TAR).unwrap(), Compression::None);
        assert!(layer_compression("application/vnd.oci.image.layer.v1.tar+lz4").is_err());
    }
}
