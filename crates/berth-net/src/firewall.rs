//! NAT, port forwarding and isolation as one nftables table owned by this daemon.
//!
//! The whole table (`table inet <name>`, IPv4 and IPv6 in one) is rendered from the
//! manager's state and replaced in a single nft transaction (`add table; delete table;
//! table {...}`), so the kernel always holds either the old or the new rule set, rules
//! of removed networks and endpoints cannot linger, and a restart after `kill -9`
//! converges by rendering again. Nobody else's tables or chains are touched. The
//! script is plain nft syntax (what `nft list table` prints), which keeps it readable
//! and testable as text.
//!
//! This table makes every decision (what is NATed, forwarded, isolated). Another
//! firewall's chains can still drop what this table lets through (a drop anywhere is
//! final); [`crate::iptables`] adds the accept rules that hosts with a `FORWARD` policy
//! of DROP need.

use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{NetError, Result};
use crate::ports::Proto;

/// One bridge network as the firewall sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeRules {
    pub ifname: String,
    /// IPv4 and (for IPv6 networks) IPv6 subnets.
    pub subnets: Vec<IpNet>,
    /// `--internal`: nothing leaves or enters the bridge except between its ports.
    pub internal: bool,
    /// Masquerade traffic leaving for other interfaces (outbound NAT).
    pub masquerade: bool,
    /// `enable_icc`: containers on the bridge may talk to each other. Off, only
    /// published ports and legacy links' ports are reachable (needs br_netfilter,
    /// as bridged traffic is only seen by the forward hook through it).
    pub icc: bool,
}

/// One published port: traffic for host_ip:host_port goes to target_ip:target_port.
/// host_ip and target_ip are of one family.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dnat {
    pub proto: Proto,
    /// 0.0.0.0 / :: mean every local address of that family, loopback included.
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub target_ip: IpAddr,
    pub target_port: u16,
}

/// A legacy link on an `enable_icc=false` bridge: `client` may open connections to
/// `server`'s exposed `port` (Docker opens exactly these for `--link`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LinkAccept {
    pub bridge: String,
    pub client: IpAddr,
    pub server: IpAddr,
    pub proto: Proto,
    pub port: u16,
}

/// Everything the table must express.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirewallModel {
    pub bridges: Vec<BridgeRules>,
    pub dnats: Vec<Dnat>,
    pub links: Vec<LinkAccept>,
}

fn fam(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() { "ip" } else { "ip6" }
}

fn net_fam(net: &IpNet) -> &'static str {
    match net {
        IpNet::V4(_) => "ip",
        IpNet::V6(_) => "ip6",
    }
}

