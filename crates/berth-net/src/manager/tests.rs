//! The manager's logic over the recording dataplane: no root, no kernel.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::*;
use crate::dataplane::{RecordingDataplane, VethSpec};
use crate::NetworkCreateRequest;
use crate::model::EndpointRequest;
use crate::ports::{HostPort, PortBindingRequest, Proto};
use crate::{ErrorKind, NetConfig};

struct Fixture {
    dir: tempfile::TempDir,
    dp: RecordingDataplane,
}

impl Fixture {
    fn new() -> Self {
        Fixture { dir: tempfile::tempdir().unwrap(), dp: RecordingDataplane::default() }
    }

    fn config(&self) -> NetConfig {
        let mut c = NetConfig::new(self.dir.path().join("state"));
        c.default_bridge = "bt0".into();
        c.bip = Some("10.200.0.1/24".parse().unwrap());
        c.nft_table = "berth_unit".into();
        c.dns_upstreams = Some(vec![]);
        c.host_resolv_conf = self.dir.path().join("resolv.conf");
        c.ephemeral_ports = Some((40000, 40009));
        std::fs::write(&c.host_resolv_conf, "nameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch example.org\n").unwrap();
        c
    }

    async fn open(&self) -> NetworkManager<RecordingDataplane> {
        NetworkManager::open_with(self.config(), self.dp.clone()).await.unwrap()
    }

    fn netns(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, b"").unwrap();
        p
    }

    fn request(&self, n: u8) -> EndpointRequest {
        EndpointRequest {
            container_id: format!("{n:02x}").repeat(32),
            container_name: format!("c{n}"),
            netns: self.netns(&format!("ns{n}")),
            ..Default::default()
        }
    }
}

fn cid(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

fn subnet_req(name: &str, subnet: &str) -> NetworkCreateRequest {
    NetworkCreateRequest::named(name).with_subnet(subnet, None, None)
}

#[tokio::test]
async fn predefined_networks_exist_like_dockers() {
    let f = Fixture::new();
    let m = f.open().await;
    let all = m.list_networks(&BTreeMap::new()).await.unwrap();
    let names: Vec<&str> = all.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, vec!["bridge", "host", "none"]);
    let bridge = m.inspect_network("bridge").await.unwrap();
    assert_eq!(bridge.driver, "bridge");
    assert_eq!(bridge.ipam.configs()[0].subnet, "10.200.0.0/24");
    assert_eq!(bridge.ipam.configs()[0].gateway, "10.200.0.1");
    assert_eq!(bridge.options["com.docker.network.bridge.name"], "bt0");
    assert_eq!(m.inspect_network("none").await.unwrap().driver, "null");
    assert_eq!(m.inspect_network("host").await.unwrap().id.len(), 64);
    assert!(f.dp.snapshot().bridges.contains_key("bt0"));
    assert!(f.dp.snapshot().ip_forward);

    // IDs are stable across restarts.
    let ids = m.network_ids().await;
    drop(m);
    let m = f.open().await;
    assert_eq!(m.network_ids().await, ids);
}

#[tokio::test]
async fn bad_network_requests_get_dockers_errors_and_change_nothing() {
    let f = Fixture::new();
    let m = f.open().await;
    m.create_network(subnet_req("front", "10.201.0.0/16")).await.unwrap();
    let before_nets = m.network_ids().await;
    let before_dp = f.dp.snapshot();

    let cases: Vec<(NetworkCreateRequest, ErrorKind, &str)> = vec![
        (subnet_req("front", "10.202.0.0/16"), ErrorKind::Conflict, "network with name front already exists"),
        (
            subnet_req("other", "10.201.5.0/24"),
            ErrorKind::Forbidden,
            "invalid pool request: Pool overlaps with other one on this address space",
        ),
        (subnet_req("other", "10.0.0.0/33"), ErrorKind::InvalidParameter, "invalid CIDR address: 10.0.0.0/33"),
        (NetworkCreateRequest::named("bridge"), ErrorKind::Forbidden, "bridge is a pre-defined network and cannot be created"),
        (
            NetworkCreateRequest { driver: "overlay".into(), ..NetworkCreateRequest::named("o") },
            ErrorKind::NotFound,
            "plugin \"overlay\" not found",
        ),
        (
            NetworkCreateRequest::named("g").with_subnet("10.210.0.0/24", Some("10.211.0.1"), None),
            ErrorKind::InvalidParameter,
            "invalid network config:\ninvalid gateway 10.211.0.1: parent subnet 10.210.0.0/24 doesn't contain this address",
        ),
    ];
    for (req, kind, msg) in cases {
        let e = m.create_network(req).await.unwrap_err();
        assert_eq!((e.kind(), e.message()), (kind, msg));
    }
    assert_eq!(m.network_ids().await, before_nets);
    let after_dp = f.dp.snapshot();
    assert_eq!(after_dp.bridges, before_dp.bridges);
    assert_eq!(after_dp.nft_scripts.len(), before_dp.nft_scripts.len());

    let e = m.inspect_network("nope").await.unwrap_err();
    assert_eq!((e.kind(), e.message()), (ErrorKind::NotFound, "network nope not found"));
    let e = m.remove_network("host").await.unwrap_err();
    assert_eq!(e.message(), "host is a pre-defined network and cannot be removed");
}

