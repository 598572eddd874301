//! Translating a Docker container (Config + HostConfig + resolved mounts) into an OCI
//! runtime spec (`config.json`), with Docker's security defaults: 14 capabilities,
//! the default seccomp profile, masked and read-only /proc and /sys paths, a private
//! /dev with the standard nodes only.

use std::path::{Path, PathBuf};

use berth_types::container::HostConfig;
use serde_json::{Value, json};

use super::record::ContainerRecord;
use super::user;
use crate::error::{Error, Result};

pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability the kernel knows (for `--privileged` and `--cap-add ALL`).
pub const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
    "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
];

/// Every capability the daemon may hand on: ALL_CAPS (in kernel bit order) minus those
/// missing from the daemon's own bounding set. A host may withhold some from root
/// (these machines keep CAP_SYS_MODULE and CAP_SYS_RESOURCE back); asking for one of
/// those would only make `--privileged` fail at capset.
pub fn all_caps() -> Vec<String> {
    static BOUNDING: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let bounding = *BOUNDING.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("CapBnd:").map(|v| v.trim().to_string())))
            .and_then(|v| u64::from_str_radix(&v, 16).ok())
            .unwrap_or(u64::MAX)
    });
    ALL_CAPS.iter().enumerate().filter(|(bit, _)| bounding & (1u64 << bit) != 0).map(|(_, c)| c.to_string()).collect()
}

pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

pub const READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// Normalises a capability name ("net_admin", "CAP_NET_ADMIN", "ALL").
pub fn normalize_cap(name: &str) -> Result<String> {
    let up = name.trim().to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let full = if up.starts_with("CAP_") { up } else { format!("CAP_{up}") };
    if ALL_CAPS.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(Error::invalid(format!("unknown capability: \"{full}\"")))
    }
}

/// The capability list: defaults, plus CapAdd, minus CapDrop (docker's rules for ALL).
pub fn capabilities(hc: &HostConfig) -> Result<Vec<String>> {
    if hc.privileged {
        return Ok(all_caps());
    }
    let adds = hc.cap_add.clone().unwrap_or_default().iter().map(|c| normalize_cap(c)).collect::<Result<Vec<_>>>().map_err(|e| e.context("invalid CapAdd"))?;
    let drops = hc.cap_drop.clone().unwrap_or_default().iter().map(|c| normalize_cap(c)).collect::<Result<Vec<_>>>().map_err(|e| e.context("invalid CapDrop"))?;
    let mut caps: Vec<String> = if adds.iter().any(|c| c == "ALL") {
        all_caps()
    } else if drops.iter().any(|c| c == "ALL") {
        Vec::new()
    } else {
        DEFAULT_CAPS.iter().map(|s| s.to_string()).collect()
    };
    if !adds.iter().any(|c| c == "ALL") {
        caps.retain(|c| !drops.contains(c));
    }
    for a in adds {
        if a != "ALL" && !caps.contains(&a) {
            caps.push(a);
        }
    }
    Ok(caps)
}

/// Paths and facts the spec needs that are not in the record.
pub struct SpecInputs<'a> {
    pub rootfs: &'a Path,
    /// `Some(path)`: join that network namespace; `None` with host networking.
    pub netns: Option<PathBuf>,
    pub cgroup_parent: &'a str,
    /// A user namespace to join (an nsfs file kept by the engine; see `crate::userns`).
    pub userns: Option<PathBuf>,
    /// Bind sources to take from their id-mapped copies (`crate::userns::stage_binds`).
    pub idmapped: std::collections::HashMap<PathBuf, PathBuf>,
    /// `container:<id>` modes resolved to the other container's init pid.
    pub pid_ns_of: Option<i32>,
    pub ipc_ns_of: Option<i32>,
    pub cgroup_v2: bool,
    /// Seccomp profile (OCI form) to apply, or None.
    pub seccomp: Option<Value>,
    /// Extra env (e.g. HOSTNAME) put before the container's own.
    pub hostname: String,
    /// A host tmpfs to show at /dev/shm (shareable IPC, or the donor's with
    /// `container:<id>`); None: a tmpfs of the container's own.
    pub shm: Option<PathBuf>,
}

/// True when `var` (NAME=value) is set again in `env`.
fn overridden(var: &str, env: &[String]) -> bool {
    let name = var.split('=').next().unwrap_or(var);
    env.iter().any(|e| e.split('=').next() == Some(name))
}

