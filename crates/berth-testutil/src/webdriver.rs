//! A small W3C WebDriver client and a headless Chromium under chromedriver (Debian's
//! `chromium` and `chromium-driver`), for the dashboard's browser tests and bench. Just
//! the commands those need: navigate, find, click, type, read, run a script, press keys,
//! take a screenshot.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The flags Chromium needs on these machines (root, no network, no GPU).
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,900",
];

pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    profile: tempfile::TempDir,
}

#[derive(Debug, Clone)]
pub struct Element(pub String);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// One WebDriver command: returns the `value` of the answer, or the error's message.
fn call(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("chromedriver: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(120))).map_err(|e| e.to_string())?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let payload = crate::http::read_response(&mut s).map_err(|e| e.to_string())?.body;
    let v: Value = serde_json::from_slice(&payload).map_err(|e| format!("bad WebDriver answer: {e}"))?;
    let value = v.get("value").cloned().unwrap_or(Value::Null);
    if let Some(err) = value.get("error").and_then(Value::as_str) {
        return Err(format!("{err}: {}", value.get("message").and_then(Value::as_str).unwrap_or("")));
    }
    Ok(value)
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub fn start() -> Browser {
        let driver_bin = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"].into_iter().find(|p| Path::new(p).exists()).expect("chromedriver (Debian's chromium-driver; scripts/setup.sh --test installs it)");
        let chromium = ["/usr/bin/chromium", "/usr/lib/chromium/chromium"].into_iter().find(|p| Path::new(p).exists()).expect("chromium");
        let profile = tempfile::Builder::new().prefix("bt-chromium").tempdir_in("/tmp").expect("profile dir");
        let port = free_port();
        let log = std::fs::File::create(profile.path().join("chromedriver.log")).expect("log");
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(30);
        while call(port, "GET", "/status", None).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer");
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().join("data").display()));
        // The browser's own record of its network errors, for a failure's message.
        args.push(format!("--log-net-log={}", profile.path().join("netlog.json").display()));
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {"binary": chromium, "args": args}}}});
        let v = call(port, "POST", "/session", Some(&caps)).unwrap_or_else(|e| panic!("new session: {e}"));
        let session = v["sessionId"].as_str().expect("session id").to_string();
        Browser { driver, port, session, profile }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        call(self.port, method, &format!("/session/{}{path}", self.session), body.as_ref())
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({"url": url}))).unwrap_or_else(|e| panic!("navigate to {url}: {e}"));
    }

    pub fn url(&self) -> String {
        self.cmd("GET", "/url", None).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
    }

    pub fn find(&self, css: &str) -> Option<Element> {
        let v = self.cmd("POST", "/element", Some(json!({"using": "css selector", "value": css}))).ok()?;
        v.get(ELEMENT_KEY).and_then(Value::as_str).map(|s| Element(s.to_string()))
    }

    pub fn find_all(&self, css: &str) -> Vec<Element> {
        let v = self.cmd("POST", "/elements", Some(json!({"using": "css selector", "value": css}))).unwrap_or(Value::Null);
        v.as_array().map(|a| a.iter().filter_map(|e| e.get(ELEMENT_KEY).and_then(Value::as_str)).map(|s| Element(s.to_string())).collect()).unwrap_or_default()
    }

    /// Waits (up to `secs`) for an element to appear.
    pub fn wait_for(&self, css: &str, secs: u64) -> Element {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(e) = self.find(css) {
                return e;
            }
            if Instant::now() >= deadline {
                // What the page held, for whoever reads the failure.
                let body = self.script("return document.body ? document.body.innerText : ''", vec![]);
                let text: String = body.as_str().unwrap_or_default().chars().take(1500).collect();
                // And what it loaded (a script that failed to load or run leaves the page
                // half drawn): each resource's status and time.
                let js = "return performance.getEntriesByType('resource').map(e => `${e.name} ${e.responseStatus ?? '?'} ${Math.round(e.duration)}ms`).join('\\n')";
                let loads = self.cmd("POST", "/execute/sync", Some(json!({"script": js, "args": []}))).unwrap_or(Value::Null);
                let loads = loads.as_str().unwrap_or_default().to_string();
                let errors = self.net_errors();
                panic!("no element {css:?} after {secs}s on {}; the page's text:\n{text}\nits resources:\n{loads}\nthe browser's network errors:\n{errors}", self.url());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The network errors Chromium logged so far for URLs of the current page's origin,
    /// one line each: the URL and the error's name (its own background requests to
    /// sites it cannot resolve offline are left out). The net log is written as it goes, one event
    /// per line after the constants, so it is read line by line before it is closed.
    pub fn net_errors(&self) -> String {
        let text = std::fs::read_to_string(self.profile.path().join("netlog.json")).unwrap_or_default();
        let mut names = std::collections::HashMap::new();
        let mut urls = std::collections::HashMap::new();
        let page = self.url();
        let origin: String = page.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
        let mut out = Vec::new();
        for line in text.lines() {
            let line = line.trim_end_matches(',');
            if let Some(c) = line.strip_prefix("{\"constants\":")
                && let Ok(v) = serde_json::from_str::<Value>(c)
                && let Some(m) = v["netError"].as_object()
            {
                names = m.iter().filter_map(|(k, v)| Some((v.as_i64()?, k.clone()))).collect();
                continue;
            }
            let Ok(ev) = serde_json::from_str::<Value>(line) else { continue };
            let id = ev["source"]["id"].as_i64().unwrap_or(-1);
            if let Some(u) = ev["params"]["url"].as_str() {
                urls.insert(id, u.to_string());
            }
            if let Some(code) = ev["params"]["net_error"].as_i64().filter(|c| *c != 0) {
                let Some(url) = urls.get(&id).filter(|u| u.starts_with(&origin)) else { continue };
                let name = names.get(&code).cloned().unwrap_or_else(|| code.to_string());
                out.push(format!("{url}: {name}"));
            }
        }
        out.dedup();
        out.join("\n")
    }

    /// Waits (up to `secs`) until `f` holds; panics with `what` otherwise.
    pub fn wait_until(&self, secs: u64, what: &str, mut f: impl FnMut(&Browser) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !f(self) {
            assert!(Instant::now() < deadline, "timed out after {secs}s waiting for {what} on {}", self.url());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn click(&self, e: &Element) {
        self.cmd("POST", &format!("/element/{}/click", e.0), Some(json!({}))).unwrap_or_else(|err| panic!("click: {err}"));
    }

    pub fn type_into(&self, e: &Element, text: &str) {
        self.cmd("POST", &format!("/element/{}/value", e.0), Some(json!({"text": text}))).unwrap_or_else(|err| panic!("type: {err}"));
    }

    pub fn text(&self, e: &Element) -> String {
        self.cmd("GET", &format!("/element/{}/text", e.0), None).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
    }

    pub fn attr(&self, e: &Element, name: &str) -> Option<String> {
        self.cmd("GET", &format!("/element/{}/attribute/{name}", e.0), None).ok().and_then(|v| v.as_str().map(str::to_string))
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub fn script(&self, script: &str, args: Vec<Value>) -> Value {
        self.cmd("POST", "/execute/sync", Some(json!({"script": script, "args": args}))).unwrap_or_else(|e| panic!("script: {e}"))
    }

    /// Types `text` as key presses into whatever has the focus (no interactability
    /// check, unlike typing into an element): `\n` is Enter.
    pub fn keys(&self, text: &str) {
        let mut actions = Vec::new();
        for c in text.chars() {
            let k = if c == '\n' { "\u{E007}".to_string() } else { c.to_string() };
            actions.push(json!({"type": "keyDown", "value": k}));
            actions.push(json!({"type": "keyUp", "value": k}));
        }
        self.cmd("POST", "/actions", Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]}))).unwrap_or_else(|e| panic!("keys: {e}"));
    }

    /// Saves a PNG of the viewport to `path`.
    pub fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let v = self.cmd("GET", "/screenshot", None).unwrap_or_else(|e| panic!("screenshot: {e}"));
        let png = base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or("")).expect("base64 PNG");
        std::fs::write(path, png).expect("write screenshot");
    }

    /// The browser's console messages so far (for failures).
    pub fn console(&self) -> String {
        self.cmd("POST", "/se/log", Some(json!({"type": "browser"}))).map(|v| v.to_string()).unwrap_or_default()
    }

    pub fn profile_dir(&self) -> PathBuf {
        self.profile.path().to_path_buf()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.cmd("DELETE", "", None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
