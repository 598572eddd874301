//! The userland proxy for what in-kernel NAT cannot do: published ports reached over
//! IPv6 loopback (`[::1]`: IPv6 has no `route_localnet`, a packet from ::1 cannot be
//! sent to a container), and IPv6 host addresses of containers that have no IPv6
//! address (there is no NAT from IPv6 to IPv4). Docker runs docker-proxy for these;
//! berth serves them from the daemon: a TCP connection or a UDP flow is relayed to the
//! container's address, from the daemon's namespace. Everything else stays in-kernel.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::ports::Proto;

/// A UDP flow with no traffic for this long is forgotten (docker-proxy: 90 s).
const UDP_IDLE: Duration = Duration::from_secs(90);

/// One running relay; dropping it stops it (the listening socket closes with it).
pub struct Proxy {
    pub target: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// Serves `socket` (a bound — for TCP, listening — socket the proxy now owns),
    /// relaying to `target`. Must be called within a tokio runtime.
    pub fn start(socket: std::os::fd::OwnedFd, proto: Proto, target: SocketAddr) -> std::io::Result<Proxy> {
        let task = match proto {
            Proto::Tcp => {
                let l = std::net::TcpListener::from(socket);
                l.set_nonblocking(true)?;
                tokio::spawn(serve_tcp(TcpListener::from_std(l)?, target))
            }
            Proto::Udp => {
                let u = std::net::UdpSocket::from(socket);
                u.set_nonblocking(true)?;
                tokio::spawn(serve_udp(Arc::new(UdpSocket::from_std(u)?), target))
            }
        };
        Ok(Proxy { target, task })
    }
}

async fn serve_tcp(listener: TcpListener, target: SocketAddr) {
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        tokio::spawn(async move {
            let Ok(Ok(mut upstream)) = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(target)).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        });
    }
}

struct Flow {
    upstream: Arc<UdpSocket>,
    last: Arc<std::sync::Mutex<Instant>>,
    _replies: JoinHandle<()>,
}

async fn serve_udp(socket: Arc<UdpSocket>, target: SocketAddr) {
    let flows: Arc<Mutex<HashMap<SocketAddr, Flow>>> = Arc::default();
    let mut buf = vec![0u8; 65535];
    let mut last_sweep = Instant::now();
    loop {
        let Ok((n, client)) = socket.recv_from(&mut buf).await else { continue };
        let mut f = flows.lock().await;
        if last_sweep.elapsed() > UDP_IDLE {
            f.retain(|_, fl| fl.last.lock().map(|t| t.elapsed() < UDP_IDLE).unwrap_or(false));
            last_sweep = Instant::now();
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = f.entry(client) {
            let bind: SocketAddr = if target.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
            let Ok(up) = UdpSocket::bind(bind).await else { continue };
            if up.connect(target).await.is_err() {
                continue;
            }
            let up = Arc::new(up);
            let last = Arc::new(std::sync::Mutex::new(Instant::now()));
            let replies = tokio::spawn(relay_replies(up.clone(), socket.clone(), client, last.clone()));
            slot.insert(Flow { upstream: up, last, _replies: replies });
        }
        if let Some(flow) = f.get(&client) {
            if let Ok(mut t) = flow.last.lock() {
                *t = Instant::now();
            }
            let _ = flow.upstream.send(&buf[..n]).await;
        }
    }
}

async fn relay_replies(up: Arc<UdpSocket>, socket: Arc<UdpSocket>, client: SocketAddr, last: Arc<std::sync::Mutex<Instant>>) {
    let mut buf = vec![0u8; 65535];
    while let Ok(Ok(n)) = tokio::time::timeout(UDP_IDLE, up.recv(&mut buf)).await {
        if let Ok(mut t) = last.lock() {
            *t = Instant::now();
        }
        let _ = socket.send_to(&buf[..n], client).await;
    }
}
