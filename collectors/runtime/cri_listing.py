"""What a CRI runtime reports about its pods, read over its socket with read-only calls.

`python -m podpath.collectors.runtime.cri_listing SOCKET [CONTAINER_ID...]` prints one
JSON document: the runtime's Version, every sandbox (ListPodSandbox, then PodSandboxStatus
verbose) and every container (ListContainers, then ContainerStatus), as crictl's `pods`,
`inspectp`, `ps -a` and `inspect` read them. A container's status is verbose (its runtime
spec, PID and namespaces) unless its ID is given: those are the containers whose spec the
collector reads from the runtime's files (pods.containerd_bundles), and a verbose status
repeats the whole spec, environment included, twice. Only the calls in
`podpath.cri.client.READ_ONLY` can be made (the client refuses others).

It runs as a child process, on the other core while the collecting process scans
/proc: the listing of 250 pods is 0.15 s of Python (HTTP/2 and protobuf), which on a
thread waits for the GIL the scan holds (a snapshot took 0.2-0.6 s longer; the README's
pods paragraph has the figures). The verbose `info` JSON (runtime spec, config) is cut
down to the fields podpath uses before it is printed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Collection
from typing import Any

# Exit status when the socket answers nothing (no runtime there): not an error.
NO_RUNTIME = 3


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def status_info(response: dict[str, Any]) -> dict[str, Any]:
    """The fields podpath uses from a verbose status `info` map (containerd's shape).

    containerd 1.6/1.7 and 2.x share the keys read here (pid, image, sandboxID,
    runtimeType, runtimeSpec, config); 2.x adds `sandboxMetadata`, its sandbox store
    record as {"Version": "v1", "Metadata": {..., "NetNSPath": ...}}, which is there
    even when the runtime spec is not (internal/cri/server/podsandbox/types/sandbox_info.go).
    """
    raw = _obj(response.get("info")).get("info")
    try:
        info = json.loads(raw) if isinstance(raw, str) else {}
    except (ValueError, RecursionError):
        return {}
    if not isinstance(info, dict):
        return {}
    spec = _obj(info.get("runtimeSpec"))
    process, linux = _obj(spec.get("process")), _obj(spec.get("linux"))
    metadata = _obj(_obj(info.get("sandboxMetadata")).get("Metadata"))
    return {
        "netns_path": metadata.get("NetNSPath"),
        "log_directory": _obj(info.get("config")).get("log_directory"),
        "pid": info.get("pid"),
        "image": info.get("image"),
        "sandbox_id": info.get("sandboxID"),
        "runtime_type": info.get("runtimeType"),
        "args": process.get("args"),
        "env": process.get("env"),
        "namespaces": linux.get("namespaces"),
        "cgroups_path": linux.get("cgroupsPath"),
        "annotations": spec.get("annotations"),
    }


def listing(
    socket_path: str, timeout: float = 10.0, spec_read_elsewhere: Collection[str] = ()
) -> dict[str, Any]:
    """Version, sandboxes and containers of the runtime at `socket_path` (read-only).

    Containers in `spec_read_elsewhere` get the plain status, the rest the verbose one.
    """
    from podpath.cri.client import CriClient

    with CriClient(socket_path, timeout=timeout, read_only=True) as cri:
        version = cri.version()
        sandboxes = cri.call("ListPodSandbox")["items"]
        containers = cri.call("ListContainers")["containers"]
        sb_status = cri.call_many(
            "PodSandboxStatus", [{"pod_sandbox_id": s["id"], "verbose": True} for s in sandboxes]
        )
        ct_status = cri.call_many(
            "ContainerStatus",
            [
                {"container_id": c["id"], "verbose": c["id"] not in spec_read_elsewhere}
                for c in containers
            ],
        )
    return {
        "socket": socket_path,
        "version": version,
        "sandboxes": [
            {"status": r["status"], "info": status_info(r)} for r in sb_status if r is not None
        ],
        "containers": [
            {"status": r["status"], "info": status_info(r), "pod_sandbox_id": c["pod_sandbox_id"]}
            for c, r in zip(containers, ct_status, strict=True)
            if r is not None
        ],
    }


def main(argv: list[str]) -> int:
    """`python -m podpath.collectors.runtime.cri_listing SOCKET [ID...]`: the listing as JSON."""
    from podpath.cri.client import CriError

    if not argv:
        sys.stderr.write(
            "usage: python -m podpath.collectors.runtime.cri_listing SOCKET [CONTAINER_ID...]\n"
        )
        return 2
    try:
        doc = listing(argv[0], spec_read_elsewhere=frozenset(argv[1:]))
    except CriError as exc:
        sys.stderr.write(f"{exc}\n")
        return NO_RUNTIME if exc.code == "UNAVAILABLE" else 1
    sys.stdout.write(json.dumps(doc, separators=(",", ":"), default=_bytes))
    return 0


def _bytes(value: object) -> str:
    # KeyValue.value is bytes in the proto; nothing podpath prints needs more.
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    raise TypeError(f"not JSON: {type(value).__name__}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
