//! NAT, port forwarding and isolation as one nftables table owned by this daemon.
//!
//! The whole table is rendered from the manager's state and replaced in a single nft
//! transaction (`add table; delete table; table {...}`), so the kernel always holds
//! either the old or the new rule set, rules of removed networks and endpoints cannot
//! linger, and a restart after `kill -9` converges by rendering again. Nobody else's
//! tables or chains are touched. The script is plain nft syntax (what `nft list table`
//! prints), which keeps it readable and testable as text.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::error::{NetError, Result};
use crate::ports::Proto;

/// One bridge network as the firewall sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeRules {
    pub ifname: String,
    pub subnet: Ipv4Net,
    /// `--internal`: nothing leaves or enters the bridge except between its ports.
    pub internal: bool,
    /// Masquerade traffic leaving for other interfaces (outbound NAT).
    pub masquerade: bool,
}

/// One published port: traffic for host_ip:host_port goes to target_ip:target_port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dnat {
    pub proto: Proto,
    /// 0.0.0.0 means every local address, 127.0.0.1 included.
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub target_ip: Ipv4Addr,
    pub target_port: u16,
}

/// Everything the table must express.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirewallModel {
    pub bridges: Vec<BridgeRules>,
    pub dnats: Vec<Dnat>,
}

/// The nft script that atomically replaces `table ip <table>` with `model`.
pub fn render(table: &str, model: &FirewallModel) -> String {
    let mut s = String::new();
    // `add` makes the `delete` valid on a first run; all three lines are one transaction.
    let _ = writeln!(s, "add table ip {table}");
    let _ = writeln!(s, "delete table ip {table}");
    let _ = writeln!(s, "table ip {table} {{");

    s.push_str("\tset bridges {\n\t\ttype ifname\n");
    if !model.bridges.is_empty() {
        let names: Vec<String> = model.bridges.iter().map(|b| format!("\"{}\"", b.ifname)).collect();
        let _ = writeln!(s, "\t\telements = {{ {} }}", names.join(", "));
    }
    s.push_str("\t}\n");

    // Published ports: prerouting for traffic from outside and from containers, output
    // for the host's own connections (127.0.0.1 included, which is why bridges get
    // route_localnet and loopback sources are masqueraded below).
    s.push_str("\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n");
    s.push_str("\t\tfib daddr type local jump published\n\t}\n");
    s.push_str("\tchain output {\n\t\ttype nat hook output priority -100; policy accept;\n");
    s.push_str("\t\tfib daddr type local jump published\n\t}\n");
    s.push_str("\tchain published {\n");
    let mut dnats = model.dnats.clone();
    dnats.sort();
    for d in &dnats {
        s.push_str("\t\t");
        if !d.host_ip.is_unspecified() {
            let _ = write!(s, "ip daddr {} ", d.host_ip);
        }
        let _ = writeln!(s, "{} dport {} dnat to {}:{}", d.proto, d.host_port, d.target_ip, d.target_port);
    }
    s.push_str("\t}\n");

    s.push_str("\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n");
    for b in &model.bridges {
        // Host loopback → published port: the source must not stay 127.0.0.1.
        let _ = writeln!(s, "\t\toifname \"{}\" ip saddr 127.0.0.0/8 masquerade", b.ifname);
        // Hairpin: a container reaching a published port that leads back into its own
        // bridge; without this the answer would bypass the NAT and be dropped.
        let _ = writeln!(s, "\t\toifname \"{}\" ip saddr {} ct status dnat masquerade", b.ifname, b.subnet);
        if b.masquerade && !b.internal {
            let _ = writeln!(s, "\t\tip saddr {} oifname != \"{}\" masquerade", b.subnet, b.ifname);
        }
    }
    s.push_str("\t}\n");

    s.push_str("\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n");
    for b in model.bridges.iter().filter(|b| b.internal) {
        let _ = writeln!(s, "\t\tiifname \"{0}\" oifname != \"{0}\" drop", b.ifname);
        let _ = writeln!(s, "\t\toifname \"{0}\" iifname != \"{0}\" drop", b.ifname);
    }
    s.push_str("\t\tct state established,related accept\n");
    // Published ports are reachable from every network; plain traffic between two
    // bridge networks is not (Docker's isolation).
    s.push_str("\t\tct status dnat accept\n");
    for b in model.bridges.iter().filter(|b| !b.internal) {
        let _ = writeln!(s, "\t\tiifname \"{0}\" oifname @bridges oifname != \"{0}\" drop", b.ifname);
    }
    s.push_str("\t}\n}\n");
    s
}