pub fn build(rec: &ContainerRecord, inp: &SpecInputs) -> Result<Value> {
    let cfg = &rec.config;
    let hc = &rec.host_config;
    let privileged = hc.privileged;

    let ids = user::resolve_groups(inp.rootfs, &cfg.user, hc.group_add.as_deref().unwrap_or(&[]), rec.ext.cri_groups)?;
    let mut env: Vec<String> = Vec::new();
    let container_env = cfg.env.clone().unwrap_or_default();
    if !container_env.iter().any(|e| e.starts_with("PATH=")) {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    env.push(format!("HOSTNAME={}", inp.hostname));
    if cfg.tty && !container_env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    if !container_env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", ids.home));
    }
    // Legacy links' variables come before the container's own, which win.
    env.extend(rec.network.link_env.iter().filter(|l| !overridden(l, &container_env)).cloned());
    env.extend(container_env);

    let caps = capabilities(hc)?;
    let mut process = json!({
        "terminal": cfg.tty,
        "user": {"uid": ids.uid, "gid": ids.gid, "additionalGids": ids.additional_gids},
        "args": rec_args(rec)?,
        "env": env,
        "cwd": if cfg.working_dir.is_empty() { "/".to_string() } else { cfg.working_dir.clone() },
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": security_opt(hc, "no-new-privileges").is_some_and(|v| v != "false"),
    });
    if let Some([h, w]) = hc.console_size
        && h > 0 && w > 0 {
            process["consoleSize"] = json!({"height": h, "width": w});
        }
    if hc.oom_score_adj != 0 {
        process["oomScoreAdj"] = json!(hc.oom_score_adj);
    }
    if let Some(rl) = rlimits(hc) {
        process["rlimits"] = rl;
    }

    let mut mounts = default_mounts(hc, inp.cgroup_v2, inp.shm.as_deref());
    let source = |p: &str| inp.idmapped.get(Path::new(p)).map_or_else(|| p.to_string(), |c| c.to_string_lossy().into_owned());
    for (dest, path) in [("/etc/resolv.conf", &rec.resolv_conf_path), ("/etc/hostname", &rec.hostname_path), ("/etc/hosts", &rec.hosts_path)] {
        if !path.is_empty() && !rec.mounts.iter().any(|m| m.destination == dest) {
            mounts.push(json!({"destination": dest, "type": "bind", "source": source(path), "options": ["rbind", "rprivate"]}));
        }
    }
    for m in &rec.mounts {
        mounts.push(match m.kind.as_str() {
            "tmpfs" => {
                let mut opts = vec!["nosuid".to_string(), "nodev".to_string(), "noexec".to_string()];
                for o in &m.options {
                    if let Some(pos) = opts.iter().position(|x| opposite(x) == *o) {
                        opts.remove(pos);
                    }
                    if !opts.contains(o) {
                        opts.push(o.clone());
                    }
                }
                if !m.rw && !opts.contains(&"ro".to_string()) {
                    opts.push("ro".into());
                }
                json!({"destination": m.destination, "type": "tmpfs", "source": "tmpfs", "options": opts})
            }
            _ => {
                let mut opts = vec!["rbind".to_string()];
                opts.push(if m.propagation.is_empty() { "rprivate".into() } else { m.propagation.clone() });
                opts.push(if m.rw { "rw".into() } else { "ro".into() });
                opts.extend(m.options.iter().cloned());
                json!({"destination": m.destination, "type": "bind", "source": source(&m.source), "options": opts})
            }
        });
    }
    if let Some(tmpfs) = &hc.tmpfs {
        for (dest, opts) in tmpfs {
            let mut o = vec!["noexec".to_string(), "nosuid".to_string(), "nodev".to_string()];
            for x in opts.split(',').map(str::trim).filter(|x| !x.is_empty()) {
                if let Some(pos) = o.iter().position(|y| opposite(y) == x) {
                    o.remove(pos);
                }
                o.push(x.to_string());
            }
            mounts.push(json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": o}));
        }
    }

    let mut namespaces = vec![json!({"type": "mount"})];
    if let Some(u) = &inp.userns {
        namespaces.push(json!({"type": "user", "path": u}));
    }
    match hc.pid_mode.as_str() {
        "host" => {}
        _ => namespaces.push(match inp.pid_ns_of {
            Some(pid) => json!({"type": "pid", "path": format!("/proc/{pid}/ns/pid")}),
            None => json!({"type": "pid"}),
        }),
    }
    match hc.ipc_mode.as_str() {
        "host" => {}
        _ => namespaces.push(match inp.ipc_ns_of {
            Some(pid) => json!({"type": "ipc", "path": format!("/proc/{pid}/ns/ipc")}),
            None => json!({"type": "ipc"}),
        }),
    }
    if hc.uts_mode != "host" && hc.network_mode != "host" {
        namespaces.push(json!({"type": "uts"}));
    }
    if let Some(path) = &inp.netns {
        namespaces.push(json!({"type": "network", "path": path}));
    }
    let cgroupns_private = match hc.cgroupns_mode.as_str() {
        "private" => true,
        "host" => false,
        _ => inp.cgroup_v2,
    };
    if cgroupns_private && !privileged {
        namespaces.push(json!({"type": "cgroup"}));
    }

    let mut resources = resources(hc)?;
    let (device_nodes, device_rules) = super::devices::gather(hc)?;
    if let Some(rules) = resources["devices"].as_array_mut() {
        rules.extend(device_rules);
    }
    let mut linux = json!({
        "namespaces": namespaces,
        "resources": resources,
    });
    // An empty parent (rootless without a delegated cgroup): no cgroup at all, which the
    // runtime honours by running the container without one.
    if !inp.cgroup_parent.is_empty() {
        linux["cgroupsPath"] = json!(format!("{}/{}", inp.cgroup_parent.trim_end_matches('/'), rec.id));
    }
    if !device_nodes.is_empty() {
        linux["devices"] = json!(device_nodes);
    }
    if !privileged {
        linux["maskedPaths"] = json!(hc.masked_paths.clone().unwrap_or_else(|| MASKED_PATHS.iter().map(|s| s.to_string()).collect()));
        linux["readonlyPaths"] = json!(hc.readonly_paths.clone().unwrap_or_else(|| READONLY_PATHS.iter().map(|s| s.to_string()).collect()));
        if let Some(s) = &inp.seccomp {
            linux["seccomp"] = s.clone();
        }
    }
    if let Some(sysctls) = &hc.sysctls {
        for k in sysctls.keys() {
            validate_sysctl(k, hc)?;
        }
        linux["sysctl"] = json!(sysctls);
    }

    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": inp.rootfs, "readonly": hc.readonly_rootfs},
        "mounts": mounts,
        "linux": linux,
    });
    if hc.init == Some(true) {
        // berth's runtime keeps a minimal init as PID 1 (tini's job in Docker).
        spec["annotations"] = json!({"io.berth.init": "true"});
    }
    if rec.ext.pause {
        // A pod sandbox: the runtime's init holds the namespaces and runs nothing.
        spec["annotations"] = json!({"io.berth.pause": "true"});
    }
    // Mounts that share or receive mount events need the root to propagate too (as
    // moby and containerd set it): rshared wins over rslave; the default stays private.
    let props: Vec<&str> = rec.mounts.iter().map(|m| m.propagation.as_str()).collect();
    if props.iter().any(|p| *p == "shared" || *p == "rshared") {
        spec["linux"]["rootfsPropagation"] = json!("rshared");
    } else if props.iter().any(|p| *p == "slave" || *p == "rslave") {
        spec["linux"]["rootfsPropagation"] = json!("rslave");
    }
    if hc.network_mode != "host" && hc.uts_mode != "host" {
        spec["hostname"] = json!(inp.hostname);
        if !cfg.domainname.is_empty() {
            spec["domainname"] = json!(cfg.domainname);
        }
    }
    Ok(spec)
}

