//! Legacy links and `enable_icc=false` through the docker CLI, docker-py and
//! docker-compose 1.x. The icc tests run their daemon in a network namespace of their
//! own (br_netfilter's per-namespace sysctl is turned on there, never on the host).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_testutil::daemon::{TestDaemon, run_ok};
use berth_testutil::net::HardenedHost;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

fn daemon() -> TestDaemon {
    // External names go to a resolver that does not exist: nothing leaves the machine.
    let d = TestDaemon::start_with(bin(), &["--dns", "127.0.0.1"]);
    d.busybox_image("busybox:latest");
    d
}

fn web(d: &TestDaemon, name: &str, args: &[&str], text: &str) {
    let mut all = vec!["run", "-d", "--name", name, "--expose", "80"];
    all.extend_from_slice(args);
    let cmd = format!("mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p 80 -h /www");
    all.extend_from_slice(&["busybox", "sh", "-c", &cmd]);
    run_ok(d.docker().args(&all));
}

fn wget_in(d: &TestDaemon, args: &[&str], url: &str) -> String {
    let mut all = vec!["run", "--rm"];
    all.extend_from_slice(args);
    let script = format!("timeout 3 wget -qO- {url}; exit $?");
    all.extend_from_slice(&["busybox", "sh", "-c", &script]);
    String::from_utf8_lossy(&d.docker().args(&all).output().unwrap().stdout).into_owned()
}

