//! `berth runtime ...`: runc's command line over [`Runtime`]. Flags, state JSON and exit
//! codes follow runc so a shim can swap runc or crun in for it (errors exit 1; `run` and
//! foreground `exec` exit with the process's status, 128+N for a signal).

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxResources, Process, Spec};

use crate::error::Error;
use crate::{CreateOptions, ExecOptions, Runtime};

#[derive(Parser, Debug)]
#[command(name = "berth runtime", about = "berth's OCI runtime (runc-compatible command line)", version)]
struct Cli {
    /// Root directory for container state.
    #[arg(long, global = true, default_value = crate::DEFAULT_ROOT)]
    root: PathBuf,
    /// Also write errors to this file.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// text or json.
    #[arg(long = "log-format", global = true, default_value = "text")]
    log_format: String,
    #[arg(long, global = true)]
    debug: bool,
    /// Accepted for compatibility; berth drives cgroupfs directly.
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// Accepted for compatibility (runc's --rootless auto|true|false).
    #[arg(long, global = true)]
    rootless: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create a container (its process waits for `start`).
    Create {
        #[arg(long, short = 'b', default_value = ".")]
        bundle: PathBuf,
        #[arg(long = "console-socket")]
        console_socket: Option<PathBuf>,
        #[arg(long = "pid-file")]
        pid_file: Option<PathBuf>,
        #[arg(long = "no-pivot")]
        no_pivot: bool,
        #[arg(long = "no-new-keyring")]
        no_new_keyring: bool,
        #[arg(long = "preserve-fds", default_value_t = 0)]
        preserve_fds: i32,
        id: String,
    },
    /// Start a created container.
    Start { id: String },
    /// Create and start a container, then wait for it (unless --detach).
    Run {
        #[arg(long, short = 'b', default_value = ".")]
        bundle: PathBuf,
        #[arg(long = "console-socket")]
        console_socket: Option<PathBuf>,
        #[arg(long = "pid-file")]
        pid_file: Option<PathBuf>,
        #[arg(long, short = 'd')]
        detach: bool,
        /// Keep the container's state after it exits.
        #[arg(long)]
        keep: bool,
        #[arg(long = "no-pivot")]
        no_pivot: bool,
        #[arg(long = "no-new-keyring")]
        no_new_keyring: bool,
        #[arg(long = "preserve-fds", default_value_t = 0)]
        preserve_fds: i32,
        id: String,
    },
    /// Print a container's state as JSON.
    State { id: String },
    /// Send a signal (default SIGTERM) to the container's init, or to all its processes.
    Kill {
        #[arg(long, short = 'a')]
        all: bool,
        id: String,
        signal: Option<String>,
    },
    /// Delete a container's state and cgroup.
    Delete {
        #[arg(long, short = 'f')]
        force: bool,
        id: String,
    },
    /// Run a new process inside a running container.
    Exec {
        #[arg(long = "console-socket")]
        console_socket: Option<PathBuf>,
        #[arg(long)]
        cwd: Option<PathBuf>,
        #[arg(long, short = 'e')]
        env: Vec<String>,
        #[arg(long, short = 't')]
        tty: bool,
        /// uid[:gid]
        #[arg(long, short = 'u')]
        user: Option<String>,
        #[arg(long = "additional-gids", short = 'g')]
        additional_gids: Vec<u32>,
        /// A process.json to run instead of the command line.
        #[arg(long, short = 'p')]
        process: Option<PathBuf>,
        #[arg(long, short = 'd')]
        detach: bool,
        #[arg(long = "pid-file")]
        pid_file: Option<PathBuf>,
        /// Add a capability (CAP_X) to the process's sets.
        #[arg(long, short = 'c')]
        cap: Vec<String>,
        #[arg(long = "no-new-privs")]
        no_new_privs: bool,
        #[arg(long = "preserve-fds", default_value_t = 0)]
        preserve_fds: i32,
        /// Accepted for compatibility; AppArmor and SELinux are not applied.
        #[arg(long)]
        apparmor: Option<String>,
        #[arg(long = "process-label")]
        process_label: Option<String>,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// What this runtime supports (runc's `features` JSON).
    Features,
    /// List containers.
    List {
        #[arg(long, short = 'f', default_value = "table")]
        format: String,
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Freeze all processes of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Resource usage (and OOM events) of a container.
    Events {
        /// Print stats once and exit.
        #[arg(long)]
        stats: bool,
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
    /// Processes running in a container.
    Ps {
        #[arg(long, short = 'f', default_value = "table")]
        format: String,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Write a default config.json into the bundle.
    Spec {
        #[arg(long, short = 'b', default_value = ".")]
        bundle: PathBuf,
    },
    /// Change a running container's resource limits.
    Update {
        /// A LinuxResources JSON file ("-" for stdin).
        #[arg(long, short = 'r')]
        resources: Option<PathBuf>,
        #[arg(long)]
        memory: Option<i64>,
        #[arg(long = "memory-swap")]
        memory_swap: Option<i64>,
        #[arg(long = "memory-reservation")]
        memory_reservation: Option<i64>,
        #[arg(long = "cpu-shares")]
        cpu_shares: Option<u64>,
        #[arg(long = "cpu-quota")]
        cpu_quota: Option<i64>,
        #[arg(long = "cpu-period")]
        cpu_period: Option<u64>,
        #[arg(long = "cpuset-cpus")]
        cpuset_cpus: Option<String>,
        #[arg(long = "cpuset-mems")]
        cpuset_mems: Option<String>,
        #[arg(long = "pids-limit")]
        pids_limit: Option<i64>,
        #[arg(long = "blkio-weight")]
        blkio_weight: Option<u16>,
        id: String,
    },
}

/// Runs `berth runtime <args>`; returns the process exit code.
pub fn main(args: &[OsString]) -> i32 {
    let argv = std::iter::once(OsString::from("berth runtime")).chain(args.iter().cloned());
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 1 } else { 0 };
        }
    };
    let log = (cli.log.clone(), cli.log_format.clone());
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            report(&log.0, &log.1, &e.to_string());
            1
        }
    }
}

