"""The conntrack table: original vs reply, DNAT explained, stale entries flagged."""

from __future__ import annotations

from podpath.tui.base_screen import TableScreen
from podpath.tui.pod_rows import CONNTRACK_COLUMNS, conntrack_rows
from podpath.tui.rows import Row
from podpath.tui.state import Loaded


class ConntrackScreen(TableScreen):
    """Every conntrack entry (filter with / by address, port or state)."""

    HEADING = "Conntrack"
    GAP_WORDS = ("conntrack",)
    COLUMNS = CONNTRACK_COLUMNS

    def build_rows(self, loaded: Loaded) -> list[Row]:
        """One row per entry."""
        return conntrack_rows(loaded.views.conntrack(), loaded.views.services())
