"""The node's links as a tree: bridges, their ports and pods, overlays."""

from __future__ import annotations

from podpath.tui.rows.links import LINK_COLUMNS, link_rows
from podpath.tui.rows.model import Row
from podpath.tui.screens.base import TableScreen
from podpath.tui.state import Loaded


class LinksScreen(TableScreen):
    """The node's links as a tree: bridges, their ports and pods, overlays."""

    HEADING = "Links (root namespace)"
    GAP_WORDS = ("netns", "link", "netlink", "route")
    COLUMNS = LINK_COLUMNS

    def build_rows(self, loaded: Loaded) -> list[Row]:
        """All rows of this view."""
        return link_rows(loaded.index)
