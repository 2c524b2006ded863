"""A table screen over one `podpath ls` listing: the CLI's columns, one definition for both."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from podpath.analysis.index import SnapshotIndex
from podpath.table import Column, Listing
from podpath.tui.rows.model import Cell, Row, cell
from podpath.tui.screens.base import TableScreen
from podpath.tui.state import Loaded


def listed_rows(listing: Listing, key: Callable[[dict[str, Any]], str]) -> list[Row]:
    """A listing's rows as table rows: the text form's cells, the namespace as the accent."""
    out = []
    for item in listing.rows:
        cells = []
        for i, column in enumerate(listing.columns):
            value = column.cell(item)
            shown = cell(",".join(map(str, value)) if isinstance(value, list) else value)
            cells.append(Cell(shown.text, "accent") if i == 0 and shown.role == "" else shown)
        out.append(Row(key(item), tuple(cells)))
    return out


class ListedScreen(TableScreen):
    """One `podpath ls` kind as a table; enter on a pod's namespace opens that pod."""

    LISTED_COLUMNS: ClassVar[tuple[Column, ...]] = ()

    def columns(self) -> tuple[str, ...]:
        """The listing's text headers."""
        return tuple(c.header for c in self.LISTED_COLUMNS)

    def listing(self, index: SnapshotIndex) -> Listing:
        """The listing this screen shows."""
        raise NotImplementedError

    def row_key(self, item: dict[str, Any]) -> str:
        """A stable key for one listing row, led by its netns inode (kept across a refresh)."""
        return str(item["netns"])

    def build_rows(self, loaded: Loaded) -> list[Row]:
        """All rows of this view."""
        return listed_rows(self.listing(loaded.index), self.row_key)

    def open_row(self, key: str, loaded: Loaded) -> None:
        """Enter: the pod whose network namespace the row is in."""
        netns = key.partition(":")[0]
        if netns.isdigit():
            pod = loaded.index.pods_by_netns.get(int(netns))
            self.open_pod(loaded, pod, f"network namespace {netns}")
