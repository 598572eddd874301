//! COPY and ADD on the filesystem, with Docker's rules: sources are matched in their
//! root (the context or another stage's root filesystem) with Go's `filepath.Match`
//! wildcards and never leave it; a directory source contributes its contents; a file
//! lands in the destination directory when the destination ends with `/` or is an
//! existing directory, else it becomes the destination; several sources need a
//! directory destination; missing parent directories are created (owned like the
//! copied files); owners are 0:0 from the context, kept from a stage, or `--chown`'s;
//! `--chmod` sets the permission bits; times are kept. ADD also unpacks local tar
//! archives (plain, gzip, bzip2, xz) into the destination.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::BuildError;
use crate::scoped;

/// Who owns what a copy creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// This uid:gid (0:0 for context files, or `--chown`).
    Fixed(u32, u32),
    /// As in the source (COPY --from without --chown).
    Keep,
}

/// One matched source.
#[derive(Debug, Clone)]
pub struct Source {
    /// The host path, below the source root, symlinks resolved.
    pub path: PathBuf,
    /// Its name as the Dockerfile wrote it, for messages and the destination name.
    pub name: String,
    pub is_dir: bool,
}

/// Whether a source word has `filepath.Match` wildcards.
pub fn has_wildcards(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Matches the source words under `root`. `what` names the root in messages
/// ("build context" or "stage x").
pub fn match_sources(root: &Path, words: &[String], what: &str) -> Result<Vec<Source>, BuildError> {
    let mut out = Vec::new();
    for w in words {
        if w.split('/').any(|c| c == "..") && escapes(w) {
            return Err(BuildError::invalid(format!("Forbidden path outside the build context: {w} ()")));
        }
        if has_wildcards(w) {
            let mut found = Vec::new();
            glob(root, root, &components(w), &mut found)?;
            found.sort();
            for rel in found {
                let path = scoped::resolve(root, &rel, true)?;
                let is_dir = path.is_dir();
                let name = rel.rsplit('/').next().unwrap_or(&rel).to_string();
                out.push(Source { path, name, is_dir });
            }
            continue;
        }
        let path = scoped::resolve(root, w, true)?;
        let meta = fs::metadata(&path).map_err(|_| {
            BuildError::not_found(format!(
                "COPY failed: file not found in {what} or excluded by .dockerignore: stat {}: file does not exist",
                w.trim_start_matches('/')
            ))
        })?;
        let name = components(w).last().cloned().unwrap_or_default();
        out.push(Source { path, name, is_dir: meta.is_dir() });
    }
    if out.is_empty() {
        return Err(BuildError::invalid("COPY failed: no source files were specified"));
    }
    Ok(out)
}

/// Whether a path with `..` climbs above its root (Docker refuses it for the context).
fn escapes(p: &str) -> bool {
    let mut depth: i64 = 0;
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

fn components(p: &str) -> Vec<String> {
    p.split('/').filter(|c| !c.is_empty() && *c != ".").map(str::to_string).collect()
}

/// Walks `dir` matching one pattern component per level (`*` never crosses `/`).
fn glob(root: &Path, dir: &Path, pats: &[String], found: &mut Vec<String>) -> Result<(), BuildError> {
    let Some((first, rest)) = pats.split_first() else { return Ok(()) };
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(_) => return Ok(()),
    };
    for e in entries {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let ok = crate::ignore::path_match(first, &name).map_err(|err| BuildError::invalid(format!("invalid pattern {first:?}: {err}")))?;
        if !ok {
            continue;
        }
        let p = e.path();
        if rest.is_empty() {
            found.push(scoped::container_path(root, &p));
        } else if p.is_dir() {
            glob(root, &p, rest, found)?;
        }
    }
    Ok(())
}

/// What one COPY/ADD writes.
#[derive(Debug, Clone)]
pub struct CopyInto<'a> {
    /// The root filesystem written to.
    pub root: &'a Path,
    /// Absolute container path; a trailing `/` means "a directory".
    pub dest: &'a str,
    pub owner: Owner,
    pub chmod: Option<u32>,
    /// ADD: unpack local archives.
    pub unpack: bool,
    /// Where ADD may unpack an archive before merging it in.
    pub scratch: &'a Path,
}

