//! Which namespaces a container gets: new ones (clone flags), joined ones (setns by path),
//! and the order they are entered in.

use std::path::PathBuf;

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use crate::error::{Error, Result};

/// The namespace part of a spec.
#[derive(Debug, Clone, PartialEq)]
pub struct NamespacePlan {
    /// Namespaces the clone creates (all new ones except cgroup).
    pub clone_flags: CloneFlags,
    /// A new cgroup namespace is unshared only after the init joined its cgroup, so that
    /// the cgroup becomes the namespace's root.
    pub new_cgroup: bool,
    /// Existing namespaces to join, user first.
    pub join: Vec<(CloneFlags, PathBuf)>,
    /// A pid namespace to join: the parent enters it before the clone, since setns on a pid
    /// namespace only affects children.
    pub join_pid: Option<PathBuf>,
    pub uid_mappings: Vec<LinuxIdMapping>,
    pub gid_mappings: Vec<LinuxIdMapping>,
}

impl Default for NamespacePlan {
    fn default() -> Self {
        NamespacePlan {
            clone_flags: CloneFlags::empty(),
            new_cgroup: false,
            join: Vec::new(),
            join_pid: None,
            uid_mappings: Vec::new(),
            gid_mappings: Vec::new(),
        }
    }
}

/// Whether a uid_map/gid_map text (`<inside> <outside> <count>` lines) maps id 0.
pub fn maps_root(map: &str) -> bool {
    map.lines().any(|l| {
        let f: Vec<u64> = l.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        f.len() == 3 && f[0] == 0 && f[2] > 0
    })
}

/// The host id that id 0 maps to, from a uid_map/gid_map text.
pub fn host_root(map: &str) -> Option<u32> {
    map.lines().find_map(|l| {
        let f: Vec<u64> = l.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        (f.len() == 3 && f[0] == 0 && f[2] > 0).then(|| f[1] as u32)
    })
}

impl NamespacePlan {
    pub fn new_user(&self) -> bool {
        self.clone_flags.contains(CloneFlags::CLONE_NEWUSER)
    }

    /// Any user namespace, new or joined.
    pub fn has_user(&self) -> bool {
        self.new_user() || self.join.iter().any(|(f, _)| *f == CloneFlags::CLONE_NEWUSER)
    }

    pub fn has(&self, flag: CloneFlags) -> bool {
        self.clone_flags.contains(flag)
            || self.join.iter().any(|(f, _)| *f == flag)
            || (flag == CloneFlags::CLONE_NEWCGROUP && self.new_cgroup)
            || (flag == CloneFlags::CLONE_NEWPID && self.join_pid.is_some())
    }

    pub fn from_spec(spec: &Spec) -> Result<Self> {
        let linux = spec.linux().as_ref();
        let mut plan = NamespacePlan::default();
        let mut seen = Vec::new();
        for ns in linux.and_then(|l| l.namespaces().as_ref()).into_iter().flatten() {
            let flag = flag_of(ns.typ())?;
            if seen.contains(&flag) {
                return Err(Error::InvalidSpec(format!("namespace {} is listed twice", ns.typ())));
            }
            seen.push(flag);
            match ns.path() {
                Some(p) if !p.as_os_str().is_empty() => {
                    if !p.exists() {
                        return Err(Error::InvalidSpec(format!(
                            "{} namespace path {} does not exist",
                            ns.typ(),
                            p.display()
                        )));
                    }
                    if flag == CloneFlags::CLONE_NEWPID {
                        plan.join_pid = Some(p.clone());
                    } else {
                        plan.join.push((flag, p.clone()));
                    }
                }
                _ => {
                    if flag == CloneFlags::CLONE_NEWCGROUP {
                        plan.new_cgroup = true;
                    } else {
                        plan.clone_flags |= flag;
                    }
                }
            }
        }
        // Joining the user namespace first gives us the privileges to join the others.
        plan.join.sort_by_key(|(f, _)| *f != CloneFlags::CLONE_NEWUSER);
        if !plan.has(CloneFlags::CLONE_NEWNS) {
            return Err(Error::InvalidSpec("a mount namespace is required (linux.namespaces has no \"mount\")".into()));
        }
        // A uts namespace of its own, new or joined by path (then the names are set in
        // the joined one, as runc does): never the host's.
        if spec.hostname().as_ref().is_some_and(|h| !h.is_empty()) && !plan.has(CloneFlags::CLONE_NEWUTS) {
            return Err(Error::InvalidSpec("hostname is set but the container has no uts namespace of its own".into()));
        }
        if spec.domainname().as_ref().is_some_and(|h| !h.is_empty()) && !plan.has(CloneFlags::CLONE_NEWUTS) {
            return Err(Error::InvalidSpec("domainname is set but the container has no uts namespace of its own".into()));
        }
        plan.uid_mappings = linux.and_then(|l| l.uid_mappings().clone()).unwrap_or_default();
        plan.gid_mappings = linux.and_then(|l| l.gid_mappings().clone()).unwrap_or_default();
        if plan.new_user() && (plan.uid_mappings.is_empty() || plan.gid_mappings.is_empty()) {
            return Err(Error::InvalidSpec("a new user namespace needs uidMappings and gidMappings".into()));
        }
        if !plan.new_user() && (!plan.uid_mappings.is_empty() || !plan.gid_mappings.is_empty()) {
            return Err(Error::InvalidSpec("uidMappings/gidMappings are set without a new user namespace".into()));
        }
        if let Some(s) = linux.and_then(|l| l.sysctl().as_ref()) {
            for k in s.keys() {
                if k.starts_with("net.") && !plan.has(CloneFlags::CLONE_NEWNET) {
                    return Err(Error::InvalidSpec(format!("sysctl {k} needs a network namespace of its own")));
                }
            }
        }
        Ok(plan)
    }
}

