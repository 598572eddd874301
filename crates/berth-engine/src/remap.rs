//! `--userns-remap`, as dockerd does it: every Docker container (unless it asks for
//! `--userns=host`) runs in a user namespace whose root is the first subordinate uid
//! (and gid) of a host user, from /etc/subuid and /etc/subgid. `default` is the user
//! `dockremap`, made (with a 65536-id range) when missing. The namespace itself is the
//! engine's own machinery ([`crate::userns`]): made at start, layers id-mapped into it.

use std::path::Path;

use crate::container::record::{IdMap, UserNs};

/// dockerd's name for `--userns-remap=default`.
pub const DEFAULT_USER: &str = "dockremap";
/// The size of the range given to `dockremap`, and where ranges start (as dockerd).
const DEFAULT_RANGE: u32 = 65536;
const FIRST_ID: u32 = 100000;

/// A resolved `--userns-remap`: the user and group (names) and the mappings of every
/// remapped container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remap {
    pub user: String,
    pub group: String,
    pub ns: UserNs,
}

impl Remap {
    /// Host uid and gid of the containers' root.
    pub fn root(&self) -> (u32, u32) {
        self.ns.root().unwrap_or((0, 0))
    }
}

/// Resolves `spec` (`default`, `user`, `user:group`, numeric ids allowed) against the
/// host's /etc; `default` creates `dockremap` and its ranges if missing. None: no
/// remapping (empty, or `root`, which dockerd also turns off with a warning).
pub fn resolve(spec: &str) -> Result<Option<Remap>, String> {
    resolve_in(spec, Path::new("/etc"), &|name| {
        let out = std::process::Command::new("useradd")
            .args(["-r", "-M", "-s", "/bin/false", name])
            .output()
            .map_err(|e| format!("useradd {name}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("useradd {name}: {}", String::from_utf8_lossy(&out.stderr).trim()))
        }
    })
}

/// [`resolve`] over the files of `etc`, with `add_user` to make `dockremap`.
pub fn resolve_in(spec: &str, etc: &Path, add_user: &dyn Fn(&str) -> Result<(), String>) -> Result<Option<Remap>, String> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Ok(None);
    }
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user_part.is_empty() || group_part.is_some_and(str::is_empty) {
        return Err(format!("Can't create ID mappings: invalid --userns-remap {spec:?}: use default, user or user:group"));
    }
    let passwd = read(&etc.join("passwd"));
    let (user, group) = if user_part == "default" {
        if group_part.is_some() {
            return Err("Can't create ID mappings: --userns-remap=default takes no group".into());
        }
        if lookup(&passwd, DEFAULT_USER).is_none() {
            add_user(DEFAULT_USER)?;
        }
        add_ranges(etc, DEFAULT_USER)?;
        (DEFAULT_USER.to_string(), DEFAULT_USER.to_string())
    } else {
        let user = lookup(&passwd, user_part).ok_or_else(|| format!("Error during uid lookup for {user_part:?}: no such user"))?;
        let group = match group_part {
            None => user.clone(),
            Some(g) => lookup(&read(&etc.join("group")), g).ok_or_else(|| format!("Error during gid lookup for {g:?}: no such group"))?,
        };
        (user, group)
    };
    if user == "root" {
        tracing::warn!("User namespaces: root cannot be remapped with itself; user namespaces are OFF");
        return Ok(None);
    }
    // As dockerd: both files are read for the user (its name or its uid).
    let uid = passwd_uid(&passwd, &user);
    let uids = ranges(&read(&etc.join("subuid")), &user, uid);
    let gids = ranges(&read(&etc.join("subgid")), &user, uid);
    if uids.is_empty() {
        return Err(format!("Can't create ID mappings: no subuid ranges found for user {user:?}"));
    }
    if gids.is_empty() {
        return Err(format!("Can't create ID mappings: no subgid ranges found for user {user:?}"));
    }
    Ok(Some(Remap { user, group, ns: UserNs { uids, gids, of: None, remap: true } }))
}

