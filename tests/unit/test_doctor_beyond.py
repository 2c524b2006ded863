"""Paths that leave through a router no snapshot holds (a VPC's): the doctor says once per
stretch of network (sender, receiver, interface) that it cannot judge them, not once per
pair of addresses (a multi-node AWS VPC CNI lab gave 47-112 such findings)."""

from __future__ import annotations

from routed_factory import RoutedNode, RoutedPod, build

from podpath.analysis.index import SnapshotIndex
from podpath.doctor import diagnose
from podpath.doctor.causes import Aim, branch_cause
from podpath.trace.beyond import Beyond, assumption, parse
from podpath.trace.engine import trace
from podpath.trace.probe import Probe

A_PODS = [RoutedPod("a1", "10.244.0.5"), RoutedPod("a2", "10.244.0.6")]
B_PODS = [RoutedPod("b1", "10.244.1.5"), RoutedPod("b2", "10.244.1.6")]


def _nodes() -> list[SnapshotIndex]:
    """Two routed nodes whose only way to each other is their default router."""
    a = build(RoutedNode(pods=list(A_PODS)))
    b = build(RoutedNode(number=1, hostname="calico-b", address="192.168.0.3", pods=list(B_PODS)))
    return [SnapshotIndex(a), SnapshotIndex(b)]


def test_the_assumption_sentence_reads_back_as_its_stretch_of_network() -> None:
    """What the trace writes on a branch is what the doctor reads; other text is not one."""
    beyond = Beyond("node1", "node2", "eth1")
    assert parse(assumption(beyond, "10.0.1.5", "10.0.0.7")) == beyond
    assert parse(assumption(beyond, "fd00::5", "fd00::7")) == beyond
    assert parse("the network beyond node1 is fine") is None


def test_paths_across_one_stretch_of_network_are_one_cause() -> None:
    """Two pods of node b reached from node a: two branches with different addresses,
    one cause (same id), naming the two nodes and the interface."""
    indexes = _nodes()
    causes = []
    for pod in B_PODS:
        (branch,) = trace(indexes, Probe("default/a1", f"{pod.ip}:80")).branches
        assert branch.verdict == "uncertain" and "not in the snapshots" in branch.reason
        aim = Aim("pod", f"pod default/{pod.name}", pod.ip, 80, "tcp")
        cause = branch_cause(branch, aim, indexes)
        assert cause is not None
        causes.append(cause)
    first, second = causes
    assert first.id == second.id and first.check == "cannot-judge" and first.grade == "info"
    assert first.subject == "the network from node calico-a to eth0 of node calico-b"
    assert "10.244.1.5" in first.evidence[0] and "10.244.1.6" in second.evidence[0]


def test_the_doctor_reports_each_direction_once() -> None:
    """The doctor over both nodes: one cannot-judge finding per direction, nothing else."""
    report = diagnose(_nodes())
    found = sorted((f.check, f.grade, f.subject) for f in report.findings)
    assert found == [
        ("cannot-judge", "info", "the network from node calico-a to eth0 of node calico-b"),
        ("cannot-judge", "info", "the network from node calico-b to eth0 of node calico-a"),
    ]
