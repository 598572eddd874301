//! A small fixed pool of worker threads for layer unpacking: loads and pulls hand it
//! one job per layer, so layers unpack in parallel on all cores while the caller keeps
//! reading its stream.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::error::{ImageError, Result};

type Job = Box<dyn FnOnce() + Send + 'static>;

pub(crate) struct WorkerPool {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool").field("threads", &self.threads.len()).finish()
    }
}

/// The result of a job, to wait for.
pub(crate) struct JobHandle<T> {
    rx: mpsc::Receiver<std::thread::Result<T>>,
}

impl<T> JobHandle<T> {
    pub fn wait(self) -> Result<T> {
        match self.rx.recv() {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(ImageError::System("an unpack worker panicked".into())),
            Err(_) => Err(ImageError::System("the unpack pool shut down".into())),
        }
    }
}

impl WorkerPool {
    pub fn new(threads: usize) -> std::io::Result<WorkerPool> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            let h = std::thread::Builder::new()
                .name(format!("berth-unpack-{i}"))
                .spawn(move || {
                    loop {
                        let job = {
                            let Ok(guard) = rx.lock() else { return };
                            guard.recv()
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })?;
            handles.push(h);
        }
        Ok(WorkerPool {
            tx: Mutex::new(Some(tx)),
            threads: handles,
        })
    }

    /// Queues `f`; its result (or panic) arrives through the handle.
    pub fn spawn<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> JobHandle<T> {
        let (rtx, rrx) = mpsc::channel();
        let job: Job = Box::new(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = rtx.send(r);
        });
        if let Ok(guard) = self.tx.lock()
            && let Some(tx) = guard.as_ref() {
                let _ = tx.send(job);
            }
        JobHandle { rx: rrx }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        if let Ok(mut g) = self.tx.lock() {
            g.take();
        }
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_jobs_in_parallel_and_returns_results() {
        let pool = WorkerPool::new(3).unwrap();
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
    }

    #[test]
    fn a_panicking_job_is_an_error() {
        let pool = WorkerPool::new(1).unwrap();
        let h = pool.spawn(|| -> u32 { panic!("boom") });
        assert!(h.wait().is_err());
        assert_eq!(pool.spawn(|| 5).wait().unwrap(), 5);
    }
}
