"""docker-py (Debian's python3-docker) against a berth daemon: the calls a script or a
tool built on the Docker SDK for Python makes. Exits non-zero on the first mismatch.
Usage: docker_py.py unix:///path/to/berth.sock
"""
import sys
import docker

client = docker.DockerClient(base_url=sys.argv[1], version="auto", timeout=60)
assert client.ping() is True
version = client.version()
assert version["ApiVersion"] == "1.51", version
info = client.info()
assert info["Driver"] == "overlay2", info["Driver"]

images = client.images.list()
assert any("busybox:latest" in i.tags for i in images), [i.tags for i in images]
image = client.images.get("busybox")
image.tag("pybox", "v1")
assert "pybox:v1" in client.images.get("pybox:v1").tags

# Foreground run: output as bytes, the container removed.
out = client.containers.run("busybox", ["sh", "-c", "echo hello from $HOSTNAME"], hostname="py", remove=True)
assert out == b"hello from py\n", out

# A failing command raises ContainerError with its exit status.
try:
    client.containers.run("busybox", ["sh", "-c", "exit 3"], remove=True)
    raise AssertionError("no ContainerError")
except docker.errors.ContainerError as e:
    assert e.exit_status == 3, e.exit_status

# Detached: labels, env, exec, logs, attributes, stop, wait, remove.
c = client.containers.run(
    "busybox", ["sh", "-c", "echo started; exec sleep 300"], detach=True, name="pyc",
    labels={"app": "py"}, environment={"GREETING": "hi"},
)
assert c.name == "pyc"
c.reload()
assert c.status == "running", c.status
assert c.labels["app"] == "py"
code, out = c.exec_run(["sh", "-c", "echo $GREETING; exit 4"])
assert (code, out) == (4, b"hi\n"), (code, out)
for _ in range(100):
    if b"started" in c.logs():
        break
assert c.logs() == b"started\n", c.logs()
assert [x.name for x in client.containers.list(filters={"label": "app=py"})] == ["pyc"]
top = c.top()
assert any("sleep" in " ".join(p) for p in top["Processes"]), top
stats = c.stats(stream=False)
assert "memory_stats" in stats and "cpu_stats" in stats, list(stats)
c.stop(timeout=1)
assert c.wait()["StatusCode"] == 137
c.reload()
assert c.status == "exited"
c.remove()
try:
    client.containers.get("pyc")
    raise AssertionError("container still there")
except docker.errors.NotFound:
    pass

# Networks and volumes.
net = client.networks.create("pynet", labels={"app": "py"})
vol = client.volumes.create("pyvol", labels={"app": "py"})
out = client.containers.run(
    "busybox", ["sh", "-c", "echo kept > /data/f; cat /data/f; ip -o -4 addr show eth0 | wc -l"],
    network="pynet", volumes={"pyvol": {"bind": "/data", "mode": "rw"}}, remove=True,
)
assert out == b"kept\n1\n", out
out = client.containers.run("busybox", ["cat", "/data/f"], volumes=["pyvol:/data:ro"], remove=True)
assert out == b"kept\n", out
assert client.networks.get("pynet").attrs["Labels"] == {"app": "py"}
assert client.volumes.get("pyvol").attrs["Labels"] == {"app": "py"}
net.remove()
vol.remove()

# Errors come back typed.
try:
    client.images.get("no-such-image:1")
    raise AssertionError("no ImageNotFound")
except docker.errors.ImageNotFound:
    pass
try:
    client.containers.run("busybox", ["true"], name="bad/name")
    raise AssertionError("no APIError")
except docker.errors.APIError as e:
    assert e.status_code == 400, e.status_code

# Events over a time window.
import time
since = int(time.time())
client.containers.run("busybox", ["true"], name="pyev", remove=True)
events = list(client.events(since=since, until=int(time.time()) + 1, decode=True, filters={"container": "pyev"}))
actions = [e["Action"] for e in events]
assert "start" in actions and "die" in actions, actions
print("docker-py ok")
