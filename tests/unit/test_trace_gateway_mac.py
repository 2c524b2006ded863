"""A pod whose neighbour entry for its gateway names a MAC no device on the bridge has.

The bridge floods such a frame and every pod drops it (PACKET_OTHERHOST): for good when
the entry is PERMANENT, for a while when the kernel will probe it and ask again. What
kube-proxy DNATs is re-routed by br_netfilter whatever its MAC (br_nf_pre_routing_finish).
The lab tests in tests/lab/test_doctor_lab.py check the same against real traffic.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from trace_factory import NodeSpec, PodSpec, build_node, kube_services

from podpath.analysis.index import SnapshotIndex
from podpath.snapshot.model import Snapshot
from podpath.trace.engine import trace
from podpath.trace.probe import Probe

PODS = [PodSpec("web-0", "10.244.0.2"), PodSpec("web-1", "10.244.0.3")]
NOBODYS = "02:00:00:00:00:99"


def _node(state: str, bridge_nf: int | None = 1) -> Snapshot:
    """web-0's entry for its gateway 10.244.0.1 names NOBODYS; a Service 10.96.0.10:80
    has web-1 as its endpoint."""
    snap = build_node(
        NodeSpec(
            pods=PODS,
            iptables=kube_services("10.96.0.10", 80, ["10.244.0.3"]),
            bridge_nf_call_iptables=bridge_nf,
        )
    )
    web0 = next(p for p in snap.pods if p.name == "web-0")
    netns = tuple(
        replace(
            ns,
            neighbours=tuple(
                replace(n, lladdr=NOBODYS, state=(state,)) if n.dst == "10.244.0.1" else n
                for n in ns.neighbours
            ),
        )
        if ns.inode == web0.netns_inode
        else ns
        for ns in snap.netns
    )
    return replace(snap, netns=netns)


def _one(snap: Snapshot, to: str) -> tuple[str, str]:
    (branch,) = trace([SnapshotIndex(snap)], Probe("default/web-0", to)).branches
    return branch.verdict, branch.reason


def test_a_permanent_entry_for_nobodys_mac_drops_what_is_not_dnated() -> None:
    verdict, reason = _one(_node("PERMANENT"), "192.168.0.1:80")
    assert verdict == "dropped", reason
    assert "no device behind them has that MAC: each drops it (PACKET_OTHERHOST)" in reason
    assert f"{NOBODYS} is the neighbour entry for 10.244.0.1 on eth0 of pod default/web-0" in reason


def test_a_learned_entry_heals_so_the_path_is_uncertain() -> None:
    verdict, reason = _one(_node("STALE"), "192.168.0.1:80")
    assert verdict == "uncertain", reason
    assert "until the kernel resolves it again" in reason and "(STALE: probed" in reason


@pytest.mark.parametrize("state", ["PERMANENT", "STALE"])
def test_what_kube_proxy_dnats_is_rerouted_whatever_its_mac(state: str) -> None:
    verdict, reason = _one(_node(state), "10.96.0.10:80")
    assert verdict == "delivered", reason


def test_without_br_netfilter_nothing_is_rerouted() -> None:
    verdict, reason = _one(_node("PERMANENT", bridge_nf=0), "10.96.0.10:80")
    assert verdict == "dropped" and "PACKET_OTHERHOST" in reason, reason
