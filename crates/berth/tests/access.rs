//! Who may talk to the daemon: TLS client certificates checked as dockerd checks them
//! (`--tlsverify`), the unix socket's group (`-G`), authorization plugins
//! (`--authorization-plugin`, Docker's AuthZ protocol), and bounded requests.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use berth_testutil::daemon::{TestDaemon, run_ok};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

fn out(cmd: &mut Command) -> (i32, String, String) {
    let o = cmd.output().expect("run command");
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

struct Ca {
    key: KeyPair,
    params: CertificateParams,
}

fn ca(dir: &Path, file: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, format!("berth {file}"));
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join(file), cert.pem()).unwrap();
    Ca { key, params }
}

/// A certificate `ca` signed for `names`, written as `<stem>-cert.pem` / `<stem>-key.pem`.
fn issue(dir: &Path, ca: &Ca, stem: &str, names: &[&str], expired: bool) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, names[0]);
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 2);
    }
    let issuer = Issuer::new(ca.params.clone(), &ca.key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join(format!("{stem}-cert.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{stem}-key.pem")), key.serialize_pem()).unwrap();
}

/// With `--tlsverify`, only a client certificate the daemon's CA signed, and valid now,
/// is let in: expired, from another CA, or none at all are refused during the handshake.
#[test]
fn tlsverify_refuses_expired_foreign_and_missing_client_certificates() {
    let certs = berth_testutil::short_tempdir("bacc");
    let dir = certs.path();
    let good_ca = ca(dir, "ca.pem");
    let other_ca = ca(dir, "other-ca.pem");
    issue(dir, &good_ca, "server", &["127.0.0.1", "localhost"], false);
    issue(dir, &good_ca, "client", &["client"], false);
    issue(dir, &good_ca, "expired", &["client"], true);
    issue(dir, &other_ca, "foreign", &["client"], false);
    let p = |f: &str| dir.join(f).display().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let sock = format!("unix://{}/api.sock", dir.display());
    // An authorization plugin watching, to see who the daemon says the client is.
    let plugin = serve_plugin(dir, "watch");
    let dirs = dir.display().to_string();
    let d = TestDaemon::start_with_env(
        bin(),
        &["-H", &tcp, "-H", &sock, "--tlsverify", "--tlscacert", &p("ca.pem"), "--tlscert", &p("server-cert.pem"), "--tlskey", &p("server-key.pem"), "--authorization-plugin", "watch"],
        &[("BERTH_PLUGIN_DIRS", &dirs)],
    );
    let docker = |cert: Option<&str>| {
        let mut c = Command::new(berth_testutil::daemon::docker_cli());
        c.env("DOCKER_CONFIG", d.dir.join("docker-config")).env_remove("DOCKER_HOST").env_remove("DOCKER_TLS_VERIFY").env_remove("DOCKER_CERT_PATH");
        c.args(["-H", &tcp, "--tlsverify", "--tlscacert", &p("ca.pem")]);
        if let Some(stem) = cert {
            c.args(["--tlscert", &p(&format!("{stem}-cert.pem")), "--tlskey", &p(&format!("{stem}-key.pem"))]);
        }
        c.args(["version", "--format", "{{.Server.APIVersion}}"]);
        c
    };
    let (code, so, se) = out(&mut docker(Some("client")));
    assert_eq!((code, so.trim()), (0, "1.51"), "{se}\n{}", d.log());
    for (what, cert) in [("expired", Some("expired")), ("another CA's", Some("foreign")), ("no", None)] {
        let (code, so, se) = out(&mut docker(cert));
        assert_ne!(code, 0, "{what} client certificate was let in: {so}");
        assert!(!so.contains("1.51"), "{so}");
        assert!(se.contains("tls") || se.contains("certificate") || se.contains("EOF") || se.contains("reset"), "{what}: {se}");
    }
    // The daemon is still fine.
    let (code, so, se) = out(&mut docker(Some("client")));
    assert_eq!((code, so.trim()), (0, "1.51"), "{se}");
    // Plugins are told the certificate's common name, as dockerd tells them.
    let seen = plugin.seen.lock().unwrap().clone();
    let version = seen.iter().find(|(p, r)| p == "/AuthZPlugin.AuthZReq" && r["RequestURI"].as_str().unwrap_or_default().ends_with("/version")).expect("version authorized");
    assert_eq!((version.1["User"].as_str(), version.1["UserAuthNMethod"].as_str()), (Some("client"), Some("TLS")), "{}", version.1);
}

