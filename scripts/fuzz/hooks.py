"""schemathesis hooks for scripts/fuzz-api.sh: berth's honest 5xx check.

A 5xx answer to a generated request is a failure, with one documented exception:
the swarm, node, service, task, secret and config endpoints (and cluster volume
updates) are out of berth's scope and answer 503 "This node is not a swarm manager ..."
as dockerd does outside swarm mode; managed plugins answer 501 "plugins are not
supported by berth". Everything else the fuzzer sends is bad input or names objects that do not
exist, so the right answers are 2xx/3xx/4xx with a JSON {"message": ...} body.
"""
import os
import re

import schemathesis

SWARM = re.compile(r"^(/v[0-9.]+)?/(swarm|nodes|services|tasks|secrets|configs)(/|$)")
PLUGINS = re.compile(r"^(/v[0-9.]+)?/plugins(/|$)")


class RawBytes:
    """Tar and raw bodies (images/load, containers/{id}/archive, build): whatever bytes
    or text was generated, sent as is. Not a valid tar, so the daemon must say 400."""

    def _data(self, value):
        if isinstance(value, bytes):
            return value
        if isinstance(value, str):
            return value.encode("utf-8", "surrogatepass")
        return repr(value).encode()

    def as_requests(self, context, value):
        return {"data": self._data(value)}

    def as_werkzeug(self, context, value):
        return {"data": self._data(value)}


for _media_type in ("application/x-tar", "application/octet-stream"):
    schemathesis.serializer(_media_type)(RawBytes)


@schemathesis.check
def berth_no_server_error(response, case):
    status = response.status_code
    if status < 500:
        if status >= 400 and case.method.upper() != "HEAD":
            ctype = response.headers.get("Content-Type", "")
            if "json" in ctype:
                try:
                    body = response.json()
                except ValueError:
                    raise AssertionError(f"{status} with a body that is not JSON")
                if not isinstance(body, dict) or not isinstance(body.get("message"), str):
                    raise AssertionError(f"{status} without a {{\"message\": ...}} body: {response.text[:200]!r}")
        return None
    path = case.operation.path
    if status == 503 and "swarm" in response.text and (SWARM.match(path) or (case.method.upper() == "PUT" and path == "/volumes/{name}")):
        # Swarm and cluster volumes: dockerd's own answer outside swarm mode.
        return None
    if status == 501 and PLUGINS.match(path) and "not supported" in response.text:
        # Managed plugins are out of berth's scope (docs/compat.md): a documented 501.
        return None
    raise AssertionError(f"server error {status} for {case.method} {case.formatted_path}: {response.text[:300]!r}")


# Stateful mode: the sequences start from containers that really get made, so a create
# keeps only generated fields that cannot reach the host or fail validation wholesale
# (the stateless run already fuzzes the rest of the create body): the image is `fuzz`
# (tagged by the test), no HostConfig (a generated "Binds": ["/:/x"] plus a generated
# archive upload would write into the host), no volumes or networking config.
# The command is `sleep 30` so that start, pause, exec, top and stop meet a running
# container; a stop or restart waits at most 2 s for it (a generated `t` could be hours).
CREATE_FIELDS = ("Hostname", "Domainname", "User", "Tty", "OpenStdin", "StdinOnce", "Env", "Labels",
                 "WorkingDir", "StopSignal", "StopTimeout", "AttachStdin", "AttachStdout", "AttachStderr")


if os.environ.get("FUZZ_STATEFUL") == "1":
    @schemathesis.hook("map_body")
    def only_safe_containers(context, body):
        if context.operation.path == "/containers/create" and isinstance(body, dict):
            body = {k: v for k, v in body.items() if k in CREATE_FIELDS}
            body["Image"] = "fuzz"
            body["Cmd"] = ["sleep", "30"]
            if not isinstance(body.get("StopTimeout"), int) or not 0 <= body["StopTimeout"] <= 2:
                body.pop("StopTimeout", None)
        return body

    @schemathesis.hook("map_query")
    def default_create_query(context, query):
        # A generated name or platform would refuse most creates outright.
        if context.operation.path == "/containers/create" and isinstance(query, dict):
            query = {k: v for k, v in query.items() if k not in ("name", "platform")}
        if context.operation.path in ("/containers/{id}/stop", "/containers/{id}/restart") and isinstance(query, dict):
            query["t"] = 1
        return query
