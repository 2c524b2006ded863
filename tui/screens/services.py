"""Services as kube-proxy programmed them: VIP:port -> endpoints with probabilities."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType

from podpath.tui.rows.model import RowSet
from podpath.tui.rows.services import SERVICE_COLUMNS, find_service, vip
from podpath.tui.screens.base import TableScreen
from podpath.tui.state import SERVICE_ROWS, SERVICES, Loaded


class ServicesScreen(TableScreen):
    """Every Service port; enter shows its endpoints and chain walk."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("t", "app.trace_here", "Trace to it")]

    HEADING = "Services"
    GAP_WORDS = ("iptables", "nft", "services", "kube-proxy")
    COLUMNS = SERVICE_COLUMNS

    PENDING_STAGE = SERVICE_ROWS

    def build_rowset(self, loaded: Loaded) -> RowSet | None:
        """One row per Service port (built once per snapshot in a worker; None until then)."""
        if loaded.has(SERVICE_ROWS):
            return loaded.service_rows()
        loaded.want(SERVICE_ROWS)
        return None

    def open_row(self, key: str, loaded: Loaded) -> None:
        """Open the Service screen."""
        self.state().open_screen("service", key)

    def trace_inputs(self) -> tuple[str, str]:
        """`t` traces toward the selected Service (VIP:port); the source is left to fill in."""
        loaded, key = self.loaded, self.table.selected_key
        if loaded is None or key is None or not loaded.has(SERVICES):
            return "", ""
        svc = find_service(loaded.parsed.services(), key)
        return ("", f"{vip(svc)}:{svc.port}") if svc is not None else ("", "")