/// `-G group`: the unix socket belongs to root and that group, mode 0660, as dockerd.
#[test]
fn group_owns_the_unix_socket() {
    let group = format!("bth{}", std::process::id() % 100000);
    let _ = Command::new("groupdel").arg(&group).status();
    assert!(Command::new("groupadd").arg(&group).status().unwrap().success());
    struct Gone(String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = Command::new("groupdel").arg(&self.0).status();
        }
    }
    let _gone = Gone(group.clone());
    let gid: u32 = run_ok(Command::new("getent").args(["group", &group])).split(':').nth(2).unwrap().trim().parse().unwrap();
    let d = TestDaemon::start_with(bin(), &["-G", &group]);
    let m = std::fs::metadata(&d.socket).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (0, gid, 0o660), "{}", d.log());
    assert_eq!(run_ok(d.docker().args(["version", "--format", "{{.Server.APIVersion}}"])).trim(), "1.51");
    drop(d);
    // A numeric gid does the same; an unknown group is an error.
    let d = TestDaemon::start_with(bin(), &["--group", &gid.to_string()]);
    assert_eq!(std::fs::metadata(&d.socket).unwrap().gid(), gid);
    drop(d);
    let (code, _, se) = out(Command::new(bin()).args(["daemon", "--group", "no-such-group-berth", "--data-root", "/nonexistent-berth", "-H", "unix:///nonexistent-berth/x.sock"]));
    assert_ne!(code, 0);
    assert!(se.contains("no-such-group-berth"), "{se}");
}

/// A tiny AuthZ plugin on a unix socket: denies `DELETE /containers/...`, allows the
/// rest, and keeps every request it was asked about.
struct Plugin {
    dir: PathBuf,
    seen: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
}

fn serve_plugin(dir: &Path, name: &str) -> Plugin {
    let sock = dir.join(format!("{name}.sock"));
    let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            let log = log.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut first = String::new();
                if r.read_line(&mut first).is_err() {
                    return;
                }
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':')
                        && k.eq_ignore_ascii_case("content-length")
                    {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                let _ = r.read_exact(&mut body);
                let path = first.split_whitespace().nth(1).unwrap_or_default().to_string();
                let req: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let answer = match path.as_str() {
                    "/Plugin.Activate" => serde_json::json!({"Implements": ["authz"]}),
                    "/AuthZPlugin.AuthZReq" => {
                        let deny = req["RequestMethod"] == "DELETE" && req["RequestURI"].as_str().unwrap_or_default().contains("/containers/");
                        if deny { serde_json::json!({"Allow": false, "Msg": "containers stay"}) } else { serde_json::json!({"Allow": true}) }
                    }
                    _ => serde_json::json!({"Allow": true}),
                };
                log.lock().unwrap().push((path, req));
                let text = answer.to_string();
                let _ = write!(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.plugins.v1.2+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}", text.len());
            });
        }
    });
    Plugin { dir: dir.to_path_buf(), seen }
}

