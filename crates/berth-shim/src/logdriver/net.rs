//! Where network drivers send: `udp://`, `tcp://`, `unix://` (stream) and
//! `unixgram://` addresses, and a connection that comes back after a failure. The shim
//! must never stall on a log server: connects and writes have short timeouts, a message
//! that cannot be sent is dropped, and a broken connection is retried at most once a
//! second (on the next message).

use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);
const RETRY_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    Udp(String),
    Tcp(String),
    Unix(PathBuf),
    Unixgram(PathBuf),
}

impl Addr {
    /// `scheme://rest`; a missing port gets `default_port`. Only `schemes` are allowed.
    pub fn parse(s: &str, default_port: u16, schemes: &[&str]) -> Result<Addr, String> {
        let (scheme, rest) = s.split_once("://").ok_or_else(|| format!("invalid address {s:?}: use {}://...", schemes[0]))?;
        if !schemes.contains(&scheme) {
            return Err(format!("unsupported address scheme {scheme:?} in {s:?}: use one of {}", schemes.join(", ")));
        }
        let host_port = |r: &str| -> Result<String, String> {
            if r.is_empty() {
                return Err(format!("invalid address {s:?}: no host"));
            }
            let has_port = if let Some(v6) = r.strip_prefix('[') { v6.contains("]:") } else { r.contains(':') };
            Ok(if has_port { r.to_string() } else { format!("{r}:{default_port}") })
        };
        Ok(match scheme {
            "udp" => Addr::Udp(host_port(rest)?),
            "tcp" => Addr::Tcp(host_port(rest)?),
            "unix" => Addr::Unix(PathBuf::from(rest)),
            "unixgram" => Addr::Unixgram(PathBuf::from(rest)),
            other => return Err(format!("unsupported address scheme {other:?}")),
        })
    }

    pub fn is_stream(&self) -> bool {
        matches!(self, Addr::Tcp(_) | Addr::Unix(_))
    }
}

enum Socket {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Unix(UnixStream),
    Unixgram(UnixDatagram),
}

fn connect(addr: &Addr) -> io::Result<Socket> {
    Ok(match addr {
        Addr::Udp(hp) => {
            let target = hp.to_socket_addrs()?.next().ok_or_else(|| io::Error::other(format!("no address for {hp}")))?;
            let bind = if target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
            let s = UdpSocket::bind(bind)?;
            s.connect(target)?;
            s.set_nonblocking(true)?;
            Socket::Udp(s)
        }
        Addr::Tcp(hp) => {
            let mut last = io::Error::other(format!("no address for {hp}"));
            let mut found = None;
            for a in hp.to_socket_addrs()? {
                match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
                    Ok(s) => {
                        found = Some(s);
                        break;
                    }
                    Err(e) => last = e,
                }
            }
            let s = found.ok_or(last)?;
            s.set_write_timeout(Some(WRITE_TIMEOUT))?;
            let _ = s.set_nodelay(true);
            Socket::Tcp(s)
        }
        Addr::Unix(p) => {
            let s = UnixStream::connect(p)?;
            s.set_write_timeout(Some(WRITE_TIMEOUT))?;
            Socket::Unix(s)
        }
        Addr::Unixgram(p) => {
            let s = UnixDatagram::unbound()?;
            s.connect(p)?;
            s.set_write_timeout(Some(WRITE_TIMEOUT))?;
            Socket::Unixgram(s)
        }
    })
}

pub struct Conn {
    pub addr: Addr,
    sock: Option<Socket>,
    retry_at: Instant,
}

impl Conn {
    /// Connects now: a server that can't be reached fails the container's start, as
    /// Docker's drivers do (unless the driver is asked to connect later).
    pub fn open(addr: Addr) -> io::Result<Conn> {
        let sock = Some(connect(&addr)?);
        Ok(Conn { addr, sock, retry_at: Instant::now() })
    }

    /// A connection made on the first message (fluentd-async).
    pub fn lazy(addr: Addr) -> Conn {
        Conn { addr, sock: None, retry_at: Instant::now() }
    }

    /// One datagram, or bytes on the stream. Errors drop the connection (and the data).
    pub fn send(&mut self, data: &[u8]) -> io::Result<()> {
        if self.sock.is_none() {
            if Instant::now() < self.retry_at {
                return Err(io::Error::new(io::ErrorKind::NotConnected, "log server unreachable; retrying"));
            }
            match connect(&self.addr) {
                Ok(s) => self.sock = Some(s),
                Err(e) => {
                    self.retry_at = Instant::now() + RETRY_EVERY;
                    return Err(e);
                }
            }
        }
        let r = match self.sock.as_mut() {
            Some(Socket::Udp(s)) => s.send(data).map(|_| ()),
            Some(Socket::Tcp(s)) => s.write_all(data),
            Some(Socket::Unix(s)) => s.write_all(data),
            Some(Socket::Unixgram(s)) => s.send(data).map(|_| ()),
            None => Ok(()),
        };
        if let Err(e) = &r {
            // A datagram the kernel had no room for is just lost; a stream is redone.
            if e.kind() != io::ErrorKind::WouldBlock || self.addr.is_stream() {
                self.sock = None;
                self.retry_at = Instant::now() + RETRY_EVERY;
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let all = ["udp", "tcp", "unix", "unixgram"];
        assert_eq!(Addr::parse("udp://127.0.0.1", 514, &all).unwrap(), Addr::Udp("127.0.0.1:514".into()));
        assert_eq!(Addr::parse("tcp://[::1]:601", 514, &all).unwrap(), Addr::Tcp("[::1]:601".into()));
        assert_eq!(Addr::parse("unix:///dev/log", 514, &all).unwrap(), Addr::Unix("/dev/log".into()));
        assert!(Addr::parse("tcp+tls://h:1", 514, &all).is_err());
        assert!(Addr::parse("h:1", 514, &all).is_err());
        assert!(Addr::parse("udp://", 514, &all).is_err());
    }
}