#[tokio::test]
async fn automatic_subnets_avoid_networks_and_host_routes() {
    let f = Fixture::new();
    f.dp.set_host_routes(vec!["172.17.0.0/16".parse().unwrap(), "172.18.5.0/24".parse().unwrap()]);
    let m = f.open().await;
    let a = m.create_network(NetworkCreateRequest::named("a")).await.unwrap();
    let b = m.create_network(NetworkCreateRequest::named("b")).await.unwrap();
    let a = m.inspect_network(&a.id).await.unwrap();
    let b = m.inspect_network(&b.id).await.unwrap();
    assert_eq!(a.ipam.configs()[0].subnet, "172.19.0.0/16");
    assert_eq!(a.ipam.configs()[0].gateway, "172.19.0.1");
    assert_eq!(b.ipam.configs()[0].subnet, "172.20.0.0/16");
    // Prefix lookups and the bridge name.
    assert_eq!(m.inspect_network(&a.id[..10]).await.unwrap().name, "a");
    assert!(f.dp.snapshot().bridges.contains_key(&format!("br-{}", &a.id[..12])));
}

#[tokio::test]
async fn connect_allocates_addresses_interfaces_and_gateway() {
    let f = Fixture::new();
    let m = f.open().await;
    m.create_network(subnet_req("front", "10.201.0.0/24")).await.unwrap();
    m.create_network(NetworkCreateRequest { internal: true, ..subnet_req("back", "10.202.0.0/24") }).await.unwrap();

    // First container: internal network first (no gateway), then front (gateway).
    let r1 = f.request(1);
    let e1 = m.connect("back", r1.clone()).await.unwrap();
    assert_eq!((e1.ifname.as_str(), e1.ip.to_string().as_str()), ("eth0", "10.202.0.2"));
    assert!(!e1.provides_gateway);
    let e2 = m.connect("front", EndpointRequest { aliases: vec!["web".into()], ..r1.clone() }).await.unwrap();
    assert_eq!(e2.ifname, "eth1");
    assert!(e2.provides_gateway);
    assert_eq!(e2.mac, "02:42:0a:c9:00:02");
    assert_eq!(e2.dns_names, vec!["c1".to_string(), "web".into(), cid(1)[..12].to_string()]);
    let snap = f.dp.snapshot();
    assert_eq!(snap.default_routes[&r1.netns], ("eth1".to_string(), "10.201.0.1".parse().unwrap()));

    // Fixed address, MAC, and the errors around them.
    let r2 = f.request(2);
    let e = m
        .connect("front", EndpointRequest { ipv4: Some("10.201.0.2".parse().unwrap()), ..r2.clone() })
        .await
        .unwrap_err();
    assert_eq!(e.message(), "Address already in use");
    let e = m.connect("front", EndpointRequest { mac: Some("01:00:5e:00:00:01".into()), ..r2.clone() }).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidParameter);
    let e = m.connect("bridge", EndpointRequest { aliases: vec!["x".into()], ..r2.clone() }).await.unwrap_err();
    assert_eq!(e.message(), "network-scoped alias is supported only for containers in user defined networks");
    let e = m.connect("host", r2.clone()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Forbidden);
    let e = m.connect("missing", r2.clone()).await.unwrap_err();
    assert_eq!(e.message(), "network missing not found");
    let e = m
        .connect("front", EndpointRequest { netns: f.dir.path().join("does-not-exist"), ..r2.clone() })
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidParameter);

    let e2b = m
        .connect(
            "front",
            EndpointRequest {
                ipv4: Some("10.201.0.77".parse().unwrap()),
                mac: Some("02:00:00:00:00:77".into()),
                ..r2.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!((e2b.ip.to_string(), e2b.mac.as_str()), ("10.201.0.77".to_string(), "02:00:00:00:00:77"));
    assert_eq!(e2b.settings().ipam_config.unwrap().ipv4_address, "10.201.0.77");
    let e = m.connect("front", r2.clone()).await.unwrap_err();
    assert_eq!(e.message(), "endpoint with name c2 already exists in network front");

    // Default bridge: no fixed addresses; auto subnets: no fixed addresses.
    let r3 = f.request(3);
    let e = m.connect("bridge", EndpointRequest { ipv4: Some("10.200.0.9".parse().unwrap()), ..r3.clone() }).await.unwrap_err();
    assert_eq!(e.message(), "user specified IP address is supported on user defined networks only");
    m.create_network(NetworkCreateRequest::named("auto")).await.unwrap();
    let e = m.connect("auto", EndpointRequest { ipv4: Some("172.17.0.9".parse().unwrap()), ..r3.clone() }).await.unwrap_err();
    assert_eq!(
        e.message(),
        "user specified IP address is supported only when connecting to networks with user configured subnets"
    );

    // Inspect lists the containers.
    let front = m.inspect_network("front").await.unwrap();
    assert_eq!(front.containers.len(), 2);
    assert_eq!(front.containers[&cid(1)].ipv4_address, "10.201.0.2/24");
}

#[tokio::test]
async fn failed_connect_leaves_nothing_and_reuses_the_address() {
    let f = Fixture::new();
    let m = f.open().await;
    m.create_network(subnet_req("front", "10.201.0.0/24")).await.unwrap();
    f.dp.fail_next_veth();
    let e = m.connect("front", f.request(1)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::System);
    assert!(m.endpoints_of(&cid(1)).await.is_empty());
    assert!(f.dp.snapshot().veths.is_empty());
    assert!(m.containers().await.is_empty());
    let ep = m.connect("front", f.request(1)).await.unwrap();
    assert_eq!(ep.ip.to_string(), "10.201.0.2");
}

#[tokio::test]
async fn addresses_survive_a_restart_and_are_never_given_twice() {
    let f = Fixture::new();
    let m = f.open().await;
    m.create_network(subnet_req("front", "10.201.0.0/24")).await.unwrap();
    let a = m.connect("front", f.request(1)).await.unwrap();
    let b = m.connect("front", f.request(2)).await.unwrap();
    drop(m);
    let m = f.open().await;
    assert_eq!(m.endpoints_of(&cid(1)).await, vec![a.clone()]);
    let c = m.connect("front", f.request(3)).await.unwrap();
    assert!(c.ip != a.ip && c.ip != b.ip);
    assert_eq!(c.ip.to_string(), "10.201.0.4");
}

#[tokio::test]
async fn network_rm_refuses_while_in_use_and_disconnect_frees_it() {
    let f = Fixture::new();
    let m = f.open().await;
    let net = m.create_network(subnet_req("front", "10.201.0.0/24")).await.unwrap();
    let e1 = m.connect("front", f.request(1)).await.unwrap();
    let e = m.remove_network("front").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Forbidden);
    assert_eq!(
        e.message(),
        format!("error while removing network: network front id {} has active endpoints", net.id)
    );
    let e = m.disconnect("front", &cid(2)).await.unwrap_err();
    assert_eq!(e.message(), format!("container {} is not connected to network front", cid(2)));
    m.disconnect("front", &cid(1)).await.unwrap();
    assert!(!f.dp.snapshot().veths.contains_key(&e1.host_veth));
    m.remove_network("front").await.unwrap();
    let snap = f.dp.snapshot();
    assert!(!snap.bridges.contains_key(&e1.bridge));
    assert!(!snap.nft_scripts.last().unwrap().contains(&e1.bridge));
}