fn report(log: &Option<PathBuf>, format: &str, msg: &str) {
    eprintln!("berth runtime: {msg}");
    if let Some(path) = log {
        let time = crate::state::now_rfc3339();
        let line = if format == "json" {
            serde_json::json!({"level": "error", "msg": msg, "time": time}).to_string()
        } else {
            format!("time={time:?} level=error msg={msg:?}")
        };
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(f, "{line}");
        }
    }
}

type CliResult = Result<i32, Error>;

fn dispatch(cli: Cli) -> CliResult {
    if cli.systemd_cgroup {
        return Err(Error::Unsupported("--systemd-cgroup: berth's runtime drives cgroupfs only".into()));
    }
    let rt = Runtime::new(&cli.root);
    match cli.cmd {
        Cmd::Create { bundle, console_socket, pid_file, no_pivot, no_new_keyring, preserve_fds, id } => {
            let opts = CreateOptions { console_socket, pid_file, no_pivot, no_new_keyring, preserve_fds, ..Default::default() };
            rt.create(&id, &bundle, opts)?;
            Ok(0)
        }
        Cmd::Start { id } => rt.start(&id).map(|_| 0),
        Cmd::Run { bundle, console_socket, pid_file, detach, keep, no_pivot, no_new_keyring, preserve_fds, id } => {
            let opts = CreateOptions { console_socket, pid_file, no_pivot, no_new_keyring, preserve_fds, ..Default::default() };
            run(&rt, &id, &bundle, opts, detach, keep)
        }
        Cmd::State { id } => {
            let s = rt.state(&id)?;
            println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
            Ok(0)
        }
        Cmd::Kill { all, id, signal } => {
            let sig = parse_signal(signal.as_deref().unwrap_or("SIGTERM"))?;
            rt.kill(&id, sig, all).map(|_| 0)
        }
        Cmd::Delete { force, id } => match rt.delete(&id, force) {
            Err(Error::NotFound(_)) if force => Ok(0),
            r => r.map(|_| 0),
        },
        Cmd::Exec {
            console_socket,
            cwd,
            env,
            tty,
            user,
            additional_gids,
            process,
            detach,
            pid_file,
            cap,
            no_new_privs,
            preserve_fds,
            id,
            command,
            ..
        } => {
            let base = rt.spec(&id)?;
            let p = exec_process(&base, process.as_deref(), cwd, env, tty, user, additional_gids, cap, no_new_privs, command)?;
            exec(&rt, &id, p, console_socket, pid_file, detach, preserve_fds)
        }
        Cmd::List { format, quiet } => list(&rt, &format, quiet),
        Cmd::Features => {
            println!("{}", serde_json::to_string_pretty(&features()).unwrap_or_default());
            Ok(0)
        }
        Cmd::Pause { id } => rt.pause(&id).map(|_| 0),
        Cmd::Resume { id } => rt.resume(&id).map(|_| 0),
        Cmd::Events { stats, interval, id } => events(&rt, &id, stats, &interval),
        Cmd::Ps { format, id, ps_args } => ps(&rt, &id, &format, ps_args),
        Cmd::Spec { bundle } => {
            let path = bundle.join("config.json");
            if path.exists() {
                return Err(Error::InvalidSpec(format!("File {} exists. Remove it first", path.display())));
            }
            let mut text = crate::spec::default_spec_json();
            text.push('\n');
            std::fs::write(&path, text).map_err(|e| Error::io(format!("write {}", path.display()), e))?;
            Ok(0)
        }
        Cmd::Update {
            resources,
            memory,
            memory_swap,
            memory_reservation,
            cpu_shares,
            cpu_quota,
            cpu_period,
            cpuset_cpus,
            cpuset_mems,
            pids_limit,
            blkio_weight,
            id,
        } => {
            let mut v = match resources {
                Some(p) => {
                    let text = if p == Path::new("-") {
                        std::io::read_to_string(std::io::stdin()).map_err(|e| Error::io("read stdin", e))?
                    } else {
                        std::fs::read_to_string(&p).map_err(|e| Error::io(format!("read {}", p.display()), e))?
                    };
                    serde_json::from_str::<serde_json::Value>(&text)
                        .map_err(|e| Error::InvalidSpec(format!("resources JSON: {e}")))?
                }
                None => serde_json::json!({}),
            };
            let mut set = |section: &str, key: &str, val: serde_json::Value| {
                v[section][key] = val;
            };
            if let Some(x) = memory { set("memory", "limit", x.into()) }
            if let Some(x) = memory_swap { set("memory", "swap", x.into()) }
            if let Some(x) = memory_reservation { set("memory", "reservation", x.into()) }
            if let Some(x) = cpu_shares { set("cpu", "shares", x.into()) }
            if let Some(x) = cpu_quota { set("cpu", "quota", x.into()) }
            if let Some(x) = cpu_period { set("cpu", "period", x.into()) }
            if let Some(x) = cpuset_cpus { set("cpu", "cpus", x.into()) }
            if let Some(x) = cpuset_mems { set("cpu", "mems", x.into()) }
            if let Some(x) = pids_limit { set("pids", "limit", x.into()) }
            if let Some(x) = blkio_weight { set("blockIO", "weight", x.into()) }
            let r: LinuxResources =
                serde_json::from_value(v).map_err(|e| Error::InvalidSpec(format!("resources: {e}")))?;
            rt.update(&id, &r).map(|_| 0)
        }
    }
}

