//! Where a container's create goes inside the runtime, for the daemon's
//! `--trace-phases` report: [`begin`], then [`mark`]s along `Runtime::create` (each
//! ends the phase since the previous one), then [`take`]. Between `take` and the next
//! `begin` a mark does nothing, so the runtime's own CLI collects nothing. A mark is a
//! clock read and a push onto a short list. The container's init, a forked child, keeps
//! [`Marks`] of its own (no lock: it must not take one another thread of its parent may
//! have held at the fork) and sends them with its "ready".

use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// Consecutive phases: each mark ends the one since the previous mark.
pub(crate) struct Marks {
    last: Instant,
    list: Vec<(String, f64)>,
}

impl Marks {
    pub(crate) fn new() -> Marks {
        Marks { last: Instant::now(), list: Vec::with_capacity(16) }
    }

    pub(crate) fn mark(&mut self, name: &str) {
        let now = Instant::now();
        self.list.push((name.to_string(), (now - self.last).as_secs_f64() * 1000.0));
        self.last = now;
    }

    /// `name=ms name=ms …`: what the init sends with "ready", for [`add_reported`].
    pub(crate) fn encode(&self) -> Vec<u8> {
        let text: Vec<String> = self.list.iter().map(|(n, ms)| format!("{n}={ms:.3}")).collect();
        text.join(" ").into_bytes()
    }
}

/// This process's collection, between [`begin`] and [`take`].
static COLLECTING: Mutex<Option<Marks>> = Mutex::new(None);

fn lock() -> MutexGuard<'static, Option<Marks>> {
    COLLECTING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts collecting (and forgets what an earlier collection left).
pub fn begin() {
    *lock() = Some(Marks::new());
}

/// Ends the phase called `name`: the time since [`begin`] or the previous mark.
pub fn mark(name: &'static str) {
    if let Some(m) = lock().as_mut() {
        m.mark(name);
    }
}

/// The phases collected since [`begin`], in milliseconds; collecting stops.
pub fn take() -> Vec<(String, f64)> {
    lock().take().map(|m| m.list).unwrap_or_default()
}

/// Adds the parts of phase `of` that another process measured and sent as
/// [`Marks::encode`] text, as `of.name` (not counted again in the clock).
pub fn add_reported(of: &str, report: &[u8]) {
    let mut m = lock();
    let Some(m) = m.as_mut() else { return };
    for (name, ms) in String::from_utf8_lossy(report).split_whitespace().filter_map(|kv| kv.split_once('=')) {
        if let Ok(ms) = ms.parse::<f64>() {
            m.list.push((format!("{of}.{name}"), ms));
        }
    }
}

#[cfg(test)]
mod tests {
    /// The marks are one per process: tests that use them take turns.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn marks_count_only_between_begin_and_take() {
        let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        super::mark("before");
        super::begin();
        std::thread::sleep(std::time::Duration::from_millis(2));
        super::mark("a");
        super::mark("b");
        let got = super::take();
        super::mark("after");
        assert_eq!(got.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert!(got[0].1 >= 2.0 && got[1].1 < got[0].1);
        assert!(super::take().is_empty());
    }

    #[test]
    fn a_childs_marks_are_added_under_the_phase_they_belong_to() {
        let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let mut child = super::Marks::new();
        child.mark("mounts");
        child.mark("exec");
        super::add_reported("init", &child.encode());
        assert!(super::take().is_empty(), "nothing is added outside a collection");
        super::begin();
        super::mark("init");
        super::add_reported("init", &child.encode());
        super::add_reported("init", b"junk x=notanumber");
        let got = super::take();
        assert_eq!(got.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["init", "init.mounts", "init.exec"]);
    }
}
