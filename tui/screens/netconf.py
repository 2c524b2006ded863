"""Per-interface IP sysctls of every namespace (`podpath ls netconf`), effective values too."""

from __future__ import annotations

from typing import Any

from podpath.analysis.index import SnapshotIndex
from podpath.listing import NETCONF_COLUMNS, netconf
from podpath.table import Listing
from podpath.tui.screens.listed import ListedScreen


class NetconfScreen(ListedScreen):
    """forwarding, rp_filter, proxy_arp/ndp per netns and interface, as the kernel combines them."""

    HEADING = "IP sysctls per interface (ip netconf; EFF-: what the kernel decides with)"
    GAP_WORDS = ("netconf",)
    LISTED_COLUMNS = NETCONF_COLUMNS

    def listing(self, index: SnapshotIndex) -> Listing:
        """`podpath ls netconf`'s rows."""
        return netconf(index)

    def row_key(self, item: dict[str, Any]) -> str:
        """netns:family:ifindex (-1 all, -2 default)."""
        return f"{item['netns']}:{item['family']}:{item['ifindex']}"
