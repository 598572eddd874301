//! What on this host will break container networking, said as `/info` warnings
//! (dockerd's wording where dockerd has the same warning). The checks read sysctls,
//! the FORWARD policies of both iptables backends and the nftables base chains on the
//! forward hook; the parsing is here, the reading is the manager's (through the
//! dataplane).

/// One forward-hook base chain of another nftables table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardChain {
    pub family: String,
    pub table: String,
    pub name: String,
    pub policy_drop: bool,
}

/// The forward-hook base chains in `nft -j list chains` output.
pub fn forward_chains(json: &str) -> Vec<ForwardChain> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else { return Vec::new() };
    let Some(items) = v.get("nftables").and_then(|n| n.as_array()) else { return Vec::new() };
    items
        .iter()
        .filter_map(|i| i.get("chain"))
        .filter(|c| c.get("hook").and_then(|h| h.as_str()) == Some("forward"))
        .map(|c| {
            let s = |k: &str| c.get(k).and_then(|x| x.as_str()).unwrap_or_default().to_string();
            ForwardChain { family: s("family"), table: s("table"), name: s("name"), policy_drop: s("policy") == "drop" }
        })
        .collect()
}

/// Whether `iptables -S FORWARD` output starts with a DROP policy.
pub fn forward_policy_drop(listing: &str) -> bool {
    listing.lines().any(|l| l.trim() == "-P FORWARD DROP")
}

/// Warnings about nftables tables that berth cannot write its accepts into: drops by
/// default in another table's forward chain are final, whatever berth accepts.
pub fn foreign_chain_warnings(chains: &[ForwardChain], own_table: &str, bridge: &str) -> Vec<String> {
    let mut out = Vec::new();
    for c in chains {
        // iptables-nft's own tables are handled through iptables (crate::iptables).
        let iptables_nft = matches!(c.family.as_str(), "ip" | "ip6") && c.table == "filter" && c.name == "FORWARD";
        if c.table == own_table || iptables_nft {
            continue;
        }
        if c.table == "firewalld" {
            if !out.iter().any(|w: &String| w.contains("firewalld")) {
                out.push(format!(
                    "WARNING: firewalld is running: it rejects forwarded traffic of interfaces outside its zones; put berth's bridges in a trusted zone (firewall-cmd --permanent --zone=trusted --add-interface={bridge}, and the same for user networks' br-* bridges)"
                ));
            }
            continue;
        }
        if c.policy_drop {
            out.push(format!(
                "WARNING: nftables chain {} {} {} drops forwarded traffic by default, and berth does not write to other tables: accept its bridges there (e.g. iifname \"{bridge}\" accept; oifname \"{bridge}\" ct state established,related accept)",
                c.family, c.table, c.name
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
        {"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "handle": 2, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
        {"chain": {"family": "inet", "table": "berth", "name": "forward", "handle": 3, "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}},
        {"chain": {"family": "inet", "table": "filter", "name": "forward", "handle": 4, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
        {"chain": {"family": "inet", "table": "firewalld", "name": "filter_FORWARD", "handle": 5, "type": "filter", "hook": "forward", "prio": 10, "policy": "accept"}},
        {"chain": {"family": "inet", "table": "other", "name": "x", "handle": 6}}]}"#;

    #[test]
    fn other_tables_that_drop_are_named() {
        let chains = forward_chains(LIST);
        assert_eq!(chains.len(), 4);
        let w = foreign_chain_warnings(&chains, "berth", "berth0");
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("nftables chain inet filter forward drops"));
        assert!(w[1].contains("firewalld is running"));
        assert!(forward_policy_drop("-P FORWARD DROP\n-A FORWARD -j X\n"));
        assert!(!forward_policy_drop("-P FORWARD ACCEPT\n"));
        assert!(forward_chains("garbage").is_empty());
    }
}
