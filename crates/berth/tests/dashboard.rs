//! The web dashboard (`--ui`) in a real browser: headless Chromium from Debian driven
//! over WebDriver. The container list shows a container the test started, its log page
//! follows new lines, stop from the page stops it, the exec terminal echoes a command;
//! every page is screenshotted (target/test-artefacts/dashboard-*.png). And the guard:
//! no token, no dashboard; other origins are refused.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_testutil::daemon::{TestDaemon, run_ok};
use berth_testutil::http;
use berth_testutil::webdriver::Browser;

struct Ui {
    d: TestDaemon,
    addr: String,
    token: String,
}

fn ui() -> Ui {
    let d = TestDaemon::start_with(Path::new(env!("CARGO_BIN_EXE_berth")), &["--ui", "127.0.0.1:0"]);
    d.busybox_image("busybox:latest");
    let addr = std::fs::read_to_string(d.exec_root.join("ui-addr")).expect("ui-addr");
    let token = std::fs::read_to_string(d.exec_root.join("ui-token")).expect("ui-token");
    Ui { d, addr, token }
}

fn shot(b: &Browser, name: &str) {
    b.screenshot(&berth_testutil::artefacts_dir().join(format!("dashboard-{name}.png")));
}

fn inspect(d: &TestDaemon, what: &str, name: &str) -> String {
    run_ok(d.docker().args(["inspect", "-f", what, name])).trim().to_string()
}

