//! Where a container's create goes inside the runtime, for the daemon's
//! `--trace-phases` report: [`begin`], then [`mark`]s along `Runtime::create` (each
//! ends the phase since the previous one), then [`take`]. Between `take` and the next
//! `begin` a mark does nothing, so the runtime's own CLI collects nothing. A mark is a
//! clock read and a push onto a short list.

use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

type Marks = (Option<Instant>, Vec<(&'static str, f64)>);

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
        m.1.push((name, (now - last).as_secs_f64() * 1000.0));
        m.0 = Some(now);
    }
}

/// The phases collected since [`begin`], in milliseconds; collecting stops.
pub fn take() -> Vec<(String, f64)> {
    let mut m = lock();
    m.0 = None;
    std::mem::take(&mut m.1).into_iter().map(|(n, ms)| (n.to_string(), ms)).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn marks_count_only_between_begin_and_take() {
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
}
