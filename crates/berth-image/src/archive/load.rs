//! `docker load`: docker-archive tars (the classic `<v1 id>/layer.tar` layout and the
//! OCI-layout-based one Docker 25+ writes) and OCI image layouts (as a tar or a
//! directory), read in one streaming pass.
//!
//! The archive's `manifest.json` or `index.json` may come last (it does in the
//! fixtures), so every file is handled as it streams by: files that look like layers
//! (a tar header, gzip or zstd magic) go straight into a content-store ingest that
//! unpacks them on the worker pool while the stream continues; small files (JSON)
//! stay in memory. Once the stream ends, the manifest says which files are configs and
//! layers, and the images are recorded.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::archive::{INDEX_JSON, MANIFEST_JSON, OCI_LAYOUT, blob_path};
use crate::digest::Digest;
use crate::error::{ImageError, IoContext, Result};
use crate::import::media_type_for;
use crate::ingest::{LayerBlob, PendingLayer};
use crate::lease::Lease;
use crate::manifest::{self, Descriptor, ManifestDoc};
use crate::meta::MAX_METADATA_BLOB;
use crate::reference::Reference;
use crate::store::{ImageStore, NewImage};
use crate::types::{LoadEvent, LoadedImage};

/// One file of the archive.
enum FileEntry<'l> {
    /// Kept in memory (JSON, small files).
    Small(Vec<u8>),
    /// Streamed into the content store and being unpacked.
    Layer(PendingLayer<'l>),
    /// A layer whose unpack finished.
    Unpacked(LayerBlob),
}

/// An entry of docker-archive's `manifest.json`.
#[derive(Debug, Deserialize)]
struct ManifestItem {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

/// Normalises an archive member name; refuses `..` and absolute names.
fn member_name(raw: &[u8]) -> Result<Option<String>> {
    let s = std::str::from_utf8(raw)
        .map_err(|_| ImageError::InvalidArchive("a member name is not UTF-8".into()))?;
    if s.starts_with('/') {
        return Err(ImageError::InvalidArchive(format!("member {s:?} has an absolute path")));
    }
    let mut parts = Vec::new();
    for c in Path::new(s).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::CurDir => {}
            _ => return Err(ImageError::InvalidArchive(format!("member {s:?} escapes the archive"))),
        }
    }
    Ok(if parts.is_empty() { None } else { Some(parts.join("/")) })
}

/// Resolves a link target (relative to the link's directory for symlinks, to the
/// archive root for hardlinks) to a member name.
fn link_target(link: &str, target: &[u8], symlink: bool) -> Result<String> {
    let t = std::str::from_utf8(target)
        .map_err(|_| ImageError::InvalidArchive("a link target is not UTF-8".into()))?;
    let base: PathBuf = if symlink && !t.starts_with('/') {
        Path::new(link).parent().unwrap_or(Path::new("")).to_path_buf()
    } else {
        PathBuf::new()
    };
    let mut parts: Vec<String> = base
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    for c in Path::new(t.trim_start_matches('/')).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir
                if parts.pop().is_none() => {
                    return Err(ImageError::InvalidArchive(format!(
                        "link {link:?} -> {t:?} points outside the archive"
                    )));
                }
            _ => {}
        }
    }
    Ok(parts.join("/"))
}

/// True when the first bytes of a member look like a layer (tar or compressed).
fn looks_like_layer(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || (head.len() >= 262 && &head[257..262] == b"ustar")
}

/// Members of an archive, filled from a tar stream or read lazily from a directory.
struct Members<'l> {
    files: HashMap<String, FileEntry<'l>>,
    aliases: HashMap<String, String>,
    dir: Option<PathBuf>,
    /// `docker load --platform`: the one platform of multi-platform images to load
    /// (normalised `os/arch[/variant]`); None loads every platform the archive holds.
    platform: Option<String>,
}

impl<'l> Members<'l> {
    fn resolve_name(&self, name: &str) -> String {
        let mut n = name.to_owned();
        // Bounded: alias chains in real archives are one hop.
        for _ in 0..16 {
            match self.aliases.get(&n) {
                Some(t) => n = t.clone(),
                None => break,
            }
        }
        n
    }