/// The nft script that atomically replaces `table inet <table>` with `model`.
pub fn render(table: &str, model: &FirewallModel) -> String {
    let mut s = String::new();
    // `add` makes the `delete` valid on a first run; all three lines are one transaction.
    let _ = writeln!(s, "add table inet {table}");
    let _ = writeln!(s, "delete table inet {table}");
    let _ = writeln!(s, "table inet {table} {{");

    s.push_str("\tset bridges {\n\t\ttype ifname\n");
    if !model.bridges.is_empty() {
        let names: Vec<String> = model.bridges.iter().map(|b| format!("\"{}\"", b.ifname)).collect();
        let _ = writeln!(s, "\t\telements = {{ {} }}", names.join(", "));
    }
    s.push_str("\t}\n");

    // Published ports: prerouting for traffic from outside and from containers, output
    // for the host's own connections (127.0.0.1 included, which is why bridges get
    // route_localnet and loopback sources are masqueraded below). Each port is one
    // element of a map, so publishing or unpublishing one changes elements only
    // ([`render_dnat_changes`]), not the table.
    s.push_str("\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n");
    s.push_str("\t\tfib daddr type local jump published\n\t}\n");
    s.push_str("\tchain output {\n\t\ttype nat hook output priority -100; policy accept;\n");
    s.push_str("\t\tfib daddr type local jump published\n\t}\n");
    let mut dnats = model.dnats.clone();
    dnats.sort();
    // One element per key: two ports on one key cannot both hold their socket, and a
    // duplicate would make the whole table fail to load.
    dnats.dedup_by(|a, b| dnat_map(a) == dnat_map(b) && dnat_key(a) == dnat_key(b));
    for map in DNAT_MAPS {
        let _ = writeln!(s, "\tmap {} {{\n\t\ttype {}", map.name, map.kind);
        let elements: Vec<String> = dnats.iter().filter(|d| dnat_map(d) == map.name).map(dnat_element).collect();
        if !elements.is_empty() {
            let _ = writeln!(s, "\t\telements = {{ {} }}", elements.join(", "));
        }
        s.push_str("\t}\n");
    }
    s.push_str("\tchain published {\n");
    for map in DNAT_MAPS {
        let _ = writeln!(s, "\t\t{}", map.rule);
    }
    s.push_str("\t}\n");

    s.push_str("\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n");
    for b in &model.bridges {
        // Host loopback → published port: the source must not stay 127.0.0.1.
        let _ = writeln!(s, "\t\toifname \"{}\" ip saddr 127.0.0.0/8 masquerade", b.ifname);
        for net in &b.subnets {
            let f = net_fam(net);
            // Hairpin: a container reaching a published port that leads back into its
            // own bridge; without this the answer would bypass the NAT and be dropped.
            let _ = writeln!(s, "\t\toifname \"{}\" {f} saddr {net} ct status dnat masquerade", b.ifname);
            if b.masquerade && !b.internal {
                let _ = writeln!(s, "\t\t{f} saddr {net} oifname != \"{}\" masquerade", b.ifname);
            }
        }
    }
    s.push_str("\t}\n");

    s.push_str("\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n");
    for b in model.bridges.iter().filter(|b| b.internal) {
        let _ = writeln!(s, "\t\tiifname \"{0}\" oifname != \"{0}\" drop", b.ifname);
        let _ = writeln!(s, "\t\toifname \"{0}\" iifname != \"{0}\" drop", b.ifname);
    }
    s.push_str("\t\tct state established,related accept\n");
    // Published ports are reachable from every network and from outside; plain
    // traffic between two bridge networks is not (Docker's isolation), nor is traffic
    // routed to a container's address from outside (as Docker ≥ 28 in NAT mode).
    s.push_str("\t\tct status dnat accept\n");
    s.push_str("\t\toifname @bridges iifname != @bridges drop\n");
    for b in model.bridges.iter().filter(|b| !b.internal) {
        let _ = writeln!(s, "\t\tiifname \"{0}\" oifname @bridges oifname != \"{0}\" drop", b.ifname);
    }
    let mut links = model.links.clone();
    links.sort();
    for l in &links {
        let f = fam(&l.client);
        let _ = writeln!(
            s,
            "\t\tiifname \"{0}\" oifname \"{0}\" {f} saddr {1} {f} daddr {2} {3} dport {4} accept",
            l.bridge, l.client, l.server, l.proto, l.port
        );
    }
    for b in model.bridges.iter().filter(|b| !b.icc) {
        let _ = writeln!(s, "\t\tiifname \"{0}\" oifname \"{0}\" drop", b.ifname);
    }
    s.push_str("\t}\n}\n");
    s
}

/// One of the maps published ports live in.
struct DnatMap {
    name: &'static str,
    kind: &'static str,
    rule: &'static str,
}

