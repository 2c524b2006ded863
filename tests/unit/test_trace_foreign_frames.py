"""Frames for a MAC the device they reach does not have.

A pod whose neighbour entry for its gateway names a MAC no device on the bridge has: the
bridge floods such a frame and every pod drops it (PACKET_OTHERHOST), for good when the
entry is PERMANENT, for a while when the kernel will probe it and ask again. What
kube-proxy DNATs is re-routed by br_netfilter whatever its MAC (br_nf_pre_routing_finish).
A bridge FDB entry that sends a pod's MAC to another port: it moves back on the first
frame from that pod (br_fdb_update) unless sticky or the pod's port does not learn. The
lab tests in tests/lab/test_doctor_lab.py check the same against real traffic.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from trace_factory import NodeSpec, PodSpec, build_node, kube_services, pod_mac, with_root

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


# --- a bridge FDB entry that sends web-1's MAC to web-0's port ---------------------------


def _misplaced(flags: tuple[str, ...] = (), learning: bool | None = None) -> Snapshot:
    """cni0's entry for web-1's MAC names web-0's port (veth0000), static and `flags`;
    web-1's own port (veth0001) learns or not."""
    snap = build_node(NodeSpec(pods=PODS))
    mac = pod_mac(0, 1)
    root = next(ns for ns in snap.netns if ns.inode == snap.root_netns)
    fdb = tuple(
        replace(e, ifindex=10, state=("static",), flags=flags) if e.mac == mac else e
        for e in root.fdb
    )
    links = tuple(
        replace(link, learning=learning) if link.name == "veth0001" else link for link in root.links
    )
    return with_root(snap, fdb=fdb, links=links)


def test_an_entry_that_roams_back_makes_the_path_uncertain() -> None:
    verdict, reason = _one(_misplaced(), "10.244.0.3:80")
    assert verdict == "uncertain", reason
    assert "the entry moves there as soon as a frame from it comes in by veth0001" in reason


@pytest.mark.parametrize(
    ("flags", "learning"), [(("master", "sticky"), None), (("master",), False)]
)
def test_an_entry_that_stays_sends_the_frame_to_a_pod_that_drops_it(
    flags: tuple[str, ...], learning: bool | None
) -> None:
    """Sticky, or web-1's port learning nothing: web-0's frames for web-1 go back out of
    web-0's own port (its hairpin mode is not said, so not judged), for another host."""
    verdict, reason = _one(_misplaced(flags, learning), "10.244.0.3:80")
    assert verdict == "dropped", reason
    assert "the bridge's fdb sent it by veth0000 is for 02:00:00:00:00:41" in reason
    assert reason.endswith("ip_rcv drops it (PACKET_OTHERHOST)")