#[tokio::test]
async fn disconnecting_the_gateway_hands_the_default_route_over() {
    let f = Fixture::new();
    let m = f.open().await;
    m.create_network(subnet_req("a", "10.201.0.0/24")).await.unwrap();
    m.create_network(subnet_req("b", "10.202.0.0/24")).await.unwrap();
    let r = f.request(1);
    m.connect("a", r.clone()).await.unwrap();
    m.connect("b", r.clone()).await.unwrap();
    m.disconnect("a", &cid(1)).await.unwrap();
    let eps = m.endpoints_of(&cid(1)).await;
    assert_eq!(eps.len(), 1);
    assert!(eps[0].provides_gateway);
    assert_eq!(f.dp.snapshot().default_routes[&r.netns], ("eth1".to_string(), "10.202.0.1".parse().unwrap()));
    // The freed eth0 is reused by the next connect.
    let again = m.connect("a", r.clone()).await.unwrap();
    assert_eq!(again.ifname, "eth0");
}

#[tokio::test]
async fn publishing_is_all_or_nothing_and_follows_the_gateway() {
    let f = Fixture::new();
    let m = f.open().await;
    m.create_network(subnet_req("front", "10.201.0.0/24")).await.unwrap();
    m.connect("front", f.request(1)).await.unwrap();
    m.connect("front", f.request(2)).await.unwrap();
    let lo = Some(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST));
    let got = m
        .publish(
            &cid(1),
            &[
                PortBindingRequest { container_port: 80, proto: Proto::Tcp, host_ip: lo, host_port: HostPort::Single(18080) },
                PortBindingRequest { container_port: 53, proto: Proto::Udp, host_ip: None, host_port: HostPort::Any },
            ],
        )
        .await
        .unwrap();
    assert_eq!(got[0].host_port, 18080);
    assert!((40000..=40009).contains(&got[1].host_port));
    assert_eq!(got[1].host_ip, Ipv4Addr::UNSPECIFIED);
    let script = f.dp.snapshot().nft_scripts.last().unwrap().clone();
    // Publishing is a change of map elements only (no table replaced).
    assert!(script.contains("add element inet berth_unit pub4_addr { 127.0.0.1 . tcp . 18080 : 10.201.0.2 . 80 }\n"), "{script}");
    assert!(!script.contains("table inet berth_unit {"), "{script}");

    // The second container asks for 18080 too (and another port): refused, nothing kept.
    let ports_before = f.dp.snapshot().ports.len();
    let e = m
        .publish(
            &cid(2),
            &[
                PortBindingRequest { container_port: 81, proto: Proto::Tcp, host_ip: lo, host_port: HostPort::Single(18081) },
                PortBindingRequest { container_port: 80, proto: Proto::Tcp, host_ip: None, host_port: HostPort::Single(18080) },
            ],
        )
        .await
        .unwrap_err();
    assert_eq!((e.kind(), e.message()), (ErrorKind::Conflict, "Bind for 0.0.0.0:18080 failed: port is already allocated"));
    assert_eq!(f.dp.snapshot().ports.len(), ports_before);
    assert!(m.ports_of(&cid(2)).await.is_empty());

    // A range takes the first free port.
    let got = m
        .publish(
            &cid(2),
            &[PortBindingRequest { container_port: 80, proto: Proto::Tcp, host_ip: lo, host_port: HostPort::Range(18080, 18082) }],
        )
        .await
        .unwrap();
    assert_eq!(got[0].host_port, 18081);

    let map = m.port_map(&cid(1), &["80/tcp".into(), "443/tcp".into()]).await.unwrap();
    assert_eq!(map["443/tcp"], None);
    assert_eq!(map["80/tcp"].as_ref().unwrap()[0].host_port, "18080");

    m.unpublish(&cid(1)).await.unwrap();
    // The removal finishes in a task of its own; the next nft change waits its turn.
    let mut script = String::new();
    for _ in 0..100 {
        script = f.dp.snapshot().nft_scripts.last().unwrap().clone();
        if script.starts_with("delete element") {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(script.contains("delete element inet berth_unit pub4_addr { 127.0.0.1 . tcp . 18080 }\n"), "{script}");
    assert_eq!(f.dp.snapshot().ports.len(), 1);
    m.release(&cid(2)).await.unwrap();
    assert!(f.dp.snapshot().ports.is_empty());
    assert!(m.endpoints_of(&cid(2)).await.is_empty());
}

#[tokio::test]
async fn internal_only_containers_publish_nothing() {
    let f = Fixture::new();
    let m = f.open().await;
    m.create_network(NetworkCreateRequest { internal: true, ..subnet_req("in", "10.203.0.0/24") }).await.unwrap();
    m.connect("in", f.request(1)).await.unwrap();
    let got = m
        .publish(&cid(1), &[PortBindingRequest { container_port: 80, proto: Proto::Tcp, host_ip: None, host_port: HostPort::Any }])
        .await
        .unwrap();
    assert!(got.is_empty());
    let script = f.dp.snapshot().nft_scripts.last().unwrap().clone();
    assert!(!script.contains("ip saddr 10.203.0.0/24 oifname != "), "internal networks are not masqueraded");
    assert!(script.contains("iifname \"br-"));
}

#[tokio::test]
async fn restart_removes_leaks_and_dead_endpoints_then_reconcile_releases_the_dead() {
    let f = Fixture::new();
    let m = f.open().await;
    m.create_network(subnet_req("front", "10.201.0.0/24")).await.unwrap();
    let a = m.connect("front", f.request(1)).await.unwrap();
    let b = m.connect("front", f.request(2)).await.unwrap();
    let c = m.connect("front", f.request(3)).await.unwrap();
    m.publish(&cid(3), &[PortBindingRequest { container_port: 80, proto: Proto::Tcp, host_ip: None, host_port: HostPort::Single(18090) }])
        .await
        .unwrap();
    drop(m);
    // While "down": a crash leaked a tagged veth, b's namespace died with its veth,
    // and someone else's untagged interface exists.
    let leak = VethSpec {
        host_name: "vethleak".into(),
        alias: "berth:berth_unit:ep:0000".into(),
        bridge: a.bridge.clone(),
        netns: f.netns("nsleak"),
        ifname: "eth0".into(),
        mac: [2, 0, 0, 0, 0, 1],
        ip: "10.201.0.99".parse().unwrap(),
        prefix_len: 24,
        mtu: 1500,
        gateway: None,
        ip6: None,
        gateway6: None,
        link_local: vec![],
    };
    f.dp.inject_veth(leak);
    f.dp.inject_veth(VethSpec { host_name: "vethother".into(), alias: "someone-else".into(), ..f.dp.snapshot().veths[&a.host_veth].clone() });
    f.dp.vanish_veth(&b.host_veth);

    let m = f.open().await;
    let veths = f.dp.snapshot().veths;
    assert!(!veths.contains_key("vethleak"), "leaked interface removed");
    assert!(veths.contains_key("vethother"), "others' interfaces untouched");
    assert!(veths.contains_key(&a.host_veth) && veths.contains_key(&c.host_veth));
    assert!(m.endpoints_of(&cid(2)).await.is_empty(), "dead endpoint dropped");
    assert_eq!(m.ports_of(&cid(3)).await.len(), 1, "ports restored");
    assert_eq!(f.dp.snapshot().ports.len(), 1, "port re-reserved");
    assert!(f.dp.snapshot().nft_scripts.last().unwrap().contains("tcp . 18090 : 10.201.0.4 . 80"));

    // The engine says only container 1 is alive.
    let report = m.reconcile(&HashSet::from([cid(1)])).await.unwrap();
    assert_eq!(report.released, vec![cid(3)]);
    assert!(!f.dp.snapshot().veths.contains_key(&c.host_veth));
    assert!(f.dp.snapshot().ports.is_empty());
    assert!(f.dp.snapshot().nft_scripts.last().unwrap().contains("delete element inet berth_unit pub4_any { tcp . 18090 }"));
    assert_eq!(m.endpoints_of(&cid(1)).await, vec![a]);
}

#[tokio::test]
async fn list_filters_and_prune() {
    let f = Fixture::new();
    let m = f.open().await;
    m.create_network(NetworkCreateRequest {
        labels: Some(BTreeMap::from([("env".into(), "ci".into())])),
        ..subnet_req("keep-me", "10.201.0.0/24")
    })
    .await
    .unwrap();
    m.create_network(subnet_req("used", "10.202.0.0/24")).await.unwrap();
    m.create_network(subnet_req("idle", "10.203.0.0/24")).await.unwrap();
    m.connect("used", f.request(1)).await.unwrap();

    let q = |k: &str, v: &str| BTreeMap::from([(k.to_string(), vec![v.to_string()])]);
    let names = |v: Vec<crate::Network>| v.into_iter().map(|n| n.name).collect::<Vec<_>>();
    assert_eq!(names(m.list_networks(&q("type", "custom")).await.unwrap()), vec!["idle", "keep-me", "used"]);
    assert_eq!(names(m.list_networks(&q("type", "builtin")).await.unwrap()), vec!["bridge", "host", "none"]);
    assert_eq!(names(m.list_networks(&q("dangling", "true")).await.unwrap()), vec!["idle", "keep-me"]);
    assert_eq!(names(m.list_networks(&q("label", "env=ci")).await.unwrap()), vec!["keep-me"]);
    assert_eq!(names(m.list_networks(&q("name", "se")).await.unwrap()), vec!["used"]);
    assert_eq!(names(m.list_networks(&q("driver", "null")).await.unwrap()), vec!["none"]);
    assert!(m.list_networks(&q("bogus", "x")).await.is_err());
    assert!(m.list_networks(&q("type", "x")).await.is_err());

    let pruned = m.prune_networks(&q("label!", "env=ci")).await.unwrap();
    assert_eq!(pruned, vec!["idle"]);
    let pruned = m.prune_networks(&BTreeMap::new()).await.unwrap();
    assert_eq!(pruned, vec!["keep-me"]);
    assert_eq!(names(m.list_networks(&q("type", "custom")).await.unwrap()), vec!["used"]);
}

#[tokio::test]
async fn resolver_files_follow_the_network_kind() {
    let f = Fixture::new();
    let m = f.open().await;
    m.create_network(subnet_req("front", "10.201.0.0/24")).await.unwrap();
    m.connect("front", f.request(1)).await.unwrap();
    m.connect("bridge", f.request(2)).await.unwrap();
    assert!(m.dns_running(&cid(1)).await);
    assert!(!m.dns_running(&cid(2)).await, "no embedded DNS on the default bridge");

    let req = |n: u8, mode| FilesRequest {
        links: vec![],
        container_id: cid(n),
        mode,
        hostname: cid(n)[..12].to_string(),
        domainname: String::new(),
        dns: Default::default(),
        extra_hosts: vec!["gw:host-gateway".into()],
    };
    let user = m.container_files(&req(1, NetworkMode::Sandbox)).await.unwrap();
    assert!(user.resolv_conf.contains("\nnameserver 127.0.0.11\n"));
    assert!(user.resolv_conf.contains("search example.org\n"));
    assert!(user.hosts.contains("10.200.0.1\tgw\n"), "host-gateway is the default bridge's gateway");
    assert!(user.hosts.ends_with(&format!("10.201.0.2\t{}\n", &cid(1)[..12])));
    assert_eq!(user.hostname, format!("{}\n", &cid(1)[..12]));
    let legacy = m.container_files(&req(2, NetworkMode::Sandbox)).await.unwrap();
    assert!(legacy.resolv_conf.contains("\nnameserver 192.0.2.53\n"));
    assert!(!legacy.resolv_conf.contains("127.0.0.53"));
    let none = m.container_files(&req(9, NetworkMode::None)).await.unwrap();
    assert!(!none.hosts.contains("\t0000"));
    assert!(m.container_files(&FilesRequest { extra_hosts: vec!["bad".into()], ..req(1, NetworkMode::Sandbox) }).await.is_err());
}

#[tokio::test]
async fn one_manager_per_state_directory() {
    let f = Fixture::new();
    let _m = f.open().await;
    let e = NetworkManager::open_with(f.config(), f.dp.clone()).await.err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Conflict);
}