/// The process of an exec: the container's security settings, its own args/env/user/cwd.
pub fn exec_process(
    rec: &ContainerRecord,
    rootfs: &Path,
    cmd: &[String],
    env: &[String],
    user: &str,
    working_dir: &str,
    tty: bool,
    privileged: bool,
) -> Result<Value> {
    let hc = &rec.host_config;
    let user = if user.is_empty() { rec.config.user.as_str() } else { user };
    let ids = user::resolve_groups(rootfs, user, hc.group_add.as_deref().unwrap_or(&[]), rec.ext.cri_groups)?;
    let mut full_env: Vec<String> = Vec::new();
    let container_env = rec.config.env.clone().unwrap_or_default();
    if !container_env.iter().chain(env).any(|e| e.starts_with("PATH=")) {
        full_env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    full_env.push(format!("HOSTNAME={}", rec.config.hostname));
    if tty && !container_env.iter().chain(env).any(|e| e.starts_with("TERM=")) {
        full_env.push("TERM=xterm".into());
    }
    if !container_env.iter().chain(env).any(|e| e.starts_with("HOME=")) {
        full_env.push(format!("HOME={}", ids.home));
    }
    full_env.extend(rec.network.link_env.iter().filter(|l| !overridden(l, &container_env)).cloned());
    full_env.extend(container_env);
    full_env.extend(env.iter().cloned());
    let caps: Vec<String> = if privileged || hc.privileged { all_caps() } else { capabilities(hc)? };
    let cwd = if !working_dir.is_empty() {
        working_dir.to_string()
    } else if rec.config.working_dir.is_empty() {
        "/".into()
    } else {
        rec.config.working_dir.clone()
    };
    let mut process = json!({
        "terminal": tty,
        "user": {"uid": ids.uid, "gid": ids.gid, "additionalGids": ids.additional_gids},
        "args": cmd,
        "env": full_env,
        "cwd": cwd,
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": security_opt(hc, "no-new-privileges").is_some_and(|v| v != "false"),
    });
    // An exec'd process gets the container's process limits, as dockerd starts it
    // from the container's own process spec.
    if let Some(rl) = rlimits(hc) {
        process["rlimits"] = rl;
    }
    if hc.oom_score_adj != 0 {
        process["oomScoreAdj"] = json!(hc.oom_score_adj);
    }
    Ok(process)
}

/// `--ulimit` as OCI rlimits.
fn rlimits(hc: &HostConfig) -> Option<Value> {
    let ulimits = hc.ulimits.as_ref()?;
    Some(Value::Array(ulimits.iter().map(|u| json!({"type": format!("RLIMIT_{}", u.name.to_ascii_uppercase()), "hard": u.hard, "soft": u.soft})).collect()))
}

fn rec_args(rec: &ContainerRecord) -> Result<Vec<String>> {
    let mut args = vec![rec.path.clone()];
    args.extend(rec.args.iter().cloned());
    if rec.path.is_empty() {
        return Err(Error::invalid("no command specified"));
    }
    Ok(args)
}

fn opposite(opt: &str) -> String {
    match opt {
        "nosuid" => "suid".into(),
        "suid" => "nosuid".into(),
        "nodev" => "dev".into(),
        "dev" => "nodev".into(),
        "noexec" => "exec".into(),
        "exec" => "noexec".into(),
        "ro" => "rw".into(),
        "rw" => "ro".into(),
        _ => String::new(),
    }
}

/// `--security-opt key=value` (or `key:value`, or a bare `key`).
/// Whether the process gets no_new_privs: `--security-opt no-new-privileges[=bool]`
/// decides, else the daemon's `--no-new-privileges` default (as dockerd).
pub fn no_new_privileges(hc: &HostConfig, daemon_default: bool) -> bool {
    match security_opt(hc, "no-new-privileges") {
        Some(v) => v != "false",
        None => daemon_default,
    }
}

/// Sets `noNewPrivileges` on an OCI process object from [`no_new_privileges`].
pub fn apply_no_new_privileges(process: &mut Value, hc: &HostConfig, daemon_default: bool) {
    if let Some(p) = process.as_object_mut() {
        p.insert("noNewPrivileges".into(), Value::Bool(no_new_privileges(hc, daemon_default)));
    }
}

pub fn security_opt<'a>(hc: &'a HostConfig, key: &str) -> Option<&'a str> {
    hc.security_opt.as_ref()?.iter().find_map(|o| {
        let (k, v) = o.split_once('=').or_else(|| o.split_once(':')).unwrap_or((o.as_str(), "true"));
        (k == key).then_some(v)
    })
}

