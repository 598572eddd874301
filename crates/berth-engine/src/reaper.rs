//! Reaps the shims the daemon started (they are its children) without holding a
//! blocked thread each: one task wakes on SIGCHLD and collects, by pid, every child it
//! was given that has exited. A thread per shim cost memory (a stack and an allocator
//! arena each) and, past the blocking pool's 512 threads, would have stalled every
//! other blocking job of the daemon.

use std::process::Child;
use std::sync::{Mutex, OnceLock};

static CHILDREN: OnceLock<Mutex<Vec<Child>>> = OnceLock::new();

fn sweep(children: &Mutex<Vec<Child>>) {
    let mut c = children.lock().unwrap_or_else(|p| p.into_inner());
    // try_wait is waitpid(pid, WNOHANG): only these children, never another's.
    c.retain_mut(|ch| !matches!(ch.try_wait(), Ok(Some(_)) | Err(_)));
}

/// Hands a child over to be reaped when it exits.
pub(crate) fn adopt(child: Child) {
    let mut first = false;
    let children = CHILDREN.get_or_init(|| {
        first = true;
        Mutex::new(Vec::new())
    });
    children.lock().unwrap_or_else(|p| p.into_inner()).push(child);
    if first {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child()) {
            Ok(mut sigchld) => {
                tokio::spawn(async move {
                    while sigchld.recv().await.is_some() {
                        sweep(children);
                    }
                });
            }
            Err(e) => tracing::warn!("no SIGCHLD handler ({e}): exited shims stay zombies until the daemon restarts"),
        }
    }
    // It may have gone before the handler was there.
    sweep(children);
}

/// How many children wait to be reaped (tests).
pub fn pending() -> usize {
    CHILDREN.get().map(|c| c.lock().unwrap_or_else(|p| p.into_inner()).len()).unwrap_or(0)
}
