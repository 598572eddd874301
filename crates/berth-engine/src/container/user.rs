//! Resolving Docker's `--user` (name, uid, name:group, uid:gid) against the
//! container's own /etc/passwd and /etc/group, read without leaving the rootfs.

use std::path::Path;

use super::record::GroupsPolicy;
use crate::error::{Error, Result};
use crate::fsutil::read_in_root;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].into(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f.get(5).map(|s| s.to_string()).unwrap_or_default(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].into(),
                gid: f[2].parse().ok()?,
                members: f.get(3).map(|m| m.split(',').filter(|s| !s.is_empty()).map(String::from).collect()).unwrap_or_default(),
            })
        })
        .collect()
}

/// Resolves `user` ("" = root) and `group_add` for a container whose root is `rootfs`.
pub fn resolve(rootfs: &Path, user: &str, group_add: &[String]) -> Result<Ids> {
    resolve_groups(rootfs, user, group_add, None)
}

/// [`resolve`] with the supplementary groups computed Docker's way (`cri` None: the
/// user's memberships in the image's /etc/group when no group is named, then
/// `group_add`) or the CRI's ([`GroupsPolicy`]).
pub fn resolve_groups(rootfs: &Path, user: &str, group_add: &[String], cri: Option<GroupsPolicy>) -> Result<Ids> {
    let passwd = read_in_root(rootfs, "etc/passwd").map(|b| parse_passwd(&String::from_utf8_lossy(&b))).unwrap_or_default();
    let groups = read_in_root(rootfs, "etc/group").map(|b| parse_group(&String::from_utf8_lossy(&b))).unwrap_or_default();
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let (uid, mut gid, home, name) = if u.is_empty() {
        (0, 0, "/root".to_string(), Some("root".to_string()))
    } else if let Ok(n) = u.parse::<u32>() {
        match passwd.iter().find(|p| p.uid == n) {
            Some(p) => (n, p.gid, p.home.clone(), Some(p.name.clone())),
            None => (n, 0, "/".to_string(), None),
        }
    } else {
        let p = passwd
            .iter()
            .find(|p| p.name == u)
            .ok_or_else(|| Error::invalid(format!("unable to find user {u}: no matching entries in passwd file")))?;
        (p.uid, p.gid, p.home.clone(), Some(p.name.clone()))
    };
    if let Some(g) = g {
        gid = lookup_group(&groups, g)?;
    }
    let mut additional = Vec::new();
    let memberships = match cri {
        None => g.is_none(),
        Some(GroupsPolicy::Merge) => true,
        Some(GroupsPolicy::Strict) => false,
    };
    if cri.is_some() {
        additional.push(gid);
    }
    if let Some(name) = &name
        && memberships {
            for grp in &groups {
                if grp.members.iter().any(|m| m == name) && (cri.is_some() || grp.gid != gid) && !additional.contains(&grp.gid) {
                    additional.push(grp.gid);
                }
            }
        }
    for ga in group_add {
        let id = lookup_group(&groups, ga)?;
        if !additional.contains(&id) {
            additional.push(id);
        }
    }
    Ok(Ids { uid, gid, additional_gids: additional, home: if home.is_empty() { "/".into() } else { home } })
}

fn lookup_group(groups: &[GroupEntry], g: &str) -> Result<u32> {
    if let Ok(n) = g.parse::<u32>() {
        return Ok(n);
    }
    groups
        .iter()
        .find(|x| x.name == g)
        .map(|x| x.gid)
        .ok_or_else(|| Error::invalid(format!("unable to find group {g}: no matching entries in group file")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        std::fs::write(t.path().join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n").unwrap();
        std::fs::write(t.path().join("etc/group"), "root:x:0:\nuser:x:1000:\nwheel:x:10:user\n").unwrap();
        t
    }

    #[test]
    fn forms() {
        let t = root();
        let ids = resolve(t.path(), "user", &[]).unwrap();
        assert_eq!((ids.uid, ids.gid, ids.additional_gids.clone(), ids.home.as_str()), (1000, 1000, vec![10], "/home/user"));
        assert_eq!(resolve(t.path(), "1000:10", &[]).unwrap().gid, 10);
        assert_eq!(resolve(t.path(), "", &[]).unwrap().uid, 0);
        let anon = resolve(t.path(), "4242", &["wheel".into()]).unwrap();
        assert_eq!((anon.uid, anon.gid, anon.additional_gids), (4242, 0, vec![10]));
        assert!(resolve(t.path(), "nobody", &[]).unwrap_err().message.contains("no matching entries in passwd"));
        assert!(resolve(t.path(), "user:nogroup", &[]).unwrap_err().message.contains("group file"));
    }

    #[test]
    fn cri_policies_put_the_primary_group_first() {
        let t = root();
        let merge = resolve_groups(t.path(), "1000", &["1234".into()], Some(GroupsPolicy::Merge)).unwrap();
        assert_eq!((merge.gid, merge.additional_gids), (1000, vec![1000, 10, 1234]));
        let strict = resolve_groups(t.path(), "1000", &["1234".into()], Some(GroupsPolicy::Strict)).unwrap();
        assert_eq!(strict.additional_gids, vec![1000, 1234]);
        // A named group does not stop Merge from adding the image's memberships.
        let named = resolve_groups(t.path(), "user:50", &[], Some(GroupsPolicy::Merge)).unwrap();
        assert_eq!(named.additional_gids, vec![50, 10]);
    }

    #[test]
    fn passwd_symlink_out_of_root_is_not_followed() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", t.path().join("etc/passwd")).unwrap();
        // Resolved inside the root, /etc/passwd → <root>/etc/passwd → loop: nothing read.
        assert!(resolve(t.path(), "daemon", &[]).is_err());
    }
}