#[tokio::test]
async fn teardown_removes_everything() {
    let f = Fixture::new();
    let m = f.open().await;
    m.create_network(subnet_req("front", "10.201.0.0/24")).await.unwrap();
    m.connect("front", f.request(1)).await.unwrap();
    m.teardown().await.unwrap();
    let snap = f.dp.snapshot();
    assert!(snap.bridges.is_empty());
    assert!(snap.veths.is_empty());
    assert_eq!(snap.nft_scripts.last().unwrap(), &crate::firewall::render_delete("berth_unit"));
}

fn tagged_bridge(alias: &str, has_ports: bool) -> crate::dataplane::LinkInfo {
    crate::dataplane::LinkInfo { alias: Some(alias.into()), kind: Some("bridge".into()), has_ports }
}

#[tokio::test]
async fn a_fresh_state_takes_over_a_default_bridge_no_live_daemon_owns() {
    // Left by this daemon's table before its data root was wiped.
    let f = Fixture::new();
    f.dp.inject_foreign_link("bt0", tagged_bridge("berth:berth_unit:net:0123", true));
    let m = f.open().await;
    let id = m.inspect_network("bridge").await.unwrap().id;
    assert_eq!(f.dp.snapshot().bridges["bt0"].alias, format!("berth:berth_unit:net:{id}"));
    drop(m);

    // Left by another berth daemon that is not running; an untagged, unused bridge.
    for info in [tagged_bridge("berth:gone:net:42", false), crate::dataplane::LinkInfo { kind: Some("bridge".into()), ..Default::default() }] {
        let f = Fixture::new();
        f.dp.inject_foreign_link("bt0", info);
        f.open().await;
        assert!(f.dp.snapshot().bridges.contains_key("bt0"));
    }
}

