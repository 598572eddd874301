//! Details clients rely on, each as dockerd behaves (issue 18): the exec framing is
//! decided by the start request's Tty, a container its restart policy is restarting
//! cannot be removed without force.

use std::path::Path;
use std::time::Duration;

use berth_testutil::daemon::{TestDaemon, run_ok};

fn daemon() -> TestDaemon {
    let d = TestDaemon::start(Path::new(env!("CARGO_BIN_EXE_berth")));
    d.busybox_image("busybox:latest");
    d
}

fn http(d: &TestDaemon, method: &str, path: &str, body: &str) -> (u16, String, Vec<u8>) {
    d.raw_http(method, path, body)
}

#[test]
fn exec_framing_follows_the_start_requests_tty() {
    let d = daemon();
    let id = run_ok(d.docker().args(["run", "-d", "busybox", "sleep", "300"])).trim().to_string();
    for create_tty in [false, true] {
        for start_tty in [false, true] {
            let (st, _, body) = http(&d, "POST", &format!("/v1.51/containers/{id}/exec"), &format!(r#"{{"Cmd":["echo","hello"],"AttachStdout":true,"AttachStderr":true,"Tty":{create_tty}}}"#));
            assert_eq!(st, 201);
            let exec: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let eid = exec["Id"].as_str().unwrap();
            let (st, head, out) = http(&d, "POST", &format!("/v1.51/exec/{eid}/start"), &format!(r#"{{"Detach":false,"Tty":{start_tty}}}"#));
            assert_eq!(st, 200, "create {create_tty} start {start_tty}");
            // A process with a terminal writes CRLF; without one, LF.
            let line: &[u8] = if create_tty { b"hello\r\n" } else { b"hello\n" };
            if start_tty {
                assert!(head.contains("application/vnd.docker.raw-stream"), "{head}");
                assert_eq!(out, line, "create {create_tty} start {start_tty}");
            } else {
                assert!(head.contains("application/vnd.docker.multiplexed-stream"), "{head}");
                let mut want = vec![1u8, 0, 0, 0, 0, 0, 0, line.len() as u8];
                want.extend_from_slice(line);
                assert_eq!(out, want, "create {create_tty} start {start_tty}");
            }
        }
    }
}

#[test]
fn a_restarting_container_needs_force_to_be_removed() {
    let d = daemon();
    let id = run_ok(d.docker().args(["run", "-d", "--restart", "always", "busybox", "sh", "-c", "sleep 0.2; exit 1"])).trim().to_string();
    // Within a few restarts the back-off keeps it in `restarting` for a while.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let st = run_ok(d.docker().args(["inspect", "-f", "{{.State.Status}}", &id]));
        if st.trim() == "restarting" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never restarting");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (st, _, body) = http(&d, "DELETE", &format!("/v1.51/containers/{id}"), "");
    // Either it is still restarting (refused) or it already runs again (refused too).
    assert_eq!(st, 409, "{}", String::from_utf8_lossy(&body));
    let msg = String::from_utf8_lossy(&body);
    assert!(msg.contains("container is restarting") || msg.contains("container is running"), "{msg}");
    run_ok(d.docker().args(["rm", "-f", &id]));
    assert_eq!(run_ok(d.docker().args(["ps", "-aq"])).trim(), "");
}

#[test]
fn top_with_ps_options_lists_the_containers_processes() {
    let d = daemon();
    let id = run_ok(d.docker().args(["run", "-d", "busybox", "sh", "-c", "sleep 300"])).trim().to_string();
    // `-o pid,args` selects nothing by itself: dockerd runs ps over the container's PIDs.
    let out = run_ok(d.docker().args(["top", &id, "-o", "pid,args"]));
    let mut lines = out.lines();
    assert_eq!(lines.next().unwrap().split_whitespace().collect::<Vec<_>>(), ["PID", "COMMAND"], "{out}");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 1, "{out}");
    assert!(rows[0].ends_with("sh -c sleep 300") || rows[0].ends_with("sleep 300"), "{out}");
    // Options that cannot go with -q still work (ps is asked again without it).
    let (st, _, body) = http(&d, "GET", &format!("/v1.51/containers/{id}/top?ps_args=aux"), "");
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["Processes"].as_array().unwrap().len(), 1, "{v}");
    // Renaming the PID column is refused, with dockerd's words; as bad input (400),
    // where dockerd answers 500 (docs/testing.md).
    let (st, _, body) = http(&d, "GET", &format!("/v1.51/containers/{id}/top?ps_args=-o%20user=PID"), "");
    assert_eq!(st, 400);
    assert!(String::from_utf8_lossy(&body).contains("specifying \\\"user=PID\\\" is not allowed"), "{}", String::from_utf8_lossy(&body));
}

#[test]
fn exec_gets_the_containers_ulimits() {
    let d = daemon();
    let id = run_ok(d.docker().args(["run", "-d", "--ulimit", "nofile=1234:2345", "--ulimit", "nproc=77:88", "busybox", "sleep", "300"])).trim().to_string();
    let out = run_ok(d.docker().args(["exec", &id, "sh", "-c", "ulimit -n; ulimit -Hn; ulimit -u"]));
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["1234", "2345", "77"]);
}

#[test]
fn rename_moves_the_dns_name() {
    let d = daemon();
    run_ok(d.docker().args(["network", "create", "rn"]));
    run_ok(d.docker().args(["run", "-d", "--name", "old", "--network", "rn", "busybox", "sleep", "300"]));
    let client = run_ok(d.docker().args(["run", "-d", "--network", "rn", "busybox", "sleep", "300"])).trim().to_string();
    let resolves = |name: &str| d.docker().args(["exec", &client, "nslookup", name]).output().unwrap().status.success();
    assert!(resolves("old"));
    run_ok(d.docker().args(["rename", "old", "new"]));
    assert!(resolves("new"), "the new name resolves");
    assert!(!resolves("old"), "the old name no longer does");
}

#[test]
fn stopped_containers_list_no_ports_and_volume_modes() {
    let d = daemon();
    let id = run_ok(d.docker().args(["run", "-d", "--expose", "80", "-p", "8080", "-v", "named:/n", "-v", "/anon", "--mount", "type=volume,src=m2,dst=/m", "busybox", "sleep", "300"])).trim().to_string();
    let ports = |id: &str| -> serde_json::Value {
        let (_, _, body) = http(&d, "GET", "/v1.51/containers/json?all=1", "");
        let l: serde_json::Value = serde_json::from_slice(&body).unwrap();
        l.as_array().unwrap().iter().find(|c| c["Id"] == id).unwrap()["Ports"].clone()
    };
    assert!(ports(&id).as_array().unwrap().len() >= 2, "{}", ports(&id));
    run_ok(d.docker().args(["stop", "-t", "0", &id]));
    assert_eq!(ports(&id), serde_json::json!([]), "an exited container lists no ports");
    let created = run_ok(d.docker().args(["create", "--expose", "80", "busybox"])).trim().to_string();
    assert_eq!(ports(&created), serde_json::json!([]));
    // Mounts[].Mode: "z" for named local volumes, "" for anonymous ones (dockerd 20.10).
    let (_, _, body) = http(&d, "GET", &format!("/v1.51/containers/{id}/json"), "");
    let i: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let mode = |dst: &str| i["Mounts"].as_array().unwrap().iter().find(|m| m["Destination"] == dst).unwrap()["Mode"].clone();
    assert_eq!(mode("/n"), "z");
    assert_eq!(mode("/m"), "z");
    assert_eq!(mode("/anon"), "");
}

#[test]
fn rm_link_removes_a_legacy_link() {
    let d = daemon();
    run_ok(d.docker().args(["run", "-d", "--name", "db", "busybox", "sleep", "300"]));
    run_ok(d.docker().args(["create", "--name", "web", "--link", "db:dbalias", "busybox", "sleep", "300"]));
    let links = || run_ok(d.docker().args(["inspect", "-f", "{{json .HostConfig.Links}}", "web"])).trim().to_string();
    assert_eq!(links(), r#"["/db:/web/dbalias"]"#);
    // A container's own name is not a link.
    let (st, _, body) = http(&d, "DELETE", "/v1.51/containers/db?link=1", "");
    assert_eq!(st, 409, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("Conflict, cannot remove the default link name of the container"));
    let (st, _, _) = http(&d, "DELETE", "/v1.51/containers/web/nolink?link=1", "");
    assert_eq!(st, 404);
    run_ok(d.docker().args(["rm", "--link", "/web/dbalias"]));
    assert_eq!(links(), "null");
    // Both containers are still there.
    assert_eq!(run_ok(d.docker().args(["ps", "-aq"])).lines().count(), 2);
}

#[test]
fn names_fields_and_messages_as_dockerd() {
    let d = daemon();
    // Network names: anything not blank (dockerd 20.10 takes "my net").
    run_ok(d.docker().args(["network", "create", "my net"]));
    assert_eq!(run_ok(d.docker().args(["network", "inspect", "-f", "{{.Name}}", "my net"])).trim(), "my net");
    let (st, _, body) = http(&d, "POST", "/v1.51/networks/create", r#"{"Name":"   "}"#);
    assert_eq!(st, 400, "{}", String::from_utf8_lossy(&body));
    // Options as given ({} when none); IPAM.Options null unless given (recorded from
    // dockerd 20.10).
    let (_, _, _) = http(&d, "POST", "/v1.51/networks/create", r#"{"Name":"apinet"}"#);
    let (_, _, body) = http(&d, "GET", "/v1.51/networks/apinet", "");
    let n: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(n["Options"], serde_json::json!({}));
    assert_eq!(n["IPAM"]["Options"], serde_json::Value::Null);
    run_ok(d.docker().args(["network", "create", "-o", "com.docker.network.bridge.name=brfid0", "optnet"]));
    let (_, _, body) = http(&d, "GET", "/v1.51/networks/optnet", "");
    let n: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(n["Options"], serde_json::json!({"com.docker.network.bridge.name": "brfid0"}));
    assert_eq!(n["IPAM"]["Options"], serde_json::json!({}), "the CLI sends {{}}");
    // An unknown log driver: dockerd's message, no prefix.
    let (st, _, body) = http(&d, "POST", "/v1.51/containers/create", r#"{"Image":"busybox","HostConfig":{"LogConfig":{"Type":"nosuch"}}}"#);
    assert_eq!(st, 400);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["message"], "logger: no log driver named 'nosuch' is registered");
    // A MacAddress given on connect is the endpoint's (API ≥ 1.44).
    let id = run_ok(d.docker().args(["run", "-d", "busybox", "sleep", "300"])).trim().to_string();
    let (st, _, body) = http(&d, "POST", "/v1.51/networks/apinet/connect", &format!(r#"{{"Container":"{id}","EndpointConfig":{{"MacAddress":"02:42:ac:aa:bb:cc"}}}}"#));
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(run_ok(d.docker().args(["inspect", "-f", "{{.NetworkSettings.Networks.apinet.MacAddress}}", &id])).trim(), "02:42:ac:aa:bb:cc");
    // HostConfig.Runtime is the name asked for (the daemon's default when none).
    assert_eq!(run_ok(d.docker().args(["inspect", "-f", "{{.HostConfig.Runtime}}", &id])).trim(), "berth");
}

fn fixture(name: &str) -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/docker-inspect").join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

/// Every member of dockerd's answer is in berth's, with the same JSON kind (null,
/// object, array, string, number, bool), recursively (arrays by their first element).
/// berth may add members of newer API versions.
fn same_shape(path: &str, docker: &serde_json::Value, berth: &serde_json::Value) {
    use serde_json::Value as V;
    let kind = |v: &V| match v {
        V::Null => "null",
        V::Bool(_) => "bool",
        V::Number(_) => "number",
        V::String(_) => "string",
        V::Array(_) => "array",
        V::Object(_) => "object",
    };
    assert_eq!(kind(docker), kind(berth), "{path}: dockerd {docker} vs berth {berth}");
    match (docker, berth) {
        (V::Object(d), V::Object(b)) => {
            for (k, dv) in d {
                // Keys that are IDs (Containers) differ by nature.
                if k.len() == 64 && k.chars().all(|c| c.is_ascii_hexdigit()) {
                    continue;
                }
                let bv = b.get(k).unwrap_or_else(|| panic!("{path}.{k} missing in berth's answer: {berth}"));
                same_shape(&format!("{path}.{k}"), dv, bv);
            }
        }
        (V::Array(d), V::Array(b)) if !d.is_empty() && !b.is_empty() => same_shape(&format!("{path}[0]"), &d[0], &b[0]),
        _ => {}
    }
}

#[test]
fn json_shapes_match_dockerd_recordings() {
    let d = daemon();
    let get = |path: &str| -> serde_json::Value {
        let (st, _, body) = http(&d, "GET", path, "");
        assert_eq!(st, 200, "{path}: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    };
    // A network made through the API without options, one through the CLI with one.
    http(&d, "POST", "/v1.41/networks/create", r#"{"Name":"apinet"}"#);
    let id = run_ok(d.docker().args(["run", "-d", "--network", "apinet", "busybox", "sleep", "300"])).trim().to_string();
    same_shape("network", &fixture("network-api-created.json"), &get("/v1.41/networks/apinet"));
    run_ok(d.docker().args(["network", "create", "-o", "com.docker.network.bridge.name=brfid1", "optnet"]));
    let n = get("/v1.41/networks/optnet");
    same_shape("network", &fixture("network-cli-options.json"), &n);
    // The same option key as dockerd's answer (the bridge name differs).
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&n["Options"]), keys(&fixture("network-cli-options.json")["Options"]));
    // Mounts of named, anonymous and --mount volumes.
    let c = run_ok(d.docker().args(["run", "-d", "-v", "namedv:/data", "-v", "/anon", "--mount", "type=volume,src=mv,dst=/m", "busybox", "sleep", "300"])).trim().to_string();
    let want = fixture("container-volume-mounts.json");
    let got = get(&format!("/v1.41/containers/{c}/json"))["Mounts"].clone();
    for w in want.as_array().unwrap() {
        let g = got.as_array().unwrap().iter().find(|m| m["Destination"] == w["Destination"]).unwrap();
        same_shape("mount", w, g);
        for k in ["Type", "Driver", "Mode", "RW", "Propagation"] {
            assert_eq!(g[k], w[k], "{k} of {}", w["Destination"]);
        }
    }
    // top with ps options.
    let top = get(&format!("/v1.41/containers/{id}/top?ps_args=-o%20pid,args"));
    same_shape("top", &fixture("top-ps-options.json"), &top);
    assert_eq!(top["Titles"], fixture("top-ps-options.json")["Titles"]);
    // A local volume with options, created as the CLI does.
    run_ok(d.docker().args(["volume", "create", "--opt", "type=ext4", "--opt", "device=/dev/berth-no-such-dev", "badvol"]));
    let v = get("/v1.41/volumes/badvol");
    let want = fixture("volume-local-options.json");
    same_shape("volume", &want, &v);
    assert_eq!(v["Options"], want["Options"]);
}
