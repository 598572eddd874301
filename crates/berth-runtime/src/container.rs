//! [`Runtime`]: the lifecycle verbs over a state root, as runc implements them.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{OFlag, open};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use oci_spec::runtime::LinuxResources;

use crate::cgroups::{self, Layout, Manager, Stats};
use crate::error::{Context, Error, Result};
use crate::ipc;
use crate::state::{self, EXEC_FIFO, Record, State, Status};

/// Compiled seccomp programs under the state root (ids may not start with '.').
const SECCOMP_CACHE: &str = ".seccomp";

/// Options of `create` / `run`.
#[derive(Default)]
pub struct CreateOptions {
    /// runc's --console-socket: a unix socket path that receives the pty master.
    pub console_socket: Option<PathBuf>,
    /// An already-connected socket to send the pty master over (instead of a path).
    pub console_stream: Option<UnixStream>,
    /// Where to write the init's host pid.
    pub pid_file: Option<PathBuf>,
    /// stdin/stdout/stderr of the container's init; None = inherit the caller's.
    pub stdio: Option<[OwnedFd; 3]>,
    /// MS_MOVE + chroot instead of pivot_root (for a rootfs on ramfs).
    pub no_pivot: bool,
    /// Extra fds (3, 4, ...) passed to the container process.
    pub preserve_fds: i32,
    /// runc's --no-new-keyring: keep the caller's session keyring.
    pub no_new_keyring: bool,
}

/// Options of `exec`.
#[derive(Default)]
pub struct ExecOptions {
    pub console_socket: Option<PathBuf>,
    pub console_stream: Option<UnixStream>,
    pub pid_file: Option<PathBuf>,
    pub stdio: Option<[OwnedFd; 3]>,
    pub preserve_fds: i32,
}

/// An OCI runtime over a state root (runc's `--root`).
///
/// Process model: `create`, `run` and `exec` clone the new process straight from the
/// calling thread (no re-exec), so it is the caller's child and the caller can `waitpid`
/// it. They must be called from a single-threaded process (the shim, the CLI). Every other
/// method only reads state, writes cgroup files or sends signals, and is safe from a
/// multi-threaded daemon.
#[derive(Debug, Clone)]
pub struct Runtime {
    root: PathBuf,
    /// None: detect from /proc/self/mountinfo at each create.
    pub(crate) layout: Option<Layout>,
}

/// Undoes a half-made container when create fails.
pub(crate) struct CreateGuard<'a> {
    pub(crate) dir: Option<PathBuf>,
    pub(crate) cgroup: Option<&'a dyn Manager>,
    pub(crate) child: Option<i32>,
}

impl Drop for CreateGuard<'_> {
    fn drop(&mut self) {
        if let Some(pid) = self.child.take() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        }
        if let Some(cg) = self.cgroup.take() {
            let _ = cg.destroy();
        }
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl CreateGuard<'_> {
    pub(crate) fn disarm(&mut self) {
        self.dir = None;
        self.cgroup = None;
        self.child = None;
    }
}

/// clone(2) with fork semantics (no new stack) plus namespace flags.
///
/// # Safety
/// The caller must be single-threaded: the child gets a copy of only the calling thread,
/// so a lock held by another thread would stay locked forever in the child.
pub(crate) unsafe fn clone_child(flags: CloneFlags) -> Result<i32> {
    // SAFETY: forwarded to the caller's promise.
    unsafe { clone_child_into(flags, None) }.map(|(pid, _)| pid)
}

