"""Pure row builders for the CNI screen: config files and host-local IPAM reservations."""

from __future__ import annotations

from podpath.analysis.index import SnapshotIndex
from podpath.tui.rows.model import Cell, Row, cell, join, row

CNI_COLUMNS = ("FILE / NETWORK", "NAME / IP", "PLUGINS / CONTAINER", "STATE")


def cni_rows(index: SnapshotIndex) -> list[Row]:
    """CNI config files (the active one marked), then IPAM reservations (leaks flagged)."""
    cni = index.snapshot.cni
    out = []
    for c in cni.configs:
        state = (
            Cell("active", "success")
            if c.path == cni.active
            else Cell(c.error or "", "error" if c.error else "dim")
        )
        out.append(
            row(
                f"cfg:{c.path}",
                Cell(c.path, "accent"),
                cell(c.name),
                cell(join(c.plugins, " → ")),
                state,
            )
        )
    for a in sorted(cni.allocations, key=lambda a: (a.network, a.ip)):
        pod = _pod_by_sandbox(index, a.container_id)
        owner = f"{pod} ({a.container_id[:12]})" if pod else a.container_id[:12]
        state = Cell("leaked", "error") if a.stale else Cell(a.ifname or "", "dim")
        out.append(row(f"ipam:{a.network}/{a.ip}", Cell(a.network, "primary"), a.ip, owner, state))
    return out


def _pod_by_sandbox(index: SnapshotIndex, sandbox_id: str) -> str | None:
    for pod in index.snapshot.pods:
        if pod.sandbox_id == sandbox_id:
            return f"{pod.namespace}/{pod.name}"
    return None