/// `--authorization-plugin`: the plugin sees each request (method, URI with its version,
/// headers, JSON body in base64) and each answer; what it refuses gets Docker's 403
/// `authorization denied by plugin NAME: <msg>` and changes nothing.
#[test]
fn authorization_plugin_can_deny_requests() {
    let tmp = berth_testutil::short_tempdir("bauthz");
    let plugin = serve_plugin(tmp.path(), "nodelete");
    let dirs = plugin.dir.display().to_string();
    let d = TestDaemon::start_with_env(bin(), &["--authorization-plugin", "nodelete"], &[("BERTH_PLUGIN_DIRS", &dirs)]);
    d.busybox_image("busybox:latest");
    run_ok(d.docker().args(["run", "-d", "--name", "keeper", "busybox", "sleep", "300"]));
    let (code, so, se) = out(d.docker().args(["rm", "-f", "keeper"]));
    assert_ne!(code, 0, "{so}");
    assert!(se.contains("authorization denied by plugin nodelete: containers stay"), "{se}");
    let ps = run_ok(d.docker().args(["ps", "--format", "{{.Names}} {{.State}}"]));
    assert_eq!(ps.trim(), "keeper running", "a denied request changed something");
    // What the plugin was shown, as Docker shows it.
    let seen = plugin.seen.lock().unwrap().clone();
    assert_eq!(seen.first().map(|s| s.0.as_str()), Some("/Plugin.Activate"));
    let create = seen
        .iter()
        .find(|(p, r)| p == "/AuthZPlugin.AuthZReq" && r["RequestURI"].as_str().unwrap_or_default().contains("/containers/create"))
        .expect("create was authorized");
    assert_eq!(create.1["RequestMethod"], "POST");
    assert!(create.1["RequestURI"].as_str().unwrap().starts_with("/v1."), "{}", create.1);
    assert!(create.1["RequestHeaders"]["Content-Type"].as_str().unwrap_or_default().starts_with("application/json"), "{}", create.1);
    let body = base64::engine::general_purpose::STANDARD.decode(create.1["RequestBody"].as_str().unwrap()).unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["Image"], "busybox");
    let res = seen
        .iter()
        .find(|(p, r)| p == "/AuthZPlugin.AuthZRes" && r["RequestURI"].as_str().unwrap_or_default().contains("/containers/create"))
        .expect("create's answer was shown");
    assert_eq!(res.1["ResponseStatusCode"], 201);
    let answer = base64::engine::general_purpose::STANDARD.decode(res.1["ResponseBody"].as_str().unwrap()).unwrap();
    assert!(String::from_utf8_lossy(&answer).contains("\"Id\""));
    // Everything else still works.
    run_ok(d.docker().args(["stop", "-t", "0", "keeper"]));
}

/// A plugin that cannot be reached fails requests closed (500), never open.
#[test]
fn unreachable_authorization_plugin_fails_closed() {
    let tmp = berth_testutil::short_tempdir("bauthz");
    let dirs = tmp.path().display().to_string();
    let d = TestDaemon::start_with_env(bin(), &["--authorization-plugin", "absent"], &[("BERTH_PLUGIN_DIRS", &dirs)]);
    let (code, so, se) = out(d.docker().args(["ps"]));
    assert_ne!(code, 0, "{so}");
    assert!(se.contains("plugin absent failed with error"), "{se}");
}