/// [`clone_child`], starting the child in the cgroup v2 directory `cgroup` when given
/// (clone3 with CLONE_INTO_CGROUP): nothing is migrated afterwards, so no global lock
/// and no RCU grace period (~10 ms) per container. Returns the pid (0 in the child) and
/// whether the child was born in `cgroup`; false (a kernel before 5.7) leaves moving it
/// to the caller.
///
/// # Safety
/// As [`clone_child`].
pub(crate) unsafe fn clone_child_into(flags: CloneFlags, cgroup: Option<std::os::fd::BorrowedFd<'_>>) -> Result<(i32, bool)> {
    if let Some(fd) = cgroup {
        // struct clone_args of <linux/sched.h>, up to `cgroup` (CLONE_ARGS_SIZE_VER2).
        #[repr(C)]
        #[derive(Default)]
        struct CloneArgs {
            flags: u64,
            pidfd: u64,
            child_tid: u64,
            parent_tid: u64,
            exit_signal: u64,
            stack: u64,
            stack_size: u64,
            tls: u64,
            set_tid: u64,
            set_tid_size: u64,
            cgroup: u64,
        }
        const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
        let args = CloneArgs {
            flags: flags.bits() as u32 as u64 | CLONE_INTO_CGROUP,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: std::os::fd::AsRawFd::as_raw_fd(&fd) as u64,
            ..Default::default()
        };
        // SAFETY: a null stack makes clone3 behave like fork (the child continues on a
        // copy-on-write copy of this stack); args outlives the call.
        let rc = unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>()) };
        if rc >= 0 {
            return Ok((rc as i32, true));
        }
        let err = std::io::Error::last_os_error();
        if !matches!(err.raw_os_error(), Some(libc::ENOSYS | libc::E2BIG | libc::EINVAL)) {
            return Err(Error::io("clone3 into the container's cgroup", err));
        }
    }
    // SAFETY: raw clone with a null stack behaves like fork: the child continues on a
    // copy-on-write copy of this stack. Arguments are flags, stack, ptid, ctid, tls.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags.bits() as libc::c_ulong) | libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if rc < 0 {
        return Err(Error::io("clone", std::io::Error::last_os_error()));
    }
    Ok((rc as i32, false))
}

/// Clones the init inside an existing user namespace, for a container that joins one (a
/// pod's): its new namespaces (mount, pid, uts, ...) must belong to that user namespace,
/// and a process can only enter a user namespace by setns, which leaves the host's
/// privileges behind for good. So a short-lived helper (forked here) joins it and clones
/// the init; the helper then exits and the init is re-parented to the caller when it is
/// a subreaper (the shim), to init otherwise. `pidns`: a pid namespace for the init to join.
/// `cgroup`: a cgroup for the helper to move itself into while it still has the host's
/// privileges, so that the init is born there (v1: `Manager::join_self`, which skips the
/// global lock and RCU grace period of the caller moving the init in afterwards).
/// Returns the init's pid as this process sees
/// it (0 in the init itself, which continues from here like a forked child), the host
/// uid and gid of the namespace's root, if it maps one, and whether the init was born in
/// `cgroup`.
///
/// # Safety
/// As [`clone_child_into`]: the caller must be single-threaded.
pub(crate) unsafe fn clone_in_userns(
    userns: std::os::fd::BorrowedFd<'_>,
    pidns: Option<std::os::fd::BorrowedFd<'_>>,
    flags: CloneFlags,
    cgroup: Option<&dyn crate::cgroups::Manager>,
) -> Result<(i32, Option<(u32, u32)>, bool)> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let (ours, theirs) = ipc::pair()?;
    // SAFETY: a raw clone with no flags and a null stack is fork; the caller is
    // single-threaded.
    let helper = unsafe { clone_child_into(CloneFlags::empty(), None) }?.0;
    if helper == 0 {
        drop(ours);
        // In the helper: join, clone the init with a pidfd, pass the pidfd back, exit.
        let code = (|| -> std::result::Result<i32, String> {
            // The cgroup first: inside the user namespace the host's cgroupfs is not ours.
            let joined = match cgroup {
                Some(cg) => cg.join_self().map_err(|e| format!("join the container's cgroup: {e}"))?,
                None => false,
            };
            fn errno(what: &'static str) -> impl Fn(nix::errno::Errno) -> String {
                move |e| format!("{what}: {e}")
            }
            nix::sched::setns(userns, CloneFlags::CLONE_NEWUSER).map_err(errno("join user namespace"))?;
            // A pid namespace to join is entered here, not by the caller: the helper must
            // stay in the caller's pid namespace for the init to be re-parented to it
            // (a subreaper only adopts orphans of its own pid namespace).
            if let Some(p) = pidns {
                nix::sched::setns(p, CloneFlags::CLONE_NEWPID).map_err(errno("join pid namespace"))?;
            }
            let mut pidfd: libc::c_int = -1;
            // SAFETY: raw clone with a null stack behaves like fork; CLONE_PIDFD stores the
            // new process's pidfd at the parent_tid pointer, a local that outlives the call.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_clone,
                    (flags.bits() as libc::c_ulong) | libc::CLONE_PIDFD as libc::c_ulong | libc::SIGCHLD as libc::c_ulong,
                    0usize,
                    &mut pidfd as *mut libc::c_int,
                    0usize,
                    0usize,
                )
            };
            if rc < 0 {
                return Err(errno("clone the init")(nix::errno::Errno::last()));
            }
            if rc == 0 {
                return Ok(-1);
            }
            // Who the namespace's root is on the host, as the namespace maps it; the first
            // byte says whether the init was born in the cgroup.
            let root = |file: &str| std::fs::read_to_string(file).ok().and_then(|m| crate::namespaces::host_root(&m));
            let tag = if joined { 'c' } else { 'p' };
            let body = match (root("/proc/self/uid_map"), root("/proc/self/gid_map")) {
                (Some(u), Some(g)) => format!("{tag}{u} {g}"),
                _ => tag.to_string(),
            };
            let fds = [pidfd];
            let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
            let iov = [std::io::IoSlice::new(body.as_bytes())];
            nix::sys::socket::sendmsg::<()>(theirs.as_raw_fd(), &iov, &cmsg, nix::sys::socket::MsgFlags::empty(), None).map_err(errno("pass the init's pidfd"))?;
            Ok(0)
        })();
        match code {
            // The init: on with the container, as from any clone.
            Ok(-1) => return Ok((0, None, false)),
            Ok(_) => unsafe { libc::_exit(0) },
            Err(msg) => {
                let _ = nix::unistd::write(&theirs, msg.as_bytes());
                // SAFETY: _exit ends the helper without running the caller's destructors.
                unsafe { libc::_exit(1) }
            }
        }
    }
    drop(theirs);
    let mut buf = [0u8; 256];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let received = {
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        nix::sys::socket::recvmsg::<()>(ours.as_raw_fd(), &mut iov, Some(&mut cmsg), nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC)
            .map(|m| {
                let fd = m.cmsgs().ok().and_then(|mut c| c.find_map(|c| match c {
                    nix::sys::socket::ControlMessageOwned::ScmRights(f) => f.first().copied(),
                    _ => None,
                }));
                (m.bytes, fd)
            })
    };
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(helper), None);
    let (n, fd) = received.map_err(|e| Error::io("clone in the user namespace", std::io::Error::from(e)))?;
    let Some(fd) = fd else {
        let why = String::from_utf8_lossy(&buf[..n]).into_owned();
        return Err(Error::Init(if why.is_empty() { "the helper joining the user namespace died".into() } else { why }));
    };
    // SAFETY: the kernel just installed this descriptor for us.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd) };
    // The pidfd's fdinfo gives the pid as this process's pid namespace numbers it.
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).map_err(|e| Error::io("read pidfd info", e))?;
    let pid = info
        .lines()
        .find_map(|l| l.strip_prefix("Pid:").and_then(|v| v.trim().parse::<i32>().ok()))
        .filter(|p| *p > 0)
        .ok_or_else(|| Error::Init("the container init is gone before it started".into()))?;
    let ids: Vec<u32> = String::from_utf8_lossy(&buf[1..n]).split_whitespace().filter_map(|x| x.parse().ok()).collect();
    Ok((pid, (ids.len() == 2).then(|| (ids[0], ids[1])), buf[0] == b'c'))
}

