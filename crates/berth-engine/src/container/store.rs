//! The set of containers: lookup by ID, name or unique ID prefix, name reservation,
//! persistence of each record, and per-container synchronisation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::{broadcast, watch};

use super::live::{Live, Output, output_channel};
use super::record::{ContainerRecord, Status};
use crate::error::{Error, Result};
use crate::util::write_json_atomic;

const RECORD_FILE: &str = "config.v2.json";

/// What waiters watch: every exit bumps `exits`; removal sets `removed`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WaitState {
    pub status: Status,
    pub exit_code: i64,
    pub exits: u64,
    pub removed: bool,
    pub error: String,
}

pub struct Container {
    pub id: String,
    record: Mutex<ContainerRecord>,
    /// Serialises lifecycle operations (start, stop, kill, rm, restart, pause...).
    pub op: tokio::sync::Mutex<()>,
    wait_tx: watch::Sender<WaitState>,
    dir: PathBuf,
    /// Output of the current run, for attached clients (subscribe before start). Made
    /// on the first attach: most containers never have one.
    output: Mutex<Option<broadcast::Sender<Output>>>,
    live: Mutex<Option<Live>>,
    /// Bumped by every start: tells a stale monitor from the current one.
    generation: std::sync::atomic::AtomicU64,
    /// The generation whose exit has been recorded (a fast process may exit before
    /// its start is fully recorded).
    exited_generation: std::sync::atomic::AtomicU64,
}