    fn dir_path(&self, name: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(name))
    }

    /// Whether the archive (or directory) holds member `name`.
    fn has(&self, name: &str) -> bool {
        let n = self.resolve_name(name);
        self.files.contains_key(&n) || self.dir_path(&n).is_some_and(|p| p.exists())
    }

    /// A small member's bytes.
    fn small(&mut self, name: &str) -> Result<Option<Vec<u8>>> {
        let n = self.resolve_name(name);
        if let Some(FileEntry::Small(b)) = self.files.get(&n) {
            return Ok(Some(b.clone()));
        }
        if self.files.contains_key(&n) {
            return Err(ImageError::InvalidArchive(format!("{name} is not a JSON document")));
        }
        let Some(p) = self.dir_path(&n) else { return Ok(None) };
        match File::open(&p) {
            Ok(f) => {
                let mut b = Vec::new();
                f.take(MAX_METADATA_BLOB + 1).read_to_end(&mut b).ctx("read", &p)?;
                if b.len() as u64 > MAX_METADATA_BLOB {
                    return Err(ImageError::InvalidArchive(format!("{name} is too large")));
                }
                self.files.insert(n, FileEntry::Small(b.clone()));
                Ok(Some(b))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ImageError::io_path("open", &p, e)),
        }
    }

    /// A layer member, unpacked (waiting for its unpack if needed).
    fn layer(&mut self, store: &ImageStore, lease: &'l Lease, name: &str) -> Result<LayerBlob> {
        let n = self.resolve_name(name);
        match self.files.remove(&n) {
            Some(FileEntry::Unpacked(b)) => {
                self.files.insert(n, FileEntry::Unpacked(b.clone()));
                Ok(b)
            }
            Some(FileEntry::Layer(p)) => {
                let b = p.wait()?;
                self.files.insert(n, FileEntry::Unpacked(b.clone()));
                Ok(b)
            }
            Some(FileEntry::Small(bytes)) => {
                // Small layers (an empty layer is 1 KiB of zeros) stayed in memory.
                let lw = store.anonymous_layer_writer(lease)?;
                let b = crate::ingest::copy_layer(&bytes[..], lw)?;
                self.files.insert(n, FileEntry::Unpacked(b.clone()));
                Ok(b)
            }
            None => {
                let Some(p) = self.dir_path(&n) else {
                    return Err(ImageError::InvalidArchive(format!(
                        "layer {name} is missing from the archive"
                    )));
                };
                let f = File::open(&p).map_err(|e| {
                    if e.kind() == io::ErrorKind::NotFound {
                        ImageError::InvalidArchive(format!("layer {name} is missing from the layout"))
                    } else {
                        ImageError::io_path("open", &p, e)
                    }
                })?;
                let lw = store.anonymous_layer_writer(lease)?;
                let b = crate::ingest::copy_layer(io::BufReader::with_capacity(1 << 20, f), lw)?;
                self.files.insert(n, FileEntry::Unpacked(b.clone()));
                Ok(b)
            }
        }
    }

    /// For a directory layout: start ingesting every layer blob of `manifests` first,
    /// so that their unpacks run in parallel.
    fn prefetch_dir_layers(&mut self, store: &ImageStore, lease: &'l Lease, names: &[String]) -> Result<()> {
        if self.dir.is_none() {
            return Ok(());
        }
        for name in names {
            let n = self.resolve_name(name);
            if self.files.contains_key(&n) {
                continue;
            }
            let Some(p) = self.dir_path(&n) else { continue };
            let Ok(f) = File::open(&p) else { continue };
            let mut lw = store.anonymous_layer_writer(lease)?;
            crate::ingest::feed(f, &mut lw)?;
            self.files.insert(n, FileEntry::Layer(lw.commit()?));
        }
        Ok(())
    }
}

/// Members named `blobs/sha256/<hex>` must hash to that name.
fn check_named_digest(name: &str, actual: &Digest) -> Result<()> {
    if let Some(hex) = name.strip_prefix("blobs/sha256/")
        && let Ok(want) = Digest::from_hex(hex)
            && want != *actual {
                return Err(ImageError::DigestMismatch {
                    what: name.to_owned(),
                    expected: want.to_string(),
                    actual: actual.to_string(),
                });
            }
    Ok(())
}

fn layer_descriptor(b: &LayerBlob) -> Descriptor {
    Descriptor {
        media_type: media_type_for(b.compression).into(),
        digest: b.blob.digest.clone(),
        size: b.blob.size,
    }
}

