//! The shim zygote (`berth shim-zygote <socket>`): one small, single-threaded process per
//! daemon that forks shims instead of the daemon exec'ing `berth shim` for each
//! container. berth is one large position-independent binary: every process exec'd from
//! it relocates ~0.9 MB of pointers (the binary's RELRO data) into private pages at
//! start. Shims forked from the zygote share the zygote's relocated pages copy-on-write,
//! so a shim costs its own heap and stack only — which is what makes a pod (a sandbox's
//! shim, a container's shim) fit in little memory.
//!
//! Protocol, on the zygote's unix socket: one JSON request line per connection — `spawn`
//! with the container's state dir and, in the same message, the ready pipe's write end
//! (SCM_RIGHTS); or `hello` — and one JSON answer line (the new shim's pid, or the
//! zygote's binary identity). The shim then reports on the ready pipe exactly as an
//! exec'd one does. Shims outlive the zygote and the daemon (own session); the zygote
//! reaps nothing (SIGCHLD ignored, children reaped by the kernel) and lives until killed
//! or told to quit (a newer binary replaced it).

use std::io::{self, BufRead, BufReader, IoSlice, IoSliceMut, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use serde::{Deserialize, Serialize};

use crate::config::ShimConfig;

/// The zygote's socket, in the daemon's exec root.
pub const SOCKET: &str = "shim-zygote.sock";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ZygoteRequest {
    Hello,
    /// Fork a shim for the container whose shim.json is in `state_dir`; the ready pipe's
    /// write end comes with the request.
    Spawn { state_dir: PathBuf },
    Quit,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ZygoteResponse {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// The new shim's pid (`spawn`), or the zygote's (`hello`).
    #[serde(default)]
    pub pid: i32,
    /// The binary the zygote runs (see [`exe_identity`]); with `pid`, the zygote's own, in
    /// the answer to `hello`.
    #[serde(default)]
    pub exe: String,
}

/// Which binary `exe` is: device, inode and modification time, so a daemon whose binary
/// was replaced by a new build does not fork shims from the old build's zygote.
pub fn exe_identity(exe: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(exe) {
        Ok(m) => format!("{}:{}:{}.{}", m.dev(), m.ino(), m.mtime(), m.mtime_nsec()),
        Err(_) => String::new(),
    }
}

/// `berth shim-zygote <socket> [<spare bytes>]`. Returns the exit code.
pub fn main(args: &[std::ffi::OsString]) -> i32 {
    let Some(socket) = args.first().map(PathBuf::from) else {
        eprintln!("usage: berth shim-zygote SOCKET");
        return 2;
    };
    let _ = std::fs::remove_file(&socket);
    let listener = match UnixListener::bind(&socket) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("berth shim-zygote: binding {}: {e}", socket.display());
            return 1;
        }
    };
    // Shims are reaped by the kernel: the zygote never waits for them.
    // SAFETY: installing SIG_IGN for SIGCHLD runs no code.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    let _ = std::env::set_current_dir("/");
    // The spare argument (room for the shims' titles) is not for `ps` to show.
    set_title("berth", &format!("berth shim-zygote {}", socket.display()));
    let identity = exe_identity(Path::new("/proc/self/exe"));
    // Known once here, inherited by every shim forked from now on.
    let _ = berth_runtime::cgroups::Layout::detect_once();
    crate::memory::give_back();
    let mut trimmed = true;
    loop {
        // What a spawn touched goes back once no request came for a while, not after
        // each one: on two cores that work would run beside the new shim's create.
        if !trimmed && !readable_within(&listener, ZYGOTE_TRIM_AFTER_IDLE_MS) {
            crate::memory::give_back();
            trimmed = true;
            continue;
        }
        let Ok((conn, _)) = listener.accept() else { continue };
        trimmed = false;
        match serve_one(&listener, conn, &identity) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => eprintln!("berth shim-zygote: {e}"),
        }
    }
    let _ = std::fs::remove_file(&socket);
    0
}

/// How long the zygote waits without a request before giving memory back.
const ZYGOTE_TRIM_AFTER_IDLE_MS: u16 = 1000;

