//! `create` and `run`: plan from config.json, make the cgroup and state, clone the init
//! into its namespaces and wait for it to be ready (see the crate docs for the protocol).

use std::path::Path;

use nix::fcntl::{OFlag, open};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType};

use crate::cgroups::{self, Layout};
use crate::container::{CreateGuard, CreateOptions, await_child_report, clone_child_into, connect_console, write_pid_file};
use crate::error::{Context, Error, Result};
use crate::init::{ChildConfig, ContainerInit, child_main};
use crate::ipc;
use crate::namespaces::{self, NamespacePlan};
use crate::process::{self, ProcessPlan};
use crate::rootfs::RootfsPlan;
use crate::state::{self, EXEC_FIFO, Record, State, Status};
use crate::Runtime;

/// The device cgroup rules runc always allows (the standard nodes and ptys), after the
/// spec's own rules.
fn default_device_rules() -> Vec<LinuxDeviceCgroup> {
    let rule = |t: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut b = LinuxDeviceCgroupBuilder::default().allow(true).typ(t).access(access);
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().unwrap_or_default()
    };
    vec![
        rule(LinuxDeviceType::C, None, None, "m"),
        rule(LinuxDeviceType::B, None, None, "m"),
        rule(LinuxDeviceType::C, Some(1), Some(3), "rwm"),
        rule(LinuxDeviceType::C, Some(1), Some(5), "rwm"),
        rule(LinuxDeviceType::C, Some(1), Some(7), "rwm"),
        rule(LinuxDeviceType::C, Some(1), Some(8), "rwm"),
        rule(LinuxDeviceType::C, Some(1), Some(9), "rwm"),
        rule(LinuxDeviceType::C, Some(5), Some(0), "rwm"),
        rule(LinuxDeviceType::C, Some(5), Some(1), "rwm"),
        rule(LinuxDeviceType::C, Some(5), Some(2), "rwm"),
        rule(LinuxDeviceType::C, Some(136), None, "rwm"),
        rule(LinuxDeviceType::C, Some(10), Some(200), "rwm"),
    ]
}

/// Drops an allow rule that repeats an earlier identical allow with no deny in between: it
/// changes nothing, but costs a cgroup write (v1) or filter instructions (v2). Docker's
/// spec already lists runc's defaults, which would otherwise all be written twice.
fn without_repeated_allows(rules: Vec<LinuxDeviceCgroup>) -> Vec<LinuxDeviceCgroup> {
    let mut out: Vec<LinuxDeviceCgroup> = Vec::with_capacity(rules.len());
    for r in rules {
        let repeat = r.allow()
            && out.iter().rev().take_while(|k| k.allow()).any(|k| k == &r);
        if !repeat {
            out.push(r);
        }
    }
    out
}

impl Runtime {
    /// runc create: everything up to the user's process, which waits for [`Runtime::start`].
    /// The init is a child of the caller. Returns warnings (e.g. clamped rlimits) with the state.
    pub fn create(&self, id: &str, bundle: &Path, opts: CreateOptions) -> Result<State> {
        self.create_inner(id, bundle, opts, true)
    }

    /// create + start in one step (no exec fifo); the caller waits for the returned pid.
    pub fn run(&self, id: &str, bundle: &Path, opts: CreateOptions) -> Result<State> {
        self.create_inner(id, bundle, opts, false)
    }