fn flag_of(t: LinuxNamespaceType) -> Result<CloneFlags> {
    Ok(match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => {
            return Err(Error::Unsupported("time namespaces are not supported by berth's runtime".into()));
        }
    })
}

/// `/proc/<pid>/ns/<name>` for a namespace flag.
pub fn proc_name(flag: CloneFlags) -> &'static str {
    match flag {
        f if f == CloneFlags::CLONE_NEWNS => "mnt",
        f if f == CloneFlags::CLONE_NEWCGROUP => "cgroup",
        f if f == CloneFlags::CLONE_NEWUTS => "uts",
        f if f == CloneFlags::CLONE_NEWIPC => "ipc",
        f if f == CloneFlags::CLONE_NEWUSER => "user",
        f if f == CloneFlags::CLONE_NEWPID => "pid",
        _ => "net",
    }
}

/// The order exec enters a running container's namespaces: user first (for privileges),
/// mount last (it changes the root we resolve paths in).
pub const EXEC_ORDER: [CloneFlags; 7] = [
    CloneFlags::CLONE_NEWUSER,
    CloneFlags::CLONE_NEWIPC,
    CloneFlags::CLONE_NEWUTS,
    CloneFlags::CLONE_NEWNET,
    CloneFlags::CLONE_NEWPID,
    CloneFlags::CLONE_NEWCGROUP,
    CloneFlags::CLONE_NEWNS,
];

/// "0 100000 65536\n" lines for `/proc/<pid>/uid_map`.
pub fn id_map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ns: serde_json::Value, extra: serde_json::Value) -> Spec {
        let mut v = serde_json::to_value(crate::spec::default_spec()).unwrap();
        v["linux"]["namespaces"] = ns;
        if let serde_json::Value::Object(m) = extra {
            for (k, val) in m {
                v["linux"][k] = val;
            }
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn default_spec_plan() {
        let p = NamespacePlan::from_spec(&crate::spec::default_spec()).unwrap();
        assert!(p.clone_flags.contains(CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWNET));
        assert!(!p.clone_flags.contains(CloneFlags::CLONE_NEWCGROUP));
        assert!(p.new_cgroup);
        assert!(p.join.is_empty());
    }

    #[test]
    fn joins_put_user_first_and_pid_in_parent() {
        let s = spec(
            serde_json::json!([
                {"type": "network", "path": "/proc/self/ns/net"},
                {"type": "user", "path": "/proc/self/ns/user"},
                {"type": "pid", "path": "/proc/self/ns/pid"},
                {"type": "mount"}, {"type": "uts"}
            ]),
            serde_json::json!({}),
        );
        let p = NamespacePlan::from_spec(&s).unwrap();
        assert_eq!(p.join[0].0, CloneFlags::CLONE_NEWUSER);
        assert_eq!(p.join[1].0, CloneFlags::CLONE_NEWNET);
        assert_eq!(p.join_pid, Some(PathBuf::from("/proc/self/ns/pid")));
    }

    #[test]
    fn rejects_inconsistent_specs() {
        let no_mnt = spec(serde_json::json!([{"type": "pid"}, {"type": "uts"}]), serde_json::json!({}));
        assert!(NamespacePlan::from_spec(&no_mnt).unwrap_err().to_string().contains("mount namespace"));
        let user_no_map = spec(serde_json::json!([{"type": "user"}, {"type": "mount"}, {"type": "uts"}]), serde_json::json!({}));
        assert!(NamespacePlan::from_spec(&user_no_map).is_err());
        let missing = spec(serde_json::json!([{"type": "mount"}, {"type": "uts"}, {"type": "network", "path": "/nonexistent/ns"}]), serde_json::json!({}));
        assert!(NamespacePlan::from_spec(&missing).unwrap_err().to_string().contains("does not exist"));
        let maps = spec(
            serde_json::json!([{"type": "user"}, {"type": "mount"}, {"type": "uts"}]),
            serde_json::json!({"uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
                               "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}),
        );
        let p = NamespacePlan::from_spec(&maps).unwrap();
        assert_eq!(id_map_text(&p.uid_mappings), "0 100000 65536\n");
    }
}
