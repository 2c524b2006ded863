"""Just enough of a Kubernetes API server for the real `kubectl` to run `kubectl podpath`.

No API server can run here, but kubectl can: this one answers discovery, nodes and pods
from memory on 127.0.0.1 of a network namespace of its own (run it under `unshare
--net`), records every pod kubectl creates or deletes, and stands in for kubelet only
where it must: a created pod is at once Running, an attach is refused (kubectl then
streams the container's log instead, as it does against a real cluster when an attach
fails), and the log of a pod is what the test put in `logs/NODE`.

kubectl 1.32 sends the pods it creates as protobuf (application/vnd.kubernetes.protobuf):
they are decoded with the field numbers of k8s.io/api core/v1 and apimachinery meta/v1
`generated.proto` for the fields a node debug pod uses; a field outside that table is
kept as "#NUMBER" so that a test comparing pods sees it.

    unshare --net -- python fake_apiserver.py STATE_DIR -- COMMAND...

runs COMMAND with KUBECONFIG pointing here, then writes STATE_DIR/record.json.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

# message -> field number -> (JSON name, type, repeated). Types: string, bool, int,
# bytes, map (map<string, string>), or another message of this table. Field numbers
# from kubernetes/api core/v1/generated.proto and kubernetes/apimachinery
# pkg/apis/meta/v1 and pkg/runtime generated.proto.
Field = tuple[str, str, bool]
SCHEMA: dict[str, dict[int, Field]] = {
    "Unknown": {1: ("typeMeta", "TypeMeta", False), 2: ("raw", "bytes", False)},
    "TypeMeta": {1: ("apiVersion", "string", False), 2: ("kind", "string", False)},
    "Pod": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "PodSpec", False)},
    "ObjectMeta": {
        1: ("name", "string", False),
        2: ("generateName", "string", False),
        3: ("namespace", "string", False),
        11: ("labels", "map", False),
        12: ("annotations", "map", False),
    },
    "PodSpec": {
        1: ("volumes", "Volume", True),
        2: ("containers", "Container", True),
        3: ("restartPolicy", "string", False),
        10: ("nodeName", "string", False),
        11: ("hostNetwork", "bool", False),
        12: ("hostPID", "bool", False),
        13: ("hostIPC", "bool", False),
        22: ("tolerations", "Toleration", True),
        27: ("shareProcessNamespace", "bool", False),
    },
    "Container": {
        1: ("name", "string", False),
        2: ("image", "string", False),
        3: ("command", "string", True),
        4: ("args", "string", True),
        5: ("workingDir", "string", False),
        7: ("env", "EnvVar", True),
        9: ("volumeMounts", "VolumeMount", True),
        13: ("terminationMessagePath", "string", False),
        14: ("imagePullPolicy", "string", False),
        15: ("securityContext", "SecurityContext", False),
        16: ("stdin", "bool", False),
        17: ("stdinOnce", "bool", False),
        18: ("tty", "bool", False),
        20: ("terminationMessagePolicy", "string", False),
    },
    "EnvVar": {1: ("name", "string", False), 2: ("value", "string", False)},
    "VolumeMount": {
        1: ("name", "string", False),
        2: ("readOnly", "bool", False),
        3: ("mountPath", "string", False),
        4: ("subPath", "string", False),
        5: ("mountPropagation", "string", False),
    },
    # Volume's VolumeSource (field 2) is inlined in JSON: see _inline.
    "Volume": {1: ("name", "string", False), 2: ("volumeSource", "VolumeSource", False)},
    "VolumeSource": {1: ("hostPath", "HostPathVolumeSource", False)},
    "HostPathVolumeSource": {1: ("path", "string", False), 2: ("type", "string", False)},
    "SecurityContext": {
        1: ("capabilities", "Capabilities", False),
        2: ("privileged", "bool", False),
        4: ("runAsUser", "int", False),
        5: ("runAsNonRoot", "bool", False),
        7: ("allowPrivilegeEscalation", "bool", False),
    },
    "Capabilities": {1: ("add", "string", True), 2: ("drop", "string", True)},
    "Toleration": {
        1: ("key", "string", False),
        2: ("operator", "string", False),
        3: ("value", "string", False),
        4: ("effect", "string", False),
    },
}
PROTOBUF_MAGIC = b"k8s\x00"


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of one message, in order."""
    out: list[tuple[int, int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos : pos + size], pos + size
        elif wire == 1:
            value, pos = int.from_bytes(data[pos : pos + 8], "little"), pos + 8
        elif wire == 5:
            value, pos = int.from_bytes(data[pos : pos + 4], "little"), pos + 4
        else:
            raise ValueError(f"wire type {wire} at {pos}")
        out.append((number, wire, value))
    return out


def decode(data: bytes, message: str) -> dict[str, Any]:
    """A protobuf message as the JSON object Kubernetes would print (empty values kept)."""
    table = SCHEMA.get(message, {})
    out: dict[str, Any] = {}
    for number, _wire, value in _fields(data):
        name, kind, repeated = table.get(number, (f"#{number}", "unknown", False))
        item: Any
        if kind == "unknown":
            item = _unknown(value)
        elif kind == "string":
            assert isinstance(value, bytes)
            item = value.decode()
        elif kind == "bool":
            item = bool(value)
        elif kind == "int" or isinstance(value, int):
            item = value
        elif kind == "bytes":
            item = value
        elif kind == "map":
            entry = {n: v for n, _, v in _fields(value)}
            key, val = entry.get(1, b""), entry.get(2, b"")
            assert isinstance(key, bytes) and isinstance(val, bytes)
            out.setdefault(name, {})[key.decode()] = val.decode()
            continue
        else:
            item = decode(value, kind)
        if repeated:
            out.setdefault(name, []).append(item)
        else:
            out[name] = item
    return _inline(out)


def _unknown(value: int | bytes) -> Any:
    """A field outside SCHEMA: a nested message if it parses as one, else its bytes in hex."""
    if isinstance(value, int):
        return value
    try:
        return decode(value, "")
    except (ValueError, IndexError):
        return value.hex()


def _inline(obj: dict[str, Any]) -> dict[str, Any]:
    source = obj.pop("volumeSource", None)
    if isinstance(source, dict):
        obj.update(source)
    return obj


def decode_object(body: bytes) -> dict[str, Any]:
    """A request body (protobuf with the k8s envelope, or JSON) as a JSON object."""
    if not body.startswith(PROTOBUF_MAGIC):
        result: dict[str, Any] = json.loads(body)
        return result
    envelope = decode(body[len(PROTOBUF_MAGIC) :], "Unknown")
    kind = envelope["typeMeta"]["kind"]
    obj = decode(envelope["raw"], kind)
    return {**envelope["typeMeta"], **obj}


def drop_empty(value: Any) -> Any:
    """The object without "", False, 0, [] and {} values (what JSON's omitempty leaves out)."""
    if isinstance(value, dict):
        kept = {k: drop_empty(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in ("", False, 0, [], {}, None)}
    if isinstance(value, list):
        return [drop_empty(v) for v in value]
    return value


# --- the server ------------------------------------------------------------------------------

DISCOVERY = {
    "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
    "/api/v1": {
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {
                "name": "nodes",
                "singularName": "node",
                "namespaced": False,
                "kind": "Node",
                "verbs": ["get", "list"],
                "shortNames": ["no"],
            },
            {
                "name": "pods",
                "singularName": "pod",
                "namespaced": True,
                "kind": "Pod",
                "verbs": ["create", "delete", "get", "list", "watch"],
                "shortNames": ["po"],
            },
            {"name": "pods/attach", "namespaced": True, "kind": "PodAttachOptions", "verbs": []},
            {"name": "pods/log", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
        ],
    },
    "/version": {"major": "1", "minor": "32", "gitVersion": "v1.32.0", "platform": "linux/amd64"},
}


class State:
    """What the server knows and what it saw."""

    def __init__(self, root: Path, nodes: list[str]) -> None:
        self.root = root
        self.nodes = nodes
        self.pods: dict[str, dict[str, Any]] = {}
        self.created: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.requests: list[str] = []
        self.lock = threading.Lock()

    def running(self, pod: dict[str, Any]) -> dict[str, Any]:
        """The pod as the API server returns it once kubelet runs it."""
        out: dict[str, Any] = json.loads(json.dumps(pod))
        out["apiVersion"], out["kind"] = "v1", "Pod"
        meta = out.setdefault("metadata", {})
        meta.update(namespace="default", uid=f"uid-{meta['name']}", resourceVersion="2")
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        names = [c["name"] for c in out["spec"]["containers"]]
        out["status"] = {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": n,
                    "ready": True,
                    "restartCount": 0,
                    "image": "",
                    "imageID": "",
                    "state": {"running": {"startedAt": "2026-01-01T00:00:01Z"}},
                }
                for n in names
            ],
        }
        return out