/// The subordinate uid and gid ranges of `user` (name, or its uid `uid`) in
/// `etc`/subuid and `etc`/subgid, each list from id 0 on, as newuidmap takes them. The
/// rootless daemon maps them after its own id (docs/rootless.md).
pub fn subordinate_ids(etc: &Path, user: &str, uid: u32) -> Result<(Vec<IdMap>, Vec<IdMap>), String> {
    let uids = ranges(&read(&etc.join("subuid")), user, Some(uid));
    let gids = ranges(&read(&etc.join("subgid")), user, Some(uid));
    let hint = "add a range (e.g. `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 USER`, as root) and see docs/rootless.md";
    if uids.is_empty() {
        return Err(format!("no subordinate uid range for user {user:?} in {}: {hint}", etc.join("subuid").display()));
    }
    if gids.is_empty() {
        return Err(format!("no subordinate gid range for user {user:?} in {}: {hint}", etc.join("subgid").display()));
    }
    Ok((uids, gids))
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// The name of the passwd/group entry whose name or id is `key`.
fn lookup(db: &str, key: &str) -> Option<String> {
    db.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id = f.nth(1)?;
        (name == key || (key.bytes().all(|b| b.is_ascii_digit()) && id == key)).then(|| name.to_string())
    })
}

fn passwd_uid(passwd: &str, name: &str) -> Option<u32> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && f[0] == name).then(|| f[2].parse().ok()).flatten()
    })
}

/// The subordinate ranges of `user` (by name or uid), one after the other from id 0
/// inside, as dockerd maps them.
fn ranges(db: &str, user: &str, uid: Option<u32>) -> Vec<IdMap> {
    let uid = uid.map(|u| u.to_string());
    let mut next = 0u32;
    let mut out = Vec::new();
    for l in db.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() != 3 || (f[0] != user && Some(f[0]) != uid.as_deref()) {
            continue;
        }
        let (Ok(start), Ok(size)) = (f[1].parse::<u32>(), f[2].parse::<u32>()) else { continue };
        if size == 0 {
            continue;
        }
        out.push(IdMap { container_id: next, host_id: start, size });
        next = next.saturating_add(size);
    }
    out
}

