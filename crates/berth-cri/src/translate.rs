//! CRI configs into the engine's create requests: what a pod sandbox and a container
//! ask for (namespaces, security context, resources, mounts, devices, DNS, ports) in the
//! terms of the engine's container config. Pure functions, checked before anything is
//! made, so bad input is refused with a clear message and leaves nothing behind.

use std::collections::BTreeMap;
use std::path::Path;

use berth_types::container::{BindOptions, Config, CreateRequest, DeviceMapping, HostConfig, Mount, PortBinding, UpdateConfig};

use berth_engine::container::record::{IdMap, UserNs};

use crate::api::{self, NamespaceMode};
use crate::error::{Result, invalid};
use crate::meta::{self, Sandbox};

/// How the sandbox gets its network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodNetwork {
    /// The node's network namespace (hostNetwork pods).
    Host,
    /// berth's default bridge network (no CNI config on the node).
    Bridge,
    /// A namespace of its own that the CNI plugins set up after the sandbox starts.
    Cni,
}

fn namespace_options(cfg: &api::PodSandboxConfig) -> api::NamespaceOption {
    cfg.linux.as_ref().and_then(|l| l.security_context.as_ref()).and_then(|s| s.namespace_options.clone()).unwrap_or_default()
}

/// User namespaces: the node's (none of its own), or one for the pod (mode POD) with
/// exactly one uid and one gid mapping that maps container ID 0 — as the kubelet sends
/// them. Returns the pod's namespace, if it gets one.
fn check_userns(ns: &api::NamespaceOption) -> Result<Option<UserNs>> {
    let Some(u) = &ns.userns_options else { return Ok(None) };
    match NamespaceMode::try_from(u.mode).unwrap_or(NamespaceMode::Pod) {
        NamespaceMode::Node => {
            if !u.uids.is_empty() || !u.gids.is_empty() {
                return Err(invalid("user namespace mode NODE takes no uid/gid mappings"));
            }
            Ok(None)
        }
        NamespaceMode::Pod => {
            if u.uids.len() != 1 || u.gids.len() != 1 {
                return Err(invalid(format!(
                    "user namespace mode POD needs exactly one uid and one gid mapping (got {} and {})",
                    u.uids.len(),
                    u.gids.len()
                )));
            }
            let map = |m: &api::IdMapping| IdMap { container_id: m.container_id, host_id: m.host_id, size: m.length };
            let (uid, gid) = (map(&u.uids[0]), map(&u.gids[0]));
            if uid.container_id != 0 || gid.container_id != 0 {
                return Err(invalid("user namespace mappings must map container ID 0"));
            }
            for m in [uid, gid] {
                if m.size == 0 || m.host_id == 0 || m.host_id.checked_add(m.size).is_none() {
                    return Err(invalid(format!("invalid user namespace mapping 0:{}:{} (the host range must be unprivileged and fit)", m.host_id, m.size)));
                }
            }
            Ok(Some(UserNs { uids: vec![uid], gids: vec![gid], of: None, remap: false }))
        }
        other => Err(invalid(format!("user namespace mode {} is not supported for pods", other.as_str_name()))),
    }
}

/// The user namespace a pod sandbox asks for (mode POD), if any.
pub fn pod_userns(cfg: &api::PodSandboxConfig) -> Result<Option<UserNs>> {
    check_userns(&namespace_options(cfg))
}

/// The user namespace of a pod's container: the sandbox's, joined. A container may not
/// ask for another one than its pod's.
pub fn container_userns(sandbox: &Sandbox, cfg: &api::ContainerConfig) -> Result<Option<UserNs>> {
    let own = cfg.linux.as_ref().and_then(|l| l.security_context.as_ref()).and_then(|s| s.namespace_options.as_ref());
    let asked = own.map(check_userns).transpose()?.flatten();
    let pod = pod_userns(&sandbox.meta.config)?;
    if own.is_some_and(|n| n.userns_options.is_some()) && asked != pod {
        return Err(invalid("a container's user namespace must be its pod's"));
    }
    Ok(pod.map(|u| UserNs { of: Some(sandbox.rec.id.clone()), ..u }))
}

