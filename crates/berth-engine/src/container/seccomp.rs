//! berth's default seccomp profile, in the OCI form the runtime takes. It follows the
//! shape of Docker's default: deny (EPERM) by default, allow the system calls ordinary
//! programs make, allow the dangerous ones only with the capability that makes them
//! legitimate (mount, module loading, kexec, bpf, ptrace of others, keyctl and
//! namespace creation stay blocked without it), and answer clone3 with ENOSYS so libc
//! falls back to clone, whose namespace flags can be inspected.
//! `--security-opt seccomp=<file>` replaces it with a Docker-format profile and
//! `seccomp=unconfined` turns it off.

use serde_json::{Value, json};

use crate::error::{Error, Result};

const ALLOWED: &[&str] = &[
    "accept", "accept4", "access", "adjtimex", "alarm", "arch_prctl", "bind", "brk", "cachestat", "capget", "capset",
    "chdir", "chmod", "chown", "chown32", "chroot", "clock_adjtime", "clock_adjtime64", "clock_getres",
    "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64", "close",
    "close_range", "connect", "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1",
    "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2",
    "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate",
    "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64",
    "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr", "fstat", "fstat64",
    "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futex", "futex_requeue", "futex_time64",
    "futex_wait", "futex_waitv", "futex_wake", "futimesat", "get_mempolicy", "get_robust_list", "get_thread_area", "getcpu", "getcwd",
    "getdents", "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups",
    "getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom",
    "getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit", "getrusage", "getsid", "getsockname",
    "getsockopt", "gettid", "gettimeofday", "getuid", "getuid32", "getxattr", "inotify_add_watch", "inotify_init",
    "inotify_init1", "inotify_rm_watch", "io_cancel", "io_destroy", "io_getevents", "io_pgetevents",
    "io_pgetevents_time64", "io_setup", "io_submit", "ioctl", "ioprio_get", "ioprio_set", "ipc", "kill",
    "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lchown32", "lgetxattr", "link",
    "linkat", "listen", "listxattr", "llistxattr", "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64",
    "madvise", "map_shadow_stack", "membarrier", "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod",
    "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "modify_ldt", "mprotect", "mq_getsetattr", "mq_notify",
    "mq_open", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink",
    "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall", "munmap", "nanosleep",
    "newfstatat", "_newselect", "open", "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2",
    "pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv",
    "preadv2", "prlimit64", "process_mrelease", "pselect6", "pselect6_time64", "ptrace", "pwrite64", "pwritev", "pwritev2",
    "read", "readahead", "readlink", "readlinkat", "readv", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64",
    "recvmsg", "remap_file_pages", "removexattr", "rename", "renameat", "renameat2", "restart_syscall", "rmdir", "rseq",
    "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
    "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_get_priority_max",
    "sched_get_priority_min", "sched_getaffinity", "sched_getattr", "sched_getparam", "sched_getscheduler",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr", "sched_setparam",
    "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl", "semget", "semop", "semtimedop",
    "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto", "set_robust_list",
    "set_thread_area", "set_tid_address", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32",
    "setgroups", "setgroups32", "setitimer", "setpgid", "setpriority", "setregid", "setregid32", "setresgid",
    "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32", "setrlimit", "setsid", "setsockopt", "setuid",
    "setuid32", "setxattr", "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4",
    "sigprocmask", "sigreturn", "socket", "socketcall", "socketpair", "splice", "stat", "stat64", "statfs", "statfs64",
    "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time",
    "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime",
    "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
    "timerfd_settime64", "times", "tkill", "truncate", "truncate64", "ugetrlimit", "umask", "uname", "unlink",
    "unlinkat", "utime", "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid",
    "write", "writev",
];

/// System calls allowed only with a capability.
const BY_CAPABILITY: &[(&str, &[&str])] = &[
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick", "lookup_dcookie", "mount",
            "mount_setattr", "move_mount", "name_to_handle_at", "open_tree", "perf_event_open", "quotactl",
            "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount", "umount2", "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_MODULE", &["delete_module", "init_module", "finit_module"]),
    ("CAP_SYS_PACCT", &["acct"]),
    ("CAP_SYS_PTRACE", &["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev"]),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    ("CAP_SYS_TIME", &["settimeofday", "stime", "clock_settime", "clock_settime64"]),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    ("CAP_SYS_NICE", &["mbind", "set_mempolicy", "set_mempolicy_home_node"]),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// Namespace flags clone(2) may not carry without CAP_SYS_ADMIN:
/// NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

const ENOSYS: i64 = 38;
const EPERM: i64 = 1;

fn architectures() -> Value {
    if cfg!(target_arch = "aarch64") {
        json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
    } else {
        json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
    }
}

