"""Pods made by Docker through dockershim or cri-dockerd, from dockerd's own files.

dockershim (kubelet up to 1.23) and cri-dockerd (minikube, Mirantis) turn each pod
into Docker containers: the sandbox `k8s_POD_<pod>_<namespace>_<uid>_<attempt>`
running the pause image with its own network namespace (held under
/run/docker/netns/), and each app container `k8s_<container>_<pod>_<namespace>_
<uid>_<attempt>` on `--network container:<sandbox id>`. Both carry io.kubernetes.*
labels. dockerd keeps each container's state in
/var/lib/docker/containers/<id>/config.v2.json (name, labels, image, State with PID,
times and exit code, NetworkSettings.SandboxKey) and hostconfig.json
(NetworkMode, CgroupParent).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from podpath.collectors.hostroot import CollectorError, HostRoot, Vanished, read_json_object
from podpath.snapshot.model import Gap

DOCKER_CONTAINERS = "/var/lib/docker/containers"
_MAX_CONFIG = 4 * 1024 * 1024
_ID = re.compile(r"^[0-9a-f]{64}$")
# k8s_<container>_<pod>_<namespace>_<uid>_<attempt> (dockershim's naming.go): no field
# but the last can hold "_" (DNS labels and UIDs cannot).
_NAME = re.compile(
    r"^/?k8s_(?P<container>[^_]+)_(?P<pod>[^_]+)_(?P<ns>[^_]+)_(?P<uid>[^_]+)_(?P<attempt>\d+)$"
)
_ZERO_TIME = "0001-01-01T00:00:00Z"


def parse_k8s_name(name: str) -> dict[str, str] | None:
    """container, pod, ns, uid and attempt from a dockershim container name."""
    m = _NAME.match(name)
    return m.groupdict() if m else None


def rfc3339_ns(text: object) -> int | None:
    """Nanoseconds since the epoch from Go's RFC 3339 time (None for Go's zero time)."""
    if not isinstance(text, str) or not text or text.startswith("0001-01-01"):
        return None
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$", text)
    if m is None:
        return None
    zone = "+00:00" if m[3] == "Z" else m[3]
    try:
        whole = datetime.fromisoformat(m[1] + zone)
    except ValueError:
        return None
    return int(whole.timestamp()) * 1_000_000_000 + int((m[2] or "0").ljust(9, "0"))


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def container_ids(host: HostRoot, gaps: list[Gap]) -> list[str]:
    """Ids of the containers dockerd keeps under /var/lib/docker/containers."""
    try:
        return sorted(n for n in host.listdir(DOCKER_CONTAINERS) if _ID.match(n))
    except Vanished:
        return []
    except CollectorError as err:
        if err.to_gap().kind != "vanished":
            gaps.append(err.to_gap())
        return []


def read_config(
    host: HostRoot, cid: str, gaps: list[Gap]
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(config.v2.json, hostconfig.json) of a Kubernetes-made container, else None."""
    config = read_json_object(host, f"{DOCKER_CONTAINERS}/{cid}/config.v2.json", gaps, _MAX_CONFIG)
    if config is None:
        return None
    labels = _dict(_dict(config.get("Config")).get("Labels"))
    if "io.kubernetes.pod.uid" not in labels and not parse_k8s_name(str(config.get("Name", ""))):
        return None  # a container of Docker's own, not a pod's
    hostconfig = (
        read_json_object(host, f"{DOCKER_CONTAINERS}/{cid}/hostconfig.json", [], _MAX_CONFIG) or {}
    )
    return config, hostconfig


def state_of(state: dict[str, Any]) -> str:
    """created | running | exited, as dockershim reported it to kubelet."""
    if state.get("Running"):
        return "running"
    if rfc3339_ns(state.get("StartedAt")) is not None or rfc3339_ns(state.get("FinishedAt")):
        return "exited"
    return "created"
