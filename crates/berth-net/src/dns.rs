//! The embedded DNS server (Docker's 127.0.0.11 resolver).
//!
//! Each container on a user-defined network gets a UDP and a TCP socket bound to
//! 127.0.0.11:53 *inside its own network namespace* (made by a helper thread that
//! setns()es, binds and returns the fds); the daemon serves them from its runtime. A
//! query is answered from the containers sharing a network with the asker (names,
//! network aliases, short IDs, `name.network`, and PTR for their addresses); anything
//! else is forwarded, raw, to the upstream servers: the container's `--dns` servers from
//! the container's own namespace (as Docker does: they are the container's servers, and
//! may be reachable only from there), the host's servers from the host's namespace
//! (loopback ones included, e.g. systemd-resolved's 127.0.0.53).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// TTL of answers about containers (Docker uses 600 s).
const LOCAL_TTL: u32 = 600;
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many forwarded queries in flight per daemon (Docker: 100).
const MAX_CONCURRENT_FORWARDS: usize = 100;

#[derive(Debug, Clone)]
struct DnsEntry {
    names: Vec<String>,
    ip: Ipv4Addr,
    ip6: Option<Ipv6Addr>,
    container_name: String,
}

#[derive(Debug, Clone, Default)]
struct DnsNetwork {
    name: String,
    entries: Vec<DnsEntry>,
}

/// The records every sandbox may see; rebuilt by the manager after each change.
#[derive(Debug, Clone, Default)]
pub struct DnsTable {
    networks: HashMap<String, DnsNetwork>,
    /// container id → its DNS-enabled networks, in connect order.
    sandboxes: HashMap<String, Vec<String>>,
    /// container id → `--dns` servers overriding the host's.
    upstreams: HashMap<String, Vec<SocketAddr>>,
    /// (container id, network id) → that endpoint's link aliases (alias, container name).
    links: HashMap<(String, String), Vec<(String, String)>>,
}

impl DnsTable {
    pub fn add_network(&mut self, network_id: &str, name: &str) {
        self.networks
            .entry(network_id.to_string())
            .or_insert_with(|| DnsNetwork { name: name.to_lowercase(), entries: Vec::new() });
    }

    /// Registers an endpoint: `names` resolve to `ip` (and `ip6`, on dual-stack
    /// networks) for containers on `network_id`.
    pub fn add_endpoint(
        &mut self,
        network_id: &str,
        container_id: &str,
        container_name: &str,
        names: &[String],
        ip: Ipv4Addr,
        ip6: Option<Ipv6Addr>,
    ) {
        let Some(net) = self.networks.get_mut(network_id) else { return };
        net.entries.push(DnsEntry {
            names: names.iter().map(|n| n.to_lowercase()).collect(),
            ip,
            ip6,
            container_name: container_name.to_string(),
        });
        let nets = self.sandboxes.entry(container_id.to_string()).or_default();
        if !nets.iter().any(|n| n == network_id) {
            nets.push(network_id.to_string());
        }
    }

    /// Link aliases of one endpoint: `alias` resolves to the container called `name` on
    /// the same network, for `container_id` only.
    pub fn add_links(&mut self, container_id: &str, network_id: &str, links: &[(String, String)]) {
        if !links.is_empty() {
            let lower = links.iter().map(|(a, n)| (a.to_lowercase(), n.to_lowercase())).collect();
            self.links.insert((container_id.to_string(), network_id.to_string()), lower);
        }
    }

    pub fn set_upstreams(&mut self, container_id: &str, servers: Vec<SocketAddr>) {
        if !servers.is_empty() {
            self.upstreams.insert(container_id.to_string(), servers);
        }
    }

    /// Addresses for `qname` as seen from `container_id`; `None` if the name is not
    /// a container's (so the query goes upstream).
    pub fn lookup(&self, container_id: &str, qname: &str) -> Option<Vec<IpAddr>> {
        let q = qname.trim_end_matches('.').to_lowercase();
        for net_id in self.sandboxes.get(container_id)? {
            let Some(net) = self.networks.get(net_id) else { continue };
            let suffix = format!(".{}", net.name);
            let mut wanted = q.strip_suffix(&suffix).unwrap_or(&q);
            if let Some(links) = self.links.get(&(container_id.to_string(), net_id.clone()))
                && let Some((_, target)) = links.iter().find(|(alias, _)| alias == wanted)
            {
                wanted = target;
            }
            let found: Vec<&DnsEntry> = net.entries.iter().filter(|e| e.names.iter().any(|n| n == wanted)).collect();
            if !found.is_empty() {
                let v4 = found.iter().map(|e| IpAddr::V4(e.ip));
                let v6 = found.iter().filter_map(|e| e.ip6.map(IpAddr::V6));
                return Some(v4.chain(v6).collect());
            }
        }
        None
    }

