//! The Kubernetes CRI through the real crictl (cri-tools v1.36) against berth's CRI
//! socket, while the same daemon serves the docker CLI: a pod of two containers sharing
//! localhost, IPC and /dev/shm; exec (plain, -i, -it); logs (-f) in the CRI format;
//! port-forward and a host port; stats; inspect; stopp/rmp leaving nothing behind.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_testutil::daemon::{TestDaemon, run_ok};

fn daemon() -> TestDaemon {
    let d = TestDaemon::start_cri(Path::new(env!("CARGO_BIN_EXE_berth")), &[]);
    d.busybox_image("busybox:latest");
    d
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn write(d: &TestDaemon, name: &str, json: serde_json::Value) -> String {
    let p = d.dir.join(name);
    std::fs::write(&p, json.to_string()).unwrap();
    p.display().to_string()
}

/// Retries `f` for up to 20 s until it returns Some.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn http_get(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.contains("200").then_some(out)
}

/// What a pod leaves on the host: network namespaces and veths of the daemon, mounts
/// under its directories, cgroups under its parent, and processes (shims, pause, apps).
fn leftovers(d: &TestDaemon) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d.exec_root.join("netns")).into_iter().flatten().flatten() {
        out.push(format!("netns {}", e.path().display()));
    }
    for e in std::fs::read_dir(d.exec_root.join("userns")).into_iter().flatten().flatten() {
        out.push(format!("userns {}", e.path().display()));
    }
    for point in berth_testutil::daemon::container_mounts_under(&d.dir) {
        out.push(format!("mount {point}"));
    }
    let parent = berth_testutil::daemon::cgroup_parent(d.slot);
    for h in ["memory", "pids", "cpu,cpuacct", "freezer"] {
        let base = Path::new("/sys/fs/cgroup").join(h).join(parent.trim_start_matches('/'));
        for e in std::fs::read_dir(&base).into_iter().flatten().flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                out.push(format!("cgroup {}", e.path().display()));
            }
        }
    }
    let bridge = berth_testutil::daemon::bridge_name(d.slot);
    let links = String::from_utf8_lossy(&Command::new("ip").args(["-o", "link", "show", "master", &bridge]).output().unwrap().stdout).into_owned();
    for l in links.lines() {
        out.push(format!("veth {l}"));
    }
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(&format!("{}/containers", d.exec_root.display())) {
            out.push(format!("process {pid} {cmd}"));
        }
    }
    out
}

