"""Pure builders for the Node (home) screen: the node's facts and the menu of views."""

from __future__ import annotations

import time
from dataclasses import dataclass

from podpath.analysis.dataplane import iptables_backends
from podpath.analysis.index import SnapshotIndex
from podpath.analysis.problems import Problem
from podpath.tui.rows.model import Cell, Row, cell, row


def fact_rows(index: SnapshotIndex, kube_proxy: str) -> list[Row]:
    """Facts about the node, one per row (`kube_proxy`: the mode, as analysis words it)."""
    snap = index.snapshot
    runtimes = sorted({p.runtime for p in snap.pods}) or ["unknown"]
    taken = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(snap.taken_at))
    facts: list[tuple[str, object]] = [
        ("node", snap.node.hostname),
        ("kernel", snap.node.kernel),
        ("runtime", ", ".join(runtimes)),
        ("CNI config", snap.cni.active),
        ("kube-proxy", kube_proxy),
        ("iptables", ", ".join(iptables_backends(index)) or None),
        ("ip_forward", snap.node.ip_forward),
        ("taken", f"{taken} ({snap.duration:.2f} s)"),
    ]
    return [row(f"fact:{k}", Cell(k, "dim"), cell(v)) for k, v in facts]


@dataclass(frozen=True)
class Derived:
    """What home shows that needs the rules and conntrack parsed (slow on big nodes)."""

    services: int
    conntrack: int
    problems: tuple[Problem, ...]


def count_rows(index: SnapshotIndex, derived: Derived | None) -> list[Row]:
    """The screens reachable from home, each with its count ("…" while still parsing)."""
    snap = index.snapshot
    pending = "…"
    links = sum(len(ns.links) for ns in snap.netns)
    rules = sum(d.text.count("\n-A ") for d in snap.iptables)
    entries: list[tuple[str, str, object]] = [
        ("pods", "Pods", len(snap.pods)),
        ("svc", "Services", derived.services if derived else pending),
        ("ns", "Namespaces", len(snap.namespaces)),
        ("links", "Links", links),
        ("ipt", "Netfilter rules", rules),
        ("ct", "Conntrack entries", derived.conntrack if derived else pending),
        ("cni", "CNI configs / IPAM", f"{len(snap.cni.configs)} / {len(snap.cni.allocations)}"),
        ("trace", "Trace a packet", ""),
        ("problems", "Problems", len(derived.problems) if derived else pending),
    ]
    return [
        Row(
            f"go:{key}",
            (Cell(label, "accent"), Cell(f"{value}", "primary"), Cell(f":{key}", "dim")),
        )
        for key, label, value in entries
    ]