    fn create_inner(&self, id: &str, bundle: &Path, mut opts: CreateOptions, wait_start: bool) -> Result<State> {
        state::validate_id(id)?;
        let bundle = std::fs::canonicalize(bundle)
            .map_err(|e| Error::InvalidSpec(format!("bundle {}: {e}", bundle.display())))?;
        let spec = crate::spec::load(&bundle)?;
        let process_spec = spec.process().as_ref().ok_or_else(|| Error::InvalidSpec("process is missing".into()))?;
        let (process, warnings) = ProcessPlan::from_spec(process_spec)?;
        for w in &warnings {
            eprintln!("berth runtime: warning: {w}");
        }
        let ns = NamespacePlan::from_spec(&spec)?;
        crate::hooks::check(&spec)?;
        let linux = spec.linux().clone().unwrap_or_default();
        let seccomp = linux.seccomp().as_ref().map(|s| self.seccomp_program(s)).transpose()?;
        let personality = process::personality(&spec)?;
        let pid1 = crate::pid1::wanted(&spec)?;
        let pause = crate::pause::wanted(&spec)?;
        let mut resources = linux.resources().clone().unwrap_or_default();
        cgroups::validate(&resources)?;
        // Rootless (this runtime in a user namespace of its caller's) and the spec names
        // no cgroup: run without one, as runc --rootless does when it has no delegated
        // hierarchy; the host's cgroupfs is not ours to write. Limits are then refused.
        let rootless = cgroups::in_user_namespace();
        let layout = match &self.layout {
            Some(l) => l.clone(),
            None if rootless && linux.cgroups_path().as_ref().is_none_or(|p| p.as_os_str().is_empty()) => Layout::Disabled,
            None => Layout::detect_once()?,
        };
        let cgroup_path = if layout == Layout::Disabled { String::new() } else { cgroups::normalize_path(linux.cgroups_path().as_deref(), id)? };
        let cgroup = cgroups::manager(&layout, &cgroup_path);
        if layout == Layout::Disabled && cgroups::has_limits(&resources) {
            return Err(Error::Unsupported(
                "resource limits need a cgroup: this runtime runs rootless without a delegated cgroup v2 hierarchy (set linux.cgroupsPath to a writable one)".into(),
            ));
        }
        let rootfs = RootfsPlan::from_spec(
            &spec,
            &bundle,
            // Device nodes cannot be made and sysfs may not be mountable in a user
            // namespace, whether the spec asks for a new one or this runtime runs in one.
            ns.has_user() || rootless,
            opts.no_pivot,
            (layout != Layout::Disabled).then(|| cgroup.view(ns.new_cgroup)),
        )?;
        if process.terminal && opts.console_socket.is_none() && opts.console_stream.is_none() {
            return Err(Error::InvalidSpec(
                "process.terminal is true but no console socket was given (--console-socket)".into(),
            ));
        }
        if let Some(devs) = resources.devices().clone() {
            let mut all = devs;
            for d in &rootfs.devices {
                let typ = if d.kind == nix::sys::stat::SFlag::S_IFBLK { LinuxDeviceType::B } else { LinuxDeviceType::C };
                // A device the spec has its own rule for keeps that rule's access (docker
                // run --device /dev/x:/dev/x:r); the others are usable in full.
                let ruled = all.iter().any(|r| {
                    r.typ() == Some(typ) && r.major() == Some(d.major as i64) && r.minor() == Some(d.minor as i64)
                });
                if ruled {
                    continue;
                }
                if let Ok(r) = LinuxDeviceCgroupBuilder::default()
                    .allow(true)
                    .typ(typ)
                    .major(d.major as i64)
                    .minor(d.minor as i64)
                    .access("rwm")
                    .build()
                {
                    all.push(r);
                }
            }
            all.extend(default_device_rules());
            resources.set_devices(Some(without_repeated_allows(all)));
        }

        crate::phases::mark("plan");
        // From here on every step is undone if a later one fails.
        std::fs::create_dir_all(self.root()).ctx(|| format!("create state root {}", self.root().display()))?;
        let dir = self.dir(id);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(Error::AlreadyExists(id.into())),
            Err(e) => return Err(Error::io(format!("create {}", dir.display()), e)),
        }
        let mut guard = CreateGuard { dir: Some(dir.clone()), cgroup: None, child: None };
        if cgroup.exists() {
            // Somebody else's cgroup: never adopt (and later delete) it.
            return Err(Error::AlreadyExists(format!("{id} (cgroup {cgroup_path} already exists)")));
        }
        cgroup.create()?;
        guard.cgroup = Some(cgroup.as_ref());
        cgroup.set(&resources)?;
        crate::phases::mark("cgroup");