/// Whether `listener` has a connection waiting within `timeout_ms`.
fn readable_within(listener: &UnixListener, timeout_ms: u16) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(std::os::fd::AsFd::as_fd(listener), PollFlags::POLLIN)];
    // An interrupted or failed poll counts as readable: accept then decides.
    !matches!(poll(&mut fds, PollTimeout::from(timeout_ms)), Ok(0))
}

/// One request; false to stop serving.
fn serve_one(listener: &UnixListener, mut conn: UnixStream, identity: &str) -> io::Result<bool> {
    let (req, fd) = read_request(&conn)?;
    let reply = |conn: &mut UnixStream, r: &ZygoteResponse| -> io::Result<()> {
        let mut line = serde_json::to_vec(r).map_err(io::Error::other)?;
        line.push(b'\n');
        conn.write_all(&line)
    };
    match req {
        ZygoteRequest::Hello => reply(&mut conn, &ZygoteResponse { ok: true, exe: identity.to_string(), pid: std::process::id() as i32, ..Default::default() })?,
        ZygoteRequest::Quit => {
            reply(&mut conn, &ZygoteResponse { ok: true, ..Default::default() })?;
            return Ok(false);
        }
        ZygoteRequest::Spawn { state_dir } => {
            let Some(ready) = fd else {
                reply(&mut conn, &ZygoteResponse { ok: false, error: "no ready pipe came with the request".into(), ..Default::default() })?;
                return Ok(true);
            };
            let cfg = match ShimConfig::load(&state_dir) {
                Ok(c) => c,
                Err(e) => {
                    let error = format!("reading {}: {e}", state_dir.join(ShimConfig::FILE).display());
                    reply(&mut conn, &ZygoteResponse { ok: false, error, ..Default::default() })?;
                    return Ok(true);
                }
            };
            // SAFETY: the zygote is single-threaded, so the child starts with no lock held
            // by a thread that does not exist in it.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                let code = become_shim(listener.as_raw_fd(), conn.as_raw_fd(), cfg, ready);
                // SAFETY: _exit ends the child without running the zygote's destructors.
                unsafe { libc::_exit(code) };
            }
            drop(ready);
            if pid < 0 {
                let error = format!("fork: {}", io::Error::last_os_error());
                reply(&mut conn, &ZygoteResponse { ok: false, error, ..Default::default() })?;
            } else {
                reply(&mut conn, &ZygoteResponse { ok: true, pid, ..Default::default() })?;
            }
        }
    }
    Ok(true)
}

/// In the forked child: what `berth shim` gets from its exec — its own session, default
/// signals, stdio on /dev/null and the shim log — then the shim itself.
fn become_shim(listener: RawFd, conn: RawFd, cfg: ShimConfig, ready: OwnedFd) -> i32 {
    // SAFETY: closing the zygote's sockets (this process's copies); setsid and signal
    // resets take plain integers.
    unsafe {
        libc::close(listener);
        libc::close(conn);
        libc::setsid();
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
    }
    let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null");
    let log = std::fs::OpenOptions::new().create(true).append(true).open(cfg.state_dir.join("shim.log"));
    if let (Ok(null), Ok(log)) = (null, log) {
        // SAFETY: dup2 onto the standard descriptors, which nothing in this process owns.
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(null.as_raw_fd(), 1);
            libc::dup2(log.as_raw_fd(), 2);
        }
    }
    set_title("berth-shim", &format!("berth shim {}", cfg.state_dir.display()));
    crate::server::run(cfg, Some(ready))
}

/// Room for the titles of the shims to come: `berth shim-zygote <socket>` is started with
/// this many spare bytes of arguments (see [`main`]), since a forked shim can only write
/// its title over the argument area it inherits (moving it needs CAP_SYS_RESOURCE).
pub fn title_room(socket: &Path) -> usize {
    // A state dir is `<exec-root>/containers/<64 hex>`, the socket `<exec-root>/…`.
    socket.as_os_str().len() + 128
}

