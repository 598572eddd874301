//! systemd's readiness protocol (`sd_notify`): under a `Type=notify` unit systemd sets
//! `NOTIFY_SOCKET`, and the daemon says `READY=1` once it serves, `RELOADING=1` while
//! it re-reads its configuration and `STOPPING=1` when it goes. A datagram each; no
//! socket, nothing to do.

use std::os::unix::net::UnixDatagram;

/// Sends `state` (newline-separated `KEY=VALUE`) to systemd; false when not under it.
pub fn notify(state: &str) -> bool {
    let Ok(path) = std::env::var("NOTIFY_SOCKET") else { return false };
    send(&path, state).is_ok()
}

fn send(path: &str, state: &str) -> std::io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    if let Some(name) = path.strip_prefix('@') {
        // An abstract socket: the name follows a NUL byte.
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_a_datagram_to_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("notify");
        let server = UnixDatagram::bind(&p).unwrap();
        send(p.to_str().unwrap(), "READY=1\nSTATUS=serving").unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=serving");
    }
}
