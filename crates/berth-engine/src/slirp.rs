//! Rootless networking: one slirp4netns per container, as rootless Docker and Podman
//! do. The rootless daemon may not make bridges, veths or firewall rules in the host's
//! network namespace (it is root only in a user namespace of its own). So each container
//! gets a network namespace of that user namespace, and slirp4netns connects it to the
//! host with a tap device and a user-mode TCP/IP stack:
//!
//! - `--configure`: tap0 gets 10.0.2.100/24, the route via 10.0.2.2, DNS at 10.0.2.3.
//! - `--disable-host-loopback`: the container cannot reach the host's 127.0.0.1 through
//!   10.0.2.2 (services on the host's loopback stay private, as with rootless Docker).
//! - `--mtu=65520`: slirp's own recommendation; it is much faster than 1500.
//! - `--enable-sandbox --enable-seccomp`: as rootless dockerd runs it.
//! - `-p` is published with the `add_hostfwd` call of its API socket: slirp4netns runs
//!   in the daemon's network namespace, the host's, so it listens on the host.
//! - It is started when the network is attached and waited for (ready, ports added)
//!   only just before the container's process starts: it comes up while the shim
//!   creates the container.
//!
//! slirp4netns is started in its own session (it outlives a daemon that dies, like the
//! container it serves) and is stopped when the container stops. Its pid is kept in
//! `<exec-root>/slirp/<id>.pid` so that a restarted daemon can stop it too.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_net::ports::{HostPort, PortBindingRequest, Proto};

use crate::error::{Error, Result};

/// The container's address on slirp4netns's network, and the gateway and DNS it gives.
pub const CONTAINER_IP: &str = "10.0.2.100";
pub const GATEWAY: &str = "10.0.2.2";
pub const DNS: &str = "10.0.2.3";
pub const PREFIX_LEN: i64 = 24;
/// The interface slirp4netns makes in the container's namespace.
const TAP: &str = "tap0";

/// The slirp4netns processes of running containers.
#[derive(Default)]
pub struct Slirps {
    children: std::sync::Mutex<HashMap<String, std::process::Child>>,
}

/// A port as published: what `docker port` and inspect show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub container_port: u16,
    pub proto: Proto,
    pub host_ip: IpAddr,
    pub host_port: u16,
}

fn dir(exec_root: &Path) -> PathBuf {
    exec_root.join("slirp")
}

fn short(id: &str) -> &str {
    &id[..12.min(id.len())]
}

pub fn api_socket(exec_root: &Path, id: &str) -> PathBuf {
    dir(exec_root).join(format!("{}.sock", short(id)))
}

fn pid_file(exec_root: &Path, id: &str) -> PathBuf {
    dir(exec_root).join(format!("{}.pid", short(id)))
}

fn log_file(exec_root: &Path, id: &str) -> PathBuf {
    dir(exec_root).join(format!("{}.log", short(id)))
}

/// A slirp4netns started for a container but not yet known to be up: the start of the
/// container's process waits for it ([`Slirps::finish`]), so the helper comes up while
/// the shim creates the container rather than before.
pub struct Pending {
    id: String,
    ready: OwnedFd,
    ports: Vec<Published>,
}

impl Pending {
    /// The ports as they will be published (host ports chosen already).
    pub fn ports(&self) -> &[Published] {
        &self.ports
    }
}