/// The runtime-spec features document: what a caller may put in config.json.
fn features() -> serde_json::Value {
    let mut caps: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    caps.sort();
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": ["prestart", "createRuntime", "poststart", "poststop"],
        "mountOptions": [
            "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "loud",
            "mand", "noatime", "nodev", "nodiratime", "noexec", "nomand", "norelatime",
            "nostrictatime", "nosuid", "private", "rbind", "relatime", "remount", "ro",
            "rprivate", "rshared", "rslave", "runbindable", "rw", "shared", "silent", "slave",
            "strictatime", "suid", "sync", "tmpcopyup", "unbindable"
        ],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false},
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                            "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                              "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_X32", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"]
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false}
        },
        "annotations": {
            "io.github.berth.runtime": "berth",
            // Understood in config.json: "true" runs berth's minimal init as PID 1.
            crate::pid1::INIT_ANNOTATION: "true|false",
            "io.github.seccomp.libseccomp.version": libseccomp::ScmpVersion::current()
                .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
                .unwrap_or_default()
        }
    })
}

/// "9", "KILL" or "SIGKILL".
pub fn parse_signal(s: &str) -> Result<i32, Error> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n)
            .map(|s| s as i32)
            .map_err(|_| Error::InvalidSpec(format!("unknown signal {s:?}")));
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") { up } else { format!("SIG{up}") };
    name.parse::<Signal>()
        .map(|s| s as i32)
        .map_err(|_| Error::InvalidSpec(format!("unknown signal {s:?}")))
}

fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, s, _) => Some(128 + s as i32),
        _ => None,
    }
}

/// Signals a foreground run/exec forwards to the container process.
const FORWARDED: [Signal; 8] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

fn block_signals() -> Result<SignalFd, Error> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    for s in FORWARDED {
        set.add(s);
    }
    set.thread_block().map_err(|e| Error::errno("block signals", e))?;
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).map_err(|e| Error::errno("signalfd", e))
}

fn needs_terminal(bundle: &Path) -> bool {
    crate::spec::load(bundle)
        .ok()
        .and_then(|s| s.process().as_ref().and_then(|p| p.terminal()))
        .unwrap_or(false)
}

fn run(rt: &Runtime, id: &str, bundle: &Path, mut opts: CreateOptions, detach: bool, keep: bool) -> CliResult {
    let terminal = needs_terminal(bundle);
    if terminal && detach && opts.console_socket.is_none() {
        return Err(Error::InvalidSpec("cannot allocate tty if runc will detach without setting console socket".into()));
    }
    let console_peer = if terminal && opts.console_socket.is_none() {
        let (a, b) = UnixStream::pair().map_err(|e| Error::io("socketpair", e))?;
        opts.console_stream = Some(a);
        Some(b)
    } else {
        None
    };
    let sigfd = if detach { None } else { Some(block_signals()?) };
    let st = rt.run(id, bundle, opts)?;
    if detach {
        return Ok(0);
    }
    let master = match console_peer {
        Some(peer) => Some(crate::ipc::recv_fd(peer.as_raw_fd())?),
        None => None,
    };
    let code = supervise(st.pid, sigfd, master);
    if !keep {
        let _ = rt.delete(id, true);
    }
    code
}