#[test]
fn a_pod_of_two_containers_through_crictl_beside_docker() {
    let d = daemon();
    let host_port = free_port();
    let logs = d.dir.join("pod-logs");
    let pod = write(
        &d,
        "pod.json",
        serde_json::json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "uid-web", "attempt": 0},
            "hostname": "webpod",
            "log_directory": logs,
            "port_mappings": [{"container_port": 8080, "host_port": host_port}],
            "labels": {"app": "web"},
            "annotations": {"note": "kept as is"},
            "linux": {"security_context": {"namespace_options": {"pid": 0}}}
        }),
    );
    let server = write(
        &d,
        "server.json",
        serde_json::json!({
            "metadata": {"name": "server"},
            "image": {"image": "busybox:latest"},
            "command": ["sh", "-c", "mkdir -p /www && echo hello-from-pod > /www/index.html && echo in-shm > /dev/shm/mark && echo started && exec httpd -f -p 8080 -h /www"],
            "log_path": "server.log",
            "labels": {"role": "server"}
        }),
    );
    let client = write(
        &d,
        "client.json",
        serde_json::json!({
            "metadata": {"name": "client"},
            "image": {"image": "busybox:latest"},
            "command": ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done"],
            "log_path": "client.log",
            "stdin": true
        }),
    );
    let pod_id = run_ok(d.crictl().args(["runp", &pod])).trim().to_string();
    assert_eq!(pod_id.len(), 64, "{pod_id}");
    let srv = run_ok(d.crictl().args(["create", &pod_id, &server, &pod])).trim().to_string();
    let cli = run_ok(d.crictl().args(["create", &pod_id, &client, &pod])).trim().to_string();
    run_ok(d.crictl().args(["start", &srv]));
    run_ok(d.crictl().args(["start", &cli]));

    // The same daemon answers docker meanwhile: it sees the pod's containers, and runs its own.
    let names = run_ok(d.docker().args(["ps", "--format", "{{.Names}}"]));
    for n in ["k8s_POD_web_default_uid-web_0", "k8s_server_web_default_uid-web_0", "k8s_client_web_default_uid-web_0"] {
        assert!(names.contains(n), "{names}");
    }
    assert_eq!(run_ok(d.docker().args(["run", "--rm", "busybox", "echo", "docker-too"])), "docker-too\n");

    // One network (localhost), one IPC namespace, one /dev/shm, one hostname.
    let page = eventually("the server on the pod's localhost", || {
        let out = d.crictl().args(["exec", &cli, "wget", "-qO-", "http://127.0.0.1:8080/"]).output().unwrap();
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    assert_eq!(page, "hello-from-pod\n");
    let ipc = |c: &str| run_ok(d.crictl().args(["exec", c, "readlink", "/proc/self/ns/ipc"]));
    assert_eq!(ipc(&srv), ipc(&cli));
    assert_eq!(run_ok(d.crictl().args(["exec", &cli, "cat", "/dev/shm/mark"])), "in-shm\n");
    assert_eq!(run_ok(d.crictl().args(["exec", &cli, "hostname"])), "webpod\n");
    // PID namespace of the pod: the pause process is PID 1 and both containers are there.
    let ps = run_ok(d.crictl().args(["exec", &cli, "ps", "-o", "pid,comm"]));
    assert!(ps.contains("httpd") && ps.lines().any(|l| l.trim().starts_with("1 ")), "{ps}");

    // exec: exit codes, stdin, and a terminal.
    let st = d.crictl().args(["exec", &cli, "sh", "-c", "echo out; echo err >&2; exit 3"]).output().unwrap();
    assert!(!st.status.success());
    assert_eq!(String::from_utf8_lossy(&st.stdout), "out\n");
    assert!(String::from_utf8_lossy(&st.stderr).contains("exit code 3"), "{}", String::from_utf8_lossy(&st.stderr));
    let mut child = d.crictl().args(["exec", "-i", &cli, "cat"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"through stdin\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through stdin\n");
    let mut tty = berth_testutil::pty::Pty::spawn({
        let mut c = d.crictl();
        c.args(["exec", "-it", &cli, "sh"]);
        c
    }, 24, 80);
    tty.type_keys(b"tty && stty size && exit 4\r");
    assert!(tty.wait_output("/dev/pts/"), "{}", tty.text());
    assert!(tty.wait_output("24 80"), "{}", tty.text());
    assert_ne!(tty.wait_exit(), 0);

    // Logs: the CRI format on disk, and crictl logs / logs -f reading it.
    let raw = std::fs::read_to_string(logs.join("server.log")).unwrap();
    let first = raw.lines().next().unwrap();
    let f: Vec<&str> = first.splitn(4, ' ').collect();
    assert!(chrono::DateTime::parse_from_rfc3339(f[0]).is_ok() && f[1] == "stdout" && f[2] == "F" && f[3] == "started", "{first}");
    let ticks = eventually("client ticks in the log", || {
        let out = run_ok(d.crictl().args(["logs", "--tail", "2", &cli]));
        (out.lines().count() == 2).then_some(out)
    });
    assert!(ticks.starts_with("tick "), "{ticks}");
    let mut follow = d.crictl().args(["logs", "-f", &cli]).stdout(Stdio::piped()).spawn().unwrap();
    let mut seen = String::new();
    {
        use std::io::BufRead;
        let mut rd = std::io::BufReader::new(follow.stdout.take().unwrap());
        let start = Instant::now();
        let mut line = String::new();
        while start.elapsed() < Duration::from_secs(10) && !seen.contains("tick 3") {
            line.clear();
            if rd.read_line(&mut line).unwrap() == 0 {
                break;
            }
            seen.push_str(&line);
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(seen.contains("tick 3"), "logs -f: {seen}");

    // The host port, and port-forward into the pod's own loopback.
    assert!(eventually("the host port", || http_get(host_port)).contains("hello-from-pod"));
    let fwd = free_port();
    let mut pf = d.crictl().args(["port-forward", &pod_id, &format!("{fwd}:8080")]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let page = eventually("port-forward", || http_get(fwd));
    let _ = pf.kill();
    let _ = pf.wait();
    assert!(page.contains("hello-from-pod"), "{page}");

    // Stats, status and inspect.
    let stats: serde_json::Value = serde_json::from_str(&run_ok(d.crictl().args(["stats", "-o", "json", &srv]))).unwrap();
    let mem = stats["stats"][0]["memory"]["workingSetBytes"]["value"].as_str().map(|s| s.parse::<u64>().unwrap()).unwrap_or(0);
    assert!(mem > 0, "{stats}");
    let podstats = run_ok(d.crictl().args(["statsp", "-o", "json", &pod_id]));
    assert!(podstats.contains("\"containers\""), "{podstats}");
    let inspp: serde_json::Value = serde_json::from_str(&run_ok(d.crictl().args(["inspectp", &pod_id]))).unwrap();
    assert_eq!(inspp["status"]["state"], "SANDBOX_READY");
    assert_eq!(inspp["status"]["labels"]["app"], "web");
    assert_eq!(inspp["status"]["annotations"]["note"], "kept as is");
    assert!(inspp["status"]["network"]["ip"].as_str().is_some_and(|ip| ip.starts_with("172.29.")), "{inspp}");
    let insp: serde_json::Value = serde_json::from_str(&run_ok(d.crictl().args(["inspect", &srv]))).unwrap();
    assert_eq!(insp["status"]["state"], "CONTAINER_RUNNING");
    assert_eq!(insp["status"]["labels"]["role"], "server");
    assert!(insp["status"]["logPath"].as_str().unwrap().ends_with("server.log"));
    let listed = run_ok(d.crictl().args(["ps", "--pod", &pod_id, "-q"]));
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert_eq!(run_ok(d.crictl().args(["pods", "--label", "app=web", "-q"])).trim(), pod_id);

    // Stop and remove: everything the pod had is gone, and docker sees it gone too.
    run_ok(d.crictl().args(["stopp", &pod_id]));
    let insp: serde_json::Value = serde_json::from_str(&run_ok(d.crictl().args(["inspect", &srv]))).unwrap();
    assert_eq!(insp["status"]["state"], "CONTAINER_EXITED");
    assert_eq!(run_ok(d.crictl().args(["pods", "-q", "--state", "notready"])).trim(), pod_id);
    run_ok(d.crictl().args(["rmp", &pod_id]));
    assert_eq!(run_ok(d.crictl().args(["pods", "-q"])).trim(), "");
    assert_eq!(run_ok(d.crictl().args(["ps", "-a", "-q"])).trim(), "");
    assert_eq!(run_ok(d.docker().args(["ps", "-a", "-q"])).trim(), "");
    let left = eventually("a clean host", || {
        let l = leftovers(&d);
        l.is_empty().then_some(l)
    });
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn crictl_images_share_the_docker_image_store() {
    let d = daemon();
    let images = run_ok(d.crictl().args(["images"]));
    assert!(images.contains("docker.io/library/busybox") && images.contains("latest"), "{images}");
    // Tagged through docker, seen through the CRI with its full name, and removed there.
    run_ok(d.docker().args(["tag", "busybox:latest", "example.org/tools/bb:1"]));
    let st: serde_json::Value = serde_json::from_str(&run_ok(d.crictl().args(["inspecti", "example.org/tools/bb:1"]))).unwrap();
    let tags: Vec<String> = serde_json::from_value(st["status"]["repoTags"].clone()).unwrap();
    assert!(tags.contains(&"example.org/tools/bb:1".to_string()) && tags.contains(&"docker.io/library/busybox:latest".to_string()), "{tags:?}");
    assert_eq!(st["status"]["uid"]["value"], "0");
    let fs = run_ok(d.crictl().args(["imagefsinfo"]));
    assert!(fs.contains("usedBytes"), "{fs}");
    // rmi removes the image with all its names: docker no longer has it either.
    run_ok(d.crictl().args(["rmi", "example.org/tools/bb:1"]));
    let out = d.docker().args(["image", "inspect", "busybox:latest"]).output().unwrap();
    assert!(!out.status.success(), "rmi should remove every name of the image");
    // A missing image is no error for rmi's CRI call, but crictl says it found nothing.
    let out = d.crictl().args(["inspecti", "busybox:latest"]).output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn bad_requests_get_clear_errors_and_leave_nothing() {
    let d = daemon();
    // A sysctl a pod may not set: InvalidArgument, and no sandbox made.
    let bad = write(
        &d,
        "bad.json",
        serde_json::json!({"metadata": {"name": "x", "namespace": "default", "uid": "u0"}, "linux": {"sysctls": {"kernel.panic": "1"}}}),
    );
    let out = d.crictl().args(["runp", &bad]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("InvalidArgument") && err.contains("kernel.panic"), "{err}");
    assert_eq!(run_ok(d.crictl().args(["pods", "-q"])).trim(), "");
    assert_eq!(run_ok(d.docker().args(["ps", "-aq"])).trim(), "");
    // User namespaces with two mappings: refused before anything exists.
    let userns = write(
        &d,
        "userns.json",
        serde_json::json!({
            "metadata": {"name": "u", "namespace": "default", "uid": "u1"},
            "linux": {"security_context": {"namespace_options": {"userns_options": {"mode": 0,
                "uids": [{"host_id": 100000, "container_id": 0, "length": 65536}, {"host_id": 200000, "container_id": 65536, "length": 1}],
                "gids": [{"host_id": 100000, "container_id": 0, "length": 65536}]}}}}
        }),
    );
    let out = d.crictl().args(["runp", &userns]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("exactly one uid and one gid mapping"), "{}", String::from_utf8_lossy(&out.stderr));
    // ... one that leaves root unmapped, and the modes a pod cannot have.
    let map = |c: u32| serde_json::json!([{"host_id": 100000, "container_id": c, "length": 65536}]);
    for (i, (opts, msg)) in [
        (serde_json::json!({"mode": 0, "uids": map(1), "gids": map(1)}), "must map container ID 0"),
        (serde_json::json!({"mode": 1}), "mode CONTAINER is not supported"),
        (serde_json::json!({"mode": 3}), "mode TARGET is not supported"),
    ]
    .into_iter()
    .enumerate()
    {
        let f = write(&d, &format!("userns{i}.json"), serde_json::json!({"metadata": {"name": "u", "namespace": "default", "uid": "u1"}, "linux": {"security_context": {"namespace_options": {"userns_options": opts}}}}));
        let out = d.crictl().args(["runp", &f]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("InvalidArgument") && err.contains(msg), "{msg}: {err}");
    }
    // A good pod, then containers that cannot be: no image, a group without a user,
    // a privileged container in an unprivileged pod.
    let pod = write(&d, "pod.json", serde_json::json!({"metadata": {"name": "p", "namespace": "default", "uid": "u2"}}));
    let pod_id = run_ok(d.crictl().args(["runp", &pod])).trim().to_string();
    let cases = [
        (serde_json::json!({"metadata": {"name": "a"}, "image": {"image": "no/such:image"}}), "not present"),
        (serde_json::json!({"metadata": {"name": "b"}, "image": {"image": "busybox:latest"}, "linux": {"security_context": {"run_as_group": {"value": 5}}}}), "run_as_group"),
        (serde_json::json!({"metadata": {"name": "c"}, "image": {"image": "busybox:latest"}, "linux": {"security_context": {"privileged": true}}}), "privileged"),
    ];
    for (i, (cfg, msg)) in cases.into_iter().enumerate() {
        let c = write(&d, &format!("c{i}.json"), cfg);
        let out = d.crictl().args(["create", &pod_id, &c, &pod]).output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(msg), "{msg}: {err}");
    }
    assert_eq!(run_ok(d.crictl().args(["ps", "-a", "-q"])).trim(), "");
    // Stopping and removing what does not exist is fine (the kubelet retries).
    run_ok(d.crictl().args(["stopp", &pod_id]));
    run_ok(d.crictl().args(["rmp", &pod_id]));
    let left = eventually("a clean host", || {
        let l = leftovers(&d);
        l.is_empty().then_some(l)
    });
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn events_updates_and_what_berth_refuses() {
    let d = daemon();
    let pod = write(&d, "pod.json", serde_json::json!({"metadata": {"name": "ev", "namespace": "default", "uid": "ev-1"}, "log_directory": d.dir.join("logs")}));
    let ctr = write(
        &d,
        "ctr.json",
        serde_json::json!({"metadata": {"name": "c"}, "image": {"image": "busybox:latest"}, "command": ["sh", "-c", "echo to-docker-logs; sleep 300"], "log_path": "c.log"}),
    );
    // GetContainerEvents: a stream of what happens to CRI containers from now on.
    let mut events = d.crictl().args(["events", "-o", "json"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let pod_id = run_ok(d.crictl().args(["runp", &pod])).trim().to_string();
    let c = run_ok(d.crictl().args(["create", &pod_id, &ctr, &pod])).trim().to_string();
    run_ok(d.crictl().args(["start", &c]));
    run_ok(d.crictl().args(["stop", "-t", "0", &c]));
    let mut text = String::new();
    {
        use std::io::Read;
        let mut out = events.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && !text.contains("CONTAINER_STOPPED_EVENT") {
            if let Ok(b) = rx.recv_timeout(Duration::from_millis(200)) {
                text.push_str(&String::from_utf8_lossy(&b));
            }
        }
    }
    let _ = events.kill();
    let _ = events.wait();
    for ev in ["CONTAINER_CREATED_EVENT", "CONTAINER_STARTED_EVENT", "CONTAINER_STOPPED_EVENT"] {
        assert!(text.contains(ev), "{ev} missing in {text}");
    }
    assert!(text.contains(&c) && text.contains(&pod_id), "{text}");

    // docker logs reads the CRI-format log of a CRI container.
    assert_eq!(run_ok(d.docker().args(["logs", "k8s_c_ev_default_ev-1_0"])), "to-docker-logs\n");

    // UpdateContainerResources on a running container lands in its cgroup.
    let running = {
        let cfg = write(
            &d,
            "ctr2.json",
            serde_json::json!({"metadata": {"name": "c2"}, "image": {"image": "busybox:latest"}, "command": ["sleep", "300"], "log_path": "c2.log"}),
        );
        let id = run_ok(d.crictl().args(["create", &pod_id, &cfg, &pod])).trim().to_string();
        run_ok(d.crictl().args(["start", &id]));
        id
    };
    run_ok(d.crictl().args(["update", "--memory", "67108864", &running]));
    let st: serde_json::Value = serde_json::from_str(&run_ok(d.crictl().args(["inspect", &running]))).unwrap();
    assert_eq!(st["status"]["resources"]["linux"]["memoryLimitInBytes"], "67108864", "{st}");
    let limit = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/memory/{}/{running}/memory.limit_in_bytes",
        berth_testutil::daemon::cgroup_parent(d.slot).trim_start_matches('/')
    ))
    .unwrap();
    assert_eq!(limit.trim(), "67108864");

    // attach to a shell with a terminal: keys in, its output back, and its exit.
    let sh = {
        let cfg = write(
            &d,
            "sh.json",
            serde_json::json!({"metadata": {"name": "sh"}, "image": {"image": "busybox:latest"}, "command": ["sh"], "stdin": true, "tty": true, "log_path": "sh.log"}),
        );
        let id = run_ok(d.crictl().args(["create", &pod_id, &cfg, &pod])).trim().to_string();
        run_ok(d.crictl().args(["start", &id]));
        id
    };
    let mut tty = berth_testutil::pty::Pty::spawn({
        let mut c = d.crictl();
        c.args(["attach", "--stdin", "--tty", &sh]);
        c
    }, 24, 80);
    std::thread::sleep(Duration::from_millis(500));
    tty.type_keys(b"echo attached-$((6*7)); exit\r");
    assert!(tty.wait_output("attached-42"), "{}", tty.text());
    tty.wait_exit();
    let st: serde_json::Value = serde_json::from_str(&run_ok(d.crictl().args(["inspect", &sh]))).unwrap();
    assert_eq!(st["status"]["state"], "CONTAINER_EXITED");

    // What berth does not do is said plainly.
    let out = d.crictl().args(["checkpoint", "--export", "/tmp/x.tar", &running]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not supported"), "{}", String::from_utf8_lossy(&out.stderr));
    let rc = run_ok(d.crictl().args(["runtime-config"]));
    assert!(rc.contains("cgroupfs") || rc.contains("CGROUPFS"), "{rc}");
    run_ok(d.crictl().args(["rmp", "-f", &pod_id]));
}

#[test]
fn a_pod_in_a_user_namespace_owns_its_files_network_and_survives_a_daemon_kill() {
    let mut d = daemon();
    let logs = d.dir.join("pod-logs");
    let vol = d.dir.join("vol");
    std::fs::create_dir_all(&vol).unwrap();
    std::fs::write(vol.join("host-file"), "from the host\n").unwrap();
    let userns = serde_json::json!({"mode": 0,
        "uids": [{"container_id": 0, "host_id": 200000, "length": 65536}],
        "gids": [{"container_id": 0, "host_id": 200000, "length": 65536}]});
    let pod = write(
        &d,
        "pod.json",
        serde_json::json!({
            "metadata": {"name": "userns", "namespace": "default", "uid": "uid-userns", "attempt": 0},
            "hostname": "inside",
            "log_directory": logs,
            "linux": {"security_context": {"namespace_options": {"userns_options": userns}}}
        }),
    );
    let ctr = write(
        &d,
        "ctr.json",
        serde_json::json!({
            "metadata": {"name": "app"},
            "image": {"image": "busybox:latest"},
            "command": ["sh", "-c", "cat /proc/self/uid_map; echo id=$(id -u); echo bin=$(stat -c %u /bin/busybox); touch /made && echo made=$(stat -c %u /made); ip -o -4 addr show eth0 | grep -q inet && echo has-eth0; echo vol=$(stat -c %u /data/host-file); echo more >> /data/host-file && echo vol-written; echo 10.9.8.7 extra >> /etc/hosts && echo hosts-written; echo ready; sleep 3600"],
            "log_path": "app.log",
            "mounts": [{"container_path": "/data", "host_path": vol}],
            "linux": {"security_context": {"namespace_options": {"userns_options": userns}}}
        }),
    );
    let pod_id = run_ok(d.crictl().args(["runp", &pod])).trim().to_string();
    let cid = run_ok(d.crictl().args(["create", &pod_id, &ctr, &pod])).trim().to_string();
    run_ok(d.crictl().args(["start", &cid]));
    let log = eventually("the container's report", || std::fs::read_to_string(logs.join("app.log")).ok().filter(|l| l.contains("ready")));
    // A host directory (root's, 0755) is the pod root's inside: id-mapped, as the image.
    assert!(log.contains("vol=0") && log.contains("vol-written") && log.contains("hosts-written"), "{log}");
    assert_eq!(std::fs::read_to_string(vol.join("host-file")).unwrap(), "from the host\nmore\n");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(vol.join("host-file")).unwrap()), 0);
    // Inside: root of its own namespace, mapped to 200000; the image's files are root's
    // (id-mapped layers), and so is what it writes; its network namespace works.
    assert!(log.contains(" 0     200000      65536"), "{log}");
    for want in ["id=0", "bin=0", "made=0", "has-eth0"] {
        assert!(log.contains(want), "{want}: {log}");
    }
    // Outside: the process and what it wrote belong to 200000.
    let inspect: serde_json::Value = serde_json::from_str(&run_ok(d.crictl().args(["inspect", &cid]))).unwrap();
    let pid = inspect["info"]["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.lines().any(|l| l.starts_with("Uid:") && l.contains("200000")), "{status}");
    let made = walk_find(&d.data_root, "made").expect("the written file in the container's layer");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&made).unwrap()), 200000);
    // exec enters the same namespace.
    assert_eq!(run_ok(d.crictl().args(["exec", &cid, "id", "-u"])).trim(), "0");
    // The daemon killed outright and back: the pod runs on and is still reachable.
    d.restart();
    eventually("the CRI socket after the restart", || d.crictl().args(["pods", "-q"]).output().ok().filter(|o| o.status.success()));
    assert_eq!(run_ok(d.crictl().args(["exec", &cid, "cat", "/proc/self/uid_map"])).split_whitespace().collect::<Vec<_>>(), ["0", "200000", "65536"]);
    let ps = run_ok(d.crictl().args(["ps", "-q", "--state", "running"]));
    assert!(ps.contains(&cid[..13]), "{ps}");
    run_ok(d.crictl().args(["stopp", &pod_id]));
    run_ok(d.crictl().args(["rmp", &pod_id]));
    let left = eventually("a clean host", || {
        let l = leftovers(&d);
        l.is_empty().then_some(l)
    });
    assert!(left.is_empty(), "{left:?}");
}

/// The first file named `name` under `dir`.
fn walk_find(dir: &Path, name: &str) -> Option<std::path::PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        let ft = e.file_type().ok()?;
        if ft.is_dir() && !ft.is_symlink() {
            if let Some(f) = walk_find(&p, name) {
                return Some(f);
            }
        } else if e.file_name() == name && p.to_string_lossy().contains("/upper/") {
            return Some(p);
        }
    }
    None
}

/// Calls whose deadline passes mid-way (as a kubelet's runtime request timeout): the
/// caller gets its error, the pod and the container are made and started all the same
/// (the next call sees them whole), and stopping and removing them leaves nothing.
/// Before, the call's future was dropped at the deadline, between two steps of the start.
/// (A gRPC client of its own: on a connection already made, a 2 ms deadline is sure to
/// reach the server and pass during the call.)
#[test]
fn changes_whose_deadline_passes_still_finish_whole() {
    use berth_cri::api::runtime_service_client::RuntimeServiceClient;
    use berth_cri::api::*;
    let d = daemon();
    let socket = d.cri_socket();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut client = rt.block_on(async {
        let channel = tonic::transport::Endpoint::try_from("http://[::]:50051")
            .unwrap()
            .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                let socket = socket.clone();
                async move { tokio::net::UnixStream::connect(socket).await.map(hyper_util::rt::TokioIo::new) }
            }))
            .await
            .unwrap();
        let mut c = RuntimeServiceClient::new(channel);
        c.version(VersionRequest::default()).await.unwrap();
        c
    });
    fn hurried<T>(message: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        r.set_timeout(Duration::from_millis(2));
        r
    }
    let config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata { name: "late".into(), namespace: "default".into(), uid: "uid-late".into(), attempt: 0 }),
        ..Default::default()
    };
    let r = rt.block_on(client.run_pod_sandbox(hurried(RunPodSandboxRequest { config: Some(config), ..Default::default() })));
    assert!(r.is_err(), "RunPodSandbox finished within 2 ms");
    let pod_id = eventually("the pod to be ready", || {
        let id = run_ok(d.crictl().args(["pods", "-q", "--state", "ready", "--name", "late"])).trim().to_string();
        (!id.is_empty()).then_some(id)
    });
    let pod = write(&d, "pod.json", serde_json::json!({"metadata": {"name": "late", "namespace": "default", "uid": "uid-late"}}));
    let ctr = write(&d, "ctr.json", serde_json::json!({"metadata": {"name": "c"}, "image": {"image": "busybox:latest"}, "command": ["sleep", "300"]}));
    let cid = run_ok(d.crictl().args(["create", &pod_id, &ctr, &pod])).trim().to_string();
    let r = rt.block_on(client.start_container(hurried(StartContainerRequest { container_id: cid.clone() })));
    assert!(r.is_err(), "StartContainer finished within 2 ms");
    eventually("the container to run", || (run_ok(d.crictl().args(["inspect", "-o", "go-template", "--template", "{{.status.state}}", &cid])).trim() == "CONTAINER_RUNNING").then_some(()));
    assert_eq!(run_ok(d.crictl().args(["exec", &cid, "echo", "whole"])).trim(), "whole");
    run_ok(d.crictl().args(["stopp", &pod_id]));
    run_ok(d.crictl().args(["rmp", &pod_id]));
    eventually("nothing left", || leftovers(&d).is_empty().then_some(()));
}
