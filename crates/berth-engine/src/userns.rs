//! User namespaces of pods. The engine makes the namespace itself — a helper process
//! unshares one, the engine writes its id maps and keeps it as a bind-mounted nsfs file
//! under `<exec-root>/userns/` — so it exists before any of the pod's processes: the
//! network namespace is made inside it (so the pod's root may configure its own network
//! and mount its sysfs), the image layers of its containers are id-mapped into it, and
//! the pod's processes all join it. Like a netns file, it outlives the daemon.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::container::record::{IdMap, UserNs};

/// Where the user namespace of container `owner` is kept.
pub fn path(exec_root: &Path, owner: &str) -> PathBuf {
    exec_root.join("userns").join(owner)
}

/// Where the id-mapped copies of container `id`'s bind sources are staged.
pub fn staging(exec_root: &Path, id: &str) -> PathBuf {
    exec_root.join("idmap").join(id)
}

/// The id map text of /proc/<pid>/uid_map (one `inside outside count` line per range).
fn map_text(m: &[IdMap]) -> String {
    m.iter().map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size)).collect()
}

/// A user namespace's root is nobody to the host's files: it reaches the container's
/// root, state and log files only through directories anyone may search. Names the first
/// directory on the way to `paths` that it could not pass.
pub fn check_searchable(paths: &[&Path]) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    for p in paths {
        for dir in p.ancestors() {
            let Ok(m) = std::fs::metadata(dir) else { continue };
            if m.is_dir() && m.permissions().mode() & 0o001 == 0 {
                return Err(format!(
                    "pods in user namespaces need every directory above the data and exec roots searchable by others: {} is {:o} (chmod o+x)",
                    dir.display(),
                    m.permissions().mode() & 0o7777
                ));
            }
        }
    }
    Ok(())
}

/// Makes the user namespace at `at` with `ns`'s mappings, unless one is there already.
pub fn create(at: &Path, ns: &UserNs) -> io::Result<()> {
    if berth_net::netns::is_netns(at) {
        return Ok(());
    }
    if let Some(dir) = at.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::File::create(at)?;
    let made = in_helper(None, libc::CLONE_NEWUSER, |pid| {
        std::fs::write(format!("/proc/{pid}/uid_map"), map_text(&ns.uids))?;
        std::fs::write(format!("/proc/{pid}/gid_map"), map_text(&ns.gids))?;
        bind(&format!("/proc/{pid}/ns/user"), at)
    });
    if made.is_err() {
        let _ = remove(at);
    }
    made
}

/// Makes a network namespace inside the user namespace at `userns`, kept at `at` (as
/// berth-net keeps its own), with its loopback up.
pub async fn create_netns(userns: &Path, at: &Path) -> io::Result<()> {
    let (u, a) = (userns.to_path_buf(), at.to_path_buf());
    tokio::task::spawn_blocking(move || -> io::Result<()> {
        if let Some(dir) = a.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::File::create(&a)?;
        let ns: OwnedFd = std::fs::File::open(&u)?.into();
        in_helper(Some(ns), libc::CLONE_NEWNET, |pid| bind(&format!("/proc/{pid}/ns/net"), &a))
    })
    .await
    .map_err(io::Error::other)??;
    let up = berth_net::netns::run_in_netns(at, loopback_up).await.map_err(|e| io::Error::other(e.to_string()));
    if up.is_err() {
        let _ = berth_net::netns::delete_netns(at);
    }
    up
}

/// Unmounts and removes a namespace file (idempotent).
pub fn remove(at: &Path) -> io::Result<()> {
    match rustix::mount::unmount(at, rustix::mount::UnmountFlags::DETACH) {
        Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(e.into()),
    }
    match std::fs::remove_file(at) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Id-mapped copies, under `staging`, of what a container in the user namespace at
/// `userns` (whose root is `root` on the host) binds from the host: `(source, recursive)`
/// pairs, files or directories. The runtime binds the copies instead, so the pod's root
/// owns what the host's root owns there. A source whose filesystem cannot id-map is left
/// out (bound as it is). Returns source → copy; [`release_binds`] drops the copies once
/// the container holds its own mounts.
pub fn stage_binds(userns: &Path, root: (u32, u32), sources: &[(PathBuf, bool)], staging: &Path) -> std::collections::HashMap<PathBuf, PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let mut out = std::collections::HashMap::new();
    let Ok(ns) = std::fs::File::open(userns) else { return out };
    let idmap = berth_image::mount::Idmap { userns: ns.as_fd(), root_uid: root.0, root_gid: root.1 };
    release_binds(staging);
    if std::fs::DirBuilder::new().recursive(true).mode(0o711).create(staging).is_err() {
        return out;
    }
    for (i, (src, recursive)) in sources.iter().enumerate() {
        if out.contains_key(src) {
            continue;
        }
        let dst = staging.join(i.to_string());
        let made = match std::fs::metadata(src) {
            Ok(m) if m.is_dir() => std::fs::create_dir(&dst),
            Ok(_) => std::fs::File::create(&dst).map(|_| ()),
            Err(e) => Err(e),
        };
        match made.and_then(|_| berth_image::mount::bind_idmapped_at(src, &dst, &idmap, *recursive)) {
            Ok(()) => {
                out.insert(src.clone(), dst);
            }
            Err(e) => {
                tracing::debug!("{} is bound without id-mapping: {e}", src.display());
                let _ = std::fs::remove_dir(&dst).or_else(|_| std::fs::remove_file(&dst));
            }
        }
    }
    out
}

