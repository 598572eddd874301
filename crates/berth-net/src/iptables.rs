//! berth's accept rules in iptables' `filter FORWARD` chain, so that containers keep
//! working on hosts whose firewall drops forwarded traffic (a `FORWARD` policy of
//! DROP, set by dockerd, ufw, or a hardened distribution; with br_netfilter, bridged
//! container↔container traffic passes that chain too).
//!
//! berth's decisions (NAT, isolation, `--internal`, icc) live in its own nftables table
//! ([`crate::firewall`]). But an accept there does not outvote another table's drop:
//! every base chain on the forward hook must let a packet through. So berth does what
//! Docker and netavark do, in each iptables backend the host uses (iptables-nft and
//! iptables-legacy are separate rule sets, both consulted by the kernel):
//!
//! ```text
//! -A FORWARD -m comment --comment "berth:<table>" -j BERTH-FORWARD     (inserted first)
//! -A BERTH-FORWARD -j BERTH-USER                                        (the admin's hook)
//! -A BERTH-FORWARD -m devgroup --dst-group G -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
//! -A BERTH-FORWARD -m devgroup --dst-group G -m conntrack --ctstate DNAT -j ACCEPT  (published ports)
//! -A BERTH-FORWARD -m devgroup --src-group G -j ACCEPT
//! ```
//!
//! G is the netdev group every bridge of this daemon is put in ([`bridge_group`]), so
//! the rules match the daemon's bridges — and nobody else's, Docker's included — without
//! naming them: they are written once at start, not for each network created or
//! removed (which would cost an iptables run per network operation).
//! `BERTH-FORWARD` belongs to berth and is written whole (one `iptables-restore
//! --noflush` transaction); `BERTH-USER` belongs to the admin (like `DOCKER-USER`):
//! created if missing, never flushed; a DROP there is final, a RETURN goes on to berth's
//! rules. The jump is tagged with a comment naming the daemon's table, so each daemon
//! finds (and removes) exactly its own; it is checked and put back first again at most
//! every [`RECHECK`] while networks change (someone may have flushed FORWARD). A daemon
//! whose nft table is not `berth` gets chains suffixed with the table name.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::dataplane::Dataplane;
use crate::error::{NetError, Result};

/// The two rule sets an `iptables` command can write to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Backend {
    Nft,
    Legacy,
}

/// IPv4 (`iptables`) or IPv6 (`ip6tables`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

/// The command for a backend and family, e.g. `iptables-nft`, `ip6tables-legacy`.
pub fn tool(backend: Backend, family: Family) -> String {
    let base = match family {
        Family::V4 => "iptables",
        Family::V6 => "ip6tables",
    };
    let b = match backend {
        Backend::Nft => "nft",
        Backend::Legacy => "legacy",
    };
    format!("{base}-{b}")
}

/// What the host offers, as far as choosing backends goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XtablesFacts {
    pub nft_tool: bool,
    pub legacy_tool: bool,
    /// The backend the plain `iptables` command uses (what dockerd, ufw and admins
    /// write with), if it can be told.
    pub default: Option<Backend>,
    /// The legacy `filter` table exists in this network namespace.
    pub legacy_filter: bool,
    /// iptables-nft's `filter` table exists in this network namespace.
    pub nft_filter: bool,
}

/// The backends to write to: the system's default one (so rules are in place before
/// dockerd or ufw turn the policy to DROP there) and any other whose filter table is
/// already in use. A backend nobody uses is left alone (creating legacy tables on an
/// nft host would make every iptables-nft listing warn about them).
pub fn choose_backends(f: &XtablesFacts) -> Vec<Backend> {
    let mut out = Vec::new();
    let nft = f.nft_tool && (f.default == Some(Backend::Nft) || f.nft_filter || (f.default.is_none() && !f.legacy_filter));
    if nft {
        out.push(Backend::Nft);
    }
    if f.legacy_tool && (f.default == Some(Backend::Legacy) || f.legacy_filter) {
        out.push(Backend::Legacy);
    }
    out
}

