"""Neighbour tables near their limit: the kernel refuses new ARP/NDP entries when full.

One ARP table and one NDP table serve the whole kernel: every network namespace's
entries count against net.ipv4.neigh.default.gc_thresh3 (net.ipv6 for NDP), which only
the node's own namespace can set. A node with many pods and peers (a flat pod network,
a node talking to thousands of pods) outgrows the defaults (128/512/1024). neigh_alloc
in net/core/neighbour.c: past gc_thresh2 a new entry first evicts entries idle for 5 s
(forced GC, down to gc_thresh2); at gc_thresh3 with nothing to evict it is refused
("neighbour: arp_cache: neighbor table overflow!") and the packets waiting on it are
dropped. Since Linux 5.0 (58956317c8de, "neighbor: Improve garbage collection")
PERMANENT and externally learned entries are exempt and do not count; the table's
`entries` (what `ip -s ntable show` prints) includes them, so those the snapshot holds
are taken off. Entries of namespaces the snapshot did not read still count.
"""

from __future__ import annotations

from podpath.analysis.findings import Finding
from podpath.analysis.index import SnapshotIndex
from podpath.snapshot.model import NeighbourTable

# The share of gc_thresh3 from which a table is critical: it is about to refuse entries.
CRITICAL_FILL = 0.95
# The kernel that stopped counting PERMANENT and extern_learn entries (5.0).
EXEMPT_SINCE = (5, 0)
_PROTOCOL = {4: ("ARP", "ipv4"), 6: ("NDP", "ipv6")}


def neighbour_table_fill(index: SnapshotIndex) -> list[Finding]:
    """A finding for each neighbour table past gc_thresh2, near gc_thresh3, or that has
    refused entries since boot."""
    tables = index.snapshot.node.neighbour_tables or ()
    found = (_judge(index, table) for table in tables if table.family in _PROTOCOL)
    return [finding for finding in found if finding is not None]


def counted_entries(index: SnapshotIndex, table: NeighbourTable) -> tuple[int, int]:
    """(entries that count against gc_thresh3, exempt entries the snapshot holds)."""
    if not _exempts(index.snapshot.node.kernel):
        return table.entries, 0
    exempt = index.exempt_neighbours.get(table.family, 0)
    return max(table.entries - exempt, 0), exempt


def _judge(index: SnapshotIndex, table: NeighbourTable) -> Finding | None:
    counted, exempt = counted_entries(index, table)
    near = table.thresh3 > 0 and counted >= CRITICAL_FILL * table.thresh3
    past_soft = counted > table.thresh2
    if not (near or past_soft or table.table_fulls):
        return None
    node = index.snapshot.node.hostname
    protocol, sysctl = _PROTOCOL[table.family]
    holds = (
        f"the kernel's {protocol} table ({table.name}, every network namespace's entries) "
        f"holds {counted} entries that count against gc_thresh3 {table.thresh3}"
    )
    refused = (
        f'at {table.thresh3} a new neighbour is refused ("neighbour: {table.name}: neighbor '
        'table overflow!" in the kernel log) and the packets waiting on it are dropped'
    )
    if near:
        cause = f"{holds}: {refused}"
    elif past_soft:
        cause = (
            f"{holds}, past gc_thresh2 {table.thresh2}: each new neighbour first evicts "
            f"entries idle for 5 s, and a burst that reaches {table.thresh3} is refused"
        )
    else:
        cause = f"{holds} now, under gc_thresh2 {table.thresh2}, but it has been full"
    if table.table_fulls:
        cause += (
            f"; since boot the kernel has refused {table.table_fulls} new "
            f"{'entry' if table.table_fulls == 1 else 'entries'} because the table was full"
        )
    return Finding(
        "neighbour-table-full",
        "critical" if near else "warning",
        f"node {node} {protocol} table",
        cause,
        _fix(table, counted, sysctl),
        node,
        f"neighbour table {table.name}",
        _evidence(table, exempt, sysctl),
        key=f"{node}:{table.name}",
    )


def _fix(table: NeighbourTable, counted: int, sysctl: str) -> str:
    """Thresholds with room for four times today's entries (at least twice today's)."""
    thresh3 = max(2 * table.thresh3, 1 << max(4 * counted - 1, 1).bit_length())
    prefix = f"net.{sysctl}.neigh.default"
    return (
        f"raise the thresholds in the node's own network namespace (they hold for every "
        f"namespace; no pod's has them): sysctl -w {prefix}.gc_thresh2={thresh3 // 2} "
        f"{prefix}.gc_thresh3={thresh3}, and persist them in /etc/sysctl.d"
    )


def _evidence(table: NeighbourTable, exempt: int, sysctl: str) -> tuple[str, ...]:
    prefix = f"net.{sysctl}.neigh.default"
    not_counted = (
        f", of which {exempt} PERMANENT or extern_learn in this snapshot do not count"
        if exempt
        else ""
    )
    return (
        f"{table.name}: {table.entries} entries (ip -s ntable show){not_counted}",
        f"{prefix}.gc_thresh2 = {table.thresh2}",
        f"{prefix}.gc_thresh3 = {table.thresh3}",
        f"{table.name}: table_fulls {table.table_fulls}, forced_gc_runs {table.forced_gc_runs}",
    )


def _exempts(release: str) -> bool:
    """Whether a kernel release ("6.18.44-fc") leaves PERMANENT and extern_learn entries
    out of the count; an unreadable one is taken to (every kernel since 5.0 does)."""
    parts = release.split(".")
    try:
        major, minor = int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except (IndexError, ValueError):
        return True
    return (major, minor) >= EXEMPT_SINCE
