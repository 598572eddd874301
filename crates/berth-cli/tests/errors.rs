//! Exit codes and messages: daemon errors, the daemon not running, run's 125/126/127,
//! the implicit pull of a missing image, API version negotiation.

mod common;

use std::sync::{Arc, Mutex};

use common::{Received, run_cli, serve_unix};

fn http(status: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut s = format!("HTTP/1.1 {status}\r\nApi-Version: 1.41\r\n");
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.into_bytes()
}

fn json(status: &str, body: &str) -> Vec<u8> {
    http(status, &[("Content-Type", "application/json")], body)
}

fn ping(version: Option<&str>) -> Vec<u8> {
    match version {
        Some(v) => format!("HTTP/1.1 200 OK\r\nApi-Version: {v}\r\nContent-Length: 0\r\n\r\n").into_bytes(),
        None => b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
    }
}

const ID: &str = "9f2e9a41acb800dc0ed73af06719fd755346d7ff948f651e5eb5006dfa12462f";

/// A daemon whose container runs and exits with `status`, or whose start fails with
/// `start_error`.
fn container_daemon(status: i64, start_error: Option<&'static str>) -> common::Mock {
    serve_unix(Arc::new(move |r: &Received| {
        let path = r.uri.split('?').next().unwrap_or("");
        Some(match (r.method.as_str(), path) {
            ("HEAD", "/_ping") => ping(Some("1.41")),
            ("POST", "/v1.41/containers/create") => json("201 Created", &format!("{{\"Id\":\"{ID}\",\"Warnings\":[]}}")),
            ("POST", p) if p.ends_with("/attach") => {
                b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n".to_vec()
            }
            ("POST", p) if p.ends_with("/wait") => json("200 OK", &format!("{{\"Error\":null,\"StatusCode\":{status}}}")),
            ("POST", p) if p.ends_with("/start") => match start_error {
                Some(m) => json("400 Bad Request", &format!("{{\"message\":\"{m}\"}}")),
                None => http("204 No Content", &[], ""),
            },
            ("DELETE", _) => http("204 No Content", &[], ""),
            _ => return None,
        })
    }))
}

#[test]
fn run_returns_the_container_exit_code() {
    let mock = container_daemon(7, None);
    let (code, _, err) = run_cli(&["-H", &mock.host, "run", "--rm", "busybox", "sh", "-c", "exit 7"], &[]);
    assert_eq!(code, 7, "{err}");
}

#[test]
fn run_maps_start_failures_to_126_and_127() {
    let mock = container_daemon(0, Some(
        "failed to create task: exec: \\\"nosuch\\\": executable file not found in $PATH",
    ));
    let (code, _, err) = run_cli(&["-H", &mock.host, "run", "busybox", "nosuch"], &[]);
    assert_eq!(code, 127);
    assert!(err.starts_with("berth: Error response from daemon: failed to create task: exec: \"nosuch\": executable file not found"), "{err}");
    let mock = container_daemon(0, Some("exec /etc: permission denied"));
    let (code, _, _) = run_cli(&["-H", &mock.host, "run", "busybox", "/etc"], &[]);
    assert_eq!(code, 126);
    let mock = container_daemon(0, Some("cannot join network of a non running container"));
    let (code, _, _) = run_cli(&["-H", &mock.host, "run", "busybox", "true"], &[]);
    assert_eq!(code, 125);
}

