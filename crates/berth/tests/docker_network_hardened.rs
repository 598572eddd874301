//! Networking on a hardened host, through the docker CLI: each test runs its daemon in
//! a network namespace of its own, firewalled like hosts with Docker, ufw or a
//! hardened distribution (FORWARD policy DROP in iptables-nft and iptables-legacy,
//! br_netfilter's bridge-nf-call-iptables=1, Docker's and a ufw-like chain present).
//! The host's own firewall is never touched; traffic goes to the test's containers and
//! to an "outside" namespace behind the fake host's uplink.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_testutil::daemon::{TestDaemon, nft_table, run_ok};
use berth_testutil::net::{HardenedHost, in_netns, iptables_rules};

fn daemon_in(host: &HardenedHost) -> TestDaemon {
    let d = TestDaemon::start_in(Path::new(env!("CARGO_BIN_EXE_berth")), Some(&host.path()), &[]);
    d.busybox_image("busybox:latest");
    d
}

fn web(d: &TestDaemon, name: &str, net_args: &[&str], text: &str) {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(net_args);
    let cmd = format!("mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p 80 -h /www");
    args.extend_from_slice(&["busybox", "sh", "-c", &cmd]);
    run_ok(d.docker().args(&args));
}

/// `wget -qO- url` in a new container with `net_args`; its output, empty on failure.
fn wget_in(d: &TestDaemon, net_args: &[&str], url: &str) -> String {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(net_args);
    let script = format!("timeout 3 wget -qO- {url}; exit $?");
    args.extend_from_slice(&["busybox", "sh", "-c", &script]);
    let out = d.docker().args(&args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn bridge_of(d: &TestDaemon, net: &str) -> String {
    let id = run_ok(d.docker().args(["network", "inspect", "-f", "{{.Id}}", net]));
    format!("br-{}", &id.trim()[..12])
}

/// The netdev group of an interface in the host namespace.
fn link_group(host: &HardenedHost, ifname: &str) -> u32 {
    let out = host.sh(&format!("ip -d link show {ifname}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let g = text.split_whitespace().skip_while(|w| *w != "group").nth(1).unwrap_or_else(|| panic!("{text}"));
    g.parse().unwrap_or_else(|_| panic!("group {g} in {text}"))
}

fn forward_chain(d: &TestDaemon) -> String {
    format!("BERTH-FORWARD-{}", nft_table(d.slot))
}

/// berth's jump is the first rule of FORWARD in both backends, once each.
fn assert_jump_first(host: &HardenedHost, d: &TestDaemon) {
    for tool in ["iptables-nft", "iptables-legacy"] {
        let rules = iptables_rules(Some(&host.name), tool, Some("FORWARD"));
        let appended: Vec<&str> = rules.lines().filter(|l| l.starts_with("-A FORWARD")).collect();
        let ours = format!("-j {}", forward_chain(d));
        assert!(appended.first().is_some_and(|l| l.ends_with(&ours)), "{tool}:\n{rules}");
        assert_eq!(appended.iter().filter(|l| l.ends_with(&ours)).count(), 1, "{tool}:\n{rules}");
    }
}

#[test]
fn containers_talk_publish_and_stay_isolated_on_a_host_that_drops_forwarded_traffic() {
    let mut host = HardenedHost::new();
    host.serve_outside("from-outside");
    let d = daemon_in(&host);
    run_ok(d.docker().args(["network", "create", "appnet"]));
    run_ok(d.docker().args(["network", "create", "othernet"]));
    run_ok(d.docker().args(["network", "create", "--internal", "inner"]));
    web(&d, "web", &["--network", "appnet", "-p", "8080:80"], "hello-web");
    assert_jump_first(&host, &d);
    let br = bridge_of(&d, "appnet");
    // berth's chain accepts its bridges by their netdev group; the new bridge is in it.
    let group = link_group(&host, &br);
    assert_eq!(group, link_group(&host, &berth_testutil::daemon::bridge_name(d.slot)));
    for tool in ["iptables-nft", "iptables-legacy"] {
        let chain = iptables_rules(Some(&host.name), tool, Some(&forward_chain(&d)));
        assert!(chain.contains(&format!("-m devgroup --src-group {group:#x} -j ACCEPT")), "{tool}:\n{chain}");
    }

    // Two containers on a user network, by name (bridged, so through FORWARD).
    eventually("by name", || wget_in(&d, &["--network", "appnet"], "http://web/index.html").contains("hello-web"));
    // The published port from the host (loopback and its uplink address), from the
    // outside, from a container on another network, and from web itself (hairpin).
    let up = HardenedHost::UPLINK_IP;
    // (Retried first: once, under a full parallel run, a connection from the host's
    // loopback through the in-kernel DNAT failed at once while every later try answered;
    // the same happened to the IPv6 test's uplink address. The cause is not known. A
    // port that never answers still fails here.)
    for url in ["http://127.0.0.1:8080/index.html".to_string(), format!("http://{up}:8080/index.html")] {
        eventually(&url, || host.wget(&url).as_deref() == Some("hello-web\n"));
    }
    assert_eq!(host.wget("http://127.0.0.1:8080/index.html").as_deref(), Some("hello-web\n"));
    assert_eq!(host.wget(&format!("http://{up}:8080/index.html")).as_deref(), Some("hello-web\n"));
    assert_eq!(host.wget_from_outside(&format!("http://{up}:8080/index.html")).as_deref(), Some("hello-web\n"));
    assert!(wget_in(&d, &["--network", "othernet"], &format!("http://{up}:8080/index.html")).contains("hello-web"));
    let hairpin = run_ok(d.docker().args(["exec", "web", "sh", "-c", &format!("timeout 3 wget -qO- http://{up}:8080/index.html")]));
    assert!(hairpin.contains("hello-web"), "{hairpin}");

    // Out to the world, masqueraded behind the host's address; from the default bridge too.
    let outside = HardenedHost::OUTSIDE_IP;
    let peer = wget_in(&d, &["--network", "appnet"], &format!("http://{outside}/cgi-bin/peer"));
    assert!(peer.trim_end_matches(']').ends_with(up), "the outside saw {peer}");
    assert!(wget_in(&d, &[], &format!("http://{outside}/index.html")).contains("from-outside"));

    // Isolation and --internal still hold.
    let ip = run_ok(d.docker().args(["inspect", "-f", "{{.NetworkSettings.Networks.appnet.IPAddress}}", "web"]));
    assert_eq!(wget_in(&d, &["--network", "othernet"], &format!("http://{}/index.html", ip.trim())), "");
    assert_eq!(wget_in(&d, &["--network", "inner"], &format!("http://{outside}/index.html")), "");
    // Nor can the outside reach a container's address directly (only published ports).
    let route = ["ip", "route", "add", &format!("{}/32", ip.trim()), "via", up];
    assert!(in_netns(Some(&host.outside), &route).status.success());
    assert!(host.wget_from_outside(&format!("http://{}/index.html", ip.trim())).is_none());

    // The other engine's rules are untouched.
    let nft = iptables_rules(Some(&host.name), "iptables-nft", None);
    assert!(nft.contains("-A FORWARD -j DOCKER-USER") && nft.contains("-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP"), "{nft}");
    assert!(iptables_rules(Some(&host.name), "iptables-legacy", None).contains("-A FORWARD -j ufw-before-forward"));

    // network rm takes the network's rules along.
    run_ok(d.docker().args(["rm", "-f", "web"]));
    run_ok(d.docker().args(["network", "rm", "appnet"]));
    for tool in ["iptables-nft", "iptables-legacy"] {
        assert!(!iptables_rules(Some(&host.name), tool, None).contains(&br), "{tool} still has {br}");
    }
    let table = host.sh(&format!("nft list table inet {}", nft_table(d.slot)));
    assert!(!String::from_utf8_lossy(&table.stdout).contains(&br));
}

#[test]
fn rules_are_repaired_after_sigkill_and_removed_when_the_daemon_stops() {
    let host = HardenedHost::new();
    let mut d = daemon_in(&host);
    run_ok(d.docker().args(["network", "create", "n1"]));
    web(&d, "web", &["--network", "n1", "-p", "8081:80"], "survivor");
    eventually("published", || host.wget("http://127.0.0.1:8081/index.html").is_some());
    let chain = forward_chain(&d);
    let comment = format!("berth:{}", nft_table(d.slot));

    // While the daemon is dead: someone deletes berth's jump from iptables-nft, adds
    // a second one to iptables-legacy, and a stale rule to berth's chain.
    d.kill9();
    let drift = host.sh(&format!(
        "iptables-nft -w -D FORWARD -m comment --comment {comment} -j {chain} && \
         iptables-legacy -w -A FORWARD -m comment --comment {comment} -j {chain} && \
         iptables-legacy -w -A {chain} -i br-gone -j ACCEPT && \
         iptables-nft -w -F {chain}"
    ));
    assert!(drift.status.success(), "{}", String::from_utf8_lossy(&drift.stderr));
    d.start_again();
    assert_jump_first(&host, &d);
    assert!(!iptables_rules(Some(&host.name), "iptables-legacy", Some(&chain)).contains("br-gone"));
    // The container lived through it and still talks.
    assert_eq!(host.wget("http://127.0.0.1:8081/index.html").as_deref(), Some("survivor\n"));
    eventually("by name after restart", || wget_in(&d, &["--network", "n1"], "http://web/index.html").contains("survivor"));

    // Stopped with a container running: its rules stay (live restore).
    d.stop();
    assert_eq!(host.wget("http://127.0.0.1:8081/index.html").as_deref(), Some("survivor\n"));
    d.start_again();
    run_ok(d.docker().args(["rm", "-f", "web"]));
    // Stopped with none: nothing of berth's is left in either backend or nftables.
    d.stop();
    for tool in ["iptables-nft", "iptables-legacy"] {
        let all = iptables_rules(Some(&host.name), tool, None);
        assert!(!all.contains("BERTH-"), "{tool}:\n{all}");
        assert!(all.contains("-P FORWARD DROP"));
    }
    let tables = host.sh("nft list tables");
    assert!(!String::from_utf8_lossy(&tables.stdout).contains(&nft_table(d.slot)));
    // And the next start puts everything back.
    d.start_again();
    assert_jump_first(&host, &d);
    web(&d, "web2", &["--network", "n1"], "back");
    eventually("after a clean restart", || wget_in(&d, &["--network", "n1"], "http://web2/index.html").contains("back"));
}

#[test]
fn without_berths_rules_the_host_drops_container_traffic_and_info_says_why() {
    let host = HardenedHost::new();
    let d = TestDaemon::start_in(Path::new(env!("CARGO_BIN_EXE_berth")), Some(&host.path()), &["--iptables=false"]);
    d.busybox_image("busybox:latest");
    run_ok(d.docker().args(["network", "create", "appnet"]));
    web(&d, "web", &["--network", "appnet"], "unreachable");
    let ip = run_ok(d.docker().args(["inspect", "-f", "{{.NetworkSettings.Networks.appnet.IPAddress}}", "web"]));
    // The fixture really drops: bridged traffic dies in FORWARD.
    assert_eq!(wget_in(&d, &["--network", "appnet"], &format!("http://{}/index.html", ip.trim())), "");
    for tool in ["iptables-nft", "iptables-legacy"] {
        assert!(!iptables_rules(Some(&host.name), tool, None).contains("BERTH-"));
    }
    let mut info = String::new();
    eventually("warnings in docker info", || {
        info = run_ok(d.docker().args(["info", "-f", "{{json .Warnings}}"]));
        info.contains("iptables-legacy")
    });
    assert!(info.contains("the FORWARD policy of iptables-nft is DROP and berth runs with --iptables=false"), "{info}");
}
