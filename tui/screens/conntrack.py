"""The conntrack table: original vs reply, DNAT explained, stale entries flagged."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType

from podpath.conntrack import ConntrackEntry
from podpath.tui.rows.conntrack import CONNTRACK_COLUMNS
from podpath.tui.rows.model import RowSet
from podpath.tui.screens.base import TableScreen, enter_binding
from podpath.tui.state import CONNTRACK, CONNTRACK_ROWS, Loaded


class ConntrackScreen(TableScreen):
    """Every conntrack entry (filter with / by address, port or state); enter traces one."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("t", "app.trace_here", "Trace it"),
        enter_binding("Trace the connection"),
    ]

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

    def _entry(self) -> ConntrackEntry | None:
        loaded, key = self.loaded, self.table.selected_key
        if loaded is None or key is None or not loaded.has(CONNTRACK):
            return None
        number = key.removeprefix("ct:")
        entries = loaded.parsed.conntrack()
        return entries[int(number)] if number.isdigit() and int(number) < len(entries) else None

    def trace_inputs(self) -> tuple[str, str]:
        """`t`: from the connection's source to its original destination."""
        entry = self._entry()
        return flow_ends(entry) if entry is not None else ("", "")

    def open_row(self, key: str, loaded: Loaded) -> None:
        """Enter: trace the connection as it was first sent (the trace runs at once)."""
        entry = self._entry()
        if entry is not None:
            source, destination = flow_ends(entry)
            proto = entry.protocol if entry.protocol in ("tcp", "udp", "icmp") else "tcp"
            self.state().start_trace(source, destination, proto)


def flow_ends(entry: ConntrackEntry) -> tuple[str, str]:
    """(source, destination[:port]) of the original direction, as Trace takes them."""
    dst = entry.original.dst
    host = f"[{dst}]" if ":" in dst else dst
    port = entry.original.dport
    return entry.original.src, f"{host}:{port}" if port is not None else host
