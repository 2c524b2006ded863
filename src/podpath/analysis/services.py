"""Where a Service's endpoints live, and which Services send traffic to a pod."""

from __future__ import annotations

from dataclasses import dataclass

from podpath.analysis.index import SnapshotIndex
from podpath.netfilter.kube_proxy import Endpoint, Service


@dataclass(frozen=True)
class Place:
    """Where an endpoint address lives, as this node sees it."""

    kind: str  # "pod" (a pod on this node), "node" (this node's own address), "remote"
    label: str  # namespace/name of the pod, or a description


def endpoint_place(index: SnapshotIndex, ip: str) -> Place:
    """A local pod, this node (host network), or somewhere else (another node)."""
    pod = index.pods_by_ip.get(ip)
    if pod is not None:
        return Place("pod", f"{pod.namespace}/{pod.name}")
    if ip in index.local_addresses.get(index.snapshot.root_netns, frozenset()):
        return Place("node", "this node (host network)")
    return Place("remote", "remote node")


def endpoints_of(
    services: tuple[Service, ...], ips: frozenset[str]
) -> list[tuple[Service, Endpoint]]:
    """Every (Service port, endpoint) whose endpoint address is one of `ips` (a pod's)."""
    return [(svc, ep) for svc in services for ep in svc.endpoints if ep.ip in ips]
