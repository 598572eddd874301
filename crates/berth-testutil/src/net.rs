//! Network fixtures: removing what a test daemon wrote into iptables, and a "hardened
//! host" — a network namespace of the test's own, firewalled like hosts where Docker,
//! ufw or a hardened distribution run (FORWARD policy DROP in iptables-nft and in
//! iptables-legacy, br_netfilter passing bridged traffic to iptables, another engine's
//! chains), with an "outside" namespace behind an uplink. The host's own firewall is
//! never touched.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

/// The iptables commands tests clean up after (IPv4 and IPv6, both backends).
const TOOLS: [&str; 4] = ["iptables-nft", "iptables-legacy", "ip6tables-nft", "ip6tables-legacy"];

fn legacy_filter_exists(tool: &str) -> bool {
    let names = if tool.starts_with("ip6") { "/proc/net/ip6_tables_names" } else { "/proc/net/ip_tables_names" };
    std::fs::read_to_string(names).is_ok_and(|t| t.lines().any(|l| l.trim() == "filter"))
}

/// Removes the FORWARD jumps and chains a berth daemon with nft table `table` wrote to
/// iptables in the current network namespace (after a daemon that was killed).
pub fn remove_berth_iptables(table: &str) {
    let comment = format!("berth:{table}\"");
    let suffix = format!("-{table}");
    for tool in TOOLS {
        // Listing a legacy table that does not exist would create it.
        if tool.contains("legacy") && !legacy_filter_exists(tool) {
            continue;
        }
        let Ok(out) = Command::new(tool).args(["-w", "5", "-S"]).stderr(Stdio::null()).output() else { continue };
        let listing = String::from_utf8_lossy(&out.stdout).into_owned();
        for l in listing.lines().filter(|l| l.starts_with("-A FORWARD ") && l.contains(&comment)) {
            let rule: Vec<String> = shell_words(&l[3..]);
            let _ = Command::new(tool).args(["-w", "5", "-D"]).args(&rule).stderr(Stdio::null()).status();
        }
        let chains: Vec<&str> = listing
            .lines()
            .filter_map(|l| l.strip_prefix("-N "))
            .filter(|c| (c.starts_with("BERTH-FORWARD") || c.starts_with("BERTH-USER")) && c.ends_with(&suffix))
            .collect();
        for c in &chains {
            let _ = Command::new(tool).args(["-w", "5", "-F", c]).stderr(Stdio::null()).status();
        }
        for c in &chains {
            let _ = Command::new(tool).args(["-w", "5", "-X", c]).stderr(Stdio::null()).status();
        }
    }
}

/// Splits an iptables rule as `-S` prints it (double quotes around comments).
fn shell_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for ch in s.chars() {
        match ch {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Lines of `<tool> -S [chain]`, run in `netns` (None: the current namespace).
pub fn iptables_rules(netns: Option<&str>, tool: &str, chain: Option<&str>) -> String {
    let mut args: Vec<&str> = vec![tool, "-w", "5", "-S"];
    args.extend(chain);
    String::from_utf8_lossy(&in_netns(netns, &args).stdout).into_owned()
}

/// Runs `args` in the named network namespace (`ip netns exec`), or here.
pub fn in_netns(netns: Option<&str>, args: &[&str]) -> Output {
    let mut c = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).args(args);
            c
        }
        None => {
            let mut c = Command::new(args[0]);
            c.args(&args[1..]);
            c
        }
    };
    c.stdin(Stdio::null()).output().expect("run a command")
}

/// A firewalled stand-in host (see the module doc). Dropped, both namespaces go, with
/// every rule, bridge and address in them.
pub struct HardenedHost {
    /// The namespace's name (`ip netns`), where a test daemon runs.
    pub name: String,
    /// The "internet": a namespace behind the uplink, at [`HardenedHost::OUTSIDE_IP`].
    pub outside: String,
    children: Vec<Child>,
    dir: tempfile::TempDir,
}

impl HardenedHost {
    /// The host's address on its uplink.
    pub const UPLINK_IP: &'static str = "192.0.2.1";
    /// The outside's address (and the host's default gateway).
    pub const OUTSIDE_IP: &'static str = "192.0.2.2";
    /// The host's IPv6 address on its uplink.
    pub const UPLINK_IP6: &'static str = "fd99::1";
    /// The outside's IPv6 address (and the host's IPv6 default gateway).
    pub const OUTSIDE_IP6: &'static str = "fd99::2";