fn default_mounts(hc: &HostConfig, cgroup_v2: bool, shm: Option<&Path>) -> Vec<Value> {
    let shm_size = if hc.shm_size > 0 { hc.shm_size } else { 64 << 20 };
    let sys_opts = if hc.privileged { json!(["nosuid", "noexec", "nodev", "rw"]) } else { json!(["nosuid", "noexec", "nodev", "ro"]) };
    let cgroup_opts = if hc.privileged { json!(["nosuid", "noexec", "nodev", "relatime", "rw"]) } else { json!(["nosuid", "noexec", "nodev", "relatime", "ro"]) };
    let mut v = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_opts}),
    ];
    if cgroup_v2 {
        v.push(json!({"destination": "/sys/fs/cgroup", "type": "cgroup2", "source": "cgroup", "options": cgroup_opts}));
    } else {
        v.push(json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": cgroup_opts}));
    }
    v.push(json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}));
    match shm {
        _ if hc.ipc_mode == "host" => {}
        Some(dir) => v.push(json!({"destination": "/dev/shm", "type": "bind", "source": dir, "options": ["rbind", "nosuid", "noexec", "nodev"]})),
        None => v.push(json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={shm_size}")]})),
    }
    v
}

/// Docker's allowed device cgroup rules for unprivileged containers.
fn default_device_rules(privileged: bool) -> Vec<Value> {
    if privileged {
        return vec![json!({"allow": true, "access": "rwm"})];
    }
    let c = |major: i64, minor: Option<i64>, access: &str| json!({"allow": true, "type": "c", "major": major, "minor": minor, "access": access});
    vec![
        json!({"allow": false, "access": "rwm"}),
        json!({"allow": true, "type": "c", "access": "m"}),
        json!({"allow": true, "type": "b", "access": "m"}),
        c(1, Some(3), "rwm"),
        c(1, Some(8), "rwm"),
        c(1, Some(7), "rwm"),
        c(5, Some(0), "rwm"),
        c(1, Some(5), "rwm"),
        c(1, Some(9), "rwm"),
        c(5, Some(1), "rwm"),
        c(136, None, "rwm"),
        c(5, Some(2), "rwm"),
        c(10, Some(200), "rwm"),
    ]
}