    /// The name of the container at `ip` ("name.network"), if it shares a network
    /// with `container_id`.
    pub fn reverse(&self, container_id: &str, ip: IpAddr) -> Option<String> {
        for net_id in self.sandboxes.get(container_id)? {
            let Some(net) = self.networks.get(net_id) else { continue };
            let hit = |e: &&DnsEntry| match ip {
                IpAddr::V4(a) => e.ip == a,
                IpAddr::V6(a) => e.ip6 == Some(a),
            };
            if let Some(e) = net.entries.iter().find(hit) {
                let name = if e.container_name.is_empty() { e.names.first()?.clone() } else { e.container_name.clone() };
                return Some(format!("{name}.{}", net.name));
            }
        }
        None
    }

    fn upstreams_for(&self, container_id: &str) -> Option<&Vec<SocketAddr>> {
        self.upstreams.get(container_id)
    }
}

/// What to do with one query.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// Not ours: forward the query as is.
    Forward,
    /// Unparseable: ignore it (as resolvers do with garbage).
    Drop,
}

fn reply_to(req: &Message, code: ResponseCode) -> Message {
    let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
    resp.metadata.message_type = MessageType::Response;
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.metadata.response_code = code;
    resp.add_queries(req.queries.iter().cloned());
    resp
}

fn encode(msg: &Message) -> Answer {
    match msg.to_vec() {
        Ok(b) => Answer::Reply(b),
        Err(e) => {
            tracing::warn!("dns: cannot encode an answer: {e}");
            Answer::Drop
        }
    }
}

fn arpa_to_ip(name: &Name) -> Option<IpAddr> {
    match name.parse_arpa_name().ok()? {
        ipnet::IpNet::V4(n) if n.prefix_len() == 32 => Some(IpAddr::V4(n.addr())),
        ipnet::IpNet::V6(n) if n.prefix_len() == 128 => Some(IpAddr::V6(n.addr())),
        _ => None,
    }
}

/// Answers `query` (wire format) for `container_id` from `table`.
pub fn answer(table: &DnsTable, container_id: &str, query: &[u8]) -> Answer {
    let Ok(req) = Message::from_vec(query) else { return Answer::Drop };
    if req.metadata.message_type != MessageType::Query {
        return Answer::Drop;
    }
    if req.metadata.op_code != OpCode::Query {
        return encode(&reply_to(&req, ResponseCode::NotImp));
    }
    let Some(q) = req.queries.first() else { return encode(&reply_to(&req, ResponseCode::FormErr)) };
    let qname = q.name().to_ascii();
    match q.query_type() {
        RecordType::PTR => match arpa_to_ip(q.name()).and_then(|ip| table.reverse(container_id, ip)) {
            Some(target) => {
                let Ok(target) = Name::from_ascii(format!("{target}.")) else { return Answer::Forward };
                let mut resp = reply_to(&req, ResponseCode::NoError);
                resp.add_answer(Record::from_rdata(q.name().clone(), LOCAL_TTL, RData::PTR(PTR(target))));
                encode(&resp)
            }
            None => Answer::Forward,
        },
        qtype => match table.lookup(container_id, &qname) {
            None => Answer::Forward,
            Some(ips) => {
                let mut resp = reply_to(&req, ResponseCode::NoError);
                // A container name with no address of the asked type (AAAA on an
                // IPv4-only network, MX, ...) gets an empty NOERROR, so the asker does
                // not wait on upstream.
                for ip in ips {
                    let rdata = match (qtype, ip) {
                        (RecordType::A, IpAddr::V4(a)) => RData::A(A(a)),
                        (RecordType::AAAA, IpAddr::V6(a)) => RData::AAAA(AAAA(a)),
                        _ => continue,
                    };
                    resp.add_answer(Record::from_rdata(q.name().clone(), LOCAL_TTL, rdata));
                }
                encode(&resp)
            }
        },
    }
}

fn servfail(query: &[u8]) -> Option<Vec<u8>> {
    let req = Message::from_vec(query).ok()?;
    reply_to(&req, ResponseCode::ServFail).to_vec().ok()
}

/// Where a forwarded query goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstreams {
    pub servers: Vec<SocketAddr>,
    /// Sent from the container's namespace (its `--dns` servers) rather than the host's.
    pub from_container: bool,
}

