//! Network benchmarks for berth-net (run by bench/net/run.sh, as root).
//!
//! TCP throughput with iperf3 through each path a container's traffic can take:
//! the bridge itself (host → container address), berth's published port (in-kernel
//! DNAT on 127.0.0.1), docker-proxy (Docker's userland proxy for loopback, the binary
//! from Debian's docker.io) on the same container, container → container, and
//! container → another container's published port. Then the time to create and
//! remove 100 networks. Prints a markdown report on stdout.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_net::{EndpointRequest, HostPort, NetConfig, NetworkCreateRequest, NetworkManager, PortBindingRequest, Proto};

const SECONDS: &str = "5";

struct Cleanup {
    children: Vec<Child>,
    netns: Vec<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for n in &self.netns {
            let _ = berth_net::netns::delete_netns(n);
        }
        // After a panic the manager's teardown did not run: remove what is tagged.
        let _ = Command::new("nft").args(["delete", "table", "ip", "berth_bench"]).output();
        if let Ok(out) = Command::new("ip").args(["-o", "link", "show"]).output() {
            for line in String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains("alias berth:berth_bench:")) {
                if let Some(name) = line.split(": ").nth(1).and_then(|n| n.split('@').next()) {
                    let _ = Command::new("ip").args(["link", "del", name]).output();
                }
            }
        }
    }
}

