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
        .env("FUZZ_SET_PATH", "id=fuzz name=fuzz")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run scripts/fuzz-api.sh");
    let deadline = Instant::now() + Duration::from_secs(200);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait fuzz") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("fuzz output");
            panic!("fuzz-api.sh took over 200 s:\n{}", String::from_utf8_lossy(&out.stdout));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = child.wait_with_output().expect("fuzz output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let log = d.log();
    assert!(!log.contains("panicked"), "the daemon panicked under fuzzing:\n{log}");
    assert!(ping(&d.socket), "the daemon stopped answering after fuzzing:\n{log}");
    assert!(status.success(), "schemathesis found failures ({status}):\n{stdout}\n{stderr}");
    // (The prunes and deletes among the operations may have removed what was made
    // before; the daemon must still serve the everyday verbs.)
    run_ok(d.docker().args(["ps", "-a"]));
    run_ok(d.docker().args(["info"]));
}