/// Rootless without a delegated cgroup: the first limit `hc` asks for (its docker flag),
/// which the engine refuses rather than drop silently (docs/rootless.md).
pub fn rootless_limit(hc: &HostConfig) -> Option<&'static str> {
    let nonempty = |v: &Option<Vec<berth_types::container::ThrottleDevice>>| v.as_ref().is_some_and(|v| !v.is_empty());
    [
        (hc.memory > 0, "--memory"),
        (hc.memory_swap > 0, "--memory-swap"),
        (hc.memory_reservation > 0, "--memory-reservation"),
        (hc.memory_swappiness.is_some_and(|s| s >= 0), "--memory-swappiness"),
        (hc.oom_kill_disable == Some(true), "--oom-kill-disable"),
        (hc.nano_cpus > 0, "--cpus"),
        (hc.cpu_shares > 0, "--cpu-shares"),
        (hc.cpu_quota > 0, "--cpu-quota"),
        (hc.cpu_period > 0, "--cpu-period"),
        (!hc.cpuset_cpus.is_empty(), "--cpuset-cpus"),
        (!hc.cpuset_mems.is_empty(), "--cpuset-mems"),
        (hc.pids_limit.is_some_and(|p| p > 0), "--pids-limit"),
        (hc.blkio_weight > 0, "--blkio-weight"),
        (hc.blkio_weight_device.as_ref().is_some_and(|v| !v.is_empty()), "--blkio-weight-device"),
        (nonempty(&hc.blkio_device_read_bps), "--device-read-bps"),
        (nonempty(&hc.blkio_device_write_bps), "--device-write-bps"),
        (nonempty(&hc.blkio_device_read_iops), "--device-read-iops"),
        (nonempty(&hc.blkio_device_write_iops), "--device-write-iops"),
    ]
    .into_iter()
    .find_map(|(set, flag)| set.then_some(flag))
}

/// The one-line refusal of a limit in rootless mode.
pub fn rootless_limit_error(flag: &str) -> Error {
    Error::invalid(format!(
        "{flag}: resource limits are not supported in rootless mode: the daemon has no delegated cgroup v2 hierarchy (docs/rootless.md)"
    ))
}