/// Rounds per path; each path's median is reported. The paths are interleaved in
/// every round so that load from other work on the machine hits them alike.
const ROUNDS: usize = 3;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs iperf3 (optionally inside a namespace) and returns Gbit/s received. The
/// server takes one client at a time, so a "busy" answer is retried.
fn iperf(netns: Option<&Path>, host: &str, port: u16) -> f64 {
    for _ in 0..5 {
        if let Some(g) = iperf_once(netns, host, port) {
            return g;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("iperf3 to {host}:{port} kept failing");
}

fn iperf_once(netns: Option<&Path>, host: &str, port: u16) -> Option<f64> {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={}", ns.display())).arg("iperf3");
            c
        }
        None => Command::new("iperf3"),
    };
    let out = cmd.args(["-c", host, "-p", &port.to_string(), "-t", SECONDS, "-J"]).output().expect("run iperf3");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    if !v["error"].is_null() {
        eprintln!("iperf3 to {host}:{port}: {}", v["error"]);
    }
    Some(v["end"]["sum_received"]["bits_per_second"].as_f64()? / 1e9)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(addr: (Ipv4Addr, u16)) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect_timeout(&addr.into(), Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "{addr:?} never answered");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let docker_proxy = std::env::args().nth(1).map(PathBuf::from);
    let dir = tempfile::Builder::new().prefix("bnbench").tempdir_in("/tmp").unwrap();
    let mut config = NetConfig::new(dir.path().join("state"));
    config.default_bridge = "bnbench0".into();
    config.bip = Some("10.250.0.1/24".parse().unwrap());
    config.address_pools = vec![berth_net::ipam::AddressPool::new("10.250.128.0/17".parse().unwrap(), 24).unwrap()];
    config.nft_table = "berth_bench".into();
    config.dns_upstreams = Some(vec![]);
    let m = NetworkManager::open(config).await.unwrap();
    let mut cleanup = Cleanup { children: vec![], netns: vec![] };

    m.create_network(NetworkCreateRequest::named("bench").with_subnet("10.250.1.0/24", None, None)).await.unwrap();
    let ns_srv = dir.path().join("srv");
    let ns_cli = dir.path().join("cli");
    for ns in [&ns_srv, &ns_cli] {
        berth_net::netns::create_netns(ns).await.unwrap();
        cleanup.netns.push(ns.clone());
    }
    let id = |n: u8| format!("{n:02x}").repeat(32);
    let srv = m
        .connect("bench", EndpointRequest { container_id: id(1), container_name: "srv".into(), netns: ns_srv.clone(), ..Default::default() })
        .await
        .unwrap();
    m.connect("bench", EndpointRequest { container_id: id(2), container_name: "cli".into(), netns: ns_cli.clone(), ..Default::default() })
        .await
        .unwrap();
    cleanup.children.push(
        Command::new("nsenter")
            .arg(format!("--net={}", ns_srv.display()))
            .args(["iperf3", "-s", "-p", "5201"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port((srv.ip, 5201));

    let published = m
        .publish(&id(1), &[PortBindingRequest { container_port: 5201, proto: Proto::Tcp, host_ip: None, host_port: HostPort::Any }])
        .await
        .unwrap()[0]
        .host_port;
    let proxy_port = free_port();
    if let Some(dp) = &docker_proxy {
        // dockerd hands docker-proxy a pipe as fd 3 to report readiness on; without an
        // fd 3, the proxy would close its own listener instead.
        let script = format!(
            "exec '{}' -proto tcp -host-ip 127.0.0.1 -host-port {proxy_port} -container-ip {} -container-port 5201 3>/dev/null",
            dp.display(),
            srv.ip
        );
        cleanup.children.push(Command::new("sh").args(["-c", &script]).spawn().unwrap());
        wait_for_port((Ipv4Addr::LOCALHOST, proxy_port));
    }

    let (mut d, mut b, mut p, mut cc, mut cp) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        d.push(iperf(None, &srv.ip.to_string(), 5201));
        b.push(iperf(None, "127.0.0.1", published));
        if docker_proxy.is_some() {
            p.push(iperf(None, "127.0.0.1", proxy_port));
        }
        cc.push(iperf(Some(&ns_cli), &srv.ip.to_string(), 5201));
        cp.push(iperf(Some(&ns_cli), "10.250.1.1", published));
    }
    let (direct, berth_lo, c2c, c2pub) = (median(d), median(b), median(cc), median(cp));
    let proxy = (!p.is_empty()).then(|| median(p));
    m.release(&id(1)).await.unwrap();
    m.release(&id(2)).await.unwrap();
    drop(cleanup);

    // 100 networks: create (bridge + nft table rewrite each) then remove.
    let t = Instant::now();
    let mut ids = Vec::new();
    for i in 0..100 {
        ids.push(m.create_network(NetworkCreateRequest::named(format!("n{i}"))).await.unwrap().id);
    }
    let create = t.elapsed();
    let t = Instant::now();
    for id in &ids {
        m.remove_network(id).await.unwrap();
    }
    let remove = t.elapsed();
    m.teardown().await.unwrap();

    let ratio = |x: f64| format!("{:.2}", x / direct);
    println!("TCP throughput, iperf3 {SECONDS} s per run, median of {ROUNDS} interleaved rounds.\n");
    println!("| path | Gbit/s | ratio to the bridge |");
    println!("|---|---|---|");
    println!("| host → container address (bridge, no NAT) | {direct:.2} | 1.00 |");
    println!("| host → 127.0.0.1 published port, berth (nft DNAT) | {berth_lo:.2} | {} |", ratio(berth_lo));
    match proxy {
        Some(p) => println!(
            "| host → 127.0.0.1 published port, docker-proxy (Docker's default loopback path) | {p:.2} | {} |",
            ratio(p)
        ),
        None => println!("| docker-proxy | not run (no binary given) | |"),
    }
    println!("| container → container (same network) | {c2c:.2} | {} |", ratio(c2c));
    println!("| container → published port via the gateway (DNAT, hairpin) | {c2pub:.2} | {} |", ratio(c2pub));
    if let Some(p) = proxy {
        println!("\nberth published port / docker-proxy: **{:.2}x**", berth_lo / p);
    }
    println!();
    println!("| 100 networks | total | per network |");
    println!("|---|---|---|");
    println!("| create | {:.2} s | {:.1} ms |", create.as_secs_f64(), create.as_secs_f64() * 10.0);
    println!("| remove | {:.2} s | {:.1} ms |", remove.as_secs_f64(), remove.as_secs_f64() * 10.0);
}
