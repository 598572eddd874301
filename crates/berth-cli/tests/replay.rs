//! The client against a mock daemon that answers with the exact bytes dockerd sent
//! in the recorded traces: same requests in the same order as the docker CLI, and the
//! same output the user saw.

mod common;

use common::{replay, run_cli, trace_lines, user_saw};

/// Runs `args` against the trace's replayed daemon and checks the requests match the
/// docker CLI's, call for call. Returns (code, stdout, stderr).
fn check_trace(trace: &str, args: &[&str]) -> (i32, String, String) {
    let mock = replay(trace);
    let mut full = vec!["-H", mock.host.as_str()];
    full.extend_from_slice(args);
    let (code, out, err) = run_cli(&full, &[]);
    assert_eq!(mock.request_lines(), trace_lines(trace), "requests for {trace} (stderr: {err})");
    (code, out, err)
}

#[test]
fn run_foreground() {
    let (code, out, err) = check_trace("run-foreground.txt", &["run", "--rm", "busybox:latest", "echo", "hello"]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "hello\n", ""));
}

#[test]
fn run_attach_is_a_hijack() {
    let mock = replay("run-foreground.txt");
    let (code, _, _) = run_cli(&["-H", &mock.host, "run", "--rm", "busybox:latest", "echo", "hello"], &[]);
    assert_eq!(code, 0);
    let reqs = mock.requests();
    let attach = reqs.iter().find(|r| r.uri.contains("/attach")).unwrap();
    assert_eq!(attach.header("Upgrade"), Some("tcp"));
    assert_eq!(attach.header("Connection"), Some("Upgrade"));
    // The create body carries what the docker CLI put in it.
    let create = reqs.iter().find(|r| r.uri.contains("/containers/create")).unwrap();
    let body: serde_json::Value = serde_json::from_slice(&create.body).unwrap();
    assert_eq!(body["Cmd"], serde_json::json!(["echo", "hello"]));
    assert_eq!(body["HostConfig"]["AutoRemove"], true);
    assert_eq!(body["AttachStdout"], true);
}

#[test]
fn run_detached_prints_the_id() {
    let (code, out, _) =
        check_trace("run-detached.txt", &["run", "-d", "--name", "trace-d", "busybox:latest", "sh", "-c", "echo started; echo to-stderr >&2; sleep 30"]);
    assert_eq!(code, 0);
    assert_eq!(out, user_saw("run-detached.txt").0);
}

#[test]
fn run_with_volume_and_publish() {
    let (code, out, _) = check_trace("run-volume.txt", &["run", "--rm", "-v", "trace-vol:/v", "busybox:latest", "sh", "-c", "echo data > /v/f; cat /v/f"]);
    assert_eq!((code, out.as_str()), (0, "data\n"));
    let (code, out, _) = check_trace(
        "run-network-publish.txt",
        &["run", "-d", "--name", "trace-web", "--network", "trace-net", "-p", "127.0.0.1:18099:80", "busybox:latest", "httpd", "-f", "-p", "80"],
    );
    assert_eq!(code, 0);
    assert_eq!(out, user_saw("run-network-publish.txt").0);
}

#[test]
fn run_interactive_without_tty() {
    let (code, out, _) = check_trace("run-stdin.txt", &["run", "--rm", "-i", "busybox:latest", "cat"]);
    assert_eq!((code, out.as_str()), (0, "hi-from-stdin\n"));
}

#[test]
fn exec_returns_the_exit_code() {
    let (code, out, _) = check_trace("exec.txt", &["exec", "trace-d", "sh", "-c", "echo in-exec; exit 3"]);
    assert_eq!((code, out.as_str()), (3, "in-exec\n"));
}

#[test]
fn logs_demultiplex_stdout_and_stderr() {
    let (code, out, err) = check_trace("logs.txt", &["logs", "trace-d"]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "started\n", "to-stderr\n"));
}

#[test]
fn inspect_prints_what_docker_printed() {
    let (code, out, _) = check_trace("inspect.txt", &["inspect", "trace-d"]);
    assert_eq!(code, 0);
    assert_eq!(out, user_saw("inspect.txt").0);
    let (code, out, _) = check_trace("inspect.txt", &["inspect", "-f", "{{.State.Status}} {{.Name}} {{json .Config.Cmd}}", "trace-d"]);
    assert_eq!((code, out.as_str()), (0, "running /trace-d [\"sh\",\"-c\",\"echo started; echo to-stderr >&2; sleep 30\"]\n"));
}

