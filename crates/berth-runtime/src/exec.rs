//! `exec`: a new process in a running container, entering its namespaces and cgroup with
//! the container's seccomp filter.

use oci_spec::runtime::Process;

use nix::fcntl::{OFlag, open};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;

use crate::container::{CreateGuard, ExecOptions, await_child, clone_child_into, connect_console, write_pid_file};
use crate::error::{Context, Error, Result};
use crate::init::{ChildConfig, child_main};
use crate::ipc;
use crate::namespaces::{self, NamespacePlan};
use crate::process::{self, ProcessPlan};
use crate::state::{self, Status};
use crate::Runtime;

impl Runtime {
    /// runc exec: a new process inside a running container. Returns its host pid once it
    /// has exec'd (it is the caller's child), or why it could not.
    pub fn exec(&self, id: &str, process: &Process, mut opts: ExecOptions) -> Result<i32> {
        let rec = self.record(id)?;
        let status = self.status_of(&rec);
        if status != Status::Running && status != Status::Created {
            return Err(Error::WrongState { id: id.into(), status: status.to_string(), what: "exec needs a running container" });
        }
        let (plan, warnings) = ProcessPlan::from_spec(process)?;
        for w in &warnings {
            eprintln!("berth runtime: warning: {w}");
        }
        if plan.terminal && opts.console_socket.is_none() && opts.console_stream.is_none() {
            return Err(Error::InvalidSpec("terminal exec needs a console socket".into()));
        }
        let seccomp = rec
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref())
            .map(|s| self.seccomp_program(s))
            .transpose()?;
        let ns = NamespacePlan::from_spec(&rec.spec)?;
        let mut join = Vec::new();
        let mut pid_ns = None;
        for flag in namespaces::EXEC_ORDER {
            if !ns.has(flag) {
                continue;
            }
            let name = namespaces::proc_name(flag);
            let theirs = format!("/proc/{}/ns/{name}", rec.pid);
            let mine = format!("/proc/self/ns/{name}");
            // Joining the namespace we are already in is an error for user namespaces.
            let same = match (std::fs::metadata(&theirs), std::fs::metadata(&mine)) {
                (Ok(a), Ok(b)) => {
                    use std::os::unix::fs::MetadataExt;
                    a.ino() == b.ino() && a.dev() == b.dev()
                }
                _ => false,
            };
            if same {
                continue;
            }
            let fd = open(theirs.as_str(), OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                .ctx(|| format!("open {theirs}"))?;
            if flag == CloneFlags::CLONE_NEWPID {
                pid_ns = Some(fd);
            } else {
                join.push((flag, fd));
            }
        }
        // The process must still be ours after opening its namespaces (pid reuse).
        if !state::is_alive(rec.pid, rec.start_time) {
            return Err(Error::WrongState { id: id.into(), status: "stopped".into(), what: "exec needs a running container" });
        }
        let console = if plan.terminal {
            connect_console(opts.console_socket.as_deref(), opts.console_stream.take())?
        } else {
            None
        };
        let (parent_sock, child_sock) = ipc::pair()?;
        let own_pidns = match &pid_ns {
            Some(target) => {
                let own = open("/proc/self/ns/pid", OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                    .ctx(|| "open own pid namespace".into())?;
                nix::sched::setns(target, CloneFlags::CLONE_NEWPID).ctx(|| "enter the container's pid namespace".into())?;
                Some(own)
            }
            None => None,
        };
        let cfg = ChildConfig {
            container: None,
            join,
            process: plan,
            seccomp,
            console,
            stdio: opts.stdio.take(),
            preserve_fds: opts.preserve_fds,
            personality: process::personality(&rec.spec)?,
            sync: child_sock,
            cgroup: matches!(rec.cgroup_layout, crate::cgroups::Layout::V1 { .. }).then(|| Self::manager(&rec)),
            is_exec: true,
        };
        let child_joins_cgroup = cfg.cgroup.is_some();
        let clone_target = if child_joins_cgroup { None } else { Self::manager(&rec).clone_target() };
        // SAFETY: exec is documented as single-threaded-caller only.
        let cloned = unsafe { clone_child_into(CloneFlags::empty(), clone_target.as_ref().map(std::os::fd::AsFd::as_fd)) };
        if let Some(own) = own_pidns {
            let _ = nix::sched::setns(&own, CloneFlags::CLONE_NEWPID);
        }
        let (pid, born_in_cgroup) = cloned?;
        if pid == 0 {
            drop(parent_sock);
            child_main(cfg);
        }
        drop(cfg);
        let mut child_guard = CreateGuard { dir: None, cgroup: None, child: Some(pid) };
        if !child_joins_cgroup && !born_in_cgroup {
            Self::manager(&rec).add(pid)?;
        }
        ipc::send(&parent_sock, ipc::MSG_GO, b"")?;
        // Success is silence: the sync socket closes when execve succeeds.
        await_child(&parent_sock, Error::Exec)?;
        if let Some(p) = &opts.pid_file {
            write_pid_file(p, pid)?;
        }
        child_guard.disarm();
        Ok(pid)
    }
}
