//! Rootless daemon start-up (docs/rootless.md): an ordinary user's `berth daemon`
//! re-executes itself in a new user namespace where it is root, with the user's
//! subordinate ids mapped after its own by the setuid helpers `newuidmap`/`newgidmap`
//! (Debian's `uidmap`), then in a new mount namespace of that user namespace. The
//! network namespace stays the host's: the API socket and slirp4netns's published
//! ports are then on the host, and nothing else needs a helper in between (rootlesskit's
//! job for dockerd). Everything the daemon mounts (overlays, network namespaces) lives in
//! its own mount namespace, so the host's mount table never shows them.
//!
//! The two halves talk over two pipes passed as fds 3 (parent → child) and 4 (child →
//! parent): the child unshares its user namespace and says so; the parent writes the
//! maps (a process may not map ids it does not own, the helpers may) and answers "ok",
//! or an error line and exits. The parent then stays to forward signals to the daemon
//! and to return its exit status, so `kill <pid>` and service managers see one daemon.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};

use berth_engine::container::record::IdMap;

/// Set in the re-executed child's environment.
const CHILD_ENV: &str = "_BERTH_ROOTLESS_CHILD";
const FROM_PARENT: i32 = 3;
const TO_PARENT: i32 = 4;

/// True when this process is in a user namespace other than the initial one.
pub fn in_user_namespace() -> bool {
    let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let f: Vec<&str> = map.split_whitespace().collect();
    !(f.is_empty() || f == ["0", "0", "4294967295"])
}

/// What `berth daemon` must do about rootless mode before anything else.
pub enum Start {
    /// Run as a normal (rootful) daemon.
    Rootful,
    /// Run rootless here: this process is root in a user namespace of its own already
    /// (the re-executed child, or a daemon started under `unshare -U`/rootlesskit).
    RootlessHere,
    /// The re-exec parent finished: exit with this code.
    Exit(i32),
}

/// Decides, and does the re-exec for an ordinary user. `asked`: `--rootless`.
/// `exec_root`: where a previous daemon's shims would be (`--exec-root`, else the
/// rootless default): their namespaces are joined rather than new ones made.
pub fn prepare(args: &[OsString], asked: bool, exec_root: Option<&Path>) -> Start {
    if let Some(marker) = std::env::var_os(CHILD_ENV) {
        // SAFETY: removing our own marker before any thread exists.
        unsafe { std::env::remove_var(CHILD_ENV) };
        let join = marker.to_str().and_then(|m| m.parse::<i32>().ok()).filter(|p| *p > 0);
        return match child_setup(join) {
            Ok(()) => Start::RootlessHere,
            Err(e) => {
                eprintln!("berth daemon: rootless: {e}");
                Start::Exit(1)
            }
        };
    }
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 && in_user_namespace() {
        // Root of some user namespace (not the host's; `unshare -U`, rootlesskit): rootless
        // in place when asked. Not by default: root of a container's user namespace may
        // own its network namespace and cgroups (a nested engine), and ran rootful before.
        // A mount namespace of our own keeps the overlays off the caller's table.
        if !asked {
            return Start::Rootful;
        }
        return match private_mounts() {
            Ok(()) => Start::RootlessHere,
            Err(e) => {
                eprintln!("berth daemon: rootless: {e}");
                Start::Exit(1)
            }
        };
    }
    if euid == 0 {
        if asked {
            eprintln!("berth daemon: --rootless is for an ordinary user: start the daemon as that user (docs/rootless.md), or drop --rootless to run as root");
            return Start::Exit(1);
        }
        return Start::Rootful;
    }
    match reexec(args, exec_root) {
        Ok(code) => Start::Exit(code),
        Err(e) => {
            eprintln!("berth daemon: rootless: {e}");
            Start::Exit(1)
        }
    }
}

fn user_name(uid: u32) -> Option<String> {
    // SAFETY: single-threaded here (before the daemon's runtime starts); the returned
    // record is copied out before any other call.
    unsafe {
        let pw = libc::getpwuid(uid);
        if pw.is_null() || (*pw).pw_name.is_null() {
            return None;
        }
        Some(std::ffi::CStr::from_ptr((*pw).pw_name).to_string_lossy().into_owned())
    }
}

