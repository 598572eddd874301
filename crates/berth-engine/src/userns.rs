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
    mount_point(at)?;
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

/// User namespaces made ahead of time with one mapping (the daemon's `--userns-remap`),
/// each with a network namespace inside it (loopback up). Making the two costs two forks
/// of the daemon and the map writes, about 2 ms of a container's start; a container takes
/// a ready pair instead. Each is still the container's own: taken once, never shared; the
/// pool is topped up after the start. Kept as nsfs binds under `<exec-root>/userns-pool/`
/// (the filling, clearing and leftovers are [`berth_net::nspool::Pool`]'s).
pub struct Pool {
    ns: UserNs,
    ahead: std::sync::Arc<berth_net::nspool::Pool<(PathBuf, PathBuf)>>,
    /// Network namespaces of taken user namespaces, by the path the user namespace was
    /// put at, until the container's network takes them ([`Pool::take_netns`]).
    spare: std::sync::Mutex<std::collections::HashMap<PathBuf, PathBuf>>,
}

/// How many pairs the pool keeps ready: enough for a burst of two starts.
const POOL_SIZE: usize = 2;

impl Pool {
    /// An empty pool for `ns` under `exec_root`; what an earlier daemon left is removed.
    pub fn new(exec_root: &Path, ns: UserNs) -> io::Result<std::sync::Arc<Pool>> {
        let for_maker = ns.clone();
        let make: berth_net::nspool::Maker<(PathBuf, PathBuf)> = Box::new(move |stem: PathBuf| {
            let ns = for_maker.clone();
            Box::pin(async move {
                tokio::task::spawn_blocking(move || {
                    let (user, net) = (stem.with_extension("user"), stem.with_extension("net"));
                    if let Err(e) = create(&user, &ns).and_then(|_| make_netns(&user, &net)) {
                        let _ = remove(&user);
                        return Err(e);
                    }
                    Ok((user, net))
                })
                .await
                .map_err(io::Error::other)?
            })
        });
        let ahead = berth_net::nspool::Pool::open(&exec_root.join("userns-pool"), POOL_SIZE, "a user namespace", make)?;
        Ok(std::sync::Arc::new(Pool { ns, ahead, spare: Default::default() }))
    }

    /// Puts a ready user namespace with `ns`'s mappings at `at` (a fresh file); its
    /// network namespace waits for [`Pool::take_netns`]. False when the mappings are not
    /// the pool's or none is ready: the caller makes one with [`create`].
    pub fn take(&self, at: &Path, ns: &UserNs) -> bool {
        if (&ns.uids, &ns.gids) != (&self.ns.uids, &self.ns.gids) {
            return false;
        }
        let Some((user, net)) = self.ahead.pop() else { return false };
        let placed = berth_net::nspool::place(&user, at);
        let _ = remove(&user);
        if placed {
            if let Some(old) = self.spare.lock().unwrap().insert(at.to_path_buf(), net) {
                let _ = remove(&old);
            }
        } else {
            let _ = remove(&net);
        }
        placed
    }

    /// Puts the network namespace made with the user namespace at `userns` (by
    /// [`Pool::take`]) at `at`. False when there is none: the caller makes one.
    pub fn take_netns(&self, userns: &Path, at: &Path) -> bool {
        let Some(net) = self.spare.lock().unwrap().remove(userns) else { return false };
        let placed = berth_net::nspool::place(&net, at);
        let _ = remove(&net);
        placed
    }

    /// Drops the network namespace kept for the user namespace at `userns`, if the
    /// container did not take it (its start failed, or it joins another's network).
    pub fn discard_netns(&self, userns: &Path) {
        if let Some(net) = self.spare.lock().unwrap().remove(userns) {
            let _ = remove(&net);
        }
    }

    /// Removes every namespace the pool holds and makes no more (the daemon is
    /// stopping: what it made ahead is not left mounted behind it).
    pub fn clear(&self) {
        self.ahead.clear();
        for p in std::mem::take(&mut *self.spare.lock().unwrap()).into_values() {
            let _ = remove(&p);
        }
    }

    /// Tops the pool up on a task of its own (one filler at a time).
    pub fn refill(&self) {
        self.ahead.refill();
    }
}

/// Makes a network namespace inside the user namespace at `userns`, kept at `at` (as
/// berth-net keeps its own), with its loopback up.
pub async fn create_netns(userns: &Path, at: &Path) -> io::Result<()> {
    let (u, a) = (userns.to_path_buf(), at.to_path_buf());
    tokio::task::spawn_blocking(move || make_netns(&u, &a)).await.map_err(io::Error::other)?
}

/// [`create_netns`], blocking.
fn make_netns(userns: &Path, at: &Path) -> io::Result<()> {
    mount_point(at)?;
    let ns: OwnedFd = std::fs::File::open(userns)?.into();
    let made = in_helper(Some(ns), libc::CLONE_NEWNET, |pid| bind(&format!("/proc/{pid}/ns/net"), at));
    if made.is_err() {
        let _ = remove(at);
    }
    made
}

