//! `docker save` and OCI layout output, streamed (no temporary copy of the image).
//!
//! docker-archive output is what Docker 25+ writes: an OCI layout whose layers are
//! uncompressed tars named by DiffID, plus `manifest.json` and `repositories` for the
//! classic loaders — so `docker load` of any version, skopeo and berth all read it.
//! OCI layout output keeps the stored blobs as they are (compressed layers stay
//! compressed, a pulled manifest keeps its digest).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;

use serde::Serialize;

use crate::archive::{
    ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, INDEX_JSON, MANIFEST_JSON, OCI_LAYOUT,
    OCI_LAYOUT_CONTENT, REPOSITORIES, blob_path,
};
use crate::digest::Digest;
use sha2::{Digest as _, Sha256};
use crate::error::{ImageError, IoContext, Result};
use crate::fsutil;
use crate::layer::Compression;
use crate::lease::Lease;
use crate::manifest::{
    self, Descriptor, OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_LAYER_ZSTD,
    OCI_MANIFEST,
};
use crate::meta::{LayerRef, MAX_METADATA_BLOB, Meta};
use crate::reference::{self, Reference};
use crate::store::{ImageStore, expect_manifest, resolve_in};

/// One image to write, with the tags to write it under.
struct SaveImage {
    id: Digest,
    config: Vec<u8>,
    tags: Vec<Reference>,
    layers: Vec<(LayerRef, u64)>,
    manifest: Option<Descriptor>,
}

/// Where a blob's bytes come from.
enum BlobSource {
    Bytes(Vec<u8>),
    /// A stored blob, copied as it is.
    Stored(Digest, u64),
    /// A layer as an uncompressed tar (decompressing its stored blob if needed).
    LayerTar(LayerRef, u64),
}

#[derive(Serialize)]
struct OutDescriptor {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: Digest,
    size: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct OutManifest {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    config: OutDescriptor,
    layers: Vec<OutDescriptor>,
}

#[derive(Serialize)]
struct OutIndex {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    manifests: Vec<OutDescriptor>,
}

#[derive(Serialize)]
struct OutManifestItem {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags")]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

fn json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| ImageError::System(format!("encode: {e}")))
}

/// The OCI media type for a stored layer blob.
fn oci_layer_type(media_type: &str) -> Result<&'static str> {
    Ok(match manifest::layer_compression(media_type)? {
        Compression::None => OCI_LAYER_TAR,
        Compression::Gzip => OCI_LAYER_GZIP,
        Compression::Zstd => OCI_LAYER_ZSTD,
        Compression::Bzip2 => manifest::LAYER_BZIP2,
        Compression::Xz => manifest::LAYER_XZ,
    })
}

/// Where the output goes: a tar stream or a directory.
trait Sink {
    fn dir(&mut self, path: &str) -> Result<()>;
    fn file(&mut self, path: &str, size: u64, data: &mut dyn Read) -> Result<()>;
}

struct TarSink<W: Write> {
    b: tar::Builder<W>,
}

impl<W: Write> Sink for TarSink<W> {
    fn dir(&mut self, path: &str) -> Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(0);
        self.b
            .append_data(&mut h, format!("{path}/"), io::empty())
            .map_err(|e| ImageError::from_io_chain("write archive", e))
    }

    fn file(&mut self, path: &str, size: u64, data: &mut dyn Read) -> Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(size);
        h.set_mtime(0);
        self.b
            .append_data(&mut h, path, data)
            .map_err(|e| ImageError::from_io_chain(&format!("write {path}"), e))
    }
}

struct DirSink<'a> {
    root: &'a Path,
}

impl Sink for DirSink<'_> {
    fn dir(&mut self, path: &str) -> Result<()> {
        let p = self.root.join(path);
        fs::create_dir_all(&p).ctx("create", &p)
    }

    fn file(&mut self, path: &str, _size: u64, data: &mut dyn Read) -> Result<()> {
        let p = self.root.join(path);
        let tmp = fsutil::TempPath::new(self.root.join(format!("{path}.tmp-{}", fsutil::random_id(6))));
        let mut f = File::create(tmp.path()).ctx("create", tmp.path())?;
        io::copy(data, &mut f).map_err(|e| ImageError::from_io_chain(&format!("write {path}"), e))?;
        f.sync_all().ctx("fsync", tmp.path())?;
        fs::rename(tmp.path(), &p).ctx("write", &p)?;
        tmp.keep();
        Ok(())
    }
}

