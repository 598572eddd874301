//! `io.berth.pause`: the container's init holds its namespaces and does nothing else — the
//! built-in stand-in for Kubernetes' pause container, so a pod sandbox needs no image.
//!
//! The init does all of the usual setup (namespaces, rootfs, capabilities, seccomp, user)
//! and at the very end, instead of `execve`, waits for signals: SIGCHLD reaps whatever
//! exited (as PID 1 of a shared pid namespace it inherits the pod's orphans), SIGTERM,
//! SIGINT and SIGQUIT end it with status 0, everything else is ignored. Blocked signals
//! are delivered even to a pid-namespace init without handlers, so no handler is needed.

use oci_spec::runtime::Spec;

use crate::error::{Error, Result};

/// The annotation that asks for the pause process (set by the daemon for pod sandboxes).
pub const PAUSE_ANNOTATION: &str = "io.berth.pause";

/// The name the pause process shows in `ps`.
pub const PAUSE_NAME: &str = "berth-pause";

/// Whether the spec asks for the pause process: `"true"`, `"false"` or absent.
pub fn wanted(spec: &Spec) -> Result<bool> {
    match spec.annotations().as_ref().and_then(|a| a.get(PAUSE_ANNOTATION)).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(Error::InvalidSpec(format!(
            "annotation {PAUSE_ANNOTATION}={other:?}: must be \"true\" or \"false\""
        ))),
    }
}

/// What the pause process does with a signal.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    Reap,
    Exit,
    Ignore,
}

fn action(sig: i32) -> Action {
    match sig {
        libc::SIGCHLD => Action::Reap,
        libc::SIGTERM | libc::SIGINT | libc::SIGQUIT => Action::Exit,
        _ => Action::Ignore,
    }
}

/// Blocks every signal it waits for (before READY, so an early stop is held, not lost)
/// and takes its name.
pub(crate) fn prepare() -> Result<()> {
    // SAFETY: sigset_t is plain data, initialised by sigfillset; sigprocmask on the
    // single-threaded init with a null old-set pointer.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(Error::io("block signals for the pause process", std::io::Error::last_os_error()));
        }
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    if let Ok(name) = std::ffi::CString::new(PAUSE_NAME) {
        let _ = nix::sys::prctl::set_name(&name);
    }
    Ok(())
}

/// The pause loop; never returns. Called where the init would otherwise `execve`, with
/// everything but stdio already closed on exec (closed here: nothing is exec'd).
pub(crate) fn run() -> ! {
    // SAFETY: close_range only closes this process's descriptors; the pause needs none.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0) };
    // SAFETY: as in prepare; the set is plain data.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        set
    };
    loop {
        // SAFETY: sigwaitinfo with a valid set and a null siginfo pointer.
        let sig = unsafe { libc::sigwaitinfo(&set, std::ptr::null_mut()) };
        match action(sig) {
            Action::Reap => loop {
                let mut status = 0;
                // SAFETY: waitpid on any child, non-blocking, into a local.
                if unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } <= 0 {
                    break;
                }
            },
            // SAFETY: _exit ends the process without running destructors that belong to
            // the runtime's caller, whose memory this process is a copy of.
            Action::Exit => unsafe { libc::_exit(0) },
            Action::Ignore => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_reap_end_or_are_ignored() {
        assert_eq!(action(libc::SIGCHLD), Action::Reap);
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT] {
            assert_eq!(action(s), Action::Exit);
        }
        for s in [libc::SIGHUP, libc::SIGUSR1, libc::SIGWINCH, -1] {
            assert_eq!(action(s), Action::Ignore);
        }
    }

    #[test]
    fn annotation_is_strict() {
        let mut spec = Spec::default();
        assert!(!wanted(&spec).unwrap());
        spec.set_annotations(Some([(PAUSE_ANNOTATION.to_string(), "true".to_string())].into_iter().collect()));
        assert!(wanted(&spec).unwrap());
        spec.set_annotations(Some([(PAUSE_ANNOTATION.to_string(), "yes".to_string())].into_iter().collect()));
        assert!(wanted(&spec).is_err());
    }
}