/// Copies `sources` as COPY/ADD do.
pub fn copy(sources: &[Source], to: &CopyInto<'_>) -> Result<(), BuildError> {
    let dest_is_dir = to.dest.ends_with('/') || to.dest.ends_with("/.") || to.dest == ".";
    if sources.len() > 1 && !dest_is_dir {
        return Err(BuildError::invalid(
            "When using COPY with more than one source file, the destination must be a directory and end with a /",
        ));
    }
    let dest = scoped::resolve(to.root, to.dest, true)?;
    for s in sources {
        if s.is_dir {
            mkdir_all(to.root, &dest, to.owner)?;
            copy_dir_contents(&s.path, &dest, to)?;
            continue;
        }
        if to.unpack && is_archive(&s.path) {
            mkdir_all(to.root, &dest, to.owner)?;
            let tmp = to.scratch.join(format!("unpack-{}", rand_suffix()));
            fs::create_dir_all(&tmp)?;
            let r = (|| -> Result<(), BuildError> {
                let f = fs::File::open(&s.path)?;
                berth_image::layer::unpack::extract_archive(f, &tmp, &berth_image::UnpackLimit::keep_free(256 << 20))
                    .map_err(|e| BuildError::invalid(format!("failed to unpack {}: {e}", s.name)))?;
                copy_dir_contents(&tmp, &dest, &CopyInto { owner: if to.owner == Owner::Fixed(0, 0) && to.chmod.is_none() { Owner::Keep } else { to.owner }, ..to.clone() })
            })();
            let _ = fs::remove_dir_all(&tmp);
            r?;
            continue;
        }
        let target = if dest_is_dir || dest.is_dir() { dest.join(&s.name) } else { dest.clone() };
        if let Some(parent) = target.parent() {
            mkdir_all(to.root, parent, to.owner)?;
        }
        let meta = fs::metadata(&s.path)?;
        copy_entry(&s.path, &target, &meta, to)?;
    }
    Ok(())
}

fn rand_suffix() -> String {
    format!("{:x}{:x}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0))
}

/// Whether a file is a tar archive, plain or compressed (ADD's test).
fn is_archive(path: &Path) -> bool {
    use io::Read;
    let Ok(f) = fs::File::open(path) else { return false };
    let mut r = io::BufReader::new(f);
    let head = match io::BufRead::fill_buf(&mut r) {
        Ok(h) => h.to_vec(),
        Err(_) => return false,
    };
    let Ok(c) = berth_image::Compression::detect(&head) else { return false };
    let Ok(mut reader) = berth_image::layer::decompressed(r, c) else { return false };
    let mut block = vec![0u8; 512];
    if reader.read_exact(&mut block).is_err() {
        return false;
    }
    &block[257..262] == b"ustar" || tar_checksum_ok(&block)
}

/// An old (v7) tar header: no magic, but a valid checksum.
fn tar_checksum_ok(block: &[u8]) -> bool {
    let field = &block[148..156];
    let s: String = field.iter().take_while(|b| **b != 0 && **b != b' ').map(|b| *b as char).collect();
    let Ok(want) = u32::from_str_radix(s.trim(), 8) else { return false };
    let sum: u32 = block.iter().enumerate().map(|(i, b)| if (148..156).contains(&i) { b' ' as u32 } else { *b as u32 }).sum();
    sum == want && block[0] != 0
}

/// Creates `dir` and its missing parents (0755, owned as `owner` says; root for Keep).
fn mkdir_all(root: &Path, dir: &Path, owner: Owner) -> Result<(), BuildError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent()
        && parent != root && parent.starts_with(root) {
            mkdir_all(root, parent, owner)?;
        }
    if let Ok(m) = fs::symlink_metadata(dir)
        && !m.is_dir() {
            return Err(BuildError::invalid(format!("cannot copy to {}: it exists and is not a directory", scoped::container_path(root, dir))));
        }
    fs::create_dir(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    if let Owner::Fixed(u, g) = owner {
        std::os::unix::fs::lchown(dir, Some(u), Some(g))?;
    }
    Ok(())
}

fn copy_dir_contents(src: &Path, dst: &Path, to: &CopyInto<'_>) -> Result<(), BuildError> {
    let mut dirs: Vec<(PathBuf, fs::Metadata)> = Vec::new();
    copy_dir_rec(src, dst, to, &mut dirs)?;
    // Directory times last: creating children changed them.
    for (d, m) in dirs.iter().rev() {
        set_times(d, m)?;
    }
    Ok(())
}

fn copy_dir_rec(src: &Path, dst: &Path, to: &CopyInto<'_>, dirs: &mut Vec<(PathBuf, fs::Metadata)>) -> Result<(), BuildError> {
    let mut names: Vec<_> = fs::read_dir(src)?.map(|e| e.map(|e| e.file_name())).collect::<io::Result<_>>()?;
    names.sort();
    for name in names {
        let s = src.join(&name);
        let d = dst.join(&name);
        let meta = fs::symlink_metadata(&s)?;
        if meta.is_dir() {
            match fs::symlink_metadata(&d) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    fs::remove_file(&d)?;
                    fs::create_dir(&d)?;
                }
                Err(_) => fs::create_dir(&d)?,
            }
            apply_meta(&d, &meta, to, true)?;
            copy_dir_rec(&s, &d, to, dirs)?;
            dirs.push((d, meta));
        } else {
            copy_entry(&s, &d, &meta, to)?;
        }
    }
    Ok(())
}

