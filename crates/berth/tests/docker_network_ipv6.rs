//! IPv6 through the docker CLI, in a hardened host namespace of the test's own (FORWARD
//! policy DROP in ip6tables-nft and ip6tables-legacy too), with an IPv6 uplink to an
//! "outside" namespace: dual-stack networks (given and automatic ULA subnets), `--ip6`,
//! AAAA and ip6.arpa answers, published ports on [::1] and on the host's IPv6 address,
//! IPv6 masquerade and isolation, the dual-stack default bridge, inspect fields.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_testutil::daemon::{TestDaemon, nft_table, run_ok};
use berth_testutil::net::{HardenedHost, iptables_rules};

fn web(d: &TestDaemon, name: &str, args: &[&str], text: &str) {
    let mut all = vec!["run", "-d", "--name", name];
    all.extend_from_slice(args);
    let cmd = format!("mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p 80 -h /www");
    all.extend_from_slice(&["busybox", "sh", "-c", &cmd]);
    run_ok(d.docker().args(&all));
}

/// Runs `script` in a new container with `args`; its stdout ("" on failure). The
/// shell stays PID 1 (a `timeout`ed command as PID 1 would ignore SIGTERM).
fn sh_in(d: &TestDaemon, args: &[&str], script: &str) -> String {
    let mut all = vec!["run", "--rm"];
    all.extend_from_slice(args);
    let script = format!("{script}; exit $?");
    all.extend_from_slice(&["busybox", "sh", "-c", &script]);
    let out = d.docker().args(&all).output().unwrap();
    if out.status.success() { String::from_utf8_lossy(&out.stdout).into_owned() } else { String::new() }
}

