//! The Engine API's contract at its edges: errors with Docker's status codes and
//! messages (and nothing changed), versions, out-of-scope endpoints, TLS, ttys.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use berth_testutil::daemon::{TestDaemon, run_ok};

fn daemon() -> TestDaemon {
    let d = TestDaemon::start(Path::new(env!("CARGO_BIN_EXE_berth")));
    d.busybox_image("busybox:latest");
    d
}

/// A raw HTTP/1.1 exchange; returns (status, body).
fn http(d: &TestDaemon, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: berth\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    // Undo chunked encoding when present.
    let body = if text.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        let mut out = String::new();
        let mut rest = body.as_str();
        while let Some((len, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&tail[..n]);
            rest = &tail[n + 2..];
        }
        out
    } else {
        body
    };
    (status, body)
}

fn message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body).ok().and_then(|v| v["message"].as_str().map(str::to_string)).unwrap_or_default()
}

#[test]
fn errors_have_dockers_codes_and_change_nothing() {
    let d = daemon();
    let (st, body) = http(&d, "POST", "/v1.51/containers/create", "{not json");
    assert_eq!(st, 400, "{body}");
    assert!(!message(&body).is_empty());
    let (st, body) = http(&d, "GET", "/v1.51/containers/nosuch/json", "");
    assert_eq!((st, message(&body).as_str()), (404, "No such container: nosuch"));
    let (st, body) = http(&d, "POST", "/containers/create", r#"{"Image":"nosuch:1"}"#);
    assert_eq!((st, message(&body).as_str()), (404, "No such image: nosuch:1"));
    let (st, body) = http(&d, "POST", "/containers/create?name=one", r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"Memory":1024}}"#);
    assert_eq!(st, 400, "{body}");
    assert!(message(&body).contains("Minimum memory limit"), "{body}");
    let (st, body) = http(&d, "POST", "/containers/create?name=one", r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"CapAdd":["NOT_A_CAP"]}}"#);
    assert_eq!(st, 400, "{body}");
    let (st, _) = http(&d, "POST", "/containers/create?name=one", r#"{"Image":"busybox","Cmd":["sleep","100"]}"#);
    assert_eq!(st, 201);
    let (st, body) = http(&d, "POST", "/containers/create?name=one", r#"{"Image":"busybox","Cmd":["true"]}"#);
    assert_eq!(st, 409, "{body}");
    assert!(message(&body).contains("is already in use"), "{body}");
    let (st, body) = http(&d, "POST", "/containers/create?name=bad%20name", r#"{"Image":"busybox","Cmd":["true"]}"#);
    assert_eq!(st, 400, "{body}");
    // Failed creates left nothing behind.
    assert_eq!(run_ok(d.docker().args(["ps", "-aq"])).lines().count(), 1);
    // Wrong states.
    let (st, body) = http(&d, "POST", "/containers/one/unpause", "");
    assert_eq!(st, 409, "{body}");
    assert_eq!(http(&d, "POST", "/containers/one/start", "").0, 204);
    assert_eq!(http(&d, "POST", "/containers/one/start", "").0, 304);
    let (st, body) = http(&d, "DELETE", "/containers/one", "");
    assert_eq!(st, 409, "{body}");
    assert_eq!(http(&d, "POST", "/containers/one/kill", "").0, 204);
    let (st, body) = http(&d, "POST", "/containers/one/kill", "");
    assert_eq!(st, 409, "{body}");
    // A missing executable: docker's 127.
    let out = d.docker().args(["run", "--rm", "busybox", "no-such-binary"]).output().unwrap();
    assert_eq!(out.status.code(), Some(127), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn versions_swarm_and_unsupported_endpoints() {
    let d = daemon();
    let (st, body) = http(&d, "GET", "/v1.99/version", "");
    assert_eq!(st, 400);
    assert!(message(&body).contains("too new"), "{body}");
    let (st, body) = http(&d, "GET", "/v1.12/version", "");
    assert_eq!(st, 400);
    assert!(message(&body).contains("too old"), "{body}");
    let (st, body) = http(&d, "GET", "/v1.41/version", "");
    assert_eq!(st, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ApiVersion"], "1.51");
    for path in ["/swarm", "/nodes", "/services", "/tasks", "/secrets", "/configs", "/v1.51/services/abc"] {
        let (st, body) = http(&d, "GET", path, "");
        assert_eq!(st, 503, "{path}: {body}");
        assert!(message(&body).contains("This node is not a swarm manager"), "{body}");
    }
    let (st, body) = http(&d, "GET", "/images/search?term=x", "");
    assert_eq!(st, 501, "{body}");
    let (st, _) = http(&d, "HEAD", "/_ping", "");
    assert_eq!(st, 200);
    let info = run_ok(d.docker().args(["info", "--format", "{{.Driver}} {{.CgroupVersion}} {{.NCPU}}"]));
    assert!(info.starts_with("overlay2 "), "{info}");
}

#[test]
fn run_it_through_a_pty() {
    let d = daemon();
    // script(1) gives docker a terminal; the container's stty sees its size.
    let cmd = format!(
        "stty cols 91 rows 33; DOCKER_HOST={} DOCKER_CONFIG={} {} run --rm -it busybox sh -c 'stty size; tty; exit 4'",
        d.host(),
        d.dir.join("docker-config").display(),
        berth_testutil::daemon::docker_cli().display()
    );
    let out = std::process::Command::new("script").args(["-qec", &cmd, "/dev/null"]).stdin(Stdio::null()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("33 91"), "{text}");
    assert!(text.contains("/dev/pts/"), "{text}");
    assert_eq!(out.status.code(), Some(4), "{text}");
}

#[test]
fn logs_follow_tail_and_timestamps() {
    let d = daemon();
    run_ok(d.docker().args(["run", "-d", "--name", "talk", "busybox", "sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; sleep 1; echo late; sleep 1"]));
    let out = run_ok(d.docker().args(["logs", "-f", "talk"]));
    assert_eq!(out, "line1\nline2\nline3\nline4\nline5\nlate\n");
    let out = run_ok(d.docker().args(["logs", "--tail", "2", "talk"]));
    assert_eq!(out, "line5\nlate\n");
    let out = run_ok(d.docker().args(["logs", "-t", "--tail", "1", "talk"]));
    assert!(out.ends_with(" late\n") && out.starts_with("20"), "{out}");
}

/// The frames of a logs stream: dockerd's one per record for API clients (docker-py's
/// `logs(stream=True)` yields one item per frame), one per run of a stream for the docker
/// CLI (which copies each frame out with a write of its own); the same bytes either way.
#[test]
fn log_frames_per_record_and_merged_for_the_docker_cli() {
    let d = daemon();
    run_ok(d.docker().args(["run", "--name", "fr", "busybox", "sh", "-c", "echo a; echo b; sleep 0.3; echo c >&2; sleep 0.3; echo d"]));
    let frames = |ua: &str| {
        let (status, _, body) = d.raw_http_with("GET", "/v1.51/containers/fr/logs?stdout=1&stderr=1", &[("User-Agent", ua)], "");
        assert_eq!(status, 200);
        let mut dec = berth_types::stdcopy::Decoder::new();
        dec.push(&body);
        let mut v = vec![];
        while let Some((s, p)) = dec.next_frame().unwrap() {
            v.push((s as u8, String::from_utf8(p).unwrap()));
        }
        assert_eq!(dec.pending(), 0);
        v
    };
    let s = |n: u8, t: &str| (n, t.to_string());
    assert_eq!(frames("python-requests/2.31"), vec![s(1, "a\n"), s(1, "b\n"), s(2, "c\n"), s(1, "d\n")]);
    assert_eq!(frames("Docker-Client/28.2.2 (linux)"), vec![s(1, "a\nb\n"), s(2, "c\n"), s(1, "d\n")]);
    let out = d.docker().args(["logs", "fr"]).output().unwrap();
    assert_eq!((String::from_utf8_lossy(&out.stdout).as_ref(), String::from_utf8_lossy(&out.stderr).as_ref()), ("a\nb\nd\n", "c\n"));
}

fn openssl(args: &[&str], dir: &Path) {
    let st = std::process::Command::new("openssl").args(args).current_dir(dir).stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap();
    assert!(st.success(), "openssl {args:?}");
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as docker's TLS
/// guide makes them.
fn make_certs(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    openssl(&["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "2", "-subj", "/CN=berth-test-ca"], dir);
    openssl(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server-key.pem", "-out", "server.csr", "-subj", "/CN=127.0.0.1"], dir);
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n").unwrap();
    openssl(&["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial", "-out", "server-cert.pem", "-days", "2", "-extfile", "server.ext"], dir);
    openssl(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "client.csr", "-subj", "/CN=client"], dir);
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    openssl(&["x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial", "-out", "cert.pem", "-days", "2", "-extfile", "client.ext"], dir);
}

#[test]
fn tcp_needs_tls_and_a_client_certificate() {
    let certs = berth_testutil::short_tempdir("bcerts");
    make_certs(certs.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let p = |f: &str| certs.path().join(f).display().to_string();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let sock = format!("unix://{}/extra.sock", certs.path().display());
    let d = TestDaemon::start_with(
        Path::new(env!("CARGO_BIN_EXE_berth")),
        &["-H", &tcp, "-H", &sock, "--tlsverify", "--tlscacert", &p("ca.pem"), "--tlscert", &p("server-cert.pem"), "--tlskey", &p("server-key.pem")],
    );
    let docker = || {
        let mut c = std::process::Command::new(berth_testutil::daemon::docker_cli());
        c.env("DOCKER_CONFIG", d.dir.join("docker-config"));
        c
    };
    // With the client certificate: works.
    let out = docker().args(["-H", &tcp, "--tlsverify", "--tlscacert", &p("ca.pem"), "--tlscert", &p("cert.pem"), "--tlskey", &p("key.pem"), "version", "--format", "{{.Server.APIVersion}}"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1.51");
    // Without one (TLS, server verified): refused.
    let out = docker().args(["-H", &tcp, "--tls", "--tlscacert", &p("ca.pem"), "version"]).output().unwrap();
    assert!(!out.status.success());
    // Plain HTTP to the TLS port: refused.
    let out = docker().args(["-H", &tcp, "version"]).output().unwrap();
    assert!(!out.status.success());
    drop(d);
    // Plain TCP is refused at start unless explicitly allowed.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth")).args(["daemon", "-H", &tcp, "--data-root", "/nonexistent-never-created"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to serve the API on plain TCP"));
    assert!(!Path::new("/nonexistent-never-created").exists());
}

#[test]
fn healthcheck_limits_and_oom() {
    let d = daemon();
    run_ok(d.docker().args([
        "run", "-d", "--name", "hc", "--health-cmd", "test -f /tmp/ok", "--health-interval", "200ms", "--health-retries", "2",
        "busybox", "sh", "-c", "sleep 1; touch /tmp/ok; sleep 300",
    ]));
    let mut last = String::new();
    for _ in 0..100 {
        last = run_ok(d.docker().args(["inspect", "-f", "{{.State.Health.Status}}", "hc"]));
        if last.trim() == "healthy" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(last.trim(), "healthy");
    run_ok(d.docker().args(["exec", "hc", "rm", "/tmp/ok"]));
    for _ in 0..100 {
        last = run_ok(d.docker().args(["inspect", "-f", "{{.State.Health.Status}} {{.State.Health.FailingStreak}}", "hc"]));
        if last.starts_with("unhealthy") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(last.starts_with("unhealthy"), "{last}");
    // Limits reach the container's cgroup.
    run_ok(d.docker().args(["run", "-d", "--name", "lim", "--memory", "64m", "--pids-limit", "20", "--cpus", "0.5", "busybox", "sleep", "300"]));
    let id = run_ok(d.docker().args(["inspect", "-f", "{{.Id}}", "lim"]));
    let cg = format!("{}/{}", berth_testutil::daemon::cgroup_parent(d.slot), id.trim());
    let read = |f: &str| std::fs::read_to_string(format!("/sys/fs/cgroup/{f}")).unwrap_or_default();
    assert_eq!(read(&format!("memory{cg}/memory.limit_in_bytes")).trim(), "67108864");
    assert_eq!(read(&format!("pids{cg}/pids.max")).trim(), "20");
    assert_eq!(read(&format!("cpu{cg}/cpu.cfs_quota_us")).trim(), "50000");
    run_ok(d.docker().args(["update", "--memory", "96m", "--memory-swap", "192m", "lim"]));
    assert_eq!(read(&format!("memory{cg}/memory.limit_in_bytes")).trim(), "100663296");
    // Allocating past the limit: OOM-killed, and reported as such.
    let out = d.docker().args(["run", "--name", "oom", "--memory", "16m", "--memory-swap", "16m", "busybox", "sh", "-c", "dd if=/dev/zero of=/dev/shm/big bs=1M count=64"]).output().unwrap();
    assert_eq!(out.status.code(), Some(137), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(run_ok(d.docker().args(["inspect", "-f", "{{.State.OOMKilled}}", "oom"])).trim(), "true");
}

/// `--device` with an access mode, `--device-cgroup-rule`, the host's devices under
/// `--privileged`, and Docker's error for a device that is not there.
#[test]
fn devices_and_device_cgroup_rules() {
    let d = daemon();
    // /dev/null is in Docker's default allow list (rwm whatever the mode); a device
    // outside it gets exactly the access asked for.
    let out = run_ok(d.docker().args(["run", "--rm", "--device", "/dev/null:/dev/mynull:r", "busybox", "ls", "-l", "/dev/mynull"]));
    assert!(out.contains("1,   3"), "{out}");
    if Path::new("/dev/loop-control").exists() {
        let probe = "(exec 3</dev/lc) 2>/dev/null && echo read-ok; (exec 3>/dev/lc) 2>/dev/null && echo write-ok || echo write-refused";
        let out = run_ok(d.docker().args(["run", "--rm", "--device", "/dev/loop-control:/dev/lc:r", "busybox", "sh", "-c", probe]));
        assert_eq!(out, "read-ok\nwrite-refused\n");
        let out = run_ok(d.docker().args(["run", "--rm", "--device", "/dev/loop-control:/dev/lc", "busybox", "sh", "-c", probe]));
        assert_eq!(out, "read-ok\nwrite-ok\n");
    }

    // The default rules let a node be made (m) but not opened; a rule opens it.
    if Path::new("/dev/loop-control").exists() {
        let open = "mknod /tmp/lc c 10 237 && (exec 3</tmp/lc) 2>/dev/null && echo opened || echo refused";
        assert_eq!(run_ok(d.docker().args(["run", "--rm", "busybox", "sh", "-c", open])), "refused\n");
        let out = run_ok(d.docker().args(["run", "--rm", "--device-cgroup-rule", "c 10:237 rw", "busybox", "sh", "-c", open]));
        assert_eq!(out, "opened\n");
    }
    let out = run_ok(d.docker().args(["run", "--rm", "--privileged", "busybox", "sh", "-c", "test -c /dev/full && ls /dev | wc -l"]));
    let host_devices = std::fs::read_dir("/dev").unwrap().count();
    assert!(out.trim().parse::<usize>().unwrap() > 12.min(host_devices), "{out}");

    // (The docker CLI turns any start error saying "no such file or directory" into 127.)
    let out = d.docker().args(["run", "--rm", "--device", "/dev/no-such-device", "busybox", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(127));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error gathering device information while adding custom device \"/dev/no-such-device\": no such file or directory"), "{err}");
    // (The docker CLI checks rules itself; the API answers for other clients.)
    let before = run_ok(d.docker().args(["ps", "-aq"]));
    let body = r#"{"Image": "busybox", "Cmd": ["true"], "HostConfig": {"DeviceCgroupRules": ["c 1:3 rx"]}}"#;
    let (status, out) = http(&d, "POST", "/v1.51/containers/create", body);
    assert_eq!((status, message(&out).as_str()), (400, "invalid device cgroup rule format: 'c 1:3 rx'"));
    let body = r#"{"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/n", "CgroupPermissions": "rwx"}]}}"#;
    let (status, out) = http(&d, "POST", "/v1.51/containers/create", body);
    assert_eq!((status, message(&out).as_str()), (400, "invalid device mode: rwx"));
    assert_eq!(run_ok(d.docker().args(["ps", "-aq"])), before, "nothing created");
}

/// The Docker SDK for Python (Debian's python3-docker) drives a berth daemon through
/// the calls scripts make: run, exec, logs, stats, networks, volumes, typed errors,
/// events. The script asserts each answer.
#[test]
fn docker_py_works_unchanged() {
    let d = daemon();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/docker_py.py");
    let out = std::process::Command::new("/usr/bin/python3").arg(&script).arg(d.host()).output().expect("python3 (scripts/setup.sh --test installs python3-docker)");
    assert!(
        out.status.success(),
        "docker-py failed:\n{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "docker-py ok\n");
}
