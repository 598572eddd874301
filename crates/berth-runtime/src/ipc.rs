//! Messages between the runtime and the process it cloned (a SOCK_SEQPACKET pair, one
//! message per send), and passing a pty master over a unix socket (SCM_RIGHTS, as runc does
//! for --console-socket).

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg, sendmsg, socketpair,
};

use crate::error::{Context, Result};

/// Parent says: maps and cgroup are in place, go on.
pub(crate) const MSG_GO: u8 = b'G';
/// Child says: set up, waiting for start (or about to exec).
pub(crate) const MSG_READY: u8 = b'R';
/// Child says: failed; the rest of the message is the reason.
pub(crate) const MSG_ERROR: u8 = b'E';
/// Child says: the command cannot be run; the rest is a JSON `CommandError`.
pub(crate) const MSG_COMMAND: u8 = b'C';

pub(crate) fn pair() -> Result<(OwnedFd, OwnedFd)> {
    socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).ctx(|| "socketpair".into())
}

pub(crate) fn send(fd: &impl AsFd, kind: u8, body: &[u8]) -> Result<()> {
    let mut msg = Vec::with_capacity(body.len() + 1);
    msg.push(kind);
    msg.extend_from_slice(body);
    nix::sys::socket::send(fd.as_fd().as_raw_fd(), &msg, MsgFlags::MSG_NOSIGNAL)
        .map(drop)
        .ctx(|| "send to runtime peer".into())
}

/// One message; None on EOF (the peer closed or exec'd).
pub(crate) fn recv(fd: &impl AsFd) -> Result<Option<(u8, Vec<u8>)>> {
    let mut buf = vec![0u8; 8192];
    loop {
        match nix::sys::socket::recv(fd.as_fd().as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(0) => return Ok(None),
            Ok(n) => return Ok(Some((buf[0], buf[1..n].to_vec()))),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(crate::Error::errno("receive from runtime peer", e)),
        }
    }
}

/// Sends `fd` with `name` as payload (runc sends the pty's name).
pub fn send_fd(sock: RawFd, fd: RawFd, name: &str) -> Result<()> {
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(name.as_bytes())];
    sendmsg::<()>(sock, &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None)
        .map(drop)
        .ctx(|| "send pty master over the console socket".into())
}

/// Receives one fd sent with [`send_fd`] (what a console-socket listener does).
pub fn recv_fd(sock: RawFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
        .ctx(|| "receive from console socket".into())?;
    for c in msg.cmsgs().ctx(|| "read control message".into())? {
        if let ControlMessageOwned::ScmRights(fds) = c
            && let Some(fd) = fds.first() {
                // SAFETY: the kernel just installed this fd in our table for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
    }
    Err(crate::Error::Init("console socket message carried no file descriptor".into()))
}
