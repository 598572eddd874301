//! Child images, the builder's unit of work: each build step's result is an image
//! whose parent is the previous step's image, made either from what the step's
//! snapshot changed (one new layer) or from a new configuration alone. Unlike
//! `commit`, the caller writes the whole configuration (history, container_config);
//! the store only adds the layer's DiffID.

use crate::config::{self, ImageConfig};
use crate::digest::{self, Digest};
use crate::error::{ImageError, Result};
use crate::layer::diff::{self, TreeKind};
use crate::manifest::{Descriptor, OCI_LAYER_TAR};
use crate::store::{ImageStore, NewImage};

impl ImageStore {
    /// The parent's layer blobs, bottom first, checked against the DiffIDs `config`
    /// claims to build on.
    fn parent_layers(&self, parent: Option<&Digest>, config: &ImageConfig) -> Result<Vec<Descriptor>> {
        let Some(parent) = parent else {
            return Ok(Vec::new());
        };
        let meta = self.lock_meta();
        let e = meta.images.get(parent).ok_or_else(|| ImageError::ImageNotFound(parent.to_string()))?;
        let ours: Vec<&Digest> = e.record.layers.iter().map(|l| &l.diff_id).collect();
        let theirs: Vec<&Digest> = config.rootfs.diff_ids.iter().collect();
        if ours != theirs {
            return Err(ImageError::InvalidArgument(format!(
                "the new image's rootfs does not continue its parent {parent}'s layers"
            )));
        }
        Ok(e.record.layers.iter().map(|l| l.blob.clone()).collect())
    }

    /// Makes a child of `parent` (`None`: an image with no parent, as on `FROM
    /// scratch`) from what snapshot `key` changed. `config.rootfs` holds the parent's
    /// DiffIDs; the new layer's DiffID is appended when the snapshot changed
    /// something, otherwise the last history entry is marked `empty_layer`. Returns
    /// the image ID and whether a layer was made. The snapshot is left as it was.
    pub fn commit_child(&self, key: &str, parent: Option<&Digest>, config: ImageConfig) -> Result<(Digest, bool)> {
        self.commit_child_unmapped(key, parent, config, None)
    }

    /// [`Self::commit_child`] of a snapshot a user namespace wrote (owners as it saw them).
    pub fn commit_child_unmapped(&self, key: &str, parent: Option<&Digest>, mut config: ImageConfig, unmap: Option<&diff::IdUnmap>) -> Result<(Digest, bool)> {
        let snap = self.snapshot(key)?;
        let mut layers = self.parent_layers(parent, &config)?;
        self.with_lease(|lease| {
            let mut lw = self.anonymous_layer_writer(lease)?;
            diff::write_tree_tar_unmapped(&snap.upper, &mut lw, TreeKind::OverlayUpper, unmap)
                .map_err(|e| ImageError::from_io_chain("commit", e))?;
            let layer = lw.finish()?;
            let changed = layer.diff_id != digest::empty_layer_diff_id();
            if changed {
                config.rootfs.diff_ids.push(layer.diff_id.clone());
                layers.push(Descriptor { media_type: OCI_LAYER_TAR.into(), digest: layer.blob.digest.clone(), size: layer.blob.size });
            } else if let Some(h) = config.history.last_mut() {
                h.empty_layer = true;
            }
            let id = self.record_child_in(lease, parent, &mut config, layers)?;
            Ok((id, changed))
        })
    }

    /// Makes a child of `parent` that adds no layer, only `config` (whose last history
    /// entry is marked `empty_layer`).
    pub fn record_child(&self, parent: Option<&Digest>, mut config: ImageConfig) -> Result<Digest> {
        let layers = self.parent_layers(parent, &config)?;
        if let Some(h) = config.history.last_mut() {
            h.empty_layer = true;
        }
        self.with_lease(|lease| self.record_child_in(lease, parent, &mut config, layers))
    }

    /// Makes a child of `parent` whose new layer, if `layer` is given, is layer
    /// number `layer` of image `donor` (a `--cache-from` hit): `config.rootfs` holds
    /// the parent's DiffIDs followed by that layer's.
    pub fn adopt_child(&self, parent: Option<&Digest>, mut config: ImageConfig, donor: &Digest, layer: Option<usize>) -> Result<Digest> {
        let mut base = config.clone();
        if layer.is_some() {
            base.rootfs.diff_ids.pop();
        }
        let mut layers = self.parent_layers(parent, &base)?;
        if let Some(i) = layer {
            let meta = self.lock_meta();
            let e = meta.images.get(donor).ok_or_else(|| ImageError::ImageNotFound(donor.to_string()))?;
            let l = e.record.layers.get(i).ok_or_else(|| ImageError::InvalidArgument(format!("image {donor} has no layer {i}")))?;
            if config.rootfs.diff_ids.last() != Some(&l.diff_id) {
                return Err(ImageError::InvalidArgument(format!("layer {i} of {donor} is not the layer the new image names")));
            }
            layers.push(l.blob.clone());
        } else if let Some(h) = config.history.last_mut() {
            h.empty_layer = true;
        }
        self.with_lease(|lease| self.record_child_in(lease, parent, &mut config, layers))
    }

    fn record_child_in(&self, lease: &crate::Lease, parent: Option<&Digest>, config: &mut ImageConfig, layers: Vec<Descriptor>) -> Result<Digest> {
        if config.rootfs.kind.is_empty() {
            config.rootfs.kind = "layers".into();
        }
        if config.created.is_none() {
            config.created = Some(config::format_time(&chrono::Utc::now()));
        }
        if config.docker_version.is_empty() {
            config.docker_version = self.docker_version.clone();
        }
        let bytes = config.to_bytes()?;
        let (id, _) = self.record_image(lease, NewImage { config: &bytes, layers, parent: parent.cloned(), ..Default::default() })?;
        Ok(id)
    }
}
