"""A Service's ClientIP affinity on this node: who is pinned to which endpoint, in one wording."""

from __future__ import annotations

from functools import lru_cache

from podpath.analysis.index import SnapshotIndex
from podpath.netfilter.affinity import Pin, service_pins
from podpath.netfilter.ipvs import IpvsConnection, parse_ipvs_conn
from podpath.netfilter.kube_proxy import Service


def affinity_pins(index: SnapshotIndex, svc: Service) -> tuple[Pin, ...]:
    """Who is pinned to which endpoint now, from the kernel's state the snapshot holds."""
    if svc.affinity_timeout is None:
        return ()
    snap = index.snapshot
    connections: tuple[IpvsConnection, ...] = ()
    if svc.backend == "ipvs" and snap.ipvs and snap.ipvs.ip_vs_conn:
        connections = _connections(snap.ipvs.ip_vs_conn)
    return service_pins(svc, snap.xt_recent or (), index.nft_ruleset, connections)


@lru_cache(maxsize=1)
def _connections(ip_vs_conn: str) -> tuple[IpvsConnection, ...]:
    # Every IPVS Service with affinity reads the same table: parse it once per snapshot.
    return parse_ipvs_conn(ip_vs_conn)


def affinity_text(timeout: int | None, pinned: int) -> str:
    """`ClientIP 10800s, 2 pinned` (`ClientIP 10800s` with none), or empty without affinity."""
    if timeout is None:
        return ""
    return f"ClientIP {timeout}s" + (f", {pinned} pinned" if pinned else "")
