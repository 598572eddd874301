//! Fixtures for real-kernel tests: a unique daemon identity per test (bridge name,
//! nft table, subnets), namespaces standing in for containers, busybox processes in
//! them, and a Drop guard that removes everything the test made even if it panics.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth_net::{EndpointRequest, NetConfig};

pub struct Env {
    pub dir: tempfile::TempDir,
    /// Second octet of every subnet this test uses (10.<index>.x.x): unique per test.
    pub index: u8,
    pub table: String,
    pub bridge: String,
    netns: Mutex<Vec<PathBuf>>,
    children: Mutex<Vec<Child>>,
    links: Mutex<Vec<String>>,
}

fn rand_hex(n: usize) -> String {
    berth_net::ids::short_random_hex(n)
}

impl Env {
    pub fn new(index: u8) -> Env {
        berth_testutil::require_root();
        let hex = rand_hex(6);
        let env = Env {
            dir: berth_testutil::short_tempdir("bnet"),
            index,
            table: format!("bnt_{hex}"),
            bridge: format!("bn{hex}"),
            netns: Mutex::new(Vec::new()),
            children: Mutex::new(Vec::new()),
            links: Mutex::new(Vec::new()),
        };
        std::fs::write(env.dir.path().join("resolv.conf"), "nameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch example.org\n")
            .unwrap();
        env
    }

    pub fn config(&self) -> NetConfig {
        config_for(self.dir.path(), self.index, &self.table, &self.bridge)
    }

    pub fn subnet(&self, n: u8) -> String {
        format!("10.{}.{n}.0/24", self.index)
    }

    /// A fresh network namespace (a stand-in container), removed on drop.
    pub async fn netns(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join("ns").join(name);
        berth_net::netns::create_netns(&p).await.unwrap();
        self.netns.lock().unwrap().push(p.clone());
        p
    }

    /// A host interface the test made itself; deleted on drop if still there.
    pub fn own_link(&self, name: &str) {
        self.links.lock().unwrap().push(name.to_string());
    }

    /// Forgets a namespace the test deleted itself.
    pub fn forget_netns(&self, p: &Path) {
        self.netns.lock().unwrap().retain(|x| x != p);
    }

    pub fn request(&self, n: u8, netns: &Path) -> EndpointRequest {
        EndpointRequest {
            container_id: container_id(n),
            container_name: format!("c{n}"),
            netns: netns.to_path_buf(),
            ..Default::default()
        }
    }

