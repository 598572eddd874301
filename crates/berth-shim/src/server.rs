//! The shim's event loop: one thread, `poll(2)` over the control socket, the daemon's
//! connections, the container's (and execs') output, stdin pipes and a SIGCHLD signalfd.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::config::ShimConfig;
use crate::logdriver::Logger;
use crate::protocol::{self, ExitStatus, Ready, Request, Response};
use crate::runtime::{Runtime, Stdio3, runtime_message};
use crate::{console, fdio, now_rfc3339};

/// A connection whose unsent output grows past this is too slow: it is dropped rather
/// than let it hold the container's output (and the log) back.
const MAX_CONN_BACKLOG: usize = 16 << 20;
/// After a process exits, how long its output may keep coming (from children that
/// inherited its pipes, e.g. with `--pid host`) before the exit is reported anyway.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// After the container has exited, how long the shim waits for its connections to
/// take their last bytes.
const LINGER: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum ProcKey {
    Init,
    Exec(String),
}

struct Proc {
    pid: i32,
    /// stdout, or the pty master with a terminal.
    out: Option<OwnedFd>,
    err: Option<OwnedFd>,
    stdin: Option<OwnedFd>,
    stdin_buf: Vec<u8>,
    close_stdin_when_flushed: bool,
    /// The pty master, kept for resizes.
    tty: Option<OwnedFd>,
    subscribers: Vec<u64>,
    exited: Option<(ExitStatus, Instant)>,
    reported: bool,
}

impl Proc {
    fn new(pid: i32) -> Proc {
        Proc {
            pid,
            out: None,
            err: None,
            stdin: None,
            stdin_buf: Vec::new(),
            close_stdin_when_flushed: false,
            tty: None,
            subscribers: Vec::new(),
            exited: None,
            reported: false,
        }
    }
}

enum ConnState {
    /// Waiting for the request line.
    Header,
    /// Carrying a process's streams.
    Streaming { proc: ProcKey, stdin: bool, stdout: bool, stderr: bool },
    /// Close once the output buffer is flushed.
    Closing,
}

struct Conn {
    stream: UnixStream,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    state: ConnState,
    /// The peer shut down its writing side: it still reads what we send.
    read_closed: bool,
}

pub struct Shim {
    cfg: ShimConfig,
    runtime: Runtime,
    listener: UnixListener,
    sigfd: SignalFd,
    log: Option<Logger>,
    procs: HashMap<ProcKey, Proc>,
    conns: HashMap<u64, Conn>,
    next_conn: u64,
    cgroups_path: Option<String>,
    done_at: Option<Instant>,
    /// Whether memory was given back since the last event (see `poll_once`).
    trimmed: bool,
}

/// Quiet this long after some activity (a start, an attach, a burst of output) and the
/// shim gives back what that activity faulted in.
const TRIM_AFTER_IDLE_MS: i32 = 3000;

/// Entry point of `berth shim`: creates the container, reports on `ready`, then serves
/// until the container has exited and its exit has been recorded. Returns the process
/// exit code.
pub fn run(cfg: ShimConfig, ready: Option<OwnedFd>) -> i32 {
    let mut ready = ready.map(std::fs::File::from);
    let report = |ready: &mut Option<std::fs::File>, r: &Ready| {
        if let Some(f) = ready.as_mut() {
            let mut line = serde_json::to_vec(r).unwrap_or_default();
            line.push(b'\n');
            let _ = f.write_all(&line);
        }
    };
    match Shim::create(cfg) {
        Ok(mut shim) => {
            let pid = shim.procs.get(&ProcKey::Init).map(|p| p.pid).unwrap_or(0);
            report(&mut ready, &Ready { ok: true, error: String::new(), pid, phases: berth_runtime::phases::take() });
            drop(ready);
            // No memory::give_back here: the daemon's attach and start come next and
            // would wait for it (reading smaps, ~1 ms). The first idle poll trims.
            shim.serve();
            0
        }
        Err(e) => {
            report(&mut ready, &Ready { ok: false, error: e, pid: 0, phases: berth_runtime::phases::take() });
            1
        }
    }
}

