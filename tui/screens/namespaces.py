"""Every namespace of every type, as lsns lists them, with nsfs names and holders."""

from __future__ import annotations

from podpath.tui.rows.model import Row
from podpath.tui.rows.namespaces import NAMESPACE_COLUMNS, namespace_rows
from podpath.tui.rows.pod import pod_holding
from podpath.tui.screens.base import TableScreen
from podpath.tui.state import Loaded


class NamespacesScreen(TableScreen):
    """Every namespace of every type, as lsns lists them, with nsfs names and holders."""

    HEADING = "Namespaces (lsns)"
    GAP_WORDS = ("namespace", "/proc", "nsfs")
    COLUMNS = NAMESPACE_COLUMNS

    def build_rows(self, loaded: Loaded) -> list[Row]:
        """All rows of this view."""
        return namespace_rows(loaded.index)

    def open_row(self, key: str, loaded: Loaded) -> None:
        """Enter: the pod whose sandbox or container is in the namespace."""
        ns_type, _, inode = key.partition(":")
        if inode.isdigit():
            pod = pod_holding(loaded.index, ns_type, int(inode))
            self.open_pod(loaded, pod, f"{ns_type} namespace {inode}")