#[tokio::test]
async fn a_bridge_of_a_live_daemon_or_not_a_bridge_is_refused_naming_the_flag() {
    let f = Fixture::new();
    f.dp.inject_foreign_link("bt0", tagged_bridge("berth:other:net:42", false));
    f.dp.claim_table_elsewhere("other");
    let e = NetworkManager::open_with(f.config(), f.dp.clone()).await.err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert_eq!(
        e.message(),
        "interface bt0 is a bridge of another running berth daemon (nftables table other): choose another name with --bridge"
    );

    let f = Fixture::new();
    f.dp.inject_foreign_link("bt0", crate::dataplane::LinkInfo { kind: Some("bridge".into()), has_ports: true, ..Default::default() });
    let e = NetworkManager::open_with(f.config(), f.dp.clone()).await.err().unwrap();
    assert!(e.message().contains("is not managed by berth: choose another name with --bridge"), "{}", e.message());

    let f = Fixture::new();
    f.dp.inject_foreign_link("bt0", crate::dataplane::LinkInfo { kind: Some("veth".into()), ..Default::default() });
    let e = NetworkManager::open_with(f.config(), f.dp.clone()).await.err().unwrap();
    assert!(e.message().contains("is not a bridge"), "{}", e.message());

    // A second daemon on the same table is refused before it touches anything.
    let f = Fixture::new();
    f.dp.claim_table_elsewhere("berth_unit");
    let e = NetworkManager::open_with(f.config(), f.dp.clone()).await.err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(f.dp.snapshot().bridges.is_empty());
}

