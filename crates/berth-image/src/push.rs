//! Registry manifests for images made here (`import`, `commit`, a docker-archive
//! `load`). Such an image has layer tars and a config but no manifest; Docker pushes it
//! by gzipping every layer, uploading the compressed blobs and a schema2 manifest, and
//! remembering the compressed digest of each layer. [`ImageStore::ensure_manifest`]
//! does the local half of that once: it writes the gzip blobs and the manifest into the
//! content store and records them on the image, which then looks exactly like a pulled
//! one — its layer blobs are the ones the manifest lists. Every later push sends the
//! same bytes (same manifest digest), other images with the same layer reuse the blob
//! instead of compressing again, and a pull of that blob finds it already here.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::content::Committed;
use crate::digest::Digest;
use crate::error::{ImageError, IoContext, Result};
use crate::layer::Compression;
use crate::layer::diff::{self, TreeKind};
use crate::lease::Lease;
use crate::manifest::{self, DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, Descriptor};
use crate::meta::LayerRef;
use crate::pgzip::ParGzWriter;
use crate::store::ImageStore;

/// gzip level of pushed layers. Level 3 of zlib-rs compresses 1.6x faster than the
/// default 6 (Docker's) for blobs about 3% larger (examples/gzip_levels on the bench
/// archive: 80 vs 50 MB/s per core, ratio 2.60 vs 2.69); pushing a local image is
/// compression-bound.
pub const PUSH_GZIP_LEVEL: u32 = 3;

/// Where the uncompressed tar of a layer comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TarSource {
    /// The stored blob (plain or zstd; gzip blobs are reused as they are).
    Blob { digest: Digest, compression: Compression },
    /// The unpacked layer directory (overlay whiteouts turned back into `.wh.` files),
    /// when the blob is not in the store any more.
    Dir(PathBuf),
}

/// What one layer of the manifest needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LayerPlan {
    /// A gzip blob with this DiffID is already stored: list it as it is.
    Reuse(Descriptor),
    /// Compress the tar from `source`; it must hash to `diff_id`.
    Compress { diff_id: Digest, source: TarSource },
}

/// Decides, per layer, whether a stored gzip blob can be listed as it is or which tar
/// to compress. Pure: `gzip_by_diff_id` holds the gzip blobs the store already has by
/// DiffID, `blob_exists` and `dir_of` answer for the store's files.
pub(crate) fn plan_layers(
    layers: &[LayerRef],
    gzip_by_diff_id: &HashMap<Digest, Descriptor>,
    blob_exists: &dyn Fn(&Digest) -> bool,
    dir_of: &dyn Fn(&Digest) -> Option<PathBuf>,
) -> Result<Vec<LayerPlan>> {
    layers
        .iter()
        .map(|l| {
            if let Some(d) = gzip_by_diff_id.get(&l.diff_id) {
                return Ok(LayerPlan::Reuse(Descriptor {
                    media_type: DOCKER_LAYER_GZIP.into(),
                    digest: d.digest.clone(),
                    size: d.size,
                }));
            }
            let source = if blob_exists(&l.blob.digest) {
                TarSource::Blob {
                    digest: l.blob.digest.clone(),
                    compression: manifest::layer_compression(&l.blob.media_type)?,
                }
            } else {
                match dir_of(&l.chain_id) {
                    Some(dir) => TarSource::Dir(dir),
                    None => {
                        return Err(ImageError::LayerNotFound(format!(
                            "{} (neither its blob {} nor its files are in the store)",
                            l.diff_id, l.blob.digest
                        )));
                    }
                }
            };
            Ok(LayerPlan::Compress {
                diff_id: l.diff_id.clone(),
                source,
            })
        })
        .collect()
}

/// True for blobs that can stand in a schema2 manifest as a regular gzip layer.
fn is_plain_gzip(media_type: &str) -> bool {
    media_type == DOCKER_LAYER_GZIP || media_type == manifest::OCI_LAYER_GZIP
}

