//! Where a container's create goes inside the runtime, for the daemon's
//! `--trace-phases` report: [`begin`], then [`mark`]s along `Runtime::create` (each
//! ends the phase since the previous one), then [`take`]. Between `take` and the next
//! `begin` a mark does nothing, so the runtime's own CLI collects nothing. A mark is a
//! clock read and a push onto a short list. The container's init, a forked child, keeps
//! its own [`ChildMarks`] (no lock: it must not take one another thread of its parent
//! may have held at the fork) and sends them with its "ready".

use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

type Marks = (Option<Instant>, Vec<(String, f64)>);

static MARKS: Mutex<Marks> = Mutex::new((None, Vec::new()));

fn lock() -> MutexGuard<'static, Marks> {
    MARKS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts collecting (and forgets what an earlier collection left).
pub fn begin() {
    let mut m = lock();
    m.0 = Some(Instant::now());
    m.1.clear();
}

/// Ends the phase called `name`: the time since [`begin`] or the previous mark.
pub fn mark(name: &'static str) {
    let mut m = lock();
    if let Some(last) = m.0 {
        let now = Instant::now();
        m.1.push((name.to_string(), (now - last).as_secs_f64() * 1000.0));
        m.0 = Some(now);
    }
}

/// The phases collected since [`begin`], in milliseconds; collecting stops.
pub fn take() -> Vec<(String, f64)> {
    let mut m = lock();
    m.0 = None;
    std::mem::take(&mut m.1)
}

/// Adds the parts of phase `of` that another process measured and sent as
/// [`ChildMarks::encode`] text, as `of.name` (not counted again in the clock).
pub fn add_reported(of: &str, report: &[u8]) {
    let mut m = lock();
    if m.0.is_none() {
        return;
    }
    for (name, ms) in String::from_utf8_lossy(report).split_whitespace().filter_map(|kv| kv.split_once('=')) {
        if let Ok(ms) = ms.parse::<f64>() {
            m.1.push((format!("{of}.{name}"), ms));
        }
    }
}

/// Phases kept by one process for itself (the init between its fork and its "ready").
pub(crate) struct ChildMarks {
    last: Instant,
    text: String,
}

impl ChildMarks {
    pub(crate) fn new() -> ChildMarks {
        ChildMarks { last: Instant::now(), text: String::with_capacity(128) }
    }

    pub(crate) fn mark(&mut self, name: &str) {
        let now = Instant::now();
        use std::fmt::Write;
        let _ = write!(self.text, "{name}={:.3} ", (now - self.last).as_secs_f64() * 1000.0);
        self.last = now;
    }

    /// `name=ms name=ms …`, for [`add_reported`].
    pub(crate) fn encode(&self) -> &[u8] {
        self.text.trim_end().as_bytes()
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
        let mut child = super::ChildMarks::new();
        child.mark("mounts");
        child.mark("exec");
        super::add_reported("init", child.encode());
        assert!(super::take().is_empty(), "nothing is added outside a collection");
        super::begin();
        super::mark("init");
        super::add_reported("init", child.encode());
        super::add_reported("init", b"junk x=notanumber");
        let got = super::take();
        assert_eq!(got.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["init", "init.mounts", "init.exec"]);
    }
}
