//! berth-net on the real kernel: bridges, veths, nft, DNS, namespaces. Each test is
//! a daemon of its own (unique bridge, nft table and 10.<index>.0.0/16 subnets) and
//! its "containers" are network namespaces running busybox.

mod common;

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};

use berth_net::{ErrorKind, HostPort, NetworkCreateRequest, NetworkManager, PortBindingRequest, Proto};
use common::*;

fn sub(env: &Env, name: &str, n: u8) -> NetworkCreateRequest {
    NetworkCreateRequest::named(name).with_subnet(&env.subnet(n), None, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_namespaces_reach_each_other_by_ip_and_by_name() {
    let env = Env::new(151);
    let m = NetworkManager::open(env.config()).await.unwrap();
    m.create_network(sub(&env, "appnet", 1)).await.unwrap();
    let ns_web = env.netns("web").await;
    let ns_cli = env.netns("cli").await;
    let web = m
        .connect("appnet", berth_net::EndpointRequest { container_name: "web".into(), aliases: vec!["www".into()], ..env.request(1, &ns_web) })
        .await
        .unwrap();
    let cli = m.connect("appnet", env.request(2, &ns_cli)).await.unwrap();
    assert_eq!(web.ip.to_string(), format!("10.{}.1.2", env.index));
    assert_eq!(cli.ip.to_string(), format!("10.{}.1.3", env.index));

    // Inside: eth0 with the address, MAC and MTU; default route via the gateway.
    let links = env.ip_in(&ns_web, &["link", "show", "eth0"]);
    assert!(links.contains("mtu 1500"), "{links}");
    assert!(links.contains(&web.mac), "{links}");
    let addrs = env.ip_in(&ns_web, &["-4", "addr", "show", "eth0"]);
    assert!(addrs.contains(&format!("{}/24", web.ip)), "{addrs}");
    let routes = env.ip_in(&ns_web, &["-4", "route"]);
    assert!(routes.contains(&format!("default via 10.{}.1.1 dev eth0", env.index)), "{routes}");

    env.httpd(&ns_web, "hello from web");
    assert_eq!(env.wget(&ns_cli, &web.ip.to_string()).as_deref(), Some("hello from web"));

    // The embedded DNS answers for the name, the alias, the short ID and name.network.
    for name in ["web", "www", &common::container_id(1)[..12], "web.appnet"] {
        assert_eq!(env.nslookup(&ns_cli, name), vec![web.ip], "resolving {name}");
    }
    // busybox wget http://web/ with the resolv.conf berth writes for the container.
    let files = m
        .container_files(&berth_net::FilesRequest {
            links: vec![],
            container_id: common::container_id(2),
            mode: berth_net::NetworkMode::Sandbox,
            hostname: "cli".into(),
            domainname: String::new(),
            dns: Default::default(),
            extra_hosts: vec![],
        })
        .await
        .unwrap();
    assert!(files.resolv_conf.contains("nameserver 127.0.0.11"));
    let rc = env.dir.path().join("cli-resolv.conf");
    std::fs::write(&rc, &files.resolv_conf).unwrap();
    assert_eq!(env.wget_by_name(&ns_cli, &rc, "web").as_deref(), Some("hello from web"));
    assert_eq!(env.wget_by_name(&ns_cli, &rc, "www.appnet").as_deref(), Some("hello from web"));

    m.teardown().await.unwrap();
    assert!(env.tagged_links().is_empty());
    assert_eq!(env.nft_table(), "");
}

fn bind(port: u16, ip: Option<Ipv4Addr>, host_port: HostPort) -> PortBindingRequest {
    PortBindingRequest { container_port: port, proto: Proto::Tcp, host_ip: ip.map(std::net::IpAddr::V4), host_port }
}

/// A free TCP port on 127.0.0.1 right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_ports_answer_on_loopback_host_addresses_and_from_other_networks() {
    let env = Env::new(152);
    let m = NetworkManager::open(env.config()).await.unwrap();
    m.create_network(sub(&env, "pubnet", 1)).await.unwrap();
    m.create_network(sub(&env, "othernet", 2)).await.unwrap();
    let ns_web = env.netns("web").await;
    let ns_other = env.netns("other").await;
    m.connect("pubnet", env.request(1, &ns_web)).await.unwrap();
    m.connect("othernet", env.request(2, &ns_other)).await.unwrap();
    env.httpd(&ns_web, "published");

    // -p 127.0.0.1:P:80, -p Q:80 (all addresses), -P style (any free port).
    let p = free_port();
    let q = free_port();
    let got = m
        .publish(
            &container_id(1),
            &[bind(80, Some(Ipv4Addr::LOCALHOST), HostPort::Single(p)), bind(80, None, HostPort::Single(q)), bind(80, None, HostPort::Any)],
        )
        .await
        .unwrap();
    // Without a host address, a port is published on [::] too (this host has IPv6).
    let v6: Vec<_> = got.iter().filter(|m| m.host_ip.is_ipv6()).cloned().collect();
    let got: Vec<_> = got.into_iter().filter(|m| m.host_ip.is_ipv4()).collect();
    assert_eq!(v6.iter().map(|m| m.host_port).collect::<Vec<_>>(), vec![q, got[2].host_port]);
    assert_eq!(got[0].host_port, p);
    assert_eq!(got[1].host_port, q);
    assert_eq!(got[1].host_ip, Ipv4Addr::UNSPECIFIED);
    let any = got[2].host_port;
    assert!(any != 0 && any != p && any != q);

    let lo = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    assert_eq!(http_get(lo(p)).unwrap(), "published");
    assert!(env.nft_table().contains(&format!("tcp . {q} : ")), "{}", env.nft_table());
    assert_eq!(http_get(lo(q)).unwrap(), "published");
    assert_eq!(http_get(lo(any)).unwrap(), "published");
    // [::1] through the userland proxy (the container has no IPv6 address).
    assert_eq!(http_get(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, q))).unwrap(), "published");
    // The default bridge's gateway is one of the host's own addresses.
    let gw = m.host_gateway_ip().await.unwrap();
    assert_eq!(http_get(SocketAddr::from((gw, q))).unwrap(), "published");
    assert!(http_get(SocketAddr::from((gw, p))).is_err(), "a 127.0.0.1 binding is not on other addresses");
    if let Some(host) = host_address() {
        assert_eq!(http_get(SocketAddr::from((host, q))).unwrap(), "published", "on {host}");
    }
    // From a container on another network, through the host's address.
    let other_gw = format!("10.{}.2.1", env.index);
    assert_eq!(env.wget(&ns_other, &format!("{other_gw}:{q}")).as_deref(), Some("published"));
    // Hairpin: the container reaches its own published port through the host.
    let own_gw = format!("10.{}.1.1", env.index);
    assert_eq!(env.wget(&ns_web, &format!("{own_gw}:{q}")).as_deref(), Some("published"));

    // docker port / inspect.
    let map = m.port_map(&container_id(1), &["80/tcp".into()]).await.unwrap();
    let bindings = map["80/tcp"].as_ref().unwrap();
    assert_eq!(bindings.len(), 5, "{bindings:?}");
    assert_eq!(bindings[0].host_ip, "127.0.0.1");
    assert_eq!(bindings[2].host_ip, "::");
    assert_eq!(bindings[0].host_port, p.to_string());

    // Taken ports: by us, and by another process.
    let e = m.publish(&container_id(2), &[bind(80, None, HostPort::Single(q))]).await.unwrap_err();
    assert_eq!((e.kind(), e.message().to_string()), (ErrorKind::Conflict, format!("Bind for 0.0.0.0:{q} failed: port is already allocated")));
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let before = env.nft_table();
    let e = m.publish(&container_id(2), &[bind(80, None, HostPort::Single(taken))]).await.unwrap_err();
    assert_eq!(e.message(), format!("Bind for 0.0.0.0:{taken} failed: port is already allocated"));
    assert_eq!(env.nft_table(), before, "a refused publish changes no rule");
    // A published port cannot be taken by someone else while it is ours.
    assert!(std::net::TcpListener::bind(("0.0.0.0", q)).is_err());

    // Unpublish: rules and reservations go.
    m.unpublish(&container_id(1)).await.unwrap();
    assert!(http_get(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, q))).is_err(), "the proxy is gone");
    // The map elements go in the background (the kernel retires them after an RCU
    // grace period); soon, not necessarily by the time unpublish returns.
    let mut gone = false;
    for _ in 0..100 {
        if !env.nft_table().contains(&format!("tcp . {q} :")) && http_get(lo(p)).is_err() {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(gone, "{}", env.nft_table());
    drop(std::net::TcpListener::bind(("0.0.0.0", q)).expect("port released"));

    m.teardown().await.unwrap();
    assert_eq!(env.nft_table(), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networks_are_isolated_and_connect_disconnect_work_on_a_running_container() {
    let env = Env::new(153);
    let m = NetworkManager::open(env.config()).await.unwrap();
    m.create_network(sub(&env, "red", 1)).await.unwrap();
    m.create_network(sub(&env, "blue", 2)).await.unwrap();
    let ns_a = env.netns("a").await;
    let ns_b = env.netns("b").await;
    let a = m.connect("red", env.request(1, &ns_a)).await.unwrap();
    m.connect("blue", env.request(2, &ns_b)).await.unwrap();
    env.httpd(&ns_a, "red-a");

    // Forwarding works (a published port is reachable from blue) ...
    let p = free_port();
    m.publish(&container_id(1), &[bind(80, None, HostPort::Single(p))]).await.unwrap();
    assert_eq!(env.wget(&ns_b, &format!("10.{}.2.1:{p}", env.index)).as_deref(), Some("red-a"));
    // ... but blue cannot reach red directly, and names do not cross networks.
    assert!(env.unreachable(&ns_b, &a.ip.to_string()));
    assert!(env.nslookup(&ns_b, "c1").is_empty());

    // Connect b to red while it runs: eth1 appears, a is reachable by address and name.
    let b_red = m.connect("red", env.request(2, &ns_b)).await.unwrap();
    assert_eq!(b_red.ifname, "eth1");
    assert!(!b_red.provides_gateway, "the default route stays on the first network");
    assert!(env.ip_in(&ns_b, &["-4", "addr", "show", "eth1"]).contains(&format!("{}/24", b_red.ip)));
    assert_eq!(env.wget(&ns_b, &a.ip.to_string()).as_deref(), Some("red-a"));
    assert_eq!(env.nslookup(&ns_b, "c1"), vec![a.ip]);
    assert_eq!(m.inspect_network("red").await.unwrap().containers.len(), 2);

    // Disconnect: gone again, interface and name included.
    m.disconnect("red", &container_id(2)).await.unwrap();
    assert!(!env.ip_in(&ns_b, &["link"]).contains("eth1"));
    assert!(!common::link_exists(&b_red.host_veth));
    assert!(env.unreachable(&ns_b, &a.ip.to_string()));
    assert!(env.nslookup(&ns_b, "c1").is_empty());
    assert_eq!(m.inspect_network("red").await.unwrap().containers.len(), 1);

    m.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_internal_network_has_no_way_out() {
    let env = Env::new(154);
    let m = NetworkManager::open(env.config()).await.unwrap();
    m.create_network(NetworkCreateRequest { internal: true, ..sub(&env, "sealed", 1) }).await.unwrap();
    m.create_network(sub(&env, "open", 2)).await.unwrap();
    let ns_in1 = env.netns("in1").await;
    let ns_in2 = env.netns("in2").await;
    let ns_out = env.netns("out").await;
    let in1 = m.connect("sealed", env.request(1, &ns_in1)).await.unwrap();
    m.connect("sealed", env.request(2, &ns_in2)).await.unwrap();
    let out = m.connect("open", env.request(3, &ns_out)).await.unwrap();
    env.httpd(&ns_in1, "inside");
    env.httpd(&ns_out, "outside");

    // No default route inside; only the network's own subnet.
    let routes = env.ip_in(&ns_in2, &["-4", "route"]);
    assert!(!routes.contains("default"), "{routes}");
    // Members of the internal network reach each other (and resolve each other).
    assert_eq!(env.wget(&ns_in2, &in1.ip.to_string()).as_deref(), Some("inside"));
    assert_eq!(env.nslookup(&ns_in2, "c1"), vec![in1.ip]);
    // Nothing outside: not another network, not the host's other addresses ...
    assert!(env.unreachable(&ns_in2, &out.ip.to_string()));
    assert!(env.unreachable(&ns_in2, &format!("10.{}.2.1", env.index)));
    // ... even with a default route forced in by hand: the forward fence drops it.
    let forced = env.run_in(&ns_in2, &["ip", "route", "add", "default", "via", &format!("10.{}.1.1", env.index)]);
    assert!(forced.status.success());
    assert!(env.unreachable(&ns_in2, &out.ip.to_string()));
    // ... and nothing comes in from outside either.
    assert!(env.unreachable(&ns_out, &in1.ip.to_string()));
    // Internal networks are not masqueraded.
    let table = env.nft_table();
    assert!(!table.contains(&format!("ip saddr 10.{}.1.0/24 oifname !=", env.index)), "{table}");

    m.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_and_endpoints_survive_reopening_the_manager() {
    let env = Env::new(156);
    let m = NetworkManager::open(env.config()).await.unwrap();
    let net = m.create_network(sub(&env, "keep", 1)).await.unwrap();
    let ns_a = env.netns("a").await;
    let ns_b = env.netns("b").await;
    let ns_c = env.netns("c").await;
    let a = m.connect("keep", env.request(1, &ns_a)).await.unwrap();
    let b = m.connect("keep", env.request(2, &ns_b)).await.unwrap();
    m.disconnect("keep", &container_id(2)).await.unwrap();
    let ids = m.network_ids().await;
    drop(m);

    let m = NetworkManager::open(env.config()).await.unwrap();
    assert_eq!(m.network_ids().await, ids, "same networks, same IDs");
    assert_eq!(m.inspect_network("keep").await.unwrap().id, net.id);
    assert_eq!(m.endpoints_of(&container_id(1)).await, vec![a.clone()]);
    assert!(m.dns_running(&container_id(1)).await, "DNS restarted for the live sandbox");
    // b's address was released and is reused; a's is never handed out again.
    let c = m.connect("keep", env.request(3, &ns_c)).await.unwrap();
    assert_eq!(c.ip, b.ip);
    assert_ne!(c.ip, a.ip);
    env.httpd(&ns_a, "still here");
    assert_eq!(env.wget(&ns_c, &a.ip.to_string()).as_deref(), Some("still here"));
    assert_eq!(env.nslookup(&ns_c, "c1"), vec![a.ip]);

    m.teardown().await.unwrap();
    assert!(env.tagged_links().is_empty());
}

const CHILD_ENV: &str = "BERTH_NET_TEST_CHILD";

/// The daemon that gets killed: opens the state, builds a network with two
/// "containers" and a published port, says READY and waits to die.
async fn crash_child() {
    let var = |k: &str| std::env::var(k).unwrap();
    let dir = std::path::PathBuf::from(var("BNT_DIR"));
    let index: u8 = var("BNT_INDEX").parse().unwrap();
    let config = config_for(&dir, index, &var("BNT_TABLE"), &var("BNT_BRIDGE"));
    let m = NetworkManager::open(config).await.unwrap();
    m.create_network(NetworkCreateRequest::named("crash").with_subnet(&format!("10.{index}.1.0/24"), None, None))
        .await
        .unwrap();
    for (n, ns) in [(1u8, var("BNT_NS_A")), (2, var("BNT_NS_B"))] {
        let req = berth_net::EndpointRequest {
            container_id: container_id(n),
            container_name: format!("c{n}"),
            netns: ns.into(),
            ..Default::default()
        };
        m.connect("crash", req).await.unwrap();
    }
    let port: u16 = var("BNT_PORT").parse().unwrap();
    m.publish(&container_id(1), &[bind(80, Some(Ipv4Addr::LOCALHOST), HostPort::Single(port))]).await.unwrap();
    println!("BERTH-NET-CHILD-READY");
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_then_reopen_reconciles() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return crash_child().await;
    }
    use std::io::BufRead;
    let env = Env::new(157);
    let ns_a = env.netns("a").await;
    let ns_b = env.netns("b").await;
    env.httpd(&ns_a, "survivor");
    let port = free_port();

    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "kill_dash_nine_then_reopen_reconciles", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, "1")
        .env("BNT_DIR", env.dir.path())
        .env("BNT_INDEX", env.index.to_string())
        .env("BNT_TABLE", &env.table)
        .env("BNT_BRIDGE", &env.bridge)
        .env("BNT_NS_A", &ns_a)
        .env("BNT_NS_B", &ns_b)
        .env("BNT_PORT", port.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let ready = std::io::BufReader::new(stdout).lines().map_while(Result::ok).any(|l| l.contains("BERTH-NET-CHILD-READY"));
    assert!(ready, "the child daemon did not get ready");
    let lo = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    assert_eq!(http_get(lo).unwrap(), "survivor");
    let veths_before = env.tagged_links().into_iter().filter(|l| l.starts_with("veth")).count();
    assert_eq!(veths_before, 2);

    // kill -9: no cleanup runs. The kernel keeps everything.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    assert_eq!(http_get(lo).unwrap(), "survivor", "the running container keeps its published port");

    // While the daemon is down: container b dies (its namespace goes, with its veth), a
    // crash left a tagged veth behind, and somebody else has an untagged one.
    berth_net::netns::delete_netns(&ns_b).unwrap();
    env.forget_netns(&ns_b);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while env.tagged_links().into_iter().filter(|l| l.starts_with("veth")).count() != 1 {
        assert!(std::time::Instant::now() < deadline, "b's veth did not go away with its namespace");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let hex = berth_net::ids::short_random_hex(6);
    let (leak, theirs) = (format!("bnl{hex}"), format!("bnu{hex}"));
    env.own_link(&leak);
    env.own_link(&theirs);
    let sh = |args: &[&str]| assert!(std::process::Command::new("ip").args(args).status().unwrap().success(), "{args:?}");
    sh(&["link", "add", &leak, "type", "veth", "peer", "name", &format!("bnm{hex}")]);
    sh(&["link", "set", &leak, "alias", &format!("berth:{}:ep:deadbeef", env.table)]);
    sh(&["link", "add", &theirs, "type", "veth", "peer", "name", &format!("bnv{hex}")]);
    // A crash between creating a veth and tagging it (the kernel takes the alias only
    // afterwards) leaves an untagged one on berth's bridge.
    let untagged = format!("bnk{hex}");
    env.own_link(&untagged);
    sh(&["link", "add", &untagged, "type", "veth", "peer", "name", &format!("bnw{hex}")]);
    sh(&["link", "set", &untagged, "master", &env.bridge]);
    // Likewise a bridge: created in berth's netdev group, killed before its tag.
    let bare = format!("bnb{hex}");
    env.own_link(&bare);
    sh(&["link", "add", &bare, "type", "bridge"]);
    sh(&["link", "set", &bare, "group", &berth_net::iptables::bridge_group(&env.table).to_string()]);

    let m = NetworkManager::open(env.config()).await.unwrap();
    assert!(!common::link_exists(&leak), "leaked tagged veth removed");
    assert!(!common::link_exists(&untagged), "untagged veth on berth's bridge removed");
    assert!(!common::link_exists(&bare), "untagged bridge in berth's group removed");
    assert!(common::link_exists(&theirs), "somebody else's veth untouched");
    sh(&["link", "del", &theirs]);
    let a = m.endpoints_of(&container_id(1)).await;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].ip.to_string(), format!("10.{}.1.2", env.index), "a keeps its address");
    assert!(m.endpoints_of(&container_id(2)).await.is_empty(), "b's endpoint is gone with its veth");
    assert_eq!(m.inspect_network("crash").await.unwrap().containers.len(), 1);
    assert_eq!(http_get(lo).unwrap(), "survivor");
    assert!(std::net::TcpListener::bind(lo).is_err(), "the published port is held again");
    assert_eq!(env.nslookup(&ns_a, "c1"), vec![a[0].ip], "DNS serves the survivor again");
    // b's address is free again.
    assert!(!env.nft_table().contains(&format!("10.{}.1.3", env.index)));

    // The engine reports a as alive: nothing to release. Then a dies too.
    let report = m.reconcile(&HashSet::from([container_id(1)])).await.unwrap();
    assert!(report.released.is_empty());
    let report = m.reconcile(&HashSet::new()).await.unwrap();
    assert_eq!(report.released, vec![container_id(1)]);
    assert!(env.tagged_links().iter().all(|l| !l.starts_with("veth")));
    assert!(http_get(lo).is_err());
    assert!(!env.nft_table().contains(&format!("tcp . {port} :")));
    assert!(m.containers().await.is_empty());

    m.teardown().await.unwrap();
    assert!(env.tagged_links().is_empty());
    assert_eq!(env.nft_table(), "");
}

/// Everything a test's daemon has in the kernel, as text: tagged links, their
/// addresses, and the nft table.
fn kernel_snapshot(env: &Env) -> String {
    let mut links = env.tagged_links();
    links.sort();
    let addrs: Vec<String> = links
        .iter()
        .map(|l| {
            let out = std::process::Command::new("ip").args(["-o", "-4", "addr", "show", "dev", l]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).split_whitespace().filter(|w| w.contains('/')).collect::<Vec<_>>().join(",")
        })
        .collect();
    format!("{links:?}\n{addrs:?}\n{}", env.nft_table())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_dockers_errors_and_changes_nothing() {
    let env = Env::new(158);
    let m = NetworkManager::open(env.config()).await.unwrap();
    let net = m.create_network(sub(&env, "taken", 1)).await.unwrap();
    let ns_a = env.netns("a").await;
    let ns_b = env.netns("b").await;
    let a = m.connect("taken", env.request(1, &ns_a)).await.unwrap();
    let p = free_port();
    m.publish(&container_id(1), &[bind(80, None, HostPort::Single(p))]).await.unwrap();
    let before = kernel_snapshot(&env);
    let networks_before = m.list_networks(&Default::default()).await.unwrap();

    let check = |r: Result<(), berth_net::NetError>, kind: ErrorKind, msg: &str| {
        let e = r.unwrap_err();
        assert_eq!((e.kind(), e.message()), (kind, msg));
    };
    let create = |req: NetworkCreateRequest| async { m.create_network(req).await.map(|_| ()) };
    check(create(sub(&env, "taken", 2)).await, ErrorKind::Conflict, "network with name taken already exists");
    check(
        create(NetworkCreateRequest::named("overlap").with_subnet(&format!("10.{}.1.128/25", env.index), None, None)).await,
        ErrorKind::Forbidden,
        "invalid pool request: Pool overlaps with other one on this address space",
    );
    check(
        create(NetworkCreateRequest::named("cidr").with_subnet("10.1.2.0/40", None, None)).await,
        ErrorKind::InvalidParameter,
        "invalid CIDR address: 10.1.2.0/40",
    );
    check(
        create(NetworkCreateRequest {
            options: Some([("com.docker.network.bridge.name".to_string(), env.bridge.clone())].into()),
            ..sub(&env, "samebridge", 3)
        })
        .await,
        ErrorKind::Conflict,
        &format!("bridge name {} is already used by another network", env.bridge),
    );
    check(m.remove_network("ghost").await, ErrorKind::NotFound, "network ghost not found");
    check(m.connect("ghost", env.request(2, &ns_b)).await.map(|_| ()), ErrorKind::NotFound, "network ghost not found");
    check(
        m.connect("taken", berth_net::EndpointRequest { ipv4: Some(a.ip), ..env.request(2, &ns_b) }).await.map(|_| ()),
        ErrorKind::Forbidden,
        "Address already in use",
    );
    check(
        m.connect("taken", env.request(2, &env.dir.path().join("no-such-ns"))).await.map(|_| ()),
        ErrorKind::InvalidParameter,
        &format!("network namespace {} does not exist", env.dir.path().join("no-such-ns").display()),
    );
    check(
        m.remove_network("taken").await,
        ErrorKind::Forbidden,
        &format!("error while removing network: network taken id {} has active endpoints", net.id),
    );
    check(m.remove_network("bridge").await, ErrorKind::Forbidden, "bridge is a pre-defined network and cannot be removed");
    check(
        m.publish(&container_id(1), &[bind(81, None, HostPort::Single(p))]).await.map(|_| ()),
        ErrorKind::Conflict,
        &format!("Bind for 0.0.0.0:{p} failed: port is already allocated"),
    );

    assert_eq!(kernel_snapshot(&env), before, "no interface, address or rule changed");
    assert_eq!(m.list_networks(&Default::default()).await.unwrap(), networks_before);
    assert!(m.endpoints_of(&container_id(2)).await.is_empty());

    // Once empty, the network goes, with its bridge and its rules.
    m.release(&container_id(1)).await.unwrap();
    m.remove_network("taken").await.unwrap();
    let bridge = format!("br-{}", &net.id[..12]);
    assert!(!common::link_exists(&bridge));
    assert!(!env.nft_table().contains(&bridge));
    assert!(!env.nft_table().contains(&format!("10.{}.1.0/24", env.index)));
    m.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_options_mtu_bridge_name_and_no_masquerade() {
    let env = Env::new(159);
    let m = NetworkManager::open(env.config()).await.unwrap();
    let name = format!("bo{}", berth_net::ids::short_random_hex(6));
    m.create_network(NetworkCreateRequest {
        options: Some([
            ("com.docker.network.driver.mtu".to_string(), "1400".to_string()),
            ("com.docker.network.bridge.name".to_string(), name.clone()),
            ("com.docker.network.bridge.enable_ip_masquerade".to_string(), "false".to_string()),
        ].into()),
        labels: Some([("team".to_string(), "net".to_string())].into()),
        ..sub(&env, "tuned", 1)
    })
    .await
    .unwrap();
    let ns = env.netns("a").await;
    let ep = m
        .connect("tuned", berth_net::EndpointRequest { mac: Some("02:aa:bb:cc:dd:ee".into()), ..env.request(1, &ns) })
        .await
        .unwrap();
    assert_eq!(ep.bridge, name);
    let inside = env.ip_in(&ns, &["link", "show", "eth0"]);
    assert!(inside.contains("mtu 1400") && inside.contains("02:aa:bb:cc:dd:ee"), "{inside}");
    let bridge = std::process::Command::new("ip").args(["-o", "link", "show", &name]).output().unwrap();
    assert!(String::from_utf8_lossy(&bridge.stdout).contains("mtu 1400"));
    let table = env.nft_table();
    assert!(!table.contains(&format!("ip saddr 10.{}.1.0/24 oifname != \"{name}\" masquerade", env.index)), "{table}");
    assert!(table.contains(&format!("ip saddr 10.{}.0.0/24 oifname != \"{}\" masquerade", env.index, env.bridge)));
    let inspect = m.inspect_network("tuned").await.unwrap();
    assert_eq!(inspect.labels["team"], "net");
    assert_eq!(inspect.options["com.docker.network.driver.mtu"], "1400");
    m.teardown().await.unwrap();
    assert!(!common::link_exists(&name));
}

/// A DNS server on 127.0.0.1 standing in for the host's resolver: answers every A
/// query with 192.0.2.123, over UDP and TCP.
async fn fake_upstream() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = udp.local_addr().unwrap();
    let tcp = std::net::TcpListener::bind(addr).unwrap();
    (addr, serve_fake_dns(udp, tcp, Ipv4Addr::new(192, 0, 2, 123)))
}

/// Serves the two sockets, answering every A query with `ip`.
fn serve_fake_dns(udp: std::net::UdpSocket, tcp: std::net::TcpListener, ip: Ipv4Addr) -> tokio::task::JoinHandle<()> {
    use hickory_proto::op::{Message, MessageType};
    use hickory_proto::rr::{RData, Record, rdata::A};
    let answer = move |q: &[u8]| -> Vec<u8> {
        let req = Message::from_vec(q).unwrap();
        let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
        resp.metadata.message_type = MessageType::Response;
        resp.add_queries(req.queries.clone());
        let name = req.queries[0].name().clone();
        resp.add_answer(Record::from_rdata(name, 30, RData::A(A(ip))));
        resp.to_vec().unwrap()
    };
    udp.set_nonblocking(true).unwrap();
    tcp.set_nonblocking(true).unwrap();
    let udp = tokio::net::UdpSocket::from_std(udp).unwrap();
    let tcp = tokio::net::TcpListener::from_std(tcp).unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = vec![0u8; 4096];
        loop {
            tokio::select! {
                Ok((n, peer)) = udp.recv_from(&mut buf) => { let _ = udp.send_to(&answer(&buf[..n]), peer).await; }
                Ok((mut s, _)) = tcp.accept() => {
                    let len = s.read_u16().await.unwrap() as usize;
                    let mut q = vec![0u8; len];
                    s.read_exact(&mut q).await.unwrap();
                    let r = answer(&q);
                    s.write_all(&(r.len() as u16).to_be_bytes()).await.unwrap();
                    s.write_all(&r).await.unwrap();
                }
            }
        }
    })
}

/// One DNS query over TCP to 127.0.0.11 from inside the namespace.
async fn tcp_query_in(netns: &std::path::Path, name: &str) -> Vec<Ipv4Addr> {
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{Name, RData, RecordType};
    let mut q = Message::query();
    q.metadata.id = 77;
    q.metadata.recursion_desired = true;
    q.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let bytes = q.to_vec().unwrap();
    let resp = berth_net::netns::run_in_netns(netns, move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.11", 53))?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        s.write_all(&(bytes.len() as u16).to_be_bytes())?;
        s.write_all(&bytes)?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len)?;
        let mut r = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut r)?;
        Ok(r)
    })
    .await
    .unwrap();
    Message::from_vec(&resp)
        .unwrap()
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_dns_forwards_other_names_and_speaks_tcp() {
    let env = Env::new(160);
    let (upstream, task) = fake_upstream().await;
    let mut config = env.config();
    config.dns_upstreams = Some(vec![upstream]);
    let m = NetworkManager::open(config).await.unwrap();
    m.create_network(sub(&env, "dnsnet", 1)).await.unwrap();
    let ns_a = env.netns("a").await;
    let ns_b = env.netns("b").await;
    let a = m.connect("dnsnet", berth_net::EndpointRequest { container_name: "alpha".into(), ..env.request(1, &ns_a) }).await.unwrap();
    m.connect("dnsnet", env.request(2, &ns_b)).await.unwrap();

    // Not a container: forwarded, from the host's namespace, to the upstream.
    assert_eq!(env.nslookup(&ns_b, "example.test"), vec![Ipv4Addr::new(192, 0, 2, 123)]);
    assert_eq!(tcp_query_in(&ns_b, "example.test.").await, vec![Ipv4Addr::new(192, 0, 2, 123)]);
    // Containers: answered locally, over UDP and TCP.
    assert_eq!(env.nslookup(&ns_b, "alpha"), vec![a.ip]);
    assert_eq!(tcp_query_in(&ns_b, "alpha.").await, vec![a.ip]);
    // Reverse lookup of a container address.
    let out = env.run_in(&ns_b, &["busybox", "nslookup", &a.ip.to_string(), "127.0.0.11"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("alpha.dnsnet"), "{}", String::from_utf8_lossy(&out.stdout));

    // Disconnect a: its name disappears at once (then goes upstream, which answers).
    m.disconnect("dnsnet", &container_id(1)).await.unwrap();
    assert_eq!(env.nslookup(&ns_b, "alpha"), vec![Ipv4Addr::new(192, 0, 2, 123)]);
    m.teardown().await.unwrap();
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_servers_of_a_container_are_asked_from_its_own_namespace() {
    let env = Env::new(162);
    let m = NetworkManager::open(env.config()).await.unwrap();
    m.create_network(sub(&env, "dnsnet", 1)).await.unwrap();
    let ns = env.netns("own-dns").await;
    // `--dns 127.0.0.1`: a server only the container's namespace has.
    let (udp, tcp) = berth_net::netns::run_in_netns(&ns, || {
        Ok((std::net::UdpSocket::bind("127.0.0.1:53")?, std::net::TcpListener::bind("127.0.0.1:53")?))
    })
    .await
    .unwrap();
    let task = serve_fake_dns(udp, tcp, Ipv4Addr::new(198, 51, 100, 7));
    m.connect("dnsnet", berth_net::EndpointRequest { dns_servers: vec!["127.0.0.1".parse().unwrap()], ..env.request(1, &ns) })
        .await
        .unwrap();
    assert_eq!(env.nslookup(&ns, "external.test"), vec![Ipv4Addr::new(198, 51, 100, 7)]);
    assert_eq!(tcp_query_in(&ns, "external.test.").await, vec![Ipv4Addr::new(198, 51, 100, 7)]);
    m.teardown().await.unwrap();
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hosts_resolv_conf_is_followed_as_it_changes() {
    let env = Env::new(163);
    // Two "host resolvers" on loopback addresses (asked from the host's namespace).
    let mut tasks = Vec::new();
    for (last, answer) in [(1u8, 11u8), (2, 22)] {
        let addr = SocketAddr::from((Ipv4Addr::new(127, 77, env.index, last), 53));
        let udp = std::net::UdpSocket::bind(addr).unwrap();
        let tcp = std::net::TcpListener::bind(addr).unwrap();
        tasks.push(serve_fake_dns(udp, tcp, Ipv4Addr::new(198, 51, 100, answer)));
    }
    let rc = env.dir.path().join("resolv.conf");
    std::fs::write(&rc, format!("nameserver 127.77.{}.1\n", env.index)).unwrap();
    let mut config = env.config();
    config.dns_upstreams = None;
    let m = NetworkManager::open(config).await.unwrap();
    m.create_network(sub(&env, "dnsnet", 1)).await.unwrap();
    let ns = env.netns("c").await;
    m.connect("dnsnet", env.request(1, &ns)).await.unwrap();
    assert_eq!(env.nslookup(&ns, "name.test"), vec![Ipv4Addr::new(198, 51, 100, 11)]);
    // Replaced the way tools do it: a new file renamed over the old one.
    let tmp = env.dir.path().join("resolv.conf.new");
    std::fs::write(&tmp, format!("nameserver 127.77.{}.2\n", env.index)).unwrap();
    std::fs::rename(&tmp, &rc).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while env.nslookup(&ns, "name.test") != vec![Ipv4Addr::new(198, 51, 100, 22)] {
        assert!(std::time::Instant::now() < deadline, "the new resolver is not asked");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    m.teardown().await.unwrap();
    tasks.iter().for_each(|t| t.abort());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netns_create_and_delete() {
    let env = Env::new(161);
    let p = env.dir.path().join("solo");
    berth_net::netns::create_netns(&p).await.unwrap();
    assert!(berth_net::netns::is_netns(&p));
    let links = env.ip_in(&p, &["link"]);
    assert_eq!(links.lines().count(), 1, "only lo: {links}");
    assert!(links.contains("lo:") && links.contains("UP"), "{links}");
    let e = berth_net::netns::create_netns(&p).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    berth_net::netns::delete_netns(&p).unwrap();
    assert!(!p.exists());
    berth_net::netns::delete_netns(&p).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_netns_pool_hands_out_fresh_namespaces_and_leaves_nothing() {
    use berth_net::netns::{NetnsPool, create_netns, is_netns, open_netns_pool};
    use std::os::unix::fs::MetadataExt;
    let env = Env::new(165);
    let dir = env.dir.path().join("pool");
    // What a killed daemon left in the pool's directory goes at open.
    create_netns(&dir.join("7")).await.unwrap();
    let pool = open_netns_pool(&dir, 2).unwrap();
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    let mounted = |d: &std::path::Path| std::fs::read_to_string("/proc/self/mountinfo").unwrap().lines().filter(|l| l.contains(&*d.to_string_lossy())).count();
    let wait_ready = |pool: std::sync::Arc<NetnsPool>| async move {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while pool.ready() < 2 {
            assert!(std::time::Instant::now() < deadline, "the pool is not filled");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    assert!(!pool.take(&env.dir.path().join("none")), "an empty pool hands out nothing");
    pool.refill();
    wait_ready(pool.clone()).await;
    // Each taken namespace is bound at its place, has only lo (up), is a namespace of
    // its own, and leaves the pool.
    let (a, b) = (env.dir.path().join("a"), env.dir.path().join("b"));
    assert!(pool.take(&a) && pool.take(&b));
    assert_eq!(pool.ready(), 0);
    for p in [&a, &b] {
        assert!(is_netns(p));
        let links = env.ip_in(p, &["link"]);
        assert_eq!(links.lines().count(), 1, "only lo: {links}");
        assert!(links.contains("lo:") && links.contains("UP"), "{links}");
    }
    let ino = |p: &std::path::Path| std::fs::metadata(p).unwrap().ino();
    assert_ne!(ino(&a), ino(&b));
    assert_ne!(ino(&a), std::fs::metadata("/proc/self/ns/net").unwrap().ino());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    assert_eq!(mounted(&dir), 0);
    // Refilled with new ones; cleared, nothing stays mounted and nothing more is made.
    pool.refill();
    wait_ready(pool.clone()).await;
    assert_eq!(mounted(&dir), 2);
    pool.clear();
    pool.refill();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(pool.ready(), 0);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    assert_eq!(mounted(&dir), 0);
    for p in [&a, &b] {
        berth_net::netns::delete_netns(p).unwrap();
    }
}

/// Accepts one TCP connection on `addr` inside `netns` (within 5 s) and returns the
/// peer's address: what the far end sees as the source.
async fn peer_seen_in(netns: std::path::PathBuf, addr: SocketAddr) -> tokio::task::JoinHandle<Option<Ipv4Addr>> {
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        berth_net::netns::run_in_netns(&netns, move || {
            let l = std::net::TcpListener::bind(addr)?;
            l.set_nonblocking(true)?;
            let _ = ready_tx.send(());
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while std::time::Instant::now() < deadline {
                match l.accept() {
                    Ok((_, peer)) => {
                        return Ok(match peer.ip() {
                            std::net::IpAddr::V4(ip) => Some(ip),
                            _ => None,
                        });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(std::time::Duration::from_millis(20))
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(None)
        })
        .await
        .unwrap()
    });
    ready_rx.await.unwrap();
    task
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_traffic_is_masqueraded_unless_disabled() {
    let env = Env::new(162);
    let m = NetworkManager::open(env.config()).await.unwrap();
    m.create_network(sub(&env, "nat", 1)).await.unwrap();
    m.create_network(NetworkCreateRequest {
        options: Some([("com.docker.network.bridge.enable_ip_masquerade".to_string(), "false".to_string())].into()),
        ..sub(&env, "plain", 2)
    })
    .await
    .unwrap();
    let ns_nat = env.netns("natc").await;
    let ns_plain = env.netns("plainc").await;
    let natted = m.connect("nat", env.request(1, &ns_nat)).await.unwrap();
    let plain = m.connect("plain", env.request(2, &ns_plain)).await.unwrap();

    // "The outside": a namespace behind a veth of the host, 10.<n>.250.0/24, with a
    // route back to the plain network (which is not masqueraded).
    let ext = env.netns("ext").await;
    let hex = berth_net::ids::short_random_hex(6);
    let (host_if, ext_if) = (format!("bxh{hex}"), format!("bxe{hex}"));
    let ip = |args: &[&str]| assert!(std::process::Command::new("ip").args(args).status().unwrap().success(), "{args:?}");
    env.own_link(&host_if);
    ip(&["link", "add", &host_if, "type", "veth", "peer", "name", &ext_if]);
    ip(&["link", "set", &ext_if, "netns", ext.to_str().unwrap()]);
    let host_addr = format!("10.{}.250.1", env.index);
    let ext_addr: Ipv4Addr = format!("10.{}.250.2", env.index).parse().unwrap();
    ip(&["addr", "add", &format!("{host_addr}/24"), "dev", &host_if]);
    ip(&["link", "set", &host_if, "up"]);
    let in_ext = |args: &[&str]| assert!(env.run_in(&ext, args).status.success(), "{args:?}");
    in_ext(&["ip", "addr", "add", &format!("{ext_addr}/24"), "dev", &ext_if]);
    in_ext(&["ip", "link", "set", &ext_if, "up"]);
    in_ext(&["ip", "route", "add", &env.subnet(2), "via", &host_addr]);

    let connect_from = |ns: &std::path::Path| {
        let ns = format!("--net={}", ns.display());
        std::process::Command::new("timeout")
            .args(["3", "nsenter", &ns, "busybox", "nc", &ext_addr.to_string(), "9000"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
    };
    let seen = peer_seen_in(ext.clone(), SocketAddr::from((ext_addr, 9000))).await;
    connect_from(&ns_nat);
    let from_nat = seen.await.unwrap();
    assert_eq!(from_nat, Some(host_addr.parse().unwrap()), "masqueraded to the host's address, not {}", natted.ip);

    let seen = peer_seen_in(ext.clone(), SocketAddr::from((ext_addr, 9000))).await;
    connect_from(&ns_plain);
    assert_eq!(seen.await.unwrap(), Some(plain.ip), "enable_ip_masquerade=false keeps the container's address");

    let _ = std::process::Command::new("ip").args(["link", "del", &host_if]).status();
    m.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_subnets_skip_subnets_routed_on_the_host() {
    let env = Env::new(163);
    // Something else on the host already uses the pool's first /24.
    let hex = berth_net::ids::short_random_hex(6);
    let squat = format!("bxs{hex}");
    env.own_link(&squat);
    let ip = |args: &[&str]| assert!(std::process::Command::new("ip").args(args).status().unwrap().success(), "{args:?}");
    ip(&["link", "add", &squat, "type", "veth", "peer", "name", &format!("bxt{hex}")]);
    ip(&["addr", "add", &format!("10.{}.128.1/24", env.index), "dev", &squat]);
    ip(&["link", "set", &squat, "up"]);

    let m = NetworkManager::open(env.config()).await.unwrap();
    let a = m.create_network(NetworkCreateRequest::named("auto-a")).await.unwrap();
    let b = m.create_network(NetworkCreateRequest::named("auto-b")).await.unwrap();
    let subnet = |n: &berth_net::Network| n.ipam.configs()[0].subnet.clone();
    assert_eq!(subnet(&m.inspect_network(&a.id).await.unwrap()), format!("10.{}.129.0/24", env.index));
    assert_eq!(subnet(&m.inspect_network(&b.id).await.unwrap()), format!("10.{}.130.0/24", env.index));
    m.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_networks_bridge_is_reused_clean_by_the_next_one() {
    let env = Env::new(164);
    let m = NetworkManager::open(env.config()).await.unwrap();
    let index_of = |name: &str| -> String {
        let out = std::process::Command::new("ip").args(["-o", "link", "show", name]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).split(':').next().unwrap_or_default().to_string()
    };
    let a = m.create_network(sub(&env, "first", 1)).await.unwrap().id;
    let br_a = format!("br-{}", &a[..12]);
    let index = index_of(&br_a);
    m.remove_network(&a).await.unwrap();
    assert!(!common::link_exists(&br_a), "the name is free at once");
    let b = m.create_network(sub(&env, "second", 2)).await.unwrap().id;
    let br_b = format!("br-{}", &b[..12]);
    assert_eq!(index_of(&br_b), index, "the retired bridge was reused");
    let addrs = String::from_utf8_lossy(&std::process::Command::new("ip").args(["-o", "addr", "show", "dev", &br_b]).output().unwrap().stdout).into_owned();
    assert!(addrs.contains(&format!("10.{}.2.1/24", env.index)) && !addrs.contains(&format!("10.{}.1.1", env.index)), "{addrs}");
    let link = String::from_utf8_lossy(&std::process::Command::new("ip").args(["-d", "link", "show", &br_b]).output().unwrap().stdout).into_owned();
    assert!(link.contains(&format!("alias berth:{}:net:{b}", env.table)), "{link}");
    // And it works: a container on it reaches its gateway.
    let ns = env.netns("reuse").await;
    m.connect("second", env.request(1, &ns)).await.unwrap();
    let ping = env.run_in(&ns, &["busybox", "ping", "-c", "1", "-W", "2", &format!("10.{}.2.1", env.index)]);
    assert!(ping.status.success(), "{}", String::from_utf8_lossy(&ping.stdout));
    m.teardown().await.unwrap();
    assert!(env.tagged_links().is_empty(), "spares go with teardown");
}
