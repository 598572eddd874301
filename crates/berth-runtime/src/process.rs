//! The container process's identity and limits: args, env, user, capabilities, rlimits,
//! no_new_privileges (seccomp is [`crate::seccomp`]). Planned from the spec in the parent
//! (where errors are easy to report and test), applied in the child right before execve.

use std::collections::HashSet;
use std::ffi::CString;
use std::path::PathBuf;
use std::str::FromStr;

use caps::{CapSet, Capability};
use oci_spec::runtime::Process;

use crate::error::{Error, Result};

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The five capability sets; `None` leaves a set as the kernel has it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CapsPlan {
    pub bounding: HashSet<Capability>,
    pub effective: HashSet<Capability>,
    pub permitted: HashSet<Capability>,
    pub inheritable: HashSet<Capability>,
    pub ambient: HashSet<Capability>,
}

/// One resource limit as it will be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    pub resource: i32,
    pub soft: u64,
    pub hard: u64,
}

/// Everything about the process to run.
#[derive(Debug, Clone)]
pub struct ProcessPlan {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: Option<u32>,
    pub caps: CapsPlan,
    pub rlimits: Vec<Rlimit>,
    pub no_new_privileges: bool,
    pub terminal: bool,
    pub console_size: Option<(u16, u16)>,
    pub oom_score_adj: Option<i32>,
    /// ioprio_set(2) value: class << 13 | priority.
    pub io_priority: Option<i32>,
    pub scheduler: Option<SchedAttr>,
}

/// struct sched_attr for sched_setattr(2).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedAttr {
    pub size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
}

fn cap_set(list: Option<&oci_spec::runtime::Capabilities>) -> Result<HashSet<Capability>> {
    let mut out = HashSet::new();
    for c in list.into_iter().flatten() {
        let name = serde_json::to_value(c)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        match Capability::from_str(&name) {
            Ok(cap) => {
                out.insert(cap);
            }
            Err(_) => return Err(Error::InvalidSpec(format!("unknown capability {name:?}"))),
        }
    }
    Ok(out)
}

/// The RLIMIT_* number for a spec name.
pub fn rlimit_resource(name: &str) -> Option<i32> {
    Some(match name {
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        _ => return None,
    } as i32)
}

/// Decides the limits to set. Without CAP_SYS_RESOURCE a hard limit cannot be raised:
/// then the request is clamped to the current hard limit (the process gets less than
/// asked, never more, so this is safe) and a warning says so.
pub fn plan_rlimits(
    requested: &[(String, u64, u64)],
    current_hard: impl Fn(i32) -> u64,
    can_raise: bool,
) -> Result<(Vec<Rlimit>, Vec<String>)> {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for (name, soft, hard) in requested {
        let resource = rlimit_resource(name)
            .ok_or_else(|| Error::InvalidSpec(format!("unknown rlimit type {name:?}")))?;
        if soft > hard {
            return Err(Error::InvalidSpec(format!(
                "rlimit {name}: soft limit {soft} is above the hard limit {hard}"
            )));
        }
        let (mut soft, mut hard) = (*soft, *hard);
        let cur = current_hard(resource);
        if !can_raise && hard > cur {
            warnings.push(format!(
                "rlimit {name}: hard limit {hard} clamped to {cur} (raising it needs CAP_SYS_RESOURCE, which this runtime lacks)"
            ));
            hard = cur;
            soft = soft.min(hard);
        }
        out.push(Rlimit { resource, soft, hard });
    }
    Ok((out, warnings))
}

fn current_hard(resource: i32) -> u64 {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: r is a valid rlimit the kernel fills in; resource comes from our table.
    if unsafe { libc::getrlimit(resource as _, &mut r) } != 0 {
        return u64::MAX;
    }
    r.rlim_max
}