    pub fn new() -> HardenedHost {
        crate::require_root();
        let tag = format!("{:x}", std::process::id() as u64 * 1000 + (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_micros() as u64 % 1000));
        let h = HardenedHost {
            name: format!("bhh{tag}"),
            outside: format!("bho{tag}"),
            children: Vec::new(),
            dir: crate::short_tempdir("bhh"),
        };
        for ns in [&h.name, &h.outside] {
            let st = Command::new("ip").args(["netns", "add", ns]).status().expect("ip netns add");
            assert!(st.success(), "ip netns add {ns}");
        }
        let setup = format!(
            r#"set -e
ip link set lo up
echo 1 > /proc/sys/net/ipv4/ip_forward
echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables
echo 1 > /proc/sys/net/bridge/bridge-nf-call-ip6tables
for t in iptables-nft iptables-legacy ip6tables-nft ip6tables-legacy; do $t -w -P FORWARD DROP; done
# Another engine's rules, as Docker 28 writes them (iptables-nft).
for c in DOCKER-USER DOCKER-FORWARD DOCKER-CT DOCKER-BRIDGE DOCKER-ISOLATION-STAGE-1 DOCKER-ISOLATION-STAGE-2 DOCKER; do iptables-nft -w -N $c; done
iptables-nft -w -A FORWARD -j DOCKER-USER
iptables-nft -w -A FORWARD -j DOCKER-FORWARD
iptables-nft -w -A DOCKER-FORWARD -j DOCKER-CT
iptables-nft -w -A DOCKER-FORWARD -j DOCKER-ISOLATION-STAGE-1
iptables-nft -w -A DOCKER-FORWARD -j DOCKER-BRIDGE
iptables-nft -w -A DOCKER-FORWARD -i docker0 -j ACCEPT
iptables-nft -w -A DOCKER-CT -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
iptables-nft -w -A DOCKER-BRIDGE -o docker0 -j DOCKER
iptables-nft -w -A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
iptables-nft -w -A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
iptables-nft -w -A DOCKER ! -i docker0 -o docker0 -j DROP
iptables-nft -w -t nat -N DOCKER
iptables-nft -w -t nat -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
iptables-nft -w -t nat -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
# And a ufw-like firewall in iptables-legacy.
iptables-legacy -w -N ufw-before-forward
iptables-legacy -w -N ufw-reject-forward
iptables-legacy -w -A FORWARD -j ufw-before-forward
iptables-legacy -w -A FORWARD -j ufw-reject-forward
iptables-legacy -w -A ufw-before-forward -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
# The uplink to the outside.
ip link add up0 type veth peer name up1 netns {outside}
ip addr add {up}/24 dev up0
ip addr add {up6}/64 dev up0 nodad
ip link set up0 up
ip route add default via {out}
ip -6 route add default via {out6}
"#,
            outside = h.outside,
            up = Self::UPLINK_IP,
            out = Self::OUTSIDE_IP,
            up6 = Self::UPLINK_IP6,
            out6 = Self::OUTSIDE_IP6
        );
        h.must(&setup);
        let outside = format!(
            "set -e\nip link set lo up\nip addr add {out}/24 dev up1\nip addr add {out6}/64 dev up1 nodad\nip link set up1 up\n",
            out = Self::OUTSIDE_IP,
            out6 = Self::OUTSIDE_IP6
        );
        let o = in_netns(Some(&h.outside), &["sh", "-c", &outside]);
        assert!(o.status.success(), "outside setup: {}", String::from_utf8_lossy(&o.stderr));
        h
    }

    /// The namespace's path, for `nsenter --net=`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Runs a shell script in the host namespace.
    pub fn sh(&self, script: &str) -> Output {
        in_netns(Some(&self.name), &["sh", "-c", script])
    }

    fn must(&self, script: &str) {
        let o = self.sh(script);
        assert!(o.status.success(), "in {}: {script}\n{}", self.name, String::from_utf8_lossy(&o.stderr));
    }

    /// `busybox wget` of `url` from the host namespace (bounded by `timeout`).
    pub fn wget(&self, url: &str) -> Option<String> {
        let o = in_netns(Some(&self.name), &["timeout", "5", "busybox", "wget", "-qO-", url]);
        o.status.success().then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// `busybox wget` of `url` from the outside namespace.
    pub fn wget_from_outside(&self, url: &str) -> Option<String> {
        let o = in_netns(Some(&self.outside), &["timeout", "5", "busybox", "wget", "-qO-", url]);
        o.status.success().then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// An HTTP server outside: `/` answers `text`, `/cgi-bin/peer` the address the
    /// request came from (to see masquerading).
    pub fn serve_outside(&mut self, text: &str) {
        let www = self.dir.path().join("www");
        std::fs::create_dir_all(www.join("cgi-bin")).expect("www");
        std::fs::write(www.join("index.html"), text).expect("index");
        let cgi = www.join("cgi-bin/peer");
        std::fs::write(&cgi, "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s' \"$REMOTE_ADDR\"\n").expect("cgi");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cgi, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.outside, "busybox", "httpd", "-f", "-p", "80", "-h"])
            .arg(&www)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("httpd outside");
        self.children.push(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let url = format!("http://{}/", Self::OUTSIDE_IP);
        while self.wget_from_outside(&url).as_deref() != Some(text) {
            assert!(std::time::Instant::now() < deadline, "httpd outside did not come up");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Default for HardenedHost {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for HardenedHost {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.name, &self.outside] {
            let _ = Command::new("ip").args(["netns", "del", ns]).stderr(Stdio::null()).status();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rules_split_like_a_shell() {
        assert_eq!(
            super::shell_words("FORWARD -m comment --comment \"berth:x y\" -j B"),
            vec!["FORWARD", "-m", "comment", "--comment", "berth:x y", "-j", "B"]
        );
    }
}