/// The nft script that removes the table if it exists.
pub fn render_delete(table: &str) -> String {
    format!("add table ip {table}\ndelete table ip {table}\n")
}

/// Runs `nft -f -` with `script` on stdin.
pub async fn run_nft(script: &str) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| NetError::system("run nft", e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).await.map_err(|e| NetError::system("write to nft", e))?;
        drop(stdin);
    }
    let out = child.wait_with_output().await.map_err(|e| NetError::system("wait for nft", e))?;
    if !out.status.success() {
        return Err(NetError::system_msg(format!(
            "nft failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> FirewallModel {
        FirewallModel {
            bridges: vec![
                BridgeRules {
                    ifname: "br-a".into(),
                    subnet: "172.18.0.0/16".parse().unwrap(),
                    internal: false,
                    masquerade: true,
                },
                BridgeRules {
                    ifname: "br-i".into(),
                    subnet: "10.9.0.0/24".parse().unwrap(),
                    internal: true,
                    masquerade: true,
                },
            ],
            dnats: vec![
                Dnat {
                    proto: Proto::Tcp,
                    host_ip: "127.0.0.1".parse().unwrap(),
                    host_port: 18099,
                    target_ip: "172.18.0.2".parse().unwrap(),
                    target_port: 80,
                },
                Dnat {
                    proto: Proto::Udp,
                    host_ip: Ipv4Addr::UNSPECIFIED,
                    host_port: 5353,
                    target_ip: "172.18.0.3".parse().unwrap(),
                    target_port: 53,
                },
            ],
        }
    }

    #[test]
    fn rules_cover_nat_ports_isolation_and_internal() {
        let s = render("berthT", &model());
        assert!(s.starts_with("add table ip berthT\ndelete table ip berthT\ntable ip berthT {\n"));
        assert!(s.contains("elements = { \"br-a\", \"br-i\" }"));
        assert!(s.contains("\t\tip daddr 127.0.0.1 tcp dport 18099 dnat to 172.18.0.2:80\n"));
        assert!(s.contains("\t\tudp dport 5353 dnat to 172.18.0.3:53\n"));
        assert!(s.contains("ip saddr 172.18.0.0/16 oifname != \"br-a\" masquerade"));
        // Internal networks get no outbound NAT and are fenced in both directions.
        assert!(!s.contains("ip saddr 10.9.0.0/24 oifname != \"br-i\" masquerade"));
        assert!(s.contains("iifname \"br-i\" oifname != \"br-i\" drop"));
        assert!(s.contains("oifname \"br-i\" iifname != \"br-i\" drop"));
        assert!(s.contains("iifname \"br-a\" oifname @bridges oifname != \"br-a\" drop"));
        // The internal fence comes before anything that accepts.
        let fence = s.find("iifname \"br-i\" oifname != \"br-i\" drop").unwrap();
        let accept = s.find("ct state established,related accept").unwrap();
        assert!(fence < accept);
    }

    #[test]
    fn empty_model_is_still_a_valid_table() {
        let s = render("t", &FirewallModel::default());
        assert!(!s.contains("elements"));
        assert!(s.contains("chain published {\n\t}"));
        assert_eq!(render_delete("t"), "add table ip t\ndelete table ip t\n");
    }
}
