//! Where the time of a container operation goes. [`Phases`] marks the end of each
//! phase of one operation (create, start, exit, rm, exec); with `--trace-phases` (or
//! `BERTH_TRACE_PHASES=1`) the daemon logs one line per operation —
//! `phases start 3f2a9c01d2e4 14.20 ms: rootfs=0.91 net=4.02 spec=0.20 …` — which
//! `bench/daemon/phases.sh` turns into medians per phase (docs/performance.md).
//! Without it the marks cost a clock read each and the line is a debug message.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns the per-operation breakdown lines on or off for the whole daemon.
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The phases of one operation on one object.
pub struct Phases {
    op: &'static str,
    id: String,
    start: Instant,
    last: Instant,
    marks: Vec<(&'static str, f64)>,
    /// Parts of a phase, reported by whoever did its work (the shim: `shim.clone` …);
    /// printed after the phases, not counted in the total twice.
    details: Vec<(String, f64)>,
}

impl Phases {
    pub fn new(op: &'static str, id: &str) -> Phases {
        let now = Instant::now();
        Phases { op, id: id.chars().take(12).collect(), start: now, last: now, marks: Vec::with_capacity(12), details: Vec::new() }
    }

    /// Ends the phase called `name` (the time since the previous mark).
    pub fn mark(&mut self, name: &'static str) {
        let now = Instant::now();
        self.marks.push((name, (now - self.last).as_secs_f64() * 1000.0));
        self.last = now;
    }

    /// Records the parts of phase `of` (`of.name=ms` in the line), as measured elsewhere.
    pub fn detail(&mut self, of: &str, parts: Vec<(String, f64)>) {
        self.details.extend(parts.into_iter().map(|(name, ms)| (format!("{of}.{name}"), ms)));
    }

    /// Logs the breakdown (info with `--trace-phases`, else debug).
    pub fn finish(self) {
        let on = enabled();
        if !on && !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        let total = self.last.duration_since(self.start).as_secs_f64() * 1000.0;
        let mut line = format!("phases {} {} {total:.2} ms:", self.op, self.id);
        for (name, ms) in self.marks.iter().map(|(n, ms)| (*n, ms)).chain(self.details.iter().map(|(n, ms)| (n.as_str(), ms))) {
            line.push_str(&format!(" {name}={ms:.2}"));
        }
        if on {
            tracing::info!(target: "berth::phases", "{line}");
        } else {
            tracing::debug!(target: "berth::phases", "{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_consecutive_phases() {
        let mut p = Phases::new("start", "0123456789abcdef");
        std::thread::sleep(std::time::Duration::from_millis(2));
        p.mark("a");
        p.mark("b");
        assert_eq!(p.id, "0123456789ab");
        assert_eq!(p.marks.len(), 2);
        assert!(p.marks[0].1 >= 2.0 && p.marks[1].1 < p.marks[0].1);
        p.detail("b", vec![("x".to_string(), 0.5)]);
        assert_eq!(p.details, vec![("b.x".to_string(), 0.5)]);
        p.finish();
    }
}