impl ImageStore {
    /// `docker load`: reads a docker-archive or an OCI layout tar from `input`,
    /// records its images and tags, and reports each as Docker does through
    /// `progress`. Nothing is kept if the archive is bad.
    pub fn load<R: Read>(
        &self,
        input: R,
        progress: &mut dyn FnMut(&LoadEvent),
    ) -> Result<Vec<LoadedImage>> {
        self.load_platform(input, None, progress)
    }

    /// [`load`](Self::load) of one platform (`os/arch[/variant]`) of the multi-platform
    /// images an OCI layout holds (`docker load --platform`); without one, every
    /// platform whose content the archive holds is loaded and kept under the image's
    /// names (see [`crate::meta::PlatformSet`]).
    pub fn load_platform<R: Read>(
        &self,
        input: R,
        platform: Option<&str>,
        progress: &mut dyn FnMut(&LoadEvent),
    ) -> Result<Vec<LoadedImage>> {
        self.with_lease(|lease| {
            let mut members = Members {
                files: HashMap::new(),
                aliases: HashMap::new(),
                dir: None,
                platform: platform.map(normalise_platform),
            };
            self.read_members(input, lease, &mut members)?;
            self.record_members(lease, &mut members, progress)
        })
    }

    /// Loads an OCI image layout directory (or a docker-archive extracted into one).
    pub fn load_dir(&self, dir: &Path, progress: &mut dyn FnMut(&LoadEvent)) -> Result<Vec<LoadedImage>> {
        if !dir.is_dir() {
            return Err(ImageError::InvalidArgument(format!("{} is not a directory", dir.display())));
        }
        self.with_lease(|lease| {
            let mut members = Members {
                files: HashMap::new(),
                aliases: HashMap::new(),
                dir: Some(dir.to_path_buf()),
                platform: None,
            };
            self.record_members(lease, &mut members, progress)
        })
    }

