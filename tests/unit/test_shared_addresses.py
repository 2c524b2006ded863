"""An address two of a node's namespaces hold (IPAM gave it out twice).

SnapshotIndex.shared_addresses: the node's own namespaces are its root and those with a
veth into it; loopback and link-local addresses are every namespace's own. The doctor
names the conflict once (address-conflict) with every path it breaks; the trace's ARP
answer on the bridge is uncertain. The lab test in tests/lab/test_doctor_lab.py gives a
pod's address to another for real and sends traffic.
"""

from __future__ import annotations

from dataclasses import replace

from trace_factory import NodeSpec, PodSpec, build_node

from podpath.analysis.index import SnapshotIndex
from podpath.doctor import diagnose
from podpath.snapshot.model import Address, Link, NetNamespace, Snapshot
from podpath.trace.engine import trace
from podpath.trace.probe import Probe

PODS = [
    PodSpec("web-0", "10.244.0.2"),
    PodSpec("web-1", "10.244.0.3"),
    PodSpec("db-0", "10.244.0.4"),
]


def _with_address(snap: Snapshot, pod: str, *addresses: Address) -> Snapshot:
    """The pod's eth0 with more addresses."""
    inode = next(p.netns_inode for p in snap.pods if p.name == pod)
    netns = tuple(
        replace(
            ns,
            links=tuple(
                replace(lk, addresses=(*lk.addresses, *addresses)) if lk.name == "eth0" else lk
                for lk in ns.links
            ),
        )
        if ns.inode == inode
        else ns
        for ns in snap.netns
    )
    return replace(snap, netns=netns)


def _taken(snap: Snapshot) -> Snapshot:
    """web-1 also holds web-0's 10.244.0.2."""
    return _with_address(snap, "web-1", Address(4, "10.244.0.2", 24))


def test_an_address_two_pods_hold_is_shared_and_nothing_else_is() -> None:
    snap = build_node(NodeSpec(pods=PODS))
    index = SnapshotIndex(_taken(snap))
    inodes = {p.name: p.netns_inode or 0 for p in snap.pods}
    assert index.shared_addresses == {
        "10.244.0.2": tuple(sorted((inodes["web-0"], inodes["web-1"])))
    }
    # Every namespace's own: loopback, link-local.
    own = _with_address(
        snap, "web-1", Address(4, "127.0.0.1", 8), Address(6, "fe80::1", 64, "link")
    )
    own = _with_address(own, "web-0", Address(4, "127.0.0.1", 8), Address(6, "fe80::1", 64, "link"))
    assert SnapshotIndex(own).shared_addresses == {}


def test_a_namespace_whose_veths_lead_elsewhere_is_not_the_nodes() -> None:
    """A nested node's pod (its veth's peer in a namespace that is not the root) with the
    same address is another cluster's business."""
    snap = build_node(NodeSpec(pods=PODS))
    nested = NetNamespace(
        inode=99,
        links=(
            Link(
                99, 1, "lo", None, None, 65536, "UNKNOWN", addresses=(Address(4, "127.0.0.1", 8),)
            ),
            Link(
                99,
                2,
                "eth0",
                "veth",
                "02:00:00:00:09:09",
                1500,
                "UP",
                addresses=(Address(4, "10.244.0.2", 24),),
            ),
        ),
    )
    assert SnapshotIndex(replace(snap, netns=(*snap.netns, nested))).shared_addresses == {}


def test_the_doctor_names_the_conflict_once_with_the_paths_it_breaks() -> None:
    report = diagnose([SnapshotIndex(_taken(build_node(NodeSpec(pods=PODS))))])
    critical = [f for f in report.findings if f.grade == "critical"]
    assert [f.check for f in critical] == ["address-conflict"], [f.id for f in critical]
    (finding,) = critical
    assert finding.subject == "address 10.244.0.2"
    assert finding.cause.startswith(
        "10.244.0.2 is an address of pod default/web-0 and of pod default/web-1: each answers"
    )
    assert finding.paths and finding.affected > 0


def test_the_trace_says_either_may_answer_where_no_entry_decides() -> None:
    snap = build_node(NodeSpec(pods=PODS, neighbours_known=False))
    (branch,) = trace(
        [SnapshotIndex(_taken(snap))], Probe("default/db-0", "10.244.0.2:80")
    ).branches
    assert branch.verdict == "uncertain", branch.reason
    assert (
        "10.244.0.2 is an address of pod default/web-0 and of pod default/web-1 on cni0"
        in branch.reason
    )


def test_a_dadfailed_address_is_not_the_pods_nor_a_source() -> None:
    """web-0's only IPv6 address failed DAD (web-1 holds it): not local to web-0, not a
    conflict (one namespace uses it), a finding of its own, and no source address."""
    snap = build_node(NodeSpec(pods=PODS))
    snap = _with_address(snap, "web-0", Address(6, "fd00::2", 64, flags=("dadfailed", "tentative")))
    snap = _with_address(snap, "web-1", Address(6, "fd00::2", 64, flags=("nodad",)))
    index = SnapshotIndex(snap)
    web0 = next(p for p in snap.pods if p.name == "web-0")
    assert "fd00::2" not in index.local_addresses[web0.netns_inode or 0]
    assert index.shared_addresses == {}
    assert list(index.failed_addresses) == ["fd00::2"]
    report = diagnose([index])
    (finding,) = [f for f in report.findings if f.check == "address-dadfailed"]
    assert finding.grade == "critical"
    assert "(pod default/web-1 holds it)" in finding.cause
    assert finding.cause.endswith("pod default/web-0 has no other IPv6 address")
