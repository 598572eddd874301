//! Content checksums of files and trees, the part of a COPY/ADD cache key that says
//! "same sources": names, types, permission bits, link targets and content, but not
//! times or owners (a fresh checkout must hit the cache, as with Docker).

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use sha2::{Digest as _, Sha256};

/// sha256 (hex) of one file's content.
pub fn file_digest(path: &Path) -> io::Result<String> {
    let mut h = Sha256::new();
    hash_file(&mut h, path)?;
    Ok(hex::encode(h.finalize()))
}

/// The checksum of what `path` is (following it if it is a symlink, as COPY does
/// with its sources): a file's content and mode, or a directory's whole tree.
pub fn tree_digest(path: &Path) -> io::Result<String> {
    let mut h = Sha256::new();
    let meta = fs::metadata(path)?;
    if meta.is_dir() {
        add_dir(&mut h, path, "")?;
    } else {
        add_entry(&mut h, path, "", &meta)?;
    }
    Ok(hex::encode(h.finalize()))
}

fn add_entry(h: &mut Sha256, path: &Path, rel: &str, meta: &fs::Metadata) -> io::Result<()> {
    let ft = meta.file_type();
    let mode = meta.permissions().mode() & 0o7777;
    h.update(rel.as_bytes());
    h.update([0]);
    if ft.is_symlink() {
        h.update(format!("l{mode:o}\0").as_bytes());
        h.update(fs::read_link(path)?.as_os_str().as_encoded_bytes());
    } else if ft.is_dir() {
        h.update(format!("d{mode:o}").as_bytes());
    } else if ft.is_file() {
        h.update(format!("f{mode:o}:{}\0", meta.len()).as_bytes());
        hash_file(h, path)?;
    } else {
        h.update(format!("s{mode:o}:{}", meta.rdev()).as_bytes());
    }
    h.update([0]);
    Ok(())
}

fn hash_file(h: &mut Sha256, path: &Path) -> io::Result<()> {
    use io::Read;
    let mut f = fs::File::open(path)?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        h.update(&buf[..n]);
    }
}

fn add_dir(h: &mut Sha256, dir: &Path, rel: &str) -> io::Result<()> {
    let meta = fs::symlink_metadata(dir)?;
    add_entry(h, dir, rel, &meta)?;
    let mut names: Vec<_> = fs::read_dir(dir)?.map(|e| e.map(|e| e.file_name())).collect::<io::Result<_>>()?;
    names.sort();
    for name in names {
        let p = dir.join(&name);
        let r = format!("{rel}/{}", name.to_string_lossy());
        let m = fs::symlink_metadata(&p)?;
        if m.is_dir() {
            add_dir(h, &p, &r)?;
        } else {
            add_entry(h, &p, &r, &m)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignores_times_but_not_content_or_mode() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("d");
        fs::create_dir_all(d.join("sub")).unwrap();
        fs::write(d.join("sub/a"), "one").unwrap();
        let first = tree_digest(&d).unwrap();
        // Rewriting the same content changes mtime only.
        std::thread::sleep(std::time::Duration::from_millis(10));
        fs::write(d.join("sub/a"), "one").unwrap();
        assert_eq!(tree_digest(&d).unwrap(), first);
        fs::write(d.join("sub/a"), "two").unwrap();
        let second = tree_digest(&d).unwrap();
        assert_ne!(second, first);
        fs::set_permissions(d.join("sub/a"), fs::Permissions::from_mode(0o600)).unwrap();
        assert_ne!(tree_digest(&d).unwrap(), second);
    }
}