/// Forwards signals (and pty I/O) to `pid` until it exits; returns its exit code.
fn supervise(pid: i32, sigfd: Option<SignalFd>, master: Option<OwnedFd>) -> CliResult {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let Some(sigfd) = sigfd else { return Ok(0) };
    // kill(0 or negative) would signal our whole process group: never.
    if pid <= 0 {
        return Err(Error::Init(format!("no process to supervise (pid {pid})")));
    }
    let _raw = master.as_ref().and_then(|_| RawMode::enter());
    if let Some(m) = &master {
        copy_winsize(m);
    }
    let stdin = std::io::stdin();
    let mut stdin_open = master.is_some();
    let mut buf = [0u8; 8192];
    loop {
        if let Ok(st) = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG))
            && let Some(code) = exit_code(st) {
                if let Some(m) = &master {
                    drain(m, &mut buf);
                }
                return Ok(code);
            }
        let mut fds = vec![PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
        if let Some(m) = &master {
            fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
        }
        match poll(&mut fds, PollTimeout::from(1000u16)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(Error::errno("poll", e)),
        }
        let ready: Vec<bool> = fds.iter().map(|f| f.revents().is_some_and(|r| !r.is_empty())).collect();
        drop(fds);
        if ready[0] {
            while let Ok(Some(info)) = sigfd.read_signal() {
                let sig = info.ssi_signo as i32;
                if sig == Signal::SIGCHLD as i32 {
                    continue;
                }
                if sig == Signal::SIGWINCH as i32 {
                    if let Some(m) = &master {
                        copy_winsize(m);
                    }
                    continue;
                }
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::try_from(sig).ok());
            }
        }
        if let Some(m) = &master {
            if ready.get(1) == Some(&true) {
                match nix::unistd::read(m, &mut buf) {
                    Ok(n) if n > 0 => {
                        let mut out = std::io::stdout().lock();
                        let _ = out.write_all(&buf[..n]);
                        let _ = out.flush();
                    }
                    _ => {}
                }
            }
            if ready.get(2) == Some(&true) {
                match nix::unistd::read(&stdin, &mut buf) {
                    Ok(n) if n > 0 => {
                        let _ = nix::unistd::write(m, &buf[..n]);
                    }
                    _ => stdin_open = false,
                }
            }
        }
    }
}

fn drain(m: &OwnedFd, buf: &mut [u8]) {
    let _ = nix::fcntl::fcntl(m, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK));
    while let Ok(n) = nix::unistd::read(m, buf) {
        if n == 0 {
            break;
        }
        let _ = std::io::stdout().write_all(&buf[..n]);
    }
    let _ = std::io::stdout().flush();
}

fn copy_winsize(master: &OwnedFd) {
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ read or write one winsize through a valid pointer.
    unsafe {
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}

/// Puts our terminal in raw mode while a container owns it; restores on drop.
struct RawMode(nix::sys::termios::Termios);

impl RawMode {
    fn enter() -> Option<RawMode> {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let orig = tcgetattr(&stdin).ok()?;
        let mut raw = orig.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode(orig))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSANOW, &self.0);
    }
}

#[allow(clippy::too_many_arguments)]
fn exec_process(
    base: &Spec,
    process_file: Option<&Path>,
    cwd: Option<PathBuf>,
    env: Vec<String>,
    tty: bool,
    user: Option<String>,
    additional_gids: Vec<u32>,
    caps: Vec<String>,
    no_new_privs: bool,
    command: Vec<String>,
) -> Result<Process, Error> {
    if let Some(path) = process_file {
        let data = std::fs::read(path).map_err(|e| Error::io(format!("read {}", path.display()), e))?;
        return serde_json::from_slice(&data).map_err(|e| Error::InvalidSpec(format!("{}: {e}", path.display())));
    }
    if command.is_empty() {
        return Err(Error::InvalidSpec("exec needs a command (or --process)".into()));
    }
    let mut v = serde_json::to_value(base.process().clone().unwrap_or_default())
        .map_err(|e| Error::InvalidSpec(e.to_string()))?;
    v["args"] = serde_json::json!(command);
    v["terminal"] = tty.into();
    if let Some(c) = cwd {
        v["cwd"] = c.to_string_lossy().into_owned().into();
    }
    if !env.is_empty() {
        let mut all: Vec<String> = serde_json::from_value(v["env"].clone()).unwrap_or_default();
        all.extend(env);
        v["env"] = serde_json::json!(all);
    }
    if let Some(u) = user {
        let (uid, gid) = match u.split_once(':') {
            Some((a, b)) => (a.to_string(), Some(b.to_string())),
            None => (u.clone(), None),
        };
        let num = |s: &str| s.parse::<u32>().map_err(|_| Error::InvalidSpec(format!("--user {u:?}: uid and gid must be numbers")));
        v["user"]["uid"] = num(&uid)?.into();
        v["user"]["gid"] = gid.as_deref().map(num).transpose()?.unwrap_or(0).into();
    }
    if !additional_gids.is_empty() {
        v["user"]["additionalGids"] = serde_json::json!(additional_gids);
    }
    if !caps.is_empty() {
        for set in ["bounding", "effective", "permitted", "ambient", "inheritable"] {
            let mut cur: Vec<String> = serde_json::from_value(v["capabilities"][set].clone()).unwrap_or_default();
            for c in &caps {
                if !cur.contains(c) {
                    cur.push(c.clone());
                }
            }
            v["capabilities"][set] = serde_json::json!(cur);
        }
    }
    if no_new_privs {
        v["noNewPrivileges"] = true.into();
    }
    serde_json::from_value(v).map_err(|e| Error::InvalidSpec(format!("exec process: {e}")))
}