pub(crate) fn connect_console(path: Option<&Path>, stream: Option<UnixStream>) -> Result<Option<OwnedFd>> {
    if let Some(s) = stream {
        return Ok(Some(OwnedFd::from(s)));
    }
    match path {
        Some(p) => {
            let s = UnixStream::connect(p).map_err(|e| Error::io(format!("connect console socket {}", p.display()), e))?;
            Ok(Some(OwnedFd::from(s)))
        }
        None => Ok(None),
    }
}

pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    state::write_atomic(path, pid.to_string().as_bytes())
}

/// Waits for the child's verdict on the sync socket.
pub(crate) fn await_child(sync: &OwnedFd, what: fn(String) -> Error) -> Result<bool> {
    await_child_report(sync, what).map(|r| r.is_some())
}

/// [`await_child`], with what the child sent along with "ready" (its phases, for
/// [`crate::phases::add_reported`]); `None` when it exited first.
pub(crate) fn await_child_report(sync: &OwnedFd, what: fn(String) -> Error) -> Result<Option<Vec<u8>>> {
    match ipc::recv(sync)? {
        Some((ipc::MSG_READY, body)) => Ok(Some(body)),
        Some((ipc::MSG_ERROR, msg)) => Err(what(String::from_utf8_lossy(&msg).into_owned())),
        Some((ipc::MSG_COMMAND, body)) => Err(match serde_json::from_slice(&body) {
            Ok(c) => Error::Command(c),
            Err(_) => what(String::from_utf8_lossy(&body).into_owned()),
        }),
        Some((other, _)) => Err(what(format!("unexpected message {other:?} from the child"))),
        None => Ok(None),
    }
}

