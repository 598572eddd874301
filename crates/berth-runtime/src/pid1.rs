//! `io.berth.init`: a minimal init as the container's PID 1 (what tini / docker-init do for
//! `docker run --init`), without executing a helper binary.
//!
//! The container's init (berth code, single-threaded, cloned by the runtime) does all the
//! setup as usual — namespaces, rootfs, rlimits, seccomp, capabilities, user,
//! no_new_privs — and only at the very end, instead of `execve`, forks: the child
//! `execve`s the user's process, the parent stays as PID 1. Both sides therefore run under
//! exactly the same restrictions. PID 1 then:
//!
//! - forwards every catchable signal it receives to the child's process group (the kernel
//!   only delivers a signal to a pid-namespace init that handles it, so without this
//!   `docker stop` would never reach a process that is not PID 1 itself),
//! - reaps every child, orphans reparented to it included, so no zombie piles up,
//! - exits with the child's status as soon as the child ends (128+N when signal N killed
//!   it); the kernel then kills what is left in the pid namespace.
//!
//! The loop is [`supervise`] over the [`Pid1Os`] seam, unit-tested with a script of
//! signals and exits; [`LinuxPid1`] is the real thing (sigwaitinfo, kill, waitpid).

use std::ffi::CString;

use oci_spec::runtime::Spec;

use crate::error::{CommandError, Error, Result, errno_text};

/// The annotation that asks for the init (set by the daemon for `docker run --init`).
pub const INIT_ANNOTATION: &str = "io.berth.init";

/// The name PID 1 shows in `ps` (its comm, and the start of its command line).
pub const INIT_NAME: &str = "berth-init";

/// Whether the spec asks for the init: `"true"` or `"false"` (or absent); anything else
/// is refused, so a typo does not silently run without one.
pub fn wanted(spec: &Spec) -> Result<bool> {
    match spec.annotations().as_ref().and_then(|a| a.get(INIT_ANNOTATION)).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(Error::InvalidSpec(format!(
            "annotation {INIT_ANNOTATION}={other:?}: must be \"true\" or \"false\""
        ))),
    }
}

/// Signals that report a fault of the process itself: they stay unblocked (a blocked
/// synchronous fault would be forced through anyway) and are never forwarded.
const FAULTS: [i32; 7] = [libc::SIGFPE, libc::SIGILL, libc::SIGSEGV, libc::SIGBUS, libc::SIGABRT, libc::SIGTRAP, libc::SIGSYS];

/// Every catchable signal but the faults: what PID 1 blocks, waits for and forwards
/// (SIGCHLD is waited for, not forwarded). glibc leaves out its two internal RT signals.
fn waited_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigfillset/sigdelset initialise and edit it in place.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        for s in FAULTS {
            libc::sigdelset(&mut set, s);
        }
        set
    }
}

/// Runs in the container's init before it reports READY (so a signal sent as soon as the
/// container counts as started is held, then forwarded): block the signals it will
/// forward, become a subreaper (orphans come to us even when we are not PID 1, e.g. in a
/// joined or the host's pid namespace), stay non-dumpable (our memory is a copy of the
/// runtime caller's, not the container's to read), and take the init's name.
pub(crate) fn prepare(args: &[String]) -> Result<()> {
    let set = waited_signals();
    // SAFETY: sigprocmask with a valid set and a null old-set pointer; the init is
    // single-threaded, so the process mask is this thread's.
    if unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) } != 0 {
        return Err(Error::io("block signals for the init", std::io::Error::last_os_error()));
    }
    // SAFETY: prctl and getpid with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 && unsafe { libc::getpid() } != 1 {
        // As PID 1 of its own namespace it reaps orphans anyway (a profile may refuse prctl).
        return Err(Error::io("become a child subreaper", std::io::Error::last_os_error()));
    }
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    set_title(args);
    Ok(())
}

/// comm and /proc/self/cmdline become `berth-init -- <args>` (docker-init shows
/// `/sbin/docker-init -- <args>`); cosmetic, so failures are ignored.
fn set_title(args: &[String]) {
    if let Ok(name) = CString::new(INIT_NAME) {
        let _ = nix::sys::prctl::set_name(&name);
    }
    let Some((start, end)) = std::fs::read_to_string("/proc/self/stat").ok().as_deref().and_then(argv_area) else {
        return;
    };
    let Some(title) = title_bytes(args, end - start) else { return };
    // SAFETY: [start, end) is this process's own argv string area as the kernel reports
    // it, mapped writable (it is on our initial stack). Nothing holds a Rust reference
    // into it: std keeps only raw pointers to argv and copies from them on demand. We
    // overwrite it in place, as setproctitle(3) does, without changing its bounds.
    unsafe {
        std::ptr::write_bytes(start as *mut u8, 0, end - start);
        std::ptr::copy_nonoverlapping(title.as_ptr(), start as *mut u8, title.len());
    }
}