/// The cgroup resources of HostConfig (also used by `docker update`).
pub fn resources(hc: &HostConfig) -> Result<Value> {
    validate_resources(hc.memory, hc.memory_swap, hc.memory_reservation, hc.nano_cpus, hc.cpu_quota, hc.cpu_period, hc.cpu_shares)?;
    let mut r = json!({"devices": default_device_rules(hc.privileged)});
    let mut mem = serde_json::Map::new();
    if hc.memory > 0 {
        mem.insert("limit".into(), json!(hc.memory));
        // Docker: swap unset → as much swap as memory (limit*2 total); -1 → unlimited.
        let swap = match hc.memory_swap {
            0 => hc.memory * 2,
            s => s,
        };
        mem.insert("swap".into(), json!(swap));
    }
    if hc.memory_reservation > 0 {
        mem.insert("reservation".into(), json!(hc.memory_reservation));
    }
    if let Some(s) = hc.memory_swappiness
        && s >= 0 {
            mem.insert("swappiness".into(), json!(s));
        }
    if hc.oom_kill_disable == Some(true) {
        mem.insert("disableOOMKiller".into(), json!(true));
    }
    if !mem.is_empty() {
        r["memory"] = Value::Object(mem);
    }
    let mut cpu = serde_json::Map::new();
    if hc.cpu_shares > 0 {
        cpu.insert("shares".into(), json!(hc.cpu_shares));
    }
    if hc.nano_cpus > 0 {
        cpu.insert("period".into(), json!(100_000));
        cpu.insert("quota".into(), json!(hc.nano_cpus * 100_000 / 1_000_000_000));
    } else {
        if hc.cpu_quota > 0 {
            cpu.insert("quota".into(), json!(hc.cpu_quota));
        }
        if hc.cpu_period > 0 {
            cpu.insert("period".into(), json!(hc.cpu_period));
        }
    }
    if !hc.cpuset_cpus.is_empty() {
        cpu.insert("cpus".into(), json!(hc.cpuset_cpus));
    }
    if !hc.cpuset_mems.is_empty() {
        cpu.insert("mems".into(), json!(hc.cpuset_mems));
    }
    if !cpu.is_empty() {
        r["cpu"] = Value::Object(cpu);
    }
    if let Some(p) = hc.pids_limit
        && p > 0 {
            r["pids"] = json!({"limit": p});
        }
    if hc.blkio_weight > 0 {
        if !(10..=1000).contains(&hc.blkio_weight) {
            return Err(Error::invalid("Range of blkio weight is from 10 to 1000"));
        }
        r["blockIO"] = json!({"weight": hc.blkio_weight});
    }
    Ok(r)
}

/// Docker's checks on limits, with its messages.
pub fn validate_resources(memory: i64, swap: i64, reservation: i64, nano_cpus: i64, quota: i64, period: i64, shares: i64) -> Result<()> {
    if memory < 0 {
        return Err(Error::invalid("invalid memory limit: must be a positive number"));
    }
    if memory > 0 && memory < 6 * 1024 * 1024 {
        return Err(Error::invalid("Minimum memory limit allowed is 6MB"));
    }
    if memory > 0 && swap > 0 && swap < memory {
        return Err(Error::invalid("Minimum memoryswap limit should be larger than memory limit, see usage"));
    }
    if memory == 0 && swap > 0 {
        return Err(Error::invalid("You should always set the Memory limit when using Memoryswap limit, see usage"));
    }
    if reservation < 0 || (memory > 0 && reservation > memory) {
        return Err(Error::invalid("Minimum memory limit can not be less than memory reservation limit, see usage"));
    }
    if nano_cpus < 0 {
        return Err(Error::invalid("Range of CPUs is from 0.01 to the number of CPUs available"));
    }
    if nano_cpus > 0 && (quota > 0 || period > 0) {
        return Err(Error::invalid("Conflicting options: Nano CPUs and CPU Period cannot both be set"));
    }
    if nano_cpus > 0 {
        let ncpu = std::thread::available_parallelism().map(|n| n.get() as i64).unwrap_or(1);
        if nano_cpus < 10_000_000 || nano_cpus > ncpu * 1_000_000_000 {
            return Err(Error::invalid(format!("Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")));
        }
    }
    if period != 0 && !(1000..=1_000_000).contains(&period) {
        return Err(Error::invalid("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"));
    }
    if quota > 0 && quota < 1000 {
        return Err(Error::invalid("CPU cfs quota can not be less than 1ms (i.e. 1000)"));
    }
    if shares < 0 {
        return Err(Error::invalid("invalid CPU shares: must be a positive number"));
    }
    Ok(())
}