/// Bounded requests: an oversized JSON body and oversized headers are refused with a
/// 4xx, and the daemon goes on serving.
#[test]
fn oversized_requests_are_refused() {
    let d = TestDaemon::start(bin());
    let send = |head: &str, body: &[u8]| -> String {
        let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
        let _ = s.write_all(head.as_bytes());
        let _ = s.write_all(body);
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    };
    // A 2 MiB volume-create body (the limit for small JSON bodies is 1 MiB).
    let mut big = b"{\"Name\":\"x\",\"Labels\":{\"a\":\"".to_vec();
    big.extend(std::iter::repeat_n(b'a', 2 << 20));
    big.extend(b"\"}}");
    let r = send(&format!("POST /v1.51/volumes/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", big.len()), &big);
    let status: u16 = r.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    assert_eq!(status, 413, "{}", &r[..r.len().min(300)]);
    assert!(r.contains(r#"{"message":"request body is larger than the limit of 1MiB for POST /volumes/create"}"#), "{}", &r[..r.len().min(300)]);
    // The same body sent chunked (no Content-Length): refused as it arrives.
    let mut chunked = format!("{:x}\r\n", big.len()).into_bytes();
    chunked.extend(&big);
    chunked.extend(b"\r\n0\r\n\r\n");
    let r = send("POST /v1.51/networks/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n", &chunked);
    assert!(r.starts_with("HTTP/1.1 413"), "{}", &r[..r.len().min(300)]);
    // Through the docker CLI: a one-line error, nothing made.
    // (1.1 MiB of labels, 100 KiB each: one argument may not exceed 128 KiB.)
    let mut cmd = d.docker();
    cmd.args(["network", "create"]);
    for i in 0..11 {
        cmd.args(["--label", &format!("big{i}={}", "b".repeat(100 << 10))]);
    }
    let o = cmd.arg("toolarge").output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("request body is larger than the limit of 1MiB"), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!run_ok(d.docker().args(["network", "ls", "--format", "{{.Name}}"])).contains("toolarge"));
    // 1 MiB of headers.
    let junk = "a".repeat(1 << 20);
    let r = send(&format!("GET /_ping HTTP/1.1\r\nHost: x\r\nX-Junk: {junk}\r\nConnection: close\r\n\r\n"), b"");
    assert!(r.is_empty() || r.starts_with("HTTP/1.1 431") || r.starts_with("HTTP/1.1 400"), "{}", &r[..r.len().min(300)]);
    assert!(berth_testutil::daemon::ping(&d.socket), "{}", d.log());
    assert_eq!(run_ok(d.docker().args(["volume", "ls", "-q"])).trim(), "");
}

/// One client (here: root on the unix socket) holds at most --max-connections-per-client
/// connections; the next gets 429 with a message, and a place freed is usable again.
/// `/info` reports the limits.
#[test]
fn connections_per_client_are_bounded() {
    let d = TestDaemon::start_with(bin(), &["--max-connections-per-client", "4"]);
    d.busybox_image("busybox:latest");
    let (status, _, body) = d.raw_http("GET", "/v1.51/info", "");
    assert_eq!(status, 200);
    let info: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(info["Limits"]["MaxConnectionsPerClient"], 4, "{info}");
    assert_eq!(info["Limits"]["MaxJsonBody"], 1 << 20, "{info}");
    assert!(info["Limits"]["MinFreeSpace"].as_u64().unwrap() >= 256 << 20, "{info}");
    let o = run_ok(d.berth().args(["info"]));
    assert!(o.contains("Connections Per Client: 4"), "{o}");
    // A kept-alive connection that was admitted (its ping answered 200; a 429 while the
    // connections of the commands above are still closing is retried).
    let hold = || {
        for _ in 0..100 {
            let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
            s.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut head = [0u8; 12];
            s.read_exact(&mut head).unwrap();
            if &head == b"HTTP/1.1 200" {
                let mut rest = [0u8; 512];
                let _ = s.set_read_timeout(Some(std::time::Duration::from_millis(100)));
                let _ = s.read(&mut rest);
                return s;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("no connection admitted: {}", d.log());
    };
    // Four idle connections are this client's four places...
    let held: Vec<_> = (0..4).map(|_| hold()).collect();
    // ...so the fifth is refused, before its request is read (once the daemon has
    // accepted the four: on a loaded machine that can take a moment).
    let refused = |args: &[&str]| {
        for _ in 0..50 {
            let o = d.docker().args(args).output().unwrap();
            if !o.status.success() {
                return String::from_utf8_lossy(&o.stderr).into_owned();
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("{args:?} was never refused");
    };
    let err = refused(&["version", "--format", "{{.Server.Version}}"]);
    assert!(err.contains("too many connections from this client: at most 4"), "{err}");
    // An attach stream counts until it ends, after hyper let the connection go: one
    // hijacked attach plus three idle connections fill the four places.
    drop(held);
    let id = run_ok(d.docker().args(["run", "-d", "busybox", "sleep", "60"])).trim().to_string();
    let attach = {
        let mut tries = 0;
        loop {
            let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
            write!(s, "POST /v1.51/containers/{id}/attach?stream=1&stdout=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n").unwrap();
            let mut head = [0u8; 12];
            s.read_exact(&mut head).unwrap();
            if &head == b"HTTP/1.1 101" {
                break s;
            }
            tries += 1;
            assert!(tries < 100, "attach refused: {}", String::from_utf8_lossy(&head));
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    let held: Vec<_> = (0..3).map(|_| hold()).collect();
    let err = refused(&["ps", "-q"]);
    assert!(err.contains("too many connections"), "the attach stream's place was given back early: {err}");
    // The session ends with the container (an attach whose client left while the
    // container neither writes nor exits keeps its place until it does; docs/security.md):
    // its place comes back, and four connections fit again.
    drop(attach);
    drop(held);
    let mut killed = false;
    for _ in 0..50 {
        if d.docker().args(["kill", &id]).output().unwrap().status.success() {
            killed = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(killed, "{}", d.log());
    let held: Vec<_> = (0..4).map(|_| hold()).collect();
    drop(held);
    run_ok(d.docker().args(["rm", "-f", &id]));
}
