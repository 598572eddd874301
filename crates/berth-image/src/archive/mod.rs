//! Images in and out as files: docker-archive (`docker save`/`docker load`) and OCI
//! image layouts (directory or tar).

pub mod load;
pub mod save;

use crate::digest::Digest;

pub const MANIFEST_JSON: &str = "manifest.json";
pub const INDEX_JSON: &str = "index.json";
pub const OCI_LAYOUT: &str = "oci-layout";
pub const REPOSITORIES: &str = "repositories";
pub const OCI_LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// Annotation with the full image name (containerd, Docker 25+).
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// OCI's reference name annotation (Docker writes the tag, skopeo `repo:tag`).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Where a blob lives in an OCI layout: `blobs/sha256/<hex>`.
pub fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}
