//! The child side: what runs between clone and execve, for a container's init and for an
//! exec'd process. It reports failures to the parent over the sync socket and never
//! returns into the caller's code.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl, open};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::stat::Mode;

use crate::error::{CommandError, Context, Error, Result, errno_text};
use crate::ipc;
use crate::namespaces::NamespacePlan;
use crate::process::{self, ProcessPlan};
use crate::rootfs::{self, RootfsPlan};
use crate::syscall::{LinuxSyscall, Syscall};

/// What the container's init must do.
pub(crate) struct ContainerInit {
    pub ns: NamespacePlan,
    pub rootfs: RootfsPlan,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    /// Name of a new session keyring to join (runc's default); None with --no-new-keyring.
    pub keyring: Option<String>,
    /// O_PATH fd of exec.fifo; None for `run` (start right away).
    pub fifo: Option<OwnedFd>,
    /// `io.berth.init`: stay as PID 1 and fork the user's process ([`crate::pid1`]).
    pub pid1: bool,
    /// `io.berth.pause`: never exec, just hold the namespaces ([`crate::pause`]).
    pub pause: bool,
    /// The namespaces of `ns.join` but the user namespace, opened by the parent: the init
    /// may not be allowed to open another process's /proc/<pid>/ns files (a non-dumpable
    /// pause in a user namespace is the host root's).
    pub join_fds: Vec<(CloneFlags, OwnedFd)>,
}

/// Everything the child needs; built by the parent before the clone.
pub(crate) struct ChildConfig {
    /// None for exec.
    pub container: Option<ContainerInit>,
    /// exec: the container's namespaces to enter, in order.
    pub join: Vec<(CloneFlags, OwnedFd)>,
    pub process: ProcessPlan,
    pub seccomp: Option<crate::seccomp::Program>,
    /// A connected unix socket to send the pty master over.
    pub console: Option<OwnedFd>,
    pub stdio: Option<[OwnedFd; 3]>,
    pub preserve_fds: i32,
    /// linux.personality execution domain.
    pub personality: Option<u64>,
    pub sync: OwnedFd,
    /// The cgroup the child moves itself into first thing (see `Manager::join_self`);
    /// None when the parent moves it.
    pub cgroup: Option<Box<dyn crate::cgroups::Manager>>,
    /// exec: stay silent on success so the parent reads EOF when execve closes the socket.
    pub is_exec: bool,
}

/// Entry point after clone, in the child. Never returns.
pub(crate) fn child_main(mut cfg: ChildConfig) -> ! {
    let sync = cfg.sync.as_raw_fd();
    let is_exec = cfg.is_exec;
    // cfg outlives run() so the sync socket is still open to report its error.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&mut cfg)));
    let err = match result {
        Ok(Err(e)) => e,
        Ok(Ok(never)) => match never {},
        Err(_) => Error::Init("panic in container init".to_string()),
    };
    // SAFETY: sync stays open until _exit; borrowing it for one send is sound.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(sync) };
    let (code, sent) = match &err {
        // Typed, so the caller gets Error::Command (and its exit code) back.
        Error::Command(c) => {
            let body = serde_json::to_vec(c).unwrap_or_default();
            (c.exit_code(), ipc::send(&fd, ipc::MSG_COMMAND, &body))
        }
        other => (127, ipc::send(&fd, ipc::MSG_ERROR, other.to_string().as_bytes())),
    };
    if sent.is_err() || is_exec {
        // After READY the parent is no longer listening: the only witness is stderr.
        eprintln!("berth runtime: {err}");
    }
    // SAFETY: _exit ends the process without running the parent's atexit handlers or
    // destructors, which belong to the caller we were cloned from.
    unsafe { libc::_exit(code) }
}