/// State shared by every sandbox's server.
pub struct DnsShared {
    pub table: RwLock<DnsTable>,
    default_upstreams: RwLock<Vec<SocketAddr>>,
    forwards: Arc<Semaphore>,
}

impl DnsShared {
    pub fn new(default_upstreams: Vec<SocketAddr>) -> Arc<Self> {
        Arc::new(DnsShared {
            table: RwLock::new(DnsTable::default()),
            default_upstreams: RwLock::new(default_upstreams),
            forwards: Arc::new(Semaphore::new(MAX_CONCURRENT_FORWARDS)),
        })
    }

    /// The host's servers (after its resolv.conf changed).
    pub fn set_default_upstreams(&self, servers: Vec<SocketAddr>) {
        match self.default_upstreams.write() {
            Ok(mut g) => *g = servers,
            Err(p) => *p.into_inner() = servers,
        }
    }

    pub fn default_upstreams(&self) -> Vec<SocketAddr> {
        match self.default_upstreams.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn replace_table(&self, t: DnsTable) {
        match self.table.write() {
            Ok(mut g) => *g = t,
            Err(poisoned) => *poisoned.into_inner() = t,
        }
    }

    fn answer(&self, container_id: &str, query: &[u8]) -> (Answer, Upstreams) {
        let table = match self.table.read() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let a = answer(&table, container_id, query);
        let ups = match table.upstreams_for(container_id) {
            Some(own) => Upstreams { servers: own.clone(), from_container: true },
            None => Upstreams { servers: self.default_upstreams(), from_container: false },
        };
        (a, ups)
    }
}

/// A UDP socket connected to `up`, made in `netns` (None: the daemon's namespace).
async fn udp_to(up: SocketAddr, netns: Option<&Path>) -> Option<UdpSocket> {
    let bind: SocketAddr = if up.is_ipv4() { "0.0.0.0:0".parse().ok()? } else { "[::]:0".parse().ok()? };
    let std_sock = match netns {
        None => std::net::UdpSocket::bind(bind).ok()?,
        Some(ns) => crate::netns::run_in_netns(ns, move || std::net::UdpSocket::bind(bind)).await.ok()?,
    };
    std_sock.set_nonblocking(true).ok()?;
    let sock = UdpSocket::from_std(std_sock).ok()?;
    sock.connect(up).await.ok()?;
    Some(sock)
}

/// A TCP connection to `up`, made in `netns` (None: the daemon's namespace).
async fn tcp_to(up: SocketAddr, netns: Option<&Path>) -> Option<TcpStream> {
    match netns {
        None => TcpStream::connect(up).await.ok(),
        Some(ns) => {
            // The socket must be created inside the namespace; connecting it there
            // too keeps the thread's work in one place (bounded by the timeout).
            let s = crate::netns::run_in_netns(ns, move || {
                let s = std::net::TcpStream::connect_timeout(&up, UPSTREAM_TIMEOUT)?;
                s.set_nonblocking(true)?;
                Ok(s)
            })
            .await
            .ok()?;
            TcpStream::from_std(s).ok()
        }
    }
}

async fn forward_udp(query: &[u8], upstreams: &[SocketAddr], netns: Option<&Path>) -> Option<Vec<u8>> {
    let id = query.get(..2)?;
    for up in upstreams {
        let Some(sock) = udp_to(*up, netns).await else { continue };
        if sock.send(query).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 65535];
        let deadline = tokio::time::Instant::now() + UPSTREAM_TIMEOUT;
        // Ignore stray datagrams whose ID does not match the query.
        loop {
            match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
                Ok(Ok(n)) if n >= 2 && &buf[..2] == id => return Some(buf[..n].to_vec()),
                Ok(Ok(_)) => continue,
                _ => break,
            }
        }
    }
    None
}

async fn forward_tcp(query: &[u8], upstreams: &[SocketAddr], netns: Option<&Path>) -> Option<Vec<u8>> {
    for up in upstreams {
        let attempt = async {
            let mut s = tcp_to(*up, netns).await?;
            let len = u16::try_from(query.len()).ok()?;
            s.write_all(&len.to_be_bytes()).await.ok()?;
            s.write_all(query).await.ok()?;
            let n = s.read_u16().await.ok()? as usize;
            let mut buf = vec![0u8; n];
            s.read_exact(&mut buf).await.ok()?;
            Some(buf)
        };
        if let Ok(Some(r)) = tokio::time::timeout(UPSTREAM_TIMEOUT, attempt).await {
            return Some(r);
        }
    }
    None
}