/// `arg_start` and `arg_end` (fields 48 and 49) of a /proc/<pid>/stat line.
fn argv_area(stat: &str) -> Option<(usize, usize)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state).
    let start: usize = f.get(48 - 3)?.parse().ok()?;
    let end: usize = f.get(49 - 3)?.parse().ok()?;
    (start != 0 && end > start).then_some((start, end))
}

/// NUL-separated `berth-init -- args...`, cut to fit `room` bytes, NUL-terminated.
fn title_bytes(args: &[String], room: usize) -> Option<Vec<u8>> {
    if room == 0 {
        return None;
    }
    let mut t = Vec::new();
    for a in [INIT_NAME, "--"].into_iter().chain(args.iter().map(String::as_str)) {
        t.extend_from_slice(a.as_bytes());
        t.push(0);
    }
    t.truncate(room);
    if let Some(last) = t.last_mut() {
        *last = 0;
    }
    Some(t)
}

/// Forks the user's process and supervises it; never returns. Called where the init would
/// otherwise `execve`, after [`prepare`], with every fd but 0-2 (and the preserved ones)
/// already close-on-exec.
pub(crate) fn run(exe: &CString, argv: &[CString], envp: &[CString]) -> ! {
    if let Err(e) = drop_to_exec_caps() {
        eprintln!("{INIT_NAME}: warning: {e}");
    }
    // SAFETY: the container's init is single-threaded (it was cloned from a
    // single-threaded caller), so forking it cannot strand a lock held by another thread.
    let child = match unsafe { crate::container::clone_child(nix::sched::CloneFlags::empty()) } {
        Ok(pid) => pid,
        Err(e) => {
            eprintln!("{INIT_NAME}: fork: {e}");
            // SAFETY: _exit skips destructors that belong to the runtime's caller.
            unsafe { libc::_exit(1) }
        }
    };
    if child == 0 {
        exec_child(exe, argv, envp);
    }
    // Also from this side, so a signal forwarded before the child ran setpgid reaches it.
    // SAFETY: setpgid with plain integers; failure (the child already exec'd) is harmless.
    unsafe { libc::setpgid(child, child) };
    close_fds_from(3);
    let code = supervise(&mut LinuxPid1 { set: waited_signals() }, child);
    // SAFETY: as above: end without running the caller's destructors.
    unsafe { libc::_exit(code) }
}

/// Gives up the capabilities the command will not have once it has exec'd, so PID 1 holds
/// no more than the command: a non-root user keeps only its ambient set across execve (the
/// init, which never execs, would otherwise keep the spec's permitted set). This cannot
/// change what the command gets: execve computes the new sets from the inheritable,
/// bounding and ambient sets (and the file's), never from the permitted or effective ones.
fn drop_to_exec_caps() -> Result<()> {
    use caps::CapSet;
    let read = |set| {
        caps::read(None, set)
            .map(|s| crate::process::mask(&s))
            .map_err(|e| Error::Init(format!("read capabilities: {e}")))
    };
    let (eff, prm, inh) = (read(CapSet::Effective)?, read(CapSet::Permitted)?, read(CapSet::Inheritable)?);
    let (bnd, amb) = (read(CapSet::Bounding)?, read(CapSet::Ambient)?);
    // SAFETY: plain getters and prctl with integer arguments.
    let (ruid, euid, securebits) =
        unsafe { (libc::getuid(), libc::geteuid(), libc::prctl(libc::PR_GET_SECUREBITS, 0, 0, 0, 0)) };
    const SECBIT_NOROOT: i32 = 1;
    let root_rules = (ruid == 0 || euid == 0) && securebits >= 0 && securebits & SECBIT_NOROOT == 0;
    let (want_eff, want_prm) = exec_caps(root_rules, euid == 0, inh, bnd, amb);
    let (new_eff, new_prm) = (want_eff & want_prm & prm, want_prm & prm);
    if (new_eff, new_prm) == (eff, prm) {
        return Ok(());
    }
    crate::process::capset(new_eff, new_prm, inh).map_err(|e| Error::io("drop the capabilities the command will not have", e))
}

/// (effective, permitted) after execve of a file without capabilities or set-id bits
/// (capabilities(7)): with root's rules the file sets count as full, so permitted is
/// inheritable | bounding; otherwise only the ambient set survives.
fn exec_caps(root_rules: bool, euid_root: bool, inh: u64, bnd: u64, amb: u64) -> (u64, u64) {
    let prm = if root_rules { inh | bnd | amb } else { amb };
    let eff = if root_rules && euid_root { prm } else { amb };
    (eff, prm)
}