fn run(cfg: &mut ChildConfig) -> Result<Infallible> {
    let sys = LinuxSyscall;
    reset_signals();
    // Until execve this process runs the host's berth binary, and (exec, or a shared PID
    // namespace) the container can see it: non-dumpable, the container cannot open
    // /proc/<pid>/exe, mem or fds (CVE-2019-5736). execve makes the new image dumpable.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    match ipc::recv(&cfg.sync)? {
        Some((ipc::MSG_GO, _)) => {}
        _ => return Err(Error::Init("runtime went away before the container was set up".into())),
    }
    // Where this setup's time goes, sent with "ready" (`crate::phases`).
    let mut marks = crate::phases::Marks::new();
    // Before anything else, and while cgroup paths still mean the host's (exec enters
    // the container's mount namespace below).
    if let Some(cg) = cfg.cgroup.take() {
        cg.join_self()?;
    }
    // Exec: enter the running container's namespaces (user first, mount last).
    for (flag, fd) in cfg.join.drain(..) {
        setns(&fd, flag).ctx(|| format!("join {} namespace", crate::namespaces::proc_name(flag)))?;
    }
    marks.mark("join");
    if let Some(c) = cfg.container.as_ref() {
        setup_container(&sys, c, &mut marks)?;
        // Like runc, a missing cwd is made (before the root may become read-only).
        if !cfg.process.cwd.exists() {
            sys.mkdir_all(&cfg.process.cwd, 0o755)?;
        }
    }
    marks.mark("cwd");
    if let Some(stdio) = cfg.stdio.take() {
        for (i, fd) in stdio.iter().enumerate() {
            dup2(fd.as_raw_fd(), i as RawFd).ctx(|| format!("dup2 stdio {i}"))?;
        }
    }
    if cfg.process.terminal {
        let console = cfg
            .console
            .take()
            .ok_or_else(|| Error::InvalidSpec("process.terminal needs a console socket".into()))?;
        setup_terminal(&sys, &console, cfg.process.console_size, cfg.container.is_some())?;
    }
    if let Some(c) = cfg.container.as_ref() {
        rootfs::finalize(&sys, &c.rootfs)?;
    }
    marks.mark("finalize");
    let p = &cfg.process;
    process::apply_rlimits(&p.rlimits)?;
    if let Some(io) = p.io_priority {
        process::apply_io_priority(io)?;
    }
    if let Some(attr) = &p.scheduler {
        process::apply_scheduler(attr)?;
    }
    if let Some(domain) = cfg.personality {
        process::apply_personality(domain)?;
    }
    // The working directory is checked before any filter is loaded: a profile may
    // refuse getcwd itself (runtime-tools' linux_seccomp test does).
    let cwd_early = nix::unistd::chdir(&p.cwd);
    if cwd_early.is_ok() {
        cwd_inside_root(&p.cwd)?;
    }
    // Without no_new_privileges, loading a filter needs CAP_SYS_ADMIN: load it before
    // the capabilities go (runc does the same).
    if !p.no_new_privileges
        && let Some(f) = cfg.seccomp.as_ref() {
            f.load()?;
        }
    process::apply_identity(p)?;
    if cwd_early.is_err() {
        // Only the user may enter it (root squashed on NFS, a 0700 home): after the
        // identity change.
        nix::unistd::chdir(&p.cwd).ctx(|| format!("chdir to cwd {}", p.cwd.display()))?;
        cwd_inside_root(&p.cwd)?;
    }
    nix::sys::stat::umask(Mode::from_bits_truncate(p.umask.unwrap_or(0o022) as _));
    if p.no_new_privileges {
        process::set_no_new_privs()?;
        if let Some(f) = cfg.seccomp.as_ref() {
            f.load()?;
        }
    }
    if cfg.container.as_ref().is_some_and(|c| c.pause) {
        // Nothing to look up or exec: the pause process is this one.
        crate::pause::prepare()?;
        ipc::send(&cfg.sync, ipc::MSG_READY, b"")?;
        if let Some(fifo) = cfg.container.as_ref().and_then(|c| c.fifo.as_ref()) {
            wait_for_start(fifo)?;
        }
        crate::pause::run();
    }
    let mut env = p.env.clone();
    if p.env_value("HOME").is_none() {
        env.push(format!("HOME={}", home_of(p.uid)));
    }
    let path_env = p.env_value("PATH").unwrap_or(process::DEFAULT_PATH).to_string();
    let exe = resolve_executable(&p.args[0], &path_env).map_err(Error::Command)?;
    let argv = process::cstrings(&p.args)?;
    let envp = process::cstrings(&env)?;
    let exe_c = CString::new(exe.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::InvalidSpec("executable path has a NUL byte".into()))?;

    let pid1 = cfg.container.as_ref().is_some_and(|c| c.pid1);
    if pid1 {
        crate::pid1::prepare(&p.args)?;
    }
    marks.mark("process");
    if !cfg.is_exec {
        ipc::send(&cfg.sync, ipc::MSG_READY, &marks.encode())?;
    }
    if let Some(fifo) = cfg.container.as_ref().and_then(|c| c.fifo.as_ref()) {
        wait_for_start(fifo)?;
    }
    close_extra_fds(3 + cfg.preserve_fds, cfg.sync.as_raw_fd())?;
    if pid1 {
        crate::pid1::run(&exe_c, &argv, &envp);
    }
    let Err(err) = nix::unistd::execve(&exe_c, &argv, &envp);
    Err(Error::Command(CommandError::Execve { path: exe.display().to_string(), reason: errno_text(err as i32) }))
}

