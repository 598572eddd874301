"""schemathesis hooks for scripts/fuzz-api.sh: berth's honest 5xx check.

A 5xx answer to a generated request is a failure, with one documented exception:
the swarm, node, service, task, secret and config endpoints (and cluster volume
updates) are out of berth's scope and answer 503 "This node is not a swarm manager ..."
as dockerd does outside swarm mode; managed plugins answer 501 "plugins are not
supported by berth". Everything else the fuzzer sends is bad input or names objects that do not
exist, so the right answers are 2xx/3xx/4xx with a JSON {"message": ...} body.
"""
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