/// Yields exactly `size` bytes whose sha256 must be `digest`; anything else is an
/// error before the last byte goes out, so a corrupt store never yields a
/// plausible-looking archive.
struct CheckedReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    size: u64,
    digest: Digest,
    what: String,
}

impl<R: Read> CheckedReader<R> {
    fn new(inner: R, size: u64, digest: Digest, what: String) -> Self {
        CheckedReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
            size,
            digest,
            what,
        }
    }
}

impl<R: Read> Read for CheckedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.size - self.count;
        if left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(left as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(ImageError::SizeMismatch {
                what: self.what.clone(),
                expected: self.size,
                actual: self.count,
            }
            .into_io());
        }
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        if self.count == self.size {
            // Verify before handing out the last bytes; trailing data is a mismatch too.
            let mut probe = [0u8; 1];
            let extra = self.inner.read(&mut probe)?;
            let d = Digest::from_hasher(self.hasher.clone());
            if extra != 0 || d != self.digest {
                return Err(ImageError::DigestMismatch {
                    what: self.what.clone(),
                    expected: self.digest.to_string(),
                    actual: d.to_string(),
                }
                .into_io());
            }
        }
        Ok(n)
    }
}

impl ImageStore {
    /// Docker's `parseNames`: a tag saves that tag; a bare repository name saves all
    /// its tags; an ID (or digest reference) saves the image without tags.
    fn collect_for_save(&self, meta: &Meta, names: &[&str], platform: Option<&str>) -> Result<Vec<SaveImage>> {
        // A multi-platform image's reference gives the image of the platform asked for.
        let pick = |key: &str, id: Digest| platform.and_then(|p| meta.variant(key, p)).unwrap_or(id);
        let mut order: Vec<Digest> = Vec::new();
        let mut tags: BTreeMap<Digest, Vec<Reference>> = BTreeMap::new();
        let mut add = |id: Digest, r: Option<Reference>, order: &mut Vec<Digest>| {
            if !order.contains(&id) {
                order.push(id.clone());
            }
            let t = tags.entry(id).or_default();
            if let Some(r) = r
                && !t.contains(&r) {
                    t.push(r);
                }
        };
        for name in names {
            let hexish = name.strip_prefix("sha256:").unwrap_or(name);
            let is_id = reference::is_64_hex(hexish) || name.starts_with("sha256:");
            if is_id {
                add(resolve_in(meta, name)?, None, &mut order);
                continue;
            }
            let r = match Reference::parse(name) {
                Ok(r) => r,
                Err(e) => {
                    // Maybe an ID prefix.
                    match resolve_in(meta, name) {
                        Ok(id) => {
                            add(id, None, &mut order);
                            continue;
                        }
                        Err(_) => return Err(e),
                    }
                }
            };
            if r.is_name_only() {
                let repo = r.name();
                let hits: Vec<(Reference, Digest)> = meta
                    .refs
                    .values()
                    .filter(|(x, _)| x.name() == repo && x.tag().is_some() && x.digest().is_none())
                    .cloned()
                    .collect();
                if hits.is_empty() {
                    add(resolve_in(meta, name)?, None, &mut order);
                }
                for (x, id) in hits {
                    let id = pick(&x.to_string(), id);
                    add(id, Some(x), &mut order);
                }
            } else if r.digest().is_some() {
                add(resolve_in(meta, name)?, None, &mut order);
            } else {
                let id = pick(&r.to_string(), resolve_in(meta, name)?);
                add(id, Some(r), &mut order);
            }
        }
        let mut out = Vec::new();
        for id in order {
            let e = meta
                .images
                .get(&id)
                .ok_or_else(|| ImageError::ImageNotFound(id.to_string()))?;
            let config = self.content.read_blob(&id, MAX_METADATA_BLOB)?;
            let mut layers = Vec::new();
            for l in &e.record.layers {
                let info = self.layers.get(&l.chain_id)?;
                layers.push((l.clone(), info.tar_size));
            }
            out.push(SaveImage {
                tags: tags.remove(&id).unwrap_or_default(),
                id,
                config,
                layers,
                manifest: e.record.manifest.clone(),
            });
        }
        Ok(out)
    }

