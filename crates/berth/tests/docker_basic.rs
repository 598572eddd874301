//! The real docker CLI against a berth daemon: the everyday commands.

use std::path::Path;

use berth_testutil::daemon::{TestDaemon, run_ok};

fn daemon() -> TestDaemon {
    let d = TestDaemon::start(Path::new(env!("CARGO_BIN_EXE_berth")));
    d.busybox_image("busybox:latest");
    d
}

#[test]
fn run_foreground_prints_and_returns_exit_code() {
    let d = daemon();
    let out = run_ok(d.docker().args(["run", "--rm", "busybox", "echo", "hello"]));
    assert_eq!(out, "hello\n");
    let st = d.docker().args(["run", "--rm", "busybox", "sh", "-c", "exit 7"]).status().unwrap();
    assert_eq!(st.code(), Some(7));
    // --rm removed them.
    let ps = run_ok(d.docker().args(["ps", "-aq"]));
    assert_eq!(ps.trim(), "", "{}", d.log());
}