/// How often, at most, the rules are checked and the jump put back first while
/// networks change.
pub const RECHECK: Duration = Duration::from_secs(30);

/// The netdev group of a daemon's bridges (`ip link show group <n>` lists them): a
/// fixed high prefix plus 24 bits of a hash of the nft table name, away from group 0
/// (every other interface's) and from small numbers admins pick.
pub fn bridge_group(table: &str) -> u32 {
    0x6200_0000 | (fnv1a(table) & 0x00ff_ffff)
}

/// iptables chain names are at most 28 characters.
const MAX_CHAIN: usize = 28;

/// The names one daemon uses in iptables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chains {
    /// berth's own chain, jumped to from FORWARD.
    pub forward: String,
    /// The admin's hook, jumped to first from `forward`.
    pub user: String,
    /// The comment tagging the FORWARD jump: `berth:<table>`.
    pub comment: String,
    /// The netdev group of the daemon's bridges.
    pub group: u32,
}

impl Chains {
    pub fn new(table: &str) -> Chains {
        let suffix = if table == "berth" {
            String::new()
        } else if "BERTH-FORWARD-".len() + table.len() <= MAX_CHAIN {
            format!("-{table}")
        } else {
            format!("-{:08x}", fnv1a(table))
        };
        Chains {
            forward: format!("BERTH-FORWARD{suffix}"),
            user: format!("BERTH-USER{suffix}"),
            comment: format!("berth:{table}"),
            group: bridge_group(table),
        }
    }

    fn jump(&self) -> String {
        format!("-m comment --comment \"{}\" -j {}", self.comment, self.forward)
    }
}

