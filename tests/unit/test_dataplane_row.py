"""The home screen names the node's dataplane, and an eBPF one as such."""

from __future__ import annotations

from routed_factory import RoutedNode, RoutedPod, build, host_index

from podpath.analysis.dataplane import dataplane_text, mode_text
from podpath.analysis.index import SnapshotIndex
from podpath.analysis.parsed import ParsedSnapshot
from podpath.snapshot.model import BpfProgram, Link, NetNamespace, Snapshot, TcFilter
from podpath.tui.rows.node import fact_rows


def _dataplane(snapshot: Snapshot) -> str:
    """The dataplane fact as the home screen builds it, through the parsed views."""
    parsed = ParsedSnapshot(SnapshotIndex(snapshot))
    rows = fact_rows(
        parsed.index,
        mode_text(parsed.kube_proxy_mode()),
        dataplane_text(parsed.dataplane()),
    )
    (found,) = [r for r in rows if r.key == "fact:dataplane"]
    return found.cells[1].text


def test_calico_node_reads_calico_routed() -> None:
    """cali* veths: the fact row says Calico (routed)."""
    snap = build(RoutedNode(pods=[RoutedPod("a", "10.244.0.5")]))
    assert _dataplane(snap) == "Calico (routed)"


def test_ebpf_node_says_ebpf_and_no_kube_proxy() -> None:
    """lxc veths with a bpf classifier and no KUBE-* rules: Cilium, eBPF, Services in eBPF."""
    bpf = TcFilter(host_index(0), "ingress", "bpf", "all", 1, 0, "0x1", True, BpfProgram(7))
    snap = build(
        RoutedNode(pods=[RoutedPod("a", "10.0.1.5")], host_prefix="lxc", tc_filters=(bpf,))
    )
    text = _dataplane(snap)
    assert text.startswith("Cilium (eBPF)") and "Services are resolved in eBPF" in text


def test_unknown_without_a_root_namespace() -> None:
    """A snapshot whose root netns was not read says unknown, not a guess."""
    snap = build(RoutedNode())
    lo = Link(2, 1, "lo", None, None, 65536, "UNKNOWN")
    netns = (NetNamespace(2, links=(lo,)),)
    snap = Snapshot(snap.schema_version, 0.0, snap.node, 1, netns=netns)
    assert _dataplane(snap) == "unknown"