fn restores(snap: &crate::dataplane::RecordedState) -> Vec<String> {
    snap.tool_runs.iter().filter(|(p, _, _)| p.ends_with("-restore")).filter_map(|(p, _, s)| Some(format!("{p}\n{}", s.clone()?))).collect()
}

#[tokio::test]
async fn iptables_rules_are_written_once_for_every_backend_in_use() {
    let f = Fixture::new();
    f.dp.set_xtables(crate::iptables::XtablesFacts {
        nft_tool: true,
        legacy_tool: true,
        default: Some(crate::iptables::Backend::Nft),
        legacy_filter: true,
        nft_filter: false,
    });
    let m = f.open().await;
    let first = restores(&f.dp.snapshot());
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(first[0].starts_with("iptables-nft-restore\n") && first[1].starts_with("iptables-legacy-restore\n"));
    let group = format!("{:#x}", crate::iptables::bridge_group("berth_unit"));
    assert!(first[0].contains(&format!("-A BERTH-FORWARD-berth_unit -m devgroup --src-group {group} -j ACCEPT\n")));
    assert_eq!(f.dp.snapshot().bridges["bt0"].group, crate::iptables::bridge_group("berth_unit"));

    // Networks come and go without touching iptables: the rules match the bridges'
    // group, and every bridge is put in it.
    let id = m.create_network(subnet_req("front", "10.201.0.0/24")).await.unwrap().id;
    assert_eq!(f.dp.snapshot().bridges[&format!("br-{}", &id[..12])].group, crate::iptables::bridge_group("berth_unit"));
    m.connect("front", f.request(1)).await.unwrap();
    assert_eq!(restores(&f.dp.snapshot()).len(), 2);

    // A clean stop with a container still running keeps the rules.
    let before = f.dp.snapshot().tool_runs.len();
    m.shutdown().await.unwrap();
    assert!(f.dp.snapshot().tool_runs[before..].iter().all(|(_, a, _)| !a.contains(&"-S".to_string())), "nothing removed");
    m.release(&cid(1)).await.unwrap();
    let before = f.dp.snapshot().tool_runs.len();
    m.shutdown().await.unwrap();
    let snap = f.dp.snapshot();
    assert_eq!(snap.nft_scripts.last().unwrap(), &crate::firewall::render_delete("berth_unit"));
    assert!(snap.tool_runs[before..].iter().any(|(p, a, _)| p == "iptables-nft" && a.contains(&"-S".to_string())));
}

#[tokio::test]
async fn iptables_can_be_left_alone() {
    let f = Fixture::new();
    f.dp.set_xtables(crate::iptables::XtablesFacts { nft_tool: true, default: Some(crate::iptables::Backend::Nft), ..Default::default() });
    let m = NetworkManager::open_with(NetConfig { iptables: false, ..f.config() }, f.dp.clone()).await.unwrap();
    m.create_network(subnet_req("front", "10.201.0.0/24")).await.unwrap();
    m.teardown().await.unwrap();
    assert!(f.dp.snapshot().tool_runs.is_empty());
}