/// The working directory must be reachable from the container's root: a cwd such as
/// /proc/self/fd/N naming a descriptor inherited from the host would put the process
/// outside it (CVE-2024-21626). The kernel's getcwd then answers "(unreachable)..." and
/// libc's ENOENT; either way the process does not start (runc refuses the same way).
fn cwd_inside_root(cwd: &Path) -> Result<()> {
    let mut buf = [0u8; 4096];
    // SAFETY: the raw getcwd syscall writes at most buf.len() bytes into buf.
    let n = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
    if n > 0 && buf[0] == b'/' {
        return Ok(());
    }
    let errno = std::io::Error::last_os_error();
    if n < 0 && errno.raw_os_error() != Some(libc::ENOENT) {
        // Refused (a seccomp profile that denies getcwd), not unreachable.
        return Err(Error::Init(format!("cannot verify that working directory {} is inside the container: getcwd: {errno}", cwd.display())));
    }
    Err(Error::Init(format!(
        "working directory {} is outside of the container's root -- possible container breakout detected",
        cwd.display()
    )))
}

fn setup_container(sys: &dyn Syscall, c: &ContainerInit, marks: &mut crate::phases::Marks) -> Result<()> {
    if c.ns.has_user() {
        // The parent has written our id maps (a new namespace), or we were cloned inside
        // the joined one: become the namespace's root.
        let root_mapped = if c.ns.new_user() {
            c.ns.uid_mappings.iter().any(|m| m.container_id() == 0)
        } else {
            std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|m| crate::namespaces::maps_root(&m))
        };
        if root_mapped {
            nix::unistd::setresgid(0.into(), 0.into(), 0.into()).ctx(|| "setresgid 0 in user namespace".into())?;
            nix::unistd::setresuid(0.into(), 0.into(), 0.into()).ctx(|| "setresuid 0 in user namespace".into())?;
        }
    }
    // A joined user namespace was entered before the clone (see `clone_in_userns`).
    for (flag, fd) in &c.join_fds {
        setns(fd, *flag).ctx(|| format!("join {} namespace", crate::namespaces::proc_name(*flag)))?;
    }
    if c.ns.new_cgroup {
        unshare(CloneFlags::CLONE_NEWCGROUP).ctx(|| "unshare cgroup namespace".into())?;
    }
    if let Some(name) = &c.keyring {
        join_session_keyring(name)?;
    }
    // Device nodes and mount points get exactly the modes we ask for.
    nix::sys::stat::umask(Mode::empty());
    marks.mark("namespaces");
    rootfs::prepare(sys, &c.rootfs)?;
    marks.mark("mounts");
    rootfs::enter(sys, &c.rootfs)?;
    marks.mark("pivot");
    if let Some(h) = c.hostname.as_deref().filter(|h| !h.is_empty()) {
        sys.sethostname(h)?;
    }
    if let Some(d) = c.domainname.as_deref().filter(|d| !d.is_empty()) {
        sys.setdomainname(d)?;
    }
    Ok(())
}

/// A session keyring of the container's own, so keys are not shared with the host's
/// session (runc does this unless --no-new-keyring). Kernels without keys are fine.
fn join_session_keyring(name: &str) -> Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    const KEYCTL_SETPERM: libc::c_long = 5;
    let cname = CString::new(name).map_err(|_| Error::InvalidSpec("container id has a NUL byte".into()))?;
    // SAFETY: keyctl(JOIN_SESSION_KEYRING, name) reads a NUL-terminated string we own.
    let id = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, cname.as_ptr()) };
    if id < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOSYS) {
            return Ok(());
        }
        return Err(Error::io("join a new session keyring", e));
    }
    // Possessor: all; user: view/read/write/search/link/setattr (runc's 0x3f3f0000 minus
    // group and other bits).
    // SAFETY: keyctl(SETPERM, key id, perm) takes plain integers.
    unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_SETPERM, id, 0x3f3f_0000u32) };
    Ok(())
}

