"""Pod UID, container ID and runtime from a cgroup path, for every kubelet driver.

kubelet names pod cgroups `pod<uid>` (cgroupfs driver) or
`kubepods-<qos>-pod<uid with _ for ->.slice` (systemd driver); runtimes name the
container's cgroup `cri-containerd-<id>.scope`, `crio-<id>(.scope)`,
`docker-<id>.scope`, a bare `<id>` (cgroupfs), or, in an OCI `cgroupsPath`,
`<slice>:<prefix>:<id>`. `.mount` units and `crio-conmon-<id>` are not containers.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

_UID = r"[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}|[0-9a-f]{32}"
_POD = re.compile(rf"(?:^|[-/])pod({_UID})(?:\.slice)?(?=$|[/:])")
_QOS = re.compile(r"(?:^|[-/])(besteffort|burstable|guaranteed)(?:\.slice)?(?=$|[/-])")
_ID = r"[0-9a-f]{64}"
_SCOPE = re.compile(rf"^(cri-containerd|crio|docker|cri-o)-({_ID})(?:\.scope)?$")
_SYSTEMD_TRIPLE = re.compile(rf"^(?P<slice>[^:/]*\.slice):(?P<prefix>[^:]+):(?P<id>{_ID})$")
_BARE = re.compile(rf"^{_ID}$")
_RUNTIMES = {"cri-containerd": "containerd", "crio": "cri-o", "cri-o": "cri-o", "docker": "docker"}
_CONTROLLER_ROOT = re.compile(r"^/sys/fs/cgroup(?:/[^/]+)?(?=/)")


@dataclass(frozen=True)
class CgroupRef:
    """What a cgroup path says about a pod and container."""

    pod_uid: str | None = None
    container_id: str | None = None
    runtime: str = "unknown"  # containerd | cri-o | docker | unknown
    qos: str | None = None


def _normalise_uid(raw: str) -> str:
    return raw.replace("_", "-")


def _strip_mount(path: str) -> str:
    """Drop a /sys/fs/cgroup[/controller] prefix so only the hierarchy path remains."""
    if path.startswith("/sys/fs/cgroup/"):
        rest = path[len("/sys/fs/cgroup") :]
        # cgroup v1 has a controller directory first (memory, cpu,cpuacct, ...)
        head = rest.split("/", 2)[1]
        if not head.endswith(".slice") and head not in (
            "kubepods",
            "docker",
            "k8s.io",
            "system.slice",
            "kubelet",
        ):
            return rest[len(head) + 1 :] or "/"
        return rest
    return path


def _container(last: str, parent: str) -> tuple[str | None, str]:
    """(container id, runtime) from the last path component."""
    if last.endswith(".mount") or last.startswith("crio-conmon-"):
        return None, "unknown"
    m = _SYSTEMD_TRIPLE.match(last)
    if m:
        return m["id"], _RUNTIMES.get(m["prefix"], "unknown")
    m = _SCOPE.match(last)
    if m:
        return m[2], _RUNTIMES[m[1]]
    if _BARE.match(last):
        if parent == "docker":
            return last, "docker"
        if parent == "k8s.io":
            return last, "containerd"  # containerd's cgroupfs default parent namespace
        return last, "unknown"
    if parent == "docker" and re.fullmatch(r"[0-9A-Za-z_.-]{1,64}", last):
        return last, "docker"  # docker-era libcontainer ids (e.g. "1")
    return None, "unknown"


# The pods step asks each process's cgroup twice (by container, then for pods the
# runtime did not list), and a refresh asks the same paths again: ~10 ms a snapshot of
# the benchmark node's 1,750 processes. A CgroupRef is frozen, so sharing one is safe.
@functools.lru_cache(maxsize=8192)
def parse_cgroup_path(path: str) -> CgroupRef:
    """Parse any cgroup path (v1 or v2, cgroupfs or systemd, OCI cgroupsPath) into a CgroupRef."""
    clean = _strip_mount(path.strip())
    parts = [p for p in clean.split("/") if p]
    if not parts:
        return CgroupRef()
    pod = _POD.search(clean)
    qos = _QOS.search(clean)
    parent = parts[-2] if len(parts) >= 2 else ""
    cid, runtime = _container(parts[-1], parent)
    return CgroupRef(
        pod_uid=_normalise_uid(pod[1]) if pod else None,
        container_id=cid,
        runtime=runtime,
        qos=qos[1] if qos else ("guaranteed" if pod else None),
    )
