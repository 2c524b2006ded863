"""CNI configuration files and host-local IPAM reservations."""

from __future__ import annotations

from podpath.tui.rows.cni import CNI_COLUMNS, cni_rows
from podpath.tui.rows.model import Row
from podpath.tui.screens.base import TableScreen
from podpath.tui.screens.text_view import TextScreen
from podpath.tui.state import Loaded


class CniScreen(TableScreen):
    """CNI configuration files and host-local IPAM reservations."""

    HEADING = "CNI config and IPAM"
    GAP_WORDS = ("cni", "ipam")
    COLUMNS = CNI_COLUMNS

    def build_rows(self, loaded: Loaded) -> list[Row]:
        """All rows of this view."""
        return cni_rows(loaded.index)

    def open_row(self, key: str, loaded: Loaded) -> None:
        """Enter on a config file shows its text; on a reservation, the pod holding the IP."""
        if key.startswith("cfg:"):
            config = next((c for c in loaded.snapshot.cni.configs if c.path == key[4:]), None)
            if config is not None:
                self.app.push_screen(TextScreen(config.path, config.text))
        elif key.startswith("ipam:"):
            ip = key.rsplit("/", 1)[-1]
            self.open_pod(loaded, loaded.index.pods_by_ip.get(ip), f"{ip} (reserved)")