/// Opens a pty from the container's devpts, sends the master to the console socket, and
/// makes the slave our controlling terminal and stdio.
fn setup_terminal(sys: &dyn Syscall, console: &OwnedFd, size: Option<(u16, u16)>, bind_console: bool) -> Result<()> {
    use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).ctx(|| "open /dev/ptmx".into())?;
    grantpt(&master).ctx(|| "grantpt".into())?;
    unlockpt(&master).ctx(|| "unlockpt".into())?;
    let slave_name = ptsname_r(&master).ctx(|| "ptsname".into())?;
    if let Some((rows, cols)) = size {
        let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which is valid.
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
    if bind_console {
        let console_path = Path::new("/dev/console");
        if sys.kind(console_path) == crate::syscall::FileKind::Missing {
            sys.touch(console_path)?;
        }
        sys.mount(Some(Path::new(&slave_name)), console_path, None, nix::mount::MsFlags::MS_BIND, None)?;
    }
    ipc::send_fd(console.as_raw_fd(), master.as_raw_fd(), "/dev/ptmx")?;
    drop(master);
    nix::unistd::setsid().ctx(|| "setsid".into())?;
    let slave = open(Path::new(&slave_name), OFlag::O_RDWR, Mode::empty()).ctx(|| format!("open {slave_name}"))?;
    // SAFETY: TIOCSCTTY takes an int argument; slave is an open tty of our session.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(Error::io("make the pty our controlling terminal", std::io::Error::last_os_error()));
    }
    for i in 0..3 {
        dup2(slave.as_raw_fd(), i).ctx(|| format!("dup2 pty onto {i}"))?;
    }
    Ok(())
}

/// Blocks until `start` opens exec.fifo for reading, then tells it we are going.
fn wait_for_start(fifo: &OwnedFd) -> Result<()> {
    // Opening through /proc/self/fd works after pivot_root hid the state dir.
    let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
    let fd = open(Path::new(&path), OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty()).ctx(|| "open exec fifo".into())?;
    nix::unistd::write(&fd, &[0]).ctx(|| "write exec fifo".into())?;
    Ok(())
}

/// Nothing of the runtime's leaks into the container: every fd past the preserved ones
/// is closed at execve.
fn close_extra_fds(first: i32, sync: RawFd) -> Result<()> {
    let dir = std::fs::read_dir("/proc/self/fd").ctx(|| "list /proc/self/fd".into())?;
    let fds: Vec<RawFd> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd >= first && *fd != sync)
        .collect();
    for fd in fds {
        // SAFETY: fd is an open descriptor of ours (or already closed, then EBADF is harmless).
        let bfd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let _ = fcntl(bfd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
    }
    Ok(())
}

/// The caller may block signals (a foreground `run` forwards them through a signalfd) or
/// ignore some (Rust ignores SIGPIPE): the container starts from the defaults.
fn reset_signals() {
    use nix::sys::signal::{SigHandler, SigSet, Signal, signal};
    let _ = SigSet::empty().thread_set_mask();
    for sig in Signal::iterator() {
        if sig == Signal::SIGKILL || sig == Signal::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL has no handler code that could run unsafely.
        let _ = unsafe { signal(sig, SigHandler::SigDfl) };
    }
}

/// dup2 onto a fixed stdio number: the target fd is replaced on purpose, so no OwnedFd
/// may own it.
fn dup2(from: RawFd, to: RawFd) -> std::io::Result<()> {
    // SAFETY: both are plain fd numbers; replacing `to` is the intent, and nothing in this
    // (single-threaded, about-to-exec) child holds an owner of fds 0-2.
    if unsafe { libc::dup2(from, to) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn home_of(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 6 && f[2].parse() == Ok(uid)).then(|| f[5].to_string())
            })
        })
        .unwrap_or_else(|| "/".into())
}

