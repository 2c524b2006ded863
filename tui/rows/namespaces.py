"""Pure row builders for the Namespaces screen: every namespace, as lsns lists them."""

from __future__ import annotations

from podpath.analysis.index import SnapshotIndex
from podpath.snapshot.model import Namespace
from podpath.tui.rows.model import Cell, Row, cell, row

# The long, free-form command last: a pause container's is short, an app's can be a
# whole script, and it pushed HELD BY off a 160-column screen.
NAMESPACE_COLUMNS = ("TYPE", "INODE", "NSID", "PROCS", "PID", "USER", "HELD BY", "COMMAND")
MAX_FDS = 3  # fd holders named in one cell before "+N more"


def held_by(index: SnapshotIndex, ns: Namespace) -> str:
    """Who keeps a namespace alive: its processes, its nsfs bind mount, the fds open on it."""
    parts = []
    if "process" in ns.held_by:
        parts.append(f"{ns.nprocs} process{'es' if ns.nprocs != 1 else ''}")
    if ns.nsfs:
        parts.append(f"bind {ns.nsfs}")
    elif "bind-mount" in ns.held_by:
        parts.append("bind mount")
    for holder in ns.holder_fds[:MAX_FDS]:
        proc = index.processes_by_pid.get(holder.pid)
        comm = f" ({proc.comm})" if proc else ""
        parts.append(f"fd {holder.fd} of pid {holder.pid}{comm}")
    if len(ns.holder_fds) > MAX_FDS:
        parts.append(f"+{len(ns.holder_fds) - MAX_FDS} more fds")
    elif "fd" in ns.held_by and not ns.holder_fds:
        parts.append("an open fd")  # an older snapshot: which one was not recorded
    return ", ".join(parts)


def namespace_rows(index: SnapshotIndex) -> list[Row]:
    """Every namespace of every type, as lsns shows them, with who holds it."""
    out = []
    for ns in sorted(index.snapshot.namespaces, key=lambda n: (n.type, n.inode)):
        pod = index.pods_by_netns.get(ns.inode) if ns.type == "net" else None
        command = ns.command
        if pod is not None:
            command = f"[{pod.namespace}/{pod.name}] {ns.command or ''}".strip()
        only_fd = ns.held_by == ("fd",)
        out.append(
            row(
                f"{ns.type}:{ns.inode}",
                Cell(ns.type, "primary"),
                ns.inode,
                cell(ns.netnsid, "dim"),
                ns.nprocs,
                ns.pid,
                ns.user if ns.user is not None else ns.uid,
                cell(held_by(index, ns), "warning" if only_fd else "dim"),
                cell(command),
            )
        )
    return out
