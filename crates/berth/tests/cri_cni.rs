//! Pod networking through CNI, as the kubelet expects of a runtime: the node's network
//! config (Debian's containernetworking-plugins: bridge, host-local, portmap) gives the
//! pod its address and host port; stopping the pod releases both. No config yet: the
//! runtime reports NetworkReady=false and refuses pods.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_testutil::daemon::{TestDaemon, run_ok};

fn plugin_dir() -> PathBuf {
    ["/usr/lib/cni", "/opt/cni/bin"]
        .iter()
        .map(PathBuf::from)
        .find(|d| d.join("bridge").is_file())
        .expect("CNI plugins not found (apt-get install containernetworking-plugins)")
}

/// Deletes the bridge the CNI plugin made (plugins never remove it themselves).
struct Bridge(String);

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

fn write(d: &TestDaemon, name: &str, json: serde_json::Value) -> String {
    let p = d.dir.join(name);
    std::fs::write(&p, json.to_string()).unwrap();
    p.display().to_string()
}

fn http_get(addr: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.contains("200").then_some(out)
}

#[test]
fn pods_get_their_network_from_the_nodes_cni_config() {
    let conf_dir = berth_testutil::short_tempdir("btcni");
    let bins = plugin_dir();
    let d = TestDaemon::start_cri(
        Path::new(env!("CARGO_BIN_EXE_berth")),
        &["--cni-conf-dir", conf_dir.path().to_str().unwrap(), "--cni-bin-dir", bins.to_str().unwrap()],
    );
    d.busybox_image("busybox:latest");
    let pod = write(
        &d,
        "pod.json",
        serde_json::json!({
            "metadata": {"name": "cnipod", "namespace": "default", "uid": "cni-1"},
            "log_directory": d.dir.join("logs"),
            "port_mappings": [{"container_port": 80, "host_port": 20000 + d.slot as i32}],
        }),
    );

    // No network config yet: not ready, and no pod can be made (nothing is left).
    let info = run_ok(d.crictl().args(["info"]));
    let v: serde_json::Value = serde_json::from_str(&info).unwrap();
    let net = v["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "NetworkReady").unwrap().clone();
    assert_eq!(net["status"], false, "{info}");
    assert_eq!(net["reason"], "NetworkPluginNotReady");
    let out = d.crictl().args(["runp", &pod]).output().unwrap();
    assert!(!out.status.success());
    assert_eq!(run_ok(d.docker().args(["ps", "-aq"])).trim(), "");

    // The node's config appears (as a kubelet's CNI installer would put it).
    let bridge = Bridge(format!("btcni{}", d.slot));
    let ipam = d.dir.join("ipam");
    let subnet = format!("10.250.{}.0/24", d.slot);
    std::fs::write(
        conf_dir.path().join("10-pods.conflist"),
        serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "berth-test-pods",
            "plugins": [
                {"type": "bridge", "bridge": bridge.0, "isGateway": true, "ipMasq": false,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]], "dataDir": ipam}},
                {"type": "portmap", "capabilities": {"portMappings": true}}
            ]
        })
        .to_string(),
    )
    .unwrap();
    let info: serde_json::Value = serde_json::from_str(&run_ok(d.crictl().args(["info"]))).unwrap();
    assert!(info["status"]["conditions"].as_array().unwrap().iter().all(|c| c["status"] == true), "{info}");

    let pod_id = run_ok(d.crictl().args(["runp", &pod])).trim().to_string();
    let ctr = write(
        &d,
        "ctr.json",
        serde_json::json!({
            "metadata": {"name": "web"}, "image": {"image": "busybox:latest"},
            "command": ["sh", "-c", "mkdir -p /www && echo via-cni > /www/index.html && exec httpd -f -p 80 -h /www"],
            "log_path": "web.log"
        }),
    );
    let c = run_ok(d.crictl().args(["create", &pod_id, &ctr, &pod])).trim().to_string();
    run_ok(d.crictl().args(["start", &c]));
    let insp: serde_json::Value = serde_json::from_str(&run_ok(d.crictl().args(["inspectp", &pod_id]))).unwrap();
    let ip = insp["status"]["network"]["ip"].as_str().unwrap().to_string();
    assert!(ip.starts_with(&format!("10.250.{}.", d.slot)), "{insp}");
    // host-local recorded the address; the pod's interface has it.
    assert!(ipam.join("berth-test-pods").join(&ip).exists());
    let addrs = run_ok(d.crictl().args(["exec", &c, "ip", "-4", "addr", "show", "eth0"]));
    assert!(addrs.contains(&ip), "{addrs}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let page = loop {
        if let Some(p) = http_get(&format!("{ip}:80")) {
            break p;
        }
        assert!(Instant::now() < deadline, "pod IP does not answer");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(page.contains("via-cni"));
    let hp = http_get(&format!("127.0.0.1:{}", 20000 + d.slot)).expect("the host port (portmap)");
    assert!(hp.contains("via-cni"));

    // Stop releases the address and the host port; remove finishes it.
    run_ok(d.crictl().args(["stopp", &pod_id]));
    assert!(!ipam.join("berth-test-pods").join(&ip).exists(), "address not released");
    assert!(http_get(&format!("127.0.0.1:{}", 20000 + d.slot)).is_none());
    run_ok(d.crictl().args(["stopp", &pod_id]));
    run_ok(d.crictl().args(["rmp", &pod_id]));
    assert_eq!(std::fs::read_dir(d.exec_root.join("netns")).unwrap().count(), 0);
    drop(bridge);
}