fn fnv1a(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// The FORWARD rules of `iptables -S FORWARD` that are this daemon's jumps, turned
/// into `-D` lines for a restore script.
pub fn our_jumps(listing: &str, ch: &Chains) -> Vec<String> {
    let quoted = format!("--comment \"{}\"", ch.comment);
    let bare = format!("--comment {}", ch.comment);
    listing
        .lines()
        .filter(|l| l.starts_with("-A FORWARD "))
        .filter(|l| l.contains(&quoted) || l.contains(&format!("{bare} ")) || l.ends_with(&bare))
        .map(|l| format!("-D{}", &l[2..]))
        .collect()
}

/// The restore script that writes berth's chain and puts the FORWARD jump first.
/// `stale`: `None` when exactly one jump is known to exist (it is deleted and
/// re-inserted, and the transaction fails if it was gone); otherwise the `-D` lines of
/// every jump found.
pub fn render_sync(ch: &Chains, stale: Option<&[String]>) -> String {
    let mut s = String::from("*filter\n");
    s.push_str(&format!(":{} - [0:0]\n", ch.forward));
    match stale {
        None => s.push_str(&format!("-D FORWARD {}\n", ch.jump())),
        Some(lines) => {
            for l in lines {
                s.push_str(l);
                s.push('\n');
            }
        }
    }
    s.push_str(&format!("-I FORWARD 1 {}\n", ch.jump()));
    s.push_str(&format!("-A {} -j {}\n", ch.forward, ch.user));
    let (f, g) = (&ch.forward, ch.group);
    s.push_str(&format!("-A {f} -m devgroup --dst-group {g:#x} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"));
    s.push_str(&format!("-A {f} -m devgroup --dst-group {g:#x} -m conntrack --ctstate DNAT -j ACCEPT\n"));
    s.push_str(&format!("-A {f} -m devgroup --src-group {g:#x} -j ACCEPT\n"));
    s.push_str("COMMIT\n");
    s
}

/// The restore script that removes the jumps and berth's chain (and the admin's hook
/// when it is empty).
pub fn render_remove(ch: &Chains, jumps: &[String], remove_user: bool) -> String {
    let mut s = String::from("*filter\n");
    for l in jumps {
        s.push_str(l);
        s.push('\n');
    }
    s.push_str(&format!(":{} - [0:0]\n-X {}\n", ch.forward, ch.forward));
    if remove_user {
        s.push_str(&format!("-X {}\n", ch.user));
    }
    s.push_str("COMMIT\n");
    s
}

/// berth's rules in the host's iptables for one address family.
pub struct HostFirewall {
    chains: Chains,
    family: Family,
    enabled: bool,
    /// Per backend written to: whether its rules are known to be in place (false:
    /// state unknown, go the slow way next time).
    applied: BTreeMap<Backend, bool>,
    /// When the rules were last checked against the kernel.
    checked: Option<Instant>,
    /// Why the last sync failed, for `/info`.
    last_error: Option<String>,
}

const WAIT: [&str; 2] = ["-w", "5"];

impl HostFirewall {
    pub fn new(table: &str, family: Family, enabled: bool) -> Self {
        HostFirewall {
            chains: Chains::new(table),
            family,
            enabled,
            applied: BTreeMap::new(),
            checked: None,
            last_error: None,
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Why the last attempt to write the rules failed, if it did.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    pub fn chains(&self) -> &Chains {
        &self.chains
    }

    /// Makes the next sync check the kernel (tests; what [`RECHECK`] does in time).
    pub fn expire_check(&mut self) {
        self.checked = None;
    }

    /// The backends written to now (empty when disabled or none is in use).
    pub fn backends(&self) -> Vec<Backend> {
        self.applied.keys().copied().collect()
    }

    async fn detect<D: Dataplane>(&self, dp: &D) -> Vec<Backend> {
        if !self.enabled {
            return Vec::new();
        }
        let mut facts = dp.xtables_facts(self.family);
        if facts.nft_tool && facts.default != Some(Backend::Nft) {
            let table = if self.family == Family::V4 { "ip" } else { "ip6" };
            facts.nft_filter =
                dp.run_tool("nft", &["list", "chain", table, "filter", "FORWARD"], None).await.is_ok_and(|o| o.success);
        }
        choose_backends(&facts)
    }

    /// Makes sure berth's rules are in every backend in use, with the jump first in
    /// FORWARD. Writes only what is missing or unknown, and every [`RECHECK`] checks
    /// (and repairs) what was written; otherwise it costs nothing.
    pub async fn sync<D: Dataplane>(&mut self, dp: &D) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let recheck = self.checked.is_none_or(|t| t.elapsed() >= RECHECK);
        if !recheck && !self.applied.is_empty() && self.applied.values().all(|ok| *ok) {
            return Ok(());
        }
        // A backend can come into use after start (a legacy table made by someone):
        // reading the facts is cheap, so look again at each check.
        for b in self.detect(dp).await {
            self.applied.entry(b).or_insert(false);
        }
        self.checked = Some(Instant::now());
        let mut errors = Vec::new();
        let backends: Vec<Backend> = self.applied.keys().copied().collect();
        for b in backends {
            let restore = format!("{}-restore", tool(b, self.family));
            if self.applied.get(&b) == Some(&true) {
                let out = dp.run_tool(&restore, &["-w", "5", "--noflush"], Some(&render_sync(&self.chains, None))).await?;
                if out.success {
                    continue;
                }
                // The jump or the admin's chain went missing (someone flushed FORWARD):
                // repair the slow way.
                tracing::info!("{restore}: {}; repairing berth's rules", out.stderr.trim());
            }
            match self.sync_slow(dp, b).await {
                Ok(()) => {
                    self.applied.insert(b, true);
                }
                Err(e) => {
                    self.applied.insert(b, false);
                    errors.push(e.to_string());
                }
            }
        }
        if errors.is_empty() {
            self.last_error = None;
            Ok(())
        } else {
            self.last_error = Some(errors.join("; "));
            Err(NetError::system_msg(errors.join("; ")))
        }
    }

    async fn sync_slow<D: Dataplane>(&self, dp: &D, b: Backend) -> Result<()> {
        let t = tool(b, self.family);
        // Fails when the chain exists, which is fine: it is the admin's.
        let _ = dp.run_tool(&t, &[WAIT[0], WAIT[1], "-N", &self.chains.user], None).await?;
        let listing = dp.run_tool(&t, &[WAIT[0], WAIT[1], "-S", "FORWARD"], None).await?;
        if !listing.success {
            return Err(NetError::system_msg(format!("{t} -S FORWARD: {}", listing.stderr.trim())));
        }
        let jumps = our_jumps(&listing.stdout, &self.chains);
        let script = render_sync(&self.chains, Some(&jumps));
        let out = dp.run_tool(&format!("{t}-restore"), &["-w", "5", "--noflush"], Some(&script)).await?;
        if !out.success {
            return Err(NetError::system_msg(format!("{t}-restore: {}", out.stderr.trim())));
        }
        Ok(())
    }

    /// Removes the jump and berth's chain from every backend that has them (the
    /// admin's hook too, if it is empty). For a daemon stopping with no container
    /// left on its networks, and for teardown.
    pub async fn remove<D: Dataplane>(&mut self, dp: &D) -> Result<()> {
        let mut backends = self.detect(dp).await;
        for b in self.applied.keys() {
            if !backends.contains(b) {
                backends.push(*b);
            }
        }
        self.applied.clear();
        self.checked = None;
        let mut errors = Vec::new();
        for b in backends {
            let t = tool(b, self.family);
            let listing = dp.run_tool(&t, &[WAIT[0], WAIT[1], "-S", "FORWARD"], None).await?;
            let jumps = our_jumps(&listing.stdout, &self.chains);
            let chain = dp.run_tool(&t, &[WAIT[0], WAIT[1], "-S", &self.chains.forward], None).await?;
            if jumps.is_empty() && !chain.success {
                continue;
            }
            let user = dp.run_tool(&t, &[WAIT[0], WAIT[1], "-S", &self.chains.user], None).await?;
            let user_empty = user.success && user.stdout.lines().filter(|l| !l.trim().is_empty()).count() <= 1;
            let script = render_remove(&self.chains, &jumps, user_empty);
            let out = dp.run_tool(&format!("{t}-restore"), &["-w", "5", "--noflush"], Some(&script)).await?;
            if !out.success {
                errors.push(format!("{t}-restore: {}", out.stderr.trim()));
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(NetError::system_msg(errors.join("; "))) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_fit_iptables() {
        let c = Chains::new("berth");
        assert_eq!((c.forward.as_str(), c.user.as_str(), c.comment.as_str()), ("BERTH-FORWARD", "BERTH-USER", "berth:berth"));
        let c = Chains::new("btd7");
        assert_eq!(c.forward, "BERTH-FORWARD-btd7");
        assert_eq!(c.user, "BERTH-USER-btd7");
        let c = Chains::new("a-very-long-table-name-for-a-daemon");
        assert!(c.forward.len() <= MAX_CHAIN && c.forward.starts_with("BERTH-FORWARD-"), "{}", c.forward);
        assert_ne!(c.forward, Chains::new("a-very-long-table-name-for-another").forward);
    }

    #[test]
    fn sync_script_writes_the_chain_and_moves_the_jump_first() {
        let c = Chains::new("berth");
        let g = format!("{:#x}", bridge_group("berth"));
        let s = render_sync(&c, None);
        assert_eq!(
            s,
            format!(
                "*filter\n:BERTH-FORWARD - [0:0]\n\
                 -D FORWARD -m comment --comment \"berth:berth\" -j BERTH-FORWARD\n\
                 -I FORWARD 1 -m comment --comment \"berth:berth\" -j BERTH-FORWARD\n\
                 -A BERTH-FORWARD -j BERTH-USER\n\
                 -A BERTH-FORWARD -m devgroup --dst-group {g} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
                 -A BERTH-FORWARD -m devgroup --dst-group {g} -m conntrack --ctstate DNAT -j ACCEPT\n\
                 -A BERTH-FORWARD -m devgroup --src-group {g} -j ACCEPT\nCOMMIT\n"
            )
        );
        assert_ne!(bridge_group("berth"), bridge_group("btd1"));
        assert_eq!(bridge_group("x") & 0xff00_0000, 0x6200_0000);
    }

    #[test]
    fn only_our_jumps_are_found() {
        let c = Chains::new("btd3");
        let listing = "-P FORWARD DROP\n\
            -A FORWARD -m comment --comment \"berth:btd3\" -j BERTH-FORWARD-btd3\n\
            -A FORWARD -m comment --comment \"berth:btd30\" -j BERTH-FORWARD-btd30\n\
            -A FORWARD -j DOCKER-USER\n\
            -A FORWARD -m comment --comment berth:btd3 -j BERTH-FORWARD-btd3\n";
        assert_eq!(
            our_jumps(listing, &c),
            vec![
                "-D FORWARD -m comment --comment \"berth:btd3\" -j BERTH-FORWARD-btd3".to_string(),
                "-D FORWARD -m comment --comment berth:btd3 -j BERTH-FORWARD-btd3".to_string(),
            ]
        );
        let s = render_sync(&c, Some(&our_jumps(listing, &c)));
        assert_eq!(s.matches("-D FORWARD").count(), 2);
        assert_eq!(s.matches("-I FORWARD 1").count(), 1);
        let r = render_remove(&c, &our_jumps(listing, &c), true);
        assert!(r.ends_with(":BERTH-FORWARD-btd3 - [0:0]\n-X BERTH-FORWARD-btd3\n-X BERTH-USER-btd3\nCOMMIT\n"), "{r}");
    }

    #[tokio::test]
    async fn rules_are_written_once_then_checked_and_repaired_the_slow_way() {
        let dp = crate::dataplane::RecordingDataplane::default();
        dp.set_xtables(XtablesFacts { nft_tool: true, default: Some(Backend::Nft), ..Default::default() });
        let mut fw = HostFirewall::new("t", Family::V4, true);
        let runs = |dp: &crate::dataplane::RecordingDataplane| dp.snapshot().tool_runs.iter().map(|(p, a, _)| format!("{p} {}", a.join(" "))).collect::<Vec<_>>();
        fw.sync(&dp).await.unwrap();
        // Slow way: the admin's chain, the listing of FORWARD, the restore.
        assert_eq!(runs(&dp), ["iptables-nft -w 5 -N BERTH-USER-t", "iptables-nft -w 5 -S FORWARD", "iptables-nft-restore -w 5 --noflush"]);
        fw.sync(&dp).await.unwrap();
        assert_eq!(runs(&dp).len(), 3, "nothing to do until the next check");
        // A check: the fast way (one restore moving the jump first); it fails (the jump
        // was flushed away), so the slow way repairs.
        fw.expire_check();
        dp.fail_tool_once("iptables-nft-restore");
        fw.sync(&dp).await.unwrap();
        let r = runs(&dp);
        assert_eq!(r.len(), 7, "{r:?}");
        assert_eq!(r[4], "iptables-nft -w 5 -N BERTH-USER-t");
        assert_eq!(fw.backends(), vec![Backend::Nft]);
        assert!(fw.last_error().is_none());
    }

    #[test]
    fn backends_follow_what_the_host_uses() {
        let f = |default, legacy_filter, nft_filter| XtablesFacts {
            nft_tool: true,
            legacy_tool: true,
            default,
            legacy_filter,
            nft_filter,
        };
        assert_eq!(choose_backends(&f(Some(Backend::Nft), false, false)), vec![Backend::Nft]);
        assert_eq!(choose_backends(&f(Some(Backend::Nft), true, false)), vec![Backend::Nft, Backend::Legacy]);
        assert_eq!(choose_backends(&f(Some(Backend::Legacy), false, false)), vec![Backend::Legacy]);
        assert_eq!(choose_backends(&f(Some(Backend::Legacy), false, true)), vec![Backend::Nft, Backend::Legacy]);
        assert_eq!(choose_backends(&f(None, false, false)), vec![Backend::Nft]);
        assert!(choose_backends(&XtablesFacts::default()).is_empty());
    }
}