/// The arguments of newuidmap/newgidmap: our own id as 0, then the subordinate ranges
/// from 1 on.
fn map_args(own: u32, ranges: &[IdMap]) -> Vec<String> {
    let mut out = vec!["0".to_string(), own.to_string(), "1".to_string()];
    for r in ranges {
        out.push((r.container_id + 1).to_string());
        out.push(r.host_id.to_string());
        out.push(r.size.to_string());
    }
    out
}

fn helper(name: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{name} not found: install Debian's uidmap package (apt-get install uidmap)"))
}

/// A process of an earlier daemon of ours that still holds its namespaces: a shim (of a
/// running container) or the shim zygote, found by its command line naming `exec_root`.
/// Live restore needs the new daemon in those namespaces: the shims' mounts and network
/// namespaces are only there, and the zygote (which outlives a daemon killed with
/// SIGKILL) starts new containers from there.
fn holder(exec_root: &Path, uid: u32) -> Option<i32> {
    let own = std::fs::read_link("/proc/self/ns/user").ok()?;
    let needle = exec_root.to_string_lossy().into_owned();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let argv: Vec<String> = cmd.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        let ours = argv.len() >= 3 && ["berth", "berth-shim"].iter().any(|b| argv[0] == *b || argv[0].ends_with(&format!("/{b}"))) && argv[1].starts_with("shim") && argv[2].starts_with(&format!("{needle}/"));
        if !ours {
            return None;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let ruid: u32 = status.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().next()?.parse().ok()?;
        let ns = std::fs::read_link(format!("/proc/{pid}/ns/user")).ok()?;
        (ruid == uid && ns != own).then_some(pid)
    })
}

fn reexec(args: &[OsString], exec_root: Option<&Path>) -> Result<i32, String> {
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let user = user_name(uid).or_else(|| std::env::var("USER").ok()).ok_or_else(|| format!("uid {uid} has no user name"))?;
    let (uids, gids) = berth_engine::remap::subordinate_ids(Path::new("/etc"), &user, uid)?;
    let newuidmap = helper("newuidmap")?;
    let newgidmap = helper("newgidmap")?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find my own binary: {e}"))?;

    let (p2c_r, p2c_w) = pipe()?;
    let (c2p_r, c2p_w) = pipe()?;
    // Forwarded signals are waited for synchronously (sigtimedwait); the child unblocks
    // them again before exec (below).
    let sigs = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT, libc::SIGCHLD];
    // SAFETY: a sigset_t filled by sigemptyset/sigaddset, applied to this thread only.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in sigs {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    let mut cmd = std::process::Command::new(&exe);
    let join = exec_root.and_then(|r| holder(r, uid));
    cmd.arg("daemon").args(args).env(CHILD_ENV, join.unwrap_or(0).to_string());
    let (r, w) = (p2c_r.as_raw_fd(), c2p_w.as_raw_fd());
    // SAFETY: dup2 only between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            if libc::dup2(r, FROM_PARENT) < 0 || libc::dup2(w, TO_PARENT) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The signals the parent blocked (to wait for them) must reach the daemon:
            // a forked child inherits the mask, and std does not always reset it.
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| format!("re-executing {}: {e}", exe.display()))?;
    drop(p2c_r);
    drop(c2p_w);
    let mut from_child = std::fs::File::from(c2p_r);
    let mut to_child = std::fs::File::from(p2c_w);
    let mut b = [0u8; 1];
    if !matches!(from_child.read(&mut b), Ok(1)) {
        // It said why on stderr.
        let st = child.wait().map_err(|e| e.to_string())?;
        return Ok(st.code().unwrap_or(1));
    }
    let pid = child.id().to_string();
    let mapped = (|| -> Result<(), String> {
        if b[0] == b'j' {
            // It joined the namespaces of an earlier daemon: mapped long ago.
            return Ok(());
        }
        for (tool, own, ranges) in [(&newuidmap, uid, &uids), (&newgidmap, gid, &gids)] {
            let out = std::process::Command::new(tool).arg(&pid).args(map_args(own, ranges)).output().map_err(|e| format!("{}: {e}", tool.display()))?;
            if !out.status.success() {
                return Err(format!("{} {pid} {}: {}", tool.display(), map_args(own, ranges).join(" "), String::from_utf8_lossy(&out.stderr).trim()));
            }
        }
        Ok(())
    })();
    match mapped {
        Ok(()) => {
            let _ = to_child.write_all(b"k");
        }
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    }
    drop(to_child);
    let cpid = child.id() as i32;
    loop {
        // SAFETY: `set` is a valid signal set; siginfo is only written by the kernel.
        let sig = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let ts = libc::timespec { tv_sec: 1, tv_nsec: 0 };
            libc::sigtimedwait(&set, &mut info, &ts)
        };
        if sig > 0 && sig != libc::SIGCHLD {
            // SAFETY: a signal to our own child.
            unsafe { libc::kill(cpid, sig) };
        }
        if let Ok(Some(st)) = child.try_wait() {
            use std::os::unix::process::ExitStatusExt;
            return Ok(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)));
        }
    }
}

