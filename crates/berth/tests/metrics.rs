//! `--metrics-addr`: the exposition passes promtool's check and a strict reading of
//! the format; engine counters move with what the daemon does, and a container's
//! memory metric moves when it allocates.

use std::path::Path;
use std::process::{Command, Stdio};

use berth_testutil::daemon::{TestDaemon, run_ok};
use berth_testutil::{http, prom};

fn daemon() -> (TestDaemon, String) {
    let d = TestDaemon::start_with(Path::new(env!("CARGO_BIN_EXE_berth")), &["--metrics-addr", "127.0.0.1:0"]);
    d.busybox_image("busybox:latest");
    let addr = std::fs::read_to_string(d.exec_root.join("metrics-addr")).expect("metrics-addr file");
    (d, addr)
}

fn scrape(addr: &str) -> (String, prom::Exposition) {
    let r = http::get(addr, "/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    let text = r.text();
    let e = prom::parse(&text).unwrap_or_else(|err| panic!("{err}\n{text}"));
    (text, e)
}

/// Scrapes until `ok` holds (at most 20 s).
fn scrape_until(addr: &str, ok: impl Fn(&prom::Exposition) -> bool) -> (String, prom::Exposition) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (text, e) = scrape(addr);
        if ok(&e) {
            return (text, e);
        }
        assert!(std::time::Instant::now() < deadline, "never held:\n{text}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

fn promtool_check(text: &str) {
    let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"].into_iter().find(|p| Path::new(p).exists()).expect("promtool (Debian's prometheus package; scripts/setup.sh --test installs it)");
    let mut child = Command::new(promtool).args(["check", "metrics"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("promtool");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "promtool check metrics failed:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn metrics_pass_promtool_and_a_containers_memory_moves() {
    let (d, addr) = daemon();
    run_ok(d.docker().args(["run", "-d", "--name", "memhog", "--label", "x=\"quoted\"", "busybox", "sleep", "1000"]));
    let (text, e) = scrape(&addr);
    promtool_check(&text);
    let id = run_ok(d.docker().args(["inspect", "-f", "{{.Id}}", "memhog"])).trim().to_string();
    let labels = [("id", id.as_str()), ("name", "memhog"), ("image", "busybox")];
    let before = e.value("container_memory_usage_bytes", &labels);
    assert!(e.value("container_processes", &labels) >= 1.0);
    assert!(e.value("container_start_time_seconds", &labels) > 1.6e9);
    assert!(!e.find("container_network_receive_bytes_total", &[("name", "memhog"), ("interface", "eth0")]).is_empty());
    // Engine metrics moved with what was done.
    assert_eq!(e.value("engine_daemon_container_states_containers", &[("state", "running")]), 1.0);
    assert!(e.value("engine_daemon_container_actions_seconds_count", &[("action", "start")]) >= 1.0);
    assert!(e.value("engine_daemon_container_actions_seconds_count", &[("action", "create")]) >= 1.0);
    assert!(e.value("berth_api_requests_total", &[("endpoint", "/containers/create"), ("method", "POST"), ("status", "201")]) >= 1.0);
    assert!(e.value("engine_daemon_events_total", &[]) >= 2.0);
    assert!(e.value("berth_images", &[]) >= 1.0);
    assert!(e.value("berth_image_store_bytes", &[]) > 100_000.0);
    assert!(e.value("process_resident_memory_bytes", &[]) > 1e6);

    // 40 MB into the container's /dev/shm (tmpfs, charged to its memory cgroup). The
    // containers' cgroups are read every few seconds while scrapes come: wait for it.
    run_ok(d.docker().args(["exec", "memhog", "sh", "-c", "head -c 40000000 /dev/zero > /dev/shm/fill"]));
    let (text, e) = scrape_until(&addr, |e| e.value("container_memory_usage_bytes", &labels) - before > 35e6);
    promtool_check(&text);
    std::fs::write(berth_testutil::artefacts_dir().join("metrics.txt"), &text).unwrap();
    assert!(e.value("container_memory_working_set_bytes", &labels) > 35e6);
    run_ok(d.docker().args(["exec", "memhog", "rm", "/dev/shm/fill"]));

    // A stopped container leaves the per-container families.
    run_ok(d.docker().args(["stop", "-t", "0", "memhog"]));
    let (_, e) = scrape_until(&addr, |e| e.find("container_memory_usage_bytes", &[("name", "memhog")]).is_empty());
    assert_eq!(e.value("engine_daemon_container_states_containers", &[("state", "stopped")]), 1.0);
    // Anything but /metrics is a 404; the endpoint changes nothing.
    assert_eq!(http::get(&addr, "/nope").status, 404);
}