fn proto_name(p: i32) -> &'static str {
    match api::Protocol::try_from(p).unwrap_or(api::Protocol::Tcp) {
        api::Protocol::Tcp => "tcp",
        api::Protocol::Udp => "udp",
        api::Protocol::Sctp => "sctp",
    }
}

/// The engine request for a pod's sandbox (its pause container).
// The deprecated profile fields are still what older kubelets send.
#[allow(deprecated)]
pub fn sandbox_request(cfg: &api::PodSandboxConfig, network: PodNetwork) -> Result<CreateRequest> {
    let md = cfg.metadata.clone().unwrap_or_default();
    let linux = cfg.linux.clone().unwrap_or_default();
    let sc = linux.security_context.clone().unwrap_or_default();
    let ns = namespace_options(cfg);
    check_userns(&ns)?;
    if ns.network == NamespaceMode::Container as i32 || ns.network == NamespaceMode::Target as i32 {
        return Err(invalid("a pod's network namespace can only be its own (POD) or the node's (NODE)"));
    }
    let mut hc = HostConfig {
        network_mode: match network {
            PodNetwork::Host => "host".into(),
            PodNetwork::Bridge => "bridge".into(),
            PodNetwork::Cni => "none".into(),
        },
        ipc_mode: if ns.ipc == NamespaceMode::Node as i32 { "host".into() } else { "shareable".into() },
        pid_mode: if ns.pid == NamespaceMode::Node as i32 { "host".into() } else { String::new() },
        cgroup_parent: linux.cgroup_parent.clone(),
        privileged: sc.privileged,
        restart_policy: berth_types::container::RestartPolicy { name: "no".into(), maximum_retry_count: 0 },
        ..Default::default()
    };
    if !linux.sysctls.is_empty() {
        hc.sysctls = Some(linux.sysctls.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    }
    if let Some(dns) = &cfg.dns_config {
        if !dns.servers.is_empty() {
            hc.dns = Some(dns.servers.clone());
        }
        if !dns.searches.is_empty() {
            hc.dns_search = Some(dns.searches.clone());
        }
        if !dns.options.is_empty() {
            hc.dns_options = Some(dns.options.clone());
        }
    }
    if network == PodNetwork::Bridge {
        // A mapping without a host port only documents the container's port.
        let mut ports: BTreeMap<String, Option<Vec<PortBinding>>> = BTreeMap::new();
        for pm in cfg.port_mappings.iter().filter(|p| p.host_port > 0) {
            if !(1..=65535).contains(&pm.container_port) || pm.host_port > 65535 {
                return Err(invalid(format!("invalid port mapping {}:{}", pm.host_port, pm.container_port)));
            }
            let key = format!("{}/{}", pm.container_port, proto_name(pm.protocol));
            ports.entry(key).or_default().get_or_insert_with(Vec::new).push(PortBinding { host_ip: pm.host_ip.clone(), host_port: pm.host_port.to_string() });
        }
        if !ports.is_empty() {
            hc.port_bindings = Some(ports);
        }
    }
    // The pause process only waits: no seccomp profile can break it, Docker's applies.
    if let Some(opt) = seccomp_opt(sc.seccomp.as_ref(), &sc.seccomp_profile_path, true)? {
        hc.security_opt = Some(vec![opt]);
    }
    let config = Config {
        hostname: if network == PodNetwork::Host { String::new() } else { cfg.hostname.clone() },
        labels: Some(meta::engine_labels(&cfg.labels, meta::TYPE_SANDBOX, &md)),
        ..Default::default()
    };
    Ok(CreateRequest { config, host_config: Some(hc), networking_config: None })
}

/// The security profile as a `seccomp=` security option, or None for berth's default
/// profile. The CRI's default (no profile at all) is unconfined; a sandbox keeps Docker's.
fn seccomp_opt(profile: Option<&api::SecurityProfile>, path: &str, sandbox: bool) -> Result<Option<String>> {
    use api::security_profile::ProfileType;
    let read = |file: &str| -> Result<Option<String>> {
        if !file.starts_with('/') {
            return Err(invalid(format!("seccomp profile path {file:?} must be absolute")));
        }
        let data = std::fs::read_to_string(file).map_err(|e| invalid(format!("cannot load seccomp profile {file:?}: {e}")))?;
        Ok(Some(format!("seccomp={data}")))
    };
    if let Some(p) = profile {
        return match ProfileType::try_from(p.profile_type).map_err(|_| invalid(format!("unknown seccomp profile type {}", p.profile_type)))? {
            ProfileType::RuntimeDefault => Ok(None),
            ProfileType::Unconfined => Ok(Some("seccomp=unconfined".into())),
            ProfileType::Localhost => read(&p.localhost_ref),
        };
    }
    match path {
        "" if sandbox => Ok(None),
        "" | "unconfined" => Ok(Some("seccomp=unconfined".into())),
        "runtime/default" | "docker/default" => Ok(None),
        p => match p.strip_prefix("localhost/") {
            Some(file) => read(file),
            None => Err(invalid(format!("unsupported seccomp profile {p:?}"))),
        },
    }
}

/// AppArmor: this host has none, so only "no profile" and the runtime default (which
/// then means none) are accepted; a named profile cannot be honoured.
fn check_apparmor(profile: Option<&api::SecurityProfile>, name: &str) -> Result<()> {
    use api::security_profile::ProfileType;
    let localhost = match profile {
        Some(p) => p.profile_type == ProfileType::Localhost as i32,
        None => name.starts_with("localhost/"),
    };
    let enabled = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|s| s.trim() == "Y");
    if localhost && !enabled {
        return Err(tonic::Status::failed_precondition("AppArmor is not enabled on this host: a localhost profile cannot be applied"));
    }
    Ok(())
}

