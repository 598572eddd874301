//! `docker import`: a root filesystem tar (plain, gzip or zstd) becomes a one-layer
//! image, with a config built from `--change` instructions, exactly as Docker builds
//! it (same inputs, same image ID).

use std::io::Read;

use crate::config::{self, ContainerConfig, History, ImageConfig, RootFs};
use crate::digest::Digest;
use crate::error::{ImageError, Result};
use crate::ingest;
use crate::manifest::{Descriptor, OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_LAYER_ZSTD};
use crate::layer::Compression;
use crate::reference::Reference;
use crate::store::{ImageStore, NewImage};

/// Options of [`ImageStore::import`].
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Dockerfile-style changes (`CMD`, `ENV`, `WORKDIR`...).
    pub changes: Vec<String>,
    /// Tag for the image (`repo:tag`; `latest` when only a name is given).
    pub tag: Option<String>,
    /// The commit message; Docker's default is `Imported from <source>`.
    pub message: Option<String>,
    /// Where the tar came from (`-` for a stream), used in the default message.
    pub source: Option<String>,
    /// Overrides the creation time (RFC 3339); now by default.
    pub created: Option<String>,
    /// The image's platform `(os, architecture, variant)` (`--platform`); the host's
    /// by default, as dockerd since API 1.42 (which takes the architecture too).
    pub platform: Option<(String, String, String)>,
}

pub(crate) fn media_type_for(c: Compression) -> &'static str {
    match c {
        Compression::None => OCI_LAYER_TAR,
        Compression::Gzip => OCI_LAYER_GZIP,
        Compression::Zstd => OCI_LAYER_ZSTD,
        // No registry media type exists for these; Docker, too, records them by
        // what their bytes are and recompresses on push.
        Compression::Bzip2 => crate::manifest::LAYER_BZIP2,
        Compression::Xz => crate::manifest::LAYER_XZ,
    }
}

impl ImageStore {
    /// Imports a root filesystem tar as a new image and returns its ID.
    pub fn import<R: Read>(&self, input: R, opts: &ImportOptions) -> Result<Digest> {
        let tag = match &opts.tag {
            Some(t) => {
                let r = Reference::parse_tagged(t)?;
                if r.digest().is_some() {
                    return Err(ImageError::InvalidArgument(
                        "refusing to create a tag with a digest reference".into(),
                    ));
                }
                Some(r)
            }
            None => None,
        };
        let mut cfg = ContainerConfig::default();
        config::apply_changes(&mut cfg, &opts.changes)?;
        let created = match &opts.created {
            Some(c) => {
                let t = config::parse_time(c).ok_or_else(|| {
                    ImageError::InvalidArgument(format!("invalid creation time {c:?}"))
                })?;
                config::format_time(&t)
            }
            None => config::format_time(&chrono::Utc::now()),
        };
        let message = opts.message.clone().unwrap_or_else(|| {
            format!("Imported from {}", opts.source.as_deref().unwrap_or("-"))
        });
        self.with_lease(|lease| {
            let lw = self.anonymous_layer_writer(lease)?;
            let layer = ingest::copy_layer(input, lw)?;
            let (os, architecture, variant) = opts.platform.clone().unwrap_or_else(|| ("linux".into(), crate::manifest::host_architecture().into(), String::new()));
            let ic = ImageConfig {
                architecture,
                variant,
                comment: message.clone(),
                config: Some(cfg.clone()),
                container_config: Some(ContainerConfig::default()),
                created: Some(created.clone()),
                docker_version: self.docker_version.clone(),
                history: vec![History {
                    created: Some(created.clone()),
                    comment: message.clone(),
                    ..Default::default()
                }],
                os,
                rootfs: RootFs {
                    kind: "layers".into(),
                    diff_ids: vec![layer.diff_id.clone()],
                },
                ..Default::default()
            };
            let bytes = ic.to_bytes()?;
            let (id, _) = self.record_image(
                lease,
                NewImage {
                    config: &bytes,
                    layers: vec![Descriptor {
                        media_type: media_type_for(layer.compression).into(),
                        digest: layer.blob.digest.clone(),
                        size: layer.blob.size,
                    }],
                    tags: tag.clone().into_iter().collect(),
                    ..Default::default()
                },
            )?;
            Ok(id)
        })
    }
}
