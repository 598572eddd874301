//! Network namespaces bound to paths (like `ip netns add`), and running code inside
//! one. A container's namespace lives as long as its bind mount or a process in it.
//!
//! Joining a namespace is per thread, so work "inside" a namespace runs on a fresh
//! OS thread that setns()es, does its job and exits; tokio's pooled threads never
//! change namespace.

use std::fs::{self, File};
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
use nix::mount::MsFlags;
use nix::sched::CloneFlags;

use crate::error::{NetError, Result};

/// statfs magic of nsfs, the filesystem of /proc/<pid>/ns/* files.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// Runs `f` on a new thread that has joined the network namespace at `netns`.
pub async fn run_in_netns<T, F>(netns: &Path, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> std::io::Result<T> + Send + 'static,
{
    let path = netns.to_path_buf();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("berth-netns".into())
        .spawn(move || {
            let result = (|| {
                let ns = File::open(&path)?;
                nix::sched::setns(&ns, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
                f()
            })();
            let _ = tx.send(result);
        })
        .map_err(|e| NetError::system("spawn a namespace thread", e))?;
    rx.await
        .map_err(|_| NetError::system_msg("namespace thread died"))?
        .map_err(|e| NetError::system(format!("in network namespace {}", netns.display()), e))
}

/// A route-netlink socket created inside `netns` (a socket stays in the namespace it
/// was created in, whichever thread uses it later).
fn netlink_socket_here() -> std::io::Result<OwnedFd> {
    let sock = rtnetlink::sys::Socket::new(rtnetlink::sys::protocols::NETLINK_ROUTE)?;
    // SAFETY: into_raw_fd hands over ownership of a valid, open descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(sock.into_raw_fd()) })
}

/// Wraps a route-netlink socket in an rtnetlink handle, its connection driven by a
/// task on the current runtime. The task ends when the handle is dropped.
pub(crate) fn handle_from_socket(fd: OwnedFd) -> Result<rtnetlink::Handle> {
    use std::os::fd::FromRawFd as _;
    let raw = fd.into_raw_fd();
    // SAFETY: `raw` is an open netlink socket we own (taken out of an OwnedFd above);
    // TokioSocket takes ownership and closes it. It must be built inside a runtime,
    // which every caller is (all are async functions run by tokio).
    let sock = unsafe { rtnetlink::sys::TokioSocket::from_raw_fd(raw) };
    let (conn, handle, _) = rtnetlink::from_socket(sock);
    tokio::spawn(conn);
    Ok(handle)
}

/// An rtnetlink handle operating inside the namespace at `netns`.
pub async fn netlink_in(netns: &Path) -> Result<rtnetlink::Handle> {
    let fd = run_in_netns(netns, netlink_socket_here).await?;
    handle_from_socket(fd)
}

/// True when `path` is a bind-mounted network namespace (nsfs).
pub fn is_netns(path: &Path) -> bool {
    match nix::sys::statfs::statfs(path) {
        Ok(st) => st.filesystem_type().0 == NSFS_MAGIC,
        Err(_) => false,
    }
}

async fn set_link_up(handle: &rtnetlink::Handle, name: &str) -> Result<()> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    let link = links
        .try_next()
        .await
        .map_err(|e| NetError::system(format!("find {name}"), e))?
        .ok_or_else(|| NetError::system_msg(format!("no {name} in the namespace")))?;
    handle
        .link()
        .set(rtnetlink::LinkUnspec::new_with_index(link.header.index).up().build())
        .execute()
        .await
        .map_err(|e| NetError::system(format!("set {name} up"), e))
}

/// Creates a new network namespace bound at `path` with its loopback up. This is
/// also `--network none`: a namespace with nothing but lo.
pub async fn create_netns(path: &Path) -> Result<()> {
    if is_netns(path) {
        return Err(NetError::conflict(format!("network namespace {} already exists", path.display())));
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| NetError::system(format!("create {}", parent.display()), e))?;
    }
    File::create(path).map_err(|e| NetError::system(format!("create {}", path.display()), e))?;
    let target = path.to_path_buf();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new().name("berth-netns-new".into()).spawn(move || {
        let result = (|| -> std::io::Result<OwnedFd> {
            nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
            nix::mount::mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(std::io::Error::from)?;
            netlink_socket_here()
        })();
        let _ = tx.send(result);
    });
    let result = match spawned {
        Ok(_) => rx.await.map_err(|_| std::io::Error::other("namespace thread died")).and_then(|r| r),
        Err(e) => Err(e),
    };
    let fd = match result {
        Ok(fd) => fd,
        Err(e) => {
            let _ = delete_netns(path);
            return Err(NetError::system(format!("create network namespace {}", path.display()), e));
        }
    };
    let up = async {
        let handle = handle_from_socket(fd)?;
        set_link_up(&handle, "lo").await
    };
    if let Err(e) = up.await {
        let _ = delete_netns(path);
        return Err(e);
    }
    Ok(())
}

/// Unmounts and removes a namespace created by [`create_netns`]. The namespace itself
/// (and every interface in it) goes away once no process uses it. Idempotent.
pub fn delete_netns(path: &Path) -> Result<()> {
    crate::nspool::remove_ns_file(path).map_err(|e| NetError::system(format!("remove {}", path.display()), e))
}

/// The path of a process's network namespace (for `--network container:<id>`, whose
/// namespace is the other container's).
pub fn netns_of_pid(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/ns/net"))
}

/// Fresh network namespaces made ahead of time, each with its loopback up and nothing
/// else, so a container's start binds a ready one at its path ([`crate::nspool::Pool::take`])
/// instead of making one (an `unshare`, the kernel's setup of every per-namespace
/// subsystem, a netlink request: ~1 ms). Only never-used namespaces are pooled: one a
/// container has had is never handed to another, which would inherit its sockets,
/// conntrack and neighbours.
pub type NetnsPool = crate::nspool::Pool<PathBuf>;

/// A [`NetnsPool`] of `size` kept under `dir` (what an earlier daemon left there is
/// removed); it fills on [`crate::nspool::Pool::refill`].
pub fn open_netns_pool(dir: &Path, size: usize) -> Result<std::sync::Arc<NetnsPool>> {
    let make: crate::nspool::Maker<PathBuf> = Box::new(|stem: PathBuf| {
        Box::pin(async move {
            create_netns(&stem).await.map_err(std::io::Error::other)?;
            Ok(stem)
        })
    });
    NetnsPool::open(dir, size, "a network namespace", make).map_err(|e| NetError::system(format!("open {}", dir.display()), e))
}