    fn read_members<'l, R: Read>(&self, input: R, lease: &'l Lease, m: &mut Members<'l>) -> Result<()> {
        let mut ar = tar::Archive::new(input);
        let entries = ar
            .entries()
            .map_err(|e| ImageError::from_io_chain("read archive", e))?;
        let mut seen_any = false;
        for entry in entries {
            let mut entry = entry.map_err(|e| ImageError::from_io_chain("read archive", e))?;
            seen_any = true;
            let Some(name) = member_name(&entry.path_bytes())? else { continue };
            let kind = entry.header().entry_type();
            match kind {
                tar::EntryType::Directory
                | tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader => continue,
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = entry.link_name_bytes().ok_or_else(|| {
                        ImageError::InvalidArchive(format!("link {name} has no target"))
                    })?;
                    let t = link_target(&name, &target, kind == tar::EntryType::Symlink)?;
                    m.aliases.insert(name, t);
                    continue;
                }
                tar::EntryType::Regular | tar::EntryType::Continuous => {}
                other => {
                    return Err(ImageError::InvalidArchive(format!(
                        "member {name} has unsupported type {other:?}"
                    )));
                }
            }
            let size = entry.size();
            let mut head = Vec::with_capacity(512);
            (&mut entry)
                .take(512)
                .read_to_end(&mut head)
                .map_err(|e| ImageError::from_io_chain(&format!("read {name}"), e))?;
            if looks_like_layer(&head) {
                let mut lw = self.anonymous_layer_writer(lease)?;
                lw.write_all(&head)
                    .map_err(|e| ImageError::from_io_chain(&format!("read {name}"), e))?;
                crate::ingest::feed(&mut entry, &mut lw)?;
                m.files.insert(name, FileEntry::Layer(lw.commit()?));
            } else if size <= MAX_METADATA_BLOB {
                let mut data = head;
                entry
                    .read_to_end(&mut data)
                    .map_err(|e| ImageError::from_io_chain(&format!("read {name}"), e))?;
                m.files.insert(name, FileEntry::Small(data));
            } else {
                return Err(ImageError::InvalidArchive(format!(
                    "member {name} is neither a layer nor a metadata file"
                )));
            }
        }
        if !seen_any {
            return Err(ImageError::InvalidArchive("the archive is empty".into()));
        }
        Ok(())
    }

    fn record_members<'l>(
        &self,
        lease: &'l Lease,
        m: &mut Members<'l>,
        progress: &mut dyn FnMut(&LoadEvent),
    ) -> Result<Vec<LoadedImage>> {
        if let Some(bytes) = m.small(MANIFEST_JSON)? {
            return self.record_docker_archive(lease, m, &bytes, progress);
        }
        if let Some(bytes) = m.small(INDEX_JSON)? {
            return self.record_oci_layout(lease, m, &bytes, progress);
        }
        Err(ImageError::InvalidArchive(
            "neither manifest.json nor index.json found: not a docker-archive or an OCI layout".into(),
        ))
    }

    fn record_docker_archive<'l>(
        &self,
        lease: &'l Lease,
        m: &mut Members<'l>,
        manifest_bytes: &[u8],
        progress: &mut dyn FnMut(&LoadEvent),
    ) -> Result<Vec<LoadedImage>> {
        let items: Vec<ManifestItem> = serde_json::from_slice(manifest_bytes)
            .map_err(|e| ImageError::InvalidArchive(format!("manifest.json: {e}")))?;
        if items.is_empty() {
            return Err(ImageError::InvalidArchive("manifest.json lists no image".into()));
        }
        // Parse every name before storing anything.
        let mut tags_per_item = Vec::new();
        for it in &items {
            let tags = it
                .repo_tags
                .clone()
                .unwrap_or_default()
                .iter()
                .map(|t| Reference::parse_tagged(t))
                .collect::<Result<Vec<_>>>()?;
            tags_per_item.push(tags);
        }
        let all_layers: Vec<String> = items.iter().flat_map(|i| i.layers.clone()).collect();
        m.prefetch_dir_layers(self, lease, &all_layers)?;
        let mut out = Vec::new();
        for (it, tags) in items.iter().zip(tags_per_item) {
            let config = m.small(&it.config)?.ok_or_else(|| {
                ImageError::InvalidArchive(format!("config {} is missing from the archive", it.config))
            })?;
            check_named_digest(&it.config, &Digest::of(&config))?;
            let mut layers = Vec::new();
            for l in &it.layers {
                let b = m.layer(self, lease, l)?;
                check_named_digest(l, &b.blob.digest)?;
                layers.push(layer_descriptor(&b));
            }
            let (id, events) = self.record_image(
                lease,
                NewImage {
                    config: &config,
                    layers,
                    tags: tags.clone(),
                    ..Default::default()
                },
            )?;
            out.push(self.report(id, &tags, events, progress));
        }
        Ok(out)
    }

    fn record_oci_layout<'l>(
        &self,
        lease: &'l Lease,
        m: &mut Members<'l>,
        index_bytes: &[u8],
        progress: &mut dyn FnMut(&LoadEvent),
    ) -> Result<Vec<LoadedImage>> {
        if m.small(OCI_LAYOUT)?.is_none() {
            return Err(ImageError::InvalidArchive("index.json without an oci-layout file".into()));
        }
        let ManifestDoc::Index { entries, .. } = manifest::parse(index_bytes, Some(manifest::OCI_INDEX))? else {
            return Err(ImageError::InvalidArchive("index.json is not an image index".into()));
        };
        // Resolve every entry to (manifest descriptor, manifest bytes, names) first; a
        // multi-platform entry to each of its platforms.
        let mut images: Vec<(Descriptor, Vec<u8>, manifest::Manifest, Vec<Reference>, Option<crate::store::Variant>)> = Vec::new();
        for e in &entries {
            let expanded = self.expand_layout_entry(m, &e.descriptor)?;
            let mut names = Vec::new();
            if let Some(n) = &e.image_name {
                names.push(Reference::parse_tagged(n)?);
            } else if let Some(n) = &e.ref_name {
                // A full reference (skopeo writes `repo:tag`); a bare tag names nothing.
                if n.contains('/') || n.contains(':') || n.contains('@') {
                    names.push(Reference::parse_tagged(n)?);
                }
            }
            for (desc, bytes, man, variant) in expanded {
                match images.iter_mut().find(|(d, ..)| d.digest == desc.digest) {
                    Some((_, _, _, existing, _)) => existing.extend(names.clone()),
                    None => images.push((desc, bytes, man, names.clone(), variant)),
                }
            }
        }
        let names: Vec<String> = images
            .iter()
            .flat_map(|(_, _, man, _, _)| man.layers.iter().map(|l| blob_path(&l.digest)))
            .collect();
        m.prefetch_dir_layers(self, lease, &names)?;
        let mut out = Vec::new();
        for (desc, bytes, man, tags, variant) in images {
            let config = self.layout_blob(m, &man.config)?;
            let mut layers = Vec::new();
            for l in &man.layers {
                let b = m.layer(self, lease, &blob_path(&l.digest))?;
                if b.blob.digest != l.digest {
                    return Err(ImageError::DigestMismatch {
                        what: format!("layer blob {}", blob_path(&l.digest)),
                        expected: l.digest.to_string(),
                        actual: b.blob.digest.to_string(),
                    });
                }
                if b.blob.size != l.size {
                    return Err(ImageError::SizeMismatch {
                        what: format!("layer blob {}", l.digest),
                        expected: l.size,
                        actual: b.blob.size,
                    });
                }
                layers.push(l.clone());
            }
            let (id, events) = self.record_image_variant(
                lease,
                NewImage {
                    config: &config,
                    manifest: Some((&bytes, &desc.media_type)),
                    layers,
                    tags: tags.clone(),
                    ..Default::default()
                },
                variant.as_ref(),
            )?;
            out.push(self.report(id, &tags, events, progress));
        }
        Ok(out)
    }

    /// An entry of index.json as the images to load: an image manifest as itself; an
    /// index as each platform it lists whose content is in the archive (or only the
    /// platform asked for), each tagged with its place in the index.
    #[allow(clippy::type_complexity)]
    fn expand_layout_entry(&self, m: &mut Members<'_>, desc: &Descriptor) -> Result<Vec<(Descriptor, Vec<u8>, manifest::Manifest, Option<crate::store::Variant>)>> {
        let bytes = self.layout_blob(m, desc)?;
        let entries = match manifest::parse(&bytes, Some(&desc.media_type))? {
            ManifestDoc::Manifest(man) => return Ok(vec![(desc.clone(), bytes, man, None)]),
            ManifestDoc::Index { entries, .. } => entries,
        };
        let host = normalise_platform(&format!("linux/{}", manifest::host_architecture()));
        let mut out = Vec::new();
        for e in &entries {
            // Attestations and other artifacts have no (or an unknown) platform.
            let (Some(os), Some(arch)) = (&e.os, &e.architecture) else { continue };
            if os == "unknown" {
                continue;
            }
            let p = normalise_platform(&match &e.variant {
                Some(v) => format!("{os}/{arch}/{v}"),
                None => format!("{os}/{arch}"),
            });
            match &m.platform {
                Some(want) if !platform_satisfies(want, &p) => continue,
                Some(_) => {}
                // Without --platform: the platforms whose content came along.
                None if !m.has(&blob_path(&e.descriptor.digest)) => continue,
                None => {}
            }
            let (d, b, man) = self.resolve_layout_manifest(m, &e.descriptor, 1)?;
            if m.platform.is_none() && !man.layers.iter().all(|l| m.has(&blob_path(&l.digest))) {
                continue;
            }
            out.push((d, b, man, Some(crate::store::Variant { index: desc.digest.clone(), platform: p, host: host.clone() })));
        }
        if out.is_empty() {
            return Err(ImageError::InvalidManifest(match &m.platform {
                Some(p) => format!("no matching manifest for {p} in the manifest list entries"),
                None => "no platform of the multi-platform image is complete in the archive".into(),
            }));
        }
        Ok(out)
    }

    /// Follows a descriptor of an index to an image manifest for this platform.
    fn resolve_layout_manifest(
        &self,
        m: &mut Members<'_>,
        desc: &Descriptor,
        depth: usize,
    ) -> Result<(Descriptor, Vec<u8>, manifest::Manifest)> {
        if depth > 4 {
            return Err(ImageError::InvalidManifest("indexes nested too deeply".into()));
        }
        let bytes = self.layout_blob(m, desc)?;
        match manifest::parse(&bytes, Some(&desc.media_type))? {
            ManifestDoc::Manifest(man) => Ok((desc.clone(), bytes, man)),
            ManifestDoc::Index { entries, .. } => {
                let e = match &m.platform {
                    Some(p) => {
                        let parts: Vec<&str> = p.split('/').collect();
                        manifest::select_platform(&entries, parts[0], parts.get(1).copied().unwrap_or(""))?
                    }
                    None => manifest::select_platform(&entries, "linux", manifest::host_architecture())?,
                };
                self.resolve_layout_manifest(m, &e.descriptor.clone(), depth + 1)
            }
        }
    }

    /// A small blob of a layout, checked against its descriptor.
    fn layout_blob(&self, m: &mut Members<'_>, desc: &Descriptor) -> Result<Vec<u8>> {
        let name = blob_path(&desc.digest);
        let bytes = m.small(&name)?.ok_or_else(|| {
            ImageError::InvalidArchive(format!("blob {name} is missing from the layout"))
        })?;
        let actual = Digest::of(&bytes);
        if actual != desc.digest {
            return Err(ImageError::DigestMismatch {
                what: name,
                expected: desc.digest.to_string(),
                actual: actual.to_string(),
            });
        }
        if bytes.len() as u64 != desc.size {
            return Err(ImageError::SizeMismatch {
                what: name,
                expected: desc.size,
                actual: bytes.len() as u64,
            });
        }
        Ok(bytes)
    }

    fn report(
        &self,
        id: Digest,
        tags: &[Reference],
        events: Vec<LoadEvent>,
        progress: &mut dyn FnMut(&LoadEvent),
    ) -> LoadedImage {
        for e in &events {
            progress(e);
        }
        let familiar: Vec<String> = tags.iter().map(Reference::familiar).collect();
        if familiar.is_empty() {
            progress(&LoadEvent::LoadedId(id.clone()));
        }
        for t in &familiar {
            progress(&LoadEvent::LoadedTag(t.clone()));
        }
        LoadedImage { id, tags: familiar }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names() {
        assert_eq!(member_name(b"./manifest.json").unwrap().as_deref(), Some("manifest.json"));
        assert_eq!(member_name(b"a/b/").unwrap().as_deref(), Some("a/b"));
        assert_eq!(member_name(b"./").unwrap(), None);
        assert!(member_name(b"../x").is_err());
        assert!(member_name(b"/etc/passwd").is_err());
    }

    #[test]
    fn link_targets() {
        assert_eq!(link_target("b/layer.tar", b"../a/layer.tar", true).unwrap(), "a/layer.tar");
        assert_eq!(link_target("b/layer.tar", b"a/layer.tar", false).unwrap(), "a/layer.tar");
        assert!(link_target("b/layer.tar", b"../../x", true).is_err());
    }

    #[test]
    fn layer_sniffing() {
        let mut tar_head = vec![0u8; 512];
        tar_head[257..262].copy_from_slice(b"ustar");
        assert!(looks_like_layer(&tar_head));
        assert!(looks_like_layer(&[0x1f, 0x8b, 8, 0]));
        assert!(looks_like_layer(&[0x28, 0xb5, 0x2f, 0xfd]));
        assert!(!looks_like_layer(b"{\"schemaVersion\":2}"));
        assert!(!looks_like_layer(&[0u8; 512]));
    }
}

/// `os/arch[/variant]` as the registry client keys platforms: lower case, Go's
/// architecture names, arm64's default variant `v8`, arm's `v7`.
pub(crate) fn normalise_platform(p: &str) -> String {
    let parts: Vec<String> = p.split('/').map(|x| x.to_ascii_lowercase()).collect();
    let os = parts.first().cloned().unwrap_or_default();
    let arch = match parts.get(1).map(String::as_str).unwrap_or("") {
        "x86_64" | "x86-64" => "amd64".to_string(),
        "aarch64" => "arm64".to_string(),
        "i386" | "i686" => "386".to_string(),
        a => a.to_string(),
    };
    let variant = parts.get(2).cloned().or_else(|| match arch.as_str() {
        "arm64" => Some("v8".into()),
        "arm" => Some("v7".into()),
        _ => None,
    });
    match variant {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    }
}

/// A wanted platform is satisfied by a kept one (the variant matters when named).
fn platform_satisfies(want: &str, have: &str) -> bool {
    let w: Vec<&str> = want.split('/').collect();
    let h: Vec<&str> = have.split('/').collect();
    w.len() >= 2 && h.len() >= 2 && w[0] == h[0] && w[1] == h[1] && (w.len() < 3 || h.get(2) == w.get(2))
}