#[derive(Serialize)]
struct ManifestDescriptor<'a> {
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    size: u64,
    digest: String,
}

#[derive(Serialize)]
struct SchemaV2<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    config: ManifestDescriptor<'a>,
    layers: Vec<ManifestDescriptor<'a>>,
}

/// A schema2 manifest in Docker's layout (Go's `json.MarshalIndent` with three
/// spaces, fields in distribution's order), so it reads like one Docker pushed.
pub(crate) fn schema2_manifest(config: &Descriptor, layers: &[Descriptor]) -> Result<Vec<u8>> {
    let desc = |d: &'_ Descriptor, media_type: &'static str| ManifestDescriptor {
        media_type,
        size: d.size,
        digest: d.digest.to_string(),
    };
    let doc = SchemaV2 {
        schema_version: 2,
        media_type: DOCKER_MANIFEST,
        config: desc(config, DOCKER_CONFIG),
        layers: layers.iter().map(|l| desc(l, DOCKER_LAYER_GZIP)).collect(),
    };
    let mut out = Vec::with_capacity(256 + 200 * layers.len());
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"   ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    doc.serialize(&mut ser)
        .map_err(|e| ImageError::System(format!("encode manifest: {e}")))?;
    Ok(out)
}

/// Passes bytes through while hashing them: the uncompressed tar's digest is the
/// DiffID, checked before the compressed blob is committed.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the gzip of the tar from `source` into `out`, compressed on `threads`
/// threads, and returns the tar's digest. Streaming: memory is a few 1 MiB chunks per
/// thread.
pub(crate) fn gzip_tar(source: &TarSource, blob_path: PathBuf, out: impl Write, threads: usize) -> Result<Digest> {
    let gz = ParGzWriter::new(BufWriter::with_capacity(1 << 20, out), PUSH_GZIP_LEVEL, threads)
        .map_err(|e| ImageError::io("start gzip workers", e))?;
    let mut hw = HashingWriter {
        inner: gz,
        hasher: Sha256::new(),
    };
    match source {
        TarSource::Blob { digest, compression } => {
            let f = File::open(&blob_path).map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    ImageError::BlobNotFound(digest.to_string())
                } else {
                    ImageError::io_path("open", &blob_path, e)
                }
            })?;
            let mut r = crate::layer::decompressed(BufReader::with_capacity(1 << 20, f), *compression)?;
            copy_big(&mut r, &mut hw).map_err(|e| ImageError::from_io_chain(&format!("compress layer blob {digest}"), e))?;
        }
        TarSource::Dir(dir) => {
            diff::write_tree_tar(dir, &mut hw, TreeKind::OverlayUpper).ctx("tar layer", dir)?;
        }
    }
    let HashingWriter { inner: gz, hasher } = hw;
    let mut buf = gz.finish().map_err(|e| ImageError::io("compress layer", e))?;
    buf.flush().map_err(|e| ImageError::io("write compressed layer", e))?;
    Ok(Digest::from_hasher(hasher))
}

/// `io::copy` with a 1 MiB buffer (the default 8 KiB means many small compressor calls).
fn copy_big(r: &mut dyn Read, w: &mut dyn Write) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
        total += n as u64;
    }
}

impl ImageStore {
    /// The registry manifest of image `image` (an image ID), made now if the image has
    /// none (it came from `import`, `commit` or a docker-archive `load`): each layer is
    /// gzipped (from its stored blob, else from its unpacked files; streaming, each
    /// layer on every CPU in 1 MiB chunks, see `pgzip`), the blobs and a Docker schema2 manifest are written to the content
    /// store, and the image record is rewritten to list them (crash-safe: a crash
    /// before that leaves only garbage). Layers whose gzip blob the store already has
    /// (another image pushed or pulled it) are not compressed again. An image that
    /// already has a manifest gets it back untouched.
    pub fn ensure_manifest(&self, image: &Digest) -> Result<Descriptor> {
        let made = self.with_lease(|lease| self.make_manifest(lease, image))?;
        if let Some(desc) = made {
            // The uncompressed blobs the record no longer lists are garbage unless
            // another image uses them; the manifest is recorded whatever happens here.
            if let Err(e) = self.gc() {
                tracing::warn!(%image, err = %e, "garbage collection after making a manifest failed");
            }
            return Ok(desc);
        }
        self.record(&image.to_string())?
            .manifest
            .ok_or_else(|| ImageError::System(format!("image {image} has no manifest after making one")))
    }

