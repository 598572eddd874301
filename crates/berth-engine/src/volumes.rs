//! Named volumes with Docker's `local` driver: `volumes/<name>/_data` under the data
//! root, options and labels in `volumes/<name>/opts.json`. A volume with mount options
//! (`type=tmpfs|ext4|xfs|nfs|none,device=...,o=...`) has its device mounted on `_data`
//! while containers use it, as dockerd's local driver does.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use berth_types::volume::Volume;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::util::{now_rfc3339, random_id, write_json_atomic};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VolumeRecord {
    pub name: String,
    pub created_at: String,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    /// Made for one container (`-v /path`, image VOLUME): removed with it on `rm -v`.
    pub anonymous: bool,
}

pub struct VolumeStore {
    root: PathBuf,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    vols: BTreeMap<String, VolumeRecord>,
    /// How many running containers have each mounted-type volume mounted.
    mounted: HashMap<String, usize>,
}

/// Docker's rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`. It also keeps a name from ever
/// reaching outside the volumes directory.
pub fn valid_name(name: &str) -> bool {
    let mut c = name.chars();
    matches!(c.next(), Some(x) if x.is_ascii_alphanumeric()) && name.len() >= 2 && c.all(|x| x.is_ascii_alphanumeric() || matches!(x, '_' | '.' | '-'))
}

fn invalid_name(name: &str) -> Error {
    Error::invalid(format!(
        "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
    ))
}