impl Shim {
    fn create(cfg: ShimConfig) -> Result<Shim, String> {
        // Where this create's time goes, reported with "ready" (`Ready::phases`).
        berth_runtime::phases::begin();
        // Orphaned exec processes (runc exec --detach) and the init itself must be
        // reaped here, whoever forked them.
        // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer flag only.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        mask.thread_block().map_err(|e| format!("block SIGCHLD: {e}"))?;
        let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|e| format!("signalfd: {e}"))?;

        let log = Logger::open(&cfg.log).map_err(|e| format!("failed to initialize logging driver: {e}"))?;
        let cgroups_path = read_cgroups_path(&cfg.bundle);
        let runtime = Runtime::new(&cfg.runtime);
        std::fs::create_dir_all(&cfg.state_dir).map_err(|e| format!("state dir: {e}"))?;
        let _ = std::fs::remove_file(&cfg.socket);
        let listener = UnixListener::bind(&cfg.socket).map_err(|e| format!("bind {}: {e}", cfg.socket.display()))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;

        let mut init = Proc::new(0);
        let pid_file = cfg.init_pid_file();
        let _ = std::fs::remove_file(&pid_file);
        let console_path = short_sibling(&cfg.socket, "c");
        berth_runtime::phases::mark("setup");
        let created = launch(&mut init, cfg.tty, cfg.open_stdin, &console_path, cfg.console_size, |stdio, console| {
            runtime.create(&cfg.id, &cfg.bundle, &pid_file, console, stdio)
        });
        if let Err(e) = created {
            let _ = runtime.delete(&cfg.id);
            let _ = std::fs::remove_file(&cfg.socket);
            return Err(e);
        }
        init.pid = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| "runtime did not write the init pid".to_string())?;
        let _ = std::fs::write(cfg.pid_file(), std::process::id().to_string());
        berth_runtime::phases::mark("done");
        let mut procs = HashMap::new();
        procs.insert(ProcKey::Init, init);
        Ok(Shim { cfg, runtime, listener, sigfd, log, procs, conns: HashMap::new(), next_conn: 1, cgroups_path, done_at: None, trimmed: false })
    }

    fn serve(&mut self) {
        loop {
            self.reap();
            self.report_exits();
            if let Some(t) = self.done_at {
                let flushed = self.conns.values().all(|c| c.wbuf.is_empty());
                if flushed || t.elapsed() > LINGER {
                    break;
                }
            }
            self.poll_once();
        }
        let _ = std::fs::remove_file(&self.cfg.socket);
    }

    fn poll_once(&mut self) {
        #[derive(Clone)]
        enum Tok {
            Listener,
            Signal,
            Conn(u64),
            Out(ProcKey),
            Err(ProcKey),
            Stdin(ProcKey),
        }
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut toks: Vec<Tok> = Vec::new();
        let mut add = |fd: RawFd, events: i16, t: Tok| {
            fds.push(libc::pollfd { fd, events, revents: 0 });
            toks.push(t);
        };
        if self.done_at.is_none() {
            add(self.listener.as_raw_fd(), libc::POLLIN, Tok::Listener);
        }
        add(self.sigfd.as_fd().as_raw_fd(), libc::POLLIN, Tok::Signal);
        for (id, c) in &self.conns {
            // Closing connections are still read (and what comes discarded): closing a
            // unix socket with unread input resets the peer, which may lose our last frame.
            let mut ev = if c.read_closed { 0 } else { libc::POLLIN };
            if !c.wbuf.is_empty() {
                ev |= libc::POLLOUT;
            }
            add(c.stream.as_raw_fd(), ev, Tok::Conn(*id));
        }
        for (k, p) in &self.procs {
            if let Some(fd) = &p.out {
                add(fd.as_raw_fd(), libc::POLLIN, Tok::Out(k.clone()));
            }
            if let Some(fd) = &p.err {
                add(fd.as_raw_fd(), libc::POLLIN, Tok::Err(k.clone()));
            }
            if let Some(fd) = &p.stdin
                && !p.stdin_buf.is_empty() {
                    add(fd.as_raw_fd(), libc::POLLOUT, Tok::Stdin(k.clone()));
                }
        }
        let waiting_on_exit = self.done_at.is_some() || self.procs.values().any(|p| p.exited.is_some() && !p.reported);
        let timeout_ms = if waiting_on_exit {
            100
        } else if !self.trimmed {
            TRIM_AFTER_IDLE_MS
        } else {
            -1
        };
        // SAFETY: fds is a valid, exclusively borrowed array of pollfd of the given length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if n == 0 && !waiting_on_exit && !self.trimmed {
            // Idle: the code and heap the last activity touched go back (the shim of a
            // quiet container then holds ~1.5 MB instead of ~4.5 MB).
            crate::memory::give_back();
            self.trimmed = true;
        }
        if n <= 0 {
            return;
        }
        self.trimmed = false;
        for (pfd, tok) in fds.iter().zip(toks) {
            if pfd.revents == 0 {
                continue;
            }
            match tok {
                Tok::Listener => self.accept(),
                Tok::Signal => while let Ok(Some(_)) = self.sigfd.read_signal() {},
                Tok::Conn(id) => self.conn_ready(id, pfd.revents),
                Tok::Out(k) => self.output(&k, protocol::FRAME_STDOUT),
                Tok::Err(k) => self.output(&k, protocol::FRAME_STDERR),
                Tok::Stdin(k) => self.flush_stdin(&k),
            }
        }
    }

    fn accept(&mut self) {
        while let Ok((stream, _)) = self.listener.accept() {
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let id = self.next_conn;
            self.next_conn += 1;
            self.conns.insert(id, Conn { stream, rbuf: Vec::new(), wbuf: Vec::new(), state: ConnState::Header, read_closed: false });
        }
    }

    fn conn_ready(&mut self, id: u64, revents: i16) {
        if self.conns.get(&id).is_some_and(|c| c.read_closed) && revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            // Gone both ways.
            self.drop_conn(id);
            return;
        }
        if revents & libc::POLLOUT != 0 {
            self.flush_conn(id);
        }
        let read_closed = self.conns.get(&id).is_some_and(|c| c.read_closed);
        if !read_closed && revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            let mut buf = [0u8; 32 * 1024];
            loop {
                let Some(c) = self.conns.get_mut(&id) else { return };
                match c.stream.read(&mut buf) {
                    Ok(0) => {
                        // A half-close ends the input only; a streaming client still
                        // gets its output and the exit frame.
                        if matches!(c.state, ConnState::Streaming { .. }) {
                            c.read_closed = true;
                            break;
                        }
                        self.drop_conn(id);
                        return;
                    }
                    Ok(n) => c.rbuf.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        self.drop_conn(id);
                        return;
                    }
                }
            }
            self.process_input(id);
        }
    }

    fn process_input(&mut self, id: u64) {
        let Some(c) = self.conns.get_mut(&id) else { return };
        if matches!(c.state, ConnState::Closing) {
            c.rbuf.clear();
            return;
        }
        if matches!(c.state, ConnState::Header) {
            let Some(pos) = c.rbuf.iter().position(|&b| b == b'\n') else { return };
            let line: Vec<u8> = c.rbuf.drain(..=pos).collect();
            match serde_json::from_slice::<Request>(&line) {
                Ok(req) => self.handle(id, req),
                Err(e) => self.reply_and_close(id, Response::err(format!("bad request: {e}"))),
            }
        }
        let Some(c) = self.conns.get_mut(&id) else { return };
        if let ConnState::Streaming { proc, stdin, .. } = &c.state {
            let (proc, stdin) = (proc.clone(), *stdin);
            let mut frames = Vec::new();
            while let Some(f) = protocol::take_frame(&mut c.rbuf) {
                frames.push(f);
            }
            for (kind, payload) in frames {
                if kind != protocol::FRAME_STDIN || !stdin {
                    continue;
                }
                if let Some(p) = self.procs.get_mut(&proc) {
                    if payload.is_empty() {
                        p.close_stdin_when_flushed = true;
                    } else if p.stdin.is_some() {
                        p.stdin_buf.extend_from_slice(&payload);
                    }
                }
                self.flush_stdin(&proc);
            }
        }
    }

    fn handle(&mut self, id: u64, req: Request) {
        match req {
            Request::Start => {
                let r = match self.runtime.start(&self.cfg.id) {
                    Ok(()) => Response { ok: true, pid: self.procs.get(&ProcKey::Init).map(|p| p.pid), ..Default::default() },
                    Err(e) => Response::err(e.to_string()),
                };
                self.reply_and_close(id, r);
            }
            Request::Attach { stdin, stdout, stderr } => self.subscribe(id, ProcKey::Init, stdin, stdout, stderr),
            Request::Exec { exec_id, process, tty, stdin } => match self.start_exec(&exec_id, &process, tty, stdin) {
                Ok(()) => self.subscribe(id, ProcKey::Exec(exec_id), stdin, true, true),
                Err(e) => self.reply_and_close(id, Response::err(e)),
            },
            Request::Kill { signal, all } => {
                let exited = self.procs.get(&ProcKey::Init).is_none_or(|p| p.exited.is_some());
                let r = if exited {
                    Response::err("container is not running")
                } else {
                    match self.runtime.kill(&self.cfg.id, signal, all) {
                        Ok(()) => Response::ok(),
                        Err(e) => Response::err(e.to_string()),
                    }
                };
                self.reply_and_close(id, r);
            }
            Request::KillExec { exec_id, signal } => {
                let r = match self.procs.get(&ProcKey::Exec(exec_id)) {
                    Some(p) if p.exited.is_none() => match Signal::try_from(signal) {
                        Ok(sig) => match nix::sys::signal::kill(Pid::from_raw(p.pid), sig) {
                            Ok(()) => Response::ok(),
                            Err(e) => Response::err(e.to_string()),
                        },
                        Err(_) => Response::err(format!("invalid signal {signal}")),
                    },
                    _ => Response::err("exec process is not running"),
                };
                self.reply_and_close(id, r);
            }
            Request::Resize { exec_id, height, width } => {
                let key = exec_id.map(ProcKey::Exec).unwrap_or(ProcKey::Init);
                let r = match self.procs.get(&key).and_then(|p| p.tty.as_ref()) {
                    Some(fd) => match fdio::set_winsize(fd.as_raw_fd(), height, width) {
                        Ok(()) => Response::ok(),
                        Err(e) => Response::err(e.to_string()),
                    },
                    None => Response::err("no terminal to resize"),
                };
                self.reply_and_close(id, r);
            }
            Request::ReopenLog => {
                let r = match self.log.as_mut() {
                    Some(log) => match log.reopen() {
                        Ok(()) => Response::ok(),
                        Err(e) => Response::err(format!("reopening the log: {e}")),
                    },
                    None => Response::err("the container has no log"),
                };
                self.reply_and_close(id, r);
            }
            Request::State => {
                let p = self.procs.get(&ProcKey::Init);
                let r = Response {
                    ok: true,
                    pid: p.map(|p| p.pid),
                    exit: p.and_then(|p| p.exited.as_ref().map(|(s, _)| s.clone())),
                    ..Default::default()
                };
                self.reply_and_close(id, r);
            }
        }
    }

    fn subscribe(&mut self, id: u64, key: ProcKey, stdin: bool, stdout: bool, stderr: bool) {
        let Some(p) = self.procs.get_mut(&key) else {
            self.reply_and_close(id, Response::err("no such process"));
            return;
        };
        p.subscribers.push(id);
        let pid = p.pid;
        let already_reported = p.reported;
        let exit = p.exited.as_ref().map(|(s, _)| s.clone());
        if let Some(c) = self.conns.get_mut(&id) {
            c.state = ConnState::Streaming { proc: key, stdin, stdout, stderr };
            push_line(&mut c.wbuf, &Response { ok: true, pid: Some(pid), ..Default::default() });
            if already_reported {
                if let Some(s) = exit {
                    c.wbuf.extend(protocol::frame(protocol::FRAME_EXIT, &serde_json::to_vec(&s).unwrap_or_default()));
                }
                c.state = ConnState::Closing;
            }
        }
        self.flush_conn(id);
    }

    fn start_exec(&mut self, exec_id: &str, process: &serde_json::Value, tty: bool, open_stdin: bool) -> Result<(), String> {
        let key = ProcKey::Exec(exec_id.to_string());
        if self.procs.contains_key(&key) {
            return Err(format!("exec {exec_id} already started"));
        }
        if self.procs.get(&ProcKey::Init).is_none_or(|p| p.exited.is_some()) {
            return Err("container is not running".into());
        }
        let short = &exec_id[..exec_id.len().min(12)];
        let process_file = self.cfg.state_dir.join(format!("exec-{short}.json"));
        let pid_file = self.cfg.state_dir.join(format!("exec-{short}.pid"));
        std::fs::write(&process_file, serde_json::to_vec(process).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        let mut p = Proc::new(0);
        let console_path = short_sibling(&self.cfg.socket, &format!("e{}", &short[..short.len().min(6)]));
        let (runtime, id) = (&self.runtime, &self.cfg.id);
        let result = launch(&mut p, tty, open_stdin, &console_path, None, |stdio, console| runtime.exec(id, &process_file, &pid_file, console, stdio));
        let _ = std::fs::remove_file(&process_file);
        result?;
        p.pid = std::fs::read_to_string(&pid_file).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
        let _ = std::fs::remove_file(&pid_file);
        if p.pid <= 0 {
            return Err("runtime did not report the exec pid".into());
        }
        self.procs.insert(key, p);
        Ok(())
    }

    fn output(&mut self, key: &ProcKey, kind: u8) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let Some(p) = self.procs.get_mut(key) else { return };
            let slot = if kind == protocol::FRAME_STDERR { &mut p.err } else { &mut p.out };
            let Some(fd) = slot.as_ref() else { return };
            // SAFETY: fd is an open descriptor owned by this Proc; buf is valid for its length.
            let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n == 0 {
                *slot = None;
                return;
            }
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => return,
                    Some(libc::EINTR) => continue,
                    // EIO: the pty's other side is gone.
                    _ => {
                        *slot = None;
                        return;
                    }
                }
            }
            let data = &buf[..n as usize];
            if *key == ProcKey::Init
                && let Some(log) = self.log.as_mut() {
                    let _ = log.write(kind, data);
                }
            let subs = p.subscribers.clone();
            let frame = protocol::frame(kind, data);
            for sid in subs {
                let mut too_slow = false;
                if let Some(c) = self.conns.get_mut(&sid)
                    && let ConnState::Streaming { stdout, stderr, .. } = c.state {
                        let wanted = if kind == protocol::FRAME_STDERR { stderr } else { stdout };
                        if wanted {
                            c.wbuf.extend_from_slice(&frame);
                            too_slow = c.wbuf.len() > MAX_CONN_BACKLOG;
                        }
                    }
                if too_slow {
                    self.drop_conn(sid);
                } else {
                    self.flush_conn(sid);
                }
            }
        }
    }

    fn flush_stdin(&mut self, key: &ProcKey) {
        let Some(p) = self.procs.get_mut(key) else { return };
        if let Some(fd) = &p.stdin {
            while !p.stdin_buf.is_empty() {
                // SAFETY: fd is an open, non-blocking descriptor owned by this Proc.
                let n = unsafe { libc::write(fd.as_raw_fd(), p.stdin_buf.as_ptr().cast(), p.stdin_buf.len()) };
                if n > 0 {
                    p.stdin_buf.drain(..n as usize);
                } else {
                    let e = io::Error::last_os_error();
                    if e.raw_os_error() == Some(libc::EINTR) {
                        continue;
                    }
                    if e.raw_os_error() != Some(libc::EAGAIN) {
                        // The reader is gone (EPIPE): nothing more can be delivered.
                        p.stdin_buf.clear();
                        p.stdin = None;
                    }
                    break;
                }
            }
        } else {
            p.stdin_buf.clear();
        }
        if p.close_stdin_when_flushed && p.stdin_buf.is_empty() {
            if p.tty.is_some() {
                // A terminal has no half-close: send EOF (^D) as a terminal would.
                if let Some(fd) = &p.stdin {
                    // SAFETY: writes one byte from a valid buffer to an open descriptor.
                    unsafe { libc::write(fd.as_raw_fd(), [4u8].as_ptr().cast(), 1) };
                }
            }
            p.stdin = None;
            p.close_stdin_when_flushed = false;
        }
    }

    fn flush_conn(&mut self, id: u64) {
        let Some(c) = self.conns.get_mut(&id) else { return };
        while !c.wbuf.is_empty() {
            match c.stream.write(&c.wbuf) {
                Ok(0) => break,
                Ok(n) => {
                    c.wbuf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.drop_conn(id);
                    return;
                }
            }
        }
        let Some(c) = self.conns.get_mut(&id) else { return };
        if matches!(c.state, ConnState::Closing) && c.wbuf.is_empty() {
            let mut sink = [0u8; 4096];
            while matches!(c.stream.read(&mut sink), Ok(n) if n > 0) {}
            let _ = c.stream.shutdown(std::net::Shutdown::Both);
            self.drop_conn(id);
        }
    }

    fn reply_and_close(&mut self, id: u64, r: Response) {
        if let Some(c) = self.conns.get_mut(&id) {
            push_line(&mut c.wbuf, &r);
            c.state = ConnState::Closing;
        }
        self.flush_conn(id);
    }

    fn drop_conn(&mut self, id: u64) {
        if let Some(c) = self.conns.remove(&id)
            && let ConnState::Streaming { proc, .. } = c.state
                && let Some(p) = self.procs.get_mut(&proc) {
                    p.subscribers.retain(|s| *s != id);
                }
    }

    /// Collects exit statuses of our children (the init, execs, orphans).
    fn reap(&mut self) {
        loop {
            match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => self.exited(pid.as_raw(), code),
                Ok(WaitStatus::Signaled(pid, sig, _)) => self.exited(pid.as_raw(), 128 + sig as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }

    fn exited(&mut self, pid: i32, code: i32) {
        let finished_at = now_rfc3339();
        for (key, p) in self.procs.iter_mut() {
            if p.pid == pid && p.exited.is_none() {
                let oom_killed = *key == ProcKey::Init && self.runtime.oom_killed(&self.cfg.id, self.cgroups_path.as_deref());
                p.exited = Some((ExitStatus { exit_code: code, oom_killed, finished_at: finished_at.clone(), error: String::new() }, Instant::now()));
            }
        }
    }

    /// Reports each exited process once its output is drained (or the grace is over):
    /// an exit frame to its subscribers; for the init also the log, `exit.json`, and
    /// the runtime's delete.
    fn report_exits(&mut self) {
        let ready: Vec<ProcKey> = self
            .procs
            .iter()
            .filter(|(_, p)| !p.reported)
            .filter_map(|(k, p)| {
                let (_, at) = p.exited.as_ref()?;
                let drained = p.out.is_none() && p.err.is_none();
                (drained || at.elapsed() > DRAIN_GRACE).then(|| k.clone())
            })
            .collect();
        for key in ready {
            // Take what output is still readable before the exit frame.
            self.output(&key, protocol::FRAME_STDOUT);
            self.output(&key, protocol::FRAME_STDERR);
            let Some(p) = self.procs.get_mut(&key) else { continue };
            p.reported = true;
            p.out = None;
            p.err = None;
            p.stdin = None;
            let status = p.exited.as_ref().map(|(s, _)| s.clone()).unwrap_or_default();
            let subs = p.subscribers.clone();
            if key == ProcKey::Init {
                if let Some(log) = self.log.as_mut() {
                    let _ = log.flush();
                }
                let _ = self.runtime.delete(&self.cfg.id);
                if let Err(e) = write_atomic(&self.cfg.exit_file(), &serde_json::to_vec(&status).unwrap_or_default()) {
                    eprintln!("berth shim {}: writing exit status: {e}", self.cfg.id);
                }
                self.done_at = Some(Instant::now());
            }
            let payload = serde_json::to_vec(&status).unwrap_or_default();
            for sid in subs {
                if let Some(c) = self.conns.get_mut(&sid) {
                    c.wbuf.extend(protocol::frame(protocol::FRAME_EXIT, &payload));
                    c.state = ConnState::Closing;
                }
                self.flush_conn(sid);
            }
        }
    }
}

fn push_line(buf: &mut Vec<u8>, r: &Response) {
    buf.extend(serde_json::to_vec(r).unwrap_or_default());
    buf.push(b'\n');
}

/// Gives a new process (the init or an exec) its stdio and runs `start` with it: with a
/// terminal, the pty master arrives over a console socket at `console_path`; without,
/// pipes (stdin only when it is kept open, else /dev/null). Fills `p`'s descriptors.
/// On failure the error is the runtime's own words, read from what it printed.
fn launch(
    p: &mut Proc,
    tty: bool,
    open_stdin: bool,
    console_path: &Path,
    console_size: Option<(u16, u16)>,
    start: impl FnOnce(Stdio3, Option<&Path>) -> Result<(), crate::runtime::RuntimeError>,
) -> Result<(), String> {
    let s = |e: io::Error| e.to_string();
    if tty {
        let console = console::Listener::bind(console_path).map_err(|e| format!("console socket: {e}"))?;
        let (err_r, err_w) = fdio::pipe().map_err(s)?;
        let stdio = Stdio3 { stdin: fdio::dev_null().map_err(s)?, stdout: fdio::dev_null().map_err(s)?, stderr: err_w };
        let res = start(stdio, Some(console_path)).map_err(|e| runtime_message(&fdio::drain(&err_r), &e.to_string())).and_then(|()| {
            let master = console.accept_fd(Duration::from_secs(10)).map_err(|e| format!("receive console: {e}"))?;
            if let Some((rows, cols)) = console_size {
                let _ = fdio::set_winsize(master.as_raw_fd(), rows, cols);
            }
            fdio::set_nonblocking(master.as_raw_fd()).map_err(s)?;
            p.out = Some(master.try_clone().map_err(s)?);
            if open_stdin {
                p.stdin = Some(master.try_clone().map_err(s)?);
            }
            p.tty = Some(master);
            Ok(())
        });
        let _ = std::fs::remove_file(console_path);
        return res;
    }
    let (out_r, out_w) = fdio::pipe().map_err(s)?;
    let (err_r, err_w) = fdio::pipe().map_err(s)?;
    let stdin = if open_stdin {
        let (in_r, in_w) = fdio::pipe().map_err(s)?;
        fdio::set_nonblocking(in_w.as_raw_fd()).map_err(s)?;
        p.stdin = Some(in_w);
        in_r
    } else {
        fdio::dev_null().map_err(s)?
    };
    let res = start(Stdio3 { stdin, stdout: out_w, stderr: err_w }, None).map_err(|e| {
        // Before the process runs, what is in its pipes is the runtime's.
        let mut msg = fdio::drain(&err_r);
        msg.extend(fdio::drain(&out_r));
        runtime_message(&msg, &e.to_string())
    });
    fdio::set_nonblocking(out_r.as_raw_fd()).map_err(s)?;
    fdio::set_nonblocking(err_r.as_raw_fd()).map_err(s)?;
    p.out = Some(out_r);
    p.err = Some(err_r);
    res
}

/// `linux.cgroupsPath` of the bundle's config.json, for the OOM check.
fn read_cgroups_path(bundle: &Path) -> Option<String> {
    let data = std::fs::read(bundle.join("config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&data).ok()?;
    v.get("linux")?.get("cgroupsPath")?.as_str().map(str::to_string)
}

/// A socket path beside `sock` (same short directory), e.g. `<dir>/<name>-c.sock`.
fn short_sibling(sock: &Path, tag: &str) -> PathBuf {
    let stem = sock.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    sock.with_file_name(format!("{stem}-{tag}.sock"))
}

/// Write temp + rename, so a reader never sees half a file. No fsync: everything the
/// shim writes lives in the exec root, runtime state that a reboot discards anyway.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}

/// Adopts fd 3 as the ready pipe when the daemon passed one.
pub fn ready_fd_from_env() -> Option<OwnedFd> {
    let fd: RawFd = std::env::var("BERTH_SHIM_READY_FD").ok()?.parse().ok()?;
    // SAFETY: the daemon passed this descriptor to us for our exclusive use and named it
    // in the environment; nothing else in this process owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}