/// This process's name in `ps` (comm) and its command line, written over its argument
/// area (as setproctitle(3) does) and cut to fit; the rest of the area is zeroed.
/// Cosmetic: failures are ignored.
fn set_title(comm: &str, title: &str) {
    if let Ok(name) = std::ffi::CString::new(comm) {
        let _ = nix::sys::prctl::set_name(&name);
    }
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return };
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { return };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 48 and 49 (arg_start, arg_end); `rest` starts at field 3.
    let (Some(Ok(start)), Some(Ok(end))) = (f.get(45).map(|s| s.parse::<usize>()), f.get(46).map(|s| s.parse::<usize>())) else { return };
    if end <= start {
        return;
    }
    let room = end - start;
    let mut t: Vec<u8> = title.replace(' ', "\0").into_bytes();
    t.truncate(room - 1);
    t.push(0);
    // SAFETY: [start, end) is this process's own argument area as the kernel reports it,
    // on its initial stack; nothing holds a Rust reference into it (std copies argv out
    // at start), and it is overwritten in place without changing its bounds.
    unsafe {
        std::ptr::write_bytes(start as *mut u8, 0, room);
        std::ptr::copy_nonoverlapping(t.as_ptr(), start as *mut u8, t.len());
    }
}

fn read_request(conn: &UnixStream) -> io::Result<(ZygoteRequest, Option<OwnedFd>)> {
    let mut buf = vec![0u8; 8192];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let (n, fd) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(conn.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC).map_err(io::Error::from)?;
        let mut fd = None;
        for c in msg.cmsgs().map_err(io::Error::from)? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for f in fds {
                    // SAFETY: the kernel just installed this descriptor for us.
                    let owned = unsafe { OwnedFd::from_raw_fd(f) };
                    if fd.is_none() {
                        fd = Some(owned);
                    }
                }
            }
        }
        (msg.bytes, fd)
    };
    buf.truncate(n);
    // The request is one line; a long one may need more reads.
    let mut rd = BufReader::new(conn);
    while !buf.contains(&b'\n') {
        let mut more = String::new();
        if rd.read_line(&mut more)? == 0 {
            break;
        }
        buf.extend_from_slice(more.as_bytes());
    }
    let line = buf.split(|b| *b == b'\n').next().unwrap_or_default();
    let req = serde_json::from_slice(line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok((req, fd))
}

/// Sends one request (with `fd`, if any) and reads the answer.
pub fn call(socket: &Path, req: &ZygoteRequest, fd: Option<RawFd>) -> io::Result<ZygoteResponse> {
    let s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let mut line = serde_json::to_vec(req).map_err(io::Error::other)?;
    line.push(b'\n');
    let iov = [IoSlice::new(&line)];
    let fds = fd.map(|f| [f]);
    let cmsgs: Vec<ControlMessage> = fds.as_ref().map(|f| ControlMessage::ScmRights(f)).into_iter().collect();
    sendmsg::<()>(s.as_raw_fd(), &iov, &cmsgs, MsgFlags::empty(), None).map_err(io::Error::from)?;
    let mut answer = String::new();
    BufReader::new(&s).read_line(&mut answer)?;
    if answer.is_empty() {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the shim zygote closed the connection"));
    }
    serde_json::from_str(&answer).map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_json_lines() {
        let r = ZygoteRequest::Spawn { state_dir: "/run/berth/containers/abc".into() };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(s, r#"{"op":"spawn","state_dir":"/run/berth/containers/abc"}"#);
        assert_eq!(serde_json::from_str::<ZygoteRequest>(r#"{"op":"hello"}"#).unwrap(), ZygoteRequest::Hello);
    }

    #[test]
    fn hello_and_a_missing_pipe_over_a_real_socket() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("z.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let server = std::thread::spawn(move || {
            for _ in 0..2 {
                let (conn, _) = listener.accept().unwrap();
                serve_one(&listener, conn, "id-1").unwrap();
            }
        });
        let hello = call(&sock, &ZygoteRequest::Hello, None).unwrap();
        assert!(hello.ok && hello.exe == "id-1");
        let r = call(&sock, &ZygoteRequest::Spawn { state_dir: dir.path().into() }, None).unwrap();
        assert!(!r.ok && r.error.contains("ready pipe"), "{r:?}");
        server.join().unwrap();
    }
}
