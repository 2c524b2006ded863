"""neighbour-table-full: the kernel's ARP and NDP tables against their gc_thresh2 and gc_thresh3.

The tables are the whole kernel's, so a lab cannot fill one past gc_thresh2 without the
machine's own entries being evicted (forced GC takes the oldest idle ones first): the
grading is tested here on the values a real table reports (the collector is compared
with `ip -s ntable show` in tests/collectors/test_kernel_state_lab.py).
"""

from __future__ import annotations

import dataclasses

import pytest
from trace_factory import NodeSpec, PeerNode, PodSpec, build_node

from podpath.analysis.index import SnapshotIndex
from podpath.analysis.neighbour_tables import counted_entries, neighbour_table_fill
from podpath.analysis.parsed import ParsedSnapshot
from podpath.analysis.problems import problems
from podpath.snapshot.model import NeighbourTable, Snapshot

# The defaults every kernel starts with (net.ipv4.neigh.default.gc_thresh1/2/3).
ARP = NeighbourTable(4, "arp_cache", 128, 512, 1024, entries=4)
NDP = NeighbourTable(6, "ndisc_cache", 128, 512, 1024, entries=209)


def _node(*tables: NeighbourTable, kernel: str = "6.18.44") -> Snapshot:
    """A built node (two pods on cni0, a peer over flannel.1) with these tables."""
    pods = [PodSpec("web-0", "10.244.0.2"), PodSpec("web-1", "10.244.0.3")]
    peer = PeerNode("192.168.0.3", "10.244.1.0/24", 1)
    snap = build_node(NodeSpec(pods=pods, peers=[peer], overlay="vxlan"))
    node = dataclasses.replace(snap.node, neighbour_tables=tables, kernel=kernel)
    return dataclasses.replace(snap, node=node)


def _permanent(snap: Snapshot, family: int = 4) -> int:
    return sum(
        1
        for ns in snap.netns
        for n in ns.neighbours
        if n.family == family and "PERMANENT" in n.state
    )


def test_the_default_thresholds_with_few_entries_say_nothing() -> None:
    """A table far under gc_thresh2 that never overflowed: no finding, and none when unread."""
    assert neighbour_table_fill(SnapshotIndex(_node(ARP, NDP))) == []
    assert neighbour_table_fill(SnapshotIndex(_node())) == []
    assert problems(ParsedSnapshot(SnapshotIndex(_node(ARP, NDP)))) == ()


@pytest.mark.parametrize(
    ("entries", "grade"),
    [(512, None), (513, "warning"), (972, "warning"), (973, "critical"), (1024, "critical")],
)
def test_past_gc_thresh2_is_a_warning_and_near_gc_thresh3_critical(
    entries: int, grade: str | None
) -> None:
    """Counted entries (the table's less the PERMANENT ones the snapshot holds) past the soft
    limit warn; from 95% of the hard limit, where new neighbours are refused, critical."""
    snap = _node()
    exempt = _permanent(snap)
    assert exempt, "the built node's flannel.1 has a PERMANENT entry for its peer"
    table = dataclasses.replace(ARP, entries=entries + exempt)
    found = neighbour_table_fill(SnapshotIndex(_node(table)))
    assert [f.grade for f in found] == ([grade] if grade else [])
    if grade:
        assert found[0].check == "neighbour-table-full"
        assert f"holds {entries} entries that count against gc_thresh3 1024" in found[0].cause
        assert f"of which {exempt} PERMANENT or extern_learn" in found[0].evidence[0]


def test_kernels_before_5_0_count_permanent_entries_too() -> None:
    """Before 58956317c8de every entry counted against the thresholds."""
    snap = _node()
    index = SnapshotIndex(_node(ARP, kernel="4.19.0-26-amd64"))
    assert counted_entries(index, ARP) == (4, 0)
    exempt = _permanent(snap)
    index = SnapshotIndex(_node(ARP))
    assert counted_entries(index, ARP) == (4 - exempt, exempt)


def test_a_table_that_overflowed_since_boot_is_a_warning_naming_the_refusals() -> None:
    """table_fulls counts refused entries since boot: a warning even when the table is small now."""
    table = dataclasses.replace(NDP, table_fulls=37, forced_gc_runs=1200)
    (found,) = neighbour_table_fill(SnapshotIndex(_node(table)))
    assert (found.grade, found.subject) == ("warning", "node node-a NDP table")
    assert "under gc_thresh2 512, but it has been full" in found.cause
    assert "refused 37 new entries because the table was full" in found.cause
    assert "net.ipv6.neigh.default.gc_thresh3 = 1024" in found.evidence
    assert "ndisc_cache: table_fulls 37, forced_gc_runs 1200" in found.evidence
    assert "net.ipv6.neigh.default.gc_thresh3=2048" in found.fix


def test_the_fix_leaves_room_for_four_times_todays_entries() -> None:
    """A critical table's fix names thresholds the node's own namespace must set."""
    table = dataclasses.replace(ARP, entries=1020, table_fulls=5)
    (found,) = neighbour_table_fill(SnapshotIndex(_node(table)))
    assert found.grade == "critical"
    assert "neighbour: arp_cache: neighbor table overflow!" in found.cause
    assert found.fix.startswith("raise the thresholds in the node's own network namespace")
    assert "net.ipv4.neigh.default.gc_thresh2=2048 net.ipv4.neigh.default.gc_thresh3=4096" in (
        found.fix
    )
    assert found.id == "neighbour-table-full:node-a:arp_cache"