    /// Collects the images under the metadata lock and leases their blobs so nothing
    /// vanishes while the (long) write runs unlocked.
    fn prepare_save(&self, names: &[&str]) -> Result<(Lease, Vec<SaveImage>)> {
        self.prepare_save_for(names, None)
    }

    fn prepare_save_for(&self, names: &[&str], platform: Option<&str>) -> Result<(Lease, Vec<SaveImage>)> {
        if names.is_empty() {
            return Err(ImageError::InvalidArgument("no image to save".into()));
        }
        let lease = self.lease();
        let meta = self.lock_meta();
        let imgs = self.collect_for_save(&meta, names, platform)?;
        for i in &imgs {
            lease.protect_blob(&i.id);
            if let Some(m) = &i.manifest {
                lease.protect_blob(&m.digest);
            }
            for (l, _) in &i.layers {
                lease.protect_blob(&l.blob.digest);
                lease.protect_layer(&l.chain_id);
            }
        }
        Ok((lease, imgs))
    }

    fn write_blob_source(&self, sink: &mut dyn Sink, path: &str, src: &BlobSource) -> Result<()> {
        match src {
            BlobSource::Bytes(b) => sink.file(path, b.len() as u64, &mut &b[..]),
            BlobSource::Stored(d, size) => {
                let f = self.content.open_blob(d)?;
                let mut r = CheckedReader::new(
                    io::BufReader::with_capacity(1 << 20, f),
                    *size,
                    d.clone(),
                    format!("blob {d}"),
                );
                sink.file(path, *size, &mut r)
            }
            BlobSource::LayerTar(l, tar_size) => {
                let f = self.content.open_blob(&l.blob.digest)?;
                let buf = io::BufReader::with_capacity(1 << 20, f);
                let raw = crate::layer::decompressed(buf, manifest::layer_compression(&l.blob.media_type)?)?;
                let mut r = CheckedReader::new(raw, *tar_size, l.diff_id.clone(), format!("layer {}", l.diff_id));
                sink.file(path, *tar_size, &mut r)
            }
        }
    }

    /// `docker save`: writes the images named by `names` (tags, repositories, IDs) as
    /// a docker-archive tar to `out`.
    pub fn save<W: Write>(&self, names: &[&str], out: W) -> Result<W> {
        self.save_platform(names, None, out)
    }