#[tokio::test]
async fn icc_off_turns_on_br_netfilter_or_is_refused_without_it() {
    let f = Fixture::new();
    let m = f.open().await;
    let quiet = || NetworkCreateRequest {
        options: Some(BTreeMap::from([("com.docker.network.bridge.enable_icc".into(), "false".into())])),
        ..subnet_req("quiet", "10.201.0.0/24")
    };
    // No br_netfilter: refused, nothing made.
    let before = f.dp.snapshot();
    let e = m.create_network(quiet()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Forbidden);
    assert!(e.message().contains("needs br_netfilter"), "{}", e.message());
    assert_eq!(f.dp.snapshot().bridges, before.bridges);

    f.dp.set_sysctl_value("net/bridge/bridge-nf-call-iptables", "0");
    let id = m.create_network(quiet()).await.unwrap().id;
    assert_eq!(f.dp.snapshot().sysctls["net/bridge/bridge-nf-call-iptables"], "1");
    let br = format!("br-{}", &id[..12]);
    // No rules until a container joins (a network nobody uses has no traffic).
    assert!(!f.dp.snapshot().nft_scripts.last().unwrap().contains(&br));
    assert_eq!(m.inspect_network("quiet").await.unwrap().options["com.docker.network.bridge.enable_icc"], "false");

    // A legacy link's ports open a way through, for that pair only.
    let mut req = f.request(1);
    req.linked_ports = vec![crate::model::LinkedPorts { server: "10.201.0.9".parse().unwrap(), ports: vec![(Proto::Tcp, 80)] }];
    m.connect("quiet", req).await.unwrap();
    let script = f.dp.snapshot().nft_scripts.last().unwrap().clone();
    assert!(script.contains(&format!("iifname \"{br}\" oifname \"{br}\" drop")), "{script}");
    assert!(script.contains(&format!("iifname \"{br}\" oifname \"{br}\" ip saddr 10.201.0.2 ip daddr 10.201.0.9 tcp dport 80 accept")), "{script}");
    m.release(&cid(1)).await.unwrap();
    assert!(!f.dp.snapshot().nft_scripts.last().unwrap().contains("tcp dport 80 accept"));
}

#[tokio::test]
async fn ipv6_networks_get_subnets_addresses_rules_and_inspect_fields() {
    let f = Fixture::new();
    f.dp.set_xtables(crate::iptables::XtablesFacts { nft_tool: true, default: Some(crate::iptables::Backend::Nft), ..Default::default() });
    f.dp.set_sysctl_value("net/ipv6/conf/all/forwarding", "0");
    let m = f.open().await;
    let given = NetworkCreateRequest { enable_ipv6: Some(true), ..subnet_req("six", "10.201.0.0/24") }.with_subnet("fd00:1::/64", None, None);
    let id = m.create_network(given).await.unwrap().id;
    assert_eq!(f.dp.snapshot().sysctls["net/ipv6/conf/all/forwarding"], "1");
    let auto = m.create_network(NetworkCreateRequest { enable_ipv6: Some(true), ..subnet_req("auto", "10.202.0.0/24") }).await.unwrap();
    let a = m.inspect_network(&auto.id).await.unwrap();
    assert!(a.enable_ipv6);
    let sub6 = &a.ipam.configs()[1].subnet;
    assert!(sub6.starts_with("fd") && sub6.ends_with("::/64"), "{sub6}");
    // The same daemon identity gets the same ULA /48; the next network the next /64.
    let auto2 = m.create_network(NetworkCreateRequest { enable_ipv6: Some(true), ..subnet_req("auto2", "10.203.0.0/24") }).await.unwrap();
    assert_ne!(&m.inspect_network(&auto2.id).await.unwrap().ipam.configs()[1].subnet, sub6);

    let e1 = m.connect("six", f.request(1)).await.unwrap();
    let v6 = e1.v6.unwrap();
    assert_eq!(v6.ip.to_string(), "fd00:1::2");
    assert_eq!(v6.gateway.to_string(), "fd00:1::1");
    let s = e1.settings();
    assert_eq!((s.global_ipv6_address.as_str(), s.global_ipv6_prefix_len, s.ipv6_gateway.as_str()), ("fd00:1::2", 64, "fd00:1::1"));
    let mut req = f.request(2);
    req.ipv6 = Some("fd00:1::99".parse().unwrap());
    assert_eq!(m.connect("six", req).await.unwrap().v6.unwrap().ip.to_string(), "fd00:1::99");
    let mut bad = f.request(3);
    bad.ipv6 = Some("fd00:1::99".parse().unwrap());
    assert_eq!(m.connect("six", bad).await.unwrap_err().message(), "Address already in use");
    let mut bad = f.request(3);
    bad.ipv6 = Some("fd00:9::1".parse().unwrap());
    assert!(m.connect("auto", bad).await.unwrap_err().message().contains("user configured subnets"));
    let mut bad = f.request(3);
    bad.link_local_ips = vec!["10.0.0.1".parse().unwrap()];
    assert_eq!(m.connect("six", bad).await.unwrap_err().message(), "invalid link-local IP address: 10.0.0.1");

    let inspect = m.inspect_network("six").await.unwrap();
    assert_eq!(inspect.containers[&cid(1)].ipv6_address, "fd00:1::2/64");
    let script = f.dp.snapshot().nft_scripts.last().unwrap().clone();
    assert!(script.contains(&format!("ip6 saddr fd00:1::/64 oifname != \"br-{}\" masquerade", &id[..12])), "{script}");
    let ip6 = f.dp.snapshot().tool_runs.iter().filter(|(p, _, _)| p == "ip6tables-nft-restore").count();
    assert!(ip6 >= 1, "ip6tables written for IPv6 bridges");
    // A clash with another IPv6 network is Docker's overlap error.
    let clash = NetworkCreateRequest { enable_ipv6: Some(true), ..subnet_req("clash", "10.204.0.0/24") }.with_subnet("fd00:1::/80", None, None);
    assert_eq!(m.create_network(clash).await.unwrap_err().message(), "invalid pool request: Pool overlaps with other one on this address space");
}

