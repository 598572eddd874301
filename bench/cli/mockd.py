#!/usr/bin/env python3
"""A stand-in daemon for client benchmarks: serves, on a unix socket, the exact
response bytes dockerd sent in fixtures/api-traces/*.txt, for any number of
requests. Both clients talk to the same server, so the difference is the client.

    mockd.py SOCKET TRACE [TRACE...]
"""
import os
import re
import socket
import sys
import threading

MARK = re.compile(r"^#(\d+) ([<>]) ")


def decode(text):
    out = bytearray()
    i = 0
    b = text.encode()
    while i < len(b):
        if b[i:i + 2] == b"\\r":
            out += b"\r"
            i += 2
        elif b[i:i + 2] == b"\\x" and re.match(rb"[0-9a-fA-F]{2}", b[i + 2:i + 4]):
            out.append(int(b[i + 2:i + 4], 16))
            i += 4
        else:
            out.append(b[i])
            i += 1
    return bytes(out)


def framing_ok(r):
    end = r.find(b"\r\n\r\n")
    if end < 0:
        return False
    head = r[:end].lower()
    body = r[end + 4:]
    if head.startswith(b"http/1.1 101"):
        return True
    m = re.search(rb"content-length:\s*(\d+)", head)
    if m:
        return int(m.group(1)) == len(body)
    if b"transfer-encoding: chunked" in head:
        while True:
            i = body.find(b"\r\n")
            if i < 0:
                return False
            try:
                size = int(body[:i], 16)
            except ValueError:
                return False
            body = body[i + 2:]
            if size == 0:
                return body == b"\r\n"
            if body[size:size + 2] != b"\r\n":
                return False
            body = body[size + 2:]
    return True


def exchanges(path):
    events = []
    for line in open(path, encoding="utf-8").read().splitlines(keepends=True):
        m = MARK.match(line)
        if m:
            events.append([int(m.group(1)), m.group(2), line[m.end():]])
        elif events:
            events[-1][2] += line
    out, hijacked = [], set()
    for conn, d, text in events:
        data = decode(text)
        if d == ">":
            if conn in hijacked or not re.match(r"(GET|POST|HEAD|PUT|DELETE) ", text):
                continue
            method, uri = text.split(" ")[:2]
            out.append({"conn": conn, "key": (method, uri), "resp": b"", "cuts": []})
        else:
            x = next((x for x in reversed(out) if x["conn"] == conn), None)
            if x is None:
                continue
            if not x["resp"] and data.startswith(b"HTTP/1.1 101"):
                hijacked.add(conn)
            if data.endswith(b"\n") and not data.endswith(b"\r\n"):
                x["cuts"].append(len(x["resp"]) + len(data) - 1)
            x["resp"] += data
    table = {}
    for x in out:
        r = x["resp"]
        if x["cuts"] and not framing_ok(r):
            fixed = bytearray(r)
            for c in reversed(x["cuts"]):
                del fixed[c]
            if framing_ok(bytes(fixed)):
                r = bytes(fixed)
        table.setdefault(x["key"], r)
    return table


def serve(conn, table):
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            chunk = conn.recv(65536)
            if not chunk:
                return
            buf += chunk
        line = buf.split(b"\r\n", 1)[0].decode()
        method, uri = line.split(" ")[:2]
        resp = table.get((method, uri))
        if resp is None:
            msg = ('{"message":"mockd: not in trace: %s %s"}\n' % (method, uri)).encode()
            resp = b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(msg), msg)
        conn.sendall(resp)
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(65536):
            pass
    except OSError:
        pass
    finally:
        conn.close()


def main():
    sock_path, traces = sys.argv[1], sys.argv[2:]
    table = {}
    for t in traces:
        for k, v in exchanges(t).items():
            table.setdefault(k, v)
    if os.path.exists(sock_path):
        os.unlink(sock_path)
    s = socket.socket(socket.AF_UNIX)
    s.bind(sock_path)
    s.listen(128)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c, table), daemon=True).start()


if __name__ == "__main__":
    main()