    /// Makes and records the manifest; `None` when the image already had one.
    fn make_manifest(&self, lease: &Lease, image: &Digest) -> Result<Option<Descriptor>> {
        let (config_size, plans) = {
            // Lease under the metadata lock: a removal (and its collection) cannot
            // take the blobs and layers away while the compression runs unlocked.
            let meta = self.lock_meta();
            let e = meta
                .images
                .get(image)
                .ok_or_else(|| ImageError::ImageNotFound(image.to_string()))?;
            if e.record.manifest.is_some() {
                return Ok(None);
            }
            lease.protect_blob(image);
            for l in &e.record.layers {
                lease.protect_blob(&l.blob.digest);
                lease.protect_layer(&l.chain_id);
            }
            let wanted: HashSet<&Digest> = e.record.layers.iter().map(|l| &l.diff_id).collect();
            let mut gzip_by_diff_id: HashMap<Digest, Descriptor> = HashMap::new();
            for other in meta.images.values() {
                for l in &other.record.layers {
                    if wanted.contains(&l.diff_id)
                        && is_plain_gzip(&l.blob.media_type)
                        && !gzip_by_diff_id.contains_key(&l.diff_id)
                        && self.content.exists(&l.blob.digest)
                    {
                        lease.protect_blob(&l.blob.digest);
                        gzip_by_diff_id.insert(l.diff_id.clone(), l.blob.clone());
                    }
                }
            }
            let plans = plan_layers(
                &e.record.layers,
                &gzip_by_diff_id,
                &|d| self.content.exists(d),
                &|c| self.layers.exists(c).then(|| self.layers.diff_dir(c)),
            )?;
            (e.config_size, plans)
        };

        let blobs = self.compress_layers(lease, &plans)?;
        let config = Descriptor {
            media_type: DOCKER_CONFIG.into(),
            digest: image.clone(),
            size: config_size,
        };
        let bytes = schema2_manifest(&config, &blobs)?;
        let digest = self.put_blob(lease, &bytes)?;
        let desc = Descriptor {
            media_type: DOCKER_MANIFEST.into(),
            digest,
            size: bytes.len() as u64,
        };
        // The blobs reach the disk before a record refers to them.
        self.sync_data()?;
        let mut meta = self.lock_meta();
        let Some(e) = meta.images.get(image) else {
            return Err(ImageError::ImageNotFound(format!("{image} (removed while its manifest was made)")));
        };
        if e.record.manifest.is_some() {
            // Another call made one meanwhile; ours is garbage.
            return Ok(None);
        }
        let mut record = e.record.clone();
        record.manifest = Some(desc.clone());
        for (l, b) in record.layers.iter_mut().zip(&blobs) {
            l.blob = b.clone();
        }
        meta.save_image(&record)?;
        if let Some(e) = meta.images.get_mut(image) {
            e.record = record;
        }
        Ok(Some(desc))
    }

    /// Compresses the layers of `plans` one after the other, each on every CPU (a
    /// big layer is as fast as many small ones), and returns each layer's gzip blob.
    fn compress_layers(&self, lease: &Lease, plans: &[LayerPlan]) -> Result<Vec<Descriptor>> {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        // The same DiffID twice in one image is compressed once.
        let mut done: HashMap<&Digest, Descriptor> = HashMap::new();
        let mut out = Vec::with_capacity(plans.len());
        for p in plans {
            let d = match p {
                LayerPlan::Reuse(d) => d.clone(),
                LayerPlan::Compress { diff_id, source } => match done.get(diff_id) {
                    Some(d) => d.clone(),
                    None => {
                        let d = self.compress_one(lease, diff_id, source, threads)?;
                        done.insert(diff_id, d.clone());
                        d
                    }
                },
            };
            out.push(d);
        }
        Ok(out)
    }