impl Slirps {
    /// Starts slirp4netns on the network namespace at `netns`, without waiting for it;
    /// the host ports of `ports` are chosen now (what inspect shows from the start).
    pub fn spawn(&self, exec_root: &Path, id: &str, netns: &Path, mtu: u32, ports: &[PortBindingRequest]) -> Result<Pending> {
        let ports = ports.iter().map(resolve).collect::<Result<Vec<_>>>()?;
        let d = dir(exec_root);
        std::fs::create_dir_all(&d)?;
        let sock = api_socket(exec_root, id);
        let _ = std::fs::remove_file(&sock);
        let log = std::fs::File::create(log_file(exec_root, id))?;
        let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::system(format!("pipe: {e}")))?;
        let mut cmd = std::process::Command::new("slirp4netns");
        cmd.arg("--configure")
            .arg(format!("--mtu={mtu}"))
            .arg("--disable-host-loopback")
            // It parses whatever the container sends: confined as rootless dockerd
            // confines it (a mount namespace with nothing in it, capabilities dropped,
            // a syscall filter).
            .arg("--enable-sandbox")
            .arg("--enable-seccomp")
            .arg("--netns-type=path")
            .arg(format!("--api-socket={}", sock.display()))
            .arg("--ready-fd=3")
            .arg(netns)
            .arg(TAP)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let w = ready_w.as_raw_fd();
        // SAFETY: only async-signal-safe calls between fork and exec (dup2, setsid).
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                // fd 3 is the ready pipe (dup2 clears close-on-exec on the copy).
                if libc::dup2(w, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Its own session: the daemon's terminal and process group are not its.
                libc::setsid();
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::unavailable("rootless networking needs slirp4netns (Debian: apt-get install slirp4netns), or use --network none or host")
            } else {
                Error::system(format!("starting slirp4netns: {e}"))
            }
        })?;
        drop(ready_w);
        let pid = child.id();
        let _ = std::fs::write(pid_file(exec_root, id), pid.to_string());
        self.children.lock().unwrap_or_else(|p| p.into_inner()).insert(id.to_string(), child);
        Ok(Pending { id: id.to_string(), ready: ready_r, ports })
    }

    /// Waits until tap0 is configured (slirp4netns's --ready-fd), then publishes the
    /// ports through its API. On failure slirp4netns is stopped.
    pub async fn finish(&self, exec_root: &Path, p: Pending) -> Result<()> {
        let Pending { id, ready, ports } = p;
        let ok = tokio::task::spawn_blocking(move || wait_ready(ready)).await.unwrap_or(false);
        if !ok {
            let why = std::fs::read_to_string(log_file(exec_root, &id)).unwrap_or_default();
            self.stop(exec_root, &id);
            let why: Vec<&str> = why.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            let why = if why.is_empty() { "it exited".to_string() } else { why[why.len().saturating_sub(3)..].join("; ") };
            let hint = if why.contains("/dev/net/tun") {
                " (slirp4netns needs /dev/net/tun open to the user: mode 0666, as Debian's udev makes it; as root: chmod 0666 /dev/net/tun)"
            } else {
                ""
            };
            return Err(Error::system(format!("slirp4netns did not come up: {why}{hint}")));
        }
        let sock = api_socket(exec_root, &id);
        for p in &ports {
            if let Err(e) = add_hostfwd(&sock, p).await {
                self.stop(exec_root, &id);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Stops the container's slirp4netns (ours, or one a previous daemon started).
    pub fn stop(&self, exec_root: &Path, id: &str) {
        let child = self.children.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        match child {
            Some(mut c) => {
                let _ = c.kill();
                // Its exit waits out the tap device's teardown (an RCU grace period):
                // reaped on a thread of its own, the container's stop does not wait.
                let _ = std::thread::Builder::new().name("slirp-reap".into()).spawn(move || {
                    let _ = c.wait();
                });
            }
            None => {
                // A previous daemon's: its pid file, checked against its command line
                // (the pid may have been reused).
                if let Some(pid) = std::fs::read_to_string(pid_file(exec_root, id)).ok().and_then(|s| s.trim().parse::<i32>().ok()) {
                    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                    let cmd = String::from_utf8_lossy(&cmd);
                    if cmd.starts_with("slirp4netns") && cmd.contains(&api_socket(exec_root, id).to_string_lossy().into_owned()) {
                        // SAFETY: a signal to a process id; no memory is involved.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            }
        }
        for p in [pid_file(exec_root, id), api_socket(exec_root, id), log_file(exec_root, id)] {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// One byte on the ready pipe: tap0 is up and configured. EOF: slirp4netns exited.
fn wait_ready(r: OwnedFd) -> bool {
    let mut f = std::fs::File::from(r);
    let fd = f.as_raw_fd();
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: pfd is one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, 10_000) };
    if n <= 0 {
        return false;
    }
    let mut b = [0u8; 1];
    matches!(f.read(&mut b), Ok(1))
}

/// A free port on `ip` for `-p ip::80` (slirp4netns needs a number). The kernel picks
/// it; it is free again when slirp4netns binds it a moment later.
fn free_port(ip: IpAddr, proto: Proto) -> Result<u16> {
    let port = match proto {
        Proto::Tcp => std::net::TcpListener::bind((ip, 0))?.local_addr()?.port(),
        Proto::Udp => std::net::UdpSocket::bind((ip, 0))?.local_addr()?.port(),
    };
    Ok(port)
}

/// The address and port a binding will take on the host.
fn resolve(p: &PortBindingRequest) -> Result<Published> {
    let host_ip = p.host_ip.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    if host_ip.is_ipv6() {
        return Err(Error::invalid(format!("rootless: publishing on an IPv6 address ({host_ip}) is not supported by slirp4netns' port forwarder")));
    }
    let host_port = match p.host_port {
        HostPort::Single(n) if n != 0 => n,
        HostPort::Range(lo, _) => lo,
        _ => free_port(host_ip, p.proto)?,
    };
    Ok(Published { container_port: p.container_port, proto: p.proto, host_ip, host_port })
}

async fn add_hostfwd(sock: &Path, p: &Published) -> Result<()> {
    let (host_ip, host_port) = (p.host_ip, p.host_port);
    let proto = match p.proto {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    };
    let req = serde_json::json!({
        "execute": "add_hostfwd",
        "arguments": {"proto": proto, "host_addr": host_ip.to_string(), "host_port": host_port, "guest_addr": CONTAINER_IP, "guest_port": p.container_port},
    });
    let sock = sock.to_path_buf();
    let answer = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let mut s = std::os::unix::net::UnixStream::connect(&sock)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(req.to_string().as_bytes())?;
        s.shutdown(std::net::Shutdown::Write)?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    })
    .await
    .map_err(|e| Error::system(e.to_string()))?
    .map_err(|e| Error::system(format!("slirp4netns API: {e}")))?;
    let v: serde_json::Value = serde_json::from_str(answer.trim()).map_err(|e| Error::system(format!("slirp4netns API answered {answer:?}: {e}")))?;
    if let Some(e) = v.get("error") {
        let desc = e.get("desc").and_then(|d| d.as_str()).unwrap_or("refused");
        return Err(Error::conflict(format!("publishing {host_ip}:{host_port}:{}/{proto}: {desc} (is the port in use?)", p.container_port)));
    }
    Ok(())
}

/// resolv.conf for a slirp4netns container: its DNS forwarder, unless the container or
/// the daemon names servers of its own (then `files` already lists them).
pub fn resolv_conf(generated: &str, own_servers: bool) -> String {
    if own_servers {
        return generated.to_string();
    }
    // Where the first nameserver was (after the generated header), else at the end.
    let mut out = Vec::new();
    let mut put = false;
    for l in generated.lines() {
        if l.trim_start().starts_with("nameserver") {
            if !put {
                out.push(format!("nameserver {DNS}"));
                put = true;
            }
        } else {
            out.push(l.to_string());
        }
    }
    if !put {
        out.push(format!("nameserver {DNS}"));
    }
    out.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_points_at_slirps_forwarder() {
        let g = "# generated\nnameserver 8.8.8.8\nnameserver 1.1.1.1\nsearch example.org\n";
        let r = resolv_conf(g, false);
        assert_eq!(r, "# generated\nnameserver 10.0.2.3\nsearch example.org\n");
        assert_eq!(resolv_conf("# none\n", false), "# none\nnameserver 10.0.2.3\n");
        assert_eq!(resolv_conf(g, true), g);
    }
}
