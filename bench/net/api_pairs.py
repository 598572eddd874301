"""Times N network create + remove pairs through a daemon's Engine API, over one kept-alive
unix-socket connection (so the client's own start-up is not measured, only the daemon).
Usage: api_pairs.py /path/to/daemon.sock N [name-prefix]
Prints: total seconds and milliseconds per pair (median of the pairs too)."""
import http.client
import json
import socket
import statistics
import sys
import time


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=60)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def call(conn, method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data else {}
    conn.request(method, url, body=data, headers=headers)
    resp = conn.getresponse()
    payload = resp.read()
    if resp.status >= 300:
        raise SystemExit(f"{method} {url}: {resp.status} {payload!r}")
    return json.loads(payload) if payload and resp.getheader("Content-Type", "").startswith("application/json") else None


def main():
    sock, n = sys.argv[1], int(sys.argv[2])
    prefix = sys.argv[3] if len(sys.argv) > 3 else "pair"
    conn = UnixHTTPConnection(sock)
    call(conn, "GET", "/_ping")
    times = []
    start = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        created = call(conn, "POST", "/networks/create", {"Name": f"{prefix}{i}", "Driver": "bridge"})
        call(conn, "DELETE", f"/networks/{created['Id']}")
        times.append((time.perf_counter() - t) * 1000)
    total = time.perf_counter() - start
    print(f"{total:.3f} {total / n * 1000:.1f} {statistics.median(times):.1f}")


main()
