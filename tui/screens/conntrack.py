"""The conntrack table: original vs reply, DNAT explained, stale entries flagged."""

from __future__ import annotations

from podpath.tui.rows.conntrack import CONNTRACK_COLUMNS
from podpath.tui.rows.model import RowSet
from podpath.tui.screens.base import TableScreen
from podpath.tui.state import CONNTRACK_ROWS, Loaded


class ConntrackScreen(TableScreen):
    """Every conntrack entry (filter with / by address, port or state)."""

    HEADING = "Conntrack"
    GAP_WORDS = ("conntrack",)
    COLUMNS = CONNTRACK_COLUMNS

    PENDING_STAGE = CONNTRACK_ROWS

    def build_rowset(self, loaded: Loaded) -> RowSet | None:
        """One row per entry (built once per snapshot in a worker; None until then)."""
        if loaded.has(CONNTRACK_ROWS):
            return loaded.conntrack_rows()
        loaded.want(CONNTRACK_ROWS)
        return None
