//! Crash-safe state files: one JSON document per object, written to a temporary file
//! in the same directory, fsynced, renamed over the old one, and the directory fsynced.
//! A reader therefore sees either the old or the new document, never half of one.
//!
//! Runtime state (the endpoints and sandboxes of running containers, which a reboot
//! ends and the restart's reconcile releases) skips the fsyncs: a daemon crash still
//! leaves the old document or the new, and what a power loss may leave half-written is
//! dropped when loaded. That took four fsyncs off every container start.

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{NetError, Result};

/// A directory holding `<key>.json` documents of one type.
#[derive(Debug, Clone)]
pub struct JsonDir {
    dir: PathBuf,
    /// Flush every change (fsync of the file and of the directory).
    durable: bool,
}

const TMP_SUFFIX: &str = ".json.tmp";

impl JsonDir {
    /// Opens (creating if needed) the directory and removes temporary files a crash
    /// may have left behind.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        Self::open_with(dir.into(), true)
    }

    /// A directory of runtime state: not flushed, and a document that cannot be decoded
    /// (a power loss's leftover) is dropped by [`JsonDir::load_all`] instead of failing it.
    pub fn open_runtime(dir: impl Into<PathBuf>) -> Result<Self> {
        Self::open_with(dir.into(), false)
    }

    fn open_with(dir: PathBuf, durable: bool) -> Result<Self> {
        fs::create_dir_all(&dir)
            .map_err(|e| NetError::system(format!("create {}", dir.display()), e))?;
        let this = JsonDir { dir, durable };
        for entry in this.read_dir()? {
            let name = entry.file_name();
            if name.to_string_lossy().ends_with(TMP_SUFFIX) {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(this)
    }

    fn read_dir(&self) -> Result<Vec<fs::DirEntry>> {
        let rd = fs::read_dir(&self.dir)
            .map_err(|e| NetError::system(format!("read {}", self.dir.display()), e))?;
        rd.collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| NetError::system(format!("read {}", self.dir.display()), e))
    }

    fn file(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// Writes `value` under `key` atomically and durably.
    pub fn store<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        validate_key(key)?;
        let data = serde_json::to_vec_pretty(value)
            .map_err(|e| NetError::system(format!("encode {key}"), e))?;
        let final_path = self.file(key);
        let tmp_path = self.dir.join(format!("{key}{TMP_SUFFIX}"));
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp_path)?;
            f.write_all(&data)?;
            if self.durable {
                f.sync_all()?;
            }
            fs::rename(&tmp_path, &final_path)?;
            if self.durable {
                fs::File::open(&self.dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp_path);
            NetError::system(format!("write {}", final_path.display()), e)
        })
    }

    /// Removes `key` (no error if it is already gone), durably.
    pub fn remove(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        let path = self.file(key);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(NetError::system(format!("remove {}", path.display()), e)),
        }
        if !self.durable {
            return Ok(());
        }
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| NetError::system(format!("sync {}", self.dir.display()), e))
    }

    /// Loads every document in the directory, as `(key, value)` pairs sorted by key.
    pub fn load_all<T: DeserializeOwned>(&self) -> Result<Vec<(String, T)>> {
        let mut out = Vec::new();
        for entry in self.read_dir()? {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(key) = name.strip_suffix(".json") else { continue };
            let path = entry.path();
            let data = fs::read(&path)
                .map_err(|e| NetError::system(format!("read {}", path.display()), e))?;
            let value = match serde_json::from_slice(&data) {
                Ok(v) => v,
                Err(e) if !self.durable => {
                    tracing::warn!("dropping {}: {e}", path.display());
                    let _ = fs::remove_file(&path);
                    continue;
                }
                Err(e) => return Err(NetError::system(format!("decode {}", path.display()), e)),
            };
            out.push((key.to_string(), value));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

fn validate_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= 128
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok { Ok(()) } else { Err(NetError::invalid(format!("invalid state key {key:?}"))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_load_remove_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = JsonDir::open(tmp.path().join("things")).unwrap();
        dir.store("b", &vec![1, 2]).unwrap();
        dir.store("a", &vec![3]).unwrap();
        dir.store("a", &vec![4]).unwrap();
        let all: Vec<(String, Vec<i32>)> = dir.load_all().unwrap();
        assert_eq!(all, vec![("a".into(), vec![4]), ("b".into(), vec![1, 2])]);
        dir.remove("a").unwrap();
        dir.remove("a").unwrap();
        let all: Vec<(String, Vec<i32>)> = dir.load_all().unwrap();
        assert_eq!(all.len(), 1);
    }

    #[test]
    fn runtime_state_drops_what_a_power_loss_left_half_written() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = JsonDir::open_runtime(tmp.path()).unwrap();
        dir.store("a", &1).unwrap();
        fs::write(tmp.path().join("b.json"), b"").unwrap();
        let all: Vec<(String, i32)> = dir.load_all().unwrap();
        assert_eq!(all, vec![("a".into(), 1)]);
        assert!(!tmp.path().join("b.json").exists());
        // Durable state is never dropped silently.
        fs::write(tmp.path().join("b.json"), b"").unwrap();
        assert!(JsonDir::open(tmp.path()).unwrap().load_all::<i32>().is_err());
    }

    #[test]
    fn leftover_temp_files_are_discarded_on_open() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("x.json.tmp"), b"{half").unwrap();
        let dir = JsonDir::open(tmp.path()).unwrap();
        let all: Vec<(String, i32)> = dir.load_all().unwrap();
        assert!(all.is_empty());
        assert!(!tmp.path().join("x.json.tmp").exists());
    }

    #[test]
    fn keys_cannot_escape_the_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = JsonDir::open(tmp.path()).unwrap();
        assert!(dir.store("../x", &1).is_err());
        assert!(dir.store("", &1).is_err());
    }
}
