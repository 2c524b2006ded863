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

    def open_row(self, key: str, loaded: Loaded) -> None:
        """Enter on a veth: the pod at its other end."""
        ifindex = key.removeprefix("link:")
        root = loaded.index.root_netns
        link = loaded.index.link(root.inode, int(ifindex)) if root and ifindex.isdigit() else None
        if link is None:
            return
        pod = loaded.index.pods_by_netns.get(link.peer.netns) if link.peer else None
        self.open_pod(loaded, pod, link.name)