#[test]
fn dashboard_in_a_browser() {
    let u = ui();
    let d = &u.d;
    run_ok(d.docker().args(["run", "-d", "--name", "web", "-p", "127.0.0.1::80", "busybox", "sh", "-c", "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.2; done"]));
    run_ok(d.docker().args(["create", "--name", "spare", "busybox", "true"]));
    run_ok(d.docker().args(["volume", "create", "data"]));
    run_ok(d.docker().args(["network", "create", "backend"]));
    let b = Browser::start();
    let base = format!("http://{}", u.addr);

    // The token once in the URL; a cookie from then on.
    b.goto(&format!("{base}/?token={}", u.token));
    // Chromium drops a page's loads with ERR_NETWORK_CHANGED when the host's interfaces
    // change under it, as the other tests' veths and bridges do all the time in a full
    // run (its net log showed it for app.js on the failed tries): the page is loaded
    // again then, as a user would. Anything else fails at once below.
    for _ in 0..3 {
        let deadline = Instant::now() + Duration::from_secs(20);
        while b.find("#containers tr[data-name=web]").is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        if b.find("#containers tr[data-name=web]").is_some() || !b.net_errors().contains("ERR_NETWORK_CHANGED") {
            break;
        }
        b.goto(&format!("{base}/"));
    }
    // The first page of a browser just started: slow on a loaded machine.
    let row = b.wait_for("#containers tr[data-name=web]", 60);
    assert_eq!(b.attr(&row, "data-state").as_deref(), Some("running"));
    assert!(!b.url().contains("token"), "the token is dropped from the address: {}", b.url());
    assert!(b.find("#containers tr[data-name=spare]").is_some());
    // Sparklines fill from the live stats.
    b.wait_until(15, "CPU and memory figures", |b| b.find("#containers tr[data-name=web] td.mem .v").is_some_and(|e| b.text(&e).contains("iB")));
    shot(&b, "containers");

    // One container: facts, graphs, logs that follow, search.
    b.click(&b.wait_for("#containers tr[data-name=web] td.name a", 5));
    b.wait_until(10, "the container's facts", |b| b.find("#facts").is_some_and(|e| b.text(&e).contains("busybox")));
    std::thread::sleep(Duration::from_secs(3));
    shot(&b, "container");
    b.click(&b.wait_for("nav.tabs a[data-tab=logs]", 5));
    let last_line = |b: &Browser| -> i64 {
        b.find("#logs").map(|e| b.text(&e)).unwrap_or_default().lines().filter_map(|l| l.strip_prefix("line ").and_then(|n| n.trim().parse().ok())).max().unwrap_or(-1)
    };
    b.wait_until(10, "log lines", |b| last_line(b) >= 0);
    let first = last_line(&b);
    b.wait_until(10, "new log lines to follow", |b| last_line(b) >= first + 5);
    b.type_into(&b.wait_for("#log-search", 5), "line 1");
    b.wait_until(5, "the search to hide other lines", |b| {
        let t = b.find("#logs").map(|e| b.text(&e)).unwrap_or_default();
        !t.is_empty() && t.lines().all(|l| l.contains("line 1"))
    });
    shot(&b, "logs");

    // Processes.
    b.click(&b.wait_for("nav.tabs a[data-tab=processes]", 5));
    b.wait_until(10, "the process table", |b| b.find("#processes tbody").is_some_and(|e| b.text(&e).contains("sleep") || b.text(&e).contains("sh -c")));
    shot(&b, "processes");

    // The exec terminal echoes a command.
    b.click(&b.wait_for("nav.tabs a[data-tab=terminal]", 5));
    b.click(&b.wait_for("#term-connect", 5));
    b.wait_until(10, "the terminal to connect", |b| b.find("#term-status").is_some_and(|e| b.text(&e) == "connected"));
    b.click(&b.wait_for("#term", 5));
    b.keys("echo hello-$((6*7))\n");
    b.wait_until(10, "the command's output in the terminal", |b| b.find("#term").is_some_and(|e| b.text(&e).contains("hello-42")));
    shot(&b, "terminal");
    b.keys("exit\n");
    b.wait_until(10, "the shell to exit", |b| b.find("#term-status").is_some_and(|e| b.text(&e).contains("exit 0")));

    // Stop from the list, with its confirmation; the row follows the event.
    b.goto(&format!("{base}/#/containers"));
    b.click(&b.wait_for("#containers tr[data-name=web] button[data-act=stop]", 10));
    let confirm = b.wait_for("#modal .confirm", 5);
    shot(&b, "confirm-stop");
    b.click(&confirm);
    b.wait_until(30, "the row to show the container exited", |b| b.find("#containers tr[data-name=web]").and_then(|r| b.attr(&r, "data-state")).as_deref() == Some("exited"));
    assert_eq!(inspect(d, "{{.State.Running}}", "web"), "false");

    // Remove, cancelled first (nothing happens), then confirmed.
    b.click(&b.wait_for("#containers tr[data-name=spare] button[data-act=remove]", 5));
    b.click(&b.wait_for("#modal .cancel", 5));
    std::thread::sleep(Duration::from_millis(300));
    assert!(run_ok(d.docker().args(["ps", "-a", "--format", "{{.Names}}"])).contains("spare"));
    b.click(&b.wait_for("#containers tr[data-name=spare] button[data-act=remove]", 5));
    b.click(&b.wait_for("#modal .confirm", 5));
    b.wait_until(10, "the removed row to go", |b| b.find("#containers tr[data-name=spare]").is_none());
    assert!(!run_ok(d.docker().args(["ps", "-a", "--format", "{{.Names}}"])).contains("spare"));

    // The other pages.
    b.goto(&format!("{base}/#/images"));
    b.wait_until(10, "the image list", |b| b.find("#images tbody").is_some_and(|e| b.text(&e).contains("busybox:latest")));
    b.click(&b.wait_for("#images tbody td.name a", 5));
    b.wait_until(10, "the image's layers and history", |b| b.find("#detail").is_some_and(|e| b.text(&e).contains("History")));
    shot(&b, "images");
    b.goto(&format!("{base}/#/networks"));
    b.wait_until(10, "the network list", |b| b.find("#networks tbody").is_some_and(|e| b.text(&e).contains("backend")));
    shot(&b, "networks");
    b.goto(&format!("{base}/#/volumes"));
    b.wait_until(10, "the volume list", |b| b.find("#volumes tbody").is_some_and(|e| b.text(&e).contains("data")));
    shot(&b, "volumes");
    b.goto(&format!("{base}/#/events"));
    b.wait_until(10, "past events", |b| b.find("#events tbody").is_some_and(|e| b.text(&e).contains("die")));
    run_ok(d.docker().args(["start", "web"]));
    b.wait_until(10, "a live event", |b| b.find("#events tbody tr").is_some_and(|e| b.text(&e).contains("start")));
    shot(&b, "events");
    b.goto(&format!("{base}/#/host"));
    b.wait_until(10, "the host's facts and disk usage", |b| b.find("#df").is_some_and(|e| b.text(&e).contains("busybox")) && b.find("#df-chart svg").is_some());
    shot(&b, "host");
}

