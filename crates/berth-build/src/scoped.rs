//! Paths inside a root directory that a build does not trust (a build context, a
//! stage's root filesystem, the root filesystem a step writes into): symlinks are
//! followed as if `root` were `/`, so no path the Dockerfile or the image names can
//! reach outside it (the `FollowSymlinkInScope` rule of Docker's builder).

use std::io;
use std::path::{Path, PathBuf};

/// Most symlinks followed for one path, as Linux's limit.
const MAX_LINKS: usize = 40;

/// Resolves container path `path` (absolute or relative to `/`) under `root`. Every
/// symlink met on the way is followed within `root`; the last component too when
/// `follow_last`. Components that do not exist are kept as they are. Returns a host
/// path below `root`.
pub fn resolve(root: &Path, path: &str, follow_last: bool) -> io::Result<PathBuf> {
    let mut todo: Vec<String> = components(path).into_iter().rev().collect();
    let mut cur: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            cur.pop();
            continue;
        }
        cur.push(c);
        let last = todo.is_empty();
        if last && !follow_last {
            break;
        }
        let host = join(root, &cur);
        let meta = match std::fs::symlink_metadata(&host) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if !meta.file_type().is_symlink() {
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            return Err(io::Error::other(format!("too many levels of symbolic links resolving {path}")));
        }
        let target = std::fs::read_link(&host)?;
        let target = target.to_string_lossy().into_owned();
        cur.pop();
        if target.starts_with('/') {
            cur.clear();
        }
        for t in components(&target).into_iter().rev() {
            todo.push(t);
        }
    }
    Ok(join(root, &cur))
}

fn components(p: &str) -> Vec<String> {
    p.split('/').filter(|c| !c.is_empty() && *c != ".").map(str::to_string).collect()
}

fn join(root: &Path, parts: &[String]) -> PathBuf {
    let mut p = root.to_path_buf();
    for c in parts {
        p.push(c);
    }
    p
}

/// `path` relative to `root` as a container path (`/a/b`), for messages and hashes.
pub fn container_path(root: &Path, path: &Path) -> String {
    match path.strip_prefix(root) {
        Ok(rel) => format!("/{}", rel.to_string_lossy()),
        Err(_) => path.to_string_lossy().into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_stay_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("real/dir")).unwrap();
        symlink("/real", root.join("abs")).unwrap();
        symlink("../../../../etc", root.join("up")).unwrap();
        symlink("real/dir", root.join("rel")).unwrap();
        assert_eq!(resolve(root, "/abs/dir/f", true).unwrap(), root.join("real/dir/f"));
        assert_eq!(resolve(root, "up/passwd", true).unwrap(), root.join("etc/passwd"));
        assert_eq!(resolve(root, "rel", true).unwrap(), root.join("real/dir"));
        assert_eq!(resolve(root, "rel", false).unwrap(), root.join("rel"));
        assert_eq!(resolve(root, "/../../x/./y/..", true).unwrap(), root.join("x"));
        symlink("loop", root.join("loop")).unwrap();
        assert!(resolve(root, "loop/x", true).is_err());
    }
}