impl ProcessPlan {
    /// Reads spec.process. Returns the plan and warnings (clamped rlimits).
    pub fn from_spec(p: &Process) -> Result<(Self, Vec<String>)> {
        let args = p.args().clone().unwrap_or_default();
        if args.is_empty() || args[0].is_empty() {
            return Err(Error::InvalidSpec("process.args must name a program".into()));
        }
        if !p.cwd().is_absolute() {
            return Err(Error::InvalidSpec(format!("process.cwd {} is not absolute", p.cwd().display())));
        }
        let env = p.env().clone().unwrap_or_default();
        for s in args.iter().chain(env.iter()) {
            if s.contains('\0') {
                return Err(Error::InvalidSpec(format!("{s:?} contains a NUL byte")));
            }
        }
        let caps = match p.capabilities() {
            Some(c) => CapsPlan {
                bounding: cap_set(c.bounding().as_ref())?,
                effective: cap_set(c.effective().as_ref())?,
                permitted: cap_set(c.permitted().as_ref())?,
                inheritable: cap_set(c.inheritable().as_ref())?,
                ambient: cap_set(c.ambient().as_ref())?,
            },
            None => CapsPlan::default(),
        };
        let requested: Vec<(String, u64, u64)> = p
            .rlimits()
            .iter()
            .flatten()
            .map(|r| {
                let name = serde_json::to_value(r.typ())
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                (name, r.soft(), r.hard())
            })
            .collect();
        let can_raise = caps::has_cap(None, CapSet::Effective, Capability::CAP_SYS_RESOURCE).unwrap_or(false);
        let (rlimits, warnings) = plan_rlimits(&requested, current_hard, can_raise)?;
        let user = p.user();
        Ok((
            ProcessPlan {
                args,
                env,
                cwd: p.cwd().clone(),
                uid: user.uid(),
                gid: user.gid(),
                additional_gids: user.additional_gids().clone().unwrap_or_default(),
                umask: user.umask(),
                caps,
                rlimits,
                no_new_privileges: p.no_new_privileges().unwrap_or(false),
                terminal: p.terminal().unwrap_or(false),
                console_size: p.console_size().map(|b| (b.height() as u16, b.width() as u16)),
                oom_score_adj: p.oom_score_adj(),
                io_priority: io_priority(p)?,
                scheduler: scheduler(p)?,
            },
            warnings,
        ))
    }

    pub(crate) fn env_value(&self, key: &str) -> Option<&str> {
        self.env.iter().find_map(|e| e.strip_prefix(key)?.strip_prefix('='))
    }
}

fn io_priority(p: &Process) -> Result<Option<i32>> {
    use oci_spec::runtime::IOPriorityClass;
    let Some(io) = p.io_priority() else { return Ok(None) };
    let class = match io.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    if !(0..=7).contains(&io.priority()) {
        return Err(Error::InvalidSpec(format!("process.ioPriority.priority {} is outside 0..7", io.priority())));
    }
    Ok(Some((class << 13) | io.priority() as i32))
}

fn scheduler(p: &Process) -> Result<Option<SchedAttr>> {
    use oci_spec::runtime::{LinuxSchedulerFlag as F, LinuxSchedulerPolicy as P};
    let Some(s) = p.scheduler() else { return Ok(None) };
    let policy = match s.policy() {
        P::SchedOther => 0,
        P::SchedFifo => 1,
        P::SchedRr => 2,
        P::SchedBatch => 3,
        P::SchedIso => 4,
        P::SchedIdle => 5,
        P::SchedDeadline => 6,
    };
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            F::SchedResetOnFork => 0x01,
            F::SchedFlagReclaim => 0x02,
            F::SchedFlagDLOverrun => 0x04,
            F::SchedFlagKeepPolicy => 0x08,
            F::SchedFlagKeepParams => 0x10,
            F::SchedFlagUtilClampMin => 0x20,
            F::SchedFlagUtilClampMax => 0x40,
        };
    }
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        return Err(Error::InvalidSpec(format!("process.scheduler.nice {nice} is outside -20..19")));
    }
    Ok(Some(SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice,
        priority: s.priority().unwrap_or(0).max(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
    }))
}