#[test]
fn run_pulls_a_missing_image_then_creates() {
    let creates = Arc::new(Mutex::new(0));
    let c2 = creates.clone();
    let mock = serve_unix(Arc::new(move |r: &Received| {
        let path = r.uri.split('?').next().unwrap_or("").to_string();
        Some(match (r.method.as_str(), path.as_str()) {
            ("HEAD", "/_ping") => ping(Some("1.51")),
            ("POST", "/v1.51/containers/create") => {
                let mut n = c2.lock().unwrap();
                *n += 1;
                if *n == 1 {
                    json("404 Not Found", "{\"message\":\"No such image: fresh:latest\"}")
                } else {
                    json("201 Created", &format!("{{\"Id\":\"{ID}\",\"Warnings\":[\"careful\"]}}"))
                }
            }
            ("POST", "/v1.51/images/create") => json(
                "200 OK",
                "{\"status\":\"Pulling from library/fresh\",\"id\":\"latest\"}\n{\"status\":\"Status: Downloaded newer image for fresh:latest\"}\n",
            ),
            ("POST", p) if p.ends_with("/wait") => json("200 OK", "{\"StatusCode\":0}"),
            ("POST", p) if p.ends_with("/start") => http("204 No Content", &[], ""),
            _ => return None,
        })
    }));
    let (code, out, err) = run_cli(&["-H", &mock.host, "run", "-d", "fresh"], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("{ID}\n"));
    assert_eq!(
        err,
        "Unable to find image 'fresh:latest' locally\nlatest: Pulling from library/fresh\nStatus: Downloaded newer image for fresh:latest\nWARNING: careful\n"
    );
    let lines = mock.request_lines();
    assert!(lines.contains(&"POST /v1.51/images/create?fromImage=docker.io%2Flibrary%2Ffresh&tag=latest".to_string()), "{lines:?}");

    // --pull never: no pull, the daemon's error, exit 125.
    *creates.lock().unwrap() = 0;
    let (code, _, err) = run_cli(&["-H", &mock.host, "run", "--pull", "never", "fresh"], &[]);
    assert_eq!(code, 125);
    assert!(err.starts_with("berth: Error response from daemon: No such image: fresh:latest"), "{err}");
}

#[test]
fn daemon_errors_and_partial_failures() {
    let mock = serve_unix(Arc::new(|r: &Received| {
        Some(match (r.method.as_str(), r.uri.as_str()) {
            ("HEAD", "/_ping") => ping(Some("1.41")),
            ("POST", "/v1.41/containers/good/stop") => http("204 No Content", &[], ""),
            ("POST", "/v1.41/containers/nope/stop") => json("404 Not Found", "{\"message\":\"No such container: nope\"}"),
            ("GET", "/v1.41/containers/json") => http("500 Internal Server Error", &[], "plain failure text"),
            _ => return None,
        })
    }));
    let (code, out, err) = run_cli(&["-H", &mock.host, "stop", "good", "nope"], &[]);
    assert_eq!((code, out.as_str(), err.as_str()), (1, "good\n", "Error response from daemon: No such container: nope\n"));
    let (code, _, err) = run_cli(&["-H", &mock.host, "ps"], &[]);
    assert_eq!((code, err.as_str()), (1, "Error response from daemon: plain failure text\n"));
}

#[test]
fn daemon_not_running_says_how_to_start_it() {
    let dir = tempfile::tempdir().unwrap();
    let host = format!("unix://{}/none.sock", dir.path().display());
    let (code, out, err) = run_cli(&["-H", &host, "ps"], &[]);
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert!(err.starts_with(&format!("Cannot connect to the berth daemon at {host}. Is the berth daemon running?")), "{err}");
    assert!(err.contains("berth daemon"), "{err}");
    // The environment chooses the daemon too: BERTH_HOST wins over DOCKER_HOST.
    let (code, _, err) = run_cli(&["ps"], &[("BERTH_HOST", &host), ("DOCKER_HOST", "unix:///elsewhere.sock")]);
    assert_eq!(code, 1);
    assert!(err.contains(&host), "{err}");
    let (_, _, err) = run_cli(&["ps"], &[("DOCKER_HOST", &host)]);
    assert!(err.contains(&host), "{err}");
}

#[test]
fn api_version_is_negotiated_from_ping() {
    for (server, used) in [(Some("1.41"), "1.41"), (Some("1.99"), "1.51"), (None, "1.51"), (Some("1.44"), "1.44")] {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let mock = serve_unix(Arc::new(move |r: &Received| {
            s2.lock().unwrap().push(r.uri.clone());
            Some(match r.method.as_str() {
                "HEAD" => ping(server),
                _ => json("200 OK", "[]"),
            })
        }));
        let (code, out, err) = run_cli(&["-H", &mock.host, "ps", "-q"], &[]);
        assert_eq!((code, out.as_str()), (0, ""), "{err}");
        assert_eq!(seen.lock().unwrap()[1], format!("/v{used}/containers/json"), "server {server:?}");
    }
}