fn inspect(d: &TestDaemon, what: &[&str]) -> String {
    run_ok(d.docker().args(what)).trim().to_string()
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn dual_stack_networks_resolve_route_publish_and_isolate_over_ipv6() {
    let mut host = HardenedHost::new();
    host.serve_outside("outside6");
    let d = TestDaemon::start_in(
        Path::new(env!("CARGO_BIN_EXE_berth")),
        Some(&host.path()),
        &["--fixed-cidr-v6", "fd00:b0::/64", "--dns", "127.0.0.1"],
    );
    d.busybox_image("busybox:latest");

    run_ok(d.docker().args(["network", "create", "--ipv6", "--subnet", "fd00:c0::/64", "v6net"]));
    assert_eq!(inspect(&d, &["network", "inspect", "-f", "{{.EnableIPv6}}", "v6net"]), "true");
    let ipam = inspect(&d, &["network", "inspect", "-f", "{{json .IPAM.Config}}", "v6net"]);
    assert!(ipam.contains(r#""Subnet":"fd00:c0::/64","Gateway":"fd00:c0::1""#), "{ipam}");
    // Without a subnet: a /64 of the daemon's own ULA /48.
    run_ok(d.docker().args(["network", "create", "--ipv6", "auto6"]));
    let auto = inspect(&d, &["network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{end}}", "auto6"]);
    assert!(auto.split(' ').any(|s| s.starts_with("fd") && s.ends_with("::/64")), "{auto}");

    web(&d, "web", &["--network", "v6net", "--ip6", "fd00:c0::99", "-p", "8080:80"], "hello6");
    assert_eq!(inspect(&d, &["inspect", "-f", "{{.NetworkSettings.Networks.v6net.GlobalIPv6Address}}", "web"]), "fd00:c0::99");
    assert_eq!(inspect(&d, &["inspect", "-f", "{{.NetworkSettings.Networks.v6net.GlobalIPv6PrefixLen}}", "web"]), "64");
    assert_eq!(inspect(&d, &["inspect", "-f", "{{.NetworkSettings.Networks.v6net.IPv6Gateway}}", "web"]), "fd00:c0::1");
    let members = inspect(&d, &["network", "inspect", "-f", "{{range .Containers}}{{.IPv6Address}}{{end}}", "v6net"]);
    assert_eq!(members, "fd00:c0::99/64");
    let ports = inspect(&d, &["port", "web", "80"]);
    assert_eq!(ports, "0.0.0.0:8080\n[::]:8080");

    // Peers: ping6 and wget over IPv6, AAAA and ip6.arpa from the embedded DNS.
    let net = ["--network", "v6net"];
    eventually("ping6", || sh_in(&d, &net, "ping6 -c 1 -W 2 fd00:c0::99 >/dev/null && echo ok").contains("ok"));
    assert!(sh_in(&d, &net, "timeout 3 wget -qO- 'http://[fd00:c0::99]/index.html'").contains("hello6"));
    let aaaa = sh_in(&d, &net, "nslookup -type=aaaa web");
    assert!(aaaa.contains("fd00:c0::99"), "{aaaa}");
    let ptr = sh_in(&d, &net, "nslookup fd00:c0::99");
    assert!(ptr.contains("web.v6net"), "{ptr}");
    let hosts = sh_in(&d, &net, "cat /etc/hosts");
    assert!(hosts.lines().any(|l| l.starts_with("fd00:c0::") && !l.contains("fd00:c0::99")), "own IPv6 line: {hosts}");

    // Published over IPv6: [::1] (userland proxy), the host's IPv6 address, the outside.
    let up6 = HardenedHost::UPLINK_IP6;
    // (Retried first: under a full parallel run, a connection from the host through the
    // in-kernel DNAT failed at once twice in stop 28 — here to the uplink address, in
    // docker_network_hardened to 127.0.0.1 — while every later try answered; the cause
    // is not known. A port that never answers still fails.)
    for url in ["http://[::1]:8080/index.html".to_string(), format!("http://[{up6}]:8080/index.html")] {
        eventually(&url, || host.wget(&url).as_deref() == Some("hello6\n"));
    }
    assert_eq!(host.wget("http://[::1]:8080/index.html").as_deref(), Some("hello6\n"));
    assert_eq!(host.wget(&format!("http://[{up6}]:8080/index.html")).as_deref(), Some("hello6\n"));
    assert_eq!(host.wget_from_outside(&format!("http://[{up6}]:8080/index.html")).as_deref(), Some("hello6\n"));

    // Out to the world over IPv6, masqueraded behind the host's address.
    let out6 = HardenedHost::OUTSIDE_IP6;
    let peer = sh_in(&d, &net, &format!("timeout 3 wget -qO- 'http://[{out6}]/cgi-bin/peer'"));
    assert!(peer.contains(up6), "the outside saw {peer}");

    // Isolation between networks holds for IPv6.
    assert_eq!(sh_in(&d, &["--network", "auto6"], "timeout 3 wget -qO- 'http://[fd00:c0::99]/index.html'"), "");

    // The default bridge is dual-stack on --fixed-cidr-v6.
    let addr = sh_in(&d, &[], "ip -6 addr show eth0");
    assert!(addr.contains("inet6 fd00:b0::"), "{addr}");
    // --link-local-ip.
    let ll = sh_in(&d, &["--network", "v6net", "--link-local-ip", "169.254.10.10"], "ip addr show eth0");
    assert!(ll.contains("169.254.10.10"), "{ll}");

    // ip6tables carries berth's accepts in both backends, matching its bridges' group.
    let chain = format!("BERTH-FORWARD-{}", nft_table(d.slot));
    for tool in ["ip6tables-nft", "ip6tables-legacy"] {
        let rules = iptables_rules(Some(&host.name), tool, Some(&chain));
        assert!(rules.contains("-m devgroup --src-group 0x62"), "{tool}:\n{rules}");
    }
    // Bad input: Docker's refusals, nothing made.
    let out = d.docker().args(["network", "create", "--ipv6", "--subnet", "fd00:c0::/80", "clash"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("Pool overlaps"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = d.docker().args(["run", "--rm", "--network", "auto6", "--ip6", "fd00:c0::5", "busybox", "true"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("user configured subnets"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn docker_pys_network_tests_pass() {
    let host = HardenedHost::new();
    let d = TestDaemon::start_in(Path::new(env!("CARGO_BIN_EXE_berth")), Some(&host.path()), &["--dns", "127.0.0.1"]);
    d.busybox_image("busybox:latest");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/docker_py_networks.py");
    let out = std::process::Command::new("/usr/bin/python3").arg(&script).arg(d.host()).output().expect("python3-docker");
    assert!(out.status.success(), "{}\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr), d.log());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "docker-py networks ok\n");
}
