"""docker-py's network API tests (as in its tests/integration/api_network_test.py), run
with Debian's python3-docker against a berth daemon: IPAM pools, IPv6 networks, fixed
IPv4/IPv6 addresses and link-local IPs on connect, aliases, disconnect, errors, prune.
Usage: docker_py_networks.py unix:///path/to/berth.sock
"""
import sys
import docker
from docker.types import IPAMConfig, IPAMPool

api = docker.APIClient(base_url=sys.argv[1], version="auto", timeout=60)

# Create with an IPAM pool: subnet, ip range, gateway, aux addresses.
pool = IPAMPool(subnet="172.28.0.0/16", iprange="172.28.5.0/24", gateway="172.28.5.254", aux_addresses={"a": "172.28.1.5"})
net = api.create_network("pyipam", ipam=IPAMConfig(driver="default", pool_configs=[pool]))
cfg = api.inspect_network(net["Id"])["IPAM"]["Config"][0]
assert cfg["Subnet"] == "172.28.0.0/16" and cfg["IPRange"] == "172.28.5.0/24", cfg
assert cfg["Gateway"] == "172.28.5.254" and cfg["AuxiliaryAddresses"] == {"a": "172.28.1.5"}, cfg

# IPv6.
v6 = api.create_network("pyv6", enable_ipv6=True, ipam=IPAMConfig(pool_configs=[
    IPAMPool(subnet="172.27.0.0/16"), IPAMPool(subnet="2001:389::/64")]))
info = api.inspect_network(v6["Id"])
assert info["EnableIPv6"] is True, info
assert any(c["Subnet"] == "2001:389::/64" for c in info["IPAM"]["Config"]), info["IPAM"]

# Connect with fixed IPv4 and IPv6 addresses, and aliases.
c = api.create_container("busybox", "top", host_config=api.create_host_config(network_mode="pyipam"))
api.start(c["Id"])
api.connect_container_to_network(c["Id"], v6["Id"], ipv4_address="172.27.0.9", ipv6_address="2001:389::f00d", aliases=["foo", "bar"])
ep = api.inspect_container(c["Id"])["NetworkSettings"]["Networks"]["pyv6"]
assert ep["IPAMConfig"]["IPv4Address"] == "172.27.0.9" and ep["IPAMConfig"]["IPv6Address"] == "2001:389::f00d", ep
assert ep["IPAddress"] == "172.27.0.9" and ep["GlobalIPv6Address"] == "2001:389::f00d", ep
assert set(ep["Aliases"]) >= {"foo", "bar"}, ep
members = api.inspect_network(v6["Id"])["Containers"]
assert members[c["Id"]]["IPv6Address"] == "2001:389::f00d/64", members

# Link-local IPs at create.
ll = api.create_container(
    "busybox", "top", host_config=api.create_host_config(network_mode="pyipam"),
    networking_config=api.create_networking_config({"pyipam": api.create_endpoint_config(link_local_ips=["169.254.8.8"])}),
)
api.start(ll["Id"])
assert api.inspect_container(ll["Id"])["NetworkSettings"]["Networks"]["pyipam"]["IPAMConfig"]["LinkLocalIPs"] == ["169.254.8.8"]

# Disconnect, and Docker's errors.
api.disconnect_container_from_network(c["Id"], v6["Id"])
assert "pyv6" not in api.inspect_container(c["Id"])["NetworkSettings"]["Networks"]
try:
    api.create_network("anotherhost", driver="host")
    raise AssertionError("a second host network was created")
except docker.errors.APIError as e:
    assert e.status_code == 403, e
try:
    api.connect_container_to_network(c["Id"], v6["Id"], ipv6_address="2001:389::f00d", ipv4_address="172.27.0.9")
    api.connect_container_to_network(ll["Id"], v6["Id"], ipv6_address="2001:389::f00d")
    raise AssertionError("an address was given twice")
except docker.errors.APIError as e:
    assert "Address already in use" in str(e), e

for x in (c, ll):
    api.remove_container(x["Id"], force=True)
api.remove_network(v6["Id"])
try:
    api.inspect_network(v6["Id"])
    raise AssertionError("network still there")
except docker.errors.NotFound:
    pass
pruned = api.prune_networks()
assert "pyipam" in (pruned["NetworksDeleted"] or []), pruned
print("docker-py networks ok")
