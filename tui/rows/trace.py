"""Pure builders for the Trace screen: branches, hops, and the detail of one hop."""

from __future__ import annotations

from podpath.trace.model import Branch, Hop, Trace
from podpath.tui.rows.model import Cell, Row, row

VERDICT_ROLES = {
    "delivered": "success",
    "dropped": "error",
    "leaves-node": "primary",
    "uncertain": "warning",
}

BRANCH_COLUMNS = ("#", "PROBABILITY", "VERDICT", "WHERE IT ENDS")


def branch_rows(trace: Trace) -> list[Row]:
    """One row per branch with its probability and verdict."""
    return [
        row(
            f"b:{i}",
            Cell(str(i + 1), "dim"),
            Cell(f"{b.probability:.4f}", "primary"),
            Cell(b.verdict, VERDICT_ROLES.get(b.verdict, "")),
            Cell(b.reason + (f" (if guesses hold: {b.outcome})" if b.outcome else "")),
        )
        for i, b in enumerate(trace.branches)
    ]


HOP_COLUMNS = ("#", "KIND", "NODE", "WHAT HAPPENS")


def hop_rows(hops: tuple[Hop, ...]) -> list[Row]:
    """One row per hop of a path."""
    return [
        row(
            f"h:{i}",
            Cell(str(i + 1), "dim"),
            Cell(h.kind, "accent"),
            Cell(h.node, "dim"),
            Cell(h.text),
        )
        for i, h in enumerate(hops)
    ]


def path_hops(branch: Branch, reply: bool) -> tuple[Hop, ...]:
    """The hops of a branch, or of its (first) reply path."""
    if not reply:
        return branch.hops
    return branch.reply[0].hops if branch.reply else ()


def hop_detail(hop: Hop, explain: bool) -> str:
    """The entries that decided a hop, one per line; with `explain`, the binary AND too."""
    lines = [hop.text, *("  " + d for d in hop.details)]
    if explain and hop.explain:
        lines += ["", "route lookup, bit by bit:", *("  " + e for e in hop.explain)]
    elif hop.explain:
        lines.append("  (press a for the binary AND)")
    return "\n".join(lines)


def completions(pod_names: list[str], pod_ips: list[str], services: list[str]) -> list[str]:
    """Everything the source/destination inputs complete: pods, Services, IPs, the node."""
    return sorted({"node", *pod_names, *pod_ips, *services})