/// Copies one non-directory entry (`meta` is the source's, symlinks not followed
/// except for a top-level source).
fn copy_entry(src: &Path, dst: &Path, meta: &fs::Metadata, to: &CopyInto<'_>) -> Result<(), BuildError> {
    match fs::symlink_metadata(dst) {
        Ok(m) if m.is_dir() && !meta.is_dir() => {
            return Err(BuildError::invalid(format!(
                "cannot overwrite directory {} with non-directory",
                scoped::container_path(to.root, dst)
            )));
        }
        Ok(_) => fs::remove_file(dst)?,
        Err(_) => {}
    }
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = fs::read_link(src)?;
        std::os::unix::fs::symlink(&target, dst)?;
        let (u, g) = owner_of(meta, to.owner);
        std::os::unix::fs::lchown(dst, Some(u), Some(g))?;
        return Ok(());
    }
    if ft.is_file() {
        fs::copy(src, dst)?;
    } else {
        let kind = if ft.is_dir() {
            return Ok(());
        } else {
            use std::os::unix::fs::FileTypeExt;
            if ft.is_fifo() {
                rustix::fs::FileType::Fifo
            } else if ft.is_char_device() {
                rustix::fs::FileType::CharacterDevice
            } else if ft.is_block_device() {
                rustix::fs::FileType::BlockDevice
            } else {
                // Sockets are not copied (Docker skips them too).
                return Ok(());
            }
        };
        rustix::fs::mknodat(rustix::fs::CWD, dst, kind, rustix::fs::Mode::from_raw_mode(meta.mode() & 0o7777), meta.rdev())
            .map_err(io::Error::from)?;
    }
    apply_meta(dst, meta, to, false)?;
    set_times(dst, meta)?;
    Ok(())
}

fn owner_of(meta: &fs::Metadata, owner: Owner) -> (u32, u32) {
    match owner {
        Owner::Fixed(u, g) => (u, g),
        Owner::Keep => (meta.uid(), meta.gid()),
    }
}

fn apply_meta(dst: &Path, meta: &fs::Metadata, to: &CopyInto<'_>, _is_dir: bool) -> Result<(), BuildError> {
    let (u, g) = owner_of(meta, to.owner);
    std::os::unix::fs::lchown(dst, Some(u), Some(g))?;
    // chown clears setuid bits: permissions after ownership.
    let mode = to.chmod.unwrap_or(meta.mode() & 0o7777);
    fs::set_permissions(dst, fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn set_times(dst: &Path, meta: &fs::Metadata) -> Result<(), BuildError> {
    let t = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec { tv_sec: meta.atime(), tv_nsec: meta.atime_nsec() as _ },
        last_modification: rustix::fs::Timespec { tv_sec: meta.mtime(), tv_nsec: meta.mtime_nsec() as _ },
    };
    rustix::fs::utimensat(rustix::fs::CWD, dst, &t, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).map_err(io::Error::from)?;
    Ok(())
}

/// Parses `--chmod` (octal only, as Docker's classic builder and BuildKit < 1.14).
pub fn parse_chmod(s: &str) -> Result<u32, BuildError> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| BuildError::invalid(format!("invalid chmod parameter: {s}")))
}
