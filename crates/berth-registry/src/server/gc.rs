//! `berth registry garbage-collect`: mark every blob a manifest of some repository
//! references, delete the rest.
//!
//! Like distribution's GC it must not run beside uploads (a layer pushed a moment before
//! its manifest would look unreferenced), so it takes the storage lock exclusively:
//! while a server has the storage open, GC refuses to start, and while GC runs, a
//! server refuses to start.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use super::storage::Storage;
use super::{ServerError, lock_storage};
use crate::digest::Digest;
use crate::manifest::{self, Manifest};

#[derive(Debug, Clone, Default)]
pub struct GcOptions {
    /// Also delete manifests no tag reaches (directly or through an index).
    pub delete_untagged: bool,
    /// Report what would be deleted, delete nothing.
    pub dry_run: bool,
}

#[derive(Debug, Default)]
pub struct GcReport {
    pub blobs_kept: usize,
    pub blobs_deleted: Vec<Digest>,
    pub bytes_freed: u64,
    /// (repository, manifest) pairs removed by `delete_untagged`.
    pub manifests_deleted: Vec<(String, Digest)>,
}

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Lock(#[from] ServerError),
    #[error("garbage collection I/O error: {0}")]
    Io(#[from] std::io::Error),
}

pub fn garbage_collect(root: &Path, opts: &GcOptions) -> Result<GcReport, GcError> {
    if !root.join("blobs").is_dir() {
        return Err(GcError::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} is not a registry storage directory (no blobs/)", root.display()),
        )));
    }
    let storage = Storage::open(root)?;
    let _lock = lock_storage(&storage, true)?;
    collect(&storage, opts, None)
}

/// Mark and sweep over an open storage. `grace`: blobs written more recently than this
/// are kept even when unreferenced (an upload whose manifest is still to come), which
/// is what lets a serving registry collect online (see `ServerConfig::gc_interval`).
pub fn collect(storage: &Storage, opts: &GcOptions, grace: Option<std::time::Duration>) -> Result<GcReport, GcError> {
    let storage = storage;
    let cutoff = grace.map(|g| std::time::SystemTime::now() - g);
    let mut report = GcReport::default();

    let mut marked: HashSet<Digest> = HashSet::new();
    for repo in storage.repositories()? {
        let mut manifests: BTreeSet<Digest> = storage.manifest_digests(&repo)?.into_iter().collect();
        if opts.delete_untagged {
            let keep = reachable_from_tags(&storage, &repo)?;
            for d in manifests.iter().filter(|d| !keep.contains(*d)) {
                report.manifests_deleted.push((repo.clone(), d.clone()));
                if !opts.dry_run {
                    storage.delete_manifest(&repo, d)?;
                }
            }
            manifests.retain(|d| keep.contains(d));
        }
        for d in manifests {
            marked.insert(d.clone());
            if let Some(m) = storage.get_manifest(&repo, &d)? {
                match manifest::parse(Some(&m.media_type), &m.bytes) {
                    Ok((_, parsed)) => {
                        marked.extend(parsed.references().into_iter().map(|r| r.digest.clone()));
                    }
                    Err(e) => tracing::warn!(%repo, digest = %d, "unparseable manifest kept: {e}"),
                }
            }
        }
    }

    for d in storage.all_blob_digests()? {
        if marked.contains(&d) {
            report.blobs_kept += 1;
            continue;
        }
        let meta = std::fs::metadata(storage.blob_path(&d));
        if let (Some(cutoff), Ok(m)) = (cutoff, &meta)
            && m.modified().is_ok_and(|t| t > cutoff)
        {
            report.blobs_kept += 1;
            continue;
        }
        let size = meta.map(|m| m.len()).unwrap_or(0);
        if !opts.dry_run {
            storage.remove_blob(&d)?;
        }
        report.bytes_freed += size;
        report.blobs_deleted.push(d);
    }
    if !opts.dry_run {
        // Links to blobs that are gone would make HEAD answer for nothing.
        for repo in storage.repositories()? {
            for d in storage.blob_link_digests(&repo)? {
                if !storage.blob_exists_globally(&d) {
                    storage.unlink_blob(&repo, &d)?;
                }
            }
        }
    }
    Ok(report)
}

/// Manifests of `repo` that a tag points at, plus (transitively) the children of those
/// that are indexes.
fn reachable_from_tags(storage: &Storage, repo: &str) -> std::io::Result<HashSet<Digest>> {
    let mut keep = HashSet::new();
    let mut todo: Vec<Digest> = Vec::new();
    for tag in storage.tags(repo)?.unwrap_or_default() {
        if let Some(d) = storage.resolve_tag(repo, &tag)? {
            todo.push(d);
        }
    }
    while let Some(d) = todo.pop() {
        if !keep.insert(d.clone()) {
            continue;
        }
        if let Some(m) = storage.get_manifest(repo, &d)?
            && let Ok((_, Manifest::Index(i))) = manifest::parse(Some(&m.media_type), &m.bytes)
        {
            todo.extend(i.manifests.into_iter().map(|c| c.digest));
        }
    }
    Ok(keep)
}