#[test]
fn filters_and_flags_go_in_docker_form() {
    let mock = serve_unix(Arc::new(|r: &Received| {
        Some(match r.method.as_str() {
            "HEAD" => ping(Some("1.51")),
            _ => json("200 OK", "[]"),
        })
    }));
    let (code, _, _) = run_cli(&["-H", &mock.host, "ps", "-a", "-s", "--filter", "status=exited", "--filter", "label=a=b", "-n", "2"], &[]);
    assert_eq!(code, 0);
    assert_eq!(
        mock.request_lines()[1],
        "GET /v1.51/containers/json?all=1&filters=%7B%22label%22%3A%7B%22a%3Db%22%3Atrue%7D%2C%22status%22%3A%7B%22exited%22%3Atrue%7D%7D&limit=2&size=1"
    );
    let (code, _, err) = run_cli(&["-H", &mock.host, "ps", "--filter", "oops"], &[]);
    assert_eq!(code, 125);
    assert!(err.starts_with("invalid argument \"oops\" for \"-f, --filter\" flag"), "{err}");
}

#[test]
fn inspect_of_a_missing_object() {
    let mock = serve_unix(Arc::new(|r: &Received| {
        Some(match r.method.as_str() {
            "HEAD" => ping(Some("1.51")),
            _ => json("404 Not Found", "{\"message\":\"not found\"}"),
        })
    }));
    let (code, out, err) = run_cli(&["-H", &mock.host, "inspect", "ghost"], &[]);
    assert_eq!((code, out.as_str(), err.as_str()), (1, "[]\n", "Error: No such object: ghost\n"));
}

#[test]
fn completion_scripts_for_three_shells() {
    for (shell, marker) in [("bash", "complete -F"), ("zsh", "#compdef berth"), ("fish", "complete -c berth")] {
        let (code, out, _) = run_cli(&["completion", shell], &[]);
        assert_eq!(code, 0);
        assert!(out.contains(marker), "{shell}: {}", &out[..out.len().min(200)]);
        assert!(out.contains("network"), "{shell} completes management commands");
    }
}