/// The default profile for a container holding `caps`.
pub fn default_profile(caps: &[String]) -> Value {
    let has = |c: &str| caps.iter().any(|x| x == c);
    let mut names: Vec<&str> = ALLOWED.to_vec();
    for (cap, calls) in BY_CAPABILITY {
        if has(cap) {
            names.extend_from_slice(calls);
        }
    }
    names.sort_unstable();
    names.dedup();
    let mut syscalls = vec![json!({"names": names, "action": "SCMP_ACT_ALLOW"})];
    // personality(2): only the harmless personas.
    syscalls.push(json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]}));
    for persona in [0x8u64, 0x20000, 0x20008, 0xffff_ffff] {
        syscalls.push(json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": persona, "op": "SCMP_CMP_EQ"}]}));
    }
    if !has("CAP_SYS_ADMIN") {
        syscalls.push(json!({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}));
        syscalls.push(json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS}));
    }
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EPERM,
        "architectures": architectures(),
        "syscalls": syscalls,
    })
}

/// A Docker-format profile (`--security-opt seccomp=profile.json`) in OCI form.
/// Docker's files carry `archMap`, `includes`/`excludes` conditions and `names`; the
/// conditions on capabilities are honoured, the rest is passed through.
pub fn from_docker_profile(data: &[u8], caps: &[String]) -> Result<Value> {
    let v: Value = serde_json::from_slice(data).map_err(|e| Error::invalid(format!("Decoding seccomp profile failed: {e}")))?;
    let default_action = v
        .get("defaultAction")
        .and_then(|a| a.as_str())
        .ok_or_else(|| Error::invalid("Decoding seccomp profile failed: defaultAction is missing"))?;
    let mut out = json!({"defaultAction": default_action});
    if let Some(e) = v.get("defaultErrnoRet") {
        out["defaultErrnoRet"] = e.clone();
    }
    let arches = match v.get("architectures").and_then(|a| a.as_array()) {
        Some(a) if !a.is_empty() => Value::Array(a.clone()),
        _ => match v.get("archMap").and_then(|m| m.as_array()) {
            Some(map) => {
                let mut list = Vec::new();
                for m in map {
                    if let Some(a) = m.get("architecture") {
                        list.push(a.clone());
                    }
                    if let Some(subs) = m.get("subArchitectures").and_then(|s| s.as_array()) {
                        list.extend(subs.iter().cloned());
                    }
                }
                Value::Array(list)
            }
            None => architectures(),
        },
    };
    out["architectures"] = arches;
    let mut syscalls = Vec::new();
    for rule in v.get("syscalls").and_then(|s| s.as_array()).cloned().unwrap_or_default() {
        let cond_caps = |key: &str| -> Vec<String> {
            rule.get(key).and_then(|c| c.get("caps")).and_then(|c| c.as_array()).map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect()).unwrap_or_default()
        };
        let inc = cond_caps("includes");
        let exc = cond_caps("excludes");
        if !inc.iter().all(|c| caps.contains(c)) || exc.iter().any(|c| caps.contains(c)) {
            continue;
        }
        let mut names: Vec<Value> = rule.get("names").and_then(|n| n.as_array()).cloned().unwrap_or_default();
        if let Some(n) = rule.get("name") {
            names.push(n.clone());
        }
        let action = rule.get("action").cloned().ok_or_else(|| Error::invalid("Decoding seccomp profile failed: a rule has no action"))?;
        let mut r = json!({"names": names, "action": action});
        for k in ["args", "errnoRet"] {
            if let Some(x) = rule.get(k)
                && !x.is_null() {
                    r[k] = x.clone();
                }
        }
        syscalls.push(r);
    }
    out["syscalls"] = Value::Array(syscalls);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dangerous_calls_need_their_capability() {
        let p = default_profile(&["CAP_CHOWN".into()]);
        let allowed = p["syscalls"][0]["names"].as_array().unwrap();
        for call in ["mount", "kexec_load", "init_module", "bpf", "keyctl", "add_key", "unshare", "setns", "reboot"] {
            assert!(!allowed.contains(&json!(call)), "{call} must not be allowed");
        }
        assert!(allowed.contains(&json!("read")));
        let p = default_profile(&["CAP_SYS_ADMIN".into()]);
        assert!(p["syscalls"][0]["names"].as_array().unwrap().contains(&json!("mount")));
        let _: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(default_profile(&[])).unwrap();
    }

    #[test]
    fn docker_profile_conditions() {
        let prof = br#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":1},
            {"names":["chmod"],"action":"SCMP_ACT_ERRNO","excludes":{"caps":["CAP_FOWNER"]}}]}"#;
        let p = from_docker_profile(prof, &["CAP_FOWNER".into()]).unwrap();
        assert_eq!(p["syscalls"].as_array().unwrap().len(), 1);
        assert_eq!(p["syscalls"][0]["names"][0], "mkdir");
        assert!(from_docker_profile(b"{}", &[]).is_err());
    }
}