/// By family, and by whether the port is published on one host address or on every
/// address of the family (0.0.0.0, [::] — the latter except ::1, which is the
/// userland proxy's: a packet from ::1 cannot be sent to a container).
const DNAT_MAPS: [DnatMap; 4] = [
    DnatMap {
        name: "pub4_addr",
        kind: "ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service",
        rule: "meta nfproto ipv4 dnat ip to ip daddr . meta l4proto . th dport map @pub4_addr",
    },
    DnatMap {
        name: "pub4_any",
        kind: "inet_proto . inet_service : ipv4_addr . inet_service",
        rule: "meta nfproto ipv4 dnat ip to meta l4proto . th dport map @pub4_any",
    },
    DnatMap {
        name: "pub6_addr",
        kind: "ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service",
        rule: "meta nfproto ipv6 dnat ip6 to ip6 daddr . meta l4proto . th dport map @pub6_addr",
    },
    DnatMap {
        name: "pub6_any",
        kind: "inet_proto . inet_service : ipv6_addr . inet_service",
        rule: "ip6 daddr != ::1 dnat ip6 to meta l4proto . th dport map @pub6_any",
    },
];

fn dnat_map(d: &Dnat) -> &'static str {
    match (d.host_ip.is_ipv4(), d.host_ip.is_unspecified()) {
        (true, false) => "pub4_addr",
        (true, true) => "pub4_any",
        (false, false) => "pub6_addr",
        (false, true) => "pub6_any",
    }
}

fn dnat_key(d: &Dnat) -> String {
    if d.host_ip.is_unspecified() { format!("{} . {}", d.proto, d.host_port) } else { format!("{} . {} . {}", d.host_ip, d.proto, d.host_port) }
}

fn dnat_element(d: &Dnat) -> String {
    format!("{} : {} . {}", dnat_key(d), d.target_ip, d.target_port)
}

/// The nft script (one transaction) that takes the table's published ports from
/// `before` to `after` by map elements alone: no rule or table is replaced, so the
/// kernel has no rule set to retire (which costs an RCU grace period, ~20 ms).
pub fn render_dnat_changes(table: &str, before: &[Dnat], after: &[Dnat]) -> String {
    let mut s = String::new();
    for d in before.iter().filter(|d| !after.contains(d)) {
        let _ = writeln!(s, "delete element inet {table} {} {{ {} }}", dnat_map(d), dnat_key(d));
    }
    for d in after.iter().filter(|d| !before.contains(d)) {
        let _ = writeln!(s, "add element inet {table} {} {{ {} }}", dnat_map(d), dnat_element(d));
    }
    s
}

/// The nft script that removes the table if it exists (and the `ip`-family table of
/// berth versions before IPv6, of the same name).
pub fn render_delete(table: &str) -> String {
    format!("add table inet {table}\ndelete table inet {table}\nadd table ip {table}\ndelete table ip {table}\n")
}