        let fifo = if wait_start {
            let p = dir.join(EXEC_FIFO);
            nix::unistd::mkfifo(&p, Mode::from_bits_truncate(0o622)).ctx(|| "create exec fifo".into())?;
            Some(open(&p, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()).ctx(|| "open exec fifo".into())?)
        } else {
            None
        };
        let console = if process.terminal {
            connect_console(opts.console_socket.as_deref(), opts.console_stream.take())?
        } else {
            None
        };
        let (parent_sock, child_sock) = ipc::pair()?;
        let hostname = spec.hostname().clone();
        let domainname = spec.domainname().clone();
        // With a user namespace to join, the helper that clones the init enters the pid
        // namespace (see `clone_in_userns`); otherwise this process does, for its child.
        let joins_user = ns.join.iter().any(|(f, _)| *f == CloneFlags::CLONE_NEWUSER);
        let mut helper_pidns = None;
        let own_pidns = match &ns.join_pid {
            Some(path) if joins_user => {
                helper_pidns = Some(open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).ctx(|| format!("open pid namespace {}", path.display()))?);
                None
            }
            Some(path) => {
                let own = open("/proc/self/ns/pid", OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                    .ctx(|| "open own pid namespace".into())?;
                let target = open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                    .ctx(|| format!("open pid namespace {}", path.display()))?;
                nix::sched::setns(&target, CloneFlags::CLONE_NEWPID)
                    .ctx(|| format!("join pid namespace {}", path.display()))?;
                Some(own)
            }
            None => None,
        };
        let mut join_fds = Vec::new();
        for (flag, path) in ns.join.iter().filter(|(f, _)| *f != CloneFlags::CLONE_NEWUSER) {
            let fd = open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).ctx(|| format!("open namespace {}", path.display()))?;
            join_fds.push((*flag, fd));
        }
        let oom_score_adj = process.oom_score_adj;
        let preserve_fds = opts.preserve_fds;
        let child_cfg = ChildConfig {
            container: Some(ContainerInit {
                ns: ns.clone(),
                rootfs: rootfs.clone(),
                hostname,
                domainname,
                keyring: (!opts.no_new_keyring).then(|| format!("_ses.{id}")),
                fifo,
                pid1,
                pause,
                join_fds,
            }),
            join: Vec::new(),
            process,
            seccomp,
            console,
            stdio: opts.stdio.take(),
            preserve_fds,
            personality,
            sync: child_sock,
                // Inside a user namespace the child's writes to the host's cgroupfs are not
            // worth reasoning about: a joined one's helper moves itself there before it
            // enters (see `clone_in_userns`), else the parent moves the child.
            cgroup: (matches!(layout, Layout::V1 { .. }) && !ns.has_user()).then(|| cgroups::manager(&layout, &cgroup_path)),
            is_exec: false,
        };
        let child_joins_cgroup = child_cfg.cgroup.is_some();
        // A user namespace to join is entered before the clone (by a helper), so that the
        // init's new namespaces belong to it; the parent then puts the init in its cgroup.
        let userns = ns.join.iter().find(|(f, _)| *f == CloneFlags::CLONE_NEWUSER).map(|(_, p)| p.clone());
        let clone_target = if child_joins_cgroup || userns.is_some() { None } else { cgroup.clone_target() };
        let cloned = match &userns {
            Some(path) => match open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).ctx(|| format!("open user namespace {}", path.display())) {
                // SAFETY: create/run are documented as single-threaded-caller only.
                Ok(fd) => {
                    let helper_cgroup = matches!(layout, Layout::V1 { .. }).then(|| cgroups::manager(&layout, &cgroup_path));
                    unsafe { crate::container::clone_in_userns(std::os::fd::AsFd::as_fd(&fd), helper_pidns.as_ref().map(std::os::fd::AsFd::as_fd), ns.clone_flags, helper_cgroup.as_deref()) }
                        .map(|(pid, root, born)| (pid, born, root))
                }
                Err(e) => Err(e),
            },
            // SAFETY: create/run are documented as single-threaded-caller only.
            None => unsafe { clone_child_into(ns.clone_flags, clone_target.as_ref().map(std::os::fd::AsFd::as_fd)) }.map(|(pid, born)| {
                let root = |m: &[oci_spec::runtime::LinuxIdMapping]| m.iter().find(|m| m.container_id() == 0 && m.size() > 0).map(|m| m.host_id());
                (pid, born, ns.new_user().then(|| root(&ns.uid_mappings).zip(root(&ns.gid_mappings))).flatten())
            }),
        };
        if let Some(own) = own_pidns {
            let _ = nix::sched::setns(&own, CloneFlags::CLONE_NEWPID);
        }
        let (pid, born_in_cgroup, userns_root) = cloned?;
        if pid == 0 {
            drop(parent_sock);
            child_main(child_cfg);
        }
        guard.child = Some(pid);
        drop(child_cfg);
        crate::phases::mark("clone");

        if ns.new_user() {
            std::fs::write(format!("/proc/{pid}/uid_map"), namespaces::id_map_text(&ns.uid_mappings))
                .ctx(|| "write uid_map".into())?;
            std::fs::write(format!("/proc/{pid}/gid_map"), namespaces::id_map_text(&ns.gid_mappings))
                .ctx(|| "write gid_map".into())?;
        }
        if !child_joins_cgroup && !born_in_cgroup {
            cgroup.add(pid)?;
        }
        // The init opens the exec fifo as its user namespace's root, whose capabilities
        // do not reach files of ids it does not map: the fifo becomes that root's.
        if let (true, Some((uid, gid))) = (wait_start, userns_root) {
            std::os::unix::fs::chown(dir.join(EXEC_FIFO), Some(uid), Some(gid)).ctx(|| "hand the exec fifo to the user namespace's root".into())?;
        }
        if let Some(adj) = oom_score_adj {
            std::fs::write(format!("/proc/{pid}/oom_score_adj"), adj.to_string()).map_err(|e| {
                if e.raw_os_error() == Some(libc::EACCES) || e.raw_os_error() == Some(libc::EPERM) {
                    Error::Unsupported(format!("oomScoreAdj {adj}: lowering it needs CAP_SYS_RESOURCE"))
                } else {
                    Error::io("write oom_score_adj", e)
                }
            })?;
        }
        ipc::send(&parent_sock, ipc::MSG_GO, b"")?;
        let Some(report) = await_child_report(&parent_sock, Error::Init)? else {
            return Err(Error::Init("the container init exited during setup".into()));
        };
        // The init's own setup: its namespaces' mounts, devices, pivot_root, seccomp;
        // then its own account of it (`init.*`).
        crate::phases::mark("init");
        crate::phases::add_reported("init", &report);
        let start_time = state::proc_stat(pid)
            .map(|s| s.start_time)
            .ok_or_else(|| Error::Init("the container init exited during setup".into()))?;
        let record = Record {
            id: id.to_string(),
            bundle: bundle.clone(),
            rootfs: rootfs.rootfs.clone(),
            created: state::now_rfc3339(),
            pid,
            start_time,
            cgroup_path,
            cgroup_layout: layout,
            spec,
        };
        let mut creating = self.state_of(&record);
        creating.status = Status::Creating;
        creating.pid = pid;
        crate::hooks::run(&record.spec, crate::hooks::Stage::Create, &creating)?;
        record.save(&dir)?;
        if let Some(p) = &opts.pid_file {
            write_pid_file(p, pid)?;
        }
        guard.disarm();
        crate::phases::mark("record");
        let mut state = self.state_of(&record);
        // A process that already exited still has its pid for the caller to reap (state()
        // reports 0 for a stopped container, as runc does, but the creator needs it).
        state.pid = pid;
        if !wait_start {
            self.poststart(&record)?;
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(allow: bool, major: Option<i64>, access: &str) -> LinuxDeviceCgroup {
        let mut b = LinuxDeviceCgroupBuilder::default().allow(allow).access(access);
        if let Some(m) = major {
            b = b.typ(LinuxDeviceType::C).major(m).minor(3);
        }
        b.build().unwrap()
    }

    #[test]
    fn repeated_allows_go_unless_a_deny_separates_them() {
        let deny_all = rule(false, None, "rwm");
        let null = rule(true, Some(1), "rwm");
        let tty = rule(true, Some(5), "rwm");
        // Docker's list followed by runc's defaults: the second copies change nothing.
        let rules = vec![deny_all.clone(), null.clone(), tty.clone(), null.clone(), tty.clone()];
        assert_eq!(without_repeated_allows(rules), vec![deny_all.clone(), null.clone(), tty.clone()]);
        // A deny after the first allow makes the later allow meaningful again.
        let deny_null = rule(false, Some(1), "rwm");
        let rules = vec![null.clone(), deny_null.clone(), null.clone()];
        assert_eq!(without_repeated_allows(rules.clone()), rules);
        // Same device, different access: not a repeat.
        let null_r = rule(true, Some(1), "r");
        assert_eq!(without_repeated_allows(vec![null.clone(), null_r.clone()]), vec![null, null_r]);
        // The defaults are all kept when the spec has none of them.
        assert_eq!(without_repeated_allows(default_device_rules()), default_device_rules());
    }
}
