//! Per-version semantics (issue 18): a request under `/v1.NN/` gets what dockerd gives
//! that version. Each test makes the same request under the last version before a
//! change and the first version with it (crates/berth-api/src/compat.rs has the rules).

use std::path::Path;
use std::time::Duration;

use berth_testutil::daemon::{TestDaemon, run_ok};
use serde_json::Value;

fn daemon() -> TestDaemon {
    let d = TestDaemon::start(Path::new(env!("CARGO_BIN_EXE_berth")));
    d.busybox_image("busybox:latest");
    d
}

fn http(d: &TestDaemon, method: &str, path: &str, body: &str) -> (u16, String, Vec<u8>) {
    d.raw_http(method, path, body)
}

fn json(d: &TestDaemon, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (st, _, b) = http(d, method, path, body);
    (st, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

fn ok(d: &TestDaemon, method: &str, path: &str, body: &str) -> Value {
    let (st, v) = json(d, method, path, body);
    assert!((200..300).contains(&st), "{method} {path}: {st} {v}");
    v
}

#[test]
fn volume_prune_takes_named_volumes_before_1_42_only() {
    let d = daemon();
    let make = || {
        run_ok(d.docker().args(["volume", "create", "named1"]));
        run_ok(d.docker().args(["run", "--name", "anon", "-v", "/data", "busybox", "true"]));
        run_ok(d.docker().args(["rm", "anon"]));
    };
    let names = || -> Vec<String> {
        let mut v: Vec<String> = run_ok(d.docker().args(["volume", "ls", "-q"])).lines().map(str::to_string).collect();
        v.sort();
        v
    };
    make();
    assert_eq!(names().len(), 2);
    let r = ok(&d, "POST", "/v1.42/volumes/prune", "");
    assert_eq!(r["VolumesDeleted"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(names(), vec!["named1".to_string()], "1.42 keeps named volumes");
    let r = ok(&d, "POST", "/v1.41/volumes/prune", "");
    assert_eq!(r["VolumesDeleted"], serde_json::json!(["named1"]), "1.41 prunes named volumes too");
    assert!(names().is_empty());
    // all=true at 1.42 is the old behaviour.
    make();
    let r = ok(&d, "POST", "/v1.42/volumes/prune?filters=%7B%22all%22%3A%5B%22true%22%5D%7D", "");
    assert_eq!(r["VolumesDeleted"].as_array().unwrap().len(), 2, "{r}");
}

#[test]
fn stop_signal_parameter_from_1_42() {
    let d = daemon();
    let run = || run_ok(d.docker().args(["run", "-d", "busybox", "sh", "-c", "trap 'exit 7' USR1; while :; do sleep 0.1; done"])).trim().to_string();
    let exit = |id: &str| run_ok(d.docker().args(["inspect", "-f", "{{.State.ExitCode}}", id])).trim().to_string();
    let a = run();
    std::thread::sleep(Duration::from_millis(300));
    let (st, _, _) = http(&d, "POST", &format!("/v1.42/containers/{a}/stop?signal=USR1&t=5"), "");
    assert_eq!(st, 204);
    assert_eq!(exit(&a), "7", "1.42 sends the signal asked for");
    let b = run();
    std::thread::sleep(Duration::from_millis(300));
    let (st, _, _) = http(&d, "POST", &format!("/v1.41/containers/{b}/stop?signal=USR1&t=1"), "");
    assert_eq!(st, 204);
    // 1.41 ignores `signal`: SIGTERM (ignored by a shell as PID 1), then SIGKILL.
    assert_eq!(exit(&b), "137");
    // restart takes the same parameter.
    let (st, _, _) = http(&d, "POST", &format!("/v1.42/containers/{b}/restart?signal=USR1&t=5"), "");
    assert_eq!(st, 204);
}

#[test]
fn wait_condition_and_logs_and_stats_by_version() {
    let d = daemon();
    let id = run_ok(d.docker().args(["run", "-d", "busybox", "sh", "-c", "echo out; sleep 300"])).trim().to_string();
    // wait: `condition` is 1.30's; before, it is not read.
    let (st, v) = json(&d, "POST", &format!("/v1.30/containers/{id}/wait?condition=bogus"), "");
    assert_eq!(st, 400);
    assert_eq!(v["message"], "invalid condition: \"bogus\"");
    // logs: without a TTY the stream is announced multiplexed from 1.42 (framed either way).
    // (The container's echo reaches its log a moment after `run -d` returns: wait for it.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (head, body) = loop {
        let (_, head, body) = http(&d, "GET", &format!("/v1.41/containers/{id}/logs?stdout=1"), "");
        if body.len() >= 8 || std::time::Instant::now() > deadline {
            break (head, body);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(head.contains("application/vnd.docker.raw-stream"), "{head}");
    assert_eq!(&body[..8], &[1, 0, 0, 0, 0, 0, 0, 4]);
    let (_, head, _) = http(&d, "GET", &format!("/v1.42/containers/{id}/logs?stdout=1"), "");
    assert!(head.contains("application/vnd.docker.multiplexed-stream"), "{head}");
    // stats: one-shot is 1.41's; before, stream=false takes two samples.
    let v = ok(&d, "GET", &format!("/v1.41/containers/{id}/stats?stream=false&one-shot=true"), "");
    assert_eq!(v["preread"], "0001-01-01T00:00:00Z");
    let v = ok(&d, "GET", &format!("/v1.40/containers/{id}/stats?stream=false&one-shot=true"), "");
    assert_ne!(v["preread"], "0001-01-01T00:00:00Z");
    // wait before 1.30 ignores the bad condition and waits for the exit.
    run_ok(d.docker().args(["kill", &id]));
    let v = ok(&d, "POST", &format!("/v1.29/containers/{id}/wait?condition=bogus"), "");
    assert_eq!(v["StatusCode"], 137);
}

#[test]
fn image_shapes_by_version() {
    let d = daemon();
    let c = run_ok(d.docker().args(["create", "busybox", "true"])).trim().to_string();
    // An untagged image (commit without a name).
    let untagged = run_ok(d.docker().args(["commit", &c])).trim().to_string();
    let find = |list: &Value, id: &str| list.as_array().unwrap().iter().find(|i| i["Id"] == id).cloned().unwrap();
    let l = ok(&d, "GET", "/v1.42/images/json", "");
    let i = find(&l, &untagged);
    assert_eq!(i["RepoTags"], serde_json::json!(["<none>:<none>"]));
    assert_eq!(i["RepoDigests"], serde_json::json!(["<none>@<none>"]));
    assert_eq!(i["VirtualSize"], i["Size"]);
    assert_eq!(i["Containers"], -1);
    let l = ok(&d, "GET", "/v1.43/images/json", "");
    let i = find(&l, &untagged);
    assert_eq!(i["RepoTags"], serde_json::json!([]));
    assert!(i.get("VirtualSize").is_some(), "VirtualSize goes in 1.44");
    let l = ok(&d, "GET", "/v1.44/images/json", "");
    assert!(find(&l, &untagged).get("VirtualSize").is_none());
    // Containers: the count from 1.51 on.
    let l = ok(&d, "GET", "/v1.51/images/json", "");
    let bb = l.as_array().unwrap().iter().find(|i| i["RepoTags"][0] == "busybox:latest").unwrap();
    assert_eq!(bb["Containers"], 1);
    let l = ok(&d, "GET", "/v1.50/images/json", "");
    let bb = l.as_array().unwrap().iter().find(|i| i["RepoTags"][0] == "busybox:latest").unwrap();
    assert_eq!(bb["Containers"], -1);
    // The singular `filter` (a reference) until 1.40.
    let l = ok(&d, "GET", "/v1.40/images/json?filter=busy*", "");
    assert_eq!(l.as_array().unwrap().len(), 1, "{l}");
    let l = ok(&d, "GET", "/v1.41/images/json?filter=busy*", "");
    assert_eq!(l.as_array().unwrap().len(), 2, "{l}");

    // inspect
    let i = ok(&d, "GET", "/v1.43/images/busybox/json", "");
    assert_eq!(i["VirtualSize"], i["Size"]);
    let i = ok(&d, "GET", "/v1.44/images/busybox/json", "");
    assert!(i.get("VirtualSize").is_none());
    assert!(i.get("ContainerConfig").is_some() && i.get("Container").is_some());
    let i = ok(&d, "GET", "/v1.45/images/busybox/json", "");
    assert!(i.get("ContainerConfig").is_none() && i.get("Container").is_none());
    let i = ok(&d, "GET", "/v1.49/images/busybox/json", "");
    assert_eq!(i["Config"]["Hostname"], "");
    assert_eq!(i["Config"]["Tty"], false);
    let i = ok(&d, "GET", "/v1.50/images/busybox/json", "");
    assert!(i["Config"].get("Hostname").is_none() && i["Config"].get("Tty").is_none(), "{}", i["Config"]);
    assert_eq!(i["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(i["Config"]["Entrypoint"], Value::Null);
}

#[test]
fn container_create_by_version() {
    let d = daemon();
    run_ok(d.docker().args(["network", "create", "n1"]));
    run_ok(d.docker().args(["network", "create", "n2"]));
    // AutoRemove came in 1.25.
    let c = ok(&d, "POST", "/v1.24/containers/create", r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"AutoRemove":true}}"#);
    let i = ok(&d, "GET", &format!("/v1.51/containers/{}/json", c["Id"].as_str().unwrap()), "");
    assert_eq!(i["HostConfig"]["AutoRemove"], false);
    let c = ok(&d, "POST", "/v1.25/containers/create", r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"AutoRemove":true}}"#);
    let i = ok(&d, "GET", &format!("/v1.51/containers/{}/json", c["Id"].as_str().unwrap()), "");
    assert_eq!(i["HostConfig"]["AutoRemove"], true);
    // Several networks at create: 1.44.
    let two = r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"NetworkMode":"n1"},"NetworkingConfig":{"EndpointsConfig":{"n1":{},"n2":{}}}}"#;
    let (st, v) = json(&d, "POST", "/v1.43/containers/create", two);
    assert_eq!(st, 400);
    assert!(v["message"].as_str().unwrap().starts_with("Container cannot be created with multiple network endpoints: "), "{v}");
    let c = ok(&d, "POST", "/v1.44/containers/create", two);
    let i = ok(&d, "GET", &format!("/v1.51/containers/{}/json", c["Id"].as_str().unwrap()), "");
    assert_eq!(i["NetworkSettings"]["Networks"].as_object().unwrap().len(), 2);
    // Mount options of another type: dropped before 1.42, refused from 1.42.
    let m = r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"Mounts":[{"Type":"tmpfs","Target":"/t","VolumeOptions":{"NoCopy":true}}]}}"#;
    ok(&d, "POST", "/v1.41/containers/create", m);
    let (st, v) = json(&d, "POST", "/v1.42/containers/create", m);
    assert_eq!(st, 400);
    assert_eq!(v["message"], "VolumeOptions must not be specified on mount type \"tmpfs\"");
    // Subpath needs 1.45.
    let sp = r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"Mounts":[{"Type":"volume","Source":"v","Target":"/v","VolumeOptions":{"Subpath":"x"}}]}}"#;
    let (st, v) = json(&d, "POST", "/v1.44/containers/create", sp);
    assert_eq!((st, v["message"].as_str().unwrap()), (400, "VolumeOptions.Subpath needs API v1.45 or newer"));
    // The container-wide MacAddress: moved to the endpoint, with a warning from 1.44.
    let mac = r#"{"Image":"busybox","Cmd":["sleep","300"],"MacAddress":"02:42:ac:11:00:99","HostConfig":{"NetworkMode":"n1"}}"#;
    let c = ok(&d, "POST", "/v1.43/containers/create", mac);
    assert_eq!(c["Warnings"], serde_json::json!([]));
    let c = ok(&d, "POST", "/v1.44/containers/create", mac);
    assert_eq!(c["Warnings"], serde_json::json!(["The container-wide MacAddress field is now deprecated. It should be specified in EndpointsConfig instead."]));
    let id = c["Id"].as_str().unwrap().to_string();
    run_ok(d.docker().args(["start", &id]));
    let i = ok(&d, "GET", &format!("/v1.51/containers/{id}/json"), "");
    assert_eq!(i["NetworkSettings"]["Networks"]["n1"]["MacAddress"], "02:42:ac:11:00:99");
    // IpcMode defaults to shareable before 1.40, private after.
    let c = ok(&d, "POST", "/v1.39/containers/create", r#"{"Image":"busybox","Cmd":["true"]}"#);
    let i = ok(&d, "GET", &format!("/v1.51/containers/{}/json", c["Id"].as_str().unwrap()), "");
    assert_eq!(i["HostConfig"]["IpcMode"], "shareable");
    let c = ok(&d, "POST", "/v1.40/containers/create", r#"{"Image":"busybox","Cmd":["true"]}"#);
    let i = ok(&d, "GET", &format!("/v1.51/containers/{}/json", c["Id"].as_str().unwrap()), "");
    assert_eq!(i["HostConfig"]["IpcMode"], "private");
    // platform: 1.41's; a platform the image is not of is a 404.
    let (st, v) = json(&d, "POST", "/v1.41/containers/create?platform=linux/s390x", r#"{"Image":"busybox","Cmd":["true"]}"#);
    assert_eq!(st, 404, "{v}");
    assert!(v["message"].as_str().unwrap().contains("does not match the specified platform: wanted linux/s390x"), "{v}");
    ok(&d, "POST", "/v1.40/containers/create?platform=linux/s390x", r#"{"Image":"busybox","Cmd":["true"]}"#);
}

#[test]
fn container_inspect_list_and_networks_by_version() {
    let d = daemon();
    run_ok(d.docker().args(["network", "create", "un"]));
    let id = run_ok(d.docker().args(["run", "-d", "--network", "un", "--network-alias", "web", "busybox", "sleep", "300"])).trim().to_string();
    let short = &id[..12];
    let i = ok(&d, "GET", &format!("/v1.44/containers/{id}/json"), "");
    let aliases = i["NetworkSettings"]["Networks"]["un"]["Aliases"].clone();
    assert_eq!(aliases, serde_json::json!(["web", short]), "1.44 adds the short ID (and hostname)");
    let i = ok(&d, "GET", &format!("/v1.45/containers/{id}/json"), "");
    assert_eq!(i["NetworkSettings"]["Networks"]["un"]["Aliases"], serde_json::json!(["web"]));
    // GET /networks: before 1.28 each network lists its containers.
    let l = ok(&d, "GET", "/v1.27/networks", "");
    let un = l.as_array().unwrap().iter().find(|n| n["Name"] == "un").unwrap();
    assert!(un["Containers"].get(&id).is_some(), "{un}");
    let l = ok(&d, "GET", "/v1.28/networks", "");
    let un = l.as_array().unwrap().iter().find(|n| n["Name"] == "un").unwrap();
    assert_eq!(un["Containers"], serde_json::json!({}), "{un}");
    // /info: BridgeNfIptables until 1.49, the RegistryConfig AllowNondistributable*
    // fields until 1.48.
    let info = ok(&d, "GET", "/v1.49/info", "");
    assert_eq!(info["BridgeNfIptables"], false);
    assert!(info["RegistryConfig"].get("AllowNondistributableArtifactsCIDRs").is_none());
    let info = ok(&d, "GET", "/v1.48/info", "");
    assert!(info["RegistryConfig"].get("AllowNondistributableArtifactsCIDRs").is_some());
    let info = ok(&d, "GET", "/v1.50/info", "");
    assert!(info.get("BridgeNfIptables").is_none());
    // /system/df: VirtualSize until 1.43; `type` from 1.42.
    let du = ok(&d, "GET", "/v1.43/system/df", "");
    assert!(du["Images"][0].get("VirtualSize").is_some());
    let du = ok(&d, "GET", "/v1.44/system/df?type=image", "");
    assert!(du["Images"][0].get("VirtualSize").is_none());
    assert_eq!(du["Containers"], Value::Null);
    let du = ok(&d, "GET", "/v1.41/system/df?type=image", "");
    assert!(du["Containers"].is_array(), "1.41 has no `type`");
    let (st, _) = json(&d, "GET", "/v1.44/system/df?type=bogus", "");
    assert_eq!(st, 400);
}
