"""The bridge topology, dual-stack (flannel.1 and flannel-v6.1): IPv6 end to end against the kernel."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from topology_proof import (
    assert_pod_to_pod,
    assert_routes_equal_kernel,
    assert_service,
    ordered,
    topology_fixtures,
    web_pods,
)

from podpath.analysis.index import SnapshotIndex
from podpath.trace.engine import trace
from podpath.trace.probe import Probe
from podpath.trace.render import render_text

if TYPE_CHECKING:
    from podpath.lab import Lab

pytestmark = pytest.mark.lab


# 2 bridge nodes, dual-stack, flannel-style VXLAN for both families.
lab, indexes = topology_fixtures(
    "dual", nodes=2, pods=3, services=3, cni="bridge", ip_family="dual", runtime="containerd"
)


@pytest.mark.parametrize("node", ["node1", "node2"])
def test_ipv6_pod_to_pod(lab: Lab, indexes: dict[str, SnapshotIndex], node: str) -> None:
    """IPv6 on cni0 and across flannel-v6.1: NDP, routes equal `ip -6 route get`, traffic answered."""
    src, dst = web_pods(lab, "node1")[0], web_pods(lab, node)[-1]
    branch = assert_pod_to_pod(lab, indexes, src, dst, 6)
    if node == "node2":
        assert {h.data["dev"] for h in branch.hops if h.kind == "vxlan"} == {"flannel-v6.1"}


def test_ipv6_service_and_back(lab: Lab, indexes: dict[str, SnapshotIndex]) -> None:
    """pod -> web's IPv6 ClusterIP: ip6tables DNAT to the endpoints, traffic and conntrack agree."""
    assert_service(lab, indexes, web_pods(lab, "node1")[0], 6)


def test_dual_stack_pod_uses_the_destinations_family(
    lab: Lab, indexes: dict[str, SnapshotIndex]
) -> None:
    """`--to` an IPv6 address from a dual-stack pod: the IPv6 source, and [addr]:port in the header."""
    src, dst = web_pods(lab, "node1")[0], web_pods(lab, "node2")[0]
    ip6 = next(ip for ip in dst.ips if ":" in ip)
    result = trace(ordered(indexes), Probe(src.ref, f"[{ip6}]:80"))
    assert result.probe["src"] == next(ip for ip in src.ips if ":" in ip)
    assert f"([{ip6}]:80)" in render_text(result).splitlines()[0]
    assert assert_routes_equal_kernel(lab, indexes, result.branches) >= 3


def test_node_to_ipv6_pod_source_is_the_kernels(
    lab: Lab, indexes: dict[str, SnapshotIndex]
) -> None:
    """From the node to an IPv6 pod on the other node: the chosen source equals the kernel's."""
    dst = web_pods(lab, "node2")[0]
    ip6 = next(ip for ip in dst.ips if ":" in ip)
    result = trace(ordered(indexes), Probe("node1", f"[{ip6}]:80"))
    (branch,) = result.branches
    assert branch.hops[0].data["chosen_src"]
    assert assert_routes_equal_kernel(lab, indexes, result.branches) >= 2