/// One sandbox's running server; dropping it stops serving (the sockets close).
pub struct DnsServer {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl DnsServer {
    /// Serves `udp` and `tcp` (already bound inside the container's namespace, at
    /// `netns`) for `container_id`. Must be called within a tokio runtime.
    pub fn start(
        container_id: String,
        netns: PathBuf,
        udp: std::net::UdpSocket,
        tcp: std::net::TcpListener,
        shared: Arc<DnsShared>,
    ) -> std::io::Result<Self> {
        udp.set_nonblocking(true)?;
        tcp.set_nonblocking(true)?;
        let udp = Arc::new(UdpSocket::from_std(udp)?);
        let tcp = TcpListener::from_std(tcp)?;
        let ctx = Arc::new(Ctx { cid: container_id, netns, shared });
        let udp_task = tokio::spawn(serve_udp(udp, ctx.clone()));
        let tcp_task = tokio::spawn(serve_tcp(tcp, ctx));
        Ok(DnsServer { tasks: vec![udp_task, tcp_task] })
    }
}

/// What one sandbox's server works with.
struct Ctx {
    cid: String,
    netns: PathBuf,
    shared: Arc<DnsShared>,
}

impl Ctx {
    fn source(&self, ups: &Upstreams) -> Option<&Path> {
        ups.from_container.then_some(self.netns.as_path())
    }
}

async fn serve_udp(sock: Arc<UdpSocket>, ctx: Arc<Ctx>) {
    let (cid, shared) = (&ctx.cid, &ctx.shared);
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!("dns udp recv for {cid}: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let query = buf[..n].to_vec();
        match shared.answer(cid, &query) {
            (Answer::Reply(r), _) => {
                let _ = sock.send_to(&r, peer).await;
            }
            (Answer::Drop, _) => {}
            (Answer::Forward, ups) => {
                // Beyond the limit, answer SERVFAIL at once rather than queue unboundedly.
                let Ok(permit) = shared.forwards.clone().try_acquire_owned() else {
                    if let Some(r) = servfail(&query) {
                        let _ = sock.send_to(&r, peer).await;
                    }
                    continue;
                };
                let sock = sock.clone();
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let resp = forward_udp(&query, &ups.servers, ctx.source(&ups)).await.or_else(|| servfail(&query));
                    if let Some(r) = resp {
                        let _ = sock.send_to(&r, peer).await;
                    }
                });
            }
        }
    }
}

async fn serve_tcp(listener: TcpListener, ctx: Arc<Ctx>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let _ = serve_tcp_conn(stream, &ctx).await;
        });
    }
}

async fn serve_tcp_conn(mut s: TcpStream, ctx: &Ctx) -> std::io::Result<()> {
    let (cid, shared) = (ctx.cid.as_str(), &ctx.shared);
    loop {
        let n = match tokio::time::timeout(TCP_IDLE_TIMEOUT, s.read_u16()).await {
            Ok(Ok(n)) => n as usize,
            _ => return Ok(()),
        };
        let mut query = vec![0u8; n];
        s.read_exact(&mut query).await?;
        let resp = match shared.answer(cid, &query) {
            (Answer::Reply(r), _) => Some(r),
            (Answer::Drop, _) => None,
            (Answer::Forward, ups) => forward_tcp(&query, &ups.servers, ctx.source(&ups)).await.or_else(|| servfail(&query)),
        };
        let Some(r) = resp else { return Ok(()) };
        let len = u16::try_from(r.len()).map_err(|_| std::io::Error::other("answer too large"))?;
        s.write_all(&len.to_be_bytes()).await?;
        s.write_all(&r).await?;
    }
}