impl Container {
    fn new(record: ContainerRecord, dir: PathBuf) -> Container {
        let ws = WaitState {
            status: record.state.status,
            exit_code: record.state.exit_code,
            exits: 0,
            removed: false,
            error: record.state.error.clone(),
        };
        Container {
            id: record.id.clone(),
            record: Mutex::new(record),
            op: tokio::sync::Mutex::new(()),
            wait_tx: watch::channel(ws).0,
            dir,
            output: Mutex::new(None),
            live: Mutex::new(None),
            generation: std::sync::atomic::AtomicU64::new(0),
            exited_generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Subscribes to the container's output (this run's and later runs').
    pub fn subscribe_output(&self) -> broadcast::Receiver<Output> {
        self.output.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(output_channel).subscribe()
    }

    /// Hands output to attached clients, if any.
    pub fn send_output(&self, o: Output) {
        if let Some(tx) = self.output.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let _ = tx.send(o);
        }
    }

    pub fn live(&self) -> Option<Live> {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_live(&self, live: Option<Live>) {
        *self.live.lock().unwrap_or_else(|p| p.into_inner()) = live;
    }

    pub fn next_generation(&self) -> u64 {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
    }

    pub fn mark_exited(&self, generation: u64) {
        self.exited_generation.store(generation, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn has_exited(&self, generation: u64) -> bool {
        self.exited_generation.load(std::sync::atomic::Ordering::SeqCst) == generation
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A copy of the record.
    pub fn snapshot(&self) -> ContainerRecord {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ContainerRecord> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn status(&self) -> Status {
        self.lock().state.status
    }

    /// Reads a field without copying the whole record.
    pub fn with<R>(&self, f: impl FnOnce(&ContainerRecord) -> R) -> R {
        f(&self.lock())
    }

    /// Changes the record, persists it durably (flushed to disk), and tells waiters.
    /// `exited` marks an exit. For what a user set (names, limits, networks, a stop).
    pub fn update(&self, exited: bool, f: impl FnOnce(&mut ContainerRecord)) -> Result<ContainerRecord> {
        self.write(exited, true, f)
    }

    /// [`Container::update`] for runtime state only (running, paused, exited, exit
    /// code, health): replaced atomically — a killed daemon never finds it half
    /// written — but not flushed to disk. A power loss can only lose state that the
    /// next start rebuilds from the shims anyway, and a start or exit costs no fsync.
    pub fn update_state(&self, exited: bool, f: impl FnOnce(&mut ContainerRecord)) -> Result<ContainerRecord> {
        self.write(exited, false, f)
    }

    fn write(&self, exited: bool, durable: bool, f: impl FnOnce(&mut ContainerRecord)) -> Result<ContainerRecord> {
        // The write happens under the lock: concurrent updates (a start finishing while
        // the exit arrives) land on disk in the order they were made.
        let mut r = self.lock();
        f(&mut r);
        let rec = r.clone();
        let path = self.dir.join(RECORD_FILE);
        let saved = save_record(&path, &rec, durable);
        // Waiters hear of it under the same lock, so in the same order: told after the
        // lock, a start finishing beside a quick exit could overwrite the exit's news with
        // its own stale "running", and a wait for the exit (a build's RUN step) would
        // never end. And even when the disk refused the change (it happened in memory):
        // `rm -f` on a full disk must not wait for an exit forever.
        self.wait_tx.send_modify(|w| {
            w.status = rec.state.status;
            w.exit_code = rec.state.exit_code;
            w.error = rec.state.error.clone();
            if exited {
                w.exits += 1;
            }
        });
        drop(r);
        saved.map_err(|e| Error::system(format!("saving container {}: {}", self.id, berth_image::error::io_text(&e))))?;
        Ok(rec)
    }

    pub fn watch(&self) -> watch::Receiver<WaitState> {
        self.wait_tx.subscribe()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn mark_removed(&self) {
        self.wait_tx.send_modify(|w| w.removed = true);
    }
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<String, Arc<Container>>,
    /// Name without slash → ID.
    names: HashMap<String, String>,
}

pub struct ContainerStore {
    root: PathBuf,
    inner: RwLock<Inner>,
}

impl ContainerStore {
    /// Loads every record under `<data-root>/containers`. A directory without a
    /// readable record (a create cut short by a crash) is removed.
    pub fn load(data_root: &Path) -> Result<ContainerStore> {
        let root = data_root.join("containers");
        std::fs::create_dir_all(&root)?;
        let mut inner = Inner::default();
        for entry in std::fs::read_dir(&root)? {
            let entry = entry?;
            let dir = entry.path();
            let rec: Option<ContainerRecord> = std::fs::read(dir.join(RECORD_FILE)).ok().and_then(|d| serde_json::from_slice(&d).ok());
            match rec {
                Some(rec) if rec.id == entry.file_name().to_string_lossy() => {
                    inner.names.insert(rec.bare_name().to_string(), rec.id.clone());
                    inner.by_id.insert(rec.id.clone(), Arc::new(Container::new(rec, dir)));
                }
                _ => {
                    tracing::warn!("removing incomplete container dir {}", dir.display());
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
        }
        Ok(ContainerStore { root, inner: RwLock::new(inner) })
    }

    pub fn dir_of(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a new container, persisting its record first. Fails if the name is taken.
    pub fn add(&self, record: ContainerRecord) -> Result<Arc<Container>> {
        let name = record.bare_name().to_string();
        let mut inner = self.write();
        if let Some(other) = inner.names.get(&name) {
            return Err(name_conflict(&name, other));
        }
        let dir = self.dir_of(&record.id);
        std::fs::create_dir_all(&dir)?;
        // A `--rm` container does not outlive a machine crash anyway (the restarted
        // daemon removes it), so its creation is not flushed; load() drops a record a
        // power loss left unreadable.
        save_record(&dir.join(RECORD_FILE), &record, !record.host_config.auto_remove)?;
        let c = Arc::new(Container::new(record, dir));
        inner.names.insert(name, c.id.clone());
        inner.by_id.insert(c.id.clone(), c.clone());
        Ok(c)
    }

    pub fn name_in_use(&self, name: &str) -> Option<String> {
        self.read().names.get(name.trim_start_matches('/')).cloned()
    }

    /// Finds a container by full ID, name (with or without '/'), or unique ID prefix.
    pub fn get(&self, key: &str) -> Result<Arc<Container>> {
        let inner = self.read();
        if key.is_empty() {
            return Err(Error::no_such_container(key));
        }
        if let Some(c) = inner.by_id.get(key) {
            return Ok(c.clone());
        }
        if let Some(id) = inner.names.get(key.trim_start_matches('/'))
            && let Some(c) = inner.by_id.get(id) {
                return Ok(c.clone());
            }
        let mut found: Option<&Arc<Container>> = None;
        for (id, c) in &inner.by_id {
            if id.starts_with(key) {
                if found.is_some() {
                    return Err(Error::invalid(format!("Multiple IDs found with provided prefix: {key}")));
                }
                found = Some(c);
            }
        }
        found.cloned().ok_or_else(|| Error::no_such_container(key))
    }

    pub fn list(&self) -> Vec<Arc<Container>> {
        self.read().by_id.values().cloned().collect()
    }

    pub fn rename(&self, c: &Container, new_name: &str) -> Result<()> {
        let new_name = new_name.trim_start_matches('/').to_string();
        let mut inner = self.write();
        if let Some(other) = inner.names.get(&new_name) {
            return Err(name_conflict(&new_name, other));
        }
        let old = c.with(|r| r.bare_name().to_string());
        c.update(false, |r| r.name = format!("/{new_name}"))?;
        inner.names.remove(&old);
        inner.names.insert(new_name, c.id.clone());
        Ok(())
    }

    /// Forgets the container and deletes its directory.
    /// Forgets a container and deletes its directory: at once, or (`trash`) by moving
    /// it to the trash in one rename, which also takes the record away atomically.
    pub fn remove(&self, c: &Container, trash: Option<&berth_image::fsutil::Trash>) -> Result<()> {
        {
            let mut inner = self.write();
            let name = c.with(|r| r.bare_name().to_string());
            if inner.names.get(&name) == Some(&c.id) {
                inner.names.remove(&name);
            }
            inner.by_id.remove(&c.id);
        }
        match trash {
            Some(t) => t.discard(&c.dir)?,
            None => {
                // The record goes first, so a crash mid-way leaves a directory that load() cleans.
                let _ = std::fs::remove_file(c.dir.join(RECORD_FILE));
                std::fs::remove_dir_all(&c.dir).or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })?;
            }
        }
        c.mark_removed();
        Ok(())
    }
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container").field("id", &self.id).finish()
    }
}

/// Writes a record atomically (whole or absent after a crash); `durable`: flushed too,
/// so that it survives a power loss.
fn save_record(path: &Path, rec: &ContainerRecord, durable: bool) -> std::io::Result<()> {
    if durable {
        write_json_atomic(path, rec)
    } else {
        serde_json::to_vec_pretty(rec).map_err(std::io::Error::other).and_then(|d| crate::util::write_replace(path, &d))
    }
}

fn name_conflict(name: &str, id: &str) -> Error {
    Error::conflict(format!(
        "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, name: &str) -> ContainerRecord {
        ContainerRecord { id: id.into(), name: format!("/{name}"), ..Default::default() }
    }

    #[test]
    fn lookup_by_id_name_and_prefix() {
        let tmp = tempfile::tempdir().unwrap();
        let s = ContainerStore::load(tmp.path()).unwrap();
        s.add(rec("abc111", "web")).unwrap();
        s.add(rec("abd222", "db")).unwrap();
        assert_eq!(s.get("web").unwrap().id, "abc111");
        assert_eq!(s.get("/db").unwrap().id, "abd222");
        assert_eq!(s.get("abc").unwrap().id, "abc111");
        assert!(s.get("ab").unwrap_err().message.contains("Multiple IDs"));
        assert!(s.get("zzz").unwrap_err().message.contains("No such container"));
        let e = s.add(rec("fff", "web")).err().unwrap();
        assert_eq!(e.kind, crate::ErrorKind::Conflict);
    }

    #[test]
    fn survives_reload_and_cleans_incomplete_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let s = ContainerStore::load(tmp.path()).unwrap();
            let c = s.add(rec("abc111", "web")).unwrap();
            c.update(true, |r| r.state.exit_code = 3).unwrap();
            s.rename(&c, "web2").unwrap();
        }
        std::fs::create_dir_all(tmp.path().join("containers/half")).unwrap();
        let s = ContainerStore::load(tmp.path()).unwrap();
        let c = s.get("web2").unwrap();
        assert_eq!(c.snapshot().state.exit_code, 3);
        assert!(s.get("web").is_err());
        assert!(!tmp.path().join("containers/half").exists());
        s.remove(&c, None).unwrap();
        assert!(s.get("web2").is_err());
        assert!(c.watch().borrow().removed);
    }
}
