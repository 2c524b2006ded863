"""Services as kube-proxy programmed them: VIP:port -> endpoints with probabilities."""

from __future__ import annotations

from podpath.tui.base_screen import TableScreen
from podpath.tui.list_rows import SERVICE_COLUMNS, service_rows
from podpath.tui.rows import Row
from podpath.tui.state import Loaded


class ServicesScreen(TableScreen):
    """Every Service port; enter shows its endpoints and chain walk."""

    HEADING = "Services"
    GAP_WORDS = ("iptables", "nft", "services", "kube-proxy")
    COLUMNS = SERVICE_COLUMNS

    def build_rows(self, loaded: Loaded) -> list[Row]:
        """One row per Service port."""
        return service_rows(loaded.index, loaded.views.services())

    def open_row(self, key: str, loaded: Loaded) -> None:
        """Open the Service screen."""
        self.state().open_screen("service", key)