/// The child: its own process group (the target of forwarded signals, and the terminal's
/// foreground group when there is one), the default signal mask back, then the user's
/// program.
fn exec_child(exe: &CString, argv: &[CString], envp: &[CString]) -> ! {
    // SAFETY: plain syscalls with integer arguments and a valid empty sigset. All signals
    // are still blocked here, so tcsetpgrp from what is briefly a background group raises
    // no SIGTTOU; without a controlling terminal on stdin it fails with ENOTTY, which is fine.
    unsafe {
        libc::setpgid(0, 0);
        libc::tcsetpgrp(0, libc::getpgrp());
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
    let Err(errno) = nix::unistd::execve(exe, argv, envp);
    let err = CommandError::Execve { path: exe.to_string_lossy().into_owned(), reason: errno_text(errno as i32) };
    eprintln!("{INIT_NAME}: {err}");
    // SAFETY: end the forked child without running destructors it only has copies of.
    unsafe { libc::_exit(err.exit_code()) }
}

/// Closes every fd from `first` up: PID 1 needs none, and must not keep the container's
/// preserved fds or the runtime's sockets open for as long as the container runs.
fn close_fds_from(first: u32) {
    // SAFETY: close_range(first, ~0, 0) only closes descriptors of this process.
    if unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0) } == 0 {
        return;
    }
    // Kernels before 5.9 or a profile refusing close_range: walk the table instead.
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd >= first as i32)
        .collect();
    for fd in fds {
        // SAFETY: closing a descriptor number of ours (EBADF for the directory's own fd,
        // already closed by then, is harmless); no OwnedFd owns these in this process.
        unsafe { libc::close(fd) };
    }
}

/// What PID 1 needs from the kernel, so [`supervise`] can be tested without one.
pub(crate) trait Pid1Os {
    /// Blocks until one of the waited signals arrives; returns its number.
    fn next_signal(&mut self) -> i32;
    /// Sends `sig` on to the child's process group (or the child, if it left the group).
    fn forward(&mut self, child: i32, sig: i32);
    /// One exited child (any child, orphans included) without blocking: (pid, wait status).
    fn reap(&mut self) -> Option<(i32, i32)>;
}

/// PID 1's loop: reap whatever exited; when it is the child, return its exit code;
/// otherwise wait for the next signal and pass it on (SIGCHLD only means "reap again").
pub(crate) fn supervise(os: &mut dyn Pid1Os, child: i32) -> i32 {
    loop {
        let mut child_status = None;
        while let Some((pid, status)) = os.reap() {
            if pid == child {
                child_status = Some(status);
            }
        }
        if let Some(status) = child_status {
            return exit_code(status);
        }
        let sig = os.next_signal();
        if sig != libc::SIGCHLD {
            os.forward(child, sig);
        }
    }
}

/// A wait status as a shell reports it: the exit code, or 128+N for death by signal N.
pub(crate) fn exit_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    }
}

/// The real kernel.
pub(crate) struct LinuxPid1 {
    set: libc::sigset_t,
}

