//! The registry's filesystem storage.
//!
//! ```text
//! ROOT/
//!   lock                                  flock: shared while serving, exclusive for GC
//!   blobs/<algo>/<hex>                    every blob (layers, configs, manifests) by digest
//!   uploads/<uuid>/repo                   the repository an upload session belongs to
//!   uploads/<uuid>/data                   the bytes received so far
//!   repositories/<name>/_blobs/<algo>/<hex>       this repository may serve this blob
//!   repositories/<name>/_manifests/<algo>/<hex>   a manifest of this repository (holds its media type)
//!   repositories/<name>/_tags/<tag>               holds the digest the tag points at
//! ```
//!
//! A blob becomes visible only by a rename of a fully received, digest-checked upload;
//! every small file is written with write-temp + fsync + rename. Repository names and
//! tags were validated by [`crate::reference`], so they are safe relative paths, and
//! their components never start with `_`, so they cannot collide with `_blobs` & co.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::digest::{Algorithm, Digest, Hasher};
use crate::fsutil::{atomic_write, durable_rename, random_hex};
use crate::manifest::{self, Manifest};
use crate::reference::{is_valid_tag, validate_repository};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("upload unknown")]
    UploadUnknown,
    #[error("digest mismatch: client said {expected}, content is {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("manifest invalid: {0}")]
    ManifestInvalid(String),
    #[error("manifest references unknown blob {0}")]
    ManifestBlobUnknown(Digest),
    #[error("repository name not known to registry")]
    NameUnknown,
    #[error("invalid tag {0:?}")]
    TagInvalid(String),
}

/// A manifest read back from storage.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// Filesystem storage rooted at one directory.
#[derive(Debug, Clone)]
pub struct Storage {
    root: PathBuf,
}

