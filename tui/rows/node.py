"""Pure builders for the Node (home) screen: the node's facts and the menu of views."""

from __future__ import annotations

import time
from collections.abc import Iterable

from podpath.analysis.dataplane import iptables_backends
from podpath.analysis.index import SnapshotIndex
from podpath.analysis.neighbour_tables import counted_entries
from podpath.tui.rows.model import Cell, Row, cell, row


def fact_rows(
    index: SnapshotIndex, kube_proxy: str, dataplane: str, backends: list[str] | None = None
) -> list[Row]:
    """Facts about the node, one per row (`kube_proxy`, `dataplane`: as analysis words them;
    `backends`: the iptables backends holding rules, when the caller has counted them)."""
    snap = index.snapshot
    runtimes = sorted({p.runtime for p in snap.pods}) or ["unknown"]
    taken = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(snap.taken_at))
    facts: list[tuple[str, object]] = [
        ("node", snap.node.hostname),
        ("kernel", snap.node.kernel),
        ("runtime", ", ".join(runtimes)),
        ("CNI config", snap.cni.active),
        ("kube-proxy", kube_proxy),
        ("dataplane", dataplane),
        ("iptables", ", ".join(iptables_backends(index) if backends is None else backends) or None),
        ("ip_forward", snap.node.ip_forward),
        *_neighbour_tables(index),
        ("taken", f"{taken} ({snap.duration:.2f} s)"),
    ]
    return [row(f"fact:{k}", Cell(k, "dim"), cell(v)) for k, v in facts]


def _neighbour_tables(index: SnapshotIndex) -> list[tuple[str, object]]:
    """The ARP and NDP tables' entries that count against gc_thresh3, when read: one row."""
    tables = index.snapshot.node.neighbour_tables
    if not tables:
        return []
    names = {4: "ARP", 6: "NDP"}
    said = [
        f"{names[t.family]} {counted_entries(index, t)[0]} of {t.thresh3}"
        for t in tables
        if t.family in names
    ]
    return [("neighbours", ", ".join(said) + " (gc_thresh3)")]


MENU_COLUMNS = ("VIEW", "COUNT", "JUMP")


def menu_rows(entries: Iterable[tuple[str, str, str]]) -> list[Row]:
    """Home's menu: one row per (jump name, label, count), enter opens the view."""
    return [
        Row(f"go:{name}", (Cell(label, "accent"), Cell(count, "primary"), Cell(f":{name}", "dim")))
        for name, label, count in entries
    ]