/// Finds args[0] the way runc does (Go's `exec.LookPath`), inside the container, so that
/// a missing or unusable binary is a create-time error with runc's wording rather than a
/// failure lost after start.
pub(crate) fn resolve_executable(name: &str, path_env: &str) -> Result<PathBuf, CommandError> {
    if name.contains('/') {
        return match check_executable(Path::new(name)) {
            Ok(()) => Ok(PathBuf::from(name)),
            Err(Unusable::Stat(e)) => Err(CommandError::Missing { name: name.into(), reason: errno_text(e) }),
            Err(Unusable::Denied(e)) => Err(CommandError::NotExecutable { name: name.into(), reason: errno_text(e) }),
        };
    }
    for dir in path_env.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(name);
        if check_executable(&p).is_ok() {
            return Ok(p);
        }
    }
    Err(CommandError::NotInPath { name: name.into() })
}

/// Why a path cannot be executed: stat failed, or it exists and may not be run.
#[derive(Debug, PartialEq)]
enum Unusable {
    Stat(i32),
    Denied(i32),
}

/// Go's `findExecutable`: stat, refuse a directory (EACCES, as runc 1.1 reports it), then
/// eaccess(X_OK) — falling back to the mode bits when faccessat is refused (a seccomp
/// profile may return EPERM).
fn check_executable(p: &Path) -> std::result::Result<(), Unusable> {
    use nix::unistd::{AccessFlags, faccessat};
    let st = nix::sys::stat::stat(p).map_err(|e| Unusable::Stat(e as i32))?;
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        return Err(Unusable::Denied(libc::EACCES));
    }
    match faccessat(nix::fcntl::AT_FDCWD, p, AccessFlags::X_OK, nix::fcntl::AtFlags::AT_EACCESS) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::ENOSYS | nix::errno::Errno::EPERM) if st.st_mode & 0o111 != 0 => Ok(()),
        Err(nix::errno::Errno::ENOSYS | nix::errno::Errno::EPERM) => Err(Unusable::Denied(libc::EACCES)),
        Err(e) => Err(Unusable::Denied(e as i32)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// The wording the docker CLI turns into exit codes 127 / 126 (runc's messages).
    #[test]
    fn missing_and_unusable_commands_read_like_runc() {
        let t = tempfile::tempdir().unwrap();
        let bin = t.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let tool = bin.join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = bin.join("data");
        std::fs::write(&data, "x").unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o644)).unwrap();
        let path = format!("/nonexistent:{}", bin.display());

        assert_eq!(resolve_executable("tool", &path).unwrap(), tool);
        assert_eq!(resolve_executable(tool.to_str().unwrap(), "").unwrap(), tool);

        let e = resolve_executable("foo", &path).unwrap_err();
        assert_eq!(e.to_string(), r#"exec: "foo": executable file not found in $PATH"#);
        assert_eq!(e.exit_code(), 127);
        // A file without x bits in $PATH is skipped, as execvp does.
        assert!(matches!(resolve_executable("data", &path), Err(CommandError::NotInPath { .. })));

        let e = resolve_executable("/no/such", &path).unwrap_err();
        assert_eq!(e.to_string(), r#"exec: "/no/such": stat /no/such: no such file or directory"#);
        assert_eq!(e.exit_code(), 127);

        let d = data.to_str().unwrap();
        let e = resolve_executable(d, &path).unwrap_err();
        assert_eq!(e.to_string(), format!(r#"exec: "{d}": permission denied"#));
        assert_eq!(e.exit_code(), 126);

        let b = bin.to_str().unwrap();
        let e = resolve_executable(b, &path).unwrap_err();
        assert_eq!(e.to_string(), format!(r#"exec: "{b}": permission denied"#));
        assert_eq!(e.exit_code(), 126);

        let e = resolve_executable(&format!("{d}/x"), &path).unwrap_err();
        assert_eq!(e.to_string(), format!(r#"exec: "{d}/x": stat {d}/x: not a directory"#));

        // What create reports as a whole, and what execve failures look like.
        let whole = Error::Command(CommandError::NotInPath { name: "foo".into() }).to_string();
        assert_eq!(whole, r#"unable to start container process: exec: "foo": executable file not found in $PATH"#);
        let e = CommandError::Execve { path: "/bin/x".into(), reason: errno_text(libc::ENOEXEC) };
        assert_eq!(e.to_string(), "exec /bin/x: exec format error");
    }
}