/// Runs `nft -f -` with `script` on stdin.
pub async fn run_nft(script: &str) -> Result<()> {
    let out = crate::tools::run("nft", &["-f", "-"], Some(script)).await?;
    if !out.success {
        return Err(NetError::system_msg(format!("nft failed: {}", out.stderr.trim())));
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
                    subnets: vec!["172.18.0.0/16".parse().unwrap(), "fd00:1::/64".parse().unwrap()],
                    internal: false,
                    masquerade: true,
                    icc: true,
                },
                BridgeRules {
                    ifname: "br-i".into(),
                    subnets: vec!["10.9.0.0/24".parse().unwrap()],
                    internal: true,
                    masquerade: true,
                    icc: true,
                },
                BridgeRules {
                    ifname: "br-q".into(),
                    subnets: vec!["10.8.0.0/24".parse().unwrap()],
                    internal: false,
                    masquerade: true,
                    icc: false,
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
                    host_ip: "0.0.0.0".parse().unwrap(),
                    host_port: 5353,
                    target_ip: "172.18.0.3".parse().unwrap(),
                    target_port: 53,
                },
                Dnat {
                    proto: Proto::Tcp,
                    host_ip: "::".parse().unwrap(),
                    host_port: 8080,
                    target_ip: "fd00:1::2".parse().unwrap(),
                    target_port: 80,
                },
            ],
            links: vec![LinkAccept {
                bridge: "br-q".into(),
                client: "10.8.0.3".parse().unwrap(),
                server: "10.8.0.2".parse().unwrap(),
                proto: Proto::Tcp,
                port: 80,
            }],
        }
    }

    #[test]
    fn rules_cover_nat_ports_isolation_and_internal() {
        let s = render("berthT", &model());
        assert!(s.starts_with("add table inet berthT\ndelete table inet berthT\ntable inet berthT {\n"));
        assert!(s.contains("elements = { \"br-a\", \"br-i\", \"br-q\" }"));
        assert!(s.contains("\tmap pub4_addr {\n\t\ttype ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service\n\t\telements = { 127.0.0.1 . tcp . 18099 : 172.18.0.2 . 80 }\n"), "{s}");
        assert!(s.contains("\t\telements = { udp . 5353 : 172.18.0.3 . 53 }\n"));
        assert!(s.contains("\t\telements = { tcp . 8080 : fd00:1::2 . 80 }\n"));
        assert!(s.contains("\t\tip6 daddr != ::1 dnat ip6 to meta l4proto . th dport map @pub6_any\n"));
        assert!(s.contains("ip saddr 172.18.0.0/16 oifname != \"br-a\" masquerade"));
        assert!(s.contains("ip6 saddr fd00:1::/64 oifname != \"br-a\" masquerade"));
        // Internal networks get no outbound NAT and are fenced in both directions.
        assert!(!s.contains("ip saddr 10.9.0.0/24 oifname != \"br-i\" masquerade"));
        assert!(s.contains("iifname \"br-i\" oifname != \"br-i\" drop"));
        assert!(s.contains("oifname \"br-i\" iifname != \"br-i\" drop"));
        assert!(s.contains("iifname \"br-a\" oifname @bridges oifname != \"br-a\" drop"));
        assert!(s.contains("oifname @bridges iifname != @bridges drop"));
        // The internal fence comes before anything that accepts.
        let fence = s.find("iifname \"br-i\" oifname != \"br-i\" drop").unwrap();
        let accept = s.find("ct state established,related accept").unwrap();
        assert!(fence < accept);
    }

    #[test]
    fn icc_off_drops_within_the_bridge_after_published_ports_and_links() {
        let s = render("t", &model());
        let dnat = s.find("ct status dnat accept").unwrap();
        let link = s
            .find("iifname \"br-q\" oifname \"br-q\" ip saddr 10.8.0.3 ip daddr 10.8.0.2 tcp dport 80 accept")
            .unwrap();
        let icc = s.find("iifname \"br-q\" oifname \"br-q\" drop").unwrap();
        assert!(dnat < icc && link < icc);
        assert!(!s.contains("iifname \"br-a\" oifname \"br-a\" drop"));
    }

    #[test]
    fn port_changes_are_map_elements() {
        let m = model();
        let mut after = m.dnats.clone();
        let gone = after.remove(0);
        after.push(Dnat { proto: Proto::Tcp, host_ip: "0.0.0.0".parse().unwrap(), host_port: 9000, target_ip: "172.18.0.9".parse().unwrap(), target_port: 90 });
        let s = render_dnat_changes("t", &m.dnats, &after);
        assert_eq!(s, "delete element inet t pub4_addr { 127.0.0.1 . tcp . 18099 }\nadd element inet t pub4_any { tcp . 9000 : 172.18.0.9 . 90 }\n");
        assert_eq!(gone.host_port, 18099);
        assert_eq!(render_dnat_changes("t", &after, &after), "");
    }

    #[test]
    fn empty_model_is_still_a_valid_table() {
        let s = render("t", &FirewallModel::default());
        assert!(!s.contains("elements"));
        assert!(s.contains("\tmap pub6_any {\n\t\ttype inet_proto . inet_service : ipv6_addr . inet_service\n\t}\n"));
        assert!(render_delete("t").starts_with("add table inet t\ndelete table inet t\n"));
    }
}