/// Gives `user` a 65536-id range in /etc/subuid and /etc/subgid where it has none: the
/// first free one from 100000 on, past every range either file gives (as dockerd).
fn add_ranges(etc: &Path, user: &str) -> Result<(), String> {
    let files = [etc.join("subuid"), etc.join("subgid")];
    let texts: Vec<String> = files.iter().map(|p| read(p)).collect();
    if texts.iter().all(|t| !ranges(t, user, None).is_empty()) {
        return Ok(());
    }
    let mut start = FIRST_ID;
    for t in &texts {
        for l in t.lines() {
            let f: Vec<&str> = l.trim().split(':').collect();
            if let (3, Ok(s), Ok(n)) = (f.len(), f.get(1).unwrap_or(&"").parse::<u32>(), f.get(2).unwrap_or(&"").parse::<u32>()) {
                start = start.max(s.saturating_add(n));
            }
        }
    }
    for (p, t) in files.iter().zip(&texts) {
        if !ranges(t, user, None).is_empty() {
            continue;
        }
        let mut text = t.clone();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("{user}:{start}:{DEFAULT_RANGE}\n"));
        crate::util::write_replace(p, text.as_bytes()).map_err(|e| format!("Can't create ID mappings: writing {}: {e}", p.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn etc(passwd: &str, subuid: &str, subgid: &str) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("passwd"), passwd).unwrap();
        std::fs::write(t.path().join("group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        std::fs::write(t.path().join("subuid"), subuid).unwrap();
        std::fs::write(t.path().join("subgid"), subgid).unwrap();
        t
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n";
    fn no_add(_: &str) -> Result<(), String> {
        panic!("no user is to be added")
    }

    #[test]
    fn a_user_maps_its_ranges_in_order() {
        let t = etc(PASSWD, "alice:200000:1000\nbob:1:2\n1000:300000:500\n", "alice:400000:65536\n");
        let r = resolve_in("alice", t.path(), &no_add).unwrap().unwrap();
        assert_eq!((r.user.as_str(), r.group.as_str()), ("alice", "alice"));
        assert_eq!(
            r.ns.uids,
            [IdMap { container_id: 0, host_id: 200000, size: 1000 }, IdMap { container_id: 1000, host_id: 300000, size: 500 }]
        );
        assert_eq!(r.ns.gids, [IdMap { container_id: 0, host_id: 400000, size: 65536 }]);
        assert_eq!(r.root(), (200000, 400000));
        // By uid, with a group.
        let r = resolve_in("1000:staff", t.path(), &no_add).unwrap().unwrap();
        assert_eq!((r.user.as_str(), r.group.as_str()), ("alice", "staff"));
    }

    #[test]
    fn subordinate_ids_for_the_rootless_daemon() {
        let t = etc(PASSWD, "alice:200000:1000\n1000:300000:500\n", "alice:400000:65536\n");
        let (u, g) = subordinate_ids(t.path(), "alice", 1000).unwrap();
        assert_eq!(u, [IdMap { container_id: 0, host_id: 200000, size: 1000 }, IdMap { container_id: 1000, host_id: 300000, size: 500 }]);
        assert_eq!(g, [IdMap { container_id: 0, host_id: 400000, size: 65536 }]);
        let e = subordinate_ids(t.path(), "bob", 1001).unwrap_err();
        assert!(e.starts_with("no subordinate uid range for user \"bob\"") && e.contains("docs/rootless.md") && !e.contains('\n'), "{e}");
        let t = etc(PASSWD, "alice:200000:1000\n", "");
        assert!(subordinate_ids(t.path(), "alice", 1000).unwrap_err().starts_with("no subordinate gid range"));
    }

    #[test]
    fn refusals_are_one_line() {
        let t = etc(PASSWD, "", "");
        for (spec, want) in [
            ("nobody-here", "Error during uid lookup for \"nobody-here\""),
            ("alice", "no subuid ranges found for user \"alice\""),
            ("alice:nogroup", "Error during gid lookup for \"nogroup\""),
            ("alice:", "invalid --userns-remap"),
        ] {
            let e = resolve_in(spec, t.path(), &no_add).unwrap_err();
            assert!(e.contains(want) && !e.contains('\n'), "{spec}: {e}");
        }
        assert_eq!(resolve_in("", t.path(), &no_add).unwrap(), None);
        assert_eq!(resolve_in("root", t.path(), &no_add).unwrap(), None);
    }

    #[test]
    fn default_makes_dockremap_and_its_ranges_once() {
        let t = etc(PASSWD, "alice:100000:65536\n", "alice:100000:65536\nother:300000:10");
        let p = t.path().to_path_buf();
        let add = move |name: &str| -> Result<(), String> {
            let mut pw = std::fs::read_to_string(p.join("passwd")).unwrap();
            pw.push_str(&format!("{name}:x:999:999::/:/bin/false\n"));
            std::fs::write(p.join("passwd"), pw).unwrap();
            Ok(())
        };
        let r = resolve_in("default", t.path(), &add).unwrap().unwrap();
        assert_eq!(r.user, "dockremap");
        assert_eq!(r.ns.uids, [IdMap { container_id: 0, host_id: 300010, size: 65536 }]);
        assert_eq!(r.ns.gids, r.ns.uids);
        assert!(std::fs::read_to_string(t.path().join("subgid")).unwrap().ends_with("other:300000:10\ndockremap:300010:65536\n"));
        // Again: nothing added.
        let again = resolve_in("default", t.path(), &no_add).unwrap().unwrap();
        assert_eq!(again, r);
        assert_eq!(std::fs::read_to_string(t.path().join("subuid")).unwrap().matches("dockremap").count(), 1);
    }
}