fn stderr_of(d: &TestDaemon, args: &[&str]) -> String {
    let out = d.docker().args(args).output().unwrap();
    assert!(!out.status.success(), "{args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_link_gives_a_hosts_entry_env_vars_and_on_user_networks_an_alias() {
    let d = daemon();
    web(&d, "web", &["--hostname", "webhost", "-e", "SECRET=s3cret"], "linked");
    let ip = run_ok(d.docker().args(["inspect", "-f", "{{.NetworkSettings.Networks.bridge.IPAddress}}", "web"]));
    let ip = ip.trim();

    run_ok(d.docker().args(["run", "-d", "--name", "client", "--link", "web:db", "busybox", "sleep", "300"]));
    let hosts = run_ok(d.docker().args(["exec", "client", "cat", "/etc/hosts"]));
    assert!(hosts.contains(&format!("{ip}\tdb webhost web\n")), "{hosts}");
    let env = run_ok(d.docker().args(["exec", "client", "env"]));
    for want in [
        format!("DB_PORT=tcp://{ip}:80"),
        format!("DB_PORT_80_TCP=tcp://{ip}:80"),
        format!("DB_PORT_80_TCP_ADDR={ip}"),
        "DB_PORT_80_TCP_PORT=80".to_string(),
        "DB_PORT_80_TCP_PROTO=tcp".to_string(),
        "DB_NAME=/client/db".to_string(),
        "DB_ENV_SECRET=s3cret".to_string(),
    ] {
        assert!(env.lines().any(|l| l == want), "{want} missing from:\n{env}");
    }
    let got = run_ok(d.docker().args(["exec", "client", "sh", "-c", "timeout 3 wget -qO- http://db/index.html"]));
    assert_eq!(got.trim(), "linked");
    let links = run_ok(d.docker().args(["inspect", "-f", "{{json .HostConfig.Links}}", "client"]));
    assert_eq!(links.trim(), r#"["/web:/client/db"]"#);
    // The linked container comes back on another address: the link follows it.
    run_ok(d.docker().args(["stop", "-t", "1", "web"]));
    run_ok(d.docker().args(["run", "-d", "--name", "squatter", "busybox", "sleep", "300"]));
    run_ok(d.docker().args(["start", "web"]));
    let ip2 = run_ok(d.docker().args(["inspect", "-f", "{{.NetworkSettings.Networks.bridge.IPAddress}}", "web"]));
    assert_ne!(ip2.trim(), ip, "the squatter took web's old address");
    let hosts = run_ok(d.docker().args(["exec", "client", "cat", "/etc/hosts"]));
    assert!(hosts.contains(&format!("{}\tdb webhost web\n", ip2.trim())) && !hosts.contains(&format!("{ip}\t")), "{hosts}");

    // Docker's errors: an unknown container at create, a stopped one at start.
    assert!(stderr_of(&d, &["create", "--link", "nosuch:x", "busybox", "true"]).contains("could not get container for nosuch"));
    run_ok(d.docker().args(["create", "--name", "idle", "busybox", "true"]));
    let err = stderr_of(&d, &["run", "--rm", "--name", "late", "--link", "idle:i", "busybox", "true"]);
    assert!(err.contains("Cannot link to a non running container: /idle AS /late/i"), "{err}");
    assert!(stderr_of(&d, &["run", "--rm", "--network", "host", "--link", "web", "busybox", "true"]).contains("host type networking can't be used with links"));

    // On a user network a link is an alias seen by the linking container only.
    run_ok(d.docker().args(["network", "create", "mynet"]));
    web(&d, "api", &["--network", "mynet"], "on-mynet");
    assert!(wget_in(&d, &["--network", "mynet", "--link", "api:backend"], "http://backend/index.html").contains("on-mynet"));
    assert_eq!(wget_in(&d, &["--network", "mynet"], "http://backend/index.html"), "");
}

#[test]
fn docker_py_and_compose_links_work_unchanged() {
    let d = daemon();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/docker_py_links.py");
    let out = Command::new("/usr/bin/python3").arg(&script).arg(d.host()).output().expect("python3-docker");
    assert!(out.status.success(), "{}\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr), d.log());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "docker-py links ok\n");

    // docker-compose 1.x `links:` (an alias on the project's network).
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        r#"version: "3.8"
services:
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo via-link > /www/index.html && httpd -f -p 80 -h /www"]
    stop_grace_period: 1s
  client:
    image: busybox
    links: ["web:backend"]
    command: ["sh", "-c", "for i in $$(seq 20); do wget -qO- http://backend/ && exit 0; sleep 0.5; done; exit 1"]
"#,
    )
    .unwrap();
    let compose = |args: &[&str]| {
        Command::new("/usr/bin/docker-compose")
            .args(["-p", "lnk"])
            .args(args)
            .current_dir(dir.path())
            .env("DOCKER_HOST", d.host())
            .output()
            .expect("docker-compose")
    };
    let out = compose(&["up", "--abort-on-container-exit", "--exit-code-from", "client"]);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("via-link"), "{text}\n{}", d.log());
    assert!(compose(&["down"]).status.success());
}

#[test]
fn icc_off_blocks_peers_but_not_published_ports_nor_links() {
    let host = HardenedHost::new();
    let d = TestDaemon::start_in(bin(), Some(&host.path()), &["--icc=false", "--dns", "127.0.0.1"]);
    d.busybox_image("busybox:latest");
    let up = HardenedHost::UPLINK_IP;

    // A user network with enable_icc=false.
    run_ok(d.docker().args(["network", "create", "-o", "com.docker.network.bridge.enable_icc=false", "quiet"]));
    let opts = run_ok(d.docker().args(["network", "inspect", "-f", "{{index .Options \"com.docker.network.bridge.enable_icc\"}}", "quiet"]));
    assert_eq!(opts.trim(), "false");
    web(&d, "srv", &["--network", "quiet", "-p", "8090:80"], "icc-web");
    let ip = run_ok(d.docker().args(["inspect", "-f", "{{.NetworkSettings.Networks.quiet.IPAddress}}", "srv"]));
    // Peers: name resolves, traffic does not pass.
    assert_eq!(wget_in(&d, &["--network", "quiet"], &format!("http://{}/index.html", ip.trim())), "");
    assert_eq!(wget_in(&d, &["--network", "quiet"], "http://srv/index.html"), "");
    // Published ports still answer: from the host, and from a peer on the same bridge.
    assert_eq!(host.wget("http://127.0.0.1:8090/index.html").as_deref(), Some("icc-web\n"));
    assert!(wget_in(&d, &["--network", "quiet"], &format!("http://{up}:8090/index.html")).contains("icc-web"));

    // The default bridge with --icc=false: only a --link opens the linked ports.
    web(&d, "legacy", &[], "linked-web");
    let lip = run_ok(d.docker().args(["inspect", "-f", "{{.NetworkSettings.Networks.bridge.IPAddress}}", "legacy"]));
    let url = format!("http://{}/index.html", lip.trim());
    assert_eq!(wget_in(&d, &[], &url), "");
    eventually("the link's port is open", || wget_in(&d, &["--link", "legacy:lg"], "http://lg/index.html").contains("linked-web"));
    let bridge = run_ok(d.docker().args(["network", "inspect", "-f", "{{index .Options \"com.docker.network.bridge.enable_icc\"}}", "bridge"]));
    assert_eq!(bridge.trim(), "false");
}
