//! Follows the host's resolv.conf: when it changes (DHCP, VPNs, systemd-resolved
//! rewrite it; tools often replace it by rename or through a symlink), the embedded
//! DNS forwards to the new servers at once, as dockerd's does. New containers read the
//! file when they start anyway.

use std::path::{Path, PathBuf};
use std::sync::Weak;

use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
use tokio::io::unix::AsyncFd;

use crate::dns::DnsShared;
use crate::files::HostResolvConf;

/// Watches `path` (its directory, and its symlink target's) for the manager's lifetime:
/// the task ends on the first event after `dns` is gone.
pub(crate) fn spawn(path: PathBuf, dns: Weak<DnsShared>) {
    let fd = match inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC) {
        Ok(fd) => fd,
        Err(e) => {
            tracing::warn!("cannot watch {}: {e}", path.display());
            return;
        }
    };
    let flags = WatchFlags::CLOSE_WRITE | WatchFlags::MOVED_TO | WatchFlags::CREATE | WatchFlags::DELETE;
    let mut dirs: Vec<PathBuf> = path.parent().map(Path::to_path_buf).into_iter().collect();
    if let Some(target_dir) = std::fs::canonicalize(&path).ok().and_then(|t| t.parent().map(Path::to_path_buf))
        && !dirs.contains(&target_dir)
    {
        dirs.push(target_dir);
    }
    for d in &dirs {
        if let Err(e) = inotify::add_watch(&fd, d.as_path(), flags) {
            tracing::warn!("cannot watch {}: {e}", d.display());
        }
    }
    // SAFETY: `fd` is an open inotify descriptor that the AsyncFd owns (and closes)
    // from here on; as_raw_fd of an OwnedFd always returns that same descriptor.
    let Ok(afd) = (unsafe { AsyncFd::register(fd) }) else { return };
    let mut last = HostResolvConf::read(&path).ok().map(|h| h.nameservers);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok(mut ready) = afd.readable().await else { return };
            // Any event may be a change; drain them all, then read the file once.
            loop {
                match rustix::io::read(afd.get_ref(), &mut buf) {
                    Ok(n) if n > 0 => continue,
                    _ => break,
                }
            }
            ready.clear_ready();
            let Some(shared) = dns.upgrade() else { return };
            let Ok(now) = HostResolvConf::read(&path) else { continue };
            if last.as_ref() != Some(&now.nameservers) {
                let ups = crate::manager::host_upstreams(&now);
                tracing::info!("{} changed: the embedded DNS now forwards to {ups:?}", path.display());
                shared.set_default_upstreams(ups);
                last = Some(now.nameservers);
            }
        }
    });
}
