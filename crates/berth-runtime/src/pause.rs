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

/// What the pause process does with a signal (the x86_64 loop is assembly that makes
/// the same decisions; this is the portable loop's, and the tested statement of both).
#[derive(Debug, PartialEq, Eq)]
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
enum Action {
    Reap,
    Exit,
    Ignore,
}

#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
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
    }
    if let Ok(name) = std::ffi::CString::new(PAUSE_NAME) {
        let _ = nix::sys::prctl::set_name(&name);
    }
    Ok(())
}

/// The pause loop; never returns. Called where the init would otherwise `execve`, with
/// everything but stdio already closed on exec (closed here: nothing is exec'd).
///
/// The process is a copy of its creator (the shim): on x86_64 it gives back all of that
/// copy (heap, relocated data, libraries' pages, the deep stack) and from then on runs on
/// raw system calls only, touching nothing but its code and the top of its stack — so a
/// pod's sandbox costs a few pages rather than a second shim.
pub(crate) fn run() -> ! {
    // SAFETY: close_range only closes this process's descriptors; the pause needs none.
    // Not dumpable only now: in a user namespace that makes /proc/self/fd the host root's,
    // and the exec fifo is opened through it until the start.
    unsafe {
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    #[cfg(target_arch = "x86_64")]
    raw::run();
    #[cfg(not(target_arch = "x86_64"))]
    portable_loop();
}

/// The loop through libc, for architectures without [`raw`].
#[cfg(not(target_arch = "x86_64"))]
fn portable_loop() -> ! {
    // SAFETY: the set is plain data, initialised by sigfillset.
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
            // SAFETY: _exit ends the process without running the caller's destructors.
            Action::Exit => unsafe { libc::_exit(0) },
            Action::Ignore => {}
        }
    }
}

/// What the pause may give back, from /proc/self/maps lines: every mapping but the stack
/// (of which only what lies below `sp`, unused, goes) and the kernel's vdso/vvar/vsyscall
/// pages. Returned as (start, end) ranges, page aligned.
fn droppable(maps: &str, sp: usize) -> Vec<(usize, usize)> {
    const PAGE: usize = 4096;
    let mut out = Vec::new();
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let Some(range) = f.next() else { continue };
        let path = f.nth(4).unwrap_or("");
        let Some((a, b)) = range.split_once('-') else { continue };
        let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else { continue };
        if matches!(path, "[vdso]" | "[vvar]" | "[vvar_vclock]" | "[vsyscall]") {
            continue;
        }
        if (a..b).contains(&sp) {
            // Keep a page of slack below the running frames.
            let end = (sp & !(PAGE - 1)).saturating_sub(PAGE);
            if end > a {
                out.push((a, end));
            }
            continue;
        }
        out.push((a, b));
    }
    out
}

#[cfg(target_arch = "x86_64")]
mod raw {
    //! The pause loop as a few instructions of assembly over bare system calls: it reads
    //! nothing but its own registers and the top of its stack, so everything else the
    //! process inherited (heap, relocated data with the GOT, libraries, the deep stack)
    //! can be given back first — by the same code, since Rust code after that point could
    //! call through the dropped GOT.

    use super::droppable;

    pub(super) fn run() -> ! {
        // Work out what to drop while libc and the heap may still be used; everything of
        // the heap's is freed again before the assembly starts dropping.
        let mut ranges = [(0usize, 0usize); 256];
        let sp: usize;
        // SAFETY: reads the stack pointer; every local of this frame lies above it.
        unsafe { core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack)) };
        let mut n = 0;
        if let Ok(maps) = std::fs::read_to_string("/proc/self/maps") {
            for r in droppable(&maps, sp).into_iter().take(ranges.len()) {
                ranges[n] = r;
                n += 1;
            }
        }
        let set: u64 = !0;
        // SAFETY: madvise(MADV_DONTNEED) of the listed ranges (this process's own
        // mappings, minus the stack above rsp and the kernel's pages), then the pause loop
        // of `super::action`: rt_sigtimedwait on every signal; SIGCHLD reaps with wait4
        // (WNOHANG) until none is left; SIGTERM, SIGINT and SIGQUIT exit_group(0); others
        // are ignored. It reads only `ranges` and `set` (both above rsp, kept) and pushes
        // nothing; dropped pages come back as file content or zeroes and are never read.
        unsafe {
            core::arch::asm!(
                "2:",
                "test r13, r13",
                "jz 3f",
                "mov rdi, [r12]",
                "mov rsi, [r12 + 8]",
                "sub rsi, rdi",
                "mov edx, 4",        // MADV_DONTNEED
                "mov eax, 28",       // madvise
                "syscall",
                "add r12, 16",
                "dec r13",
                "jmp 2b",
                "3:",
                "mov rdi, r14",      // the set of every signal
                "xor esi, esi",
                "xor edx, edx",
                "mov r10d, 8",
                "mov eax, 128",      // rt_sigtimedwait
                "syscall",
                "cmp eax, 17",       // SIGCHLD
                "je 4f",
                "cmp eax, 15",       // SIGTERM
                "je 5f",
                "cmp eax, 2",        // SIGINT
                "je 5f",
                "cmp eax, 3",        // SIGQUIT
                "je 5f",
                "jmp 3b",
                "4:",
                "mov rdi, -1",
                "xor esi, esi",
                "mov edx, 1",        // WNOHANG
                "xor r10d, r10d",
                "mov eax, 61",       // wait4
                "syscall",
                "test rax, rax",
                "jg 4b",
                "jmp 3b",
                "5:",
                "xor edi, edi",
                "mov eax, 231",      // exit_group
                "syscall",
                "jmp 5b",
                in("r12") ranges.as_ptr(),
                in("r13") n,
                in("r14") &set as *const u64,
                options(noreturn, nostack),
            );
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
    fn everything_but_the_running_stack_and_kernel_pages_is_given_back() {
        let maps = "\
55d0a0000000-55d0a0100000 r-xp 00000000 08:01 123 /usr/bin/berth
55d0a1000000-55d0a1200000 rw-p 00000000 00:00 0 [heap]
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0 [stack]
7ffc00100000-7ffc00102000 r--p 00000000 00:00 0 [vvar]
7ffc00102000-7ffc00104000 r-xp 00000000 00:00 0 [vdso]
";
        let d = droppable(maps, 0x7ffc_0001_0123);
        assert_eq!(
            d,
            vec![(0x55d0_a000_0000, 0x55d0_a010_0000), (0x55d0_a100_0000, 0x55d0_a120_0000), (0x7ffc_0000_0000, 0x7ffc_0000_f000)]
        );
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
