"""The pods of the node: enter opens a pod, s/c/t act on the selected one."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType

from podpath.snapshot.model import Pod
from podpath.tui.rows.model import Row
from podpath.tui.rows.pod import POD_COLUMNS, find_pod, pod_rows
from podpath.tui.screens.base import TableScreen
from podpath.tui.state import Loaded


class PodsScreen(TableScreen):
    """Every pod sandbox on the node."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "app.pod_shell", "Shell"),
        Binding("c", "app.pod_capture", "Capture"),
        Binding("t", "app.pod_trace", "Trace"),
    ]
    HEADING = "Pods"
    GAP_WORDS = ("pod", "runtime", "sandbox", "/proc", "cgroup")
    COLUMNS = POD_COLUMNS

    def build_rows(self, loaded: Loaded) -> list[Row]:
        """One row per pod."""
        return pod_rows(loaded.index)

    def selected_pod(self) -> Pod | None:
        """The pod under the cursor."""
        loaded, key = self.loaded, self.table.selected_key
        if loaded is None or key is None:
            return None
        return find_pod(loaded.index, key)

    def open_row(self, key: str, loaded: Loaded) -> None:
        """Open the Pod screen."""
        self.state().open_screen("pod", key)