/// Upstream servers (port 53) for the embedded DNS from the host's resolv.conf.
pub fn upstreams_from(servers: &[IpAddr]) -> Vec<SocketAddr> {
    servers.iter().map(|ip| SocketAddr::new(*ip, 53)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> DnsTable {
        let mut t = DnsTable::default();
        t.add_network("n1", "frontend");
        t.add_network("n2", "backend");
        t.add_endpoint("n1", "c-web", "web", &["web".into(), "www".into(), "aaaaaaaaaaaa".into()], "10.1.0.2".parse().unwrap(), None);
        t.add_endpoint("n1", "c-cli", "cli", &["cli".into()], "10.1.0.3".parse().unwrap(), None);
        t.add_endpoint("n2", "c-db", "db", &["db".into()], "10.2.0.2".parse().unwrap(), None);
        t.add_endpoint("n2", "c-web", "web", &["web".into()], "10.2.0.3".parse().unwrap(), None);
        t
    }

    fn query(name: &str, qtype: RecordType) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = 4242;
        m.metadata.recursion_desired = true;
        m.add_query(hickory_proto::op::Query::query(Name::from_ascii(name).unwrap(), qtype));
        m.to_vec().unwrap()
    }

    fn reply(a: Answer) -> Message {
        match a {
            Answer::Reply(b) => Message::from_vec(&b).unwrap(),
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    fn a_records(m: &Message) -> Vec<Ipv4Addr> {
        m.answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn names_resolve_only_on_shared_networks() {
        let t = table();
        let m = reply(answer(&t, "c-cli", &query("web.", RecordType::A)));
        assert_eq!(m.metadata.id, 4242);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(a_records(&m), vec!["10.1.0.2".parse::<Ipv4Addr>().unwrap()]);
        // Alias, short ID, case, and name.network.
        for name in ["www.", "aaaaaaaaaaaa.", "WEB.", "web.frontend."] {
            let m = reply(answer(&t, "c-cli", &query(name, RecordType::A)));
            assert_eq!(a_records(&m).len(), 1, "{name}");
        }
        // cli is not on backend: db is unknown to it and goes upstream.
        assert_eq!(answer(&t, "c-cli", &query("db.", RecordType::A)), Answer::Forward);
        // web is on both: sees db on backend.
        let m = reply(answer(&t, "c-web", &query("db.", RecordType::A)));
        assert_eq!(a_records(&m), vec!["10.2.0.2".parse::<Ipv4Addr>().unwrap()]);
        // Unknown sandbox or name: forward.
        assert_eq!(answer(&t, "nobody", &query("web.", RecordType::A)), Answer::Forward);
        assert_eq!(answer(&t, "c-cli", &query("example.com.", RecordType::A)), Answer::Forward);
    }

    #[test]
    fn link_aliases_resolve_for_the_linking_container_only() {
        let mut t = table();
        t.add_links("c-cli", "n1", &[("store".into(), "web".into())]);
        let m = reply(answer(&t, "c-cli", &query("STORE.", RecordType::A)));
        assert_eq!(a_records(&m), vec!["10.1.0.2".parse::<Ipv4Addr>().unwrap()]);
        assert_eq!(answer(&t, "c-web", &query("store.", RecordType::A)), Answer::Forward);
    }

    #[test]
    fn dual_stack_names_answer_aaaa_and_ip6_ptr() {
        let mut t = table();
        t.add_network("n6", "v6net");
        t.add_endpoint("n6", "c-six", "six", &["six".into()], "10.6.0.2".parse().unwrap(), Some("fd00:6::2".parse().unwrap()));
        t.add_endpoint("n6", "c-cli", "cli", &["cli".into()], "10.6.0.3".parse().unwrap(), Some("fd00:6::3".parse().unwrap()));
        let m = reply(answer(&t, "c-cli", &query("six.", RecordType::AAAA)));
        let v6: Vec<Ipv6Addr> = m.answers.iter().filter_map(|r| match &r.data { RData::AAAA(a) => Some(a.0), _ => None }).collect();
        assert_eq!(v6, vec!["fd00:6::2".parse::<Ipv6Addr>().unwrap()]);
        let m = reply(answer(&t, "c-cli", &query("six.", RecordType::A)));
        assert_eq!(a_records(&m), vec!["10.6.0.2".parse::<Ipv4Addr>().unwrap()]);
        let arpa = Name::from(IpAddr::V6("fd00:6::2".parse().unwrap())).to_ascii();
        let m = reply(answer(&t, "c-cli", &query(&arpa, RecordType::PTR)));
        match &m.answers[0].data {
            RData::PTR(p) => assert_eq!(p.0.to_ascii(), "six.v6net."),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn aaaa_for_a_container_is_empty_not_forwarded() {
        let m = reply(answer(&table(), "c-cli", &query("web.", RecordType::AAAA)));
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty());
    }

    #[test]
    fn ptr_for_container_addresses() {
        let m = reply(answer(&table(), "c-cli", &query("2.0.1.10.in-addr.arpa.", RecordType::PTR)));
        match &m.answers[0].data {
            RData::PTR(p) => assert_eq!(p.0.to_ascii(), "web.frontend."),
            other => panic!("{other:?}"),
        }
        assert_eq!(answer(&table(), "c-cli", &query("2.0.2.10.in-addr.arpa.", RecordType::PTR)), Answer::Forward);
    }

    #[test]
    fn garbage_is_dropped() {
        assert_eq!(answer(&table(), "c-cli", b"\x01\x02"), Answer::Drop);
        let sf = servfail(&query("x.", RecordType::A)).unwrap();
        assert_eq!(Message::from_vec(&sf).unwrap().metadata.response_code, ResponseCode::ServFail);
    }
}