/// The capability list the CRI's rules give (containerd's): ALL in add starts from every
/// capability, ALL in drop from none, then each named one is added, then each dropped.
fn capability_list(c: &api::Capability) -> Result<Vec<String>> {
    let norm = |s: &str| berth_engine::container::spec::normalize_cap(s).map_err(crate::error::status);
    let is_all = |s: &String| s.eq_ignore_ascii_case("ALL");
    let mut caps: Vec<String> = berth_engine::container::spec::DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
    if c.add_capabilities.iter().any(is_all) {
        caps = berth_engine::container::spec::all_caps();
    }
    if c.drop_capabilities.iter().any(is_all) {
        caps.clear();
    }
    for a in c.add_capabilities.iter().filter(|a| !is_all(a)) {
        let a = norm(a)?;
        if !caps.contains(&a) {
            caps.push(a);
        }
    }
    for d in c.drop_capabilities.iter().filter(|d| !is_all(d)) {
        let d = norm(d)?;
        caps.retain(|x| *x != d);
    }
    Ok(caps)
}

/// The engine's `user`: `uid[:gid]` or `name[:gid]`.
fn user_of(sc: &api::LinuxContainerSecurityContext) -> Result<String> {
    let group = sc.run_as_group.as_ref().map(|g| g.value);
    let user = match (&sc.run_as_user, sc.run_as_username.as_str()) {
        (Some(u), _) => {
            if u.value < 0 {
                return Err(invalid(format!("invalid run_as_user {}", u.value)));
            }
            u.value.to_string()
        }
        (None, "") => {
            if group.is_some() {
                return Err(invalid("run_as_group is set without run_as_user or run_as_username"));
            }
            return Ok(String::new());
        }
        (None, name) => name.to_string(),
    };
    Ok(match group {
        Some(g) if g < 0 => return Err(invalid(format!("invalid run_as_group {g}"))),
        Some(g) => format!("{user}:{g}"),
        None => user,
    })
}

