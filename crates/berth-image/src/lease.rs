//! Leases (containerd's idea): an operation in progress — a load, an import, a pull —
//! holds a lease on the blobs and layers it is creating, so garbage collection leaves
//! them alone before an image record points at them. The lease also owns the layers
//! the operation unpacked but has not installed yet; dropping it removes them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::digest::Digest;
use crate::layer::StagedLayer;

#[derive(Debug, Default)]
pub(crate) struct LeaseEntry {
    pub blobs: HashSet<Digest>,
    pub layers: HashSet<Digest>,
    /// Blobs and layers this operation created (not merely reused): what a rollback
    /// may remove.
    pub created_blobs: HashSet<Digest>,
    pub created_layers: HashSet<Digest>,
    /// Unpacked, not yet installed layers by DiffID.
    pub staged: HashMap<Digest, Vec<StagedLayer>>,
    /// For each layer blob unpacked under this lease, the DiffID it unpacked to.
    pub blob_diff_ids: HashMap<Digest, Digest>,
}

#[derive(Debug, Default)]
pub(crate) struct LeaseTable {
    next: u64,
    pub entries: HashMap<u64, LeaseEntry>,
}

impl LeaseTable {
    /// Everything any live lease protects.
    pub fn protected(&self) -> (HashSet<Digest>, HashSet<Digest>) {
        let mut blobs = HashSet::new();
        let mut layers = HashSet::new();
        for e in self.entries.values() {
            blobs.extend(e.blobs.iter().cloned());
            layers.extend(e.layers.iter().cloned());
        }
        (blobs, layers)
    }
}

/// A handle on a lease; dropping it ends the lease.
#[derive(Debug)]
pub struct Lease {
    id: u64,
    table: Arc<Mutex<LeaseTable>>,
}

fn lock(table: &Mutex<LeaseTable>) -> MutexGuard<'_, LeaseTable> {
    // A panic while holding the lock leaves sets that are still valid data.
    table.lock().unwrap_or_else(|p| p.into_inner())
}

impl Lease {
    pub(crate) fn new(table: &Arc<Mutex<LeaseTable>>) -> Lease {
        let mut t = lock(table);
        t.next += 1;
        let id = t.next;
        t.entries.insert(id, LeaseEntry::default());
        Lease {
            id,
            table: Arc::clone(table),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut LeaseEntry) -> T) -> Option<T> {
        let mut t = lock(&self.table);
        t.entries.get_mut(&self.id).map(f)
    }

    /// Keeps blob `digest` from garbage collection while the lease lives.
    pub fn protect_blob(&self, digest: &Digest) {
        self.with(|e| e.blobs.insert(digest.clone()));
    }

    /// Keeps layer `chain_id` from garbage collection while the lease lives.
    pub fn protect_layer(&self, chain_id: &Digest) {
        self.with(|e| e.layers.insert(chain_id.clone()));
    }

    pub(crate) fn created_blob(&self, digest: &Digest) {
        self.with(|e| {
            e.blobs.insert(digest.clone());
            e.created_blobs.insert(digest.clone())
        });
    }

    pub(crate) fn created_layer(&self, chain_id: &Digest) {
        self.with(|e| {
            e.layers.insert(chain_id.clone());
            e.created_layers.insert(chain_id.clone())
        });
    }

    pub(crate) fn add_staged(&self, staged: StagedLayer) {
        let mut t = lock(&self.table);
        match t.entries.get_mut(&self.id) {
            Some(e) => e.staged.entry(staged.diff_id().clone()).or_default().push(staged),
            None => {
                drop(t);
                drop(staged);
            }
        }
    }

    pub(crate) fn record_blob_diff_id(&self, blob: &Digest, diff_id: &Digest) {
        self.with(|e| e.blob_diff_ids.insert(blob.clone(), diff_id.clone()));
    }

    pub(crate) fn blob_diff_id(&self, blob: &Digest) -> Option<Digest> {
        self.with(|e| e.blob_diff_ids.get(blob).cloned()).flatten()
    }

    pub(crate) fn take_staged(&self, diff_id: &Digest) -> Option<StagedLayer> {
        self.with(|e| e.staged.get_mut(diff_id).and_then(|v| v.pop())).flatten()
    }

    /// What this lease created, for a rollback.
    pub(crate) fn created(&self) -> (HashSet<Digest>, HashSet<Digest>) {
        self.with(|e| (e.created_blobs.clone(), e.created_layers.clone()))
            .unwrap_or_default()
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let entry = lock(&self.table).entries.remove(&self.id);
        // Staged layers are removed from disk here, outside the lock.
        drop(entry);
    }
}