/// Sets the scheduling policy of the calling process.
pub(crate) fn apply_scheduler(attr: &SchedAttr) -> Result<()> {
    // SAFETY: sched_setattr(0 = self, attr, 0) reads one sched_attr of attr.size bytes.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, attr as *const SchedAttr, 0) };
    if rc != 0 {
        return Err(Error::io("sched_setattr", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Sets the I/O priority of the calling process.
pub(crate) fn apply_io_priority(value: i32) -> Result<()> {
    // SAFETY: ioprio_set(IOPRIO_WHO_PROCESS, 0 = self, value) takes plain integers.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, value) };
    if rc != 0 {
        return Err(Error::io("ioprio_set", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// linux.personality: the execution domain (LINUX or LINUX32).
pub fn personality(spec: &oci_spec::runtime::Spec) -> Result<Option<u64>> {
    use oci_spec::runtime::LinuxPersonalityDomain;
    let Some(p) = spec.linux().as_ref().and_then(|l| l.personality().as_ref()) else { return Ok(None) };
    if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(Error::Unsupported("linux.personality.flags are not supported".into()));
    }
    Ok(Some(match p.domain() {
        LinuxPersonalityDomain::PerLinux => 0x0000,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    }))
}

/// Sets the execution domain of the calling process.
pub(crate) fn apply_personality(domain: u64) -> Result<()> {
    // SAFETY: personality(2) takes a plain integer persona.
    if unsafe { libc::personality(domain as libc::c_ulong) } < 0 {
        return Err(Error::io("personality", std::io::Error::last_os_error()));
    }
    Ok(())
}

pub(crate) fn cstrings(v: &[String]) -> Result<Vec<CString>> {
    v.iter()
        .map(|s| CString::new(s.as_str()).map_err(|_| Error::InvalidSpec(format!("{s:?} has a NUL byte"))))
        .collect()
}

pub(crate) fn mask(set: &HashSet<Capability>) -> u64 {
    set.iter().fold(0, |m, c| m | c.bitmask())
}

/// capset(2) of all three sets at once: setting them one by one (as the caps crate does)
/// fails whenever the new effective set is not inside the old permitted set.
pub(crate) fn capset(effective: u64, permitted: u64, inheritable: u64) -> std::io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut hdr = Header { version: 0x2008_0522, pid: 0 };
    let data = [
        Data {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        Data {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: header and the two-element data array have the _LINUX_CAPABILITY_VERSION_3
    // layout the kernel reads; both outlive the call.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut Header, data.as_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Sets rlimits (in the child, before giving up privileges).
pub(crate) fn apply_rlimits(limits: &[Rlimit]) -> Result<()> {
    for l in limits {
        let r = libc::rlimit { rlim_cur: l.soft, rlim_max: l.hard };
        // SAFETY: r is a valid rlimit; resource is a known RLIMIT_* number.
        if unsafe { libc::setrlimit(l.resource as _, &r) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EPERM) && crate::cgroups::in_user_namespace() {
                // Root of a user namespace (rootless) cannot raise a hard limit past the
                // one it was given: say so rather than leave a bare EPERM.
                let mut have = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                // SAFETY: have is a valid rlimit to fill.
                unsafe { libc::getrlimit(l.resource as _, &mut have) };
                return Err(Error::Unsupported(format!(
                    "rlimit resource {} to {}/{}: rootless, a hard limit cannot be raised past the daemon's own ({})",
                    l.resource, l.soft, l.hard, have.rlim_max
                )));
            }
            return Err(Error::io(format!("setrlimit resource {} to {}/{}", l.resource, l.soft, l.hard), e));
        }
    }
    Ok(())
}

/// Switches to the spec's user and capability sets. Runs in the child.
pub(crate) fn apply_identity(p: &ProcessPlan) -> Result<()> {
    use nix::unistd::{Gid, Uid, setgroups, setresgid, setresuid};
    let supported = caps::runtime::thread_all_supported();
    // The bounding set must shrink while we still hold CAP_SETPCAP.
    for cap in supported.iter() {
        if !p.caps.bounding.contains(cap) {
            caps::drop(None, CapSet::Bounding, *cap)
                .map_err(|e| Error::Init(format!("drop {cap} from the bounding set: {e}")))?;
        }
    }
    caps::securebits::set_keepcaps(true).map_err(|e| Error::Init(format!("keepcaps: {e}")))?;
    let gids: Vec<Gid> = p.additional_gids.iter().map(|g| Gid::from_raw(*g)).collect();
    setgroups(&gids).map_err(|e| Error::errno("setgroups", e))?;
    let gid = Gid::from_raw(p.gid);
    setresgid(gid, gid, gid).map_err(|e| Error::errno(format!("setresgid {}", p.gid), e))?;
    let uid = Uid::from_raw(p.uid);
    setresuid(uid, uid, uid).map_err(|e| Error::errno(format!("setresuid {}", p.uid), e))?;
    caps::securebits::set_keepcaps(false).map_err(|e| Error::Init(format!("keepcaps: {e}")))?;
    let keep = |s: &HashSet<Capability>| mask(&s.intersection(&supported).copied().collect());
    capset(keep(&p.caps.effective), keep(&p.caps.permitted), keep(&p.caps.inheritable))
        .map_err(|e| Error::io("capset", e))?;
    // An ambient capability needs to be permitted and inheritable; runc skips (with a
    // warning) the ones that are not, and runc's own default spec relies on that.
    for cap in p.caps.ambient.intersection(&supported) {
        if p.caps.permitted.contains(cap) && p.caps.inheritable.contains(cap) {
            caps::raise(None, CapSet::Ambient, *cap)
                .map_err(|e| Error::Init(format!("raise ambient {cap}: {e}")))?;
        }
    }
    Ok(())
}

pub(crate) fn set_no_new_privs() -> Result<()> {
    nix::sys::prctl::set_no_new_privs().map_err(|e| Error::errno("prctl(PR_SET_NO_NEW_PRIVS)", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rlimits_clamp_without_sys_resource() {
        let req = vec![("RLIMIT_NOFILE".to_string(), 2048, 1 << 30), ("RLIMIT_CORE".to_string(), 0, 0)];
        let (l, w) = plan_rlimits(&req, |_| 4096, false).unwrap();
        assert_eq!(l[0], Rlimit { resource: libc::RLIMIT_NOFILE as i32, soft: 2048, hard: 4096 });
        assert_eq!(l[1].hard, 0);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("CAP_SYS_RESOURCE"));
        let (l, w) = plan_rlimits(&req, |_| 4096, true).unwrap();
        assert_eq!(l[0].hard, 1 << 30);
        assert!(w.is_empty());
        let bad = vec![("RLIMIT_NOFILE".to_string(), 10, 5)];
        assert!(plan_rlimits(&bad, |_| 4096, true).is_err());
        let unknown = vec![("RLIMIT_BOGUS".to_string(), 1, 1)];
        assert!(plan_rlimits(&unknown, |_| 4096, true).is_err());
    }

    #[test]
    fn process_plan_reads_caps_and_rejects_bad_process() {
        let spec = crate::spec::default_spec();
        let (p, _) = ProcessPlan::from_spec(spec.process().as_ref().unwrap()).unwrap();
        assert!(p.caps.bounding.contains(&Capability::CAP_KILL));
        assert!(!p.caps.bounding.contains(&Capability::CAP_SYS_ADMIN));
        assert_eq!(p.args, vec!["sh"]);
        let mut proc_ = spec.process().clone().unwrap();
        proc_.set_args(Some(vec![]));
        assert!(ProcessPlan::from_spec(&proc_).is_err());
    }
}