def _handler(state: State) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, code: int, obj: Any, content_type: str = "application/json") -> None:
            body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _status(self, code: int, reason: str, message: str) -> None:
            self._send(
                code,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "reason": reason,
                    "code": code,
                    "message": message,
                },
            )

        def _note(self) -> tuple[str, dict[str, list[str]]]:
            url = urllib.parse.urlsplit(self.path)
            with state.lock:
                state.requests.append(f"{self.command} {url.path}")
            return url.path, urllib.parse.parse_qs(url.query)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path, query = self._note()
            pods = "/api/v1/namespaces/default/pods"
            if path in DISCOVERY:
                self._send(200, DISCOVERY[path])
            elif path == "/api/v1/nodes":
                items = [{"metadata": {"name": n}} for n in state.nodes]
                self._send(200, {"kind": "NodeList", "apiVersion": "v1", "items": items})
            elif path.startswith("/api/v1/nodes/"):
                name = path.rsplit("/", 1)[1]
                if name not in state.nodes:
                    self._status(404, "NotFound", f'nodes "{name}" not found')
                else:
                    self._send(
                        200, {"kind": "Node", "apiVersion": "v1", "metadata": {"name": name}}
                    )
            elif path == pods:
                if query.get("watch") == ["true"]:
                    # Nothing changes after the list: an empty watch that ends.
                    self._send(200, b"", "application/json")
                    return
                wanted = query.get("fieldSelector", [""])[0].removeprefix("metadata.name=")
                with state.lock:
                    items = [
                        state.running(p)
                        for n, p in sorted(state.pods.items())
                        if not wanted or n == wanted
                    ]
                self._send(
                    200,
                    {
                        "kind": "PodList",
                        "apiVersion": "v1",
                        "metadata": {"resourceVersion": "2"},
                        "items": items,
                    },
                )
            elif path.startswith(pods + "/") and path.endswith("/log"):
                name = path.split("/")[-2]
                with state.lock:
                    pod = state.pods.get(name)
                if pod is None:
                    self._status(404, "NotFound", f'pods "{name}" not found')
                    return
                log = state.root / "logs" / pod["spec"]["nodeName"]
                self._send(200, log.read_bytes() if log.exists() else b"", "text/plain")
            elif path.startswith(pods + "/"):
                name = path.rsplit("/", 1)[1]
                with state.lock:
                    pod = state.pods.get(name)
                if pod is None:
                    self._status(404, "NotFound", f'pods "{name}" not found')
                else:
                    self._send(200, state.running(pod))
            else:
                self._status(404, "NotFound", f"{path} is not served here")

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            path, _ = self._note()
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if path.endswith("/attach"):
                # No kubelet streams here: kubectl falls back to the container's log.
                self._status(400, "BadRequest", "attach is not served here")
                return
            if path != "/api/v1/namespaces/default/pods":
                self._status(404, "NotFound", f"{path} is not served here")
                return
            pod = decode_object(body)
            with state.lock:
                state.created.append(pod)
                state.pods[pod["metadata"]["name"]] = pod
                self._send(201, state.running(pod))

        def do_DELETE(self) -> None:  # noqa: N802 - http.server's name
            path, _ = self._note()
            self.rfile.read(int(self.headers.get("Content-Length") or 0))  # DeleteOptions
            name = path.rsplit("/", 1)[1]
            with state.lock:
                pod = state.pods.pop(name, None)
                if pod is not None:
                    state.deleted.append(name)
            if pod is None:
                self._status(404, "NotFound", f'pods "{name}" not found')
            else:
                self._send(200, state.running(pod))

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

    return Handler


KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{{name: fake, cluster: {{server: "http://127.0.0.1:{port}"}}}}]
users: [{{name: fake, user: {{}}}}]
contexts: [{{name: fake, context: {{cluster: fake, user: fake, namespace: default}}}}]
current-context: fake
"""


def main(argv: list[str]) -> int:
    """Serve, run the command against this server, write STATE_DIR/record.json."""
    root = Path(argv[0])
    command = argv[argv.index("--") + 1 :]
    nodes = json.loads((root / "nodes.json").read_text()) if (root / "nodes.json").exists() else []
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    state = State(root, nodes)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = root / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG.format(port=server.server_address[1]))
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(root)}
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, env=env, timeout=300, check=False)
    server.shutdown()
    record = {
        "returncode": done.returncode,
        "stdout": done.stdout.decode("utf-8", "replace"),
        "stderr": done.stderr.decode("utf-8", "replace"),
        "created": state.created,
        "deleted": state.deleted,
        "requests": state.requests,
        "seconds": round(time.monotonic() - started, 2),
    }
    (root / "record.json").write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
