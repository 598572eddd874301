//! Path safety for layer tars, as pure functions: which entry names, symlink targets
//! and hardlink targets stay inside the layer directory. The extractor refuses a layer
//! as soon as one of these says no; the kernel (`openat2` with `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS`) is the second line of defence.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{ImageError, Result};

fn unsafe_layer(msg: String) -> ImageError {
    ImageError::UnsafeLayer(msg)
}

/// Normalises a tar entry name to a relative path inside the layer: strips `./`
/// prefixes and `.` components. Returns `None` for the layer root itself (`.`, `./`).
/// Refuses absolute names, `..` components and NUL bytes.
pub fn entry_path(raw: &[u8]) -> Result<Option<PathBuf>> {
    let shown = String::from_utf8_lossy(raw);
    if raw.contains(&0) {
        return Err(unsafe_layer(format!("entry name {shown:?} contains a NUL byte")));
    }
    if raw.first() == Some(&b'/') {
        return Err(unsafe_layer(format!("entry {shown:?} has an absolute path")));
    }
    let mut out = PathBuf::new();
    for comp in Path::new(OsStr::from_bytes(raw)).components() {
        match comp {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(unsafe_layer(format!("entry {shown:?} contains '..'")));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(unsafe_layer(format!("entry {shown:?} has an absolute path")));
            }
        }
    }
    if out.as_os_str().is_empty() {
        Ok(None)
    } else {
        Ok(Some(out))
    }
}

/// Checks that a symlink at `link` (relative to the layer root) with `target` resolves,
/// lexically, inside the tree. Absolute targets are relative to the container's root
/// (that is how the container sees them) but may not climb above it either.
pub fn check_symlink_target(link: &Path, target: &Path) -> Result<()> {
    if target.as_os_str().is_empty() {
        return Err(unsafe_layer(format!("symlink {} has an empty target", link.display())));
    }
    if target.as_os_str().as_bytes().contains(&0) {
        return Err(unsafe_layer(format!("symlink {} target contains a NUL byte", link.display())));
    }
    let mut depth: i64 = if target.is_absolute() {
        0
    } else {
        link.parent().map(|p| p.components().count() as i64).unwrap_or(0)
    };
    for comp in target.components() {
        match comp {
            Component::Normal(_) => depth += 1,
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return Err(unsafe_layer(format!(
                        "symlink {} -> {} points outside the layer",
                        link.display(),
                        target.display()
                    )));
                }
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Ok(())
}

/// Normalises a hardlink target: like an entry name, it must be relative to the layer
/// root and must not climb out of it.
pub fn hardlink_target(link: &Path, raw: &[u8]) -> Result<PathBuf> {
    let shown = String::from_utf8_lossy(raw);
    if raw.first() == Some(&b'/') {
        return Err(unsafe_layer(format!(
            "hardlink {} -> {shown} points outside the layer (absolute target)",
            link.display()
        )));
    }
    match entry_path(raw) {
        Ok(Some(p)) => Ok(p),
        Ok(None) => Err(unsafe_layer(format!(
            "hardlink {} points at the layer root",
            link.display()
        ))),
        Err(_) => Err(unsafe_layer(format!(
            "hardlink {} -> {shown} points outside the layer",
            link.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> Result<Option<PathBuf>> {
        entry_path(s.as_bytes())
    }

    #[test]
    fn normalises_entry_names() {
        assert_eq!(ep("./etc/passwd").unwrap(), Some(PathBuf::from("etc/passwd")));
        assert_eq!(ep("etc/./x/").unwrap(), Some(PathBuf::from("etc/x")));
        assert_eq!(ep("./").unwrap(), None);
        assert_eq!(ep(".").unwrap(), None);
        assert_eq!(ep("a//b").unwrap(), Some(PathBuf::from("a/b")));
    }

    #[test]
    fn refuses_escaping_entry_names() {
        for bad in ["../x", "a/../../x", "a/../b", "/etc/passwd", "//x", "a/b/.."] {
            let e = ep(bad).unwrap_err();
            assert!(matches!(e, ImageError::UnsafeLayer(_)), "{bad}: {e}");
        }
        assert!(entry_path(b"a\0b").is_err());
    }

    #[test]
    fn symlink_targets() {
        let ok = |l: &str, t: &str| check_symlink_target(Path::new(l), Path::new(t));
        ok("bin/sh", "busybox").unwrap();
        ok("data/link-to-a", "/data/keep/a").unwrap();
        ok("etc/mtab", "/proc/mounts").unwrap();
        ok("usr/lib/x", "../../lib/x").unwrap();
        ok("a/b/c", "../../d").unwrap();
        ok("a", ".").unwrap();
        assert!(ok("evil", "../../../etc").is_err());
        assert!(ok("a/evil", "../../etc/passwd").is_err());
        assert!(ok("abs", "/../etc").is_err());
        assert!(ok("x", "a/../../y").is_err());
        assert!(ok("e", "").is_err());
    }

    #[test]
    fn hardlink_targets() {
        let link = Path::new("data/keep/hardlink");
        assert_eq!(
            hardlink_target(link, b"data/keep/h").unwrap(),
            PathBuf::from("data/keep/h")
        );
        assert_eq!(hardlink_target(link, b"./x").unwrap(), PathBuf::from("x"));
        assert!(hardlink_target(link, b"/etc/shadow").is_err());
        assert!(hardlink_target(link, b"../../etc/shadow").is_err());
        assert!(hardlink_target(link, b".").is_err());
    }
}
