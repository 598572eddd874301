//! Reading and writing cgroup interface files, with errors that name the file.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};

pub(crate) fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    // Interface files take one value per write(2); std::fs::write does exactly one.
    std::fs::write(&path, value).map_err(|e| Error::Cgroup {
        file: path,
        reason: format!("cannot write {value:?}: {e}"),
    })
}

pub(crate) fn read(dir: &Path, file: &str) -> Result<String> {
    let path = dir.join(file);
    std::fs::read_to_string(&path).map_err(|e| Error::Cgroup {
        file: path,
        reason: format!("cannot read: {e}"),
    })
}

/// A single number; "max" reads as u64::MAX.
pub(crate) fn read_u64(dir: &Path, file: &str) -> Result<u64> {
    let s = read(dir, file)?;
    parse_u64(s.trim()).ok_or_else(|| Error::Cgroup {
        file: dir.join(file),
        reason: format!("not a number: {:?}", s.trim()),
    })
}

/// Like read_u64, but 0 for a file the kernel does not offer.
pub(crate) fn read_u64_or_zero(dir: &Path, file: &str) -> u64 {
    read_u64(dir, file).unwrap_or(0)
}

pub(crate) fn parse_u64(s: &str) -> Option<u64> {
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse().ok()
}

/// "key value" lines (memory.stat, cpu.stat, memory.events, ...).
pub(crate) fn read_keyed(dir: &Path, file: &str) -> Result<BTreeMap<String, u64>> {
    Ok(parse_keyed(&read(dir, file)?))
}

pub(crate) fn parse_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let k = it.next()?;
            let v = parse_u64(it.next()?)?;
            Some((k.to_string(), v))
        })
        .collect()
}

pub(crate) fn read_pids(dir: &Path) -> Result<Vec<i32>> {
    Ok(read(dir, "cgroup.procs")?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect())
}

/// rmdir, retrying while the kernel still counts exiting processes (EBUSY).
pub(crate) fn remove_dir(dir: &Path) -> Result<()> {
    for attempt in 0..200 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 199 => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => {
                return Err(Error::Cgroup {
                    file: dir.to_path_buf(),
                    reason: format!("cannot remove: {e}"),
                });
            }
        }
    }
    Ok(())
}