impl Runtime {
    /// A runtime keeping its state under `root` (runc's --root; berth uses /run/berth/runtime).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Runtime { root: root.into(), layout: None }
    }

    /// Uses this cgroup layout instead of detecting it (tests drive the v2 path on a
    /// hybrid host's cgroup2 mount this way; also for hosts with unusual mounts).
    pub fn with_cgroup_layout(mut self, layout: Layout) -> Self {
        self.layout = Some(layout);
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    pub(crate) fn record(&self, id: &str) -> Result<Record> {
        state::validate_id(id)?;
        Record::load(&self.dir(id), id)
    }

    /// The compiled seccomp filter, through the cache under the state root.
    pub(crate) fn seccomp_program(&self, s: &oci_spec::runtime::LinuxSeccomp) -> Result<crate::seccomp::Program> {
        crate::seccomp::cached(&self.root.join(SECCOMP_CACHE), s)
    }

    pub(crate) fn manager(rec: &Record) -> Box<dyn Manager> {
        cgroups::manager(&rec.cgroup_layout, &rec.cgroup_path)
    }

    pub(crate) fn status_of(&self, rec: &Record) -> Status {
        if rec.pid <= 0 {
            return Status::Creating;
        }
        if !state::is_alive(rec.pid, rec.start_time) {
            return Status::Stopped;
        }
        if self.dir(&rec.id).join(EXEC_FIFO).exists() {
            return Status::Created;
        }
        if Self::manager(rec).is_frozen().unwrap_or(false) {
            return Status::Paused;
        }
        Status::Running
    }

    pub(crate) fn state_of(&self, rec: &Record) -> State {
        let status = self.status_of(rec);
        State {
            oci_version: rec.spec.version().clone(),
            id: rec.id.clone(),
            pid: if status == Status::Stopped { 0 } else { rec.pid },
            status,
            bundle: rec.bundle.clone(),
            rootfs: rec.rootfs.clone(),
            created: rec.created.clone(),
            owner: String::new(),
            annotations: rec.spec.annotations().clone().unwrap_or_default(),
        }
    }

    /// runc start: lets a created container's init exec the user's process.
    pub fn start(&self, id: &str) -> Result<()> {
        let rec = self.record(id)?;
        let status = self.status_of(&rec);
        if status != Status::Created {
            return Err(Error::WrongState {
                id: id.into(),
                status: status.to_string(),
                what: "only a created container can be started",
            });
        }
        let fifo_path = self.dir(id).join(EXEC_FIFO);
        // Non-blocking open so that an init that died cannot hang us.
        let fd = open(&fifo_path, OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC, Mode::empty())
            .ctx(|| "open exec fifo".into())?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut b = [0u8; 1];
            match nix::unistd::read(&fd, &mut b) {
                Ok(1) => break,
                Ok(_) | Err(nix::errno::Errno::EAGAIN) => {
                    if !state::is_alive(rec.pid, rec.start_time) {
                        // It may have written its byte, run and ended between the read
                        // above and this check (`echo ok` on a loaded machine): started.
                        if matches!(nix::unistd::read(&fd, &mut b), Ok(1)) {
                            break;
                        }
                        let _ = std::fs::remove_file(&fifo_path);
                        return Err(Error::Init("the container init exited before start".into()));
                    }
                    if Instant::now() > deadline {
                        return Err(Error::Init("the container init did not answer start".into()));
                    }
                    let mut pfd = [nix::poll::PollFd::new(fd.as_fd(), nix::poll::PollFlags::POLLIN)];
                    let _ = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(10u16));
                }
                Err(e) => return Err(Error::errno("read exec fifo", e)),
            }
        }
        std::fs::remove_file(&fifo_path).ctx(|| "remove exec fifo".into())?;
        self.poststart(&rec)
    }

    /// Poststart hooks; a failing one stops the container (runc does the same).
    pub(crate) fn poststart(&self, rec: &Record) -> Result<()> {
        if rec.spec.hooks().as_ref().is_none_or(|h| h.poststart().as_ref().is_none_or(|l| l.is_empty())) {
            return Ok(());
        }
        let st = self.state_of(rec);
        crate::hooks::run(&rec.spec, crate::hooks::Stage::Poststart, &st).inspect_err(|_| {
            if let Ok(Some(fd)) = state::pidfd_for(rec.pid, rec.start_time) {
                let _ = state::pidfd_signal(&fd, libc::SIGKILL);
            }
        })
    }

    pub fn state(&self, id: &str) -> Result<State> {
        Ok(self.state_of(&self.record(id)?))
    }

    /// Every container under the root, sorted by id.
    pub fn list(&self) -> Result<Vec<State>> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io(format!("read {}", self.root.display()), e)),
        };
        for e in entries.flatten() {
            let Some(id) = e.file_name().to_str().map(str::to_string) else { continue };
            if let Ok(rec) = Record::load(&e.path(), &id) {
                out.push(self.state_of(&rec));
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// runc kill. `all` signals every process of the container's cgroup.
    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        let rec = self.record(id)?;
        let status = self.status_of(&rec);
        if status == Status::Stopped && !all {
            return Err(Error::WrongState { id: id.into(), status: status.to_string(), what: "cannot signal a stopped container" });
        }
        if all {
            return self.signal_all(&rec, signal);
        }
        let Some(fd) = state::pidfd_for(rec.pid, rec.start_time)? else {
            return Err(Error::WrongState { id: id.into(), status: "stopped".into(), what: "cannot signal a stopped container" });
        };
        state::pidfd_signal(&fd, signal).map_err(|e| Error::io(format!("signal {signal} to {id}"), e))
    }

    fn signal_all(&self, rec: &Record, signal: i32) -> Result<()> {
        if rec.cgroup_layout == Layout::Disabled {
            // No cgroup lists the processes (rootless): the init is signalled; with a pid
            // namespace its death takes every other process of the container along.
            if let Ok(Some(fd)) = state::pidfd_for(rec.pid, rec.start_time) {
                let _ = state::pidfd_signal(&fd, signal);
            }
            return Ok(());
        }
        let cg = Self::manager(rec);
        if signal == libc::SIGKILL && cg.kill_all()? {
            return Ok(());
        }
        // Freeze so nothing forks past us while we walk the list.
        let froze = signal != libc::SIGKILL && !cg.is_frozen()? && cg.freeze().is_ok();
        for pid in cg.pids()? {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::try_from(signal).map_err(|e| Error::errno("signal number", e))?,
            );
        }
        if froze {
            cg.thaw()?;
        }
        Ok(())
    }

    /// runc delete: removes the cgroup and the state. A created container is killed; a
    /// running or paused one only with `force`.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let rec = self.record(id)?;
        let status = self.status_of(&rec);
        let cg = Self::manager(&rec);
        match status {
            Status::Stopped => {}
            Status::Created | Status::Creating => self.kill_and_wait(&rec, cg.as_ref())?,
            Status::Running | Status::Paused if force => self.kill_and_wait(&rec, cg.as_ref())?,
            _ => {
                return Err(Error::WrongState {
                    id: id.into(),
                    status: status.to_string(),
                    what: "cannot delete a container that is not stopped (use force)",
                });
            }
        }
        // Processes the init left behind (without a pid namespace) go too.
        if !cg.pids().unwrap_or_default().is_empty() {
            self.kill_and_wait(&rec, cg.as_ref())?;
        }
        cg.destroy()?;
        // Poststop hooks' failures are warnings only (hooks::run prints them); what is
        // left is the state's encoding, which must not keep the container's state from
        // going either.
        let mut st = self.state_of(&rec);
        st.status = Status::Stopped;
        if let Err(e) = crate::hooks::run(&rec.spec, crate::hooks::Stage::Poststop, &st) {
            eprintln!("berth runtime: warning: poststop hooks of {id}: {e}");
        }
        std::fs::remove_dir_all(self.dir(id)).ctx(|| format!("remove state of {id}"))
    }

    fn kill_and_wait(&self, rec: &Record, cg: &dyn Manager) -> Result<()> {
        if let Ok(Some(fd)) = state::pidfd_for(rec.pid, rec.start_time) {
            let _ = state::pidfd_signal(&fd, libc::SIGKILL);
        }
        let _ = self.signal_all(rec, libc::SIGKILL);
        if cg.is_frozen().unwrap_or(false) {
            let _ = cg.thaw();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let init_gone = !state::is_alive(rec.pid, rec.start_time);
            let procs = cg.pids().unwrap_or_default();
            let live = procs.iter().any(|p| state::proc_stat(*p).is_some_and(|s| s.state != 'Z'));
            if init_gone && !live {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Init(format!("processes of {} did not die after SIGKILL", rec.id)));
            }
            if live {
                let _ = self.signal_all(rec, libc::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    pub fn pause(&self, id: &str) -> Result<()> {
        let rec = self.record(id)?;
        let status = self.status_of(&rec);
        if status != Status::Running && status != Status::Created {
            return Err(Error::WrongState { id: id.into(), status: status.to_string(), what: "only a running container can be paused" });
        }
        Self::manager(&rec).freeze()
    }

    pub fn resume(&self, id: &str) -> Result<()> {
        let rec = self.record(id)?;
        let status = self.status_of(&rec);
        if status != Status::Paused {
            return Err(Error::WrongState { id: id.into(), status: status.to_string(), what: "only a paused container can be resumed" });
        }
        Self::manager(&rec).thaw()
    }

    /// Host pids of every process in the container (runc ps).
    pub fn processes(&self, id: &str) -> Result<Vec<i32>> {
        let rec = self.record(id)?;
        if rec.cgroup_layout == Layout::Disabled {
            return Ok(pid_namespace_members(rec.pid, rec.start_time));
        }
        Self::manager(&rec).pids()
    }

    pub fn stats(&self, id: &str) -> Result<Stats> {
        state::validate_id(id)?;
        let c = crate::state::CgroupOf::load(&self.dir(id), id)?;
        let m = cgroups::manager(&c.cgroup_layout, &c.cgroup_path);
        let mut s = m.stats()?;
        s.oom_kills = m.oom_kills().unwrap_or(0);
        Ok(s)
    }

    /// runc update: new limits for a live container.
    pub fn update(&self, id: &str, resources: &LinuxResources) -> Result<()> {
        let rec = self.record(id)?;
        cgroups::validate(resources)?;
        let mut r = resources.clone();
        // Device rules are fixed at create time (as in runc update).
        r.set_devices(None);
        Self::manager(&rec).set(&r)
    }

    /// Whether the kernel OOM-killed a process of this container (call before delete).
    pub fn oom_killed(&self, id: &str) -> Result<bool> {
        let rec = self.record(id)?;
        Ok(Self::manager(&rec).oom_kills()? > 0)
    }

    /// The spec the container was created from.
    pub fn spec(&self, id: &str) -> Result<oci_spec::runtime::Spec> {
        Ok(self.record(id)?.spec)
    }

    /// The container init's host pid and the caller-visible status, for waiters.
    pub fn pid(&self, id: &str) -> Result<i32> {
        Ok(self.record(id)?.pid)
    }


}

/// Without a cgroup (rootless): the processes of the init's pid namespace, found by
/// their /proc/<pid>/ns/pid link; only the init when it shares its caller's namespace.
fn pid_namespace_members(init: i32, start_time: u64) -> Vec<i32> {
    if !state::is_alive(init, start_time) {
        return Vec::new();
    }
    let ns = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let Some(own) = ns(init) else { return vec![init] };
    if ns(std::process::id() as i32).as_ref() == Some(&own) {
        return vec![init];
    }
    let mut out: Vec<i32> = std::fs::read_dir("/proc")
        .map(|rd| rd.flatten().filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok()).filter(|p| ns(*p).as_ref() == Some(&own)).collect())
        .unwrap_or_default();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// clone3(CLONE_INTO_CGROUP) on the host's real cgroup2 mount: the child is born
    /// in the directory, nobody writes cgroup.procs.
    #[test]
    fn a_child_is_born_in_its_v2_cgroup() {
        berth_testutil::require_root();
        let mount = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .into_iter()
            .map(Path::new)
            .find(|m| m.join("cgroup.procs").exists() && m.join("cgroup.threads").exists())
            .expect("no cgroup2 mount");
        let name = format!("berth-clone3-{}", std::process::id());
        let dir = mount.join(&name);
        std::fs::create_dir(&dir).unwrap();
        let fd = std::fs::File::open(&dir).unwrap();
        // SAFETY: the child only makes raw syscalls (pause, _exit): nothing that could
        // need a lock another test thread holds.
        let (pid, born) = unsafe { clone_child_into(CloneFlags::empty(), Some(std::os::fd::AsFd::as_fd(&fd))) }.unwrap();
        if pid == 0 {
            loop {
                unsafe { libc::pause() };
            }
        }
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        let _ = std::fs::remove_dir(&dir);
        assert!(born, "clone3 with CLONE_INTO_CGROUP fell back on a 6.x kernel");
        assert!(cgroup.lines().any(|l| l.starts_with("0::") && l.ends_with(&format!("/{name}"))), "{cgroup}");
    }
}