    /// Gzips one layer into the content store (an anonymous ingest, committed only
    /// when the tar hashed to `diff_id`).
    fn compress_one(&self, lease: &Lease, diff_id: &Digest, source: &TarSource, threads: usize) -> Result<Descriptor> {
        let mut w = self.content.anonymous_writer()?;
        let blob_path = match source {
            TarSource::Blob { digest, .. } => self.content.blob_path(digest),
            TarSource::Dir(d) => d.clone(),
        };
        let actual = gzip_tar(source, blob_path, &mut w, threads)?;
        if actual != *diff_id {
            return Err(ImageError::DigestMismatch {
                what: match source {
                    TarSource::Blob { digest, .. } => format!("layer {diff_id} (stored blob {digest})"),
                    TarSource::Dir(d) => format!(
                        "layer {diff_id} retarred from {} (its blob is gone and the files do not give back the same tar)",
                        d.display()
                    ),
                },
                expected: diff_id.to_string(),
                actual: actual.to_string(),
            });
        }
        let c: Committed = {
            let _visible = self.gc_lock.read().unwrap_or_else(|p| p.into_inner());
            let c = w.commit(None, None)?;
            if c.already_existed {
                lease.protect_blob(&c.digest);
            } else {
                lease.created_blob(&c.digest);
            }
            c
        };
        Ok(Descriptor {
            media_type: DOCKER_LAYER_GZIP.into(),
            digest: c.digest,
            size: c.size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest;

    fn d(s: &[u8]) -> Digest {
        Digest::of(s)
    }

    fn layer(diff: &[u8], blob: &[u8], media_type: &str) -> LayerRef {
        LayerRef {
            diff_id: d(diff),
            chain_id: digest::chain_id(None, &d(diff)),
            blob: Descriptor {
                media_type: media_type.into(),
                digest: d(blob),
                size: blob.len() as u64,
            },
        }
    }

    #[test]
    fn manifest_is_laid_out_like_dockers() {
        let config = Descriptor {
            media_type: DOCKER_CONFIG.into(),
            digest: d(b"config"),
            size: 583,
        };
        let l = Descriptor {
            media_type: manifest::OCI_LAYER_GZIP.into(),
            digest: d(b"layer"),
            size: 2811478,
        };
        let got = String::from_utf8(schema2_manifest(&config, std::slice::from_ref(&l)).unwrap()).unwrap();
        let want = format!(
            "{{\n   \"schemaVersion\": 2,\n   \"mediaType\": \"application/vnd.docker.distribution.manifest.v2+json\",\n   \"config\": {{\n      \"mediaType\": \"application/vnd.docker.container.image.v1+json\",\n      \"size\": 583,\n      \"digest\": \"{}\"\n   }},\n   \"layers\": [\n      {{\n         \"mediaType\": \"application/vnd.docker.image.rootfs.diff.tar.gzip\",\n         \"size\": 2811478,\n         \"digest\": \"{}\"\n      }}\n   ]\n}}",
            config.digest, l.digest
        );
        assert_eq!(got, want);
        // Docker's manifest of a 1-layer imported busybox (a 3-digit config, a 7-digit
        // layer) is 527 bytes: the size `docker push` printed in the fixtures' trace.
        assert_eq!(got.len(), 527);
        // berth's own parser takes it.
        let crate::manifest::ManifestDoc::Manifest(m) = manifest::parse(got.as_bytes(), None).unwrap() else {
            panic!("not a manifest")
        };
        assert_eq!(m.layers[0].digest, l.digest);
        assert_eq!(m.config.size, 583);
    }

    #[test]
    fn plans_reuse_compress_from_blob_or_from_files() {
        let plain = layer(b"t1", b"t1", manifest::OCI_LAYER_TAR);
        let zstd = layer(b"t2", b"z2", manifest::OCI_LAYER_ZSTD);
        let gone = layer(b"t3", b"t3", manifest::OCI_LAYER_TAR);
        let pushed = layer(b"t4", b"t4", manifest::OCI_LAYER_TAR);
        let mut gz = HashMap::new();
        gz.insert(
            d(b"t4"),
            Descriptor {
                media_type: manifest::OCI_LAYER_GZIP.into(),
                digest: d(b"g4"),
                size: 9,
            },
        );
        let present = [d(b"t1"), d(b"z2")];
        let exists = |x: &Digest| present.contains(x);
        let dir = |c: &Digest| Some(PathBuf::from(format!("/layers/{}", c.hex())));
        let plans = plan_layers(&[plain.clone(), zstd.clone(), gone.clone(), pushed], &gz, &exists, &dir).unwrap();
        assert_eq!(
            plans[0],
            LayerPlan::Compress {
                diff_id: d(b"t1"),
                source: TarSource::Blob { digest: d(b"t1"), compression: Compression::None }
            }
        );
        assert_eq!(
            plans[1],
            LayerPlan::Compress {
                diff_id: d(b"t2"),
                source: TarSource::Blob { digest: d(b"z2"), compression: Compression::Zstd }
            }
        );
        assert_eq!(
            plans[2],
            LayerPlan::Compress {
                diff_id: d(b"t3"),
                source: TarSource::Dir(PathBuf::from(format!("/layers/{}", gone.chain_id.hex())))
            }
        );
        // A reused blob is listed with the Docker media type whatever it was stored as.
        assert_eq!(
            plans[3],
            LayerPlan::Reuse(Descriptor { media_type: DOCKER_LAYER_GZIP.into(), digest: d(b"g4"), size: 9 })
        );
        // Neither blob nor files: a clear error.
        let e = plan_layers(&[gone], &HashMap::new(), &exists, &|_| None).unwrap_err();
        assert!(matches!(e, ImageError::LayerNotFound(_)), "{e}");
        assert!(e.to_string().contains("neither its blob"), "{e}");
    }

    #[test]
    fn gzip_tar_hashes_the_uncompressed_stream() {
        let dir = tempfile::tempdir().unwrap();
        let tar_bytes: Vec<u8> = (0..300_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let path = dir.path().join("blob");
        std::fs::write(&path, &tar_bytes).unwrap();
        let mut out = Vec::new();
        let src = TarSource::Blob { digest: d(&tar_bytes), compression: Compression::None };
        let got = gzip_tar(&src, path.clone(), &mut out, 2).unwrap();
        assert_eq!(got, d(&tar_bytes));
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&out[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, tar_bytes);
        // Deterministic: the same input gives the same blob (so the same manifest),
        // whatever the number of threads.
        let mut again = Vec::new();
        gzip_tar(&src, path, &mut again, 1).unwrap();
        assert_eq!(again, out);
        // A zstd blob is decompressed first.
        let zpath = dir.path().join("zblob");
        std::fs::write(&zpath, zstd::encode_all(&tar_bytes[..], 3).unwrap()).unwrap();
        let mut zout = Vec::new();
        let zsrc = TarSource::Blob { digest: d(b"z"), compression: Compression::Zstd };
        assert_eq!(gzip_tar(&zsrc, zpath, &mut zout, 2).unwrap(), d(&tar_bytes));
        assert_eq!(zout, out);
        // A missing blob is a not-found error.
        let e = gzip_tar(&src, dir.path().join("nope"), &mut Vec::new(), 2).unwrap_err();
        assert!(matches!(e, ImageError::BlobNotFound(_)), "{e}");
    }
}