/// Unmounts and removes a namespace file (idempotent).
pub use berth_net::nspool::remove_ns_file as remove;

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

/// The empty file a namespace is bound at (its directory made if missing).
fn mount_point(at: &Path) -> io::Result<()> {
    if let Some(dir) = at.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::File::create(at).map(drop)
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
    let (ready_w_fd, done_r_fd) = (ready_w.as_raw_fd(), done_r.as_raw_fd());
    // SAFETY: getpid cannot fail.
    let parent = unsafe { libc::getpid() };
    // SAFETY: fork from a multi-threaded process; the child only calls async-signal-safe
    // functions (prctl, dup2, close_range, setns, unshare, socket, ioctl, close, write,
    // read, _exit) on descriptors opened before (or by itself), and allocates nothing.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: as above: raw system calls on valid descriptors, then _exit.
        unsafe {
            // Killed with the daemon: it must not outlive it holding copies of its
            // descriptors (the stores' locks among them).
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            // Keep only our three descriptors (as 0, 1, 2; the sources are all above 2):
            // the daemon's others, other helpers' pipes among them, are not ours to hold.
            // Another helper holding our `done` pipe's write end would keep the read
            // below from ever seeing the parent close it.
            let join_at = if join_fd >= 0 { libc::dup2(join_fd, 0) } else { -1 };
            libc::dup2(ready_w_fd, 1);
            libc::dup2(done_r_fd, 2);
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            // A new network namespace gets its loopback up here: the helper is in it.
            let ok = (join_fd < 0 || (join_at == 0 && libc::setns(0, libc::CLONE_NEWUSER) == 0))
                && libc::unshare(flags) == 0
                && (flags & libc::CLONE_NEWNET == 0 || loopback_up().is_ok());
            let b: u8 = if ok { b'k' } else { b'e' };
            libc::write(1, &b as *const u8 as *const libc::c_void, 1);
            let mut x = 0u8;
            libc::read(2, &mut x as *mut u8 as *mut libc::c_void, 1);
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
    // Released by a byte, not only by the close: on a kernel without close_range another
    // helper may hold a copy of this end.
    let _ = rustix::io::write(&done_w, b"x");
    drop(done_w);
    let mut status = 0;
    // SAFETY: waitpid on our own child, into a local.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    result
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(io::Error::from)
}

/// `ip link set lo up`, on the current thread's network namespace. Only system calls:
/// a forked helper runs it.
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

    /// The pool on the real kernel (root only, as CI runs): each ready pair goes to one
    /// taker, a network namespace not taken is dropped at once, and nothing stays mounted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_pool_hands_out_each_pair_once_and_drops_what_is_not_taken() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        use std::os::unix::fs::MetadataExt;
        let t = tempfile::tempdir().unwrap();
        let map = vec![IdMap { container_id: 0, host_id: 300000, size: 65536 }];
        let ns = UserNs { uids: map.clone(), gids: map, of: None, remap: true };
        let pool = Pool::new(t.path(), ns.clone()).unwrap();
        pool.refill();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while pool.ahead.ready() < POOL_SIZE || pool.ahead.filling() {
            assert!(std::time::Instant::now() < deadline, "the pool was not filled");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let (a, b) = (t.path().join("a.user"), t.path().join("b.user"));
        assert!(pool.take(&a, &ns) && pool.take(&b, &ns));
        assert!(!pool.take(&t.path().join("c.user"), &ns), "only {POOL_SIZE} were ready");
        let other = UserNs { uids: vec![IdMap { container_id: 0, host_id: 400000, size: 1 }], ..ns.clone() };
        assert!(!pool.take(&t.path().join("d.user"), &other), "another mapping is not the pool's");
        assert_ne!(std::fs::metadata(&a).unwrap().ino(), std::fs::metadata(&b).unwrap().ino(), "two user namespaces");

        // a's start takes its network namespace; b's start failed before its network.
        let a_net = t.path().join("a.net");
        assert!(pool.take_netns(&a, &a_net));
        assert!(berth_net::netns::is_netns(&a_net));
        pool.discard_netns(&b);
        assert!(!pool.take_netns(&b, &t.path().join("b.net")), "a discarded namespace is gone");
        assert!(!pool.take_netns(&a, &t.path().join("a2.net")), "each is taken once");
        let held: Vec<_> = std::fs::read_dir(t.path().join("userns-pool")).unwrap().flatten().map(|e| e.file_name()).collect();
        assert!(held.is_empty(), "the pool still holds {held:?}");

        pool.clear();
        pool.refill();
        for p in [&a, &b, &a_net] {
            remove(p).unwrap();
        }
        assert_eq!(berth_testutil::daemon::mounts_under(t.path()), Vec::<String>::new());
    }

    #[test]
    fn map_lines() {
        let m = [IdMap { container_id: 0, host_id: 100000, size: 65536 }];
        assert_eq!(map_text(&m), "0 100000 65536\n");
    }
}
