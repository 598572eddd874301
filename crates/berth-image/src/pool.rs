//! A small pool of worker threads for layer unpacking: loads and pulls hand it one job
//! per layer, so layers unpack in parallel on all cores while the caller keeps reading
//! its stream.
//!
//! The pool costs nothing while nobody unpacks (the daemon holds its store for its
//! whole life, mostly idle): threads start with the first job, up to the pool's size,
//! and a thread that has had no work for `idle` ends (its stack goes back to the
//! system); the next job starts threads again.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{ImageError, Result};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// How long a worker waits for work before it ends.
pub(crate) const DEFAULT_IDLE: Duration = Duration::from_secs(30);

struct State {
    /// The job queue; `None` once the pool is dropped.
    tx: Option<mpsc::Sender<Job>>,
    /// Jobs sent and not yet picked up by a worker.
    queued: usize,
    /// Workers alive (running a job or waiting for one).
    live: usize,
    /// Workers waiting for a job.
    waiting: usize,
    handles: Vec<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    rx: Mutex<mpsc::Receiver<Job>>,
    idle: Duration,
}

pub(crate) struct WorkerPool {
    size: usize,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("size", &self.size)
            .field("live", &self.live())
            .finish()
    }
}

/// The result of a job, to wait for.
pub(crate) struct JobHandle<T> {
    rx: mpsc::Receiver<std::thread::Result<T>>,
    /// Set when no worker could be started for the job.
    start_error: Option<String>,
}

impl<T> JobHandle<T> {
    pub fn wait(self) -> Result<T> {
        if let Some(e) = self.start_error {
            return Err(ImageError::System(format!("cannot start an unpack worker: {e}")));
        }
        match self.rx.recv() {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(ImageError::System("an unpack worker panicked".into())),
            Err(_) => Err(ImageError::System("the unpack pool shut down".into())),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A worker that panicked mid-update leaves counters that are still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl WorkerPool {
    /// A pool of up to `size` threads (at least one); none runs yet.
    pub fn new(size: usize) -> WorkerPool {
        WorkerPool::with_idle(size, DEFAULT_IDLE)
    }

    pub fn with_idle(size: usize, idle: Duration) -> WorkerPool {
        let (tx, rx) = mpsc::channel::<Job>();
        WorkerPool {
            size: size.max(1),
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    tx: Some(tx),
                    queued: 0,
                    live: 0,
                    waiting: 0,
                    handles: Vec::new(),
                }),
                rx: Mutex::new(rx),
                idle,
            }),
        }
    }

    /// Workers alive now.
    pub fn live(&self) -> usize {
        lock(&self.shared.state).live
    }

    /// Queues `f`; its result (or panic) arrives through the handle.
    pub fn spawn<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> JobHandle<T> {
        let (rtx, rrx) = mpsc::channel();
        let job: Job = Box::new(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = rtx.send(r);
        });
        let mut st = lock(&self.shared.state);
        // Under the state lock, so a worker deciding to end (also under it) either
        // sees this job or is no longer counted.
        if let Some(tx) = st.tx.as_ref()
            && tx.send(job).is_ok()
        {
            st.queued += 1;
        }
        // Finished workers are joined here, so handles do not pile up.
        st.handles.retain(|h| !h.is_finished());
        let mut start_error = None;
        // Jobs no waiting worker will take get a new worker each, up to the pool's size.
        let wanted = st.queued.saturating_sub(st.waiting).min(self.size.saturating_sub(st.live));
        for _ in 0..wanted {
            let shared = Arc::clone(&self.shared);
            match std::thread::Builder::new()
                .name("berth-unpack".into())
                .spawn(move || worker(shared))
            {
                Ok(h) => {
                    st.live += 1;
                    st.handles.push(h);
                }
                Err(e) => {
                    if st.live == 0 {
                        start_error = Some(e.to_string());
                    }
                    break;
                }
            }
        }
        JobHandle { rx: rrx, start_error }
    }
}

fn worker(shared: Arc<Shared>) {
    lock(&shared.state).waiting += 1;
    loop {
        let next = {
            let rx = lock(&shared.rx);
            rx.recv_timeout(shared.idle)
        };
        let mut st = lock(&shared.state);
        match next {
            Ok(job) => {
                st.queued -= 1;
                st.waiting -= 1;
                drop(st);
                job();
                lock(&shared.state).waiting += 1;
            }
            // A job may have arrived between the timeout and the lock: stay for it.
            Err(RecvTimeoutError::Timeout) if st.queued > 0 => {}
            Err(_) => {
                // Idle long enough, or the pool is gone. Decided under the state lock,
                // so `spawn` either sent its job before (and we stayed) or sees one
                // worker fewer and starts another.
                st.waiting -= 1;
                st.live -= 1;
                return;
            }
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        let handles = {
            let mut st = lock(&self.shared.state);
            st.tx.take();
            std::mem::take(&mut st.handles)
        };
        for h in handles {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_jobs_in_parallel_and_returns_results() {
        let pool = WorkerPool::new(3);
        assert_eq!(pool.live(), 0, "no thread before the first job");
        let (tx, rx) = mpsc::channel();
        // Three jobs that each wait for the others to start: only possible in parallel.
        let barrier = Arc::new(std::sync::Barrier::new(3));
        let handles: Vec<_> = (0..3)
            .map(|i| {
                let b = Arc::clone(&barrier);
                let tx = tx.clone();
                pool.spawn(move || {
                    b.wait();
                    tx.send(i).unwrap();
                    i * 10
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.wait().unwrap()).collect();
        assert_eq!(results, vec![0, 10, 20]);
        assert_eq!(rx.iter().take(3).count(), 3);
        assert!(pool.live() <= 3);
    }

    #[test]
    fn a_panicking_job_is_an_error() {
        let pool = WorkerPool::new(1);
        let h = pool.spawn(|| -> u32 { panic!("boom") });
        assert!(h.wait().is_err());
        assert_eq!(pool.spawn(|| 5).wait().unwrap(), 5);
    }

    #[test]
    fn idle_workers_end_and_come_back() {
        let pool = WorkerPool::with_idle(2, Duration::from_millis(50));
        let a = pool.spawn(|| 1);
        let b = pool.spawn(|| 2);
        assert_eq!(a.wait().unwrap() + b.wait().unwrap(), 3);
        assert!(pool.live() >= 1);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while pool.live() > 0 {
            assert!(std::time::Instant::now() < deadline, "workers did not end when idle");
            std::thread::sleep(Duration::from_millis(10));
        }
        // New work starts workers again.
        assert_eq!(pool.spawn(|| 7).wait().unwrap(), 7);
    }

    #[test]
    fn many_jobs_racing_idle_timeouts_all_run() {
        // Workers ending while jobs arrive must never strand a job in the queue.
        let pool = WorkerPool::with_idle(2, Duration::from_millis(1));
        for round in 0..200u32 {
            let hs: Vec<_> = (0..3).map(|i| pool.spawn(move || round + i)).collect();
            let sum: u32 = hs.into_iter().map(|h| h.wait().unwrap()).sum();
            assert_eq!(sum, 3 * round + 3);
            if round % 50 == 0 {
                std::thread::sleep(Duration::from_millis(3));
            }
        }
    }
}