impl VolumeStore {
    pub fn open(data_root: &Path) -> Result<VolumeStore> {
        let root = data_root.join("volumes");
        std::fs::create_dir_all(&root)?;
        let mut inner = Inner::default();
        for e in std::fs::read_dir(&root)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !valid_name(&name) {
                continue;
            }
            let rec = std::fs::read(e.path().join("opts.json")).ok().and_then(|d| serde_json::from_slice::<VolumeRecord>(&d).ok());
            match rec {
                // A tmpfs/bind volume may still be mounted for containers that kept
                // running while the daemon was down; acquire() adopts that mount.
                Some(r) if e.path().join("_data").is_dir() => {
                    inner.vols.insert(name, r);
                }
                // A create cut short: the directory without its record.
                _ => {
                    let _ = umount_if_mounted(&e.path().join("_data"));
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(VolumeStore { root, inner: Mutex::new(inner) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn data_path(&self, name: &str) -> PathBuf {
        self.root.join(name).join("_data")
    }

    /// Creates a volume; an existing one with the same name is returned as is (Docker's
    /// create is idempotent), unless its options differ.
    pub fn create(&self, name: Option<&str>, driver: &str, opts: BTreeMap<String, String>, labels: BTreeMap<String, String>, anonymous: bool) -> Result<VolumeRecord> {
        if !driver.is_empty() && driver != "local" {
            return Err(Error::not_found(format!("error looking up volume plugin {driver}: plugin \"{driver}\" not found")));
        }
        let name = match name {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => random_id(),
        };
        if !valid_name(&name) {
            return Err(invalid_name(&name));
        }
        validate_options(&opts).map_err(|e| e.context(format!("create {name}")))?;
        let mut inner = self.lock();
        if let Some(existing) = inner.vols.get(&name) {
            if !opts.is_empty() && existing.options != opts {
                return Err(Error::conflict(format!("volume {name} already exists with different options")));
            }
            return Ok(existing.clone());
        }
        let dir = self.root.join(&name);
        std::fs::create_dir_all(dir.join("_data"))?;
        let rec = VolumeRecord { name: name.clone(), created_at: now_rfc3339(), labels, options: opts, anonymous };
        if let Err(e) = write_json_atomic(&dir.join("opts.json"), &rec) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e.into());
        }
        inner.vols.insert(name, rec.clone());
        Ok(rec)
    }

    pub fn get(&self, name: &str) -> Result<VolumeRecord> {
        self.lock().vols.get(name).cloned().ok_or_else(|| Error::not_found(format!("get {name}: no such volume")))
    }

    pub fn list(&self) -> Vec<VolumeRecord> {
        self.lock().vols.values().cloned().collect()
    }

    /// Removes a volume that no container uses (`in_use` is the caller's check).
    pub fn remove(&self, name: &str, in_use_by: &[String], force: bool) -> Result<()> {
        let mut inner = self.lock();
        if !inner.vols.contains_key(name) {
            if force {
                return Ok(());
            }
            return Err(Error::not_found(format!("get {name}: no such volume")));
        }
        if !in_use_by.is_empty() {
            return Err(Error::conflict(format!("remove {name}: volume is in use - [{}]", in_use_by.join(", "))));
        }
        let dir = self.root.join(name);
        let _ = umount_if_mounted(&dir.join("_data"));
        // The record first, so a crash leaves a directory that open() cleans up.
        std::fs::remove_file(dir.join("opts.json"))?;
        std::fs::remove_dir_all(&dir)?;
        inner.vols.remove(name);
        inner.mounted.remove(name);
        Ok(())
    }

    /// Makes the volume's `_data` ready for a container (mounting tmpfs/bind volumes on
    /// first use) and returns its path.
    pub fn acquire(&self, name: &str) -> Result<PathBuf> {
        let mut inner = self.lock();
        let rec = inner.vols.get(name).cloned().ok_or_else(|| Error::not_found(format!("get {name}: no such volume")))?;
        let data = self.data_path(name);
        if needs_mount(&rec.options) {
            let n = inner.mounted.entry(name.to_string()).or_insert(0);
            if *n == 0 && !is_mount_point(&data) {
                mount_volume(&rec.options, &data).map_err(|e| e.context(format!("error while mounting volume '{}'", data.display())))?;
            }
            *n += 1;
        }
        Ok(data)
    }

    /// Under `--userns-remap`: a plain local volume's `_data` still root's (new) becomes
    /// the remapped root's (`root`: host uid, gid), as dockerd makes its volumes under
    /// the remapped root. Mounted volumes (tmpfs, device, bind) keep what they mount.
    pub fn hand_to(&self, name: &str, data: &Path, root: (u32, u32)) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let plain = self.lock().vols.get(name).is_some_and(|r| !needs_mount(&r.options));
        let m = std::fs::metadata(data)?;
        if plain && m.uid() == 0 && m.gid() == 0 {
            std::os::unix::fs::chown(data, Some(root.0), Some(root.1))?;
        }
        Ok(())
    }

    /// The container no longer uses the volume.
    pub fn release(&self, name: &str) {
        let mut inner = self.lock();
        let Some(rec) = inner.vols.get(name).cloned() else { return };
        if !needs_mount(&rec.options) {
            return;
        }
        if let Some(n) = inner.mounted.get_mut(name) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                inner.mounted.remove(name);
                let _ = umount_if_mounted(&self.data_path(name));
            }
        }
    }

    pub fn to_api(&self, rec: &VolumeRecord, usage: Option<(i64, i64)>) -> Volume {
        Volume {
            created_at: rec.created_at.clone(),
            driver: "local".into(),
            labels: rec.labels.clone(),
            mountpoint: self.data_path(&rec.name).to_string_lossy().into_owned(),
            name: rec.name.clone(),
            options: rec.options.clone(),
            scope: "local".into(),
            status: None,
            usage_data: usage.map(|(size, refs)| berth_types::volume::UsageData { size, ref_count: refs }),
        }
    }
}

fn needs_mount(opts: &BTreeMap<String, String>) -> bool {
    opts.contains_key("type") || opts.contains_key("device")
}