/// Detaches and removes what [`stage_binds`] made (also what a crash left).
pub fn release_binds(staging: &Path) {
    let Ok(rd) = std::fs::read_dir(staging) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let _ = rustix::mount::unmount(&p, rustix::mount::UnmountFlags::DETACH);
        let _ = std::fs::remove_dir(&p).or_else(|_| std::fs::remove_file(&p));
    }
    let _ = std::fs::remove_dir(staging);
}

fn bind(src: &str, dst: &Path) -> io::Result<()> {
    rustix::mount::mount_bind(src, dst).map_err(|e| io::Error::new(io::Error::from(e).kind(), format!("bind {src} at {}: {e}", dst.display())))
}

/// Forks a helper that joins the user namespace `join` (if any) and unshares `flags`,
/// runs `with(helper pid)` here while the helper holds the new namespace, then ends it.
/// The daemon is multi-threaded: the helper only makes system calls until it exits.
fn in_helper(join: Option<OwnedFd>, flags: libc::c_int, with: impl FnOnce(i32) -> io::Result<()>) -> io::Result<()> {
    let (ready_r, ready_w) = pipe()?;
    let (done_r, done_w) = pipe()?;
    let join_fd = join.as_ref().map_or(-1, |f| f.as_raw_fd());
    let (ready_r_fd, done_w_fd) = (ready_r.as_raw_fd(), done_w.as_raw_fd());
    // SAFETY: fork from a multi-threaded process; the child only calls async-signal-safe
    // functions (setns, unshare, write, read, _exit) on descriptors opened before.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: as above: raw system calls on valid descriptors, then _exit.
        unsafe {
            // Our copies of the parent's ends: holding `done`'s write end would keep the
            // read below from ever seeing the parent close it.
            libc::close(ready_r_fd);
            libc::close(done_w_fd);
            let ok = (join_fd < 0 || libc::setns(join_fd, libc::CLONE_NEWUSER) == 0) && libc::unshare(flags) == 0;
            let b: u8 = if ok { b'k' } else { b'e' };
            libc::write(ready_w.as_raw_fd(), &b as *const u8 as *const libc::c_void, 1);
            let mut x = 0u8;
            libc::read(done_r.as_raw_fd(), &mut x as *mut u8 as *mut libc::c_void, 1);
            libc::_exit(if ok { 0 } else { 1 });
        }
    }
    drop(ready_w);
    drop(done_r);
    let mut b = [0u8; 1];
    let got = rustix::io::read(ready_r.as_fd(), &mut b).map_err(io::Error::from);
    let result = match got {
        Ok(1) if b[0] == b'k' => with(pid),
        Ok(_) => Err(io::Error::other("the namespace helper could not make the namespace")),
        Err(e) => Err(e),
    };
    drop(done_w);
    let mut status = 0;
    // SAFETY: waitpid on our own child, into a local.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    result
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(io::Error::from)
}

/// `ip link set lo up`, on the current thread's network namespace.
fn loopback_up() -> io::Result<()> {
    // SAFETY: a plain datagram socket and SIOCGIFFLAGS/SIOCSIFFLAGS on a zeroed ifreq
    // naming "lo"; the struct outlives both calls.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let sock = <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd);
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, c) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *c as libc::c_char;
        }
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_directory_on_the_way_is_named() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let inner = t.path().join("a/b");
        std::fs::create_dir_all(&inner).unwrap();
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(t.path().join("a"), std::fs::Permissions::from_mode(0o700)).unwrap();
        let e = check_searchable(&[&inner]).unwrap_err();
        assert!(e.contains("/a is 700"), "{e}");
    }

    #[test]
    fn map_lines() {
        let m = [IdMap { container_id: 0, host_id: 100000, size: 65536 }];
        assert_eq!(map_text(&m), "0 100000 65536\n");
    }
}