/// A close-on-exec pipe whose ends are numbered 10 or above: the child's pre_exec then
/// dup2s them onto 3 and 4 without one landing on the other (or on itself, where dup2
/// would leave close-on-exec set).
fn pipe() -> Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd), String> {
    let mut fds = [0i32; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    let mut high = [0i32; 2];
    for (i, fd) in fds.iter().enumerate() {
        // SAFETY: fd is open; F_DUPFD_CLOEXEC makes a new descriptor, then the old one
        // is closed (it is owned by nobody else).
        unsafe {
            high[i] = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 10);
            libc::close(*fd);
        }
        if high[i] < 0 {
            return Err(format!("pipe: {}", std::io::Error::last_os_error()));
        }
    }
    // SAFETY: both were just opened and are owned by nobody else.
    Ok(unsafe { (std::os::fd::OwnedFd::from_raw_fd(high[0]), std::os::fd::OwnedFd::from_raw_fd(high[1])) })
}

/// Enters the user and mount namespaces of `pid` (an earlier daemon's shim).
fn join_namespaces(pid: i32) -> Result<(), String> {
    let open = |what: &str| std::fs::File::open(format!("/proc/{pid}/ns/{what}")).map_err(|e| format!("{what} namespace of {pid}: {e}"));
    let (user, mnt) = (open("user")?, open("mnt")?);
    // Entering a mount namespace moves us to its root: come back to where we were (the
    // daemon's relative paths mean the caller's directory, there as on the host).
    let cwd = std::env::current_dir().ok();
    // SAFETY: single-threaded here; setns on descriptors we hold. The user namespace
    // is ours (we made it), so its owner may enter it, and then its mount namespace.
    unsafe {
        if libc::setns(user.as_raw_fd(), libc::CLONE_NEWUSER) < 0 {
            return Err(format!("joining the user namespace of {pid}: {}", std::io::Error::last_os_error()));
        }
        if libc::setns(mnt.as_raw_fd(), libc::CLONE_NEWNS) < 0 {
            return Err(format!("joining the mount namespace of {pid}: {}", std::io::Error::last_os_error()));
        }
    }
    if let Some(c) = cwd {
        let _ = std::env::set_current_dir(c);
    }
    Ok(())
}