fn exec(
    rt: &Runtime,
    id: &str,
    p: Process,
    console_socket: Option<PathBuf>,
    pid_file: Option<PathBuf>,
    detach: bool,
    preserve_fds: i32,
) -> CliResult {
    let terminal = p.terminal().unwrap_or(false);
    if terminal && detach && console_socket.is_none() {
        return Err(Error::InvalidSpec("cannot allocate tty if runc will detach without setting console socket".into()));
    }
    let (console_stream, console_peer) = if terminal && console_socket.is_none() {
        let (a, b) = UnixStream::pair().map_err(|e| Error::io("socketpair", e))?;
        (Some(a), Some(b))
    } else {
        (None, None)
    };
    let sigfd = if detach { None } else { Some(block_signals()?) };
    let opts = ExecOptions { console_socket, console_stream, pid_file, preserve_fds, ..Default::default() };
    let pid = rt.exec(id, &p, opts)?;
    if detach {
        return Ok(0);
    }
    let master = match console_peer {
        Some(peer) => Some(crate::ipc::recv_fd(peer.as_raw_fd())?),
        None => None,
    };
    supervise(pid, sigfd, master)
}

fn list(rt: &Runtime, format: &str, quiet: bool) -> CliResult {
    let all = rt.list()?;
    if quiet {
        for s in &all {
            println!("{}", s.id);
        }
        return Ok(0);
    }
    match format {
        "json" => println!("{}", serde_json::to_string(&all).unwrap_or_else(|_| "[]".into())),
        "table" => {
            let rows: Vec<[String; 6]> = std::iter::once(["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from))
                .chain(all.iter().map(|s| {
                    [
                        s.id.clone(),
                        s.pid.to_string(),
                        s.status.to_string(),
                        s.bundle.display().to_string(),
                        s.created.clone(),
                        if s.owner.is_empty() { "root".into() } else { s.owner.clone() },
                    ]
                }))
                .collect();
            let mut widths = [0usize; 6];
            for r in &rows {
                for (i, c) in r.iter().enumerate() {
                    widths[i] = widths[i].max(c.len());
                }
            }
            for r in &rows {
                let line: Vec<String> = r.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect();
                println!("{}", line.join("   ").trim_end());
            }
        }
        other => return Err(Error::InvalidSpec(format!("invalid format option {other:?}"))),
    }
    Ok(0)
}

fn parse_interval(s: &str) -> Result<std::time::Duration, Error> {
    let bad = || Error::InvalidSpec(format!("invalid interval {s:?} (e.g. 5s, 500ms)"));
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit() && c != '.').map(|i| s.split_at(i)).unwrap_or((s, "s"));
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        _ => return Err(bad()),
    };
    if secs <= 0.0 {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

fn events(rt: &Runtime, id: &str, once: bool, interval: &str) -> CliResult {
    let every = parse_interval(interval)?;
    let emit = |kind: &str, data: serde_json::Value| {
        println!("{}", serde_json::json!({"type": kind, "id": id, "data": data}));
        let _ = std::io::stdout().flush();
    };
    if once {
        let s = rt.stats(id)?;
        emit("stats", serde_json::to_value(s).unwrap_or_default());
        return Ok(0);
    }
    let mut ooms = rt.oom_killed(id).ok();
    loop {
        let st = rt.state(id)?;
        // OOM first: a kill that also ended the container is still reported.
        let now = rt.oom_killed(id).ok();
        if now == Some(true) && ooms != Some(true) {
            emit("oom", serde_json::Value::Null);
        }
        ooms = now;
        if st.status == crate::Status::Stopped {
            return Ok(0);
        }
        emit("stats", serde_json::to_value(rt.stats(id)?).unwrap_or_default());
        std::thread::sleep(every);
    }
}

fn ps(rt: &Runtime, id: &str, format: &str, ps_args: Vec<String>) -> CliResult {
    let pids = rt.processes(id)?;
    match format {
        "json" => {
            println!("{}", serde_json::to_string(&pids).unwrap_or_else(|_| "[]".into()));
            Ok(0)
        }
        "table" => {
            let args = if ps_args.is_empty() { vec!["-ef".to_string()] } else { ps_args };
            let out = std::process::Command::new("ps")
                .args(&args)
                .output()
                .map_err(|e| Error::io("run ps", e))?;
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or("");
            let col = header
                .split_whitespace()
                .position(|h| h == "PID")
                .ok_or_else(|| Error::InvalidSpec("ps output has no PID column".into()))?;
            println!("{header}");
            for l in lines {
                if let Some(p) = l.split_whitespace().nth(col).and_then(|p| p.parse::<i32>().ok())
                    && pids.contains(&p) {
                        println!("{l}");
                    }
            }
            Ok(0)
        }
        other => Err(Error::InvalidSpec(format!("invalid format option {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_like_runc() {
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("sigterm").unwrap(), 15);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("999").is_err());
    }

    #[test]
    fn intervals_parse() {
        assert_eq!(parse_interval("5s").unwrap(), std::time::Duration::from_secs(5));
        assert_eq!(parse_interval("250ms").unwrap(), std::time::Duration::from_millis(250));
        assert!(parse_interval("x").is_err());
    }

    #[test]
    fn exec_process_overrides_base() {
        let base = crate::spec::default_spec();
        let p = exec_process(
            &base,
            None,
            Some("/tmp".into()),
            vec!["A=1".into()],
            false,
            Some("1000:1000".into()),
            vec![5],
            vec!["CAP_NET_RAW".into()],
            false,
            vec!["ls".into(), "-l".into()],
        )
        .unwrap();
        assert_eq!(p.args().as_ref().unwrap(), &vec!["ls".to_string(), "-l".to_string()]);
        assert_eq!(p.user().uid(), 1000);
        assert!(p.env().as_ref().unwrap().contains(&"A=1".to_string()));
        assert_eq!(p.terminal(), Some(false));
        assert!(exec_process(&base, None, None, vec![], false, Some("bob".into()), vec![], vec![], false, vec!["x".into()]).is_err());
    }

    #[test]
    fn features_describe_what_is_supported() {
        let f = features();
        assert_eq!(f["linux"]["cgroup"]["v2"], true);
        assert!(f["linux"]["capabilities"].as_array().unwrap().iter().any(|c| c == "CAP_SYS_ADMIN"));
        assert!(!f["hooks"].as_array().unwrap().iter().any(|h| h == "createContainer"));
        assert_eq!(f["annotations"]["io.berth.init"], "true|false");
        assert!(f["annotations"]["io.github.seccomp.libseccomp.version"].as_str().unwrap().starts_with("2."));
    }

    #[test]
    fn bad_flags_exit_1() {
        assert_eq!(main(&["bogus-command".into()]), 1);
        assert_eq!(main(&["kill".into()]), 1);
    }
}
