//! The Engine API under schemathesis (scripts/fuzz-api.sh): every operation of the v1.51
//! spec that neither streams forever nor reaches out of the machine, fed generated
//! (valid and invalid) requests, seeded and bounded. No 5xx except the documented
//! swarm 503s, no panic in the daemon's log, and the daemon still answers afterwards.
//! Needs schemathesis (`scripts/setup.sh --test` installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_testutil::daemon::{TestDaemon, free_loopback_port, ping, run_ok};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fuzz-api.sh")
}

#[test]
fn schemathesis_finds_no_server_errors() {
    fuzz(false);
}

/// Stateful: generated sequences through links (create → inspect/start/stop/kill/pause/
/// update/rename/exec/commit/delete, volume create → inspect/delete) on real objects.
/// Afterwards every container the fuzzer left is removable and, once removed, leaves no
/// mount behind.
#[test]
fn schemathesis_stateful_sequences_find_no_server_errors() {
    let d = fuzz(true);
    let ids = run_ok(d.docker().args(["ps", "-aq"]));
    let ids: Vec<&str> = ids.split_whitespace().collect();
    for id in &ids {
        run_ok(d.docker().args(["inspect", id]));
    }
    if !ids.is_empty() {
        run_ok(d.docker().args(["rm", "-f"]).args(&ids));
    }
    let root = d.dir.to_string_lossy().into_owned();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let left: Vec<&str> = mounts.lines().filter(|l| l.contains(&root) && l.contains("/containers/")).collect();
    assert!(left.is_empty(), "mounts left after removing every container:\n{}", left.join("\n"));
}

fn fuzz(stateful: bool) -> TestDaemon {
    let port = free_loopback_port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let d = TestDaemon::start_with(bin(), &["-H", &tcp, "--insecure-plain-tcp"]);
    // Objects named "fuzz" (a container, an image, a volume, a network) and every path
    // parameter pinned to that name: the generated queries and bodies then reach the
    // handlers of things that exist instead of stopping at 404.
    d.busybox_image("busybox:latest");
    run_ok(d.docker().args(["tag", "busybox", "fuzz"]));
    run_ok(d.docker().args(["create", "--name", "fuzz", "busybox", "true"]));
    run_ok(d.docker().args(["volume", "create", "fuzz"]));
    run_ok(d.docker().args(["network", "create", "fuzz"]));

    let report = d.dir.join("fuzz.xml");
    let mut child = Command::new("sh")
        .arg(script())
        .arg(format!("http://127.0.0.1:{port}"))
        .env("FUZZ_MAX_EXAMPLES", std::env::var("FUZZ_MAX_EXAMPLES").unwrap_or_else(|_| "10".into()))
        .env("FUZZ_REPORT", &report)
        // (hypothesis keeps a directory of its own in the working directory.)
        .current_dir(&d.dir)
        .env("FUZZ_SET_PATH", if stateful { "" } else { "id=fuzz name=fuzz" })
        .env("FUZZ_STATEFUL", if stateful { "1" } else { "" })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run scripts/fuzz-api.sh");
    // (Stateful sequences take about 2 minutes on two busy cores.)
    let limit = if stateful { 420 } else { 200 };
    let deadline = Instant::now() + Duration::from_secs(limit);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait fuzz") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("fuzz output");
            panic!("fuzz-api.sh took over {limit} s:\n{}", String::from_utf8_lossy(&out.stdout));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = child.wait_with_output().expect("fuzz output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // schemathesis' summary (shown with --no-capture or on failure).
    println!("{stdout}");
    let log = d.log();
    assert!(!log.contains("panicked"), "the daemon panicked under fuzzing:\n{log}");
    assert!(ping(&d.socket), "the daemon stopped answering after fuzzing:\n{log}");
    assert!(status.success(), "schemathesis found failures ({status}):\n{stdout}\n{stderr}");
    // (The prunes and deletes among the operations may have removed what was made
    // before; the daemon must still serve the everyday verbs.)
    run_ok(d.docker().args(["ps", "-a"]));
    run_ok(d.docker().args(["info"]));
    d
}
