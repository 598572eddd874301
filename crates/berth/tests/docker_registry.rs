//! Pull and push through the daemon with the real docker CLI, against berth's own
//! registry server and Debian's docker-registry, both on loopback.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_testutil::registry::Registry;
use berth_testutil::daemon::{TestDaemon, run_ok};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures").join(name)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Debian's docker-registry (the distribution registry) on a free loopback port.
fn distribution_registry() -> Registry {
    let dir = berth_testutil::short_tempdir("bdist");
    let addr = format!("127.0.0.1:{}", free_port());
    let cfg = dir.path().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.path().join("storage").display()
        ),
    )
    .unwrap();
    let child = Command::new("/usr/bin/docker-registry").arg("serve").arg(&cfg).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    Registry::adopt(child, addr, dir)
}

fn skopeo_push(archive: &Path, dest: &str) {
    run_ok(Command::new("skopeo").args(["copy", "--dest-tls-verify=false", "-q"]).arg(format!("docker-archive:{}", archive.display())).arg(format!("docker://{dest}")));
}

fn pull_run_push(reg: &Registry) {
    let d = TestDaemon::start(bin());
    let src = format!("{}/fixture/layers:1.0", reg.addr);
    skopeo_push(&fixture("layers-docker-save.tar"), &src);
    let out = run_ok(d.docker().args(["pull", &src]));
    assert!(out.contains("Pull complete") || out.contains("Download complete") || out.contains("Downloaded newer image"), "{out}");
    assert!(out.contains("Digest: sha256:"), "{out}");
    assert_eq!(run_ok(d.docker().args(["run", "--rm", &src])), "hello from a layer\n");
    let id = run_ok(d.docker().args(["inspect", "-f", "{{.Id}}", &src]));
    assert_eq!(id.trim(), "sha256:30757304e8efc7c9255cf6f4a0ce0a77a041082b0ff74ccccf39ed59ca0d3bce");
    let digests = run_ok(d.docker().args(["inspect", "-f", "{{json .RepoDigests}}", &src]));
    assert!(digests.contains("fixture/layers@sha256:"), "{digests}");
    // Pulling again: up to date.
    let out = run_ok(d.docker().args(["pull", &src]));
    assert!(out.contains("Image is up to date"), "{out}");
    // Tag and push under another name; skopeo sees it there.
    let dst = format!("{}/other/copy:2", reg.addr);
    run_ok(d.docker().args(["tag", &src, &dst]));
    let out = run_ok(d.docker().args(["push", &dst]));
    assert!(out.contains("digest: sha256:"), "{out}");
    let inspect = run_ok(Command::new("skopeo").args(["inspect", "--tls-verify=false"]).arg(format!("docker://{dst}")));
    assert!(inspect.contains("\"Digest\""), "{inspect}");
    // A missing image is a clear error.
    let out = d.docker().args(["pull", &format!("{}/no/such:1", reg.addr)]).output().unwrap();
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
}

#[test]
fn pull_run_push_with_berths_registry() {
    pull_run_push(&Registry::berth(bin()));
}

#[test]
fn pull_run_push_with_docker_registry() {
    pull_run_push(&distribution_registry());
}

/// An image that never came from a registry (imported, then committed) pushes: the
/// daemon makes its registry manifest on the way, and another daemon pulls it back
/// and runs it.
#[test]
fn push_local_image_and_pull_it_elsewhere() {
    let reg = distribution_registry();
    let d = TestDaemon::start(bin());
    d.busybox_image("localbox:1");
    run_ok(d.docker().args(["run", "--name", "maker", "localbox:1", "sh", "-c", "echo made here > /made"]));
    run_ok(d.docker().args(["commit", "--change", "CMD [\"cat\", \"/made\"]", "maker", "localbox:2"]));
    let dst = format!("{}/local/box:2", reg.addr);
    run_ok(d.docker().args(["tag", "localbox:2", &dst]));
    let out = run_ok(d.docker().args(["push", &dst]));
    assert!(out.contains("digest: sha256:"), "{out}");
    let digests = run_ok(d.docker().args(["inspect", "-f", "{{json .RepoDigests}}", &dst]));
    assert!(digests.contains("local/box@sha256:"), "{digests}");
    // The berth CLI pushes it again: every layer is already there.
    let out = run_ok(d.berth().args(["push", &dst]));
    assert!(out.contains("already exists") || out.contains("Layer already exists"), "{out}");

    let other = TestDaemon::start(bin());
    run_ok(other.docker().args(["pull", &dst]));
    assert_eq!(run_ok(other.docker().args(["run", "--rm", &dst])), "made here\n");
    let want = run_ok(d.docker().args(["inspect", "-f", "{{.Id}}", &dst]));
    let got = run_ok(other.docker().args(["inspect", "-f", "{{.Id}}", &dst]));
    assert_eq!(want, got, "the image ID (config digest) survives the trip");
}