/// The re-executed child: the namespaces of an earlier daemon whose shims still run
/// (`join`), else a new user namespace, mapped by the parent, and a mount namespace of
/// its own; then root there.
fn child_setup(join: Option<i32>) -> Result<(), String> {
    // SAFETY: the two descriptors were given to us by the parent (pre_exec's dup2), and
    // are owned by this function only. CLOEXEC: they must not reach the shims.
    let (mut from_parent, mut to_parent) = unsafe {
        libc::fcntl(FROM_PARENT, libc::F_SETFD, libc::FD_CLOEXEC);
        libc::fcntl(TO_PARENT, libc::F_SETFD, libc::FD_CLOEXEC);
        (std::fs::File::from_raw_fd(FROM_PARENT), std::fs::File::from_raw_fd(TO_PARENT))
    };
    // The holder may have ended since the parent found it: with nothing entered, start
    // afresh (its containers ended with it). Entered its user namespace but not its
    // mount namespace: stop with the reason rather than run half in, half out.
    let joined = match join.map(join_namespaces) {
        Some(Ok(())) => true,
        Some(Err(e)) if in_user_namespace() => return Err(e),
        Some(Err(e)) => {
            eprintln!("berth daemon: rootless: not joining the previous daemon's namespaces: {e}");
            false
        }
        None => false,
    };
    // SAFETY: single-threaded here; unshare only changes this process's namespaces.
    if !joined && unsafe { libc::unshare(libc::CLONE_NEWUSER) } < 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!(
            "cannot create a user namespace: {e} (is kernel.unprivileged_userns_clone or user.max_user_namespaces 0? see docs/rootless.md)"
        ));
    }
    to_parent.write_all(if joined { b"j" } else { b"u" }).map_err(|e| format!("telling the parent: {e}"))?;
    let mut b = [0u8; 1];
    if !matches!(from_parent.read(&mut b), Ok(1)) {
        return Err("the parent could not map our ids (see its message)".into());
    }
    drop(to_parent);
    drop(from_parent);
    // SAFETY: plain credential calls on this single thread. The ids are mapped now:
    // become root of the namespace (our own id is 0 already; drop the supplementary
    // groups, which show as nobody and only confuse permission checks).
    unsafe {
        libc::setgroups(0, std::ptr::null());
        if libc::setresgid(0, 0, 0) < 0 || libc::setresuid(0, 0, 0) < 0 {
            return Err(format!("becoming root of the user namespace: {}", std::io::Error::last_os_error()));
        }
        // If the parent dies (SIGKILL), stop in order rather than run on unsupervised.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    }
    if joined {
        return Ok(());
    }
    private_mounts()
}

fn private_mounts() -> Result<(), String> {
    // SAFETY: single-threaded here; unshare and mount on our own namespace only.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) < 0 {
            return Err(format!("cannot create a mount namespace: {}", std::io::Error::last_os_error()));
        }
        // Slave: the host's later mounts (a USB disk, an NFS share) still show up here;
        // ours never go back.
        let root = c"/";
        if libc::mount(std::ptr::null(), root.as_ptr(), std::ptr::null(), libc::MS_REC | libc::MS_SLAVE, std::ptr::null()) < 0 {
            return Err(format!("making / a slave mount: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// Rootless defaults, as rootless dockerd's: data under `$XDG_DATA_HOME/berth`
/// (`~/.local/share/berth`), state and the socket under `$XDG_RUNTIME_DIR`,
/// daemon.json in `$XDG_CONFIG_HOME/berth` (`~/.config/berth`).
pub struct Paths {
    pub data_root: PathBuf,
    pub exec_root: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub config_file: PathBuf,
}

pub fn paths() -> Result<Paths, String> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from).filter(|p| p.is_absolute());
    let home = env("HOME").ok_or("HOME is not set: rootless berth keeps its data under $XDG_DATA_HOME or ~/.local/share")?;
    let data = env("XDG_DATA_HOME").unwrap_or_else(|| home.join(".local/share"));
    let config = env("XDG_CONFIG_HOME").unwrap_or_else(|| home.join(".config"));
    let runtime = env("XDG_RUNTIME_DIR");
    Ok(Paths {
        data_root: data.join("berth"),
        exec_root: runtime.as_ref().map(|r| r.join("berth")),
        socket: runtime.as_ref().map(|r| r.join("berth.sock")),
        config_file: config.join("berth/daemon.json"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_own_id_then_the_ranges() {
        let r = [IdMap { container_id: 0, host_id: 100000, size: 65536 }, IdMap { container_id: 65536, host_id: 300000, size: 10 }];
        assert_eq!(map_args(1000, &r), ["0", "1000", "1", "1", "100000", "65536", "65537", "300000", "10"]);
    }
}
