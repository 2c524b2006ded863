"""A kindnet-shaped lab (Debian's ptp plugin, 2 nodes, dual-stack): the trace against the kernel and traffic.

Also the most nodes a lab takes (5), each routing every other node's pod CIDRs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from topology_proof import (
    assert_pod_to_pod,
    assert_service,
    topology_fixtures,
    web_pods,
)

from podpath.analysis.dataplane import detect
from podpath.analysis.index import SnapshotIndex

if TYPE_CHECKING:
    from podpath.lab import Lab

pytestmark = pytest.mark.lab


# 2 kindnet nodes, dual-stack, routes via the node addresses.
lab, indexes = topology_fixtures(
    "ptp", nodes=2, pods=3, services=3, cni="ptp", ip_family="dual", runtime="containerd"
)


def test_nodes_have_kindnets_shape(lab: Lab, indexes: dict[str, SnapshotIndex]) -> None:
    """ptp veths whose host end holds the gateway, /32 routes, host-local state in /run/cni-ipam-state."""
    index = indexes["node1"]
    root = index.root_netns
    assert root is not None
    veths = [lk for lk in root.links if lk.kind == "veth" and lk.name != "eth0"]
    assert len(veths) == 3
    assert all(any(a.address == "10.244.0.1" for a in lk.addresses) for lk in veths)
    pods = lab.pods_on("node1")
    assert {f"{p.ip}/32" for p in pods} <= {r.dst for r in root.routes}
    allocated = {a.ip for a in index.snapshot.cni.allocations}
    assert {ip for p in pods for ip in p.ips} <= allocated
    listing = lab.exec("node1", ["ls", "/run/cni-ipam-state/kindnet"]).stdout.split()
    assert {p.ip for p in pods} <= set(listing)
    assert detect(index).cni == "kindnet/ptp"


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("node", ["node1", "node2"])
def test_pod_to_pod(lab: Lab, indexes: dict[str, SnapshotIndex], family: int, node: str) -> None:
    """On the node and across: routes equal `ip route get`, real traffic answered by the pod."""
    src = web_pods(lab, "node1")[0]
    dst = web_pods(lab, node)[-1]
    branch = assert_pod_to_pod(lab, indexes, src, dst, family)
    assert not any(h.kind == "vxlan" for h in branch.hops)


@pytest.mark.parametrize("family", [4, 6])
def test_service_and_back(lab: Lab, indexes: dict[str, SnapshotIndex], family: int) -> None:
    """pod -> web Service (both families): endpoints, real traffic, conntrack's reply tuple."""
    assert_service(lab, indexes, web_pods(lab, "node1")[0], family)


def test_five_nodes_route_to_each_other(make_lab: Callable[..., Lab]) -> None:
    """A 5-node lab: every node routes the 4 other pod CIDRs via their addresses; pods reach node5."""
    lab = make_lab(nodes=5, pods=1, services=2, cni="ptp")
    routes = json.loads(lab.exec("node1", ["ip", "-j", "route", "show", "proto", "boot"]).stdout)
    via = {(r["dst"], r.get("gateway")) for r in routes}
    for n in range(2, 6):
        node = lab.node(f"node{n}")
        assert (node.pod_cidr, node.address) in via
    src = lab.pods_on("node1")[0]
    dst = lab.pods_on("node5")[0]
    answer = lab.probe(src.ref, dst.ip, 80)
    assert answer.ok and answer.served_by == dst.ref, answer.error
