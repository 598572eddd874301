"""docker-py's own link test (test_create_with_links, APIClient) against a berth
daemon: two containers with environment, a third linked to both on the default
bridge prints its environment. Usage: docker_py_links.py unix:///path/to/berth.sock
"""
import sys
import docker

api = docker.APIClient(base_url=sys.argv[1], version="auto", timeout=60)
ids = []
for foo in ("1", "2"):
    c = api.create_container("busybox", "cat", detach=True, stdin_open=True, environment={"FOO": foo})
    api.start(c["Id"])
    ids.append(c["Id"])
names = [api.inspect_container(i)["Name"][1:] for i in ids]
aliases = ["mylink1", "mylink2"]
hc = api.create_host_config(links={names[0]: aliases[0], names[1]: aliases[1]}, network_mode="bridge")
c3 = api.create_container("busybox", "env", host_config=hc)
api.start(c3["Id"])
assert api.wait(c3["Id"])["StatusCode"] == 0
logs = api.logs(c3["Id"]).decode("utf-8")
for alias, foo in zip(aliases, ("1", "2")):
    prefix = alias.upper()
    assert f"{prefix}_NAME=" in logs, logs
    assert f"{prefix}_ENV_FOO={foo}" in logs, logs
links = api.inspect_container(c3["Id"])["HostConfig"]["Links"]
assert sorted(links) == sorted(f"/{n}:/{api.inspect_container(c3['Id'])['Name'][1:]}/{a}" for n, a in zip(names, aliases)), links
for i in ids + [c3["Id"]]:
    api.remove_container(i, force=True)
print("docker-py links ok")
