"""Pure row builders for the Namespaces screen: every namespace, as lsns lists them."""

from __future__ import annotations

from podpath.analysis.index import SnapshotIndex
from podpath.tui.rows.model import Cell, Row, cell, join, row

NAMESPACE_COLUMNS = ("TYPE", "INODE", "PROCS", "PID", "USER", "COMMAND", "NSFS / HELD BY")


def namespace_rows(index: SnapshotIndex) -> list[Row]:
    """Every namespace of every type, as lsns shows them, plus nsfs and holders."""
    out = []
    for ns in sorted(index.snapshot.namespaces, key=lambda n: (n.type, n.inode)):
        held = ns.nsfs or join(ns.held_by)
        pod = index.pods_by_netns.get(ns.inode) if ns.type == "net" else None
        command = ns.command
        if pod is not None:
            command = f"{ns.command or ''}  [{pod.namespace}/{pod.name}]".strip()
        out.append(
            row(
                f"{ns.type}:{ns.inode}",
                Cell(ns.type, "primary"),
                ns.inode,
                ns.nprocs,
                ns.pid,
                ns.user if ns.user is not None else ns.uid,
                cell(command),
                Cell(held or "-", "dim"),
            )
        )
    return out