    /// Runs a command inside the namespace and returns its output.
    pub fn run_in(&self, netns: &Path, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net={}", netns.display()))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `busybox httpd` on port 80 in the namespace, serving `body` at /.
    pub fn httpd(&self, netns: &Path, body: &str) {
        let www = self.dir.path().join(format!("www-{}", rand_hex(6)));
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("index.html"), body).unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net={}", netns.display()))
            .args(["busybox", "httpd", "-f", "-p", "80", "-h"])
            .arg(&www)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.children.lock().unwrap().push(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.wget(netns, "127.0.0.1:80").as_deref() == Some(body) {
                return;
            }
            assert!(Instant::now() < deadline, "httpd did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `busybox wget` from inside the namespace; None if it fails. (Debian's busybox
    /// 1.35 wget crashes on `-T`, so coreutils' timeout bounds it instead.)
    pub fn wget(&self, netns: &Path, hostport: &str) -> Option<String> {
        self.wget_within(netns, hostport, 5)
    }

    /// True when nothing answers within two seconds (dropped or refused).
    pub fn unreachable(&self, netns: &Path, hostport: &str) -> bool {
        self.wget_within(netns, hostport, 2).is_none()
    }

    fn wget_within(&self, netns: &Path, hostport: &str, secs: u32) -> Option<String> {
        let ns = format!("--net={}", netns.display());
        let url = format!("http://{hostport}/");
        let out = Command::new("timeout")
            .args([&secs.to_string(), "nsenter", &ns, "busybox", "wget", "-q", "-O", "-", &url])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `busybox wget http://<name>/` inside the namespace with `resolv_conf` as its
    /// /etc/resolv.conf (in a private mount namespace): name resolution goes through
    /// glibc's resolver to whatever the file names, as in a container.
    pub fn wget_by_name(&self, netns: &Path, resolv_conf: &Path, name: &str) -> Option<String> {
        let ns = format!("--net={}", netns.display());
        let script = format!(
            "mount --bind '{}' /etc/resolv.conf && exec busybox wget -q -O - 'http://{name}/'",
            resolv_conf.display()
        );
        let out = Command::new("timeout")
            .args(["8", "nsenter", &ns, "unshare", "-m", "sh", "-c", &script])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `busybox nslookup name 127.0.0.11` inside the namespace: the addresses found.
    pub fn nslookup(&self, netns: &Path, name: &str) -> Vec<Ipv4Addr> {
        let out = self.run_in(netns, &["busybox", "nslookup", "-type=a", name, "127.0.0.11"]);
        let text = String::from_utf8_lossy(&out.stdout);
        // Output: "Server: 127.0.0.11\nAddress: 127.0.0.11:53\n\nName: web\nAddress: 10.x.x.x\n"
        text.split("Name:")
            .skip(1)
            .flat_map(|s| s.lines())
            .filter_map(|l| l.trim().strip_prefix("Address:"))
            .filter_map(|a| a.trim().parse().ok())
            .collect()
    }

    /// Lines of `ip -o <args>` inside the namespace.
    pub fn ip_in(&self, netns: &Path, args: &[&str]) -> String {
        let mut full = vec!["ip", "-o"];
        full.extend_from_slice(args);
        String::from_utf8_lossy(&self.run_in(netns, &full).stdout).into_owned()
    }

    /// The nft table as the kernel has it ("" if there is none).
    pub fn nft_table(&self) -> String {
        let out = Command::new("nft").args(["list", "table", "inet", &self.table]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Host interfaces tagged by this test's daemon.
    pub fn tagged_links(&self) -> Vec<String> {
        links_with_alias_prefix(&format!("berth:{}:", self.table))
    }
}

pub fn config_for(dir: &Path, index: u8, table: &str, bridge: &str) -> NetConfig {
    let mut c = NetConfig::new(dir.join("state"));
    c.default_bridge = bridge.to_string();
    c.bip = Some(format!("10.{index}.0.1/24").parse().unwrap());
    c.address_pools =
        vec![berth_net::ipam::AddressPool::new(format!("10.{index}.128.0/17").parse().unwrap(), 24).unwrap()];
    c.nft_table = table.to_string();
    c.host_resolv_conf = dir.join("resolv.conf");
    c.dns_upstreams = Some(vec![]);
    c
}

pub fn container_id(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

/// Names of host links whose alias starts with `prefix`.
pub fn links_with_alias_prefix(prefix: &str) -> Vec<String> {
    let out = Command::new("ip").args(["-o", "link", "show"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&format!("alias {prefix}")))
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

pub fn link_exists(name: &str) -> bool {
    Command::new("ip").args(["link", "show", name]).output().unwrap().status.success()
}

/// A plain HTTP/1.0 GET from the test process (host namespace).
pub fn http_get(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    match buf.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.") && head.contains(" 200 ") => Ok(body.to_string()),
        _ => Err(std::io::Error::other(format!("bad answer: {buf:?}"))),
    }
}

/// The host's first IPv4 address on a real interface (not loopback, not 10.x).
pub fn host_address() -> Option<Ipv4Addr> {
    let out = Command::new("ip").args(["-o", "-4", "addr", "show", "scope", "global"]).output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "inet").nth(1))
        .filter_map(|a| a.split('/').next()?.parse::<Ipv4Addr>().ok())
        .find(|ip| ip.octets()[0] != 10)
}

impl Drop for Env {
    fn drop(&mut self) {
        for mut c in self.children.lock().unwrap().drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.netns.lock().unwrap().drain(..) {
            let _ = berth_net::netns::delete_netns(&ns);
        }
        let _ = Command::new("nft").args(["delete", "table", "inet", &self.table]).output();
        berth_testutil::net::remove_berth_iptables(&self.table);
        for l in self.links.lock().unwrap().drain(..).chain(self.tagged_links()) {
            let _ = Command::new("ip").args(["link", "del", &l]).output();
        }
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).output();
    }
}
