//! SIGKILL of the daemon while a pod runs: the pod and its containers never stop, and
//! after the restart the kubelet-facing state (sandboxes, containers, their states and
//! exit codes, even an exit that happened while the daemon was down) is as it was.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_testutil::daemon::{TestDaemon, run_ok};

fn write(d: &TestDaemon, name: &str, json: serde_json::Value) -> String {
    let p = d.dir.join(name);
    std::fs::write(&p, json.to_string()).unwrap();
    p.display().to_string()
}

fn inspect(d: &TestDaemon, id: &str) -> serde_json::Value {
    serde_json::from_str(&run_ok(d.crictl().args(["inspect", id]))).unwrap()
}

fn alive(pid: i64) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    pid > 0 && unsafe { libc::kill(pid as i32, 0) } == 0
}

fn last_tick(log: &Path) -> u64 {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .last()
        .unwrap_or(0)
}

#[test]
fn sigkill_of_the_daemon_keeps_pods_running_and_their_state() {
    let mut d = TestDaemon::start_cri(Path::new(env!("CARGO_BIN_EXE_berth")), &[]);
    d.busybox_image("busybox:latest");
    let logs = d.dir.join("logs");
    let pod = write(&d, "pod.json", serde_json::json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u"}, "log_directory": logs, "labels": {"k": "v"}}));
    let ctr = |name: &str, cmd: &str| {
        write(
            &d,
            &format!("{name}.json"),
            serde_json::json!({"metadata": {"name": name}, "image": {"image": "busybox:latest"}, "command": ["sh", "-c", cmd], "log_path": format!("{name}.log")}),
        )
    };
    let pod_id = run_ok(d.crictl().args(["runp", &pod])).trim().to_string();
    let create = |cfg: &str| run_ok(d.crictl().args(["create", &pod_id, cfg, &pod])).trim().to_string();
    let ticker = create(&ctr("ticker", "i=0; while true; do echo $i; i=$((i+1)); sleep 0.2; done"));
    let done = create(&ctr("done", "exit 3"));
    let later = create(&ctr("later", "sleep 2; exit 7"));
    let idle = create(&ctr("idle", "true"));
    for c in [&ticker, &done, &later] {
        run_ok(d.crictl().args(["start", c]));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while inspect(&d, &done)["status"]["state"] != "CONTAINER_EXITED" {
        assert!(Instant::now() < deadline, "the exit 3 container did not exit");
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = inspect(&d, &ticker)["info"]["pid"].as_i64().unwrap();
    let pause_pid: i64 = serde_json::from_str::<serde_json::Value>(&run_ok(d.crictl().args(["inspectp", &pod_id]))).unwrap()["info"]["pid"].as_i64().unwrap();
    assert!(alive(pid) && alive(pause_pid));

    d.kill9();
    // While the daemon is down the pod goes on: its processes live and the log grows;
    // the "later" container exits meanwhile (its shim records the code).
    let before = last_tick(&logs.join("ticker.log"));
    std::thread::sleep(Duration::from_secs(3));
    assert!(alive(pid) && alive(pause_pid), "pod processes died with the daemon");
    assert!(last_tick(&logs.join("ticker.log")) > before, "the log stopped while the daemon was down");

    d.restart();
    // The CRI socket may answer a moment after the Docker API.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !d.crictl().args(["pods", "-q"]).output().unwrap().status.success() {
        assert!(Instant::now() < deadline, "CRI did not come back:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let pods = run_ok(d.crictl().args(["pods", "--state", "ready", "-q"]));
    assert_eq!(pods.trim(), pod_id, "{}", d.log());
    let st = inspect(&d, &ticker);
    assert_eq!(st["status"]["state"], "CONTAINER_RUNNING");
    assert_eq!(st["info"]["pid"].as_i64(), Some(pid), "the same process, never restarted");
    let st = inspect(&d, &done);
    assert_eq!((st["status"]["state"].as_str(), st["status"]["exitCode"].as_i64()), (Some("CONTAINER_EXITED"), Some(3)));
    let st = inspect(&d, &later);
    assert_eq!((st["status"]["state"].as_str(), st["status"]["exitCode"].as_i64()), (Some("CONTAINER_EXITED"), Some(7)), "{st}");
    assert_eq!(st["status"]["reason"], "Error");
    assert_eq!(inspect(&d, &idle)["status"]["state"], "CONTAINER_CREATED");
    let inspp: serde_json::Value = serde_json::from_str(&run_ok(d.crictl().args(["inspectp", &pod_id]))).unwrap();
    assert_eq!(inspp["status"]["labels"]["k"], "v");
    // The restarted daemon still drives them: exec, logs, stop.
    assert_eq!(run_ok(d.crictl().args(["exec", &ticker, "echo", "still"])), "still\n");
    let n = last_tick(&logs.join("ticker.log"));
    std::thread::sleep(Duration::from_millis(800));
    assert!(last_tick(&logs.join("ticker.log")) > n);
    run_ok(d.crictl().args(["stopp", &pod_id]));
    assert!(!alive(pid));
    run_ok(d.crictl().args(["rmp", &pod_id]));
    assert_eq!(run_ok(d.crictl().args(["ps", "-a", "-q"])).trim(), "");
}
