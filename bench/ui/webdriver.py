#!/usr/bin/env python3
"""Times berth's dashboard in headless Chromium (Debian's chromium + chromium-driver)
over W3C WebDriver, with the standard library only.

  webdriver.py timing URL TOKEN RUNS      first byte -> load event of the container list
  webdriver.py hold URL TOKEN SECONDS     keeps the list open (live stats) for SECONDS
  webdriver.py shot URL TOKEN OUT.png W H PATH...   screenshots of pages (docs)

Prints JSON. Chromium runs with the flags this machine needs (root, no network)."""
import json, os, shutil, socket, statistics, subprocess, sys, tempfile, time, urllib.request

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Browser:
    def __init__(self, width=1400, height=900):
        self.port = free_port()
        self.profile = tempfile.mkdtemp(prefix="bench-chromium")
        self.driver = subprocess.Popen(["chromedriver", f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                self.call("GET", "/status")
                break
            except OSError:
                time.sleep(0.05)
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium", "args": FLAGS + [f"--window-size={width},{height}", f"--user-data-dir={self.profile}/data"]}}}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.loads(r.read())["value"]

    def cmd(self, method, path, body=None):
        return self.call(method, f"/session/{self.session}{path}", body)

    def goto(self, url):
        self.cmd("POST", "/url", {"url": url})

    def script(self, src):
        return self.cmd("POST", "/execute/sync", {"script": src, "args": []})

    def wait(self, src, secs=30):
        end = time.time() + secs
        while time.time() < end:
            if self.script(src):
                return
            time.sleep(0.05)
        raise SystemExit(f"timed out waiting for {src}")

    def close(self):
        try:
            self.cmd("DELETE", "")
        except OSError:
            pass
        self.driver.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


TIMING = """const n = performance.getEntriesByType('navigation')[0];
return {ttfb: n.responseStart, dcl: n.domContentLoadedEventEnd - n.responseStart, load: n.loadEventEnd - n.responseStart,
        bytes: n.transferSize, rows: document.querySelectorAll('#containers tbody tr').length};"""


def main():
    mode, url, token = sys.argv[1], sys.argv[2].rstrip("/"), sys.argv[3]
    b = Browser(*(int(x) for x in sys.argv[5:7])) if mode == "shot" else Browser()
    try:
        b.goto(f"{url}/?token={token}")  # the cookie, once
        b.wait("return document.documentElement.dataset.ready === '1'")
        if mode == "timing":
            samples = []
            for _ in range(int(sys.argv[4])):
                b.goto(f"{url}/")
                b.wait("const n = performance.getEntriesByType('navigation')[0]; return n && n.loadEventEnd > 0")
                samples.append(b.script(TIMING))
            loads = sorted(s["load"] for s in samples)
            print(json.dumps({"runs": len(samples), "rows": samples[-1]["rows"], "html_bytes": samples[-1]["bytes"],
                              "load_median_ms": statistics.median(loads), "load_min_ms": loads[0], "load_max_ms": loads[-1],
                              "dcl_median_ms": statistics.median(s["dcl"] for s in samples),
                              "ttfb_median_ms": statistics.median(s["ttfb"] for s in samples)}))
        elif mode == "hold":
            b.goto(f"{url}/")
            end = time.time() + float(sys.argv[4])
            drawn = 0
            while time.time() < end:
                drawn = b.script("return document.querySelectorAll('#containers td.cpu .v').length ? [...document.querySelectorAll('#containers td.cpu .v')].filter(e => e.textContent).length : 0")
                time.sleep(1)
            print(json.dumps({"rows_with_live_cpu": drawn}))
        elif mode == "shot":
            out = sys.argv[4]
            for i, path in enumerate(sys.argv[7:]):
                b.goto(f"{url}/{path}")
                time.sleep(4)
                png = b.cmd("GET", "/screenshot")
                import base64
                name = out.replace(".png", f"-{i}.png") if len(sys.argv) > 8 else out
                with open(name, "wb") as f:
                    f.write(base64.b64decode(png))
            print(json.dumps({"shots": len(sys.argv) - 7}))
    finally:
        b.close()


if __name__ == "__main__":
    main()
