"""The fixed snapshot with a sidecar's nat rules in one pod's namespace (a service mesh's
redirect, as Istio's istio-init writes it): what the TUI says of such a pod."""

from __future__ import annotations

import dataclasses

from podpath.snapshot.model import NetfilterChain, NetfilterTable, Pod, Snapshot

# The pod namespace's own nat table, as the namespace scan lists it.
SIDECAR_NAT = NetfilterTable(
    "nft",
    "ip",
    "nat",
    (NetfilterChain("OUTPUT", "output", 1, "nat"), NetfilterChain("ISTIO_OUTPUT", None, 2)),
)
# How the trace and the pod screen name it.
SIDECAR_SAID = "ip nat: OUTPUT 1 rule, ISTIO_OUTPUT 2 rules; Istio's sidecar redirect"


def with_sidecar_rules(snapshot: Snapshot, pod: Pod) -> Snapshot:
    """The snapshot with SIDECAR_NAT in the pod's network namespace."""
    netns = tuple(
        dataclasses.replace(ns, netfilter=(SIDECAR_NAT,)) if ns.inode == pod.netns_inode else ns
        for ns in snapshot.netns
    )
    return dataclasses.replace(snapshot, netns=netns)
