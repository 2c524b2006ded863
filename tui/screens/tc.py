"""Qdiscs and tc filters of every interface (`podpath ls tc`), with their eBPF programs."""

from __future__ import annotations

from typing import Any

from podpath.analysis.index import SnapshotIndex
from podpath.listing import TC_COLUMNS, tc
from podpath.table import Listing
from podpath.tui.screens.listed import ListedScreen


class TcScreen(ListedScreen):
    """Qdiscs and filters per netns, device and direction; a bpf filter names its program."""

    HEADING = "Traffic control: qdiscs and filters (tc; eBPF programs by name and id)"
    GAP_WORDS = ("qdisc", "tc filter")
    LISTED_COLUMNS = TC_COLUMNS

    def listing(self, index: SnapshotIndex) -> Listing:
        """`podpath ls tc`'s rows."""
        return tc(index)

    def row_key(self, item: dict[str, Any]) -> str:
        """netns:ifindex:what, where, pref, chain and handle (unique per device)."""
        where = item.get("hook") or item.get("parent")
        return (
            f"{item['netns']}:{item['ifindex']}:{item['object']}:{item['kind']}:{where}:"
            f"{item.get('pref')}:{item.get('chain')}:{item.get('handle')}"
        )
