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
