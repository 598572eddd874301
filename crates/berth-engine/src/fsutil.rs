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

/// Copies a directory tree preserving modes, owners, times, symlinks and hardlinks
/// (for copying image content into a new volume, as Docker does).
pub fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    use std::collections::HashMap;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut links: HashMap<(u64, u64), std::path::PathBuf> = HashMap::new();
    let meta = std::fs::symlink_metadata(src)?;
    std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid()))?;
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    let mut stack = vec![(src.to_path_buf(), dst.to_path_buf())];
    while let Some((s, d)) = stack.pop() {
        for e in std::fs::read_dir(&s)? {
            let e = e?;
            let sp = e.path();
            let dp = d.join(e.file_name());
            let m = std::fs::symlink_metadata(&sp)?;
            let ft = m.file_type();
            if ft.is_dir() {
                std::fs::create_dir(&dp)?;
                stack.push((sp.clone(), dp.clone()));
            } else if ft.is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(&sp)?, &dp)?;
            } else if ft.is_file() {
                if m.nlink() > 1 {
                    if let Some(first) = links.get(&(m.dev(), m.ino())) {
                        std::fs::hard_link(first, &dp)?;
                        continue;
                    }
                    links.insert((m.dev(), m.ino()), dp.clone());
                }
                std::fs::copy(&sp, &dp)?;
            } else {
                // fifo, socket, device: recreate the node.
                let c = std::ffi::CString::new(dp.as_os_str().as_encoded_bytes()).map_err(std::io::Error::other)?;
                // SAFETY: c is a valid NUL-terminated path; mknod takes plain integers.
                if unsafe { libc::mknod(c.as_ptr(), m.mode() as libc::mode_t, m.rdev() as libc::dev_t) } != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            std::os::unix::fs::lchown(&dp, Some(m.uid()), Some(m.gid()))?;
            if !ft.is_symlink() {
                std::fs::set_permissions(&dp, std::fs::Permissions::from_mode(m.mode() & 0o7777))?;
                let times = [
                    libc::timespec { tv_sec: m.atime(), tv_nsec: m.atime_nsec() },
                    libc::timespec { tv_sec: m.mtime(), tv_nsec: m.mtime_nsec() },
                ];
                let c = std::ffi::CString::new(dp.as_os_str().as_encoded_bytes()).map_err(std::io::Error::other)?;
                // SAFETY: valid path and a two-element timespec array, as utimensat requires.
                unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
            }
        }
    }
    Ok(())
}

/// Whether something is mounted exactly at `path` (in the daemon's mount namespace).
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    let want = path.to_string_lossy();
    info.lines().filter_map(|l| l.split(' ').nth(4)).any(|p| p.replace("\\040", " ") == want)
}