/// The local driver's options, checked as dockerd's (volume/local): only `type`, `o`,
/// `device` and `size`; `type` and `device` go together, `o` needs both. Any
/// filesystem type the kernel mounts is accepted (tmpfs, ext4, xfs, nfs, `none` with
/// `o=bind`, ...): as with dockerd, a wrong one fails when a container mounts it.
fn validate_options(opts: &BTreeMap<String, String>) -> Result<()> {
    if opts.is_empty() {
        return Ok(());
    }
    for k in opts.keys() {
        if !matches!(k.as_str(), "type" | "o" | "device" | "size") {
            return Err(Error::invalid(format!("invalid option: {k:?}")));
        }
    }
    if let Some(size) = opts.get("size") {
        let n = crate::config::parse_size(size).ok_or_else(|| Error::invalid(format!("invalid size: '{size}'")))?;
        if n > 0 {
            // berth's local driver has no project quotas (dockerd needs xfs pquota).
            return Err(Error::invalid("quota size requested but no quota support"));
        }
    }
    // dockerd walks a map here; the order of its checks is the order of these.
    for (opt, required) in [("device", &["type"][..]), ("type", &["device"][..]), ("o", &["device", "type"][..])] {
        if opts.contains_key(opt) {
            for r in required {
                if !opts.contains_key(*r) {
                    return Err(Error::invalid(format!("missing required option: {r:?}")));
                }
            }
        }
    }
    Ok(())
}

/// Mount flags named in an options string (moby/sys/mount's parseOptions): the rest is
/// the filesystem's data. Returns (flags to set, propagation flags, data).
fn parse_mount_options(o: &str) -> (nix::mount::MsFlags, nix::mount::MsFlags, String) {
    use nix::mount::MsFlags as F;
    let mut flags = F::empty();
    let mut prop = F::empty();
    let mut data = Vec::new();
    for opt in o.split(',').filter(|x| !x.is_empty()) {
        let (clear, set): (bool, F) = match opt {
            "defaults" => (false, F::empty()),
            "ro" => (false, F::MS_RDONLY),
            "rw" => (true, F::MS_RDONLY),
            "suid" => (true, F::MS_NOSUID),
            "nosuid" => (false, F::MS_NOSUID),
            "dev" => (true, F::MS_NODEV),
            "nodev" => (false, F::MS_NODEV),
            "exec" => (true, F::MS_NOEXEC),
            "noexec" => (false, F::MS_NOEXEC),
            "sync" => (false, F::MS_SYNCHRONOUS),
            "async" => (true, F::MS_SYNCHRONOUS),
            "dirsync" => (false, F::MS_DIRSYNC),
            "remount" => (false, F::MS_REMOUNT),
            "mand" => (false, F::MS_MANDLOCK),
            "nomand" => (true, F::MS_MANDLOCK),
            "atime" => (true, F::MS_NOATIME),
            "noatime" => (false, F::MS_NOATIME),
            "diratime" => (true, F::MS_NODIRATIME),
            "nodiratime" => (false, F::MS_NODIRATIME),
            "bind" => (false, F::MS_BIND),
            "rbind" => (false, F::MS_BIND | F::MS_REC),
            "relatime" => (false, F::MS_RELATIME),
            "norelatime" => (true, F::MS_RELATIME),
            "strictatime" => (false, F::MS_STRICTATIME),
            "nostrictatime" => (true, F::MS_STRICTATIME),
            "unbindable" | "runbindable" | "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" => {
                let mut p = match opt.trim_start_matches('r') {
                    "unbindable" => F::MS_UNBINDABLE,
                    "private" => F::MS_PRIVATE,
                    "shared" => F::MS_SHARED,
                    _ => F::MS_SLAVE,
                };
                if opt.starts_with('r') {
                    p |= F::MS_REC;
                }
                prop |= p;
                continue;
            }
            other => {
                data.push(other.to_string());
                continue;
            }
        };
        if clear {
            flags.remove(set);
        } else {
            flags.insert(set);
        }
    }
    (flags, prop, data.join(","))
}

