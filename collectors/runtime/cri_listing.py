"""What a CRI runtime reports about its pods, read over its socket with read-only calls.

`python -m podpath.collectors.runtime.cri_listing SOCKET [CONTAINER_ID...] [--known KEY...]`
prints one JSON document: the runtime's Version, every sandbox (ListPodSandbox, then
PodSandboxStatus verbose) and every container (ListContainers, then ContainerStatus), as
crictl's `pods`, `inspectp`, `ps -a` and `inspect` read them. A container's status is
verbose (its runtime spec, PID and namespaces) unless its ID is given: those are the
containers whose spec the collector reads from the runtime's files
(pods.containerd_bundles), and a verbose status repeats the whole spec, environment
included, twice. Only the calls in
`podpath.cri.client.READ_ONLY` can be made (the client refuses others).

A refresh passes `--known KEY` for each sandbox and container whose status it already
holds (`status_key`: id, state, creation time, verbose or plain). A listed item with a
known key is not asked its status again; its entry is `{"same": ID}` and the caller
keeps the status it has (cri_state.read_listings). That status cannot have changed: an
id is never reused, a sandbox goes from ready to notready and a container from created
to running to exited only (a restart is a new container), and in each state what podpath
reads of the status (metadata, labels, annotations, network, image, PID, times, exit
code) is fixed. 250 pods' statuses cost the child 0.12 s of CPU and containerd 0.13 s
(docs/performance.md, "A refresh asks CRI only what changed").

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


def status_key(item: dict[str, Any], verbose: bool) -> str:
    """What makes a sandbox's or container's status one already held: its id, state and
    creation time (a listed item and a status both carry them) and how it was asked."""
    how = "verbose" if verbose else "plain"
    return f"{item.get('id')}/{item.get('state')}/{item.get('created_at')}/{how}"


def listing(
    socket_path: str,
    timeout: float = 10.0,
    spec_read_elsewhere: Collection[str] = (),
    known: Collection[str] = (),
) -> dict[str, Any]:
    """Version, sandboxes and containers of the runtime at `socket_path` (read-only).

    Containers in `spec_read_elsewhere` get the plain status, the rest the verbose one.
    Items whose `status_key` is in `known` are not asked: their entry is {"same": ID}.
    """
    from podpath.cri.client import CriClient

    with CriClient(socket_path, timeout=timeout, read_only=True) as cri:
        version = cri.version()
        sandboxes = cri.call("ListPodSandbox")["items"]
        containers = cri.call("ListContainers")["containers"]
        sb_asked = [s for s in sandboxes if status_key(s, True) not in known]
        sb_status = cri.call_many(
            "PodSandboxStatus", [{"pod_sandbox_id": s["id"], "verbose": True} for s in sb_asked]
        )
        verbose = {c["id"]: c["id"] not in spec_read_elsewhere for c in containers}
        ct_asked = [c for c in containers if status_key(c, verbose[c["id"]]) not in known]
        ct_status = cri.call_many(
            "ContainerStatus",
            [{"container_id": c["id"], "verbose": verbose[c["id"]]} for c in ct_asked],
        )
    sb_same = [{"same": s["id"]} for s in sandboxes if status_key(s, True) in known]
    ct_same = [
        {"same": c["id"], "pod_sandbox_id": c["pod_sandbox_id"]}
        for c in containers
        if status_key(c, verbose[c["id"]]) in known
    ]
    return {
        "socket": socket_path,
        "version": version,
        "sandboxes": [
            {"status": r["status"], "info": status_info(r)} for r in sb_status if r is not None
        ]
        + sb_same,
        "containers": [
            {
                "status": r["status"],
                "info": status_info(r),
                "pod_sandbox_id": c["pod_sandbox_id"],
                "verbose": verbose[c["id"]],
            }
            for c, r in zip(ct_asked, ct_status, strict=True)
            if r is not None
        ]
        + ct_same,
    }


def main(argv: list[str]) -> int:
    """`python -m podpath.collectors.runtime.cri_listing SOCKET [ID...]`: the listing as JSON."""
    from podpath.cri.client import CriError

    if not argv:
        sys.stderr.write(
            "usage: python -m podpath.collectors.runtime.cri_listing SOCKET"
            " [CONTAINER_ID...] [--known KEY...]\n"
        )
        return 2
    ids, known = _split_known(argv[1:])
    try:
        doc = listing(argv[0], spec_read_elsewhere=ids, known=known)
    except CriError as exc:
        sys.stderr.write(f"{exc}\n")
        return NO_RUNTIME if exc.code == "UNAVAILABLE" else 1
    sys.stdout.write(json.dumps(doc, separators=(",", ":"), default=_bytes))
    return 0


def _split_known(args: list[str]) -> tuple[frozenset[str], frozenset[str]]:
    """(container IDs whose spec is read elsewhere, the `--known` keys) of the arguments."""
    ids: set[str] = set()
    known: set[str] = set()
    it = iter(args)
    for arg in it:
        if arg == "--known":
            known.add(next(it, ""))
        else:
            ids.add(arg)
    return frozenset(ids), frozenset(known)


def _bytes(value: object) -> str:
    # KeyValue.value is bytes in the proto; nothing podpath prints needs more.
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    raise TypeError(f"not JSON: {type(value).__name__}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
