"""The root namespace's policy rules and routes: `ip rule` and `ip route show table all`."""

from __future__ import annotations

from podpath.tui.rows.model import Row
from podpath.tui.rows.routing import ROUTING_COLUMNS, routing_rows
from podpath.tui.screens.base import TableScreen
from podpath.tui.state import Loaded


class RoutingScreen(TableScreen):
    """The root namespace's policy rules, then its routes of every table."""

    HEADING = "Rules and routes (root namespace)"
    GAP_WORDS = ("netns", "netlink", "route", "rule")
    COLUMNS = ROUTING_COLUMNS

    def build_rows(self, loaded: Loaded) -> list[Row]:
        """All rows of this view."""
        return routing_rows(loaded.index)
