"""A listing: rows of plain JSON values for `--json`, and the columns shown as text.

Like lsns, a listing is a list of rows and the columns its text form shows; the JSON
keys are a stable contract (docs/architecture.md), the columns may abbreviate them.
Every kind's listing is one of these (`podpath.listing`, `podpath.namespace_listing`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from podpath.safe_text import visible

Row = dict[str, Any]

# The kinds `podpath ls` lists, in the order its help names them (`podpath.listing.KINDS`
# makes each): known without importing the listings, which `ls namespaces` does not need.
LISTING_KINDS = (
    "namespaces",
    "pods",
    "links",
    "routes",
    "rules",
    "neigh",
    "fdb",
    "netconf",
    "tc",
    "iptables",
    "nft",
    "services",
    "sockets",
    "conntrack",
    "cni",
    "gaps",
    "problems",
)


@dataclass(frozen=True)
class Column:
    """A text column: its header and how to turn a JSON row into a cell."""

    header: str
    cell: Callable[[Row], object]
    right: bool = False


@dataclass(frozen=True)
class Listing:
    """Rows for JSON, columns for text."""

    rows: list[Row]
    columns: tuple[Column, ...]


def key(name: str) -> Callable[[Row], object]:
    """The cell that shows a row's value at `name`."""
    return lambda row: row.get(name)


def _dash(value: object) -> str:
    if value is None or value == "" or value == []:
        return "-"
    if isinstance(value, list):
        return ",".join(_dash(v) for v in value)
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def render_text(listing: Listing) -> str:
    """Aligned columns like lsns/ip print them, every cell made terminal-safe."""
    header = [c.header for c in listing.columns]
    cells = [[visible(_dash(c.cell(row))) for c in listing.columns] for row in listing.rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(header)]
    lines = []
    for row in [header, *cells]:
        parts = [
            cell.rjust(w) if col.right else cell.ljust(w)
            for cell, w, col in zip(row, widths, listing.columns, strict=True)
        ]
        lines.append(" ".join(parts).rstrip())
    return "\n".join(lines)
