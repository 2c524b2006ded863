"""The doctor's proxy-arp-no-route finding: its evidence is the facts, not its cause again."""

from __future__ import annotations

from dataclasses import replace

from routed_factory import RoutedNode, RoutedPod, build

from podpath.analysis.findings import Finding
from podpath.analysis.index import SnapshotIndex
from podpath.doctor import diagnose

PODS = [RoutedPod("a", "10.244.0.5", host_veth="calia"), RoutedPod("b", "10.244.0.6")]


def _finding(**changes: object) -> Finding:
    node = replace(RoutedNode(pods=list(PODS), default_gateway=None), **changes)  # type: ignore[arg-type]
    found = [
        f
        for f in diagnose([SnapshotIndex(build(node))]).findings
        if f.check == "proxy-arp-no-route"
    ]
    assert len(found) == 1, [f.id for f in found]
    return found[0]


def test_evidence_is_the_sysctls_and_the_failed_lookup() -> None:
    """A Calico node without a route for 169.254.1.1: the evidence names proxy_arp as
    conf/all and the host veth hold it, and the input lookup proxy ARP makes, with no route."""
    found = _finding()
    sysctl, route = found.evidence
    assert sysctl == "net.ipv4.conf.all.proxy_arp = 0, net.ipv4.conf.calia.proxy_arp = 1"
    assert route == (
        "ip route get 169.254.1.1 from 10.244.0.5 iif calia: no route "
        "(RTNETLINK answers: Network is unreachable)"
    )
    assert found.cause not in found.evidence
    assert "has proxy_arp=1, but its namespace has no route to 169.254.1.1" in found.cause