/// Mounts the volume's `device` on `target` with `type` and `o`, as dockerd's local
/// driver (moby/sys/mount's Mount): the mount, then the propagation, then a read-only
/// remount for a read-only bind.
fn mount_volume(opts: &BTreeMap<String, String>, target: &Path) -> Result<()> {
    use nix::mount::{MsFlags, mount};
    let device = opts.get("device").cloned().unwrap_or_default();
    if device.is_empty() {
        return Err(Error::system("missing device in volume options"));
    }
    let kind = opts.get("type").cloned().unwrap_or_default();
    let o = opts.get("o").cloned().unwrap_or_default();
    let (flags, prop, data) = parse_mount_options(&o);
    let fail = |flags: MsFlags, e: nix::errno::Errno| {
        let mut msg = format!("failed to mount local volume: mount {device}:{}", target.display());
        if !flags.is_empty() {
            msg.push_str(&format!(", flags: {:#x}", flags.bits()));
        }
        if !data.is_empty() {
            msg.push_str(&format!(", data: {}", hide_password(&data)));
        }
        msg.push_str(&format!(": {}", e.desc().to_lowercase()));
        Error::system(msg)
    };
    if !flags.contains(MsFlags::MS_REMOUNT) || !data.is_empty() {
        mount(Some(device.as_str()), target, Some(kind.as_str()).filter(|k| !k.is_empty()), flags, Some(data.as_str()).filter(|d| !d.is_empty()))
            .map_err(|e| fail(flags, e))?;
    }
    if !prop.is_empty() {
        mount(None::<&str>, target, None::<&str>, prop, None::<&str>).map_err(|e| fail(prop, e))?;
    }
    let bind_ro = MsFlags::MS_BIND | MsFlags::MS_RDONLY;
    if flags.contains(bind_ro) {
        mount(None::<&str>, target, None::<&str>, flags | MsFlags::MS_REMOUNT, None::<&str>).map_err(|e| fail(flags | MsFlags::MS_REMOUNT, e))?;
    }
    Ok(())
}

/// A CIFS password in the options never shows in an error.
fn hide_password(data: &str) -> String {
    data.split(',').map(|kv| if kv.starts_with("password=") { "password=********" } else { kv }).collect::<Vec<_>>().join(",")
}

/// Whether `p` is a mount point (per /proc/self/mountinfo).
pub fn is_mount_point(p: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    let target = p.to_string_lossy();
    info.lines().any(|l| l.split(' ').nth(4).map(unescape_mountinfo).as_deref() == Some(target.as_ref()))
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mountinfo(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

pub fn umount_if_mounted(p: &Path) -> std::io::Result<()> {
    match nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Bytes used under `dir` (not following symlinks, hardlinks counted once).
pub fn dir_size(dir: &Path) -> i64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0i64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(m) = e.path().symlink_metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.nlink() <= 1 || seen.insert((m.dev(), m.ino())) {
                total += m.len() as i64;
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape() {
        assert!(valid_name("data_1.x-y"));
        for bad in ["..", "../x", "a/b", "/abs", ".hidden", "a", "", "a b"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn create_list_remove_reload() {
        let tmp = tempfile::tempdir().unwrap();
        let s = VolumeStore::open(tmp.path()).unwrap();
        let v = s.create(Some("data"), "local", BTreeMap::new(), BTreeMap::new(), false).unwrap();
        assert_eq!(v.name, "data");
        assert!(s.data_path("data").is_dir());
        assert!(s.create(Some("../etc"), "local", BTreeMap::new(), BTreeMap::new(), false).is_err());
        assert!(s.create(Some("x1"), "nfs", BTreeMap::new(), BTreeMap::new(), false).is_err());
        let mut bad = BTreeMap::new();
        bad.insert("bogus".to_string(), "1".to_string());
        assert!(s.create(Some("x2"), "local", bad, BTreeMap::new(), false).is_err());
        assert!(!tmp.path().join("volumes/x2").exists());
        drop(s);
        let s = VolumeStore::open(tmp.path()).unwrap();
        assert_eq!(s.list().len(), 1);
        assert_eq!(s.remove("data", &["c1".into()], false).unwrap_err().kind, crate::ErrorKind::Conflict);
        s.remove("data", &[], false).unwrap();
        assert!(s.get("data").is_err());
        assert!(!tmp.path().join("volumes/data").exists());
    }
}
