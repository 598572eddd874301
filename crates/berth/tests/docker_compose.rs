//! docker-compose (Debian's 1.29, on docker-py) drives a berth daemon unchanged: a
//! project network with service-name DNS, a named volume, foreground `up` with an exit
//! code, `run`, `ps`, `logs`, scale, and `down -v` leaving nothing behind.

use std::path::Path;
use std::process::{Command, Output};

use berth_testutil::daemon::{TestDaemon, run_ok};

const PROJECT: &str = r#"version: "3.8"
services:
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo hello-compose > /www/index.html && httpd -f -p 80 -h /www"]
    labels:
      app: demo
    stop_grace_period: 1s
    volumes:
      - data:/data
  client:
    image: busybox
    depends_on: [web]
    command: ["sh", "-c", "for i in $$(seq 20); do wget -qO- http://web/ && exit 0; sleep 0.5; done; exit 1"]
volumes:
  data:
"#;

fn compose(d: &TestDaemon, dir: &Path, args: &[&str]) -> Output {
    Command::new("/usr/bin/docker-compose")
        .args(["-p", "demo"])
        .args(args)
        .current_dir(dir)
        .env("DOCKER_HOST", d.host())
        // `run` hands the attach to the docker CLI, as it does for users (its in-process
        // path starts the container before attaching and can lose early output).
        .env("PATH", format!("{}:/usr/bin:/bin", berth_testutil::daemon::docker_cli().parent().unwrap().display()))
        .output()
        .expect("docker-compose (scripts/setup.sh --test installs it)")
}

fn ok(out: Output, what: &str, d: &TestDaemon) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "docker-compose {what} failed ({}):\n{text}\n{}", out.status, d.log());
    text
}

#[test]
fn a_compose_project_runs_talks_and_goes() {
    let d = TestDaemon::start(Path::new(env!("CARGO_BIN_EXE_berth")));
    d.busybox_image("busybox:latest");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("docker-compose.yml"), PROJECT).unwrap();

    // Foreground: the client reaches web by its service name; its exit code is ours.
    let out = ok(compose(&d, dir.path(), &["up", "--abort-on-container-exit", "--exit-code-from", "client"]), "up", &d);
    assert!(out.contains("hello-compose"), "{out}");
    assert!(out.contains("demo_client_1 exited with code 0"), "{out}");

    ok(compose(&d, dir.path(), &["up", "-d", "--scale", "web=2", "web"]), "up -d --scale", &d);
    let ps = ok(compose(&d, dir.path(), &["ps", "-q", "web"]), "ps", &d);
    assert_eq!(ps.lines().count(), 2, "{ps}");
    let out = ok(compose(&d, dir.path(), &["run", "--rm", "client"]), "run", &d);
    assert!(out.contains("hello-compose"), "{out}");
    let labels = run_ok(d.docker().args(["inspect", "-f", "{{index .Config.Labels \"app\"}} {{index .Config.Labels \"com.docker.compose.service\"}}", "demo_web_1"]));
    assert_eq!(labels.trim(), "demo web");
    assert!(run_ok(d.docker().args(["volume", "ls", "-q"])).contains("demo_data"));

    ok(compose(&d, dir.path(), &["down", "-v"]), "down", &d);
    assert_eq!(run_ok(d.docker().args(["ps", "-aq"])), "");
    assert!(!run_ok(d.docker().args(["network", "ls", "--format", "{{.Name}}"])).contains("demo_default"));
    assert!(!run_ok(d.docker().args(["volume", "ls", "-q"])).contains("demo_data"));
}
