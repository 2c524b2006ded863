"""kube-proxy's IPVS virtual services (`:ipvs`): scheduler, persistence, real servers."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import Static

from podpath.tui.rows.ipvs import (
    EMPTY_KEY,
    IPVS_COLUMNS,
    empty_reason,
    find_ipvs_service,
    find_server,
    find_virtual,
    ipvs_rows,
    place_of,
)
from podpath.tui.rows.model import Cell, Page, Row, RowSet, rowset
from podpath.tui.rows.pod import pods_by_key
from podpath.tui.rows.services import service_id
from podpath.tui.screens.base import TableScreen, enter_binding
from podpath.tui.screens.pod import PodScreen
from podpath.tui.state import SERVICES, Loaded
from podpath.tui.text import clean, literal_content


class IpvsScreen(TableScreen):
    """Every virtual service with its real servers; enter opens a server's pod or the Service."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("t", "app.trace_here", "Trace to it"),
        enter_binding("Open a server's pod or a service"),
    ]

    HEADING = "IPVS virtual services"
    GAP_WORDS = ("ip_vs", "ipvs", "ipset")
    COLUMNS = IPVS_COLUMNS

    PENDING_STAGE = SERVICES

    def __init__(self, needle: str = "") -> None:
        super().__init__(needle)
        self._empty = False

    def build_rowset(self, loaded: Loaded) -> RowSet | None:
        """The virtual services, or one row saying why there are none (once the views are parsed)."""
        if not loaded.has(SERVICES):
            loaded.want(SERVICES)  # kube-proxy's mode and Services: parsed in that stage
            return None
        mode = loaded.parsed.kube_proxy_mode()
        reason = empty_reason(loaded.index, mode.mode if mode else None)
        self._empty = reason is not None
        if reason is not None:
            blank = tuple(Cell("") for _ in IPVS_COLUMNS[1:])
            return rowset([Row(EMPTY_KEY, (Cell(reason, "warning"), *blank))])
        indexes = [loaded.index, *loaded.peer_indexes]
        return loaded.rows("ipvs", lambda: ipvs_rows(indexes, loaded.parsed.services()))

    def show_title(self, shown: Page) -> None:
        """As every list, but "none" rather than one row when the node has no IPVS state."""
        super().show_title(shown)
        if self._empty and not self._pending:
            self.query_one("#count", Static).update(literal_content("no virtual services"))

    def open_row(self, key: str, loaded: Loaded) -> None:
        """Enter: a real server opens its pod (on whichever loaded node); a service its Service."""
        server = find_server(loaded.index, key)
        if server is not None:
            place = place_of([loaded.index, *loaded.peer_indexes], server.address)
            if place.pod is None or place.node is None:
                self.notify(clean(f"{server.address} is {place.label}"), timeout=3, markup=False)
                return
            node = loaded.node(place.node)
            pod_key = next(
                (k for k, p in pods_by_key(node.index).items() if server.address in p.ips), None
            )
            if pod_key is not None:
                self.app.push_screen(PodScreen(pod_key, place.node))
            return
        vs = find_virtual(loaded.index, key)
        svc = find_ipvs_service(loaded.parsed.services(), vs) if vs is not None else None
        if svc is not None:
            self.state().open_screen("service", service_id(svc))

    def trace_inputs(self) -> tuple[str, str]:
        """`t` traces toward the selected virtual service, or the selected real server."""
        loaded, key = self.loaded, self.table.selected_key
        if loaded is None or key is None:
            return "", ""
        server = find_server(loaded.index, key)
        if server is not None:
            host = f"[{server.address}]" if ":" in server.address else server.address
            return "", f"{host}:{server.port}" if server.port else host
        vs = find_virtual(loaded.index, key)
        if vs is None or vs.address is None:
            return "", ""
        host = f"[{vs.address}]" if ":" in vs.address else vs.address
        return "", f"{host}:{vs.port}"
