//! Namespaces made ahead of time: a start takes a ready one instead of waiting for the
//! kernel to make it. The pool keeps namespace files (nsfs binds) under a directory of
//! its own, tops itself up on a task after each take, hands each item out once (a
//! namespace a container has had is never pooled again) and is cleared when the daemon
//! stops; opening it removes what a killed daemon left there.
//!
//! Two kinds use it: fresh network namespaces ([`crate::netns::open_netns_pool`]) and,
//! with `--userns-remap`, user namespaces each with a network namespace inside (the
//! engine's `userns::Pool`). What an item is and how it is made is the kind's part.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// What a pool holds: one or more namespace files that go together.
pub trait Pooled: Send + 'static {
    /// Unmounts and removes its files (an item not handed out, or a pool cleared).
    fn discard(self);
}

impl Pooled for PathBuf {
    fn discard(self) {
        let _ = remove_ns_file(&self);
    }
}

impl Pooled for (PathBuf, PathBuf) {
    fn discard(self) {
        let _ = remove_ns_file(&self.0);
        let _ = remove_ns_file(&self.1);
    }
}

/// Makes one item, given a fresh path stem under the pool's directory (`<dir>/<n>`).
/// On failure it leaves nothing behind.
pub type Maker<T> = Box<dyn Fn(PathBuf) -> Pin<Box<dyn Future<Output = io::Result<T>> + Send>> + Send + Sync>;

pub struct Pool<T: Pooled> {
    dir: PathBuf,
    size: usize,
    /// What is made, for the warning when making fails ("a network namespace").
    what: &'static str,
    make: Maker<T>,
    ready: Mutex<Vec<T>>,
    next: AtomicU64,
    filling: AtomicBool,
    /// Set by [`Pool::clear`] (the daemon is stopping): nothing more is made.
    closed: AtomicBool,
}

impl<T: Pooled> std::fmt::Debug for Pool<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("dir", &self.dir).field("size", &self.size).field("ready", &self.ready()).finish()
    }
}

impl<T: Pooled> Pool<T> {
    /// An empty pool of `size` items kept under `dir`; what an earlier daemon left
    /// there is removed. Nothing is made until [`Pool::refill`].
    pub fn open(dir: &Path, size: usize, what: &'static str, make: Maker<T>) -> io::Result<Arc<Pool<T>>> {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                remove_ns_file(&e.path())?;
            }
        }
        std::fs::create_dir_all(dir)?;
        Ok(Arc::new(Pool {
            dir: dir.to_path_buf(),
            size,
            what,
            make,
            ready: Default::default(),
            next: Default::default(),
            filling: Default::default(),
            closed: Default::default(),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Vec<T>> {
        self.ready.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A ready item, now the caller's (to place, or to discard).
    pub fn pop(&self) -> Option<T> {
        self.lock().pop()
    }

    /// Tops the pool up on a task of its own (one filler at a time). Called after a
    /// start, so the kernel's work for the next item is not in that start's way.
    pub fn refill(self: &Arc<Self>) {
        if self.closed.load(Ordering::Acquire) || self.filling.swap(true, Ordering::AcqRel) {
            return;
        }
        let pool = self.clone();
        tokio::spawn(async move {
            while pool.lock().len() < pool.size {
                let stem = pool.dir.join(pool.next.fetch_add(1, Ordering::Relaxed).to_string());
                let item = match (pool.make)(stem).await {
                    Ok(item) => item,
                    Err(e) => {
                        tracing::warn!("making {} ahead of time: {e}", pool.what);
                        break;
                    }
                };
                let mut ready = pool.lock();
                if pool.closed.load(Ordering::Acquire) {
                    drop(ready);
                    item.discard();
                    break;
                }
                ready.push(item);
            }
            pool.filling.store(false, Ordering::Release);
        });
    }

    /// Removes every item the pool holds and makes no more (the daemon is stopping:
    /// nothing it made ahead stays mounted behind it).
    pub fn clear(&self) {
        self.closed.store(true, Ordering::Release);
        for item in std::mem::take(&mut *self.lock()) {
            item.discard();
        }
    }

    /// How many are ready.
    pub fn ready(&self) -> usize {
        self.lock().len()
    }

    /// Whether a filler is at work (for tests that wait for a full pool).
    pub fn filling(&self) -> bool {
        self.filling.load(Ordering::Acquire)
    }
}

impl Pool<PathBuf> {
    /// Binds a ready namespace at `at` (a file made here). False when none is ready or
    /// it could not be placed: the caller makes one.
    pub fn take(&self, at: &Path) -> bool {
        let Some(from) = self.pop() else { return false };
        let placed = place(&from, at);
        from.discard();
        placed
    }
}

/// Binds the namespace file `from` at `at` (the file, and its directory, made here).
/// False, with nothing left at `at`, when it cannot.
pub fn place(from: &Path, at: &Path) -> bool {
    let placed = at
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|_| std::fs::File::create(at))
        .and_then(|_| rustix::mount::mount_bind(from, at).map_err(io::Error::from));
    if let Err(e) = &placed {
        tracing::debug!("a namespace made ahead could not be placed at {}: {e}", at.display());
        let _ = remove_ns_file(at);
    }
    placed.is_ok()
}

/// Unmounts and removes a namespace file (idempotent). The namespace itself goes away
/// once nothing else holds it.
pub fn remove_ns_file(at: &Path) -> io::Result<()> {
    match rustix::mount::unmount(at, rustix::mount::UnmountFlags::DETACH) {
        Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(e.into()),
    }
    match std::fs::remove_file(at) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