impl Storage {
    /// Opens (creating if needed) the storage at `root`.
    pub fn open(root: &Path) -> io::Result<Storage> {
        for d in ["blobs", "uploads", "repositories"] {
            fs::create_dir_all(root.join(d))?;
        }
        Ok(Storage {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn lock_path(&self) -> PathBuf {
        self.root.join("lock")
    }

    pub(crate) fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(d.algorithm().as_str())
            .join(d.hex())
    }

    fn repo_dir(&self, repo: &str) -> PathBuf {
        debug_assert!(validate_repository(repo).is_ok());
        self.root.join("repositories").join(repo)
    }

    fn blob_link(&self, repo: &str, d: &Digest) -> PathBuf {
        self.repo_dir(repo)
            .join("_blobs")
            .join(d.algorithm().as_str())
            .join(d.hex())
    }

    fn manifest_link(&self, repo: &str, d: &Digest) -> PathBuf {
        self.repo_dir(repo)
            .join("_manifests")
            .join(d.algorithm().as_str())
            .join(d.hex())
    }

    fn tag_path(&self, repo: &str, tag: &str) -> PathBuf {
        self.repo_dir(repo).join("_tags").join(tag)
    }

    /// `repositories/<name>/_referrers/<algo>/<subject hex>/`: one file per manifest
    /// of the repository whose `subject` is that digest, holding its descriptor.
    fn referrers_dir(&self, repo: &str, subject: &Digest) -> PathBuf {
        self.repo_dir(repo).join("_referrers").join(subject.algorithm().as_str()).join(subject.hex())
    }

    fn referrer_file(&self, repo: &str, subject: &Digest, referrer: &Digest) -> PathBuf {
        self.referrers_dir(repo, subject).join(format!("{}-{}", referrer.algorithm().as_str(), referrer.hex()))
    }

    /// The OCI 1.1 referrers of `subject` in `repo` (descriptors with `artifactType`
    /// and `annotations`), sorted by digest; `artifact_type` filters them.
    pub fn referrers(&self, repo: &str, subject: &Digest, artifact_type: Option<&str>) -> io::Result<Vec<serde_json::Value>> {
        let dir = self.referrers_dir(repo, subject);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for e in entries {
            let e = e?;
            let Ok(desc) = serde_json::from_slice::<serde_json::Value>(&fs::read(e.path())?) else { continue };
            // Only manifests still in the repository.
            let Some(d) = desc.get("digest").and_then(|d| d.as_str()).and_then(|d| d.parse::<Digest>().ok()) else { continue };
            if !self.manifest_link(repo, &d).exists() {
                continue;
            }
            if artifact_type.is_some_and(|t| desc.get("artifactType").and_then(|a| a.as_str()) != Some(t)) {
                continue;
            }
            out.push(desc);
        }
        out.sort_by(|a, b| a["digest"].as_str().cmp(&b["digest"].as_str()));
        Ok(out)
    }

    /// Records `referrer` (a manifest of `repo`, `bytes`) as a referrer of its subject.
    fn add_referrer(&self, repo: &str, subject: &Digest, referrer: &Digest, media_type: &str, bytes: &[u8]) -> io::Result<()> {
        let v: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
        // The artifact type: the manifest's own, else (an image manifest) its config's.
        let artifact_type = v
            .get("artifactType")
            .and_then(|a| a.as_str())
            .or_else(|| v.get("config").and_then(|c| c.get("mediaType")).and_then(|m| m.as_str()))
            .map(str::to_string);
        let mut desc = serde_json::json!({"mediaType": media_type, "digest": referrer.to_string(), "size": bytes.len()});
        if let Some(t) = artifact_type {
            desc["artifactType"] = serde_json::Value::String(t);
        }
        if let Some(a) = v.get("annotations").filter(|a| a.as_object().is_some_and(|o| !o.is_empty())) {
            desc["annotations"] = a.clone();
        }
        atomic_write(&self.referrer_file(repo, subject, referrer), desc.to_string().as_bytes())
    }

    /// Whether the repository has anything at all (a blob, a manifest or a tag).
    pub fn repository_exists(&self, repo: &str) -> bool {
        let dir = self.repo_dir(repo);
        ["_blobs", "_manifests", "_tags"]
            .iter()
            .any(|d| dir.join(d).is_dir())
    }

    // ----- blobs -----

    /// The size of a blob this repository may serve, if any. A manifest of the repository
    /// is also a blob of it (clients fetch manifests by digest through /blobs/ too).
    pub fn blob_size(&self, repo: &str, d: &Digest) -> io::Result<Option<u64>> {
        if !self.blob_link(repo, d).exists() && !self.manifest_link(repo, d).exists() {
            return Ok(None);
        }
        match fs::metadata(self.blob_path(d)) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether the blob exists in the registry at all (any repository).
    pub fn blob_exists_globally(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Makes an existing blob part of `repo` (the commit of a cross-repository mount).
    pub fn link_blob(&self, repo: &str, d: &Digest) -> io::Result<()> {
        let link = self.blob_link(repo, d);
        if link.exists() {
            return Ok(());
        }
        atomic_write(&link, b"")
    }

    pub fn unlink_blob(&self, repo: &str, d: &Digest) -> io::Result<bool> {
        match fs::remove_file(self.blob_link(repo, d)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Opens a blob of `repo` for reading, with its size.
    pub fn open_blob(&self, repo: &str, d: &Digest) -> io::Result<Option<(File, u64)>> {
        if self.blob_size(repo, d)?.is_none() {
            return Ok(None);
        }
        match File::open(self.blob_path(d)) {
            Ok(f) => {
                let len = f.metadata()?.len();
                Ok(Some((f, len)))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    // ----- uploads -----

    fn upload_dir(&self, uuid: &str) -> PathBuf {
        self.root.join("uploads").join(uuid)
    }

    /// The file an upload's bytes are appended to.
    pub fn upload_data_path(&self, uuid: &str) -> PathBuf {
        self.upload_dir(uuid).join("data")
    }

    /// Starts an upload session for `repo`; returns its id.
    pub fn create_upload(&self, repo: &str) -> io::Result<String> {
        let uuid = random_hex(16);
        let dir = self.upload_dir(&uuid);
        fs::create_dir_all(&dir)?;
        File::create(dir.join("data"))?;
        // The repo file is written last: a session without it is not a session.
        atomic_write(&dir.join("repo"), repo.as_bytes())?;
        Ok(uuid)
    }

    /// The size received so far if `uuid` is a live session of `repo`.
    pub fn upload_size(&self, repo: &str, uuid: &str) -> io::Result<Option<u64>> {
        if !is_upload_id(uuid) {
            return Ok(None);
        }
        let dir = self.upload_dir(uuid);
        match fs::read_to_string(dir.join("repo")) {
            Ok(owner) if owner == repo => {}
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
        match fs::metadata(dir.join("data")) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn cancel_upload(&self, repo: &str, uuid: &str) -> io::Result<bool> {
        if self.upload_size(repo, uuid)?.is_none() {
            return Ok(false);
        }
        fs::remove_dir_all(self.upload_dir(uuid))?;
        Ok(true)
    }

    /// Completes an upload: checks the data against `expected` (using `computed` when the
    /// caller hashed the bytes as they arrived, else hashing the file), then moves the
    /// data into `blobs/` and links it into `repo`. On a mismatch the session is removed
    /// and nothing becomes visible.
    pub fn commit_upload(
        &self,
        repo: &str,
        uuid: &str,
        expected: &Digest,
        computed: Option<Digest>,
    ) -> Result<u64, StorageError> {
        let size = self
            .upload_size(repo, uuid)?
            .ok_or(StorageError::UploadUnknown)?;
        let data = self.upload_data_path(uuid);
        let actual = match computed {
            Some(d) if d.algorithm() == expected.algorithm() => d,
            _ => hash_file(&data, expected.algorithm())?,
        };
        if &actual != expected {
            fs::remove_dir_all(self.upload_dir(uuid))?;
            return Err(StorageError::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        File::open(&data)?.sync_all()?;
        let target = self.blob_path(expected);
        if target.exists() {
            // Same digest, same bytes: keep the blob already there.
            fs::remove_dir_all(self.upload_dir(uuid))?;
        } else {
            durable_rename(&data, &target)?;
            fs::remove_dir_all(self.upload_dir(uuid))?;
        }
        self.link_blob(repo, expected)?;
        Ok(size)
    }

    // ----- manifests and tags -----

    /// Stores a manifest pushed to `repo` (by `tag`, or by digest when `tag` is None).
    /// Checks that it parses, that its media type is one we serve, and that everything
    /// it references is already in the repository.
    pub fn put_manifest(
        &self,
        repo: &str,
        bytes: &[u8],
        content_type: Option<&str>,
        tag: Option<&str>,
        algorithm: Algorithm,
    ) -> Result<Digest, StorageError> {
        if let Some(t) = tag
            && !is_valid_tag(t)
        {
            return Err(StorageError::TagInvalid(t.to_string()));
        }
        let (media_type, parsed) = manifest::parse(content_type, bytes)
            .map_err(|e| StorageError::ManifestInvalid(e.to_string()))?;
        for d in parsed.references() {
            // Foreign layers live elsewhere (their `urls`); everything else must be here.
            if !d.urls.is_empty() {
                continue;
            }
            let present = match &parsed {
                Manifest::Index(_) => self.manifest_link(repo, &d.digest).exists(),
                Manifest::Image(_) => self.blob_size(repo, &d.digest)?.is_some(),
            };
            let is_subject = match &parsed {
                Manifest::Image(m) => m.subject.as_ref() == Some(d),
                Manifest::Index(i) => i.subject.as_ref() == Some(d),
            };
            // A referrer may arrive before its subject (OCI 1.1), so the subject is not checked.
            if !present && !is_subject {
                return Err(StorageError::ManifestBlobUnknown(d.digest.clone()));
            }
        }
        let mut h = Hasher::new(algorithm);
        h.update(bytes);
        let digest = h.finish();
        let blob = self.blob_path(&digest);
        if !blob.exists() {
            atomic_write(&blob, bytes)?;
        }
        atomic_write(&self.manifest_link(repo, &digest), media_type.as_bytes())?;
        let subject = match &parsed {
            Manifest::Image(m) => m.subject.as_ref(),
            Manifest::Index(i) => i.subject.as_ref(),
        };
        if let Some(s) = subject {
            self.add_referrer(repo, &s.digest, &digest, &media_type, bytes)?;
        }
        if let Some(t) = tag {
            atomic_write(&self.tag_path(repo, t), digest.to_string().as_bytes())?;
        }
        Ok(digest)
    }

    /// Stores a manifest the pull-through cache fetched (already checked against its
    /// digest by the client): its blobs are fetched when asked for, so they are not
    /// required here.
    pub fn cache_manifest(&self, repo: &str, bytes: &[u8], media_type: &str, digest: &Digest, tag: Option<&str>) -> Result<(), StorageError> {
        let mut h = Hasher::new(digest.algorithm());
        h.update(bytes);
        let actual = h.finish();
        if &actual != digest {
            return Err(StorageError::DigestMismatch { expected: digest.clone(), actual });
        }
        let blob = self.blob_path(digest);
        if !blob.exists() {
            atomic_write(&blob, bytes)?;
        }
        let link = self.manifest_link(repo, digest);
        if !link.exists() {
            atomic_write(&link, media_type.as_bytes())?;
            if let Ok((_, m)) = manifest::parse(Some(media_type), bytes) {
                let subject = match &m {
                    Manifest::Image(m) => m.subject.as_ref(),
                    Manifest::Index(i) => i.subject.as_ref(),
                };
                if let Some(s) = subject {
                    self.add_referrer(repo, &s.digest, digest, media_type, bytes)?;
                }
            }
        }
        if let Some(t) = tag
            && self.resolve_tag(repo, t)?.as_ref() != Some(digest)
        {
            atomic_write(&self.tag_path(repo, t), digest.to_string().as_bytes())?;
        }
        Ok(())
    }

    /// Resolves a tag to the digest it points at.
    pub fn resolve_tag(&self, repo: &str, tag: &str) -> io::Result<Option<Digest>> {
        if !is_valid_tag(tag) {
            return Ok(None);
        }
        match fs::read_to_string(self.tag_path(repo, tag)) {
            Ok(s) => Ok(s.trim().parse().ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads a manifest of `repo` by digest.
    pub fn get_manifest(&self, repo: &str, d: &Digest) -> io::Result<Option<StoredManifest>> {
        let media_type = match fs::read_to_string(self.manifest_link(repo, d)) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match fs::read(self.blob_path(d)) {
            Ok(bytes) => Ok(Some(StoredManifest {
                digest: d.clone(),
                media_type,
                bytes,
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes a manifest from `repo`, and every tag that pointed at it.
    pub fn delete_manifest(&self, repo: &str, d: &Digest) -> io::Result<bool> {
        let link = self.manifest_link(repo, d);
        if !link.exists() {
            return Ok(false);
        }
        for tag in self.tags(repo)?.unwrap_or_default() {
            if self.resolve_tag(repo, &tag)?.as_ref() == Some(d) {
                remove_if_exists(&self.tag_path(repo, &tag))?;
            }
        }
        // No longer a referrer of its subject.
        if let Ok(bytes) = fs::read(self.blob_path(d))
            && let Ok((_, m)) = manifest::parse(None, &bytes)
        {
            let subject = match &m {
                Manifest::Image(m) => m.subject.as_ref(),
                Manifest::Index(i) => i.subject.as_ref(),
            };
            if let Some(s) = subject {
                remove_if_exists(&self.referrer_file(repo, &s.digest, d))?;
            }
        }
        remove_if_exists(&link)?;
        Ok(true)
    }

    pub fn delete_tag(&self, repo: &str, tag: &str) -> io::Result<bool> {
        if !is_valid_tag(tag) {
            return Ok(false);
        }
        remove_if_exists(&self.tag_path(repo, tag))
    }

    /// The tags of `repo`, sorted; None if the repository is unknown.
    pub fn tags(&self, repo: &str) -> io::Result<Option<Vec<String>>> {
        if !self.repository_exists(repo) {
            return Ok(None);
        }
        let mut tags = list_names(&self.repo_dir(repo).join("_tags"))?;
        tags.retain(|t| is_valid_tag(t));
        tags.sort();
        Ok(Some(tags))
    }

    /// Every repository, sorted.
    pub fn repositories(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        walk_repositories(&self.root.join("repositories"), "", &mut out)?;
        out.sort();
        Ok(out)
    }

    /// Digests of every manifest of `repo`.
    pub fn manifest_digests(&self, repo: &str) -> io::Result<Vec<Digest>> {
        digests_under(&self.repo_dir(repo).join("_manifests"))
    }

    /// Digests of every blob linked into `repo`.
    pub fn blob_link_digests(&self, repo: &str) -> io::Result<Vec<Digest>> {
        digests_under(&self.repo_dir(repo).join("_blobs"))
    }

    /// Storage used per repository: every blob and manifest it links, and the part of
    /// it no other repository links (what deleting the repository and collecting
    /// garbage would free). Sorted by repository name.
    pub fn usage(&self) -> io::Result<Vec<RepoUsage>> {
        let repos = self.repositories()?;
        let mut links: Vec<(String, std::collections::BTreeSet<Digest>)> = Vec::new();
        let mut users: std::collections::HashMap<Digest, usize> = std::collections::HashMap::new();
        for r in &repos {
            let mut set: std::collections::BTreeSet<Digest> = self.blob_link_digests(r)?.into_iter().collect();
            set.extend(self.manifest_digests(r)?);
            for d in &set {
                *users.entry(d.clone()).or_default() += 1;
            }
            links.push((r.clone(), set));
        }
        let mut out = Vec::new();
        for (repo, set) in links {
            let mut u = RepoUsage { repository: repo.clone(), manifests: self.manifest_digests(&repo)?.len(), tags: self.tags(&repo)?.map(|t| t.len()).unwrap_or(0), ..Default::default() };
            for d in &set {
                let Ok(meta) = fs::metadata(self.blob_path(d)) else { continue };
                u.size += meta.len();
                u.blobs += 1;
                if users.get(d).copied().unwrap_or(0) == 1 {
                    u.unique += meta.len();
                }
            }
            out.push(u);
        }
        Ok(out)
    }

    /// Digests of every blob in the registry.
    pub fn all_blob_digests(&self) -> io::Result<Vec<Digest>> {
        digests_under(&self.root.join("blobs"))
    }

    pub(crate) fn remove_blob(&self, d: &Digest) -> io::Result<bool> {
        remove_if_exists(&self.blob_path(d))
    }
}

/// Upload ids are what [`Storage::create_upload`] makes: 32 lowercase hex characters.
/// Checking that keeps a client-supplied id from naming any other path.
fn is_upload_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn remove_if_exists(p: &Path) -> io::Result<bool> {
    match fs::remove_file(p) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn list_names(dir: &Path) -> io::Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for e in entries {
        let name = e?.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            out.push(name);
        }
    }
    Ok(out)
}

/// `dir/<algo>/<hex>` entries as digests (temp files and junk are skipped).
fn digests_under(dir: &Path) -> io::Result<Vec<Digest>> {
    let mut out = Vec::new();
    for algo in list_names(dir)? {
        for hex in list_names(&dir.join(&algo))? {
            if let Ok(d) = format!("{algo}:{hex}").parse() {
                out.push(d);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn walk_repositories(dir: &Path, prefix: &str, out: &mut Vec<String>) -> io::Result<()> {
    let mut is_repo = false;
    for name in list_names(dir)? {
        if name.starts_with('_') {
            is_repo = true;
            continue;
        }
        let child = dir.join(&name);
        if child.is_dir() {
            let p = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            walk_repositories(&child, &p, out)?;
        }
    }
    if is_repo && !prefix.is_empty() {
        out.push(prefix.to_string());
    }
    Ok(())
}

/// Hashes a file with `algorithm`.
/// One repository's share of the storage (`berth registry du`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RepoUsage {
    pub repository: String,
    /// Bytes of every blob and manifest the repository links.
    pub size: u64,
    /// Bytes only this repository links.
    pub unique: u64,
    pub blobs: usize,
    pub manifests: usize,
    pub tags: usize,
}

pub fn hash_file(path: &Path, algorithm: Algorithm) -> io::Result<Digest> {
    let mut f = File::open(path)?;
    let mut h = Hasher::new(algorithm);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn upload(s: &Storage, repo: &str, data: &[u8]) -> Result<Digest, StorageError> {
        let uuid = s.create_upload(repo)?;
        File::options()
            .append(true)
            .open(s.upload_data_path(&uuid))?
            .write_all(data)?;
        let d = Digest::sha256_of(data);
        s.commit_upload(repo, &uuid, &d, None)?;
        Ok(d)
    }

    #[test]
    fn upload_commit_links_blob_only_into_its_repo() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path()).unwrap();
        let d = upload(&s, "a/b", b"hello").unwrap();
        assert_eq!(s.blob_size("a/b", &d).unwrap(), Some(5));
        assert_eq!(s.blob_size("c", &d).unwrap(), None);
        assert!(s.blob_exists_globally(&d));
        s.link_blob("c", &d).unwrap();
        assert_eq!(s.blob_size("c", &d).unwrap(), Some(5));
        assert_eq!(s.repositories().unwrap(), vec!["a/b", "c"]);
    }

    #[test]
    fn wrong_digest_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path()).unwrap();
        let uuid = s.create_upload("r").unwrap();
        fs::write(s.upload_data_path(&uuid), b"corrupt").unwrap();
        let claimed = Digest::sha256_of(b"original");
        let err = s.commit_upload("r", &uuid, &claimed, None).unwrap_err();
        assert!(matches!(err, StorageError::DigestMismatch { .. }));
        assert!(!s.blob_exists_globally(&claimed));
        assert!(!s.blob_exists_globally(&Digest::sha256_of(b"corrupt")));
        assert_eq!(s.upload_size("r", &uuid).unwrap(), None);
        assert!(fs::read_dir(dir.path().join("uploads")).unwrap().next().is_none());
    }

    #[test]
    fn upload_ids_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path()).unwrap();
        let uuid = s.create_upload("r").unwrap();
        assert_eq!(s.upload_size("r", &uuid).unwrap(), Some(0));
        assert_eq!(s.upload_size("other", &uuid).unwrap(), None);
        assert_eq!(s.upload_size("r", "../../etc").unwrap(), None);
    }

    #[test]
    fn manifest_needs_its_blobs_and_tags_follow_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path()).unwrap();
        let cfg = upload(&s, "r", b"{}").unwrap();
        let layer_digest = Digest::sha256_of(b"layer");
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cfg}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":5}}]}}"#
        );
        let err = s
            .put_manifest("r", m.as_bytes(), None, Some("1"), Algorithm::Sha256)
            .unwrap_err();
        assert!(matches!(err, StorageError::ManifestBlobUnknown(d) if d == layer_digest));
        assert_eq!(s.tags("r").unwrap(), Some(vec![]));

        upload(&s, "r", b"layer").unwrap();
        let d = s
            .put_manifest("r", m.as_bytes(), None, Some("1"), Algorithm::Sha256)
            .unwrap();
        assert_eq!(d, Digest::sha256_of(m.as_bytes()));
        assert_eq!(s.resolve_tag("r", "1").unwrap(), Some(d.clone()));
        let got = s.get_manifest("r", &d).unwrap().unwrap();
        assert_eq!(got.bytes, m.as_bytes());
        assert_eq!(got.media_type, crate::manifest::media::OCI_MANIFEST);
        assert!(s.delete_manifest("r", &d).unwrap());
        assert_eq!(s.resolve_tag("r", "1").unwrap(), None);
        assert!(s.get_manifest("r", &d).unwrap().is_none());
    }
}
