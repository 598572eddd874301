//! Translation between the tar form of deletions (AUFS-style `.wh.<name>` files and
//! `.wh..wh..opq` opaque markers, what images carry) and the overlayfs form (a 0:0
//! character device, and `trusted.overlay.opaque=y` on a directory, what the kernel
//! reads).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

pub const WHITEOUT_PREFIX: &str = ".wh.";
/// Names starting with `.wh..wh.` are AUFS metadata (`.wh..wh.plnk`, `.wh..wh.aufs`...).
pub const WHITEOUT_META_PREFIX: &str = ".wh..wh.";
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// Every overlayfs-private xattr starts with this; a layer tar may not set them.
pub const OVERLAY_XATTR_PREFIX: &str = "trusted.overlay.";
/// The same xattrs in the `user.` namespace: what overlay reads when mounted with
/// `userxattr`, as it must be inside a user namespace (rootless mode), where `trusted.*`
/// needs CAP_SYS_ADMIN of the initial namespace.
pub const USER_OVERLAY_XATTR_PREFIX: &str = "user.overlay.";
pub const USER_OVERLAY_OPAQUE_XATTR: &str = "user.overlay.opaque";

/// True when this process runs in a user namespace other than the initial one (the
/// rootless daemon). Layers are then written and read with `user.overlay.*` xattrs and
/// overlays are mounted with `userxattr`.
pub fn in_user_namespace() -> bool {
    static IN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IN.get_or_init(|| {
        // The initial namespace maps every id: one line "0 0 4294967295".
        let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
        let f: Vec<&str> = map.split_whitespace().collect();
        !(f.is_empty() || f == ["0", "0", "4294967295"])
    })
}

/// The opaque-directory xattr overlay reads here (see [`in_user_namespace`]).
pub fn opaque_xattr() -> &'static str {
    if in_user_namespace() { USER_OVERLAY_OPAQUE_XATTR } else { OVERLAY_OPAQUE_XATTR }
}

/// Overlay's private xattrs in either namespace: a layer tar may not set them (they
/// would forge whiteouts and redirects), and they never go into a diff.
pub fn is_overlay_xattr(name: &str) -> bool {
    name.starts_with(OVERLAY_XATTR_PREFIX) || name.starts_with(USER_OVERLAY_XATTR_PREFIX)
}

/// What a tar entry's file name means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TarName {
    /// An ordinary file name.
    Plain,
    /// `.wh..wh..opq`: the parent directory hides everything below it.
    Opaque,
    /// `.wh.<name>`: `<name>` is deleted.
    Whiteout(OsString),
    /// AUFS bookkeeping to skip.
    AufsMeta,
}

/// Classifies a tar entry's file name (its last path component).
pub fn classify(name: &OsStr) -> TarName {
    let b = name.as_bytes();
    if b == OPAQUE_MARKER.as_bytes() {
        TarName::Opaque
    } else if b.starts_with(WHITEOUT_META_PREFIX.as_bytes()) {
        TarName::AufsMeta
    } else if let Some(rest) = b.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
        if rest.is_empty() || rest == b"." || rest == b".." {
            // Nothing sensible to delete; treat as metadata noise.
            TarName::AufsMeta
        } else {
            TarName::Whiteout(OsStr::from_bytes(rest).to_os_string())
        }
    } else {
        TarName::Plain
    }
}

/// The tar name that records the deletion of `name`.
pub fn whiteout_name(name: &OsStr) -> OsString {
    let mut s = OsString::from(WHITEOUT_PREFIX);
    s.push(name);
    s
}

/// True for an overlayfs whiteout: a character device with device number 0:0.
pub fn is_overlay_whiteout(mode: u32, rdev: u64) -> bool {
    (mode & libc::S_IFMT) == libc::S_IFCHR && rdev == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_names() {
        assert_eq!(classify(OsStr::new("passwd")), TarName::Plain);
        assert_eq!(classify(OsStr::new(".wh..wh..opq")), TarName::Opaque);
        assert_eq!(classify(OsStr::new(".wh..wh.plnk")), TarName::AufsMeta);
        assert_eq!(
            classify(OsStr::new(".wh.gone")),
            TarName::Whiteout("gone".into())
        );
        assert_eq!(
            classify(OsStr::new(".wh..hidden")),
            TarName::Whiteout(".hidden".into())
        );
        assert_eq!(classify(OsStr::new(".wh.")), TarName::AufsMeta);
        assert_eq!(classify(OsStr::new(".wh..")), TarName::AufsMeta);
        assert_eq!(classify(OsStr::new(".whx")), TarName::Plain);
    }

    #[test]
    fn round_trips_whiteout_names() {
        let n = whiteout_name(OsStr::new("vi"));
        assert_eq!(n, ".wh.vi");
        assert_eq!(classify(&n), TarName::Whiteout("vi".into()));
    }

    #[test]
    fn recognises_overlay_whiteouts() {
        assert!(is_overlay_whiteout(libc::S_IFCHR, 0));
        assert!(!is_overlay_whiteout(libc::S_IFCHR, libc::makedev(1, 3)));
        assert!(!is_overlay_whiteout(libc::S_IFREG, 0));
    }
}
