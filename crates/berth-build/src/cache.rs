//! The build cache's index: for each cache key (a digest of the parent image and
//! everything that decides a step's result), the image that step made. The images
//! themselves live in the image store as the parents of what was built (Docker's
//! classic model), so a cache hit costs one lookup and the cache survives restarts
//! with the images. Each entry is one small file written temp + rename, so a crash
//! never leaves a half-written index; entries whose image is gone are dropped when
//! met.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    /// The image the step made (`sha256:...`).
    pub image: String,
    /// Its parent image, if any.
    #[serde(default)]
    pub parent: Option<String>,
    /// The step, as `docker history` shows it.
    pub description: String,
    /// Unix seconds.
    pub created: i64,
    pub last_used: i64,
    pub usage_count: u64,
    /// Whether the step added a layer.
    #[serde(default)]
    pub layer: bool,
}

#[derive(Debug)]
pub struct CacheIndex {
    dir: PathBuf,
    entries: Mutex<HashMap<String, Entry>>,
    /// Keys whose usage changed since the last flush.
    dirty: Mutex<Vec<String>>,
    /// When each entry's usage was last written (unix seconds).
    written: Mutex<HashMap<String, i64>>,
}

/// A cache key from its parts (order matters).
pub fn key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl CacheIndex {
    /// Loads the index kept in `dir` (created if missing).
    pub fn open(dir: &Path) -> std::io::Result<CacheIndex> {
        std::fs::create_dir_all(dir)?;
        let mut entries = HashMap::new();
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                // A temp file a crash left.
                let _ = std::fs::remove_file(e.path());
                continue;
            }
            match std::fs::read(e.path()).ok().and_then(|b| serde_json::from_slice::<Entry>(&b).ok()) {
                Some(entry) if entry.key == name => {
                    entries.insert(name, entry);
                }
                _ => {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let written = entries.iter().map(|(k, e)| (k.clone(), e.last_used)).collect();
        Ok(CacheIndex { dir: dir.to_path_buf(), entries: Mutex::new(entries), dirty: Mutex::new(Vec::new()), written: Mutex::new(written) })
    }

    pub fn get(&self, key: &str) -> Option<Entry> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
    }

    /// Notes a hit (persisted at the next [`CacheIndex::flush`]).
    pub fn touch(&self, key: &str) {
        let mut m = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = m.get_mut(key) {
            e.last_used = now();
            e.usage_count += 1;
            self.dirty.lock().unwrap_or_else(|p| p.into_inner()).push(key.to_string());
        }
    }

    /// Records an entry durably.
    pub fn put(&self, entry: Entry) -> std::io::Result<()> {
        self.write(&entry, true)?;
        self.written.lock().unwrap_or_else(|p| p.into_inner()).insert(entry.key.clone(), entry.last_used);
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).insert(entry.key.clone(), entry);
        Ok(())
    }

    fn write(&self, entry: &Entry, sync: bool) -> std::io::Result<()> {
        let tmp = self.dir.join(format!(".{}.tmp", entry.key));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(entry).map_err(std::io::Error::other)?)?;
        if sync {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, self.dir.join(&entry.key))
    }

    /// Writes the usage of entries hit since the last flush that has not been written
    /// for a minute (not synced: losing a last-used time to a crash costs nothing, and
    /// a fully cached build should not rewrite its whole index).
    pub fn flush(&self) {
        let keys: Vec<String> = std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|p| p.into_inner()));
        let now = now();
        for k in keys {
            let Some(e) = self.get(&k) else { continue };
            let stale = {
                let mut w = self.written.lock().unwrap_or_else(|p| p.into_inner());
                let last = w.get(&k).copied().unwrap_or(0);
                if now - last >= 60 {
                    w.insert(k.clone(), now);
                    true
                } else {
                    false
                }
            };
            if stale {
                let _ = self.write(&e, false);
            }
        }
    }

    pub fn remove(&self, key: &str) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
        let _ = std::fs::remove_file(self.dir.join(key));
    }

    pub fn entries(&self) -> Vec<Entry> {
        let mut v: Vec<Entry> = self.entries.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        v.sort_by(|a, b| b.last_used.cmp(&a.last_used).then(a.key.cmp(&b.key)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_reopening_and_junk_is_dropped() {
        let t = tempfile::tempdir().unwrap();
        let idx = CacheIndex::open(t.path()).unwrap();
        let k = key(&["sha256:parent", "RUN x"]);
        idx.put(Entry { key: k.clone(), image: "sha256:child".into(), parent: None, description: "RUN x".into(), created: 1, last_used: 1, usage_count: 0, layer: true }).unwrap();
        idx.touch(&k);
        idx.flush();
        std::fs::write(t.path().join("garbage"), "{").unwrap();
        std::fs::write(t.path().join(".half.tmp"), "{").unwrap();
        let again = CacheIndex::open(t.path()).unwrap();
        let e = again.get(&k).unwrap();
        assert_eq!(e.image, "sha256:child");
        assert_eq!(e.usage_count, 1);
        assert_eq!(again.entries().len(), 1);
        assert!(!t.path().join("garbage").exists());
        assert_ne!(key(&["a", "bc"]), key(&["ab", "c"]));
    }
}