impl Pid1Os for LinuxPid1 {
    fn next_signal(&mut self) -> i32 {
        loop {
            // SAFETY: waits on a valid, blocked set; a null siginfo pointer is allowed.
            let sig = unsafe { libc::sigwaitinfo(&self.set, std::ptr::null_mut()) };
            if sig > 0 {
                return sig;
            }
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                // Cannot happen with a valid set; never spin: treat it as "reap again".
                std::thread::sleep(std::time::Duration::from_millis(100));
                return libc::SIGCHLD;
            }
        }
    }

    fn forward(&mut self, child: i32, sig: i32) {
        // SAFETY: kill with plain integers.
        unsafe {
            if libc::kill(-child, sig) != 0 {
                libc::kill(child, sig);
            }
        }
    }

    fn reap(&mut self) -> Option<(i32, i32)> {
        loop {
            let mut status = 0;
            // SAFETY: waitpid writes the status into a valid i32.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid > 0 {
                return Some((pid, status));
            }
            if pid < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            // 0: children left but none exited; ECHILD: none left.
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scripted kernel: signals to hand out, and exits that become reapable after the
    /// given number of signals.
    struct Script {
        signals: Vec<i32>,
        exits: Vec<(usize, i32, i32)>,
        delivered: usize,
        forwarded: Vec<(i32, i32)>,
    }

    impl Pid1Os for Script {
        fn next_signal(&mut self) -> i32 {
            assert!(!self.signals.is_empty(), "supervise waited for a signal the script does not have");
            self.delivered += 1;
            self.signals.remove(0)
        }
        fn forward(&mut self, child: i32, sig: i32) {
            self.forwarded.push((child, sig));
        }
        fn reap(&mut self) -> Option<(i32, i32)> {
            let i = self.exits.iter().position(|(after, _, _)| *after <= self.delivered)?;
            let (_, pid, status) = self.exits.remove(i);
            Some((pid, status))
        }
    }

    const fn exited(code: i32) -> i32 {
        code << 8
    }

    #[test]
    fn forwards_signals_reaps_orphans_and_exits_with_the_child() {
        let mut s = Script {
            // TERM and a real-time signal are forwarded; SIGCHLD is not.
            signals: vec![libc::SIGTERM, libc::SIGCHLD, libc::SIGRTMIN() + 2, libc::SIGCHLD],
            // An orphan (pid 9) exits after the 2nd signal, the child (pid 2) after the 4th.
            exits: vec![(2, 9, exited(0)), (4, 2, exited(7))],
            delivered: 0,
            forwarded: vec![],
        };
        assert_eq!(supervise(&mut s, 2), 7);
        assert_eq!(s.forwarded, vec![(2, libc::SIGTERM), (2, libc::SIGRTMIN() + 2)]);
        assert!(s.exits.is_empty(), "the orphan was not reaped");
        assert!(s.signals.is_empty());
    }

    #[test]
    fn a_child_gone_before_the_first_wait_is_seen_at_once() {
        let mut s = Script { signals: vec![], exits: vec![(0, 2, libc::SIGKILL)], delivered: 0, forwarded: vec![] };
        // Raw status of a death by SIGKILL is the signal number itself.
        assert_eq!(supervise(&mut s, 2), 137);
    }

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(exit_code(exited(0)), 0);
        assert_eq!(exit_code(exited(42)), 42);
        assert_eq!(exit_code(libc::SIGTERM), 143);
        // Core-dumped SIGSEGV: 0x80 flag plus the signal.
        assert_eq!(exit_code(0x80 | libc::SIGSEGV), 139);
    }

    #[test]
    fn the_waited_set_leaves_out_faults_and_keeps_the_rest() {
        let set = waited_signals();
        // SAFETY: sigismember reads a valid, initialised set.
        let has = |s| unsafe { libc::sigismember(&set, s) } == 1;
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGUSR1, libc::SIGCHLD, libc::SIGWINCH, libc::SIGRTMIN(), libc::SIGRTMAX()] {
            assert!(has(s), "signal {s} would not be forwarded");
        }
        for s in FAULTS {
            assert!(!has(s), "fault {s} would be blocked");
        }
    }

    #[test]
    fn exec_caps_follow_capabilities_7() {
        let (bnd, inh, amb) = (0b1111, 0b0010, 0b0100);
        // root: permitted = inheritable | bounding, all effective.
        assert_eq!(exec_caps(true, true, inh, bnd, amb), (0b1111, 0b1111));
        // Non-root: only the ambient set survives execve.
        assert_eq!(exec_caps(false, false, inh, bnd, amb), (0b0100, 0b0100));
        assert_eq!(exec_caps(false, false, inh, bnd, 0), (0, 0));
        // Real uid 0, effective uid not: permitted as root, effective only ambient.
        assert_eq!(exec_caps(true, false, inh, bnd, amb), (0b0100, 0b1111));
    }

    #[test]
    fn the_annotation_is_true_false_or_refused() {
        let mut spec = crate::spec::default_spec();
        assert!(!wanted(&spec).unwrap());
        for (v, want) in [("true", Some(true)), ("false", Some(false)), ("yes", None)] {
            spec.set_annotations(Some([(INIT_ANNOTATION.to_string(), v.to_string())].into_iter().collect()));
            assert_eq!(wanted(&spec).ok(), want, "{v}");
        }
    }

    #[test]
    fn title_fits_the_argv_area() {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let (start, end) = argv_area(&stat).unwrap();
        // Untouched, the area is exactly what /proc/self/cmdline shows.
        assert_eq!(end - start, std::fs::read("/proc/self/cmdline").unwrap().len());
        let args = vec!["sleep".to_string(), "60".to_string()];
        assert_eq!(title_bytes(&args, 100).unwrap(), [b"berth-init\0--\0sleep\0".as_slice(), b"60\0"].concat());
        assert_eq!(title_bytes(&args, 8).unwrap(), b"berth-i\0");
        assert_eq!(title_bytes(&args, 0), None);
    }
}