    /// [`save`](Self::save) of one platform (`os/arch[/variant]`) of multi-platform
    /// images (`docker save --platform`); other images are saved as they are.
    pub fn save_platform<W: Write>(&self, names: &[&str], platform: Option<&str>, out: W) -> Result<W> {
        let (_lease, imgs) = self.prepare_save_for(names, platform)?;
        let mut blobs: BTreeMap<String, BlobSource> = BTreeMap::new();
        let mut items = Vec::new();
        let mut index = Vec::new();
        let mut repos: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for img in &imgs {
            blobs.insert(img.id.hex().to_owned(), BlobSource::Bytes(img.config.clone()));
            let mut layer_descs = Vec::new();
            for (l, tar_size) in &img.layers {
                blobs
                    .entry(l.diff_id.hex().to_owned())
                    .or_insert_with(|| BlobSource::LayerTar(l.clone(), *tar_size));
                layer_descs.push(OutDescriptor {
                    media_type: OCI_LAYER_TAR.into(),
                    digest: l.diff_id.clone(),
                    size: *tar_size,
                    annotations: BTreeMap::new(),
                });
            }
            let m = json(&OutManifest {
                schema_version: 2,
                media_type: OCI_MANIFEST,
                config: OutDescriptor {
                    media_type: OCI_CONFIG.into(),
                    digest: img.id.clone(),
                    size: img.config.len() as u64,
                    annotations: BTreeMap::new(),
                },
                layers: layer_descs,
            })?;
            let md = Digest::of(&m);
            let msize = m.len() as u64;
            blobs.insert(md.hex().to_owned(), BlobSource::Bytes(m));
            if img.tags.is_empty() {
                index.push(OutDescriptor {
                    media_type: OCI_MANIFEST.into(),
                    digest: md.clone(),
                    size: msize,
                    annotations: BTreeMap::new(),
                });
            }
            for t in &img.tags {
                let mut ann = BTreeMap::new();
                ann.insert(ANNOTATION_IMAGE_NAME.to_string(), t.to_string());
                ann.insert(ANNOTATION_REF_NAME.to_string(), t.tag().unwrap_or("latest").to_string());
                index.push(OutDescriptor {
                    media_type: OCI_MANIFEST.into(),
                    digest: md.clone(),
                    size: msize,
                    annotations: ann,
                });
                if let (Some(tag), Some((top, _))) = (t.tag(), img.layers.last()) {
                    repos
                        .entry(t.familiar_name())
                        .or_default()
                        .insert(tag.to_owned(), top.diff_id.hex().to_owned());
                }
            }
            items.push(OutManifestItem {
                config: blob_path(&img.id),
                repo_tags: if img.tags.is_empty() {
                    None
                } else {
                    Some(img.tags.iter().map(Reference::familiar).collect())
                },
                layers: img.layers.iter().map(|(l, _)| blob_path(&l.diff_id)).collect(),
            });
        }
        let mut sink = TarSink {
            b: tar::Builder::new(out),
        };
        sink.dir("blobs")?;
        sink.dir("blobs/sha256")?;
        for (hex, src) in &blobs {
            self.write_blob_source(&mut sink, &format!("blobs/sha256/{hex}"), src)?;
        }
        let idx = json(&OutIndex {
            schema_version: 2,
            media_type: OCI_INDEX,
            manifests: index,
        })?;
        sink.file(INDEX_JSON, idx.len() as u64, &mut &idx[..])?;
        let mj = json(&items)?;
        sink.file(MANIFEST_JSON, mj.len() as u64, &mut &mj[..])?;
        sink.file(OCI_LAYOUT, OCI_LAYOUT_CONTENT.len() as u64, &mut &OCI_LAYOUT_CONTENT[..])?;
        if !repos.is_empty() {
            let rj = json(&repos)?;
            sink.file(REPOSITORIES, rj.len() as u64, &mut &rj[..])?;
        }
        sink.b.into_inner().map_err(|e| ImageError::from_io_chain("write archive", e))
    }

