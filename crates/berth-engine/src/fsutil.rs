//! File access inside a container's root without ever leaving it: paths are resolved
//! by the kernel with `openat2(RESOLVE_IN_ROOT)`, so `..` and absolute symlinks stay
//! inside the root.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};

/// Opens `rel` (relative to `root`) as the container would see it.
pub fn open_in_root(root: &Path, rel: &str, flags: OFlags) -> std::io::Result<OwnedFd> {
    let dir = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let rel = rel.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    Ok(rustix::fs::openat2(&dir, rel, flags | OFlags::CLOEXEC, Mode::empty(), ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS)?)
}

pub fn read_in_root(root: &Path, rel: &str) -> std::io::Result<Vec<u8>> {
    let fd = open_in_root(root, rel, OFlags::RDONLY)?;
    let mut f = std::fs::File::from(fd);
    let mut v = Vec::new();
    f.by_ref().take(16 << 20).read_to_end(&mut v)?;
    Ok(v)
}