#[test]
fn ps_lists_like_docker() {
    let (code, out, _) = check_trace("ps.txt", &["ps", "--format", "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "CONTAINER ID   IMAGE            COMMAND                  STATUS                  PORTS     NAMES\n\
         d3c7d04c9be3   busybox:latest   \"sh -c 'echo started…\"   Up Less than a second             trace-d\n"
    );
    let (_, out, _) = check_trace("ps.txt", &["ps", "-q"]);
    assert_eq!(out, "d3c7d04c9be3\n");
    let (_, out, _) = check_trace("ps.txt", &["ps", "--format", "{{.Names}} {{json .Labels}} {{.State}}"]);
    assert_eq!(out, "trace-d \"\" running\n");
}

#[test]
fn stop_rm_and_force() {
    assert_eq!(check_trace("stop.txt", &["stop", "-t", "1", "trace-d"]).1, "trace-d\n");
    assert_eq!(check_trace("rm.txt", &["rm", "trace-d"]).1, "trace-d\n");
    assert_eq!(check_trace("rm-force.txt", &["rm", "-f", "trace-web"]).1, "trace-web\n");
}

#[test]
fn port_and_stats() {
    let (code, out, _) = check_trace("port.txt", &["port", "trace-web"]);
    assert_eq!((code, out), (0, user_saw("port.txt").0));
    let (code, out, _) = check_trace("stats.txt", &["stats", "--no-stream", "trace-web"]);
    assert_eq!((code, out), (0, user_saw("stats.txt").0));
}

#[test]
fn cp_out_of_a_container() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("passwd.copy");
    let (code, _, err) = check_trace("cp-out.txt", &["cp", "trace-web:/etc/passwd", dest.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&dest).unwrap();
    assert!(text.starts_with("root:x:0:0:"), "{text}");
    assert!(text.contains("nobody:x:65534"), "{text}");
}

#[test]
fn volumes_and_networks() {
    assert_eq!(check_trace("volume-create.txt", &["volume", "create", "trace-vol"]).1, user_saw("volume-create.txt").0);
    assert_eq!(check_trace("volume-rm.txt", &["volume", "rm", "trace-vol"]).1, user_saw("volume-rm.txt").0);
    assert_eq!(check_trace("network-create.txt", &["network", "create", "trace-net"]).1, user_saw("network-create.txt").0);
    assert_eq!(check_trace("network-rm.txt", &["network", "rm", "trace-net"]).1, user_saw("network-rm.txt").0);
}

#[test]
fn images_and_rmi() {
    let (code, out, _) = check_trace("images.txt", &["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}"]);
    assert_eq!(code, 0);
    let want: String = user_saw("images.txt")
        .0
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            format!("{}:{} {} {}\n", f[0], f[1], f[2], f[f.len() - 1])
        })
        .collect();
    assert_eq!(out, want);
    let (code, out, _) = check_trace("rmi.txt", &["rmi", "trace-built:1", "127.0.0.1:5000/trace/bb:1"]);
    assert_eq!((code, out), (0, user_saw("rmi.txt").0));
}

#[test]
fn pull_and_push_show_docker_progress_lines() {
    let mock = replay("pull.txt");
    let (code, out, _) = run_cli(&["-H", &mock.host, "pull", "127.0.0.1:5000/trace/bb:1"], &[]);
    assert_eq!((code, out), (0, user_saw("pull.txt").0));
    assert_eq!(mock.request_lines(), trace_lines("pull.txt"));
    assert_eq!(mock.requests()[1].header("X-Registry-Auth"), Some("e30="));
    let (code, out, _) = check_trace("push.txt", &["push", "127.0.0.1:5000/trace/bb:1"]);
    assert_eq!((code, out), (0, user_saw("push.txt").0));
}

#[test]
fn events_stream_lines() {
    let (code, out, _) = check_trace("events.txt", &["events", "--filter", "type=container"]);
    assert_eq!(code, 0);
    let actions: Vec<String> = out.lines().map(|l| l.split(' ').skip(1).take(2).collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(actions, vec!["container create", "container attach", "container start", "container die", "container destroy"]);
    assert!(out.lines().nth(3).unwrap().ends_with("(exitCode=0, image=busybox:latest, name=busy_nobel)"));
}

#[test]
fn build_streams_the_builder_output() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM busybox:latest\nENV A=1\nRUN echo built > /built\nCMD [\"cat\",\"/built\"]\n").unwrap();
    let (code, out, err) = check_trace("build.txt", &["build", "-t", "trace-built:1", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let seen = user_saw("build.txt").0;
    let want = &seen[seen.find("Step 1/4").unwrap()..];
    let got = &out[out.find("Step 1/4").unwrap()..];
    assert_eq!(got, want);
    assert!(out.starts_with("Sending build context to berth daemon  "), "{out}");
}

#[test]
fn every_trace_response_has_consistent_framing() {
    // Guards the trace parser: each replayed response is byte-exact HTTP.
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/api-traces")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        for x in common::exchanges(&name) {
            assert!(common::framing_ok(&x.response), "{name}: {} {} has a broken response", x.method, x.uri);
        }
    }
}