    /// Builds the OCI layout content for `imgs`: blobs (as stored) and index entries.
    fn oci_layout_plan(&self, imgs: &[SaveImage]) -> Result<(BTreeMap<String, BlobSource>, Vec<OutDescriptor>)> {
        let mut blobs: BTreeMap<String, BlobSource> = BTreeMap::new();
        let mut index = Vec::new();
        for img in imgs {
            blobs.insert(img.id.hex().to_owned(), BlobSource::Bytes(img.config.clone()));
            for (l, _) in &img.layers {
                blobs
                    .entry(l.blob.digest.hex().to_owned())
                    .or_insert_with(|| BlobSource::Stored(l.blob.digest.clone(), l.blob.size));
            }
            // Keep the original manifest when it describes exactly the stored blobs.
            let original = match &img.manifest {
                Some(d) => {
                    let bytes = self.content.read_blob(&d.digest, MAX_METADATA_BLOB)?;
                    let m = expect_manifest(&bytes, Some(&d.media_type))?;
                    let same: bool = m.config.digest == img.id
                        && m.layers.len() == img.layers.len()
                        && m.layers.iter().zip(&img.layers).all(|(a, (b, _))| a.digest == b.blob.digest);
                    same.then(|| (bytes, d.media_type.clone()))
                }
                None => None,
            };
            let (mbytes, mtype) = match original {
                Some(x) => x,
                None => {
                    let layers = img
                        .layers
                        .iter()
                        .map(|(l, _)| {
                            Ok(OutDescriptor {
                                media_type: oci_layer_type(&l.blob.media_type)?.into(),
                                digest: l.blob.digest.clone(),
                                size: l.blob.size,
                                annotations: BTreeMap::new(),
                            })
                        })
                        .collect::<Result<Vec<_>>>()?;
                    let m = json(&OutManifest {
                        schema_version: 2,
                        media_type: OCI_MANIFEST,
                        config: OutDescriptor {
                            media_type: OCI_CONFIG.into(),
                            digest: img.id.clone(),
                            size: img.config.len() as u64,
                            annotations: BTreeMap::new(),
                        },
                        layers,
                    })?;
                    (m, OCI_MANIFEST.to_string())
                }
            };
            let md = Digest::of(&mbytes);
            let msize = mbytes.len() as u64;
            blobs.insert(md.hex().to_owned(), BlobSource::Bytes(mbytes));
            if img.tags.is_empty() {
                index.push(OutDescriptor {
                    media_type: mtype.clone(),
                    digest: md.clone(),
                    size: msize,
                    annotations: BTreeMap::new(),
                });
            }
            for t in &img.tags {
                let mut ann = BTreeMap::new();
                ann.insert(ANNOTATION_IMAGE_NAME.to_string(), t.to_string());
                ann.insert(ANNOTATION_REF_NAME.to_string(), t.tag().unwrap_or("latest").to_string());
                index.push(OutDescriptor {
                    media_type: mtype.clone(),
                    digest: md.clone(),
                    size: msize,
                    annotations: ann,
                });
            }
        }
        Ok((blobs, index))
    }

    fn write_oci_layout(&self, sink: &mut dyn Sink, imgs: &[SaveImage]) -> Result<()> {
        let (blobs, index) = self.oci_layout_plan(imgs)?;
        sink.dir("blobs")?;
        sink.dir("blobs/sha256")?;
        for (hex, src) in &blobs {
            self.write_blob_source(sink, &format!("blobs/sha256/{hex}"), src)?;
        }
        let idx = json(&OutIndex {
            schema_version: 2,
            media_type: OCI_INDEX,
            manifests: index,
        })?;
        sink.file(INDEX_JSON, idx.len() as u64, &mut &idx[..])?;
        sink.file(OCI_LAYOUT, OCI_LAYOUT_CONTENT.len() as u64, &mut &OCI_LAYOUT_CONTENT[..])
    }

    /// Writes the images as an OCI image layout tar (`oci-archive`).
    pub fn save_oci<W: Write>(&self, names: &[&str], out: W) -> Result<W> {
        let (_lease, imgs) = self.prepare_save(names)?;
        let mut sink = TarSink {
            b: tar::Builder::new(out),
        };
        self.write_oci_layout(&mut sink, &imgs)?;
        sink.b.into_inner().map_err(|e| ImageError::from_io_chain("write archive", e))
    }

    /// Writes the images as an OCI image layout into directory `dir`, which must be
    /// missing or empty. On error the directory's new content is removed.
    pub fn save_oci_dir(&self, names: &[&str], dir: &Path) -> Result<()> {
        let (_lease, imgs) = self.prepare_save(names)?;
        let created = !dir.exists();
        if !created && fs::read_dir(dir).ctx("read", dir)?.next().is_some() {
            return Err(ImageError::InvalidArgument(format!(
                "{} is not empty",
                dir.display()
            )));
        }
        fs::create_dir_all(dir).ctx("create", dir)?;
        let mut sink = DirSink { root: dir };
        let r = self.write_oci_layout(&mut sink, &imgs);
        if r.is_err() {
            if created {
                let _ = fsutil::remove_all(dir);
            } else if let Ok(rd) = fs::read_dir(dir) {
                for e in rd.flatten() {
                    let _ = fsutil::remove_all(&e.path());
                }
            }
        }
        r
    }
}