#[test]
fn the_guard_wants_the_token_and_refuses_other_sites() {
    let u = ui();
    let a = u.addr.as_str();
    let bearer = format!("Bearer {}", u.token);
    // No token: a page that asks for it, and 401 for the API and sockets.
    let r = http::get(a, "/");
    assert_eq!(r.status, 401);
    assert!(r.text().contains("token"));
    assert_eq!(http::get(a, "/api/containers/json").status, 401);
    assert_eq!(http::request(a, "GET", "/api/containers/json", &[("Authorization", "Bearer wrong")], b"").status, 401);
    // The token: the API under /api, as the socket serves it.
    let r = http::request(a, "GET", "/api/containers/json?all=1", &[("Authorization", &bearer)], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "[]");
    // ?token= sets the cookie and goes to the page without it.
    let r = http::get(a, &format!("/?token={}", u.token));
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/"));
    let cookie = r.header("set-cookie").unwrap_or_default().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let c = cookie.split(';').next().unwrap().to_string();
    let r = http::request(a, "GET", "/", &[("Cookie", &c)], b"");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("id=\"boot\""));
    assert!(r.header("content-security-policy").is_some());
    // Another site's page can't use the cookie: refused before anything is done.
    let body = br#"{"Image":"busybox","Cmd":["true"]}"#;
    let r = http::request(a, "POST", "/api/containers/create", &[("Cookie", &c), ("Origin", "http://evil.example"), ("Content-Type", "application/json"), ("X-Berth-UI", "1")], body);
    assert_eq!(r.status, 403, "{}", r.text());
    let r = http::request(a, "POST", "/api/containers/create", &[("Cookie", &c), ("Content-Type", "text/plain")], body);
    assert_eq!(r.status, 403, "a form post without the page's header: {}", r.text());
    assert_eq!(run_ok(u.d.docker().args(["ps", "-aq"])).trim(), "", "nothing was created");
    // The page's own requests work, and bad input gets the API's answer.
    let r = http::request(a, "POST", "/api/containers/create?name=ok", &[("Cookie", &c), ("Content-Type", "application/json"), ("X-Berth-UI", "1")], body);
    assert_eq!(r.status, 201, "{}", r.text());
    let r = http::request(a, "POST", "/api/containers/nosuch/stop", &[("Cookie", &c), ("X-Berth-UI", "1")], b"");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("No such container"));
    // The exec socket checks its container before upgrading.
    let r = http::request(a, "GET", "/ui/exec?id=nosuch", &[("Cookie", &c), ("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")], b"");
    assert_eq!(r.status, 404, "{}", r.text());
    // Assets are built in and compressed.
    let r = http::request(a, "GET", "/assets/app.js", &[("Cookie", &c), ("Accept-Encoding", "gzip")], b"");
    assert_eq!((r.status, r.header("content-encoding")), (200, Some("gzip")));
}

fn openssl(args: &[&str], dir: &Path) {
    let st = std::process::Command::new("openssl").args(args).current_dir(dir).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).status().unwrap();
    assert!(st.success(), "openssl {args:?}");
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate.
fn make_certs(dir: &Path) {
    openssl(&["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "2", "-subj", "/CN=berth-test-ca"], dir);
    openssl(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server-key.pem", "-out", "server.csr", "-subj", "/CN=127.0.0.1"], dir);
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n").unwrap();
    openssl(&["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial", "-out", "server-cert.pem", "-days", "2", "-extfile", "server.ext"], dir);
    openssl(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "client.csr", "-subj", "/CN=client"], dir);
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    openssl(&["x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial", "-out", "cert.pem", "-days", "2", "-extfile", "client.ext"], dir);
}

#[test]
fn over_tls_a_client_certificate_admits_without_the_token() {
    let certs = berth_testutil::short_tempdir("buicerts");
    make_certs(certs.path());
    let p = |f: &str| certs.path().join(f).display().to_string();
    let d = TestDaemon::start_with(
        Path::new(env!("CARGO_BIN_EXE_berth")),
        &["--ui", "127.0.0.1:0", "--ui-tls", "--tlsverify", "--tlscacert", &p("ca.pem"), "--tlscert", &p("server-cert.pem"), "--tlskey", &p("server-key.pem")],
    );
    let addr = std::fs::read_to_string(d.exec_root.join("ui-addr")).unwrap();
    let curl = |extra: &[&str]| {
        let out = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", &p("ca.pem")])
            .args(extra)
            .arg(format!("https://{addr}/api/containers/json"))
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    // With the CA's client certificate: in, no token needed.
    assert_eq!(curl(&["--cert", &p("cert.pem"), "--key", &p("key.pem")]), (Some(0), "200".to_string()));
    // Without one the TLS handshake itself fails: not even the token is asked for.
    let (code, _) = curl(&[]);
    assert_ne!(code, Some(0));
    // Plain HTTP on the TLS port: no answer.
    let (code, status) = {
        let out = std::process::Command::new("curl").args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &format!("http://{addr}/")]).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    assert!(code != Some(0) || status != "200", "plain HTTP answered {status}");
}