#[test]
fn help_forms() {
    let (code, out, _) = run_cli(&["help"], &[]);
    assert_eq!(code, 0);
    assert!(out.starts_with("Usage:  berth [OPTIONS] COMMAND"), "{out}");
    assert!(out.contains("Management Commands:") && out.contains("Global Options:"));
    let (code, out, _) = run_cli(&["help", "network", "create"], &[]);
    assert_eq!(code, 0);
    assert!(out.starts_with("Usage:  berth network create [OPTIONS] NETWORK"), "{out}");
    let (code, out, _) = run_cli(&["run", "--help"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("-h, --hostname"), "run's -h is the hostname: {out}");
    let (code, out, _) = run_cli(&["network"], &[]);
    assert_eq!(code, 0);
    assert!(out.starts_with("Usage:  berth network COMMAND") && out.contains("Commands:"), "{out}");
    let (code, out, _) = run_cli(&[], &[]);
    assert_eq!(code, 0);
    assert!(out.starts_with("Usage:  berth [OPTIONS] COMMAND"));
    let (code, out, _) = run_cli(&["-v"], &[]);
    assert_eq!((code, out.as_str()), (0, concat!("berth version ", env!("CARGO_PKG_VERSION"), "\n")));
}

#[test]
fn ps_json_asks_for_sizes_like_docker() {
    let body = common::exchanges("ps.txt").into_iter().find(|x| x.uri == "/v1.41/containers/json").unwrap().response;
    let mock = serve_unix(Arc::new(move |r: &Received| {
        Some(match r.method.as_str() {
            "HEAD" => ping(Some("1.41")),
            _ => body.clone(),
        })
    }));
    let (code, out, _) = run_cli(&["-H", &mock.host, "ps", "--format", "{{json .}}"], &[]);
    assert_eq!(code, 0);
    assert_eq!(mock.request_lines()[1], "GET /v1.41/containers/json?size=1");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    // docker 28's ps JSON keys, sorted as Go marshals a map.
    assert_eq!(
        keys,
        ["Command", "CreatedAt", "ID", "Image", "Labels", "LocalVolumes", "Mounts", "Names", "Networks", "Ports", "RunningFor", "Size", "State", "Status"]
    );
    assert_eq!(v["Names"], "trace-d");
    assert_eq!(v["Networks"], "bridge");
}

#[test]
fn login_stores_credentials_and_pull_sends_them() {
    let mock = serve_unix(Arc::new(|r: &Received| {
        Some(match (r.method.as_str(), r.uri.split('?').next().unwrap_or("")) {
            ("HEAD", _) => ping(Some("1.51")),
            ("POST", "/v1.51/auth") => {
                let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
                if body["password"] == "right" {
                    json("200 OK", "{\"Status\":\"Login Succeeded\"}")
                } else {
                    json("401 Unauthorized", "{\"message\":\"login attempt to http://127.0.0.1:5999/v2/ failed with status: 401 Unauthorized\"}")
                }
            }
            ("POST", "/v1.51/images/create") => json("200 OK", "{\"status\":\"Status: Image is up to date for 127.0.0.1:5999/app:1\"}\n"),
            _ => return None,
        })
    }));
    let cfg = tempfile::tempdir().unwrap();
    let env = [("DOCKER_CONFIG", cfg.path().to_str().unwrap())];
    let (code, _, err) = run_cli(&["-H", &mock.host, "login", "-u", "me", "-p", "wrong", "127.0.0.1:5999"], &env);
    assert_eq!(code, 1);
    assert!(err.contains("Error response from daemon: login attempt"), "{err}");
    assert!(!cfg.path().join("config.json").exists(), "a failed login stores nothing");

    let (code, out, err) = run_cli(&["-H", &mock.host, "login", "-u", "me", "-p", "right", "127.0.0.1:5999"], &env);
    assert_eq!((code, out.as_str()), (0, "Login Succeeded\n"), "{err}");
    assert!(err.starts_with("WARNING! Using --password via the CLI is insecure."), "{err}");
    let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(cfg.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(stored["auths"]["127.0.0.1:5999"]["auth"], "bWU6cmlnaHQ="); // base64("me:right")

    let (code, _, _) = run_cli(&["-H", &mock.host, "pull", "127.0.0.1:5999/app:1"], &env);
    assert_eq!(code, 0);
    let pull = mock.requests().into_iter().find(|r| r.uri.contains("/images/create")).unwrap();
    use base64::Engine;
    let auth = base64::engine::general_purpose::URL_SAFE.decode(pull.header("X-Registry-Auth").unwrap()).unwrap();
    let auth: serde_json::Value = serde_json::from_slice(&auth).unwrap();
    assert_eq!((auth["username"].as_str(), auth["password"].as_str()), (Some("me"), Some("right")));

    let (code, out, _) = run_cli(&["logout", "127.0.0.1:5999"], &env);
    assert_eq!((code, out.as_str()), (0, "Removing login credentials for 127.0.0.1:5999\n"));
    let (_, out, _) = run_cli(&["logout", "127.0.0.1:5999"], &env);
    assert_eq!(out, "Not logged in to 127.0.0.1:5999\n");
}

#[test]
fn bash_completion_script_loads_and_completes() {
    let (code, script, _) = run_cli(&["completion", "bash"], &[]);
    assert_eq!(code, 0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.bash");
    std::fs::write(&path, script).unwrap();
    // Source it and ask the completion function for `berth netw<TAB>`.
    let probe = format!(
        "source {}; COMP_WORDS=(berth netw); COMP_CWORD=1; COMP_LINE='berth netw'; COMP_POINT=10; _berth berth netw berth; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        path.display()
    );
    let out = std::process::Command::new("bash").args(["-c", &probe]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "network");
}
