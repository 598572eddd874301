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
    PortBindingRequest { container_port: port, proto: Proto::Tcp, host_ip: ip, host_port }
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
    assert_eq!(got[0].host_port, p);
    assert_eq!(got[1].host_port, q);
    assert_eq!(got[1].host_ip, Ipv4Addr::UNSPECIFIED);
    let any = got[2].host_port;
    assert!(any != 0 && any != p && any != q);

    let lo = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    assert_eq!(http_get(lo(p)).unwrap(), "published");
    assert_eq!(http_get(lo(q)).unwrap(), "published");
    assert_eq!(http_get(lo(any)).unwrap(), "published");
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
    assert_eq!(bindings.len(), 3);
    assert_eq!(bindings[0].host_ip, "127.0.0.1");
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
    assert!(http_get(lo(p)).is_err());
    assert!(!env.nft_table().contains(&format!("dport {q}")));
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
    assert_eq!(env.wget(&ns_b, &a.ip.to_string()), None);
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
    assert_eq!(env.wget(&ns_b, &a.ip.to_string()), None);
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
    assert_eq!(env.wget(&ns_in2, &out.ip.to_string()), None);
    assert_eq!(env.wget(&ns_in2, &format!("10.{}.2.1", env.index)), None);
    // ... even with a default route forced in by hand: the forward fence drops it.
    let forced = env.run_in(&ns_in2, &["ip", "route", "add", "default", "via", &format!("10.{}.1.1", env.index)]);
    assert!(forced.status.success());
    assert_eq!(env.wget(&ns_in2, &out.ip.to_string()), None);
    // ... and nothing comes in from outside either.
    assert_eq!(env.wget(&ns_out, &in1.ip.to_string()), None);
    // Internal networks are not masqueraded.
    let table = env.nft_table();
    assert!(!table.contains(&format!("ip saddr 10.{}.1.0/24 oifname !=", env.index)), "{table}");

    m.teardown().await.unwrap();
}
