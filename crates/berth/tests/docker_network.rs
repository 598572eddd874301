//! Networking through the docker CLI: user networks with DNS, published ports, modes,
//! isolation, connect/disconnect, and Docker's errors. Traffic goes only to loopback
//! and to containers these tests start.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_testutil::daemon::{TestDaemon, run_ok};

fn daemon() -> TestDaemon {
    let d = TestDaemon::start(Path::new(env!("CARGO_BIN_EXE_berth")));
    d.busybox_image("busybox:latest");
    d
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// An httpd container serving `text` at /index.html.
fn web(d: &TestDaemon, name: &str, net_args: &[&str], text: &str) {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(net_args);
    let cmd = format!("mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p 80 -h /www");
    args.extend_from_slice(&["busybox", "sh", "-c", &cmd]);
    run_ok(d.docker().args(&args));
}

/// `wget` bounded by `timeout`, under a shell so that wget is not the container's PID 1
/// (which ignores SIGTERM).
fn wget_args(url: &str) -> Vec<String> {
    vec!["busybox".into(), "sh".into(), "-c".into(), format!("timeout 3 wget -qO- {url}; exit $?")]
}

fn http_get(addr: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn containers_on_a_user_network_reach_each_other_by_name_and_alias() {
    let d = daemon();
    run_ok(d.docker().args(["network", "create", "appnet"]));
    web(&d, "web", &["--network", "appnet", "--network-alias", "www"], "hello-by-name");
    for target in ["web", "www"] {
        let mut got = String::new();
        eventually("wget by name", || {
            let out = d.docker().args(["run", "--rm", "--network", "appnet"]).args(wget_args(&format!("http://{target}/index.html"))).output().unwrap();
            got = String::from_utf8_lossy(&out.stdout).into_owned();
            got.contains("hello-by-name")
        });
    }
    let inspect = run_ok(d.docker().args(["network", "inspect", "appnet", "-f", "{{range .Containers}}{{.Name}}{{end}}"]));
    assert_eq!(inspect.trim(), "web");
    // In use: refused with Docker's message, and nothing changed.
    let out = d.docker().args(["network", "rm", "appnet"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("has active endpoints"), "{}", String::from_utf8_lossy(&out.stderr));
    run_ok(d.docker().args(["rm", "-f", "web"]));
    run_ok(d.docker().args(["network", "rm", "appnet"]));
}

#[test]
fn published_ports_answer_on_loopback() {
    let d = daemon();
    let port = free_port();
    web(&d, "pub", &["-p", &format!("127.0.0.1:{port}:80")], "published");
    eventually("published port", || http_get(&format!("127.0.0.1:{port}")).is_some_and(|r| r.contains("published")));
    let p = run_ok(d.docker().args(["port", "pub", "80"]));
    assert_eq!(p.trim(), format!("127.0.0.1:{port}"));
    // -P picks free host ports for EXPOSEd ports.
    run_ok(d.docker().args(["run", "-d", "--name", "auto", "--expose", "80", "-P", "busybox", "sh", "-c", "mkdir /w; echo auto > /w/index.html; exec httpd -f -p 80 -h /w"]));
    let p = run_ok(d.docker().args(["port", "auto", "80/tcp"]));
    let hp: u16 = p.lines().next().unwrap().rsplit(':').next().unwrap().parse().unwrap();
    eventually("-P port", || http_get(&format!("127.0.0.1:{hp}")).is_some_and(|r| r.contains("auto")));
    // The same host port again: Docker's error, and no container left running.
    let out = d.docker().args(["run", "-d", "--name", "clash", "-p", &format!("127.0.0.1:{port}:80"), "busybox", "sleep", "10"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("port is already allocated"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(run_ok(d.docker().args(["inspect", "-f", "{{.State.Running}}", "clash"])).trim(), "false");
    // The port is published beside the shim's create: the shim made for the clash is
    // gone again, and so is its root filesystem's mount.
    let clash = run_ok(d.docker().args(["inspect", "-f", "{{.Id}}", "clash"])).trim().to_string();
    eventually("the clash's shim and mount gone", || {
        let shim = std::process::Command::new("pgrep").args(["-f", &clash]).output().unwrap();
        shim.stdout.is_empty() && !std::fs::read_to_string("/proc/self/mountinfo").unwrap().contains(&clash)
    });
    run_ok(d.docker().args(["rm", "-f", "pub", "auto", "clash"]));
    assert!(http_get(&format!("127.0.0.1:{port}")).is_none(), "the rule is gone with the container");
}

#[test]
fn networks_are_isolated_and_internal_has_no_way_out() {
    let d = daemon();
    run_ok(d.docker().args(["network", "create", "neta"]));
    run_ok(d.docker().args(["network", "create", "netb"]));
    run_ok(d.docker().args(["network", "create", "--internal", "inner"]));
    web(&d, "a1", &["--network", "neta"], "on-a");
    let ip = run_ok(d.docker().args(["inspect", "-f", "{{.NetworkSettings.Networks.neta.IPAddress}}", "a1"]));
    let ip = ip.trim();
    eventually("same network reaches", || {
        let out = d.docker().args(["run", "--rm", "--network", "neta"]).args(wget_args(&format!("http://{ip}/index.html"))).output().unwrap();
        String::from_utf8_lossy(&out.stdout).contains("on-a")
    });
    let out = d.docker().args(["run", "--rm", "--network", "netb"]).args(wget_args(&format!("http://{ip}/index.html"))).output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("on-a"), "netb reached neta");
    // Internal: no default route at all.
    let out = run_ok(d.docker().args(["run", "--rm", "--network", "inner", "busybox", "ip", "route"]));
    assert!(!out.contains("default"), "{out}");
    // --network none: only lo; host: the host's interfaces.
    let out = run_ok(d.docker().args(["run", "--rm", "--network", "none", "busybox", "ip", "-o", "link"]));
    assert_eq!(out.lines().count(), 1, "{out}");
    let out = run_ok(d.docker().args(["run", "--rm", "--network", "host", "busybox", "ip", "-o", "link"]));
    assert!(out.contains(&berth_testutil::daemon::bridge_name(d.slot)), "{out}");
    // container:<name> shares a1's namespace.
    let out = run_ok(d.docker().args(["run", "--rm", "--network", "container:a1"]).args(wget_args("http://127.0.0.1/index.html")));
    assert!(out.contains("on-a"), "{out}");
}

#[test]
fn connect_and_disconnect_a_running_container() {
    let d = daemon();
    run_ok(d.docker().args(["network", "create", "n1"]));
    run_ok(d.docker().args(["run", "-d", "--name", "cc", "busybox", "sleep", "300"]));
    run_ok(d.docker().args(["network", "connect", "n1", "cc"]));
    let links = run_ok(d.docker().args(["exec", "cc", "ip", "-o", "addr"]));
    assert!(links.contains("eth1"), "{links}");
    let nets = run_ok(d.docker().args(["inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}", "cc"]));
    assert!(nets.contains("n1") && nets.contains("bridge"), "{nets}");
    run_ok(d.docker().args(["network", "disconnect", "n1", "cc"]));
    let links = run_ok(d.docker().args(["exec", "cc", "ip", "-o", "addr"]));
    assert!(!links.contains("eth1"), "{links}");
}

#[test]
fn bad_network_input_gives_dockers_errors() {
    let d = daemon();
    run_ok(d.docker().args(["network", "create", "--subnet", "10.222.1.0/24", "one"]));
    for (args, needle) in [
        (vec!["network", "create", "--subnet", "10.222.1.0/25", "two"], "overlap"),
        (vec!["network", "create", "--subnet", "10.222.1.0/33", "three"], "invalid"),
        (vec!["network", "create", "one"], "already exists"),
        (vec!["network", "rm", "nosuch"], "not found"),
        (vec!["network", "create", "--config-only", "conf"], "config-only networks (--config-only) are not supported"),
        (vec!["network", "create", "--config-from", "one", "derived"], "--config-from is not supported"),
    ] {
        let out = d.docker().args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let out = d.docker().args(["run", "--rm", "--network", "nosuch", "busybox", "true"]).output().unwrap();
    assert!(!out.status.success());
    // berth's own CLI gets the same answers.
    let out = d.berth().args(["network", "create", "--config-only", "conf"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("config-only networks (--config-only) are not supported"));
    let ls = run_ok(d.docker().args(["network", "ls", "--format", "{{.Name}}"]));
    let mut names: Vec<&str> = ls.lines().collect();
    names.sort();
    assert_eq!(names, vec!["bridge", "host", "none", "one"]);
}

#[test]
fn a_wiped_data_root_starts_on_the_old_bridge_but_a_live_daemons_bridge_is_refused() {
    let mut d = daemon();
    let bridge = berth_testutil::daemon::bridge_name(d.slot);
    d.stop();
    // A clean stop leaves the default bridge, as dockerd leaves docker0.
    assert!(std::process::Command::new("ip").args(["link", "show", &bridge]).output().unwrap().status.success());
    // The usual reset: wipe the data root, start again.
    std::fs::remove_dir_all(&d.data_root).unwrap();
    d.start_again();
    d.busybox_image("busybox:latest");
    let id = run_ok(d.docker().args(["network", "inspect", "-f", "{{.Id}}", "bridge"]));
    let link = run_ok(std::process::Command::new("ip").args(["-d", "link", "show", &bridge]));
    assert!(link.contains(&format!("net:{}", id.trim())), "the bridge carries the new network's tag: {link}");
    let addr = run_ok(d.docker().args(["run", "--rm", "busybox", "ip", "-o", "-4", "addr", "show", "eth0"]));
    assert!(addr.contains(&format!("172.29.{}.", d.slot)), "{addr}");

    // Another daemon naming the live daemon's bridge, or its nftables table, is refused
    // with a message that says what to change, and changes nothing.
    let scratch = berth_testutil::short_tempdir("b2");
    let other_args = |table: &str| -> Vec<String> {
        let mut a: Vec<String> = d.args().to_vec();
        let set = |a: &mut Vec<String>, flag: &str, v: String| {
            let i = a.iter().position(|x| x == flag).unwrap();
            a[i + 1] = v;
        };
        set(&mut a, "--data-root", scratch.path().join("data").display().to_string());
        set(&mut a, "--exec-root", scratch.path().join("run").display().to_string());
        set(&mut a, "-H", format!("unix://{}", scratch.path().join("s.sock").display()));
        set(&mut a, "--nft-table", table.to_string());
        set(&mut a, "--cgroup-parent", "/btd-other".to_string());
        a
    };
    for (table, needle) in [
        ("btdother", format!("interface {bridge} is a bridge of another running berth daemon (nftables table {}): choose another name with --bridge", berth_testutil::daemon::nft_table(d.slot))),
        (berth_testutil::daemon::nft_table(d.slot).as_str(), "another berth daemon is running with nftables table".to_string()),
    ] {
        let out = std::process::Command::new("timeout")
            .arg("30")
            .arg(env!("CARGO_BIN_EXE_berth"))
            .args(other_args(table))
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&needle), "{err}");
    }
    let _ = std::process::Command::new("nft").args(["delete", "table", "inet", "btdother"]).output();
    assert_eq!(run_ok(d.docker().args(["run", "--rm", "busybox", "echo", "still-fine"])).trim(), "still-fine");
}

/// `nslookup name` inside a running container, through its own resolv.conf; the
/// addresses it found (busybox prints the server's first).
fn lookup(d: &TestDaemon, container: &str, name: &str) -> Vec<String> {
    let out = d.docker().args(["exec", container, "sh", "-c", &format!("timeout 5 nslookup {name}")]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split("Name:").skip(1).flat_map(|s| s.lines().filter_map(|l| l.trim().strip_prefix("Address:")).map(|a| a.trim().to_string())).collect()
}

#[test]
fn dns_follows_a_container_as_it_joins_and_leaves_user_networks() {
    // External names go to a server on the daemon's loopback that does not exist, so
    // nothing leaves the machine and unknown names fail fast.
    let d = TestDaemon::start_with(Path::new(env!("CARGO_BIN_EXE_berth")), &["--dns", "127.0.0.1"]);
    d.busybox_image("busybox:latest");
    run_ok(d.docker().args(["network", "create", "mynet"]));
    web(&d, "web", &["--network", "mynet", "--network-alias", "www"], "peer");
    run_ok(d.docker().args(["run", "-d", "--name", "c1", "busybox", "sleep", "300"]));
    let rc = run_ok(d.docker().args(["exec", "c1", "cat", "/etc/resolv.conf"]));
    assert!(!rc.contains("127.0.0.11"), "default bridge: {rc}");

    // Joining its first user network switches resolv.conf to the embedded DNS.
    run_ok(d.docker().args(["network", "connect", "--alias", "cee", "mynet", "c1"]));
    let rc = run_ok(d.docker().args(["exec", "c1", "cat", "/etc/resolv.conf"]));
    assert!(rc.contains("nameserver 127.0.0.11") && rc.contains("ndots:0"), "{rc}");
    let web_ip = run_ok(d.docker().args(["inspect", "-f", "{{.NetworkSettings.Networks.mynet.IPAddress}}", "web"]));
    let c1_ip = run_ok(d.docker().args(["inspect", "-f", "{{.NetworkSettings.Networks.mynet.IPAddress}}", "c1"]));
    let (web_ip, c1_ip) = (web_ip.trim().to_string(), c1_ip.trim().to_string());
    assert!(lookup(&d, "c1", "web").contains(&web_ip));
    assert!(lookup(&d, "c1", "www.mynet").contains(&web_ip));
    let got = run_ok(d.docker().args(["exec", "c1", "sh", "-c", "timeout 3 wget -qO- http://web/index.html"]));
    assert_eq!(got.trim(), "peer");
    let hosts = run_ok(d.docker().args(["exec", "c1", "cat", "/etc/hosts"]));
    assert!(hosts.contains(&c1_ip), "{hosts}");
    // And the peers see c1 by its name, its alias and name.network.
    for name in ["c1", "cee", "c1.mynet"] {
        assert!(lookup(&d, "web", name).contains(&c1_ip), "{name}");
    }

    // Leaving it: names go, resolv.conf switches back.
    run_ok(d.docker().args(["network", "disconnect", "mynet", "c1"]));
    let rc = run_ok(d.docker().args(["exec", "c1", "cat", "/etc/resolv.conf"]));
    assert!(!rc.contains("127.0.0.11"), "{rc}");
    assert!(lookup(&d, "c1", "web").is_empty());
    assert!(lookup(&d, "web", "cee").is_empty());
    assert!(!run_ok(d.docker().args(["exec", "c1", "cat", "/etc/hosts"])).contains(&c1_ip));

    // A resolv.conf the user edited is left alone.
    run_ok(d.docker().args(["exec", "c1", "sh", "-c", "echo '# mine' >> /etc/resolv.conf"]));
    run_ok(d.docker().args(["network", "connect", "mynet", "c1"]));
    let rc = run_ok(d.docker().args(["exec", "c1", "cat", "/etc/resolv.conf"]));
    assert!(rc.contains("# mine") && !rc.contains("127.0.0.11"), "{rc}");
    // What berth wrote is known by the digests in the container's record: no file of
    // digests beside the generated ones.
    let hosts_path = run_ok(d.docker().args(["inspect", "-f", "{{.HostsPath}}", "c1"]));
    let cdir = Path::new(hosts_path.trim()).parent().unwrap().to_path_buf();
    let hashes: Vec<_> = std::fs::read_dir(&cdir).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().ends_with(".hash")).collect();
    assert!(hashes.is_empty(), "{hashes:?}");
    let record = std::fs::read_to_string(cdir.join("config.v2.json")).unwrap();
    assert!(record.contains("generated_digests"), "{record}");
}

#[test]
fn a_start_whose_network_is_gone_fails_and_leaves_nothing_mounted() {
    // The rootfs is mounted while the network is attached (at once): when the attach
    // fails, the mount made meanwhile is undone too.
    let d = daemon();
    run_ok(d.docker().args(["network", "create", "gone-net"]));
    let id = run_ok(d.docker().args(["create", "--name", "orphan", "--network", "gone-net", "busybox", "true"])).trim().to_string();
    run_ok(d.docker().args(["network", "rm", "gone-net"]));
    let out = d.docker().args(["start", "orphan"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("network gone-net not found"), "{}", String::from_utf8_lossy(&out.stderr));
    std::thread::sleep(Duration::from_millis(300));
    let left = berth_testutil::daemon::container_mounts_under(&d.dir);
    assert!(left.iter().all(|m| !m.contains(&id)), "{left:?}");
    assert_eq!(std::fs::read_dir(d.exec_root.join("netns")).map(|r| r.count()).unwrap_or(0), 0);
    assert_eq!(run_ok(d.docker().args(["inspect", "-f", "{{.State.Status}}", "orphan"])).trim(), "created");
    run_ok(d.docker().args(["rm", "orphan"]));
}