/// Sets the cgroup limits of CRI resources on a HostConfig.
pub fn apply_resources(r: &api::LinuxContainerResources, hc: &mut HostConfig) {
    hc.cpu_period = r.cpu_period;
    hc.cpu_quota = r.cpu_quota;
    hc.cpu_shares = r.cpu_shares;
    hc.memory = r.memory_limit_in_bytes;
    // No swap unless asked for (as containerd: swap limit = memory limit).
    hc.memory_swap = if r.memory_swap_limit_in_bytes > 0 { r.memory_swap_limit_in_bytes } else { r.memory_limit_in_bytes };
    hc.cpuset_cpus = r.cpuset_cpus.clone();
    hc.cpuset_mems = r.cpuset_mems.clone();
    hc.oom_score_adj = r.oom_score_adj;
}

/// UpdateContainerResources as the engine's update.
pub fn update_config(r: &api::LinuxContainerResources) -> UpdateConfig {
    UpdateConfig {
        cpu_shares: r.cpu_shares,
        memory: r.memory_limit_in_bytes,
        cpu_period: r.cpu_period,
        cpu_quota: r.cpu_quota,
        cpuset_cpus: r.cpuset_cpus.clone(),
        cpuset_mems: r.cpuset_mems.clone(),
        memory_swap: if r.memory_swap_limit_in_bytes > 0 { r.memory_swap_limit_in_bytes } else { r.memory_limit_in_bytes },
        ..Default::default()
    }
}