fn vlan_req(name: &str, driver: &str, subnet: &str, opts: &[(&str, &str)]) -> NetworkCreateRequest {
    NetworkCreateRequest {
        driver: driver.into(),
        options: Some(opts.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
        ..subnet_req(name, subnet)
    }
}

#[tokio::test]
async fn macvlan_and_ipvlan_networks_hang_off_their_parent() {
    let f = Fixture::new();
    f.dp.inject_foreign_link("eth1", crate::dataplane::LinkInfo::default());
    f.dp.lack_driver("ipvlan");
    let m = f.open().await;

    let e = m.create_network(vlan_req("mv", "macvlan", "10.201.0.0/24", &[("parent", "eth9")])).await.unwrap_err();
    assert_eq!(e.message(), "-o parent interface was not found on the host: eth9");
    let e = m.create_network(vlan_req("mv", "macvlan", "10.201.0.0/24", &[("parent", "eth1"), ("macvlan_mode", "bogus")])).await.unwrap_err();
    assert_eq!(e.message(), "requested macvlan mode 'bogus' is not valid, 'bridge' mode is the macvlan driver default");
    let before = m.network_ids().await;
    let e = m.create_network(vlan_req("iv", "ipvlan", "10.201.0.0/24", &[("parent", "eth1.10")])).await.unwrap_err();
    assert!(e.message().contains("ipvlan networks are not available"), "{}", e.message());
    assert_eq!(m.network_ids().await, before);
    assert!(f.dp.snapshot().parents.is_empty(), "the sub-interface made for it is gone");

    let mv = m.create_network(vlan_req("mv", "macvlan", "10.201.0.0/24", &[("parent", "eth1")])).await.unwrap().id;
    let n = m.inspect_network("mv").await.unwrap();
    assert_eq!((n.driver.as_str(), n.options["parent"].as_str()), ("macvlan", "eth1"));
    let e = m.create_network(vlan_req("mv2", "macvlan", "10.202.0.0/24", &[("parent", "eth1")])).await.unwrap_err();
    assert_eq!(e.message(), "network mv is already using parent interface eth1");
    // A sub-interface and a dummy parent are made, tagged, and removed with the network.
    let sub = m.create_network(vlan_req("tagged", "macvlan", "10.203.0.0/24", &[("parent", "eth1.10")])).await.unwrap().id;
    let dm = m.create_network(vlan_req("alone", "macvlan", "10.204.0.0/24", &[])).await.unwrap().id;
    let parents = f.dp.snapshot().parents;
    assert_eq!(parents["eth1.10"], format!("berth:berth_unit:net:{sub}"));
    assert!(parents.contains_key(&format!("dm-{}", &dm[..12])));
    m.remove_network("tagged").await.unwrap();
    m.remove_network("alone").await.unwrap();
    assert!(f.dp.snapshot().parents.is_empty());

    // Endpoints: a macvlan interface with the endpoint's MAC and addresses, in the namespace.
    let req = EndpointRequest { container_name: "a".into(), ..f.request(1) };
    let ep = m.connect("mv", req.clone()).await.unwrap();
    let links = f.dp.snapshot().vlan_links;
    let spec = &links[&(req.netns.clone(), "eth0".to_string())];
    assert_eq!((spec.parent.as_str(), spec.mode.as_str(), spec.addrs.ip), ("eth1", "bridge", ep.ip));
    assert_eq!(spec.mac, Some(crate::model::parse_mac(&ep.mac).unwrap()));
    assert_eq!(spec.addrs.gateway, Some("10.201.0.1".parse().unwrap()));
    assert!(m.dns_running(&cid(1)).await, "the embedded DNS serves macvlan networks");
    let published = m
        .publish(&cid(1), &[PortBindingRequest { container_port: 80, proto: Proto::Tcp, host_ip: None, host_port: HostPort::Any }])
        .await
        .unwrap();
    assert!(published.is_empty(), "no published ports on macvlan");
    m.disconnect("mv", &cid(1)).await.unwrap();
    assert!(f.dp.snapshot().vlan_links.is_empty());
    m.remove_network(&mv).await.unwrap();
}

#[tokio::test]
async fn creating_and_removing_an_unused_network_leaves_the_firewall_alone() {
    let f = Fixture::new();
    f.dp.set_xtables(crate::iptables::XtablesFacts { nft_tool: true, default: Some(crate::iptables::Backend::Nft), ..Default::default() });
    let m = f.open().await;
    let before = f.dp.snapshot();
    let id = m.create_network(subnet_req("idle", "10.201.0.0/24")).await.unwrap().id;
    m.remove_network(&id).await.unwrap();
    let after = f.dp.snapshot();
    assert_eq!(after.nft_scripts.len(), before.nft_scripts.len(), "no nft run");
    assert_eq!(after.tool_runs.len(), before.tool_runs.len(), "no iptables run");
    // Once a container has used it, its rules stay until the network goes.
    m.create_network(subnet_req("used", "10.202.0.0/24")).await.unwrap();
    m.connect("used", f.request(1)).await.unwrap();
    m.release(&cid(1)).await.unwrap();
    assert!(f.dp.snapshot().nft_scripts.last().unwrap().contains("10.202.0.0/24"));
    // And survive a restart.
    drop(m);
    let m = f.open().await;
    assert!(f.dp.snapshot().nft_scripts.last().unwrap().contains("10.202.0.0/24"));
    m.remove_network("used").await.unwrap();
    assert!(!f.dp.snapshot().nft_scripts.last().unwrap().contains("10.202.0.0/24"));
}