/// Only namespaced sysctls may be set, as Docker allows them.
fn validate_sysctl(key: &str, hc: &HostConfig) -> Result<()> {
    const IPC: &[&str] = &["kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"];
    let ok = if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        hc.ipc_mode != "host"
    } else if key.starts_with("net.") {
        hc.network_mode != "host"
    } else {
        key == "kernel.domainname" || key == "kernel.hostname"
    };
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!("sysctl '{key}' is not allowed")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_follow_docker_rules() {
        let mut hc = HostConfig::default();
        assert_eq!(capabilities(&hc).unwrap().len(), 14);
        hc.cap_add = Some(vec!["net_admin".into()]);
        hc.cap_drop = Some(vec!["CAP_MKNOD".into(), "chown".into()]);
        let c = capabilities(&hc).unwrap();
        assert!(c.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!c.contains(&"CAP_MKNOD".to_string()));
        assert!(!c.contains(&"CAP_CHOWN".to_string()));
        hc.cap_drop = Some(vec!["ALL".into()]);
        hc.cap_add = Some(vec!["KILL".into()]);
        assert_eq!(capabilities(&hc).unwrap(), vec!["CAP_KILL".to_string()]);
        hc.cap_add = Some(vec!["BOGUS".into()]);
        let e = capabilities(&hc).unwrap_err();
        assert_eq!(e.message, "invalid CapAdd: unknown capability: \"CAP_BOGUS\"");
    }

    #[test]
    fn rootless_refuses_every_limit_by_its_flag() {
        assert_eq!(rootless_limit(&HostConfig::default()), None);
        let mut hc = HostConfig { memory: 10 << 20, ..Default::default() };
        assert_eq!(rootless_limit(&hc), Some("--memory"));
        hc = HostConfig { nano_cpus: 500_000_000, ..Default::default() };
        assert_eq!(rootless_limit(&hc), Some("--cpus"));
        hc = HostConfig { pids_limit: Some(10), ..Default::default() };
        assert_eq!(rootless_limit(&hc), Some("--pids-limit"));
        // 0 and -1 are "unlimited": nothing to refuse.
        hc = HostConfig { pids_limit: Some(-1), memory_swappiness: Some(-1), ..Default::default() };
        assert_eq!(rootless_limit(&hc), None);
        hc = HostConfig { cpuset_cpus: "0".into(), ..Default::default() };
        assert_eq!(rootless_limit(&hc), Some("--cpuset-cpus"));
        let e = rootless_limit_error("--memory");
        assert!(e.message.starts_with("--memory: resource limits are not supported in rootless mode") && !e.message.contains('\n'));
    }

    #[test]
    fn resources_and_validation() {
        let mut hc = HostConfig { memory: 64 << 20, nano_cpus: 500_000_000, pids_limit: Some(10), ..Default::default() };
        let r = resources(&hc).unwrap();
        assert_eq!(r["memory"]["limit"], 64 << 20);
        assert_eq!(r["memory"]["swap"], 128 << 20);
        assert_eq!(r["cpu"]["quota"], 50_000);
        assert_eq!(r["pids"]["limit"], 10);
        hc.memory = 1024;
        assert!(resources(&hc).unwrap_err().message.contains("Minimum memory limit"));
    }

    #[test]
    fn spec_parses_as_oci() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("etc")).unwrap();
        std::fs::write(tmp.path().join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        let mut rec = ContainerRecord { id: "abc".into(), path: "sh".into(), ..Default::default() };
        rec.host_config.tmpfs = Some([("/run".to_string(), "size=1m,exec".to_string())].into_iter().collect());
        let spec = build(
            &rec,
            &SpecInputs { rootfs: tmp.path(), netns: Some("/run/x".into()), cgroup_parent: "/berth", pid_ns_of: None, ipc_ns_of: None, cgroup_v2: false, seccomp: None, hostname: "abc".into(), shm: None, userns: None, idmapped: Default::default() },
        )
        .unwrap();
        let parsed: oci_spec::runtime::Spec = serde_json::from_value(spec.clone()).unwrap();
        assert_eq!(parsed.hostname().as_deref(), Some("abc"));
        assert_eq!(spec["linux"]["cgroupsPath"], "/berth/abc");
        let run = spec["mounts"].as_array().unwrap().iter().find(|m| m["destination"] == "/run").unwrap();
        assert!(run["options"].as_array().unwrap().contains(&json!("exec")));
        assert!(!run["options"].as_array().unwrap().contains(&json!("noexec")));
    }
}
