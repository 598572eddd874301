//! Registry mirrors for the Docker API and the CRI alike: `--registry-mirror
//! registry.k8s.io=http://127.0.0.1:PORT` (any registry) and a bare URL (Docker Hub), also
//! in daemon.json. Pulls come from the mirror; the image keeps the name it was asked by.

use std::path::Path;

use berth_testutil::registry::Registry;
use berth_testutil::daemon::{TestDaemon, run_ok};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

#[test]
fn mirrors_serve_docker_and_the_cri_under_the_names_asked_for() {
    let reg = Registry::berth(bin());
    // Fill the "mirror" from a first daemon: the pause image under the path registry.k8s.io
    // would have, and busybox under Docker Hub's library path.
    let filler = TestDaemon::start(bin());
    filler.busybox_image("busybox:latest");
    for target in [format!("{}/pause:3.9", reg.addr), format!("{}/library/busybox:latest", reg.addr), format!("{}/tools/bb:1", reg.addr)] {
        run_ok(filler.docker().args(["tag", "busybox:latest", &target]));
        run_ok(filler.docker().args(["push", &target]));
    }
    drop(filler);

    let mut d = TestDaemon::start_cri(bin(), &["--registry-mirror", &format!("registry.k8s.io=http://{}", reg.addr), "--registry-mirror", &format!("http://{}", reg.addr)]);
    // One more in daemon.json (flags and file add up, as dockerd's registry-mirrors).
    std::fs::write(d.dir.join("daemon.json"), serde_json::json!({"registry-mirrors": [format!("gcr.io=http://{}", reg.addr)]}).to_string()).unwrap();
    d.restart();
    // Docker API: the names asked for, the content from the mirror.
    run_ok(d.docker().args(["pull", "registry.k8s.io/pause:3.9"]));
    run_ok(d.docker().args(["pull", "busybox"]));
    run_ok(d.docker().args(["pull", "gcr.io/tools/bb:1"]));
    let images = run_ok(d.docker().args(["images", "--format", "{{.Repository}}:{{.Tag}}"]));
    for want in ["registry.k8s.io/pause:3.9", "busybox:latest", "gcr.io/tools/bb:1"] {
        assert!(images.lines().any(|l| l == want), "{want} not in {images}");
    }
    assert!(!images.contains(&reg.addr), "the mirror's name leaked into the store: {images}");
    assert_eq!(run_ok(d.docker().args(["run", "--rm", "registry.k8s.io/pause:3.9", "echo", "ran"])), "ran\n");
    // The CRI pulls through the same mirrors, and sees what docker pulled.
    run_ok(d.docker().args(["rmi", "gcr.io/tools/bb:1"]));
    let id = run_ok(d.crictl().args(["pull", "gcr.io/tools/bb:1"]));
    assert!(id.contains("sha256:"), "{id}");
    let listed = run_ok(d.crictl().args(["images"]));
    for want in ["registry.k8s.io/pause", "gcr.io/tools/bb", "docker.io/library/busybox"] {
        assert!(listed.contains(want), "{want} not in {listed}");
    }
    // A registry without a mirror is asked directly (and, offline, fails clearly).
    let out = d.crictl().args(["pull", "quay.io/none/such:1"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("quay.io"), "{}", String::from_utf8_lossy(&out.stderr));
}