/// The CRI's mounts as engine bind mounts. A missing host path is made as a directory
/// (as containerd does); a symlink is resolved on the host.
fn mounts(list: &[api::Mount]) -> Result<Vec<Mount>> {
    let mut out = Vec::new();
    for m in list {
        if !m.container_path.starts_with('/') {
            return Err(invalid(format!("mount path {:?} must be absolute", m.container_path)));
        }
        if m.image.is_some() && m.host_path.is_empty() {
            return Err(tonic::Status::unimplemented("image volume mounts are not supported by berth"));
        }
        if !m.host_path.starts_with('/') {
            return Err(invalid(format!("mount source {:?} must be an absolute host path", m.host_path)));
        }
        if !m.uid_mappings.is_empty() || !m.gid_mappings.is_empty() {
            return Err(tonic::Status::unimplemented("id-mapped mounts are not supported by berth"));
        }
        let propagation = match api::MountPropagation::try_from(m.propagation).map_err(|_| invalid(format!("unknown mount propagation {}", m.propagation)))? {
            api::MountPropagation::PropagationPrivate => "rprivate",
            api::MountPropagation::PropagationHostToContainer => "rslave",
            api::MountPropagation::PropagationBidirectional => "rshared",
        };
        if m.recursive_read_only {
            if !m.readonly {
                return Err(invalid(format!("mount {}: recursive read-only needs readonly", m.container_path)));
            }
            if propagation != "rprivate" {
                return Err(invalid(format!("mount {}: recursive read-only needs private propagation", m.container_path)));
            }
        }
        let host = Path::new(&m.host_path);
        if std::fs::symlink_metadata(host).is_err() {
            std::fs::create_dir_all(host).map_err(|e| invalid(format!("creating mount source {}: {e}", m.host_path)))?;
        }
        let source = std::fs::canonicalize(host).map_err(|e| invalid(format!("resolving mount source {}: {e}", m.host_path)))?;
        out.push(Mount {
            kind: "bind".into(),
            source: source.to_string_lossy().into_owned(),
            target: m.container_path.clone(),
            read_only: m.readonly,
            bind_options: Some(BindOptions {
                propagation: propagation.into(),
                read_only_force_recursive: m.recursive_read_only,
                read_only_non_recursive: m.readonly && !m.recursive_read_only,
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    Ok(out)
}

/// What a container request needs beyond Docker's config.
pub struct ContainerExtras {
    pub groups: berth_engine::container::GroupsPolicy,
}

/// The engine request for a container of `sandbox`, with the image the kubelet named
/// (`image`: an ID or a reference the engine resolves).
#[allow(deprecated)]
pub fn container_request(sandbox: &Sandbox, cfg: &api::ContainerConfig, image: &str) -> Result<(CreateRequest, ContainerExtras)> {
    let pod = sandbox.metadata();
    let linux = cfg.linux.clone().unwrap_or_default();
    let sc = linux.security_context.clone().unwrap_or_default();
    let ns = sc.namespace_options.clone().unwrap_or_default();
    check_userns(&ns)?;
    check_apparmor(sc.apparmor.as_ref(), &sc.apparmor_profile)?;
    let sandbox_privileged = sandbox.meta.config.linux.as_ref().and_then(|l| l.security_context.as_ref()).is_some_and(|s| s.privileged);
    if sc.privileged && !sandbox_privileged {
        return Err(invalid("no privileged container allowed in a sandbox that is not privileged"));
    }
    let sandbox_id = sandbox.id();
    let pod_ns = sandbox.namespace_options();
    let host_network = sandbox.host_network();
    let pid_mode = match NamespaceMode::try_from(ns.pid).unwrap_or(NamespaceMode::Pod) {
        NamespaceMode::Node => "host".to_string(),
        NamespaceMode::Pod => format!("container:{sandbox_id}"),
        NamespaceMode::Container => String::new(),
        NamespaceMode::Target => {
            if ns.target_id.is_empty() {
                return Err(invalid("pid namespace mode TARGET needs a target_id"));
            }
            format!("container:{}", ns.target_id)
        }
    };
    let mut hc = HostConfig {
        network_mode: if host_network { "host".into() } else { format!("container:{sandbox_id}") },
        ipc_mode: if pod_ns.ipc == NamespaceMode::Node as i32 { "host".into() } else { format!("container:{sandbox_id}") },
        pid_mode,
        cgroup_parent: sandbox.rec.host_config.cgroup_parent.clone(),
        privileged: sc.privileged,
        readonly_rootfs: sc.readonly_rootfs,
        restart_policy: berth_types::container::RestartPolicy { name: "no".into(), maximum_retry_count: 0 },
        ..Default::default()
    };
    if let Some(r) = &linux.resources {
        apply_resources(r, &mut hc);
    }
    if !sc.privileged {
        let caps = capability_list(&sc.capabilities.clone().unwrap_or_default())?;
        hc.cap_drop = Some(vec!["ALL".into()]);
        hc.cap_add = Some(caps);
    }
    let mut opts = Vec::new();
    if sc.no_new_privs {
        opts.push("no-new-privileges".to_string());
    }
    if let Some(o) = seccomp_opt(sc.seccomp.as_ref(), &sc.seccomp_profile_path, false)? {
        opts.push(o);
    }
    if !opts.is_empty() {
        hc.security_opt = Some(opts);
    }
    if !sc.masked_paths.is_empty() {
        hc.masked_paths = Some(sc.masked_paths.clone());
    }
    if !sc.readonly_paths.is_empty() {
        hc.readonly_paths = Some(sc.readonly_paths.clone());
    }
    if !sc.supplemental_groups.is_empty() {
        hc.group_add = Some(sc.supplemental_groups.iter().map(|g| g.to_string()).collect());
    }
    let m = mounts(&cfg.mounts)?;
    if !m.is_empty() {
        hc.mounts = Some(m);
    }
    if !cfg.devices.is_empty() {
        hc.devices = Some(
            cfg.devices
                .iter()
                .map(|d| DeviceMapping { path_on_host: d.host_path.clone(), path_in_container: d.container_path.clone(), cgroup_permissions: d.permissions.clone() })
                .collect(),
        );
    }
    let mut labels = meta::engine_labels(&cfg.labels, meta::TYPE_CONTAINER, &pod);
    labels.insert(meta::CONTAINER_NAME_LABEL.into(), cfg.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default());
    labels.insert(meta::SANDBOX_ID_LABEL.into(), sandbox_id.to_string());
    let config = Config {
        image: image.to_string(),
        hostname: if host_network { String::new() } else { sandbox.meta.config.hostname.clone() },
        user: user_of(&sc)?,
        entrypoint: (!cfg.command.is_empty()).then(|| cfg.command.clone()),
        cmd: (!cfg.args.is_empty()).then(|| cfg.args.clone()),
        working_dir: cfg.working_dir.clone(),
        env: Some(cfg.envs.iter().map(|kv| format!("{}={}", kv.key, kv.value)).collect()),
        tty: cfg.tty,
        open_stdin: cfg.stdin,
        stdin_once: cfg.stdin_once,
        labels: Some(labels),
        ..Default::default()
    };
    let groups = if sc.supplemental_groups_policy == api::SupplementalGroupsPolicy::Strict as i32 {
        berth_engine::container::GroupsPolicy::Strict
    } else {
        berth_engine::container::GroupsPolicy::Merge
    };
    Ok((CreateRequest { config, host_config: Some(hc), networking_config: None }, ContainerExtras { groups }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> api::PodSandboxConfig {
        api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata { name: "p".into(), namespace: "ns".into(), uid: "u".into(), attempt: 0 }),
            hostname: "p-host".into(),
            ..Default::default()
        }
    }

    #[test]
    fn sandbox_gets_dns_ports_and_namespaces() {
        let mut cfg = pod();
        cfg.dns_config = Some(api::DnsConfig { servers: vec!["8.8.8.8".into()], searches: vec!["example.com".into()], options: vec![] });
        cfg.port_mappings = vec![
            api::PortMapping { protocol: 0, container_port: 80, host_port: 12000, host_ip: String::new() },
            api::PortMapping { protocol: 1, container_port: 53, host_port: 0, host_ip: String::new() },
        ];
        let r = sandbox_request(&cfg, PodNetwork::Bridge).unwrap();
        let hc = r.host_config.unwrap();
        assert_eq!(hc.network_mode, "bridge");
        assert_eq!(hc.ipc_mode, "shareable");
        assert_eq!(hc.dns.unwrap(), vec!["8.8.8.8".to_string()]);
        let ports = hc.port_bindings.unwrap();
        assert_eq!(ports.len(), 1, "a mapping without host port publishes nothing");
        assert_eq!(ports["80/tcp"].as_ref().unwrap()[0].host_port, "12000");
        assert_eq!(r.config.hostname, "p-host");
        assert_eq!(r.config.labels.unwrap()[meta::TYPE_LABEL], meta::TYPE_SANDBOX);
    }

    #[test]
    fn host_namespaces_and_bad_userns() {
        let mut cfg = pod();
        let ns = api::NamespaceOption { network: 2, pid: 2, ipc: 2, ..Default::default() };
        cfg.linux = Some(api::LinuxPodSandboxConfig {
            security_context: Some(api::LinuxSandboxSecurityContext { namespace_options: Some(ns.clone()), ..Default::default() }),
            ..Default::default()
        });
        let hc = sandbox_request(&cfg, PodNetwork::Host).unwrap().host_config.unwrap();
        assert_eq!((hc.network_mode.as_str(), hc.ipc_mode.as_str(), hc.pid_mode.as_str()), ("host", "host", "host"));

        let map = |c: u32| api::IdMapping { host_id: 100000, container_id: c, length: 65536 };
        let with_userns = |mode: i32, uids: Vec<api::IdMapping>| {
            let mut c = pod();
            let ns = api::NamespaceOption {
                userns_options: Some(api::UserNamespace { mode, uids: uids.clone(), gids: uids }),
                ..Default::default()
            };
            c.linux = Some(api::LinuxPodSandboxConfig {
                security_context: Some(api::LinuxSandboxSecurityContext { namespace_options: Some(ns), ..Default::default() }),
                ..Default::default()
            });
            sandbox_request(&c, PodNetwork::Bridge).map(|_| ()).map_err(|e| e.code())
        };
        let bad = Err(tonic::Code::InvalidArgument);
        assert_eq!(with_userns(0, vec![map(0), map(1)]), bad);
        assert_eq!(with_userns(0, vec![map(1)]), bad);
        assert_eq!(with_userns(1, vec![map(0)]), bad);
        assert_eq!(with_userns(3, vec![map(0)]), bad);
        // Mode POD with one mapping that maps root: a pod in a user namespace.
        assert_eq!(with_userns(0, vec![map(0)]), Ok(()));
    }

    #[test]
    fn capabilities_follow_the_cri_rules() {
        let c = |add: &[&str], drop: &[&str]| {
            capability_list(&api::Capability {
                add_capabilities: add.iter().map(|s| s.to_string()).collect(),
                drop_capabilities: drop.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            })
            .unwrap()
        };
        assert!(c(&["NET_ADMIN"], &[]).contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!c(&[], &["CHOWN"]).contains(&"CAP_CHOWN".to_string()));
        let all_but = c(&["ALL"], &["CHOWN"]);
        assert!(!all_but.contains(&"CAP_CHOWN".to_string()));
        assert!(all_but.contains(&"CAP_SYS_ADMIN".to_string()));
        assert_eq!(c(&["KILL"], &["ALL"]), vec!["CAP_KILL".to_string()]);
    }

    #[test]
    fn users_and_seccomp() {
        let sc = |u: Option<i64>, name: &str, g: Option<i64>| api::LinuxContainerSecurityContext {
            run_as_user: u.map(|value| api::Int64Value { value }),
            run_as_username: name.into(),
            run_as_group: g.map(|value| api::Int64Value { value }),
            ..Default::default()
        };
        assert_eq!(user_of(&sc(Some(1000), "", None)).unwrap(), "1000");
        assert_eq!(user_of(&sc(Some(1000), "", Some(50))).unwrap(), "1000:50");
        assert_eq!(user_of(&sc(None, "www", Some(50))).unwrap(), "www:50");
        assert_eq!(user_of(&sc(None, "", Some(50))).unwrap_err().code(), tonic::Code::InvalidArgument);
        assert_eq!(seccomp_opt(None, "", false).unwrap().as_deref(), Some("seccomp=unconfined"));
        assert_eq!(seccomp_opt(None, "runtime/default", false).unwrap(), None);
        let rd = api::SecurityProfile { profile_type: 0, localhost_ref: String::new() };
        assert_eq!(seccomp_opt(Some(&rd), "", false).unwrap(), None);
        let missing = api::SecurityProfile { profile_type: 2, localhost_ref: "/no/such/profile.json".into() };
        assert_eq!(seccomp_opt(Some(&missing), "", false).unwrap_err().code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn mounts_check_recursive_read_only() {
        let tmp = tempfile::tempdir().unwrap();
        let m = |ro: bool, rro: bool, prop: i32| api::Mount {
            container_path: "/data".into(),
            host_path: tmp.path().join("d").to_string_lossy().into_owned(),
            readonly: ro,
            recursive_read_only: rro,
            propagation: prop,
            ..Default::default()
        };
        assert!(mounts(&[m(false, true, 0)]).is_err());
        assert!(mounts(&[m(true, true, 2)]).is_err());
        let ok = mounts(&[m(true, false, 1)]).unwrap();
        assert_eq!(ok[0].bind_options.as_ref().unwrap().propagation, "rslave");
        assert!(tmp.path().join("d").is_dir(), "a missing host path is made");
    }
}
